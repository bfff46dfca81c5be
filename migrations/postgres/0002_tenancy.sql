-- Tenants, issued API tokens and the audit log.
CREATE TABLE tenants (
    id                          TEXT        PRIMARY KEY,
    display_name                TEXT        NOT NULL,
    tier                        TEXT        NOT NULL CHECK (tier IN ('enterprise', 'standard')),
    isolation                   TEXT        NOT NULL CHECK (isolation IN ('auto', 'dedicated', 'shared')),
    status                      TEXT        NOT NULL,
    placement_kind              TEXT        NOT NULL CHECK (placement_kind IN ('dedicated', 'shared')),
    placement_shard             INTEGER,
    placement_reason            TEXT        NOT NULL,
    quota_max_tables            BIGINT      NOT NULL,
    quota_max_streams           BIGINT      NOT NULL,
    quota_max_storage_gb        BIGINT      NOT NULL,
    quota_ingest_events_per_sec BIGINT      NOT NULL,
    volume_30d_bytes            BIGINT      NOT NULL DEFAULT 0,
    created_at                  TIMESTAMPTZ NOT NULL,
    updated_at                  TIMESTAMPTZ NOT NULL
);

-- Rows outlive their tenant (revoked), so a re-created tenant id never revives old tokens.
CREATE TABLE api_tokens (
    id          UUID        PRIMARY KEY,
    tenant_id   TEXT,
    subject     TEXT        NOT NULL,
    role        TEXT        NOT NULL,
    issued_by   TEXT        NOT NULL,
    issued_at   TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX api_tokens_tenant ON api_tokens (tenant_id, id);
CREATE INDEX api_tokens_revoked ON api_tokens (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE audit_events (
    id          UUID        PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    actor       TEXT        NOT NULL,
    role        TEXT,
    tenant_id   TEXT,
    action      TEXT        NOT NULL,
    target      TEXT        NOT NULL,
    outcome     TEXT        NOT NULL,
    request_id  TEXT,
    source      TEXT
);
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, id);

CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
