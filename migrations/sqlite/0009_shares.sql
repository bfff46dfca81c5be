-- Delta Sharing: shares (named sets of a tenant's tables) and their recipients, whose bearer
-- tokens are kept only as SHA-256 hashes.
CREATE TABLE shares (
    id         TEXT    NOT NULL UNIQUE,
    tenant_id  TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    tables     TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
CREATE TABLE share_recipients (
    id         TEXT    NOT NULL PRIMARY KEY,
    share_id   TEXT    NOT NULL,
    tenant_id  TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    token_hash TEXT    NOT NULL UNIQUE,
    created_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX share_recipients_by_share ON share_recipients (share_id, id);
CREATE UNIQUE INDEX share_recipients_live_name ON share_recipients (share_id, name) WHERE revoked_at IS NULL;
