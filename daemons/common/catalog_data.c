/* The catalog itself: the fourteen task types of AI-Pal with the original's
 * parameter names and defaults, plus the diagnostics types echo, sleep and
 * fail. Pure data; the functions over it live in the other catalog_*.c. */
#include <string.h>

#include "catalog.h"

#define RANGE(lo, hi) .has_min = true, .has_max = true, .min = (lo), .max = (hi)
#define LEN(lo, hi)   .min_len = (lo), .max_len = (hi)
#define ITEMS(lo, hi) .min_items = (lo), .max_items = (hi)
#define FIELDS(arr)   .fields = (arr), .nfields = sizeof(arr) / sizeof((arr)[0])
#define SECONDS(s)    ((int64_t)(s)*1000)

/* Retries, backoff base (s), soft and hard limits (s); the backoff doubles up
 * to an hour with 10% jitter, results stay cached for an hour. */
#define POLICY(retries, backoff_s, soft_s, hard_s)                                                 \
    .max_retries = (retries), .backoff_base_ms = SECONDS(backoff_s),                               \
    .backoff_cap_ms = SECONDS(3600), .backoff_jitter_percent = 10,                                 \
    .soft_limit_ms = SECONDS(soft_s), .hard_limit_ms = SECONDS(hard_s),                            \
    .result_ttl_ms = SECONDS(3600)
#define DEFAULT_POLICY POLICY(3, 60, 1500, 1800)

static const char *const queues[] = {"default",      "ari_analysis",   "ffe_planning",
                                     "edm_analysis", "model_training", "maintenance"};

static const char *const complexity_levels[] = {"simple", "medium", "complex", NULL};
static const char *const severities[] = {"low", "medium", "high", "critical", NULL};
static const char *const optimization_levels[] = {"light", "standard", "heavy", NULL};

#define USER_ID(req, what)                                                                         \
    {                                                                                              \
        .name = "user_id", .kind = CATALOG_STRING, .required = (req), .nullable = !(req),          \
        LEN(1, 128), .description = (what)                                                         \
    }

/* ------------------------------------------------------------------ ARI */

static const catalog_field aggregate_ari_fields[] = {
    USER_ID(false, "User whose snapshots to aggregate; absent or null: all users"),
    {.name = "time_window_hours",
     .kind = CATALOG_INTEGER,
     .default_json = "24",
     RANGE(1, 8760),
     .description = "Aggregate the snapshots of this many past hours"},
};

static const catalog_field analyze_ari_fields[] = {
    USER_ID(true, "User whose ARI trends to analyse"),
    {.name = "lookback_days",
     .kind = CATALOG_INTEGER,
     .default_json = "30",
     RANGE(1, 3650),
     .description = "Days of snapshots to analyse"},
    {.name = "threshold_percent",
     .kind = CATALOG_NUMBER,
     .default_json = "10.0",
     RANGE(0, 100),
     .description = "Alert when a metric declines by more than this percentage "
                    "(warning above -20%, critical at or below)"},
};

/* ------------------------------------------------------------------ FFE */

static const catalog_field plan_ffe_fields[] = {
    {.name = "goal_id",
     .kind = CATALOG_STRING,
     .required = true,
     LEN(1, 128),
     .description = "The goal to plan"},
    USER_ID(true, "Owner of the goal"),
    {.name = "goal_description",
     .kind = CATALOG_STRING,
     .required = true,
     LEN(1, 5000),
     .description = "The goal in words; the plan's blocks are derived from it"},
    {.name = "complexity_level",
     .kind = CATALOG_ENUM,
     .default_json = "\"medium\"",
     .enum_values = complexity_levels,
     .description = "simple, medium or complex: sizes the plan (3 to 7 blocks)"},
    {.name = "available_hours",
     .kind = CATALOG_NUMBER,
     RANGE(0.25, 1000),
     .description = "Hours available for the goal; absent: 8, 16 or 24 by complexity"},
};

static const catalog_field track_ffe_fields[] = {
    {.name = "goal_id",
     .kind = CATALOG_STRING,
     .required = true,
     LEN(1, 128),
     .description = "The goal to track"},
    USER_ID(true, "Owner of the goal"),
};

/* ------------------------------------------------------------------ EDM */

static const catalog_field edm_batch_fields[] = {
    USER_ID(false, "User whose epistemic debts to analyse; absent or null: all users"),
    {.name = "time_window_days",
     .kind = CATALOG_INTEGER,
     .default_json = "7",
     RANGE(1, 3650),
     .description = "Days of recorded debts to analyse"},
    {.name = "min_severity",
     .kind = CATALOG_ENUM,
     .default_json = "\"low\"",
     .enum_values = severities,
     .description = "Lowest severity to include: low, medium, high or critical"},
    {.name = "texts",
     .kind = CATALOG_STRING_ARRAY,
     ITEMS(1, 1000),
     LEN(1, 20000),
     .description = "AI responses to scan for new debts, besides the recorded ones"},
};

