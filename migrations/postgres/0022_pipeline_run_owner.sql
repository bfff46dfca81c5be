-- A running pipeline run's lease names the attempt holding it: only that attempt renews it and
-- records the run's end, and another takes the run only once the lease lapsed.
ALTER TABLE pipeline_runs ADD COLUMN lease_owner TEXT;
