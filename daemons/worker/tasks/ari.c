/* ARI tasks: aggregate_ari_snapshots and analyze_ari_trends. The math is in
 * compute/stats.c; this is the glue to ari_snapshots, ari_aggregates and
 * ari_alerts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "stats.h"
#include "task.h"

#define NMETRICS 9

static const char *const metrics[NMETRICS] = {
    "decision_quality",      "skill_development",  "ai_reliance",
    "bottleneck_resolution", "user_confidence",    "engagement",
    "autonomy_perception",   "autonomy_retention", "delta_agency"};

/* The metrics whose decline raises an alert (the original's four). */
static const char *const alert_metrics[] = {"autonomy_retention", "decision_quality",
                                            "skill_development", "engagement", NULL};

#define SNAPSHOT_COLUMNS                                                                           \
    "user_id, (extract(epoch FROM \"timestamp\") * 1000)::bigint, decision_quality, "              \
    "skill_development, ai_reliance, bottleneck_resolution, user_confidence, engagement, "         \
    "autonomy_perception, autonomy_retention, delta_agency"

/* The values of metric m (column 2 + m) for rows [from, to) that are not
 * NULL, with their times. Returns the count. */
static size_t metric_series(PGresult *r, int from, int to, int m, double *v, int64_t *t)
{
    size_t n = 0;
    for (int i = from; i < to; i++) {
        if (PQgetisnull(r, i, 2 + m))
            continue;
        v[n] = strtod(PQgetvalue(r, i, 2 + m), NULL);
        t[n] = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        n++;
    }
    return n;
}

static cJSON *summary_json(const stats_summary *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "count", (double)s->count);
    cJSON_AddNumberToObject(o, "mean", s->mean);
    cJSON_AddNumberToObject(o, "min", s->min);
    cJSON_AddNumberToObject(o, "max", s->max);
    cJSON_AddNumberToObject(o, "stddev", s->stddev);
    cJSON_AddNumberToObject(o, "latest", s->latest);
    task_add_time(o, "latest_at", s->latest_ms);
    return o;
}

#define MAX_USERS_IN_RESULT 100

