-- Ingestion streams: a source bound to a bronze table.
CREATE TABLE streams (
    id         UUID    NOT NULL UNIQUE,
    tenant_id  TEXT    COLLATE "C" NOT NULL,
    name       TEXT    COLLATE "C" NOT NULL,
    table_id   UUID    NOT NULL,
    table_name TEXT    NOT NULL,
    source     TEXT    NOT NULL,
    on_error   TEXT    NOT NULL CHECK (on_error IN ('reject', 'dlq')),
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
CREATE INDEX streams_by_table ON streams (table_id);
