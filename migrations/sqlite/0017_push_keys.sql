-- Idempotency keys of HTTP pushes (`Idempotency-Key`), per tenant and stream. A row is held by
-- one attempt (`attempt`, of the process `owner`) while its outcome is unknown (`pending`) and
-- keeps the outcome once known (`done`) until `expires_at`. Before its commit starts, the
-- attempt records the Delta application transaction (`app_id`, `seq`) that will mark it, so a
-- retry after a crash can read from the table itself whether it landed.
CREATE TABLE push_keys (
    tenant_id    TEXT NOT NULL,
    stream_id    TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    attempt      TEXT NOT NULL,
    owner        TEXT NOT NULL,
    state        TEXT NOT NULL,
    app_id       TEXT,
    seq          INTEGER,
    outcome      TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, stream_id, idem_key)
);
CREATE INDEX push_keys_attempt ON push_keys (attempt);
CREATE INDEX push_keys_expiry ON push_keys (expires_at);
