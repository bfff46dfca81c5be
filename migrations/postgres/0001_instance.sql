-- The installation's identity: one row, written by the first process that starts.
CREATE TABLE lakeplane_instance (
    singleton   SMALLINT    PRIMARY KEY CHECK (singleton = 1),
    instance_id UUID        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
