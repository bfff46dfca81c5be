-- Delta tables in zones, and their maintenance runs.
CREATE TABLE lake_tables (
    id         TEXT    NOT NULL UNIQUE,
    tenant_id  TEXT    NOT NULL,
    zone       TEXT    NOT NULL CHECK (zone IN ('bronze', 'silver', 'gold')),
    name       TEXT    NOT NULL,
    spec       TEXT    NOT NULL,
    location   TEXT    NOT NULL,
    status     TEXT    NOT NULL CHECK (status IN ('active', 'deleting')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    -- A name stays taken until its purge has removed the files, so a new table can never
    -- share a location with one still being erased.
    PRIMARY KEY (tenant_id, zone, name)
);

CREATE TABLE maintenance_runs (
    id               TEXT    PRIMARY KEY,
    table_id         TEXT    NOT NULL,
    tenant_id        TEXT    NOT NULL,
    zone             TEXT    NOT NULL,
    table_name       TEXT    NOT NULL,
    operations       TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    metrics          TEXT,
    error            TEXT,
    requested_by     TEXT    NOT NULL,
    lease_owner      TEXT    NOT NULL,
    lease_expires_at INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    finished_at      INTEGER
);
-- The lease: at most one unfinished run per table.
CREATE UNIQUE INDEX maintenance_runs_one_active ON maintenance_runs (table_id)
    WHERE status IN ('queued', 'running');
CREATE INDEX maintenance_runs_by_table ON maintenance_runs (table_id, finished_at);
