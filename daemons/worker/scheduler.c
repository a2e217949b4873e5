/* The periodic scheduler; see scheduler.h. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include <aipal/aipalq.h>

#include "catalog.h"
#include "log.h"
#include "scheduler.h"

#define LEASE_NAME   "scheduler"
#define MAX_PER_TICK 100

struct scheduler {
    char *redis_url, *database_url, *ns, *holder;
    int64_t lease_ms, catchup_ms;
    schedule sched;
    worker_metrics *metrics;
    aipalq_client *client;
    PGconn *conn;
    atomic_int leader;
    long long fence;
    pthread_t thread;
    int running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    const volatile int *stop_flag;
};

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int check_entry(const schedule_entry *e, char *err, size_t errlen)
{
    const catalog_type *t = catalog_find(e->type);
    if (!t) {
        snprintf(err, errlen, "schedule entry \"%s\": type: unknown task type %s", e->name,
                 e->type);
        return -1;
    }
    if (e->priority && e->priority > t->max_priority) {
        snprintf(err, errlen, "schedule entry \"%s\": priority: at most %d for %s", e->name,
                 t->max_priority, e->type);
        return -1;
    }
    if (e->queue[0] && !catalog_queue_known(e->queue)) {
        snprintf(err, errlen, "schedule entry \"%s\": queue: unknown queue %s", e->name, e->queue);
        return -1;
    }
    cJSON *params = cJSON_Parse(e->params_json);
    cJSON *errors = cJSON_CreateArray();
    cJSON *norm = catalog_validate(t, params, "params.", errors);
    int rc = 0;
    if (!norm) {
        const cJSON *first = cJSON_GetArrayItem(errors, 0);
        snprintf(err, errlen, "schedule entry \"%s\": %s: %s", e->name,
                 first ? cJSON_GetStringValue(cJSON_GetObjectItem(first, "field")) : "params",
                 first ? cJSON_GetStringValue(cJSON_GetObjectItem(first, "error")) : "invalid");
        rc = -1;
    }
    cJSON_Delete(norm);
    cJSON_Delete(params);
    cJSON_Delete(errors);
    return rc;
}

scheduler *scheduler_new(const scheduler_config *cfg, const schedule *sched,
                         worker_metrics *metrics, char *err, size_t errlen)
{
    for (size_t i = 0; i < sched->n; i++)
        if (check_entry(&sched->entries[i], err, errlen) != 0)
            return NULL;
    scheduler *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->redis_url = dup_or_null(cfg->redis_url);
    s->database_url =
        dup_or_null(cfg->database_url ? cfg->database_url : getenv("AIPALQ_DATABASE_URL"));
    s->ns = dup_or_null(cfg->ns);
    s->holder = dup_or_null(cfg->holder ? cfg->holder : "aipal-worker");
    s->lease_ms = cfg->lease_ms > 0 ? cfg->lease_ms : 15000;
    s->catchup_ms = cfg->catchup_ms >= 0 ? cfg->catchup_ms : 3600000;
    s->metrics = metrics;
    s->stop_flag = cfg->stop_flag;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->sched.entries = calloc(sched->n ? sched->n : 1, sizeof *s->sched.entries);
    if (!s->sched.entries) {
        scheduler_free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < sched->n; i++) {
        s->sched.entries[i] = sched->entries[i];
        s->sched.entries[i].params_json = strdup(sched->entries[i].params_json);
        s->sched.n++;
        if (!s->sched.entries[i].params_json) {
            scheduler_free(s);
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
    }
    s->client = aipalq_client_new(s->redis_url, s->database_url);
    if (!s->client || (s->ns && aipalq_client_set_namespace(s->client, s->ns) != AIPALQ_OK) ||
        catalog_define_all(s->client) != AIPALQ_OK) {
        snprintf(err, errlen, "scheduler client: %s",
                 s->client ? aipalq_client_errmsg(s->client) : "out of memory");
        scheduler_free(s);
        return NULL;
    }
    return s;
}

void scheduler_free(scheduler *s)
{
    if (!s)
        return;
    scheduler_stop(s);
    schedule_free(&s->sched);
    aipalq_client_free(s->client);
    if (s->conn)
        PQfinish(s->conn);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->redis_url);
    free(s->database_url);
    free(s->ns);
    free(s->holder);
    free(s);
}

void scheduler_set_holder(scheduler *s, const char *holder)
{
    char *h = holder ? strdup(holder) : NULL;
    if (h) {
        free(s->holder);
        s->holder = h;
    }
}

int scheduler_is_leader(const scheduler *s)
{
    return s ? atomic_load(&((scheduler *)s)->leader) : 0;
}

static void set_leader(scheduler *s, int leader)
{
    int was = atomic_exchange(&s->leader, leader);
    metrics_scheduler_leader(s->metrics, leader);
    if (was != leader) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "holder", s->holder);
        cJSON_AddNumberToObject(f, "fence", (double)s->fence);
        log_json(LOG_INFO, leader ? "scheduler.leader" : "scheduler.follower", f);
    }
}

/* ------------------------------------------------------------- database */

