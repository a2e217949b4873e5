/* Every task type of aipal-worker on fixture data, through the library:
 * enqueue, an in-process worker with the daemon's handlers, and the
 * results (and the domain tables) checked number by number. Bad params are
 * rejected with the field named. Needs Redis and PostgreSQL (wtest.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "log.h"
#include "redis_url.h"
#include "wtest.h"

#define TOL 1e-6

static char ns[64];
static aipalq_client *c;
static worker_config cfg;
static wt_worker *ww;
static char tmpdir[] = "/tmp/aipal-wt-XXXXXX";

static const char *T1 = "Studies show that 73% of users always prefer dark mode. Many people might "
                        "disagree, according to the Pew survey (Smith, 2020) 40% do. Experts say "
                        "it is perhaps true.";

/* The first error message of a failed task. */
static char *failed_with(const char *type, const char *params)
{
    aipalq_task *t;
    cJSON *r = wt_run(c, type, params, AIPALQ_STATE_FAILED, &t);
    cJSON_Delete(r);
    ck_assert_int_eq(aipalq_task_attempts(t), 1);
    char *msg = strdup(aipalq_task_error_message(t) ? aipalq_task_error_message(t) : "");
    aipalq_task_free(t);
    return msg;
}

/* ---------------------------------------------------------------- ARI */

START_TEST(ari_aggregate_snapshots)
{
    wt_sql("INSERT INTO ari_snapshots (user_id, \"timestamp\", engagement, decision_quality) VALUES"
           " ('agg-u1', now() - interval '3 hours', 0.5, 0.6),"
           " ('agg-u1', now() - interval '2 hours', 0.7, 0.8),"
           " ('agg-u1', now() - interval '1 hour', 0.9, NULL),"
           " ('agg-u2', now() - interval '5 hours', 0.4, NULL),"
           " ('agg-u1', now() - interval '30 hours', 0.1, 0.1)");
    aipalq_task *t;
    cJSON *r = wt_run(c, "aggregate_ari_snapshots", "{}", AIPALQ_STATE_COMPLETED, &t);
    ck_assert(cJSON_IsNull(wt_get(r, "user_id")));
    ck_assert_double_eq(wt_num(r, "window.hours"), 24);
    ck_assert_double_eq(wt_num(r, "users"), 2);
    ck_assert_double_eq(wt_num(r, "snapshots"), 4);
    ck_assert_double_eq(wt_num(r, "aggregates.agg-u1.snapshots"), 3);
    ck_assert_double_eq(wt_num(r, "aggregates.agg-u1.metrics.engagement.count"), 3);
    ck_assert_double_eq_tol(wt_num(r, "aggregates.agg-u1.metrics.engagement.mean"), 0.7, TOL);
    ck_assert_double_eq_tol(wt_num(r, "aggregates.agg-u1.metrics.engagement.min"), 0.5, TOL);
    ck_assert_double_eq_tol(wt_num(r, "aggregates.agg-u1.metrics.engagement.max"), 0.9, TOL);
    ck_assert_double_eq_tol(wt_num(r, "aggregates.agg-u1.metrics.engagement.stddev"), 0.2, TOL);
    ck_assert_double_eq_tol(wt_num(r, "aggregates.agg-u1.metrics.engagement.latest"), 0.9, TOL);
    ck_assert_double_eq(wt_num(r, "aggregates.agg-u1.metrics.decision_quality.count"), 2);
    ck_assert_double_eq_tol(wt_num(r, "aggregates.agg-u1.metrics.decision_quality.stddev"),
                            0.1414213562373095, TOL);
    ck_assert_double_eq_tol(wt_num(r, "aggregates.agg-u2.metrics.engagement.stddev"), 0, TOL);
    ck_assert_ptr_null(wt_get(r, "aggregates.agg-u2.metrics.decision_quality"));
    ck_assert_double_eq(wt_num(r, "metadata.counts.aggregates_written"), 3);
    ck_assert_str_eq(wt_str(r, "metadata.task_type"), "aggregate_ari_snapshots");
    ck_assert_ptr_nonnull(strstr(wt_str(r, "metadata.version"), "aipal-worker"));
    ck_assert(cJSON_IsNumber(wt_get(r, "metadata.duration_ms")));
    /* Written to the aggregates table, keyed by the task. */
    ck_assert_int_eq(
        wt_sql_int("SELECT count(*) FROM ari_aggregates WHERE task_id = '%s'", aipalq_task_id(t)),
        3);
    ck_assert_int_eq(wt_sql_int("SELECT round(mean * 1000) FROM ari_aggregates WHERE task_id = "
                                "'%s' AND user_id = 'agg-u1' AND metric = 'engagement'",
                                aipalq_task_id(t)),
                     700);
    aipalq_task_free(t);
    cJSON_Delete(r);
    r = wt_run(c, "aggregate_ari_snapshots", "{\"user_id\":\"agg-u1\",\"time_window_hours\":4}",
               AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_double_eq(wt_num(r, "users"), 1);
    ck_assert_double_eq(wt_num(r, "snapshots"), 3);
    ck_assert_ptr_null(wt_get(r, "aggregates.agg-u2"));
    cJSON_Delete(r);
    char *msg = failed_with("aggregate_ari_snapshots", "{\"time_window_hours\":0}");
    ck_assert_str_eq(msg,
                     "invalid params: time_window_hours: must be an integer between 1 and 8760");
    free(msg);
}
END_TEST

START_TEST(ari_trends_and_alerts)
{
    wt_sql("INSERT INTO ari_snapshots (user_id, \"timestamp\", autonomy_retention, engagement,"
           " decision_quality, ai_reliance)"
           " SELECT 'trend-u3', now() - interval '1 hour' - make_interval(days => 3 - i),"
           " (ARRAY[10, 9, 8, 7])[i + 1], (ARRAY[100, 95, 90, 88])[i + 1],"
           " (ARRAY[5, 5, 5, 6])[i + 1], (ARRAY[1, 2, 3, 4])[i + 1]"
           " FROM generate_series(0, 3) AS i");
    aipalq_task *t;
    cJSON *r = wt_run(c, "analyze_ari_trends",
                      "{\"user_id\":\"trend-u3\",\"lookback_days\":30,\"threshold_percent\":10}",
                      AIPALQ_STATE_COMPLETED, &t);
    ck_assert_double_eq(wt_num(r, "snapshots"), 4);
    ck_assert_double_eq_tol(wt_num(r, "trends.autonomy_retention.change_percent"), -30, TOL);
    ck_assert_double_eq_tol(wt_num(r, "trends.autonomy_retention.slope_per_day"), -1, TOL);
    ck_assert_double_eq_tol(wt_num(r, "trends.autonomy_retention.z_score"), -1.161895003862225,
                            TOL);
    ck_assert_str_eq(wt_str(r, "trends.autonomy_retention.direction"), "declining");
    ck_assert_double_eq_tol(wt_num(r, "trends.engagement.change_percent"), -12, TOL);
    ck_assert_str_eq(wt_str(r, "trends.decision_quality.direction"), "improving");
    ck_assert_str_eq(wt_str(r, "trends.ai_reliance.direction"), "improving");
    ck_assert_ptr_null(wt_get(r, "trends.delta_agency"));
    ck_assert_int_eq(cJSON_GetArraySize(wt_get(r, "alerts")), 2);
    ck_assert_str_eq(wt_str(r, "alerts.0.metric"), "engagement");
    ck_assert_str_eq(wt_str(r, "alerts.0.severity"), "warning");
    ck_assert_str_eq(wt_str(r, "alerts.1.metric"), "autonomy_retention");
    ck_assert_str_eq(wt_str(r, "alerts.1.severity"), "critical");
    ck_assert_double_eq(wt_num(r, "metadata.counts.critical_alerts"), 1);
    ck_assert_int_eq(
        wt_sql_int("SELECT count(*) FROM ari_alerts WHERE task_id = '%s'", aipalq_task_id(t)), 2);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM ari_alerts WHERE task_id = '%s' AND "
                                "metric = 'autonomy_retention' AND severity = 'critical'",
                                aipalq_task_id(t)),
                     1);
    aipalq_task_free(t);
    cJSON_Delete(r);
    /* A higher threshold: only the critical decline. */
    r = wt_run(c, "analyze_ari_trends", "{\"user_id\":\"trend-u3\",\"threshold_percent\":15}",
               AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_int_eq(cJSON_GetArraySize(wt_get(r, "alerts")), 1);
    cJSON_Delete(r);
    char *msg = failed_with("analyze_ari_trends", "{\"lookback_days\":30}");
    ck_assert_str_eq(msg, "invalid params: user_id: is required");
    free(msg);
}
END_TEST

