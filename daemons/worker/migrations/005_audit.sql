-- AI-Pal domain schema 5: the audit log and its archive. archive_audit_logs
-- moves rows from audit_logs to audit_logs_archive in batches, each batch one
-- statement (DELETE ... RETURNING feeding the INSERT), so a row is never
-- deleted without being archived and a crash loses nothing: the next run
-- continues where the last committed batch ended.

CREATE TABLE audit_logs (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    actor      text,
    action     text        NOT NULL,
    entity     text,
    entity_id  text,
    details    jsonb
);
CREATE INDEX audit_logs_created_idx ON audit_logs (created_at, id);

CREATE TABLE audit_logs_archive (
    id               bigint      PRIMARY KEY,
    created_at       timestamptz NOT NULL,
    actor            text,
    action           text        NOT NULL,
    entity           text,
    entity_id        text,
    details          jsonb,
    archived_at      timestamptz NOT NULL DEFAULT now(),
    archive_task_id  uuid,
    archive_location text
);
CREATE INDEX audit_logs_archive_created_idx ON audit_logs_archive (created_at);
