-- The installation's identity: one row, written by the first process that starts.
CREATE TABLE lakeplane_instance (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    instance_id TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
);