/* ---------------------------------------------------------------- FFE */

START_TEST(ffe_plan_goal)
{
    aipalq_task *t;
    cJSON *r = wt_run(c, "plan_ffe_goal",
                      "{\"goal_id\":\"g1\",\"user_id\":\"u1\",\"goal_description\":\"Write the "
                      "project report, review it and send it to the team\",\"complexity_level\":"
                      "\"simple\",\"available_hours\":2}",
                      AIPALQ_STATE_COMPLETED, &t);
    ck_assert_int_eq(cJSON_GetArraySize(wt_get(r, "blocks")), 3);
    ck_assert_str_eq(wt_str(r, "blocks.0.description"), "Write the project report");
    ck_assert_double_eq(wt_num(r, "blocks.0.estimated_minutes"), 70);
    ck_assert_double_eq(wt_num(r, "blocks.1.estimated_minutes"), 30);
    ck_assert_double_eq(wt_num(r, "blocks.2.estimated_minutes"), 20);
    ck_assert_str_eq(wt_str(r, "blocks.2.block_id"), "g1:3");
    ck_assert_double_eq(wt_num(r, "total_minutes"), 120);
    ck_assert_double_eq(wt_num(r, "available_minutes"), 120);
    ck_assert(cJSON_IsTrue(wt_get(r, "fits_available_hours")));
    ck_assert_int_eq(wt_sql_int("SELECT sum(estimated_minutes) FROM atomic_blocks WHERE goal_id "
                                "= 'g1'"),
                     120);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM ffe_goals WHERE goal_id = 'g1' AND "
                                "plan_task_id = '%s'",
                                aipalq_task_id(t)),
                     1);
    aipalq_task_free(t);
    cJSON_Delete(r);
    /* Planning again replaces the blocks. */
    r = wt_run(c, "plan_ffe_goal",
               "{\"goal_id\":\"g1\",\"user_id\":\"u1\",\"goal_description\":\"Clean the "
               "garage\",\"complexity_level\":\"simple\",\"available_hours\":1}",
               AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM atomic_blocks WHERE goal_id = 'g1'"), 3);
    ck_assert_int_eq(wt_sql_int("SELECT sum(estimated_minutes) FROM atomic_blocks WHERE goal_id "
                                "= 'g1'"),
                     60);
    cJSON_Delete(r);
    char *msg = failed_with("plan_ffe_goal", "{\"goal_id\":\"g1\",\"user_id\":\"u2\","
                                             "\"goal_description\":\"Steal it\"}");
    ck_assert_str_eq(msg, "user_id: goal g1 belongs to another user");
    free(msg);
    wt_sql("UPDATE atomic_blocks SET completed = true, completed_at = now() WHERE block_id = "
           "'g1:1'");
    msg = failed_with("plan_ffe_goal", "{\"goal_id\":\"g1\",\"user_id\":\"u1\","
                                       "\"goal_description\":\"Again\"}");
    ck_assert_ptr_nonnull(strstr(msg, "goal_id: goal g1 already has 1 completed blocks"));
    free(msg);
    msg = failed_with("plan_ffe_goal", "{\"goal_id\":\"g9\",\"user_id\":\"u1\"}");
    ck_assert_str_eq(msg, "invalid params: goal_description: is required");
    free(msg);
    msg = failed_with("plan_ffe_goal", "{\"goal_id\":\"g9\",\"user_id\":\"u1\",\"goal_description\""
                                       ":\"x\",\"complexity_level\":\"epic\"}");
    ck_assert_str_eq(msg,
                     "invalid params: complexity_level: must be one of: simple, medium, complex");
    free(msg);
    /* A goal with a title and a deadline. */
    wt_sql("INSERT INTO ffe_goals (goal_id, user_id, title, description, deadline) VALUES"
           " ('g2', 'u1', 'Ship v2', 'x', now() + interval '4 days')");
    r = wt_run(c, "plan_ffe_goal",
               "{\"goal_id\":\"g2\",\"user_id\":\"u1\",\"goal_description\":\"Write the "
               "project report, review it and send it to the team\"}",
               AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_str_eq(wt_str(r, "title"), "Ship v2");
    ck_assert_int_eq(cJSON_GetArraySize(wt_get(r, "blocks")), 4);
    ck_assert_double_eq(wt_num(r, "total_minutes"), 190);
    ck_assert(cJSON_IsNull(wt_get(r, "available_minutes")));
    ck_assert_ptr_nonnull(strstr(wt_str(r, "blocks.3.description"), "\"Ship v2\""));
    ck_assert_double_eq_tol(wt_num(r, "days_to_deadline"), 4, 0.01);
    ck_assert_double_eq_tol(wt_num(r, "required_minutes_per_day"), 47.5, 0.2);
    cJSON_Delete(r);
}
END_TEST

START_TEST(ffe_track_progress)
{
    wt_sql("INSERT INTO ffe_goals (goal_id, user_id, description, created_at, deadline) VALUES"
           " ('g3', 'u1', 'track me', now() - interval '3 days', now() + interval '7 days');"
           "INSERT INTO atomic_blocks (block_id, goal_id, user_id, description, block_index,"
           " estimated_minutes, completed, completed_at) VALUES"
           " ('g3:1', 'g3', 'u1', 'a', 1, 60, true, now() - interval '2 days'),"
           " ('g3:2', 'g3', 'u1', 'b', 2, 30, true, now() - interval '1 day'),"
           " ('g3:3', 'g3', 'u1', 'c', 3, 30, false, NULL),"
           " ('g3:4', 'g3', 'u1', 'd', 4, 60, false, NULL)");
    cJSON *r = wt_run(c, "track_ffe_progress", "{\"goal_id\":\"g3\",\"user_id\":\"u1\"}",
                      AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_double_eq(wt_num(r, "total_blocks"), 4);
    ck_assert_double_eq(wt_num(r, "completed_blocks"), 2);
    ck_assert_double_eq_tol(wt_num(r, "completion_percent"), 50, TOL);
    ck_assert_double_eq(wt_num(r, "remaining_minutes"), 90);
    ck_assert_double_eq_tol(wt_num(r, "velocity_minutes_per_day"), 30, 0.01);
    ck_assert_double_eq_tol(wt_num(r, "days_to_deadline"), 7, 0.01);
    ck_assert(cJSON_IsTrue(wt_get(r, "on_track")));
    ck_assert(cJSON_IsString(wt_get(r, "projected_finish")));
    ck_assert_double_eq(wt_num(r, "next_block.block_index"), 3);
    ck_assert_str_eq(wt_str(r, "status"), "active");
    cJSON_Delete(r);
    wt_sql("UPDATE atomic_blocks SET completed = true, completed_at = now() WHERE goal_id = 'g3'");
    r = wt_run(c, "track_ffe_progress", "{\"goal_id\":\"g3\",\"user_id\":\"u1\"}",
               AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_double_eq_tol(wt_num(r, "completion_percent"), 100, TOL);
    ck_assert_str_eq(wt_str(r, "status"), "completed");
    ck_assert(cJSON_IsNull(wt_get(r, "next_block")));
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM ffe_goals WHERE goal_id = 'g3' AND status "
                                "= 'completed' AND completed_at IS NOT NULL"),
                     1);
    cJSON_Delete(r);
    char *msg = failed_with("track_ffe_progress", "{\"goal_id\":\"nope\",\"user_id\":\"u1\"}");
    ck_assert_str_eq(msg, "goal_id: no goal nope");
    free(msg);
}
END_TEST

/* ---------------------------------------------------------------- EDM */

START_TEST(edm_batch)
{
    wt_sql("INSERT INTO edm_debts (user_id, \"timestamp\", claim, debt_type, severity, resolved,"
           " resolution_date, resolution_method) VALUES"
           " ('edm-u5', now() - interval '1 day', 'x', 'missing_citation', 'high', true, now(),"
           "  'cited'),"
           " ('edm-u5', now() - interval '2 days', 'y', 'vague_claim', 'low', false, NULL, NULL),"
           " ('edm-u5', now() - interval '10 days', 'z', 'hedging', 'low', false, NULL, NULL)");
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "user_id", "edm-u5");
    const char *texts[] = {T1, "The sky is blue."};
    cJSON_AddItemToObject(p, "texts", cJSON_CreateStringArray(texts, 2));
    char *params = cJSON_PrintUnformatted(p);
    cJSON *r = wt_run(c, "edm_batch_analysis", params, AIPALQ_STATE_COMPLETED, NULL);
    free(params);
    ck_assert_double_eq(wt_num(r, "texts.0.score"), 12);
    ck_assert_int_eq(cJSON_GetArraySize(wt_get(r, "texts.0.markers")), 7);
    ck_assert_str_eq(wt_str(r, "texts.0.markers.0.match"), "Studies show");
    ck_assert_double_eq(wt_num(r, "texts.0.markers.1.start"), 18);
    ck_assert_double_eq(wt_num(r, "texts.0.markers.1.end"), 21);
    ck_assert_str_eq(wt_str(r, "texts.0.max_severity"), "high");
    ck_assert_double_eq(wt_num(r, "texts.1.score"), 0);
    ck_assert(cJSON_IsNull(wt_get(r, "texts.1.max_severity")));
    ck_assert_double_eq(wt_num(r, "recorded_debts"), 7);
    ck_assert_double_eq(wt_num(r, "debts.total"), 9);
    ck_assert_double_eq(wt_num(r, "debts.resolved"), 1);
    ck_assert_double_eq(wt_num(r, "debts.by_severity.high"), 3);
    ck_assert_double_eq(wt_num(r, "debts.by_severity.medium"), 1);
    ck_assert_double_eq(wt_num(r, "debts.by_severity.low"), 5);
    ck_assert_double_eq(wt_num(r, "debts.by_type.missing_citation"), 3);
    ck_assert_double_eq(wt_num(r, "debts.by_type.vague_claim"), 3);
    ck_assert_double_eq(wt_num(r, "debts.by_type.hedging"), 2);
    ck_assert_double_eq(wt_num(r, "unresolved_total"), 9);
    ck_assert(cJSON_IsNull(wt_get(r, "alert")));
    ck_assert_str_eq(wt_str(r, "recommendations.0"),
                     "Add sources for 3 statistical or research claims (missing_citation).");
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM edm_debts WHERE user_id = 'edm-u5' AND "
                                "task_context = 'edm_batch_analysis'"),
                     7);
    cJSON_Delete(r);
    cJSON_Delete(p);
    /* Only high severity. */
    p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "user_id", "edm-u6");
    cJSON_AddStringToObject(p, "min_severity", "high");
    cJSON_AddItemToObject(p, "texts", cJSON_CreateStringArray(texts, 1));
    params = cJSON_PrintUnformatted(p);
    r = wt_run(c, "edm_batch_analysis", params, AIPALQ_STATE_COMPLETED, NULL);
    free(params);
    cJSON_Delete(p);
    ck_assert_int_eq(cJSON_GetArraySize(wt_get(r, "texts.0.markers")), 2);
    ck_assert_double_eq(wt_num(r, "texts.0.score"), 6);
    ck_assert_double_eq(wt_num(r, "debts.total"), 2);
    ck_assert_ptr_null(wt_get(r, "debts.by_severity.low"));
    ck_assert_double_eq(wt_num(r, "debts.by_severity.critical"), 0);
    cJSON_Delete(r);
    /* No user: nothing recorded. */
    r = wt_run(c, "edm_batch_analysis", "{\"texts\":[\"It always works.\"]}",
               AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_double_eq(wt_num(r, "recorded_debts"), 0);
    ck_assert(cJSON_IsNull(wt_get(r, "user_id")));
    cJSON_Delete(r);
    /* More than 50 unresolved: an alert. */
    wt_sql("INSERT INTO edm_debts (user_id, claim, debt_type, severity) SELECT 'edm-u7a', 'c' || "
           "g, 'vague_claim', 'low' FROM generate_series(1, 51) g");
    r = wt_run(c, "edm_batch_analysis", "{\"user_id\":\"edm-u7a\"}", AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_double_eq(wt_num(r, "alert.unresolved"), 51);
    cJSON_Delete(r);
    char *msg = failed_with("edm_batch_analysis", "{\"min_severity\":\"urgent\"}");
    ck_assert_str_eq(msg,
                     "invalid params: min_severity: must be one of: low, medium, high, critical");
    free(msg);
    msg = failed_with("edm_batch_analysis", "{\"texts\":[]}");
    ck_assert_ptr_nonnull(strstr(msg, "invalid params: texts: must be an array"));
    free(msg);
}
END_TEST

START_TEST(edm_resolutions)
{
    wt_sql("INSERT INTO edm_debts (user_id, \"timestamp\", claim, debt_type, severity, resolved,"
           " resolution_date, resolution_method) VALUES"
           " ('edm-r7', now() - interval '5 days', 'a', 'vague_claim', 'low', true,"
           "  now() - interval '4 days', 'verified'),"
           " ('edm-r7', now() - interval '4 days', 'b', 'missing_citation', 'high', true,"
           "  now() - interval '1 day', 'corrected'),"
           " ('edm-r7', now() - interval '2 days', 'c', 'hedging', 'low', false, NULL, NULL),"
           " ('edm-r7', now() - interval '40 days', 'd', 'unfalsifiable', 'medium', true,"
           "  now() - interval '3 days', 'verified')");
    cJSON *r = wt_run(c, "edm_track_resolutions", "{\"user_id\":\"edm-r7\",\"lookback_days\":30}",
                      AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_double_eq(wt_num(r, "debts_recorded"), 3);
    ck_assert_double_eq(wt_num(r, "debts_recorded_resolved"), 2);
    ck_assert_double_eq_tol(wt_num(r, "resolution_rate"), 2.0 / 3.0, TOL);
    ck_assert_double_eq(wt_num(r, "total_resolutions"), 3);
    ck_assert_double_eq_tol(wt_num(r, "mean_resolution_hours"), 328, TOL);
    ck_assert_double_eq_tol(wt_num(r, "median_resolution_hours"), 72, TOL);
    ck_assert_str_eq(wt_str(r, "most_common_method"), "verified");
    ck_assert_double_eq(wt_num(r, "by_severity.high.recorded"), 1);
    ck_assert_double_eq(wt_num(r, "by_severity.high.resolved"), 1);
    ck_assert_double_eq(wt_num(r, "by_severity.medium.recorded"), 0);
    ck_assert_int_ge(cJSON_GetArraySize(wt_get(r, "timeline")), 3);
    cJSON_Delete(r);
    r = wt_run(c, "edm_track_resolutions", "{\"user_id\":\"edm-nobody\"}", AIPALQ_STATE_COMPLETED,
               NULL);
    ck_assert_double_eq(wt_num(r, "total_resolutions"), 0);
    ck_assert(cJSON_IsNull(wt_get(r, "mean_resolution_hours")));
    ck_assert(cJSON_IsNull(wt_get(r, "most_common_method")));
    cJSON_Delete(r);
}
END_TEST

START_TEST(edm_misinformation)
{
    wt_sql("INSERT INTO edm_interactions (interaction_id, user_id, response) VALUES"
           " ('mi-1', 'edm-m8', 'Fun fact: we only use 10%% of our brains.'),"
           " ('mi-2', 'edm-m8', 'The Great Wall of China is visible from space, and vaccines "
           "cause autism.'),"
           " ('mi-3', 'edm-m8', 'Water boils at 100 degrees at sea level. Also, the moon is made "
           "of cheese.');"
           "INSERT INTO edm_misinfo_patterns (pattern_id, pattern, claim, evidence, confidence)"
           " VALUES ('moon-cheese', 'moon is made of (green )?cheese', 'The Moon is made of "
           "cheese.', 'Apollo samples are rock.', 0.4)");
    cJSON *r = wt_run(c, "edm_detect_misinformation",
                      "{\"user_id\":\"edm-m8\",\"interaction_ids\":[\"mi-1\",\"mi-2\",\"mi-3\","
                      "\"missing\"]}",
                      AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_double_eq(wt_num(r, "checked"), 3);
    ck_assert_str_eq(wt_str(r, "not_found.0"), "missing");
    ck_assert_double_eq(wt_num(r, "patterns"), 11);
    ck_assert_int_eq(cJSON_GetArraySize(wt_get(r, "findings")), 4);
    ck_assert_double_eq(wt_num(r, "by_confidence.high"), 3);
    ck_assert_double_eq(wt_num(r, "by_confidence.low"), 1);
    ck_assert_double_eq(wt_num(r, "flagged_interactions"), 3);
    ck_assert_str_eq(wt_str(r, "findings.0.pattern_id"), "brain-10-percent");
    ck_assert_str_eq(wt_str(r, "findings.0.matched"), "we only use 10% of our brains");
    ck_assert_double_eq(wt_num(r, "findings.0.start"), 10);
    ck_assert_ptr_nonnull(strstr(wt_str(r, "findings.0.evidence"), "imaging"));
    ck_assert_str_eq(wt_str(r, "findings.1.pattern_id"), "great-wall-from-space");
    ck_assert_str_eq(wt_str(r, "findings.2.pattern_id"), "vaccines-autism");
    ck_assert_str_eq(wt_str(r, "findings.3.band"), "low");
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM edm_debts WHERE user_id = 'edm-m8' AND "
                                "debt_type = 'misinformation'"),
                     4);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM edm_debts WHERE user_id = 'edm-m8' AND "
                                "severity = 'critical'"),
                     3);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM edm_misinfo_findings WHERE user_id = "
                                "'edm-m8'"),
                     4);
    cJSON_Delete(r);
    /* No ids: the user's recent interactions; a broken pattern is reported, not fatal. */
    wt_sql("INSERT INTO edm_misinfo_patterns (pattern_id, pattern, claim, evidence, confidence)"
           " VALUES ('broken', '(unclosed', 'x', 'y', 0.5)");
    r = wt_run(c, "edm_detect_misinformation", "{\"user_id\":\"edm-m8\"}", AIPALQ_STATE_COMPLETED,
               NULL);
    ck_assert_double_eq(wt_num(r, "checked"), 3);
    ck_assert_int_eq(cJSON_GetArraySize(wt_get(r, "invalid_patterns")), 1);
    ck_assert_int_eq(cJSON_GetArraySize(wt_get(r, "findings")), 4);
    cJSON_Delete(r);
    wt_sql("UPDATE edm_misinfo_patterns SET enabled = false WHERE pattern_id = 'broken'");
    char *msg = failed_with("edm_detect_misinformation", "{\"user_id\":\"edm-m8\","
                                                         "\"interaction_ids\":[\"\"]}");
    ck_assert_str_eq(msg, "invalid params: interaction_ids[0]: must be a string of 1 to 128 "
                          "characters");
    free(msg);
}
END_TEST

