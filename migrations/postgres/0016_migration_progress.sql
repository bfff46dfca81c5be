-- How far a placement migration is: when its write fence drained (no commit of the tenant
-- under way any more) and how many of the objects it lists it has copied and verified.
CREATE TABLE migration_progress (
    tenant_id      TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    drained_at     TIMESTAMPTZ,
    objects_total  BIGINT NOT NULL DEFAULT 0,
    objects_copied BIGINT NOT NULL DEFAULT 0,
    updated_at     TIMESTAMPTZ NOT NULL
);
