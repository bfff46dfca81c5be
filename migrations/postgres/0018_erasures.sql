-- Data subject erasures. Subjects are kept only as salted hashes (`subject_hashes`); the raw
-- identifiers (`pending_subjects`) stay only until every table's delete is done, then are
-- cleared. `tables` holds each table's progress (delete, vacuum and log versions) as JSON.
CREATE TABLE erasures (
    id               UUID    NOT NULL PRIMARY KEY,
    tenant_id        TEXT    COLLATE "C" NOT NULL,
    status           TEXT    NOT NULL,
    reason           TEXT    NOT NULL,
    requested_by     TEXT    NOT NULL,
    salt             TEXT    NOT NULL,
    subject_hashes   TEXT    NOT NULL,
    pending_subjects TEXT,
    tables           TEXT    NOT NULL,
    not_covered      TEXT    NOT NULL,
    error            TEXT,
    deadline         TIMESTAMPTZ NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    completed_at     TIMESTAMPTZ
);
CREATE INDEX erasures_by_tenant ON erasures (tenant_id, id);
CREATE INDEX erasures_unfinished ON erasures (status) WHERE status NOT IN ('completed', 'failed');
-- The oldest version of a table that may still be read through the plane (time travel, Delta
-- Sharing): the version of the last erasure's delete. Earlier versions still hold erased rows
-- until vacuum and log cleanup remove them, and are refused meanwhile.
CREATE TABLE erasure_floors (
    table_id   UUID    NOT NULL PRIMARY KEY,
    tenant_id  TEXT    COLLATE "C" NOT NULL,
    version    BIGINT  NOT NULL,
    erasure_id UUID    NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
