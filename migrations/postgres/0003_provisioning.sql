-- Storage provisioning: saga steps, zone policies, buckets.
ALTER TABLE tenants ADD COLUMN status_reason TEXT;

CREATE TABLE provisioning_steps (
    tenant_id TEXT        NOT NULL,
    step      TEXT        NOT NULL,
    done_at   TIMESTAMPTZ NOT NULL,
    detail    TEXT        NOT NULL,
    PRIMARY KEY (tenant_id, step)
);

-- Only tenant-specific policies are stored; zones without a row use the platform default.
CREATE TABLE zone_policies (
    tenant_id      TEXT        NOT NULL,
    zone           TEXT        NOT NULL CHECK (zone IN ('bronze', 'silver', 'gold')),
    retention_days INTEGER     NOT NULL,
    transitions    TEXT        NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, zone)
);

CREATE TABLE buckets (
    name               TEXT        PRIMARY KEY,
    kind               TEXT        NOT NULL CHECK (kind IN ('dedicated', 'shared')),
    shard              INTEGER     UNIQUE,
    tenant_id          TEXT,
    desired_lifecycle  TEXT ,
    applied_lifecycle  TEXT ,
    lifecycle_enforced BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at         TIMESTAMPTZ NOT NULL
);
