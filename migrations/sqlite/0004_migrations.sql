-- Placement migrations in flight, so a crash resumes them and old keys are cleaned up later.
CREATE TABLE tenant_migrations (
    tenant_id      TEXT    PRIMARY KEY,
    from_kind      TEXT    NOT NULL,
    from_shard     INTEGER,
    to_kind        TEXT    NOT NULL,
    to_shard       INTEGER,
    to_reason      TEXT    NOT NULL,
    phase          TEXT    NOT NULL CHECK (phase IN ('copying', 'cleanup')),
    cleanup_after  INTEGER,
    started_at     INTEGER NOT NULL
);
