/* Helpers of the aipal-worker tests; see wtest.h. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "catalog.h"
#include "domain_migrate.h"
#include "handlers.h"
#include "task.h"
#include "wtest.h"

static char *saved_url, *scratch_url, *scratch_name;

/* For setup code that may run outside a test (Check's assertions may not). */
#define MUST(cond, ...)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

void wt_require_services(void)
{
    if (!getenv("AIPALQ_REDIS_URL") || !getenv("AIPALQ_DATABASE_URL")) {
        fprintf(stderr, "AIPALQ_REDIS_URL and AIPALQ_DATABASE_URL must be set: run "
                        "`source scripts/services.sh; services_start` (or scripts/test.sh)\n");
        exit(1);
    }
}

const char *wt_db_url(void)
{
    return scratch_url ? scratch_url : getenv("AIPALQ_DATABASE_URL");
}

static char *with_db(const char *url, const char *db)
{
    const char *q = strchr(url, '?');
    size_t end = q ? (size_t)(q - url) : strlen(url);
    size_t slash = end;
    while (slash > 0 && url[slash - 1] != '/')
        slash--;
    size_t n = slash + strlen(db) + strlen(url + end) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)slash, url, db, url + end);
    return out;
}

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGconn *connect_to(const char *url)
{
    PGconn *c = PQconnectdb(url);
    PQsetNoticeProcessor(c, quiet, NULL);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "cannot connect to %s: %s\n", url, PQerrorMessage(c));
        exit(1);
    }
    return c;
}

static void exec_or_die(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "%s: %s\n", sql, PQresultErrorMessage(r));
        exit(1);
    }
    PQclear(r);
}

void wt_scratch_db_begin(const char *tag)
{
    wt_require_services();
    saved_url = strdup(getenv("AIPALQ_DATABASE_URL"));
    char name[96];
    snprintf(name, sizeof name, "aipal_wt_%s_%d", tag, (int)getpid());
    scratch_name = strdup(name);
    PGconn *c = connect_to(saved_url);
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    exec_or_die(c, sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    exec_or_die(c, sql);
    PQfinish(c);
    scratch_url = with_db(saved_url, name);
    setenv("AIPALQ_DATABASE_URL", scratch_url, 1);
    aipalq_client *q = aipalq_client_new(NULL, NULL);
    if (aipalq_migrate(q) != AIPALQ_OK) {
        fprintf(stderr, "migrate: %s\n", aipalq_client_errmsg(q));
        exit(1);
    }
    aipalq_client_free(q);
    c = connect_to(scratch_url);
    char err[512];
    if (domain_migrate(c, err, sizeof err) != domain_schema_latest()) {
        fprintf(stderr, "domain migrate: %s\n", err);
        exit(1);
    }
    PQfinish(c);
}

void wt_scratch_db_end(void)
{
    if (!scratch_url)
        return;
    if (getenv("AIPAL_TEST_KEEP_DB")) {
        fprintf(stderr, "kept database %s\n", scratch_url);
        return;
    }
    setenv("AIPALQ_DATABASE_URL", saved_url, 1);
    PGconn *c = connect_to(saved_url);
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", scratch_name);
    exec_or_die(c, sql);
    PQfinish(c);
    free(scratch_url);
    free(scratch_name);
    free(saved_url);
    scratch_url = scratch_name = saved_url = NULL;
}

static PGresult *vquery(const char *fmt, va_list ap)
{
    char *sql;
    if (vasprintf(&sql, fmt, ap) < 0)
        ck_abort_msg("out of memory");
    PGconn *c = connect_to(wt_db_url());
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
        PQfinish(c);
        free(sql);
        ck_abort_msg("%s", msg);
    }
    PQfinish(c);
    free(sql);
    return r;
}

void wt_sql(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PQclear(vquery(fmt, ap));
    va_end(ap);
}

