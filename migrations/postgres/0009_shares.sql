-- Delta Sharing: shares (named sets of a tenant's tables) and their recipients, whose bearer
-- tokens are kept only as SHA-256 hashes.
CREATE TABLE shares (
    id         UUID    NOT NULL UNIQUE,
    tenant_id  TEXT    COLLATE "C" NOT NULL,
    name       TEXT    COLLATE "C" NOT NULL,
    tables     TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
CREATE TABLE share_recipients (
    id         UUID    NOT NULL PRIMARY KEY,
    share_id   UUID    NOT NULL,
    tenant_id  TEXT    COLLATE "C" NOT NULL,
    name       TEXT    COLLATE "C" NOT NULL,
    token_hash TEXT    NOT NULL UNIQUE,
    created_by TEXT    NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX share_recipients_by_share ON share_recipients (share_id, id);
CREATE UNIQUE INDEX share_recipients_live_name ON share_recipients (share_id, name) WHERE revoked_at IS NULL;
