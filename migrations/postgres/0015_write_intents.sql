-- Commits under way, by tenant: a writer records its intent (and reads the tenant's status in
-- the same transaction, holding the tenant row) before it commits to a table, and removes it
-- after. A placement migration marks the tenant migrating, then waits until no live intent is
-- left before its copy lists a single object: a commit either saw the fence and stopped, or
-- finished before the copy began. An intent of a writer that died expires.
CREATE TABLE write_intents (
    id          UUID NOT NULL PRIMARY KEY,
    tenant_id   TEXT COLLATE "C" NOT NULL,
    writer      TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX write_intents_tenant ON write_intents (tenant_id, expires_at);