long long wt_sql_int(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PGresult *r = vquery(fmt, ap);
    va_end(ap);
    ck_assert_msg(PQntuples(r) == 1, "expected one row, got %d", PQntuples(r));
    long long v = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

char *wt_sql_text(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PGresult *r = vquery(fmt, ap);
    va_end(ap);
    char *v = PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) ? strdup(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    return v;
}

aipalq_client *wt_client(const char *ns)
{
    aipalq_client *c = aipalq_client_new(NULL, NULL);
    MUST(c != NULL, "out of memory");
    MUST(aipalq_client_set_namespace(c, ns) == AIPALQ_OK, "namespace %s", ns);
    MUST(catalog_define_all(c) == AIPALQ_OK, "define: %s", aipalq_client_errmsg(c));
    return c;
}

struct wt_worker {
    aipalq_worker *w;
    pthread_t thread;
    task_env env;
};

static void *run_worker(void *arg)
{
    wt_worker *ww = arg;
    aipalq_worker_run(ww->w);
    return NULL;
}

wt_worker *wt_worker_start(const char *ns, worker_config *cfg, int concurrency)
{
    wt_worker *ww = calloc(1, sizeof *ww);
    aipalq_client *c = wt_client(ns);
    ww->w = aipalq_worker_new(c);
    aipalq_client_free(c);
    ww->env.cfg = cfg;
    ww->env.metrics = NULL;
    MUST(aipalq_worker_set_concurrency(ww->w, concurrency) == AIPALQ_OK, "concurrency");
    MUST(aipalq_worker_set_mode(ww->w, AIPALQ_MODE_THREADS) == AIPALQ_OK, "mode");
    MUST(aipalq_worker_set_lease_ms(ww->w, 5000) == AIPALQ_OK, "lease");
    char err[256];
    MUST(handlers_register(ww->w, NULL, &ww->env, err, sizeof err) == 17, "%s", err);
    MUST(pthread_create(&ww->thread, NULL, run_worker, ww) == 0, "pthread_create");
    return ww;
}

void wt_worker_stop(wt_worker *ww)
{
    if (!ww)
        return;
    aipalq_worker_stop(ww->w, 0);
    pthread_join(ww->thread, NULL);
    aipalq_worker_free(ww->w);
    free(ww);
}

void wt_enqueue(aipalq_client *c, const char *type, const char *params, char *id)
{
    aipalq_status st = aipalq_enqueue(c, type, params, NULL, id, NULL);
    ck_assert_msg(st == AIPALQ_OK, "enqueue %s: %s", type, aipalq_client_errmsg(c));
}

int64_t wt_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

void wt_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

aipalq_task *wt_wait(aipalq_client *c, const char *id, int64_t timeout_ms, int until)
{
    int64_t end = wt_now_ms() + timeout_ms;
    for (;;) {
        aipalq_task *t = NULL;
        aipalq_status st = aipalq_get(c, id, &t);
        ck_assert_msg(st == AIPALQ_OK, "get %s: %s", id, aipalq_client_errmsg(c));
        aipalq_state s = aipalq_task_state(t);
        if ((until >= 0 && (int)s == until) || (until < 0 && aipalq_state_is_final(s)))
            return t;
        if (wt_now_ms() > end) {
            char msg[512];
            snprintf(msg, sizeof msg, "task %s (%s) still %s after %lld ms: %s", id,
                     aipalq_task_type(t), aipalq_state_name(s), (long long)timeout_ms,
                     aipalq_task_error_message(t) ? aipalq_task_error_message(t) : "");
            aipalq_task_free(t);
            ck_abort_msg("%s", msg);
        }
        aipalq_task_free(t);
        wt_sleep_ms(30);
    }
}

cJSON *wt_run(aipalq_client *c, const char *type, const char *params, aipalq_state state,
              aipalq_task **task_out)
{
    char id[AIPALQ_ID_SIZE];
    wt_enqueue(c, type, params, id);
    aipalq_task *t = wt_wait(c, id, 60000, -1);
    ck_assert_msg(aipalq_task_state(t) == state, "%s %s: state %s, want %s; error: %s", type,
                  params, aipalq_state_name(aipalq_task_state(t)), aipalq_state_name(state),
                  aipalq_task_error_message(t) ? aipalq_task_error_message(t) : "(none)");
    cJSON *r = aipalq_task_result(t) ? cJSON_Parse(aipalq_task_result(t)) : NULL;
    if (task_out)
        *task_out = t;
    else
        aipalq_task_free(t);
    return r;
}

const cJSON *wt_get(const cJSON *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *cur = o;
    char *save = NULL;
    for (char *part = strtok_r(buf, ".", &save); part && cur; part = strtok_r(NULL, ".", &save)) {
        char *end;
        long idx = strtol(part, &end, 10);
        if (*end == '\0' && cJSON_IsArray(cur))
            cur = cJSON_GetArrayItem(cur, (int)idx);
        else
            cur = cJSON_GetObjectItemCaseSensitive(cur, part);
    }
    return cur;
}

double wt_num(const cJSON *o, const char *path)
{
    const cJSON *v = wt_get(o, path);
    ck_assert_msg(cJSON_IsNumber(v), "%s is not a number", path);
    return v->valuedouble;
}

const char *wt_str(const cJSON *o, const char *path)
{
    const cJSON *v = wt_get(o, path);
    ck_assert_msg(cJSON_IsString(v), "%s is not a string", path);
    return v->valuestring;
}

const char *wt_unique(const char *prefix, char *buf, size_t len)
{
    static int n;
    snprintf(buf, len, "%s%dx%d", prefix, (int)getpid(), ++n);
    return buf;
}
