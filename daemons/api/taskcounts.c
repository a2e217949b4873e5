/* Tasks by type and state. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "taskcounts.h"

#define REFRESH_MS 15000
#define WANTED_MS  300000

/* Unfinished tasks exactly (a small partial index); finished ones over the
 * last hour, which stays cheap however large the table grows. */
static const char counts_sql[] =
    "SELECT type, status, count(*) FROM aipalq_tasks"
    " WHERE status IN ('pending', 'scheduled', 'running', 'retrying') GROUP BY 1, 2"
    " UNION ALL"
    " SELECT type, status || '_last_hour', count(*) FROM aipalq_tasks"
    " WHERE status IN ('completed', 'failed', 'cancelled')"
    "   AND id >= aipalq_uuid_floor(now() - interval '1 hour') GROUP BY 1, 2";

static atomic_llong last_scrape_ms;
static int64_t last_refresh_ms;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *snapshot; /* Prometheus lines; guarded by lock */
static int64_t snapshot_ms;

void taskcounts_touch(int64_t now_ms)
{
    atomic_store(&last_scrape_ms, now_ms);
}

bool taskcounts_due(int64_t now_ms)
{
    int64_t scraped = atomic_load(&last_scrape_ms);
    return scraped && now_ms - scraped < WANTED_MS &&
           (now_ms - last_refresh_ms >= REFRESH_MS || last_refresh_ms < scraped - REFRESH_MS);
}

/* One metric family from the rows: finished (the "_last_hour" states) or not. */
static int render_family(metrics_buf *b, PGresult *res, bool finished)
{
    int rc = 0;
    for (int i = 0; i < PQntuples(res) && rc == 0; i++) {
        const char *state = PQgetvalue(res, i, 1);
        const char *suffix = strstr(state, "_last_hour");
        if ((suffix != NULL) != finished)
            continue;
        rc = metrics_printf(
            b, "%s{type=\"%s\",state=\"%.*s\"} %s\n",
            finished ? "aipal_tasks_finished_last_hour" : "aipal_tasks", PQgetvalue(res, i, 0),
            suffix ? (int)(suffix - state) : (int)strlen(state), state, PQgetvalue(res, i, 2));
    }
    return rc;
}

static char *render_rows(PGresult *res)
{
    metrics_buf b = {0};
    int rc = metrics_printf(&b, "# HELP aipal_tasks Unfinished tasks by type and state.\n"
                                "# TYPE aipal_tasks gauge\n");
    if (rc == 0)
        rc = render_family(&b, res, false);
    if (rc == 0)
        rc = metrics_printf(&b, "# HELP aipal_tasks_finished_last_hour Tasks created in the "
                                "last hour that finished, by type and final state.\n"
                                "# TYPE aipal_tasks_finished_last_hour gauge\n");
    if (rc == 0)
        rc = render_family(&b, res, true);
    if (rc != 0) {
        free(b.data);
        return NULL;
    }
    return b.data;
}

void taskcounts_refresh(PGconn *conn, int64_t now_ms)
{
    last_refresh_ms = now_ms;
    PGresult *res = PQexec(conn, counts_sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_msg("warning", "task counts for metrics failed: %s", PQresultErrorMessage(res));
        PQclear(res);
        return;
    }
    char *text = render_rows(res);
    PQclear(res);
    if (!text)
        return;
    pthread_mutex_lock(&lock);
    free(snapshot);
    snapshot = text;
    snapshot_ms = now_ms;
    pthread_mutex_unlock(&lock);
}

int taskcounts_render(metrics_buf *b, int64_t now_ms)
{
    int rc = 0;
    pthread_mutex_lock(&lock);
    if (rc == 0 && snapshot)
        rc = metrics_printf(b, "%s", snapshot);
    int64_t age = snapshot ? now_ms - snapshot_ms : -1;
    pthread_mutex_unlock(&lock);
    if (rc == 0)
        rc = metrics_printf(b,
                            "# HELP aipal_tasks_counts_age_seconds Age of the task counts "
                            "(-1: not counted yet; they refresh every 15 s while scraped).\n"
                            "# TYPE aipal_tasks_counts_age_seconds gauge\n"
                            "aipal_tasks_counts_age_seconds %.3f\n",
                            age < 0 ? -1.0 : (double)age / 1000.0);
    return rc;
}
