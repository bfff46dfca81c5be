-- Idempotency keys of HTTP pushes (`Idempotency-Key`), per tenant and stream. A row is held by
-- one attempt (`attempt`, of the process `owner`) while its outcome is unknown (`pending`) and
-- keeps the outcome once known (`done`) until `expires_at`. Before its commit starts, the
-- attempt records the Delta application transaction (`app_id`, `seq`) that will mark it, so a
-- retry after a crash can read from the table itself whether it landed.
CREATE TABLE push_keys (
    tenant_id    TEXT COLLATE "C" NOT NULL,
    stream_id    UUID NOT NULL,
    idem_key     TEXT COLLATE "C" NOT NULL,
    fingerprint  TEXT NOT NULL,
    attempt      UUID NOT NULL,
    owner        TEXT NOT NULL,
    state        TEXT NOT NULL,
    app_id       TEXT,
    seq          BIGINT,
    outcome      TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, stream_id, idem_key)
);
CREATE INDEX push_keys_attempt ON push_keys (attempt);
CREATE INDEX push_keys_expiry ON push_keys (expires_at);
