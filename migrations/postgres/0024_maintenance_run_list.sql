-- The table's runs, newest first: what the maintenance run list pages through.
CREATE INDEX maintenance_runs_by_table_id ON maintenance_runs (table_id, id);
