-- Ingestion streams: a source bound to a bronze table.
CREATE TABLE streams (
    id         TEXT    NOT NULL UNIQUE,
    tenant_id  TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    table_id   TEXT    NOT NULL,
    table_name TEXT    NOT NULL,
    source     TEXT    NOT NULL,
    on_error   TEXT    NOT NULL CHECK (on_error IN ('reject', 'dlq')),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
CREATE INDEX streams_by_table ON streams (table_id);
