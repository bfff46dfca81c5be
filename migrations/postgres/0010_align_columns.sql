-- Aligns the columns of migrations 0002-0004 with the later ones, so one set of queries and
-- row mappings serves both backends: integers are BIGINT (Rust i64, as SQLite's INTEGER),
-- and keys that are compared or ordered use the C collation (bytewise, as SQLite's BINARY).
-- Existing rows convert in place; every value fits, since INTEGER widens to BIGINT.
ALTER TABLE tenants
    ALTER COLUMN id              TYPE TEXT COLLATE "C",
    ALTER COLUMN placement_shard TYPE BIGINT;

ALTER TABLE api_tokens
    ALTER COLUMN tenant_id TYPE TEXT COLLATE "C";

ALTER TABLE audit_events
    ALTER COLUMN tenant_id TYPE TEXT COLLATE "C",
    ALTER COLUMN action    TYPE TEXT COLLATE "C";

ALTER TABLE provisioning_steps
    ALTER COLUMN tenant_id TYPE TEXT COLLATE "C",
    ALTER COLUMN step      TYPE TEXT COLLATE "C";

ALTER TABLE zone_policies
    ALTER COLUMN tenant_id      TYPE TEXT COLLATE "C",
    ALTER COLUMN zone           TYPE TEXT COLLATE "C",
    ALTER COLUMN retention_days TYPE BIGINT;

ALTER TABLE buckets
    ALTER COLUMN name      TYPE TEXT COLLATE "C",
    ALTER COLUMN tenant_id TYPE TEXT COLLATE "C",
    ALTER COLUMN shard     TYPE BIGINT;

ALTER TABLE tenant_migrations
    ALTER COLUMN tenant_id  TYPE TEXT COLLATE "C",
    ALTER COLUMN from_shard TYPE BIGINT,
    ALTER COLUMN to_shard   TYPE BIGINT;

-- Zones of the later tables, ordered by name in listings.
ALTER TABLE lake_tables
    ALTER COLUMN zone TYPE TEXT COLLATE "C";