void handle_aggregate_ari_snapshots(aipalq_job *job, void *userdata)
{
    task_ctx ctx;
    PGresult *win = NULL, *rows = NULL;
    cJSON *store = NULL;
    if (task_begin(&ctx, job, userdata) != 0)
        goto out;
    const char *user = task_str(&ctx, "user_id", NULL);
    int hours = (int)task_num(&ctx, "time_window_hours", 24);
    char hours_s[16];
    snprintf(hours_s, sizeof hours_s, "%d", hours);
    const char *wp[] = {hours_s};
    win = task_sql(
        &ctx,
        "SELECT (extract(epoch FROM now() - make_interval(hours => $1::int)) * 1000)::bigint,"
        " (extract(epoch FROM now()) * 1000)::bigint",
        1, wp);
    if (!win)
        goto out;
    const char *start_s = PQgetvalue(win, 0, 0), *end_s = PQgetvalue(win, 0, 1);
    const char *qp[] = {start_s, end_s, user};
    rows = task_sql(&ctx,
                    user ? "SELECT " SNAPSHOT_COLUMNS " FROM ari_snapshots"
                           " WHERE \"timestamp\" > to_timestamp($1::bigint / 1000.0)"
                           " AND \"timestamp\" <= to_timestamp($2::bigint / 1000.0)"
                           " AND user_id = $3 ORDER BY user_id, \"timestamp\", snapshot_id"
                         : "SELECT " SNAPSHOT_COLUMNS " FROM ari_snapshots"
                           " WHERE \"timestamp\" > to_timestamp($1::bigint / 1000.0)"
                           " AND \"timestamp\" <= to_timestamp($2::bigint / 1000.0)"
                           " ORDER BY user_id, \"timestamp\", snapshot_id",
                    user ? 3 : 2, qp);
    if (!rows)
        goto out;
    int nrows = PQntuples(rows);
    double *v = malloc(sizeof(double) * (size_t)(nrows ? nrows : 1));
    int64_t *t = malloc(sizeof(int64_t) * (size_t)(nrows ? nrows : 1));
    cJSON *result = cJSON_CreateObject(), *by_user = cJSON_CreateObject();
    store = cJSON_CreateArray();
    if (!v || !t || !result || !by_user || !store) {
        free(v);
        free(t);
        cJSON_Delete(result);
        cJSON_Delete(by_user);
        task_fail(&ctx, NULL, 1, "out of memory");
        goto out;
    }
    int users = 0, written = 0;
    for (int from = 0; from < nrows;) {
        const char *uid = PQgetvalue(rows, from, 0);
        int to = from;
        while (to < nrows && strcmp(PQgetvalue(rows, to, 0), uid) == 0)
            to++;
        cJSON *per = users < MAX_USERS_IN_RESULT ? cJSON_AddObjectToObject(by_user, uid) : NULL;
        cJSON_AddNumberToObject(per, "snapshots", to - from);
        cJSON *mets = per ? cJSON_AddObjectToObject(per, "metrics") : NULL;
        for (int m = 0; m < NMETRICS; m++) {
            size_t n = metric_series(rows, from, to, m, v, t);
            if (n == 0)
                continue;
            stats_summary s;
            stats_summarize(v, t, n, &s);
            if (mets)
                cJSON_AddItemToObject(mets, metrics[m], summary_json(&s));
            cJSON *row = summary_json(&s);
            cJSON_AddStringToObject(row, "user_id", uid);
            cJSON_AddStringToObject(row, "metric", metrics[m]);
            cJSON_AddNumberToObject(row, "latest_ms", (double)s.latest_ms);
            cJSON_AddItemToArray(store, row);
            written++;
        }
        users++;
        if (users % 50 == 0)
            task_progress(&ctx, (int)(80LL * to / nrows), "aggregated %d users", users);
        from = to;
    }
    free(v);
    free(t);
    /* Store: this task's rows replace any it wrote on an earlier attempt. */
    char *store_json = cJSON_PrintUnformatted(store);
    const char *sp[] = {aipalq_job_id(job), start_s, end_s, store_json ? store_json : "[]"};
    int ok = store_json && task_exec(&ctx, "BEGIN", 0, NULL) == 0 &&
             task_exec(&ctx, "DELETE FROM ari_aggregates WHERE task_id = $1", 1, sp) == 0 &&
             task_exec(&ctx,
                       "INSERT INTO ari_aggregates (task_id, user_id, metric, window_start,"
                       " window_end, count, mean, min, max, stddev, latest, latest_at)"
                       " SELECT $1::uuid, x.user_id, x.metric, to_timestamp($2::bigint / 1000.0),"
                       " to_timestamp($3::bigint / 1000.0), x.count, x.mean, x.min, x.max,"
                       " x.stddev, x.latest, to_timestamp(x.latest_ms / 1000.0)"
                       " FROM jsonb_to_recordset($4::jsonb) AS x(user_id text, metric text,"
                       " count integer, mean float8, min float8, max float8, stddev float8,"
                       " latest float8, latest_ms float8)",
                       4, sp) == 0 &&
             task_exec(&ctx, "COMMIT", 0, NULL) == 0;
    free(store_json);
    if (!ok) {
        cJSON_Delete(result);
        cJSON_Delete(by_user);
        task_fail(&ctx, NULL, 1, "out of memory");
        goto out;
    }
    cJSON *w = cJSON_AddObjectToObject(result, "window");
    task_add_time(w, "start", strtoll(start_s, NULL, 10));
    task_add_time(w, "end", strtoll(end_s, NULL, 10));
    cJSON_AddNumberToObject(w, "hours", hours);
    if (user)
        cJSON_AddStringToObject(result, "user_id", user);
    else
        cJSON_AddNullToObject(result, "user_id");
    cJSON_AddNumberToObject(result, "users", users);
    cJSON_AddNumberToObject(result, "snapshots", nrows);
    cJSON_AddItemToObject(result, "aggregates", by_user);
    cJSON_AddBoolToObject(result, "truncated", users > MAX_USERS_IN_RESULT);
    cJSON *counts = cJSON_CreateObject();
    cJSON_AddNumberToObject(counts, "users", users);
    cJSON_AddNumberToObject(counts, "snapshots", nrows);
    cJSON_AddNumberToObject(counts, "aggregates_written", written);
    task_succeed(&ctx, result, counts);
out:
    cJSON_Delete(store);
    PQclear(win);
    PQclear(rows);
    task_end(&ctx);
}

static int is_alert_metric(const char *name)
{
    for (const char *const *p = alert_metrics; *p; p++)
        if (strcmp(*p, name) == 0)
            return 1;
    return 0;
}

