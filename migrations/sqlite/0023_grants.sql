-- Table grants: a privilege on the tenant, a zone or a table, held by a user, a group or a role.
-- `securable` is the path form of the API: `tenant`, `zones/{zone}` or `tables/{zone}/{name}`;
-- `principal` is `user:NAME`, `group:NAME` or `role:NAME`.
CREATE TABLE grants (
    tenant_id   TEXT    NOT NULL,
    securable   TEXT    NOT NULL,
    principal   TEXT    NOT NULL,
    privilege   TEXT    NOT NULL,
    granted_by  TEXT    NOT NULL,
    granted_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, securable, principal, privilege)
);
-- Bumped in the transaction of every change, so each replica notices one by reading one row.
CREATE TABLE grants_version (
    id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    version BIGINT  NOT NULL
);
INSERT INTO grants_version (id, version) VALUES (1, 0);
-- What every role could do before grants existed, written as grants to roles, so nothing
-- changes on upgrade until an admin narrows it (the same list as `grants::role_defaults`).
INSERT INTO grants (tenant_id, securable, principal, privilege, granted_by, granted_at)
SELECT t.id, d.securable, d.principal, d.privilege, 'migration 0023',
       CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
FROM tenants t CROSS JOIN (
    SELECT 'tenant' AS securable, 'role:engineer' AS principal, 'USE CATALOG' AS privilege
    UNION ALL SELECT 'tenant', 'role:scientist', 'USE CATALOG'
    UNION ALL SELECT 'tenant', 'role:analyst', 'USE CATALOG'
    UNION ALL SELECT 'tenant', 'role:viewer', 'USE CATALOG'
    UNION ALL SELECT 'zones/bronze', 'role:engineer', 'USE SCHEMA'
    UNION ALL SELECT 'zones/bronze', 'role:engineer', 'SELECT'
    UNION ALL SELECT 'zones/bronze', 'role:engineer', 'MODIFY'
    UNION ALL SELECT 'zones/silver', 'role:engineer', 'USE SCHEMA'
    UNION ALL SELECT 'zones/silver', 'role:engineer', 'SELECT'
    UNION ALL SELECT 'zones/silver', 'role:engineer', 'MODIFY'
    UNION ALL SELECT 'zones/gold', 'role:engineer', 'USE SCHEMA'
    UNION ALL SELECT 'zones/gold', 'role:engineer', 'SELECT'
    UNION ALL SELECT 'zones/gold', 'role:engineer', 'MODIFY'
    UNION ALL SELECT 'zones/silver', 'role:scientist', 'USE SCHEMA'
    UNION ALL SELECT 'zones/silver', 'role:scientist', 'SELECT'
    UNION ALL SELECT 'zones/gold', 'role:scientist', 'USE SCHEMA'
    UNION ALL SELECT 'zones/gold', 'role:scientist', 'SELECT'
    UNION ALL SELECT 'zones/silver', 'role:analyst', 'USE SCHEMA'
    UNION ALL SELECT 'zones/silver', 'role:analyst', 'SELECT'
    UNION ALL SELECT 'zones/gold', 'role:analyst', 'USE SCHEMA'
    UNION ALL SELECT 'zones/gold', 'role:analyst', 'SELECT'
    UNION ALL SELECT 'zones/gold', 'role:viewer', 'USE SCHEMA'
    UNION ALL SELECT 'zones/gold', 'role:viewer', 'SELECT'
) d;
-- A pipeline runs with its owner's grants, checked again at each run. Pipelines made before
-- grants were made by engineers or tenant-admins; they run as an engineer of their creator.
ALTER TABLE pipelines ADD COLUMN owner_role TEXT NOT NULL DEFAULT 'engineer';
ALTER TABLE pipelines ADD COLUMN owner_groups TEXT NOT NULL DEFAULT '[]';
-- The groups a token was issued with (JSON array), shown in token lists.
ALTER TABLE api_tokens ADD COLUMN groups TEXT NOT NULL DEFAULT '[]';
-- What changed, for changes whose target alone does not say (a grant change's before and after).
ALTER TABLE audit_events ADD COLUMN details TEXT;
-- A tenant's own cap on the lifetime of credentials vended for it (STS sessions), seconds.
ALTER TABLE tenants ADD COLUMN credential_max_ttl_secs BIGINT NOT NULL DEFAULT 3600;
