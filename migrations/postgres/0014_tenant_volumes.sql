-- What each tenant wrote per UTC day, read from its tables' Delta logs: new data from the
-- plane's ingestion and from outside writers (the volume that drives placement), and data
-- rewritten by maintenance (counted apart). Rows older than 90 days are dropped.
CREATE TABLE tenant_volume_daily (
    tenant_id       TEXT   COLLATE "C" NOT NULL,
    day             TEXT   COLLATE "C" NOT NULL,
    ingest_bytes    BIGINT NOT NULL DEFAULT 0,
    outside_bytes   BIGINT NOT NULL DEFAULT 0,
    rewritten_bytes BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
);

-- The last Delta version of each table whose commits are counted above. It moves in the same
-- transaction as the counts, so a crash counts a commit either once or not yet.
CREATE TABLE volume_watermarks (
    table_id  UUID   NOT NULL PRIMARY KEY,
    tenant_id TEXT   COLLATE "C" NOT NULL,
    version   BIGINT NOT NULL
);
CREATE INDEX volume_watermarks_tenant ON volume_watermarks (tenant_id);
