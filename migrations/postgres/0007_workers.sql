-- Workers: the reconciler's observed state, one row per deterministic worker id.
CREATE TABLE workers (
    id             TEXT    COLLATE "C" PRIMARY KEY,
    tenant_id      TEXT    COLLATE "C" NOT NULL,
    kind           TEXT    NOT NULL CHECK (kind IN ('ingest', 'compact', 'retention', 'migrate', 'purge')),
    spec           TEXT    NOT NULL,
    fingerprint    TEXT    NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed')),
    restarts       BIGINT  NOT NULL,
    failures       BIGINT  NOT NULL,
    last_error     TEXT,
    failed_at      TIMESTAMPTZ,
    last_heartbeat TIMESTAMPTZ,
    owner          TEXT,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX workers_by_tenant ON workers (tenant_id, id);
CREATE INDEX workers_by_state ON workers (state, id);