static const catalog_field edm_resolutions_fields[] = {
    USER_ID(true, "User whose resolutions to track"),
    {.name = "lookback_days",
     .kind = CATALOG_INTEGER,
     .default_json = "30",
     RANGE(1, 3650),
     .description = "Days of resolutions to consider"},
};

static const catalog_field edm_misinfo_fields[] = {
    USER_ID(true, "User whose interactions to check"),
    {.name = "interaction_ids",
     .kind = CATALOG_STRING_ARRAY,
     .nullable = true,
     ITEMS(0, 1000),
     LEN(1, 128),
     .description = "Interactions to check; absent or null: the recent ones"},
};

/* --------------------------------------------------------------- models */

#define MODEL_NAME_FIELD                                                                           \
    {                                                                                              \
        .name = "model_name", .kind = CATALOG_STRING, .required = true, LEN(1, 128),               \
        .description = "The model, e.g. phi-2 or tinyllama"                                        \
    }

static const catalog_field finetune_fields[] = {
    USER_ID(true, "User whose interactions train the model"),
    MODEL_NAME_FIELD,
    {.name = "training_samples",
     .kind = CATALOG_INTEGER,
     .default_json = "100",
     RANGE(1, 1000000),
     .description = "Number of training samples"},
    {.name = "learning_rate",
     .kind = CATALOG_NUMBER,
     .default_json = "0.0001",
     RANGE(1e-7, 1),
     .description = "Learning rate"},
};

static const catalog_field evaluate_fields[] = {
    USER_ID(true, "User whose model to evaluate"),
    MODEL_NAME_FIELD,
    {.name = "test_samples",
     .kind = CATALOG_INTEGER,
     .default_json = "50",
     RANGE(1, 1000000),
     .description = "Number of test samples"},
};

static const catalog_field benchmark_fields[] = {
    MODEL_NAME_FIELD,
    {.name = "scenarios",
     .kind = CATALOG_STRING_ARRAY,
     .nullable = true,
     .default_json = "[\"reasoning\",\"coding\",\"writing\",\"analysis\"]",
     ITEMS(1, 20),
     LEN(1, 64),
     .description = "Scenarios to benchmark; null: all four"},
};

/* ---------------------------------------------------------- maintenance */

static const catalog_field archive_fields[] = {
    {.name = "days_to_keep",
     .kind = CATALOG_INTEGER,
     .default_json = "90",
     RANGE(1, 36500),
     .description = "Audit rows younger than this stay in the primary table"},
    {.name = "archive_location",
     .kind = CATALOG_STRING,
     .default_json = "\"s3://ai-pal-backups/audit-logs\"",
     LEN(1, 1024),
     .description = "Where archived rows go"},
};

static const catalog_field maintain_db_fields[] = {
    {.name = "optimization_level",
     .kind = CATALOG_ENUM,
     .default_json = "\"standard\"",
     .enum_values = optimization_levels,
     .description = "light (analyze), standard (analyze, vacuum, reindex) or heavy "
                    "(standard and more)"},
};

static const catalog_field cleanup_cache_fields[] = {
    {.name = "max_age_hours",
     .kind = CATALOG_INTEGER,
     .default_json = "24",
     RANGE(0, 87600),
     .description = "Entries older than this are removed unless cleanup_expired_only"},
    {.name = "cleanup_expired_only",
     .kind = CATALOG_BOOLEAN,
     .default_json = "true",
     .description = "Remove only expired entries"},
};

#define RETENTION_DAYS(kind_name, what)                                                            \
    {                                                                                              \
        .name = (kind_name), .kind = CATALOG_INTEGER, RANGE(1, 36500), .description = (what)       \
    }

static const catalog_field retention_policy_fields[] = {
    RETENTION_DAYS("ari_snapshots", "Days to keep ARI snapshots"),
    RETENTION_DAYS("audit_logs", "Days to keep audit log rows"),
    RETENTION_DAYS("failed_tasks", "Days to keep failed tasks"),
    RETENTION_DAYS("completed_tasks", "Days to keep completed tasks"),
    RETENTION_DAYS("temp_files", "Days to keep temporary files"),
};

static const catalog_field retention_fields[] = {
    {.name = "policy",
     .kind = CATALOG_OBJECT,
     .nullable = true,
     .default_json = "{\"ari_snapshots\":365,\"audit_logs\":90,\"failed_tasks\":30,"
                     "\"completed_tasks\":14,\"temp_files\":7}",
     FIELDS(retention_policy_fields),
     .description = "Days to keep per kind of data; only the kinds given are enforced. "
                    "Absent, null or empty: the default policy"},
};

