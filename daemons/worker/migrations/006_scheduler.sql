-- AI-Pal domain schema 6: the periodic scheduler. One row holds the leader
-- lease (whoever holds an unexpired lease is the only replica that fires);
-- one row per schedule entry records its last firing, updated in the same
-- transaction that enqueues the firing's task, so a firing is enqueued once.

CREATE TABLE aipal_scheduler_lease (
    name        text        PRIMARY KEY,
    holder      text        NOT NULL,
    fence       bigint      NOT NULL DEFAULT 1,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

CREATE TABLE aipal_schedule_state (
    name         text        PRIMARY KEY,
    last_fire_at timestamptz NOT NULL,
    last_task_id uuid,
    fired_count  bigint      NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
