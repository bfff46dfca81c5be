-- A deleted tenant's id stays reserved for a while: tokens, STS sessions and external tokens
-- that name it must all have expired before another tenant may take the id. Audit events and
-- token records of the predecessor stay (the audit log is append-only) but are hidden from
-- the id's next tenant, which sees only what happened after the last deletion.
CREATE TABLE tenant_tombstones (
    id          TEXT NOT NULL PRIMARY KEY,
    deleted_at  INTEGER NOT NULL,
    reusable_at INTEGER NOT NULL
);