void handle_analyze_ari_trends(aipalq_job *job, void *userdata)
{
    task_ctx ctx;
    PGresult *rows = NULL;
    if (task_begin(&ctx, job, userdata) != 0)
        goto out;
    const char *user = task_str(&ctx, "user_id", "");
    int days = (int)task_num(&ctx, "lookback_days", 30);
    double threshold = task_num(&ctx, "threshold_percent", 10.0);
    char days_s[16];
    snprintf(days_s, sizeof days_s, "%d", days);
    const char *qp[] = {user, days_s};
    rows = task_sql(&ctx,
                    "SELECT " SNAPSHOT_COLUMNS " FROM ari_snapshots WHERE user_id = $1"
                    " AND \"timestamp\" > now() - make_interval(days => $2::int)"
                    " AND \"timestamp\" <= now() ORDER BY \"timestamp\", snapshot_id",
                    2, qp);
    if (!rows)
        goto out;
    int nrows = PQntuples(rows);
    double *v = malloc(sizeof(double) * (size_t)(nrows ? nrows : 1));
    int64_t *t = malloc(sizeof(int64_t) * (size_t)(nrows ? nrows : 1));
    cJSON *result = cJSON_CreateObject();
    if (!v || !t || !result) {
        free(v);
        free(t);
        cJSON_Delete(result);
        task_fail(&ctx, NULL, 1, "out of memory");
        goto out;
    }
    cJSON_AddStringToObject(result, "user_id", user);
    cJSON_AddNumberToObject(result, "lookback_days", days);
    cJSON_AddNumberToObject(result, "threshold_percent", threshold);
    cJSON_AddNumberToObject(result, "snapshots", nrows);
    cJSON *trends = cJSON_AddObjectToObject(result, "trends");
    cJSON *alerts = cJSON_AddArrayToObject(result, "alerts");
    int nalerts = 0, critical = 0;
    for (int m = 0; m < NMETRICS; m++) {
        size_t n = metric_series(rows, 0, nrows, m, v, t);
        if (n == 0)
            continue;
        stats_trend tr;
        stats_trend_compute(v, t, n, threshold, &tr);
        cJSON *o = cJSON_AddObjectToObject(trends, metrics[m]);
        cJSON_AddNumberToObject(o, "count", (double)n);
        cJSON_AddNumberToObject(o, "first", tr.first);
        cJSON_AddNumberToObject(o, "latest", tr.summary.latest);
        cJSON_AddNumberToObject(o, "mean", tr.summary.mean);
        cJSON_AddNumberToObject(o, "stddev", tr.summary.stddev);
        if (tr.has_change)
            cJSON_AddNumberToObject(o, "change_percent", tr.change_percent);
        else
            cJSON_AddNullToObject(o, "change_percent");
        cJSON_AddNumberToObject(o, "slope_per_day", tr.slope_per_day);
        cJSON_AddNumberToObject(o, "z_score", tr.z_score);
        cJSON_AddStringToObject(o, "direction",
                                !tr.has_change          ? "unknown"
                                : tr.change_percent < 0 ? "declining"
                                : tr.change_percent > 0 ? "improving"
                                                        : "stable");
        if (tr.severity == STATS_SEVERITY_NONE || !is_alert_metric(metrics[m]))
            continue;
        char msg[256];
        snprintf(msg, sizeof msg, "%s declined %.1f%% over %d days (%s)", metrics[m],
                 -tr.change_percent, days, stats_severity_name(tr.severity));
        cJSON *a = cJSON_CreateObject();
        cJSON_AddStringToObject(a, "metric", metrics[m]);
        cJSON_AddStringToObject(a, "severity", stats_severity_name(tr.severity));
        cJSON_AddNumberToObject(a, "change_percent", tr.change_percent);
        cJSON_AddNumberToObject(a, "slope_per_day", tr.slope_per_day);
        cJSON_AddNumberToObject(a, "z_score", tr.z_score);
        cJSON_AddNumberToObject(a, "first_value", tr.first);
        cJSON_AddNumberToObject(a, "latest_value", tr.summary.latest);
        cJSON_AddStringToObject(a, "message", msg);
        cJSON_AddItemToArray(alerts, a);
        nalerts++;
        critical += tr.severity == STATS_SEVERITY_CRITICAL;
    }
    free(v);
    free(t);
    /* Store the alerts (again on a repeated attempt: the same rows). */
    char *alerts_json = cJSON_PrintUnformatted(alerts);
    char thr[32];
    snprintf(thr, sizeof thr, "%.17g", threshold);
    const char *ap[] = {aipalq_job_id(job), user, alerts_json ? alerts_json : "[]", thr, days_s};
    int ok = alerts_json &&
             task_exec(&ctx,
                       "INSERT INTO ari_alerts (task_id, user_id, metric, severity, change_percent,"
                       " slope_per_day, z_score, first_value, latest_value, threshold_percent,"
                       " lookback_days, message)"
                       " SELECT $1::uuid, $2, x.metric, x.severity, x.change_percent,"
                       " x.slope_per_day, x.z_score, x.first_value, x.latest_value, $4::float8,"
                       " $5::int, x.message"
                       " FROM jsonb_to_recordset($3::jsonb) AS x(metric text, severity text,"
                       " change_percent float8, slope_per_day float8, z_score float8,"
                       " first_value float8, latest_value float8, message text)"
                       " ON CONFLICT (task_id, user_id, metric) DO UPDATE SET"
                       " severity = EXCLUDED.severity, change_percent = EXCLUDED.change_percent,"
                       " slope_per_day = EXCLUDED.slope_per_day, z_score = EXCLUDED.z_score,"
                       " first_value = EXCLUDED.first_value, latest_value = EXCLUDED.latest_value,"
                       " message = EXCLUDED.message",
                       5, ap) == 0;
    free(alerts_json);
    if (!ok) {
        cJSON_Delete(result);
        task_fail(&ctx, NULL, 1, "out of memory");
        goto out;
    }
    cJSON *counts = cJSON_CreateObject();
    cJSON_AddNumberToObject(counts, "snapshots", nrows);
    cJSON_AddNumberToObject(counts, "metrics", cJSON_GetArraySize(trends));
    cJSON_AddNumberToObject(counts, "alerts", nalerts);
    cJSON_AddNumberToObject(counts, "critical_alerts", critical);
    task_succeed(&ctx, result, counts);
out:
    PQclear(rows);
    task_end(&ctx);
}
