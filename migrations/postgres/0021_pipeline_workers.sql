-- Pipeline runs are executed by `pipeline` workers: the kind joins the workers' check.
ALTER TABLE workers DROP CONSTRAINT workers_kind_check;
ALTER TABLE workers ADD CONSTRAINT workers_kind_check
    CHECK (kind IN ('ingest', 'compact', 'retention', 'migrate', 'purge', 'pipeline'));