static void on_notice(void *arg, const char *message)
{
    (void)arg;
    log_msg(LOG_DEBUG, "db.notice", "%s", message);
}

/* The scheduler's connection. With `fresh` (at the start of a pass), a
 * transaction left open by an interrupted pass is rolled back. */
static PGconn *db(scheduler *s, int fresh)
{
    if (s->conn && PQstatus(s->conn) != CONNECTION_OK) {
        PQfinish(s->conn);
        s->conn = NULL;
    }
    if (!s->conn && !fresh)
        return NULL; /* lost in the middle of a pass: never reconnect inside a transaction */
    if (s->conn && fresh && PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
        PQclear(PQexec(s->conn, "ROLLBACK"));
        if (PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
            PQfinish(s->conn);
            s->conn = NULL;
        }
    }
    if (!s->conn) {
        const char *keys[] = {"dbname", "application_name", "connect_timeout", NULL};
        const char *vals[] = {s->database_url ? s->database_url : "", "aipal-worker-scheduler",
                              "10", NULL};
        s->conn = PQconnectdbParams(keys, vals, 1);
        if (PQstatus(s->conn) != CONNECTION_OK) {
            log_msg(LOG_WARN, "scheduler.error", "database: %s", PQerrorMessage(s->conn));
            PQfinish(s->conn);
            s->conn = NULL;
        } else {
            PQsetNoticeProcessor(s->conn, on_notice, NULL);
        }
    }
    return s->conn;
}

