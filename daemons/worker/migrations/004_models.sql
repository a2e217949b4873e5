-- AI-Pal domain schema 4: labelled texts that the built-in trainer learns
-- from, and the record of saved models, evaluations and benchmarks. The
-- weights themselves are files in the artifacts directory.

CREATE TABLE ml_samples (
    sample_id  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    text        NOT NULL,
    text       text        NOT NULL,
    label      text        NOT NULL,
    split      text        NOT NULL DEFAULT 'train' CHECK (split IN ('train', 'test')),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ml_samples_user_idx ON ml_samples (user_id, split, sample_id);

CREATE TABLE ml_models (
    model_id   bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_name text        NOT NULL,
    user_id    text,
    task_id    uuid        UNIQUE,
    path       text        NOT NULL,
    trainer    text        NOT NULL,
    metrics    jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ml_models_name_idx ON ml_models (model_name, created_at DESC);

CREATE TABLE ml_evaluations (
    task_id    uuid        PRIMARY KEY,
    model_name text        NOT NULL,
    user_id    text,
    metrics    jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ml_benchmarks (
    task_id    uuid        PRIMARY KEY,
    model_name text        NOT NULL,
    results    jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