/* ------------------------------------------------------------- models */

static void insert_samples(const char *user)
{
    wt_sql("INSERT INTO ml_samples (user_id, text, label, split) VALUES"
           " ('%1$s', 'what a great and wonderful day', 'pos', 'train'),"
           " ('%1$s', 'I love this, excellent work', 'pos', 'train'),"
           " ('%1$s', 'happy with the excellent result', 'pos', 'train'),"
           " ('%1$s', 'great service, love it', 'pos', 'train'),"
           " ('%1$s', 'wonderful, happy, great', 'pos', 'train'),"
           " ('%1$s', 'an excellent and lovely film', 'pos', 'train'),"
           " ('%1$s', 'this is terrible and awful', 'neg', 'train'),"
           " ('%1$s', 'I hate it, horrible', 'neg', 'train'),"
           " ('%1$s', 'sad and awful experience', 'neg', 'train'),"
           " ('%1$s', 'terrible service, hate it', 'neg', 'train'),"
           " ('%1$s', 'horrible, sad, terrible', 'neg', 'train'),"
           " ('%1$s', 'an awful and dreadful film', 'neg', 'train'),"
           " ('%1$s', 'great, I love it', 'pos', 'test'),"
           " ('%1$s', 'excellent and wonderful', 'pos', 'test'),"
           " ('%1$s', 'terrible and sad', 'neg', 'test'),"
           " ('%1$s', 'love this great excellent thing', 'neg', 'test')",
           user);
}

