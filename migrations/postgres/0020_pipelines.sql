-- Pipelines: incremental transformations from a bronze table to a silver one, or silver to
-- gold. `spec` is the validated definition (JSON); the progress that matters for exactly-once
-- (the last source version committed) lives in the target table's Delta log, as a `txn` of the
-- pipeline, not here.
CREATE TABLE pipelines (
    id              UUID    NOT NULL PRIMARY KEY,
    tenant_id       TEXT    COLLATE "C" NOT NULL,
    name            TEXT    COLLATE "C" NOT NULL,
    spec            TEXT    NOT NULL,
    source_table_id UUID    NOT NULL,
    target_table_id UUID    NOT NULL,
    state           TEXT    NOT NULL,
    failure         TEXT,
    created_by      TEXT    NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, name)
);
-- Runs, with what each read and wrote. `expectations` maps each expectation's name to its
-- violation count (JSON).
CREATE TABLE pipeline_runs (
    id               UUID    NOT NULL PRIMARY KEY,
    tenant_id        TEXT    COLLATE "C" NOT NULL,
    pipeline_id      UUID    NOT NULL,
    status           TEXT    NOT NULL,
    full_refresh     BIGINT  NOT NULL,
    requested_by     TEXT    NOT NULL,
    source_from      BIGINT,
    source_to        BIGINT,
    rows_in          BIGINT  NOT NULL,
    rows_written     BIGINT  NOT NULL,
    rows_dropped     BIGINT  NOT NULL,
    rows_quarantined BIGINT  NOT NULL,
    expectations     TEXT    NOT NULL,
    target_version   BIGINT,
    error            TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    -- While running: renewed by the process that runs it; a run whose lease lapsed lost its
    -- process (a crash) and is recorded as failed by the leader's pass.
    lease_expires_at TIMESTAMPTZ
);
CREATE INDEX pipeline_runs_by_pipeline ON pipeline_runs (pipeline_id, id);
CREATE INDEX pipeline_runs_unfinished ON pipeline_runs (status) WHERE status IN ('queued', 'running');