/* Runs a statement; NULL (logged) on failure. */
static PGresult *q(scheduler *s, const char *sql, int n, const char *const *v)
{
    PGconn *c = db(s, 0);
    if (!c)
        return NULL;
    PGresult *r = PQexecParams(c, sql, n, NULL, v, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return r;
    log_msg(LOG_WARN, "scheduler.error", "database: %s", PQresultErrorMessage(r));
    PQclear(r);
    return NULL;
}

static int lease(scheduler *s, int64_t now)
{
    char now_s[32], ms[32];
    snprintf(now_s, sizeof now_s, "%lld", (long long)now);
    snprintf(ms, sizeof ms, "%lld", (long long)s->lease_ms);
    const char *p[] = {s->holder, now_s, ms};
    PGresult *r =
        q(s,
          "INSERT INTO aipal_scheduler_lease AS l (name, holder, fence, acquired_at,"
          " expires_at) VALUES ('" LEASE_NAME "', $1, 1,"
          " to_timestamp($2::bigint / 1000.0),"
          " to_timestamp(($2::bigint + $3::bigint) / 1000.0))"
          " ON CONFLICT (name) DO UPDATE SET"
          " fence = CASE WHEN l.holder = EXCLUDED.holder THEN l.fence ELSE l.fence + 1 END,"
          " acquired_at = CASE WHEN l.holder = EXCLUDED.holder THEN l.acquired_at"
          "   ELSE EXCLUDED.acquired_at END,"
          " holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at"
          " WHERE l.holder = EXCLUDED.holder OR l.expires_at <= EXCLUDED.acquired_at"
          " RETURNING fence",
          3, p);
    if (!r)
        return -1;
    int leader = PQntuples(r) == 1;
    if (leader)
        s->fence = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    set_leader(s, leader);
    return leader;
}

void scheduler_release(scheduler *s)
{
    if (!s || !scheduler_is_leader(s) || !s->conn)
        return;
    const char *p[] = {s->holder};
    PGresult *r = q(s,
                    "UPDATE aipal_scheduler_lease SET expires_at = to_timestamp(0)"
                    " WHERE name = '" LEASE_NAME "' AND holder = $1",
                    1, p);
    PQclear(r);
    set_leader(s, 0);
}

/* ---------------------------------------------------------------- firing */

typedef enum fire_result { FIRE_DONE, FIRE_ALREADY, FIRE_NOT_LEADER, FIRE_ERROR } fire_result;

static void rollback(scheduler *s)
{
    if (s->conn)
        PQclear(PQexec(s->conn, "ROLLBACK"));
}

/* Enqueues one firing of entry e at fire_ms (or, with skip, only records it
 * as the last firing). */
static fire_result fire(scheduler *s, const schedule_entry *e, int64_t fire_ms, int64_t now,
                        int skip)
{
    char now_s[32], fire_s[32];
    snprintf(now_s, sizeof now_s, "%lld", (long long)now);
    snprintf(fire_s, sizeof fire_s, "%lld", (long long)fire_ms);
    PGresult *r = q(s, "BEGIN", 0, NULL);
    if (!r)
        return FIRE_ERROR;
    PQclear(r);
    const char *lp[] = {s->holder, now_s};
    r = q(s,
          "SELECT fence FROM aipal_scheduler_lease WHERE name = '" LEASE_NAME "' AND holder = $1"
          " AND expires_at > to_timestamp($2::bigint / 1000.0) FOR UPDATE",
          2, lp);
    if (!r) {
        rollback(s);
        return FIRE_ERROR;
    }
    int held = PQntuples(r) == 1;
    PQclear(r);
    if (!held) {
        rollback(s);
        return FIRE_NOT_LEADER;
    }
    const char *sp[] = {e->name, fire_s};
    r = q(s,
          "SELECT last_fire_at >= to_timestamp($2::bigint / 1000.0) FROM aipal_schedule_state"
          " WHERE name = $1 FOR UPDATE",
          2, sp);
    if (!r) {
        rollback(s);
        return FIRE_ERROR;
    }
    int already = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (already) {
        rollback(s);
        return FIRE_ALREADY;
    }
    char id[AIPALQ_ID_SIZE] = "";
    int created = 0;
    if (!skip) {
        aipalq_opts *o = aipalq_opts_new();
        char key[200];
        snprintf(key, sizeof key, "cron:%s:%lld", e->name, (long long)fire_ms);
        aipalq_status st = o ? aipalq_opts_set_idempotency_key(o, key) : AIPALQ_ENOMEM;
        if (st == AIPALQ_OK && e->priority)
            st = aipalq_opts_set_priority(o, e->priority);
        if (st == AIPALQ_OK && e->queue[0])
            st = aipalq_opts_set_queue(o, e->queue);
        if (st == AIPALQ_OK)
            st = aipalq_enqueue_tx(s->client, s->conn, e->type, e->params_json, o, id, &created);
        aipalq_opts_free(o);
        if (st != AIPALQ_OK) {
            log_msg(LOG_WARN, "scheduler.error", "enqueue of %s: %s", e->name,
                    aipalq_client_errmsg(s->client));
            rollback(s);
            return FIRE_ERROR;
        }
    }
    const char *up[] = {e->name, fire_s, id[0] ? id : NULL, skip ? "0" : "1"};
    r = q(s,
          "INSERT INTO aipal_schedule_state (name, last_fire_at, last_task_id, fired_count)"
          " VALUES ($1, to_timestamp($2::bigint / 1000.0), $3::uuid, $4::int)"
          " ON CONFLICT (name) DO UPDATE SET last_fire_at = EXCLUDED.last_fire_at,"
          " last_task_id = coalesce(EXCLUDED.last_task_id, aipal_schedule_state.last_task_id),"
          " fired_count = aipal_schedule_state.fired_count + EXCLUDED.fired_count,"
          " updated_at = now()",
          4, up);
    if (!r) {
        rollback(s);
        return FIRE_ERROR;
    }
    PQclear(r);
    r = q(s, "COMMIT", 0, NULL);
    if (!r)
        return FIRE_ERROR;
    PQclear(r);
    if (!skip) {
        metrics_scheduler_fired(s->metrics);
        cJSON *f = cJSON_CreateObject();
        char iso[40];
        time_t t = (time_t)(fire_ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
        cJSON_AddStringToObject(f, "schedule", e->name);
        cJSON_AddStringToObject(f, "type", e->type);
        cJSON_AddStringToObject(f, "fire_time", iso);
        cJSON_AddStringToObject(f, "task_id", id);
        cJSON_AddBoolToObject(f, "created", created);
        log_json(LOG_INFO, "scheduler.fired", f);
    }
    return FIRE_DONE;
}

static int64_t db_now(scheduler *s)
{
    PGresult *r = q(s, "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint", 0, NULL);
    if (!r)
        return -1;
    int64_t now = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return now;
}

int scheduler_tick(scheduler *s, int64_t now)
{
    if (!db(s, 1)) {
        set_leader(s, 0);
        return -1;
    }
    if (now == 0 && (now = db_now(s)) < 0) {
        set_leader(s, 0);
        return -1;
    }
    int rc = lease(s, now);
    if (rc <= 0)
        return rc;
    PGresult *st = q(s,
                     "SELECT name, (extract(epoch FROM last_fire_at) * 1000)::bigint"
                     " FROM aipal_schedule_state",
                     0, NULL);
    if (!st)
        return -1;
    int fired = 0;
    for (size_t i = 0; i < s->sched.n && fired < MAX_PER_TICK; i++) {
        const schedule_entry *e = &s->sched.entries[i];
        int64_t last = -1;
        for (int k = 0; k < PQntuples(st); k++)
            if (strcmp(PQgetvalue(st, k, 0), e->name) == 0)
                last = strtoll(PQgetvalue(st, k, 1), NULL, 10);
        if (last < 0) {
            /* First sighting: fire from the next instant on. */
            char now_s[32];
            snprintf(now_s, sizeof now_s, "%lld", (long long)now);
            const char *p[] = {e->name, now_s};
            PGresult *r = q(s,
                            "INSERT INTO aipal_schedule_state (name, last_fire_at)"
                            " VALUES ($1, to_timestamp($2::bigint / 1000.0))"
                            " ON CONFLICT (name) DO NOTHING",
                            2, p);
            PQclear(r);
            continue;
        }
        int64_t next = cron_next(&e->expr, last);
        if (next > 0 && next <= now && s->catchup_ms >= 0 && next < now - s->catchup_ms) {
            /* Too old to make up: record the skip, continue from the window. */
            int64_t from = now - s->catchup_ms - 1;
            int64_t skip_to = from;
            if (fire(s, e, skip_to, now, 1) != FIRE_DONE) {
                PQclear(st);
                return fired;
            }
            cJSON *f = cJSON_CreateObject();
            cJSON_AddStringToObject(f, "schedule", e->name);
            cJSON_AddNumberToObject(f, "first_skipped_ms", (double)next);
            cJSON_AddNumberToObject(f, "skipped_until_ms", (double)skip_to);
            log_json(LOG_WARN, "scheduler.skipped", f);
            next = cron_next(&e->expr, skip_to);
        }
        while (next > 0 && next <= now && fired < MAX_PER_TICK) {
            fire_result fr = fire(s, e, next, now, 0);
            if (fr == FIRE_NOT_LEADER) {
                set_leader(s, 0);
                PQclear(st);
                return fired;
            }
            if (fr == FIRE_ERROR) {
                PQclear(st);
                return fired ? fired : -1;
            }
            fired += fr == FIRE_DONE;
            next = cron_next(&e->expr, next);
        }
    }
    PQclear(st);
    if (fired > 0)
        aipalq_relay_outbox(s->client, 1000, NULL);
    return fired;
}

/* --------------------------------------------------------------- thread */

static void *run(void *arg)
{
    scheduler *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop && !(s->stop_flag && *s->stop_flag)) {
        pthread_mutex_unlock(&s->mu);
        scheduler_tick(s, 0);
        pthread_mutex_lock(&s->mu);
        if (s->stop || (s->stop_flag && *s->stop_flag))
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        /* Wake at the next whole second, so that firings are on time. */
        ts.tv_sec += 1;
        ts.tv_nsec = 5 * 1000 * 1000;
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    scheduler_release(s);
    return NULL;
}

int scheduler_start(scheduler *s)
{
    if (s->running)
        return 0;
    s->stop = 0;
    if (pthread_create(&s->thread, NULL, run, s) != 0)
        return -1;
    s->running = 1;
    return 0;
}

void scheduler_stop(scheduler *s)
{
    if (!s || !s->running)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->running = 0;
}
