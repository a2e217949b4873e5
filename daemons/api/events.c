/* The events thread: polls PostgreSQL for task state changes and new tasks
 * while the event stream has subscribers, sends heartbeats, and refreshes
 * the metrics' task counts. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <aipal/aipalq.h>
#include <libpq-fe.h>

#include "events.h"
#include "idset.h"
#include "log.h"
#include "sse.h"
#include "taskcounts.h"
#include "util.h"

#define HEARTBEAT_MS 15000
#define HOLE_TTL_MS  10000 /* an event id skipped this long ago is given up on */
#define MAX_HOLES    1024
#define OVERLAP_MS   2000 /* new tasks are read again for this long (late commits) */
#define EVENTS_PAGE  "1000"
#define CREATED_PAGE 2000
#define RECONNECT_MS 2000

/* Transitions after the last one seen, and ones skipped earlier (ids of
 * transactions that had not committed yet). */
static const char events_sql[] =
    "SELECT e.id, e.task_id::text, e.from_status, e.to_status,"
    " (extract(epoch FROM e.at) * 1000)::bigint, e.attempt, e.worker_id, e.message,"
    " t.type, t.queue, (extract(epoch FROM e.started_at) * 1000)::bigint"
    " FROM aipalq_events e LEFT JOIN aipalq_tasks t ON t.id = e.task_id"
    " WHERE e.id > $1 OR e.id = ANY($2::bigint[])"
    " ORDER BY e.id LIMIT " EVENTS_PAGE;

/* New tasks by id (UUIDv7: creation order) from a floor instant. */
/* ORDER BY t.id: a bare "id" would be the output column id::text, a sort of
 * every row since the floor instead of a walk of the primary key. */
static const char created_sql[] =
    "SELECT t.id::text, t.type, t.queue, t.status FROM aipalq_tasks t"
    " WHERE t.id >= aipalq_uuid_floor(to_timestamp($1::double precision / 1000))"
    " AND t.id > $2::uuid ORDER BY t.id LIMIT 2000";

/* The last event before the subscriptions began. */
static const char cursor_sql[] = "SELECT coalesce(max(id), 0) FROM aipalq_events"
                                 " WHERE at < to_timestamp($1::double precision / 1000)";

typedef struct hole {
    int64_t id, since_ms;
} hole;

static struct {
    const api_config *cfg;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop, started;
    PGconn *pg;
    bool pg_failed_logged;
    int64_t next_connect_ms;
    bool cursors_set;
    int64_t last_event_id;
    hole holes[MAX_HOLES];
    size_t nholes;
    int64_t created_ms;                 /* newest creation instant seen */
    int64_t announce_from_ms;           /* tasks created before are not news */
    char created_after[AIPALQ_ID_SIZE]; /* resume point of a full page */
    idset seen;
    int64_t last_heartbeat_ms;
} ev;

/* ------------------------------------------------------------ connection */

static bool connect_pg(int64_t now)
{
    if (ev.pg && PQstatus(ev.pg) == CONNECTION_OK)
        return true;
    if (now < ev.next_connect_ms)
        return false;
    PQfinish(ev.pg);
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *values[] = {ev.cfg->database_url ? ev.cfg->database_url : "", "5",
                            "aipal-api events", NULL};
    ev.pg = PQconnectdbParams(keys, values, 1);
    if (PQstatus(ev.pg) == CONNECTION_OK) {
        if (ev.pg_failed_logged)
            log_msg("info", "events: PostgreSQL connection restored");
        ev.pg_failed_logged = false;
        return true;
    }
    if (!ev.pg_failed_logged)
        log_msg("warning", "events: cannot connect to PostgreSQL (retrying every %d ms): %s",
                RECONNECT_MS, PQerrorMessage(ev.pg));
    ev.pg_failed_logged = true;
    ev.next_connect_ms = now + RECONNECT_MS;
    return false;
}

/* Runs a query; on failure logs, drops the connection (so the next round
 * reconnects) and returns NULL. */
