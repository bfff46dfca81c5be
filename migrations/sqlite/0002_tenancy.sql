-- Tenants, issued API tokens and the audit log. Timestamps are integer microseconds since
-- the Unix epoch, so they compare and sort numerically.
CREATE TABLE tenants (
    id                          TEXT    PRIMARY KEY,
    display_name                TEXT    NOT NULL,
    tier                        TEXT    NOT NULL CHECK (tier IN ('enterprise', 'standard')),
    isolation                   TEXT    NOT NULL CHECK (isolation IN ('auto', 'dedicated', 'shared')),
    status                      TEXT    NOT NULL,
    placement_kind              TEXT    NOT NULL CHECK (placement_kind IN ('dedicated', 'shared')),
    placement_shard             INTEGER,
    placement_reason            TEXT    NOT NULL,
    quota_max_tables            INTEGER NOT NULL,
    quota_max_streams           INTEGER NOT NULL,
    quota_max_storage_gb        INTEGER NOT NULL,
    quota_ingest_events_per_sec INTEGER NOT NULL,
    volume_30d_bytes            INTEGER NOT NULL DEFAULT 0,
    created_at                  INTEGER NOT NULL,
    updated_at                  INTEGER NOT NULL
);

-- Rows outlive their tenant (revoked), so a re-created tenant id never revives old tokens.
CREATE TABLE api_tokens (
    id          TEXT    PRIMARY KEY,
    tenant_id   TEXT,
    subject     TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    issued_by   TEXT    NOT NULL,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX api_tokens_tenant ON api_tokens (tenant_id, id);
CREATE INDEX api_tokens_revoked ON api_tokens (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE audit_events (
    id          TEXT    PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    role        TEXT,
    tenant_id   TEXT,
    action      TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    request_id  TEXT,
    source      TEXT
);
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, id);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