START_TEST(model_finetune_evaluate_benchmark)
{
    insert_samples("ml-u9");
    aipalq_task *t;
    cJSON *r = wt_run(c, "finetune_model",
                      "{\"user_id\":\"ml-u9\",\"model_name\":\"sentiment\",\"learning_rate\":0.5}",
                      AIPALQ_STATE_COMPLETED, &t);
    ck_assert_str_eq(wt_str(r, "trainer"), "builtin");
    ck_assert_str_eq(wt_str(r, "started_from"), "scratch");
    ck_assert_double_eq(wt_num(r, "samples"), 12);
    ck_assert_double_eq(wt_num(r, "epochs"), 30);
    ck_assert_double_eq_tol(wt_num(r, "metrics.train_accuracy"), 1.0, TOL);
    ck_assert_double_lt(wt_num(r, "metrics.final_loss"), 0.2);
    ck_assert_int_eq(cJSON_GetArraySize(wt_get(r, "history")), 30);
    ck_assert_str_eq(wt_str(r, "labels.0"), "pos");
    struct stat st;
    ck_assert_int_eq(stat(wt_str(r, "artifact"), &st), 0);
    ck_assert_int_eq(stat(wt_str(r, "artifact_version"), &st), 0);
    ck_assert_ptr_nonnull(strstr(wt_str(r, "artifact"), "/users/ml-u9/sentiment/model.json"));
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM ml_models WHERE task_id = '%s' AND "
                                "trainer = 'builtin'",
                                aipalq_task_id(t)),
                     1);
    aipalq_task_free(t);
    cJSON_Delete(r);
    r = wt_run(c, "evaluate_model", "{\"user_id\":\"ml-u9\",\"model_name\":\"sentiment\"}",
               AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_double_eq(wt_num(r, "samples"), 4);
    ck_assert_double_eq_tol(wt_num(r, "accuracy"), 0.75, TOL);
    ck_assert_double_eq_tol(wt_num(r, "precision"), 5.0 / 6.0, TOL);
    ck_assert_double_eq_tol(wt_num(r, "recall"), 0.75, TOL);
    ck_assert_double_eq_tol(wt_num(r, "f1"), (0.8 + 2.0 / 3.0) / 2, TOL);
    ck_assert_double_eq_tol(wt_num(r, "per_label.pos.precision"), 2.0 / 3.0, TOL);
    ck_assert_double_eq(wt_num(r, "confusion_matrix.rows_true_columns_predicted.1.0"), 1);
    ck_assert_double_eq(wt_num(r, "metadata.counts.correct"), 3);
    cJSON_Delete(r);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM ml_evaluations WHERE user_id = 'ml-u9'"), 1);
    /* Fine-tuning again starts from the saved model. */
    r = wt_run(c, "finetune_model",
               "{\"user_id\":\"ml-u9\",\"model_name\":\"sentiment\",\"learning_rate\":0.5,"
               "\"training_samples\":6}",
               AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_str_eq(wt_str(r, "started_from"), "user");
    ck_assert_double_eq(wt_num(r, "samples"), 6);
    cJSON_Delete(r);
    r = wt_run(c, "benchmark_model",
               "{\"model_name\":\"sentiment\",\"scenarios\":[\"reasoning\",\"coding\"]}",
               AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_str_eq(wt_str(r, "runner"), "builtin");
    ck_assert_double_eq(wt_num(r, "scenarios.reasoning.requests"), 50);
    ck_assert_double_eq(wt_num(r, "scenarios.coding.errors"), 0);
    ck_assert_double_le(wt_num(r, "scenarios.coding.latency_ms.p50"),
                        wt_num(r, "scenarios.coding.latency_ms.p99"));
    ck_assert_double_gt(wt_num(r, "scenarios.coding.latency_ms.p50"), 0);
    ck_assert_double_gt(wt_num(r, "scenarios.coding.throughput_per_second"), 0);
    ck_assert_double_eq(wt_num(r, "scenarios.coding.predicted_labels.pos") +
                            wt_num(r, "scenarios.coding.predicted_labels.neg"),
                        50);
    ck_assert_double_gt(wt_num(r, "scenarios.coding.mean_words"),
                        wt_num(r, "scenarios.reasoning.mean_words"));
    cJSON_Delete(r);
    r = wt_run(c, "benchmark_model", "{\"model_name\":\"sentiment\"}", AIPALQ_STATE_COMPLETED,
               NULL);
    ck_assert_int_eq(cJSON_GetArraySize(wt_get(r, "scenarios")), 4);
    ck_assert_double_eq(wt_num(r, "metadata.counts.requests"), 200);
    cJSON_Delete(r);
    char *msg = failed_with("evaluate_model", "{\"user_id\":\"ml-u9\",\"model_name\":\"gpt-9\"}");
    ck_assert_str_eq(msg, "model_name: no saved model gpt-9 for user ml-u9 (train it first)");
    free(msg);
    msg = failed_with("finetune_model", "{\"user_id\":\"ml-nobody\",\"model_name\":\"m\"}");
    ck_assert_str_eq(msg, "user_id: user ml-nobody has no labelled training samples");
    free(msg);
    msg = failed_with("benchmark_model", "{\"model_name\":\"never-trained\"}");
    ck_assert_str_eq(msg, "model_name: no saved model never-trained (train it first)");
    free(msg);
    msg = failed_with("finetune_model",
                      "{\"user_id\":\"ml-u9\",\"model_name\":\"m\",\"learning_rate\":2}");
    ck_assert_str_eq(msg, "invalid params: learning_rate: must be a number between 1e-07 and 1");
    free(msg);
}
END_TEST

START_TEST(model_external_trainer)
{
    char script[256];
    snprintf(script, sizeof script, "%s/trainer.sh", tmpdir);
    FILE *f = fopen(script, "w");
    fprintf(f, "#!/bin/sh\n"
               "read params\n"
               "echo \"PROGRESS 10 loading $AIPAL_TRAINING_SAMPLES samples\"\n"
               "echo \"some log line\"\n"
               "echo \"PROGRESS 90 almost\"\n"
               "echo '{\"format\":\"external\"}' > \"$AIPAL_OUTPUT_PATH\"\n"
               "echo 'RESULT {\"accuracy\":0.9,\"user\":\"'\"$AIPAL_USER_ID\"'\"}'\n"
               "exit 0\n");
    fclose(f);
    chmod(script, 0755);
    cfg.trainer_command = script;
    aipalq_task *t;
    cJSON *r = wt_run(c, "finetune_model", "{\"user_id\":\"ml-x\",\"model_name\":\"ext\"}",
                      AIPALQ_STATE_COMPLETED, &t);
    ck_assert_str_eq(wt_str(r, "trainer"), "external");
    ck_assert_double_eq_tol(wt_num(r, "metrics.accuracy"), 0.9, TOL);
    ck_assert_str_eq(wt_str(r, "metrics.user"), "ml-x");
    struct stat st;
    ck_assert_int_eq(stat(wt_str(r, "artifact"), &st), 0);
    ck_assert_int_eq(aipalq_task_progress(t), 100);
    aipalq_task_free(t);
    cJSON_Delete(r);
    cfg.trainer_command = "echo boom; exit 3";
    char *msg = failed_with("finetune_model", "{\"user_id\":\"ml-x\",\"model_name\":\"ext\"}");
    ck_assert_ptr_nonnull(strstr(msg, "exited with status 3"));
    ck_assert_ptr_nonnull(strstr(msg, "boom"));
    free(msg);
    cfg.trainer_command = "sleep 30";
    cfg.trainer_timeout_ms = 500;
    int64_t t0 = wt_now_ms();
    msg = failed_with("finetune_model", "{\"user_id\":\"ml-x\",\"model_name\":\"ext\"}");
    ck_assert_str_eq(msg, "the external trainer exceeded its time limit of 0 s");
    ck_assert_int_lt(wt_now_ms() - t0, 10000);
    free(msg);
    cfg.trainer_command = NULL;
    cfg.trainer_timeout_ms = 0;
}
END_TEST

/* -------------------------------------------------------- maintenance */

static long gz_lines(const char *path)
{
    gzFile gz = gzopen(path, "rb");
    ck_assert_ptr_nonnull(gz);
    char buf[4096];
    long n = 0;
    while (gzgets(gz, buf, sizeof buf))
        n++;
    gzclose(gz);
    return n;
}

START_TEST(maintenance_archive_audit_logs)
{
    wt_sql("INSERT INTO audit_logs (created_at, actor, action) SELECT now() - interval '100 days'"
           " + make_interval(secs => g), 'u', 'login' FROM generate_series(1, 2500) g;"
           "INSERT INTO audit_logs (created_at, actor, action) SELECT now() - interval '10 days',"
           " 'u', 'recent' FROM generate_series(1, 10) g");
    char params[512];
    snprintf(params, sizeof params, "{\"days_to_keep\":90,\"archive_location\":\"%s/archive\"}",
             tmpdir);
    cJSON *r = wt_run(c, "archive_audit_logs", params, AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_double_eq(wt_num(r, "archived"), 2500);
    ck_assert_double_eq(wt_num(r, "batches"), 3);
    ck_assert_double_eq(wt_num(r, "remaining_older_than_cutoff"), 0);
    ck_assert_int_eq(gz_lines(wt_str(r, "archive_file")), 2500);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM audit_logs"), 10);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM audit_logs_archive"), 2500);
    cJSON_Delete(r);
    r = wt_run(c, "archive_audit_logs", "{\"days_to_keep\":90}", AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_double_eq(wt_num(r, "archived"), 0);
    ck_assert(cJSON_IsNull(wt_get(r, "archive_file")));
    ck_assert_ptr_nonnull(wt_get(r, "note"));
    cJSON_Delete(r);
    /* Interrupted half-way (cancelled), then resumed: nothing lost, nothing twice. */
    wt_sql("INSERT INTO audit_logs (created_at, actor, action) SELECT now() - interval '200 days',"
           " 'u', 'old' FROM generate_series(1, 3000) g");
    cfg.archive_batch_size = 1;
    char id[AIPALQ_ID_SIZE];
    wt_enqueue(c, "archive_audit_logs", "{}", id);
    aipalq_task_free(wt_wait(c, id, 20000, AIPALQ_STATE_RUNNING));
    wt_sleep_ms(400);
    ck_assert_int_eq(aipalq_cancel(c, id, NULL), AIPALQ_OK);
    aipalq_task *t = wt_wait(c, id, 20000, -1);
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_CANCELLED);
    aipalq_task_free(t);
    long moved = wt_sql_int("SELECT count(*) FROM audit_logs_archive WHERE action = 'old'");
    ck_assert_int_gt(moved, 0);
    ck_assert_int_lt(moved, 3000);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM audit_logs WHERE action = 'old'") + moved,
                     3000);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM audit_logs a JOIN audit_logs_archive b "
                                "USING (id)"),
                     0);
    cfg.archive_batch_size = 1000;
    r = wt_run(c, "archive_audit_logs", "{}", AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_double_eq(wt_num(r, "archived"), 3000 - moved);
    cJSON_Delete(r);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM audit_logs_archive WHERE action = 'old'"),
                     3000);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM audit_logs"), 10);
}
END_TEST

