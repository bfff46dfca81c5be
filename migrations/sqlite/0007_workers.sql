-- Workers: the reconciler's observed state, one row per deterministic worker id.
CREATE TABLE workers (
    id             TEXT    PRIMARY KEY,
    tenant_id      TEXT    NOT NULL,
    kind           TEXT    NOT NULL CHECK (kind IN ('ingest', 'compact', 'retention', 'migrate', 'purge')),
    spec           TEXT    NOT NULL,
    fingerprint    TEXT    NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed')),
    restarts       INTEGER NOT NULL,
    failures       INTEGER NOT NULL,
    last_error     TEXT,
    failed_at      INTEGER,
    last_heartbeat INTEGER,
    owner          TEXT,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX workers_by_tenant ON workers (tenant_id, id);
CREATE INDEX workers_by_state ON workers (state, id);
