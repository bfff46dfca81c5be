-- How far a placement migration is: when its write fence drained (no commit of the tenant
-- under way any more) and how many of the objects it lists it has copied and verified.
CREATE TABLE migration_progress (
    tenant_id      TEXT NOT NULL PRIMARY KEY,
    drained_at     INTEGER,
    objects_total  INTEGER NOT NULL DEFAULT 0,
    objects_copied INTEGER NOT NULL DEFAULT 0,
    updated_at     INTEGER NOT NULL
);