START_TEST(maintenance_database)
{
    cJSON *r = wt_run(c, "maintain_database", "{\"optimization_level\":\"light\"}",
                      AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_double_eq(wt_num(r, "metadata.counts.tables"), 19);
    ck_assert_str_eq(wt_str(r, "tables.0.table"), "aipalq_tasks");
    ck_assert_str_eq(wt_str(r, "tables.0.operations.0"), "analyze");
    ck_assert_double_eq(wt_num(r, "metadata.counts.reindexed"), 0);
    cJSON_Delete(r);
    r = wt_run(c, "maintain_database", "{}", AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_str_eq(wt_str(r, "optimization_level"), "standard");
    ck_assert_str_eq(wt_str(r, "tables.0.operations.0"), "vacuum_analyze");
    cJSON_Delete(r);
    r = wt_run(c, "maintain_database", "{\"optimization_level\":\"heavy\"}", AIPALQ_STATE_COMPLETED,
               NULL);
    ck_assert_double_eq(wt_num(r, "metadata.counts.reindexed"), 4);
    ck_assert_str_eq(wt_str(r, "tables.0.operations.1"), "reindex");
    ck_assert_int_eq(cJSON_GetArraySize(wt_get(r, "tables.4.operations")), 1);
    cJSON_Delete(r);
    char *msg = failed_with("maintain_database", "{\"optimization_level\":\"extreme\"}");
    ck_assert_str_eq(msg, "invalid params: optimization_level: must be one of: light, standard, "
                          "heavy");
    free(msg);
}
END_TEST

static long long redis_int(redisContext *rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(r->type == REDIS_REPLY_INTEGER, "redis: %s", r->str ? r->str : "?");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

START_TEST(maintenance_cleanup_cache)
{
    char a[AIPALQ_ID_SIZE], b[AIPALQ_ID_SIZE];
    wt_enqueue(c, "echo", "{\"message\":\"a\"}", a);
    wt_enqueue(c, "echo", "{\"message\":\"b\"}", b);
    aipalq_task_free(wt_wait(c, a, 20000, -1));
    aipalq_task_free(wt_wait(c, b, 20000, -1));
    char err[256];
    redisContext *rc = redis_connect_url(NULL, 2000, err, sizeof err);
    ck_assert_msg(rc != NULL, "%s", err);
    char done[128];
    snprintf(done, sizeof done, "%s:{default}:done", ns);
    /* The library caches outcomes after recording them: wait for both. */
    for (int i = 0; i < 100 && !(redis_int(rc, "HEXISTS %s %s", done, a) &&
                                 redis_int(rc, "HEXISTS %s %s", done, b));
         i++)
        wt_sleep_ms(50);
    long long now = wt_now_ms();
    /* An expired outcome in a queue no worker takes from (the library
     * expires those of consumed queues itself as it takes tasks). */
    char rdone[128], rexp[128];
    snprintf(rdone, sizeof rdone, "%s:{retired}:done", ns);
    snprintf(rexp, sizeof rexp, "%s:{retired}:done_exp", ns);
    redis_int(rc, "HSET %s %s {\"status\":\"completed\"}", rdone, a);
    redis_int(rc, "ZADD %s %lld %s", rexp, now - 1000, a);
    wt_sql("UPDATE aipalq_tasks SET completed_at = now() - interval '48 hours' WHERE id = '%s'", b);
    redis_int(rc, "DEL aipal:{cache}:data aipal:{cache}:expiry aipal:{cache}:stored");
    redis_int(rc, "HSET aipal:{cache}:data a 1 b 2 c 3");
    redis_int(rc, "ZADD aipal:{cache}:expiry %lld a %lld b %lld c", now - 1, now + 3600000,
              now + 3600000);
    redis_int(rc, "ZADD aipal:{cache}:stored %lld a %lld b %lld c", now, now - 48LL * 3600000, now);
    cJSON *r = wt_run(c, "cleanup_cache", "{}", AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_double_eq(wt_num(r, "result_cache.retired.expired_removed"), 1);
    ck_assert_double_eq(wt_num(r, "result_cache.default.old_removed"), 0);
    ck_assert_double_eq(wt_num(r, "app_cache.expired_removed"), 1);
    ck_assert_double_eq(wt_num(r, "old_removed"), 0);
    cJSON_Delete(r);
    ck_assert_int_eq(redis_int(rc, "HEXISTS %s %s", rdone, a), 0);
    ck_assert_int_eq(redis_int(rc, "ZCARD %s", rexp), 0);
    ck_assert_int_eq(redis_int(rc, "HEXISTS %s %s", done, a), 1);
    ck_assert_int_eq(redis_int(rc, "HEXISTS %s %s", done, b), 1);
    ck_assert_int_eq(redis_int(rc, "HEXISTS aipal:{cache}:data a"), 0);
    r = wt_run(c, "cleanup_cache", "{\"cleanup_expired_only\":false,\"max_age_hours\":24}",
               AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_double_eq(wt_num(r, "result_cache.default.old_removed"), 1);
    ck_assert_double_eq(wt_num(r, "app_cache.old_removed"), 1);
    cJSON_Delete(r);
    ck_assert_int_eq(redis_int(rc, "HEXISTS %s %s", done, b), 0);
    ck_assert_int_eq(redis_int(rc, "HEXISTS aipal:{cache}:data b"), 0);
    ck_assert_int_eq(redis_int(rc, "HEXISTS aipal:{cache}:data c"), 1);
    ck_assert_int_eq(redis_int(rc, "ZCARD aipal:{cache}:stored"), 1);
    redis_int(rc, "DEL aipal:{cache}:data aipal:{cache}:expiry aipal:{cache}:stored");
    redisFree(rc);
    char *msg = failed_with("cleanup_cache", "{\"max_age_hours\":\"1\"}");
    ck_assert_str_eq(msg, "invalid params: max_age_hours: must be an integer between 0 and 87600");
    free(msg);
}
END_TEST

START_TEST(maintenance_retention_policy)
{
    wt_sql("INSERT INTO ari_snapshots (user_id, \"timestamp\", engagement) SELECT 'ret-u', now()"
           " - interval '400 days', 0.5 FROM generate_series(1, 3);"
           "INSERT INTO audit_logs (created_at, action) SELECT now() - interval '100 days', 'ret'"
           " FROM generate_series(1, 5)");
    char e1[AIPALQ_ID_SIZE], e2[AIPALQ_ID_SIZE], f1[AIPALQ_ID_SIZE];
    wt_enqueue(c, "echo", "{}", e1);
    wt_enqueue(c, "echo", "{}", e2);
    wt_enqueue(c, "fail", "{\"message\":\"x\"}", f1);
    aipalq_task_free(wt_wait(c, e1, 20000, -1));
    aipalq_task_free(wt_wait(c, e2, 20000, -1));
    aipalq_task_free(wt_wait(c, f1, 20000, -1));
    wt_sql("UPDATE aipalq_tasks SET completed_at = now() - interval '20 days' WHERE id = '%s';"
           "UPDATE aipalq_tasks SET completed_at = now() - interval '40 days' WHERE id = '%s'",
           e1, f1);
    /* A whole old week, as a partition of its own. */
    wt_sql("CREATE TABLE aipalq_tasks_20240101 PARTITION OF aipalq_tasks FOR VALUES FROM"
           " (aipalq_uuid_floor('2024-01-01 00:00+00')) TO (aipalq_uuid_floor('2024-01-08 "
           "00:00+00'));"
           "INSERT INTO aipalq_tasks (id, namespace, type, queue, status, created_at,"
           " completed_at) VALUES"
           " ((substr(aipalq_uuid_floor('2024-01-02 00:00+00')::text, 1, 35) || '1')::uuid,"
           "  '%s', 'echo', 'default', 'completed', '2024-01-02', '2024-01-02')",
           ns);
    char old[512], young[512];
    snprintf(old, sizeof old, "%s/old.tmp", cfg.temp_dir);
    snprintf(young, sizeof young, "%s/young.tmp", cfg.temp_dir);
    mkdir(cfg.temp_dir, 0755);
    FILE *f = fopen(old, "w");
    fputs("old", f);
    fclose(f);
    f = fopen(young, "w");
    fputs("young", f);
    fclose(f);
    struct timeval tv[2] = {{time(NULL) - 10 * 86400, 0}, {time(NULL) - 10 * 86400, 0}};
    utimes(old, tv);
    /* Only completed tasks: no partition may be dropped. */
    cJSON *r = wt_run(c, "enforce_retention_policy", "{\"policy\":{\"completed_tasks\":14}}",
                      AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_double_eq(wt_num(r, "results.tasks.partitions_dropped"), 0);
    ck_assert_double_eq(wt_num(r, "results.tasks.completed_tasks.deleted"), 2);
    ck_assert_ptr_null(wt_get(r, "results.ari_snapshots"));
    cJSON_Delete(r);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM aipalq_tasks WHERE id = '%s'", e1), 0);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM aipalq_events WHERE task_id = '%s'", e1), 0);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM aipalq_tasks WHERE id = '%s'", e2), 1);
    /* Another namespace's finished task in that week: its rows are not ours
     * to delete one by one, but the whole week may go. */
    wt_sql("INSERT INTO aipalq_tasks (id, namespace, type, queue, status, created_at,"
           " completed_at) VALUES"
           " ((substr(aipalq_uuid_floor('2024-01-03 00:00+00')::text, 1, 35) || '2')::uuid,"
           "  'someone_else', 'fail', 'default', 'failed', '2024-01-03', '2024-01-03')");
    /* The default policy (empty object). */
    r = wt_run(c, "enforce_retention_policy", "{\"policy\":{}}", AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_double_eq(wt_num(r, "policy.completed_tasks"), 14);
    ck_assert_double_eq(wt_num(r, "results.ari_snapshots.rows"), 3);
    ck_assert_double_eq(wt_num(r, "results.audit_logs.rows"), 5);
    ck_assert_str_eq(wt_str(r, "results.audit_logs.action"), "archived");
    ck_assert_double_eq(wt_num(r, "results.tasks.partitions_dropped"), 1);
    ck_assert_double_eq(wt_num(r, "results.tasks.rows_in_dropped_partitions"), 1);
    ck_assert_double_eq(wt_num(r, "results.tasks.failed_tasks.deleted"), 1);
    ck_assert_double_eq(wt_num(r, "results.temp_files.files"), 1);
    cJSON_Delete(r);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM aipalq_tasks WHERE id = '%s'", f1), 0);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM pg_class WHERE relname = "
                                "'aipalq_tasks_20240101'"),
                     0);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM ari_snapshots WHERE user_id = 'ret-u'"), 0);
    ck_assert_int_eq(access(old, F_OK), -1);
    ck_assert_int_eq(access(young, F_OK), 0);
    char *msg = failed_with("enforce_retention_policy", "{\"policy\":{\"forever\":1}}");
    ck_assert_str_eq(msg, "invalid params: policy.forever: unknown field");
    free(msg);
}
END_TEST

/* -------------------------------------------------------- diagnostics */

START_TEST(diagnostics_echo_sleep_fail)
{
    const char *params = "{\"message\":\"hi\",\"data\":{\"n\":1,\"list\":[1,2]}}";
    cJSON *r = wt_run(c, "echo", params, AIPALQ_STATE_COMPLETED, NULL);
    cJSON *want = cJSON_Parse(params);
    ck_assert(cJSON_Compare(r, want, 1));
    cJSON_Delete(want);
    cJSON_Delete(r);
    r = wt_run(c, "sleep", "{\"ms\":50}", AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_double_ge(wt_num(r, "slept_ms"), 50);
    ck_assert_double_eq(wt_num(r, "requested_ms"), 50);
    cJSON_Delete(r);
    /* A cancelled sleep stops early. */
    char id[AIPALQ_ID_SIZE];
    wt_enqueue(c, "sleep", "{\"ms\":20000}", id);
    aipalq_task_free(wt_wait(c, id, 20000, AIPALQ_STATE_RUNNING));
    int64_t t0 = wt_now_ms();
    ck_assert_int_eq(aipalq_cancel(c, id, NULL), AIPALQ_OK);
    aipalq_task *t = wt_wait(c, id, 10000, -1);
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_CANCELLED);
    ck_assert_int_lt(wt_now_ms() - t0, 5000);
    aipalq_task_free(t);
    char *msg = failed_with("fail", "{\"message\":\"boom\"}");
    ck_assert_str_eq(msg, "boom");
    free(msg);
    wt_enqueue(c, "fail", "{\"message\":\"again\",\"retryable\":true}", id);
    t = wt_wait(c, id, 20000, AIPALQ_STATE_RETRYING);
    ck_assert_str_eq(aipalq_task_error_message(t), "again");
    aipalq_task_free(t);
    aipalq_cancel(c, id, NULL);
    msg = failed_with("sleep", "{\"ms\":-1}");
    ck_assert_str_eq(msg, "invalid params: ms: must be an integer between 0 and 3600000");
    free(msg);
    aipalq_task *bad;
    cJSON_Delete(wt_run(c, "echo", "{\"nope\":1}", AIPALQ_STATE_FAILED, &bad));
    ck_assert_str_eq(aipalq_task_error_message(bad), "invalid params: nope: unknown field");
    cJSON *detail = cJSON_Parse(aipalq_task_error_detail(bad));
    ck_assert_str_eq(wt_str(detail, "0.field"), "nope");
    cJSON_Delete(detail);
    aipalq_task_free(bad);
}
END_TEST

int main(void)
{
    wt_require_services();
    if (getenv("AIPAL_TEST_DEBUG"))
        log_set_level(LOG_DEBUG);
    if (!mkdtemp(tmpdir))
        return 1;
    wt_scratch_db_begin("tasks");
    wt_unique("wt_tasks_", ns, sizeof ns);
    c = wt_client(ns);
    config_defaults(&cfg);
    char artifacts[300], temp[300];
    snprintf(artifacts, sizeof artifacts, "%s/artifacts", tmpdir);
    snprintf(temp, sizeof temp, "%s/tmp", tmpdir);
    free(cfg.artifacts_dir);
    free(cfg.temp_dir);
    cfg.artifacts_dir = artifacts;
    cfg.temp_dir = temp;
    cfg.ns = ns;
    cfg.train_epochs = 30;
    cfg.benchmark_iterations = 50;
    ww = wt_worker_start(ns, &cfg, 2);

    Suite *s = suite_create("worker_tasks");
    TCase *tc = tcase_create("tasks");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, ari_aggregate_snapshots);
    tcase_add_test(tc, ari_trends_and_alerts);
    tcase_add_test(tc, ffe_plan_goal);
    tcase_add_test(tc, ffe_track_progress);
    tcase_add_test(tc, edm_batch);
    tcase_add_test(tc, edm_resolutions);
    tcase_add_test(tc, edm_misinformation);
    tcase_add_test(tc, model_finetune_evaluate_benchmark);
    tcase_add_test(tc, model_external_trainer);
    tcase_add_test(tc, maintenance_archive_audit_logs);
    tcase_add_test(tc, maintenance_database);
    tcase_add_test(tc, maintenance_cleanup_cache);
    tcase_add_test(tc, maintenance_retention_policy);
    tcase_add_test(tc, diagnostics_echo_sleep_fail);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    wt_worker_stop(ww);
    aipalq_client_free(c);
    wt_scratch_db_end();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return failed ? 1 : 0;
}
