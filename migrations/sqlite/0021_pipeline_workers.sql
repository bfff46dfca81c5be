-- Pipeline runs are executed by `pipeline` workers: the kind joins the workers' check. SQLite
-- cannot change a CHECK constraint in place, so the table is rebuilt with its rows (the
-- migration runs in one transaction).
CREATE TABLE workers_rebuilt (
    id             TEXT    PRIMARY KEY,
    tenant_id      TEXT    NOT NULL,
    kind           TEXT    NOT NULL CHECK (kind IN ('ingest', 'compact', 'retention', 'migrate', 'purge', 'pipeline')),
    spec           TEXT    NOT NULL,
    fingerprint    TEXT    NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed')),
    restarts       INTEGER NOT NULL,
    failures       INTEGER NOT NULL,
    last_error     TEXT,
    failed_at      INTEGER,
    last_heartbeat INTEGER,
    owner          TEXT,
    updated_at     INTEGER NOT NULL,
    progress       TEXT
);
INSERT INTO workers_rebuilt (id, tenant_id, kind, spec, fingerprint, state, restarts, failures, last_error,
                             failed_at, last_heartbeat, owner, updated_at, progress)
    SELECT id, tenant_id, kind, spec, fingerprint, state, restarts, failures, last_error,
           failed_at, last_heartbeat, owner, updated_at, progress
    FROM workers;
DROP TABLE workers;
ALTER TABLE workers_rebuilt RENAME TO workers;
CREATE INDEX workers_by_tenant ON workers (tenant_id, id);
CREATE INDEX workers_by_state ON workers (state, id);