static PGresult *query(const char *sql, int nparams, const char *const *params)
{
    PGresult *res = PQexecParams(ev.pg, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        return res;
    log_msg("warning", "events: query failed: %s", PQresultErrorMessage(res));
    PQclear(res);
    if (PQstatus(ev.pg) != CONNECTION_OK) {
        PQfinish(ev.pg);
        ev.pg = NULL;
    }
    return NULL;
}

/* ---------------------------------------------------------------- frames */

static void add_text(cJSON *o, const char *key, PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        cJSON_AddNullToObject(o, key);
    else
        cJSON_AddStringToObject(o, key, PQgetvalue(res, row, col));
}

/* Sends one event to the matching subscribers. */
static void emit(cJSON *data, const char *id_line, const char *task_id, const char *type,
                 const char *queue)
{
    char *json = cJSON_PrintUnformatted(data);
    cJSON_Delete(data);
    if (!json)
        return;
    size_t len = strlen(json) + strlen(id_line) + 32;
    char *frame = malloc(len);
    if (frame) {
        int n = snprintf(frame, len, "event: task\n%sdata: %s\n\n", id_line, json);
        sse_broadcast(task_id, type, queue, frame, (size_t)n);
    }
    free(frame);
    free(json);
}

static void emit_transition(PGresult *res, int row)
{
    char at[40], id_line[48];
    util_iso8601(strtoll(PQgetvalue(res, row, 4), NULL, 10), at, sizeof at);
    snprintf(id_line, sizeof id_line, "id: %s\n", PQgetvalue(res, row, 0));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", "transition");
    cJSON_AddNumberToObject(o, "event_id", (double)strtoll(PQgetvalue(res, row, 0), NULL, 10));
    add_text(o, "task_id", res, row, 1);
    add_text(o, "type", res, row, 8);
    add_text(o, "queue", res, row, 9);
    add_text(o, "from", res, row, 2);
    add_text(o, "status", res, row, 3);
    cJSON_AddStringToObject(o, "at", at);
    if (PQgetisnull(res, row, 5))
        cJSON_AddNullToObject(o, "attempt");
    else
        cJSON_AddNumberToObject(o, "attempt", atoi(PQgetvalue(res, row, 5)));
    add_text(o, "worker_id", res, row, 6);
    add_text(o, "message", res, row, 7);
    /* When the delivery began: on a running event, and on an outcome whose
     * start was recorded with it (no running event of its own). */
    if (PQgetisnull(res, row, 10)) {
        cJSON_AddNullToObject(o, "started_at");
    } else {
        char started[40];
        util_iso8601(strtoll(PQgetvalue(res, row, 10), NULL, 10), started, sizeof started);
        cJSON_AddStringToObject(o, "started_at", started);
    }
    emit(o, id_line, PQgetvalue(res, row, 1),
         PQgetisnull(res, row, 8) ? NULL : PQgetvalue(res, row, 8),
         PQgetisnull(res, row, 9) ? NULL : PQgetvalue(res, row, 9));
}

/* The creation instant of a UUIDv7, in Unix ms. */
static int64_t uuid_ms(const char *id)
{
    char hex[13];
    memcpy(hex, id, 8);
    memcpy(hex + 8, id + 9, 4);
    hex[12] = '\0';
    return strtoll(hex, NULL, 16);
}

static void emit_created(PGresult *res, int row)
{
    const char *id = PQgetvalue(res, row, 0);
    char at[40];
    util_iso8601(uuid_ms(id), at, sizeof at);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", "created");
    cJSON_AddStringToObject(o, "task_id", id);
    add_text(o, "type", res, row, 1);
    add_text(o, "queue", res, row, 2);
    cJSON_AddNullToObject(o, "from");
    add_text(o, "status", res, row, 3);
    cJSON_AddStringToObject(o, "at", at);
    emit(o, "", id, PQgetvalue(res, row, 1), PQgetvalue(res, row, 2));
}

/* --------------------------------------------------------------- polling */

static void holes_expire(int64_t now)
{
    size_t kept = 0;
    for (size_t i = 0; i < ev.nholes; i++)
        if (now - ev.holes[i].since_ms < HOLE_TTL_MS)
            ev.holes[kept++] = ev.holes[i];
    ev.nholes = kept;
}

static bool hole_take(int64_t id)
{
    for (size_t i = 0; i < ev.nholes; i++)
        if (ev.holes[i].id == id) {
            ev.holes[i] = ev.holes[--ev.nholes];
            return true;
        }
    return false;
}

/* Ids between the last seen and `id` may belong to transactions still open. */
static void holes_add(int64_t from, int64_t to, int64_t now)
{
    if (to - from > MAX_HOLES)
        return;
    for (int64_t id = from; id < to && ev.nholes < MAX_HOLES; id++)
        ev.holes[ev.nholes++] = (hole){id, now};
}

static void holes_param(char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "{");
    for (size_t i = 0; i < ev.nholes && used + 24 < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%lld", i ? "," : "",
                                 (long long)ev.holes[i].id);
    snprintf(buf + used, len - used, "}");
}

