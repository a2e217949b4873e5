-- AI-Pal domain schema 1: ARI (agency retention index) snapshots, the
-- aggregates computed from them and the alerts raised on their trends.
-- Applied by aipal-worker at start (daemons/worker/domain_migrate.c), in one
-- transaction, recorded in aipal_domain_schema.

CREATE TABLE ari_snapshots (
    snapshot_id           text        PRIMARY KEY DEFAULT gen_random_uuid()::text,
    user_id               text        NOT NULL,
    "timestamp"           timestamptz NOT NULL DEFAULT now(),
    decision_quality      double precision,
    skill_development     double precision,
    ai_reliance           double precision,
    bottleneck_resolution double precision,
    user_confidence       double precision,
    engagement            double precision,
    autonomy_perception   double precision,
    autonomy_retention    double precision,
    delta_agency          double precision,
    task_description      text,
    task_complexity       text
);
CREATE INDEX ari_snapshots_user_time_idx ON ari_snapshots (user_id, "timestamp");
CREATE INDEX ari_snapshots_time_idx ON ari_snapshots ("timestamp");

-- One row per user and metric per aggregate_ari_snapshots run (keyed by the
-- task id, so a task that runs again overwrites its own rows).
CREATE TABLE ari_aggregates (
    task_id      uuid        NOT NULL,
    user_id      text        NOT NULL,
    metric       text        NOT NULL,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    count        integer     NOT NULL,
    mean         double precision,
    min          double precision,
    max          double precision,
    stddev       double precision,
    latest       double precision,
    latest_at    timestamptz,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, user_id, metric)
);
CREATE INDEX ari_aggregates_user_idx ON ari_aggregates (user_id, metric, window_end DESC);

-- Declines found by analyze_ari_trends.
CREATE TABLE ari_alerts (
    alert_id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id           uuid        NOT NULL,
    user_id           text        NOT NULL,
    metric            text        NOT NULL,
    severity          text        NOT NULL CHECK (severity IN ('warning', 'critical')),
    change_percent    double precision NOT NULL,
    slope_per_day     double precision,
    z_score           double precision,
    first_value       double precision,
    latest_value      double precision,
    threshold_percent double precision,
    lookback_days     integer,
    message           text        NOT NULL,
    acknowledged      boolean     NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (task_id, user_id, metric)
);
CREATE INDEX ari_alerts_user_idx ON ari_alerts (user_id, created_at DESC);