/* ---------------------------------------------------------- diagnostics */

static const catalog_field echo_fields[] = {
    {.name = "message",
     .kind = CATALOG_STRING,
     LEN(0, 10000),
     .description = "Returned as the result"},
    {.name = "data", .kind = CATALOG_OBJECT, .description = "Any object, returned as the result"},
};

static const catalog_field sleep_fields[] = {
    {.name = "ms",
     .kind = CATALOG_INTEGER,
     .default_json = "1000",
     RANGE(0, 3600000),
     .description = "How long to sleep, in milliseconds"},
};

static const catalog_field fail_fields[] = {
    {.name = "message",
     .kind = CATALOG_STRING,
     .default_json = "\"requested failure\"",
     LEN(1, 1000),
     .description = "The error message to fail with"},
    {.name = "retryable",
     .kind = CATALOG_BOOLEAN,
     .default_json = "false",
     .description = "Whether the failure may be retried"},
};

/* ---------------------------------------------------------------- types */

static const catalog_type types[] = {
    {.name = "aggregate_ari_snapshots",
     .queue = "ari_analysis",
     .category = "ari_snapshot",
     .description = "Aggregates ARI snapshots per user and metric (count, mean, min, max, "
                    "stddev, latest) over a time window",
     .priority = 5,
     .max_priority = 10,
     DEFAULT_POLICY,
     FIELDS(aggregate_ari_fields),
     .example_json = "{\"user_id\":\"user-123\",\"time_window_hours\":24}"},
    {.name = "analyze_ari_trends",
     .queue = "ari_analysis",
     .category = "ari_snapshot",
     .description = "Analyses ARI trends of a user and raises alerts on agency decline",
     .priority = 5,
     .max_priority = 10,
     DEFAULT_POLICY,
     FIELDS(analyze_ari_fields),
     .example_json = "{\"user_id\":\"user-123\",\"lookback_days\":30,\"threshold_percent\":10.0}"},
    {.name = "plan_ffe_goal",
     .queue = "ffe_planning",
     .category = "ffe_planning",
     .description = "Decomposes a goal into 3 to 7 ordered atomic blocks of 15 to 120 minutes",
     .priority = 5,
     .max_priority = 10,
     DEFAULT_POLICY,
     FIELDS(plan_ffe_fields),
     .example_json = "{\"goal_id\":\"goal-42\",\"user_id\":\"user-123\",\"goal_description\":"
                     "\"Write the project report, review it and send it to the team\","
                     "\"complexity_level\":\"medium\"}"},
    {.name = "track_ffe_progress",
     .queue = "ffe_planning",
     .category = "ffe_planning",
     .description = "Computes completion, velocity and projected finish of a goal",
     .priority = 5,
     .max_priority = 10,
     POLICY(2, 30, 1500, 1800),
     FIELDS(track_ffe_fields),
     .example_json = "{\"goal_id\":\"goal-42\",\"user_id\":\"user-123\"}"},
    {.name = "edm_batch_analysis",
     .queue = "edm_analysis",
     .category = "edm_analysis",
     .description = "Analyses recorded epistemic debts (and optional texts): counts by severity "
                    "and type, recommendations",
     .priority = 5,
     .max_priority = 10,
     DEFAULT_POLICY,
     FIELDS(edm_batch_fields),
     .example_json = "{\"user_id\":\"user-123\",\"time_window_days\":7,\"min_severity\":\"low\"}"},
    {.name = "edm_track_resolutions",
     .queue = "edm_analysis",
     .category = "edm_analysis",
     .description = "Tracks resolutions of epistemic debts: count, mean time, rate, most "
                    "common method",
     .priority = 5,
     .max_priority = 10,
     POLICY(2, 30, 1500, 1800),
     FIELDS(edm_resolutions_fields),
     .example_json = "{\"user_id\":\"user-123\",\"lookback_days\":30}"},
    {.name = "edm_detect_misinformation",
     .queue = "edm_analysis",
     .category = "edm_analysis",
     .description = "Checks claims of a user's interactions against known-false patterns",
     .priority = 5,
     .max_priority = 10,
     POLICY(2, 30, 1500, 1800),
     FIELDS(edm_misinfo_fields),
     .example_json = "{\"user_id\":\"user-123\",\"interaction_ids\":[\"int-1\",\"int-2\"]}"},
    {.name = "finetune_model",
     .queue = "model_training",
     .category = "model_training",
     .description = "Fine-tunes a small model on a user's interactions and saves its weights",
     .priority = 5,
     .max_priority = 10,
     POLICY(2, 120, 3300, 3600),
     FIELDS(finetune_fields),
     .example_json = "{\"user_id\":\"user-123\",\"model_name\":\"tinyllama\","
                     "\"training_samples\":100,\"learning_rate\":0.0001}"},
    {.name = "evaluate_model",
     .queue = "model_training",
     .category = "model_training",
     .description = "Evaluates a model: accuracy, precision, recall, F1, inference time",
     .priority = 5,
     .max_priority = 10,
     POLICY(2, 60, 1500, 1800),
     FIELDS(evaluate_fields),
     .example_json = "{\"user_id\":\"user-123\",\"model_name\":\"tinyllama\","
                     "\"test_samples\":50}"},
    {.name = "benchmark_model",
     .queue = "model_training",
     .category = "model_training",
     .description = "Benchmarks a model per scenario: latency percentiles and throughput",
     .priority = 5,
     .max_priority = 10,
     POLICY(1, 120, 1500, 1800),
     FIELDS(benchmark_fields),
     .example_json = "{\"model_name\":\"tinyllama\",\"scenarios\":[\"reasoning\",\"coding\"]}"},
    {.name = "archive_audit_logs",
     .queue = "maintenance",
     .category = "maintenance",
     .description = "Moves old audit rows to the archive, in resumable batches",
     .priority = 3,
     .max_priority = 5,
     POLICY(2, 60, 1500, 1800),
     FIELDS(archive_fields),
     .example_json = "{\"days_to_keep\":90,"
                     "\"archive_location\":\"s3://ai-pal-backups/audit-logs\"}"},
    {.name = "maintain_database",
     .queue = "maintenance",
     .category = "maintenance",
     .description = "Runs database maintenance (analyze, vacuum, reindex) and reports it",
     .priority = 3,
     .max_priority = 5,
     POLICY(1, 120, 1500, 1800),
     FIELDS(maintain_db_fields),
     .example_json = "{\"optimization_level\":\"light\"}"},
    {.name = "cleanup_cache",
     .queue = "maintenance",
     .category = "maintenance",
     .description = "Removes expired (and, if asked, old) cache and result entries in Redis",
     .priority = 3,
     .max_priority = 5,
     POLICY(2, 30, 1500, 1800),
     FIELDS(cleanup_cache_fields),
     .example_json = "{\"max_age_hours\":24,\"cleanup_expired_only\":true}"},
    {.name = "enforce_retention_policy",
     .queue = "maintenance",
     .category = "maintenance",
     .description = "Deletes or archives data past its retention and reports counts",
     .priority = 3,
     .max_priority = 5,
     POLICY(1, 120, 1500, 1800),
     FIELDS(retention_fields),
     .example_json = "{\"policy\":{\"audit_logs\":90,\"completed_tasks\":14}}"},
    {.name = "echo",
     .queue = "default",
     .category = "diagnostics",
     .description = "Completes at once with its params as the result",
     .priority = 5,
     .max_priority = 10,
     DEFAULT_POLICY,
     FIELDS(echo_fields),
     .example_json = "{\"message\":\"hello\",\"data\":{\"n\":1}}"},
    {.name = "sleep",
     .queue = "default",
     .category = "diagnostics",
     .description = "Sleeps for ms milliseconds, reporting progress and honouring cancel",
     .priority = 5,
     .max_priority = 10,
     DEFAULT_POLICY,
     FIELDS(sleep_fields),
     .example_json = "{\"ms\":1000}"},
    {.name = "fail",
     .queue = "default",
     .category = "diagnostics",
     .description = "Fails with the given message, retryable or not",
     .priority = 5,
     .max_priority = 10,
     DEFAULT_POLICY,
     FIELDS(fail_fields),
     .example_json = "{\"message\":\"requested failure\",\"retryable\":false}"},
};

size_t catalog_count(void)
{
    return sizeof types / sizeof types[0];
}

const catalog_type *catalog_at(size_t i)
{
    return i < catalog_count() ? &types[i] : NULL;
}

const catalog_type *catalog_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < catalog_count(); i++)
        if (strcmp(types[i].name, name) == 0)
            return &types[i];
    return NULL;
}

size_t catalog_queue_count(void)
{
    return sizeof queues / sizeof queues[0];
}

const char *catalog_queue_at(size_t i)
{
    return i < catalog_queue_count() ? queues[i] : NULL;
}

bool catalog_queue_known(const char *queue)
{
    for (size_t i = 0; queue && i < catalog_queue_count(); i++)
        if (strcmp(queues[i], queue) == 0)
            return true;
    return false;
}