static void poll_events(int64_t now)
{
    static char holes[MAX_HOLES * 22 + 8];
    char last[24];
    holes_expire(now);
    holes_param(holes, sizeof holes);
    snprintf(last, sizeof last, "%lld", (long long)ev.last_event_id);
    const char *params[] = {last, holes};
    PGresult *res = query(events_sql, 2, params);
    for (int i = 0; res && i < PQntuples(res); i++) {
        int64_t id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        if (id > ev.last_event_id) {
            holes_add(ev.last_event_id + 1, id, now);
            ev.last_event_id = id;
        } else if (!hole_take(id)) {
            continue;
        }
        emit_transition(res, i);
    }
    PQclear(res);
}

static void poll_created(int64_t now)
{
    char floor_ms[24];
    snprintf(floor_ms, sizeof floor_ms, "%lld", (long long)(ev.created_ms - OVERLAP_MS));
    const char *params[] = {floor_ms, ev.created_after};
    PGresult *res = query(created_sql, 2, params);
    int n = res ? PQntuples(res) : 0;
    for (int i = 0; i < n; i++) {
        const char *id = PQgetvalue(res, i, 0);
        int64_t ms = uuid_ms(id);
        if (idset_add(&ev.seen, id, ms) && ms >= ev.announce_from_ms)
            emit_created(res, i);
        if (ms > ev.created_ms && ms <= now + 60000)
            ev.created_ms = ms;
    }
    /* A full page: continue after its last id; else from the floor again. */
    if (n == CREATED_PAGE)
        snprintf(ev.created_after, sizeof ev.created_after, "%s", PQgetvalue(res, n - 1, 0));
    else
        snprintf(ev.created_after, sizeof ev.created_after, "00000000-0000-0000-0000-000000000000");
    PQclear(res);
    idset_prune(&ev.seen, ev.created_ms - OVERLAP_MS - 1000);
}

/* Starts from the moment the first subscriber arrived. */
static bool set_cursors(void)
{
    char since[24];
    int64_t since_ms = sse_since_ms();
    snprintf(since, sizeof since, "%lld", (long long)since_ms);
    const char *params[] = {since};
    PGresult *res = query(cursor_sql, 1, params);
    if (!res)
        return false;
    ev.last_event_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    ev.created_ms = since_ms;
    ev.announce_from_ms = since_ms;
    ev.nholes = 0;
    idset_clear(&ev.seen);
    snprintf(ev.created_after, sizeof ev.created_after, "00000000-0000-0000-0000-000000000000");
    ev.cursors_set = true;
    return true;
}

static void round_once(void)
{
    int64_t now = util_now_ms();
    bool subscribers = sse_client_count() > 0;
    if (!subscribers)
        ev.cursors_set = false;
    if (subscribers && now - ev.last_heartbeat_ms >= HEARTBEAT_MS) {
        sse_heartbeat();
        ev.last_heartbeat_ms = now;
    }
    bool counts = taskcounts_due(now);
    if ((!subscribers && !counts) || !connect_pg(now))
        return;
    if (subscribers && (ev.cursors_set || set_cursors())) {
        poll_events(now);
        poll_created(now);
    }
    if (counts && ev.pg)
        taskcounts_refresh(ev.pg, now);
}

static void *run(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&ev.lock);
    while (!ev.stop) {
        pthread_mutex_unlock(&ev.lock);
        round_once();
        pthread_mutex_lock(&ev.lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        int64_t ns = until.tv_nsec + (int64_t)ev.cfg->events_poll_ms * 1000000;
        until.tv_sec += ns / 1000000000;
        until.tv_nsec = ns % 1000000000;
        if (!ev.stop)
            pthread_cond_timedwait(&ev.cond, &ev.lock, &until);
    }
    pthread_mutex_unlock(&ev.lock);
    return NULL;
}

int events_start(const api_config *cfg)
{
    ev.cfg = cfg;
    pthread_mutex_init(&ev.lock, NULL);
    pthread_cond_init(&ev.cond, NULL);
    if (pthread_create(&ev.thread, NULL, run, NULL) != 0)
        return -1;
    ev.started = true;
    return 0;
}

void events_stop(void)
{
    if (!ev.started)
        return;
    pthread_mutex_lock(&ev.lock);
    ev.stop = true;
    pthread_cond_signal(&ev.cond);
    pthread_mutex_unlock(&ev.lock);
    pthread_join(ev.thread, NULL);
    ev.started = false;
    PQfinish(ev.pg);
    ev.pg = NULL;
    idset_clear(&ev.seen);
}
