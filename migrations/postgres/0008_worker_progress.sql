-- What a running worker reports with its heartbeat (lag, files done), and the options a
-- maintenance run was requested with (it may execute in another process).
ALTER TABLE workers ADD COLUMN progress TEXT;
ALTER TABLE maintenance_runs ADD COLUMN options TEXT;
