-- AI-Pal domain schema 2: FFE goals and their atomic blocks (15-120 minute
-- indivisible units of work).

CREATE TABLE ffe_goals (
    goal_id          text        PRIMARY KEY,
    user_id          text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    title            text,
    description      text        NOT NULL,
    importance       double precision,
    complexity_level text        NOT NULL DEFAULT 'medium',
    estimated_value  double precision,
    status           text        NOT NULL DEFAULT 'active',
    completed_at     timestamptz,
    deadline         timestamptz,
    available_hours  double precision,
    planned_at       timestamptz,
    plan_task_id     uuid
);
CREATE INDEX ffe_goals_user_idx ON ffe_goals (user_id, status);

CREATE TABLE atomic_blocks (
    block_id          text        PRIMARY KEY,
    goal_id           text        NOT NULL REFERENCES ffe_goals (goal_id) ON DELETE CASCADE,
    user_id           text        NOT NULL,
    description       text        NOT NULL,
    block_index       integer     NOT NULL,
    size              text,
    kind              text        NOT NULL DEFAULT 'work',
    estimated_minutes integer     CHECK (estimated_minutes BETWEEN 15 AND 120),
    completed         boolean     NOT NULL DEFAULT false,
    completed_at      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (goal_id, block_index)
);
CREATE INDEX atomic_blocks_user_idx ON atomic_blocks (user_id, completed);
