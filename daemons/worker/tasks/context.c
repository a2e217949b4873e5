/* The task context: params, per-thread connection, results, errors, logs. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "task.h"

/* ---------------------------------------------------------------- time */

int64_t task_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t task_wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

const char *task_iso8601(int64_t unix_ms, char *buf, size_t len)
{
    time_t s = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(unix_ms % 1000));
    return buf;
}

void task_add_time(cJSON *obj, const char *name, int64_t unix_ms)
{
    char b[40];
    if (unix_ms == 0)
        cJSON_AddNullToObject(obj, name);
    else
        cJSON_AddStringToObject(obj, name, task_iso8601(unix_ms, b, sizeof b));
}

/* ------------------------------------------------------------- logging */

static cJSON *task_fields(const task_ctx *ctx)
{
    cJSON *f = cJSON_CreateObject();
    if (!f)
        return NULL;
    cJSON_AddStringToObject(f, "task_id", aipalq_job_id(ctx->job));
    cJSON_AddStringToObject(f, "type", aipalq_job_type(ctx->job));
    cJSON_AddStringToObject(f, "queue", aipalq_job_queue(ctx->job));
    cJSON_AddNumberToObject(f, "attempt", aipalq_job_attempt(ctx->job));
    cJSON_AddNumberToObject(f, "max_retries", aipalq_job_max_retries(ctx->job));
    const char *user = aipalq_job_user_id(ctx->job);
    if (user)
        cJSON_AddStringToObject(f, "user_id", user);
    return f;
}

static void log_outcome(task_ctx *ctx, log_level level, const char *event, metrics_outcome outcome,
                        cJSON *extra)
{
    int64_t ms = task_mono_ms() - ctx->start_mono_ms;
    if (ctx->env)
        metrics_task_finished(ctx->env->metrics, ctx->type_index, outcome, ms);
    cJSON *f = task_fields(ctx);
    if (f) {
        cJSON_AddNumberToObject(f, "duration_ms", (double)ms);
        if (extra)
            while (extra->child) {
                cJSON *it = cJSON_DetachItemViaPointer(extra, extra->child);
                cJSON_AddItemToObject(f, it->string, it);
            }
    }
    cJSON_Delete(extra);
    log_json(level, event, f);
}

/* -------------------------------------------------------------- params */

int task_begin(task_ctx *ctx, aipalq_job *job, void *userdata)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->job = job;
    ctx->env = userdata;
    ctx->start_mono_ms = task_mono_ms();
    ctx->start_wall_ms = task_wall_ms();
    ctx->type = catalog_find(aipalq_job_type(job));
    ctx->type_index = -1;
    for (size_t i = 0; ctx->type && i < catalog_count(); i++)
        if (catalog_at(i) == ctx->type)
            ctx->type_index = (int)i;
    if (ctx->env)
        metrics_task_started(ctx->env->metrics, ctx->type_index);
    log_json(LOG_INFO, "task.started", task_fields(ctx));
    if (!ctx->type) {
        task_fail(ctx, NULL, 0, "task type %s is not in the catalog", aipalq_job_type(job));
        return -1;
    }
    cJSON *raw = cJSON_Parse(aipalq_job_params(job));
    cJSON *errors = cJSON_CreateArray();
    if (!errors) {
        cJSON_Delete(raw);
        task_fail(ctx, NULL, 1, "out of memory");
        return -1;
    }
    if (!raw) {
        catalog_add_error(errors, "", "params are not valid JSON");
    } else {
        ctx->params = catalog_validate(ctx->type, raw, NULL, errors);
    }
    cJSON_Delete(raw);
    if (ctx->params) {
        cJSON_Delete(errors);
        return 0;
    }
    const cJSON *first = cJSON_GetArrayItem(errors, 0);
    const char *field = first ? cJSON_GetStringValue(cJSON_GetObjectItem(first, "field")) : "";
    const char *why = first ? cJSON_GetStringValue(cJSON_GetObjectItem(first, "error")) : "invalid";
    char *detail = cJSON_PrintUnformatted(errors);
    char msg[600];
    snprintf(msg, sizeof msg, "invalid params: %s%s%s", field && *field ? field : "",
             field && *field ? ": " : "", why ? why : "invalid");
    aipalq_job_set_error(job, msg, detail, 0);
    cJSON *extra = cJSON_CreateObject();
    if (extra) {
        cJSON_AddStringToObject(extra, "error", msg);
        cJSON_AddItemToObject(extra, "errors", errors);
        cJSON_AddBoolToObject(extra, "retryable", 0);
    } else {
        cJSON_Delete(errors);
    }
    free(detail);
    ctx->ended = 1;
    log_outcome(ctx, LOG_WARN, "task.failed", METRICS_FAILED, extra);
    return -1;
}

const cJSON *task_param(const task_ctx *ctx, const char *name)
{
    const cJSON *v = ctx->params ? cJSON_GetObjectItemCaseSensitive(ctx->params, name) : NULL;
    return cJSON_IsNull(v) ? NULL : v;
}

const char *task_str(const task_ctx *ctx, const char *name, const char *def)
{
    const cJSON *v = task_param(ctx, name);
    return cJSON_IsString(v) ? v->valuestring : def;
}

double task_num(const task_ctx *ctx, const char *name, double def)
{
    const cJSON *v = task_param(ctx, name);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

int task_bool(const task_ctx *ctx, const char *name, int def)
{
    const cJSON *v = task_param(ctx, name);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

/* ------------------------------------------------------------ database */

typedef struct thread_conn {
    PGconn *conn;
    pid_t pid;
} thread_conn;

static pthread_key_t conn_key;
static pthread_once_t conn_once = PTHREAD_ONCE_INIT;

static void conn_destroy(void *p)
{
    thread_conn *t = p;
    /* Only the process that opened it may close it: a copy inherited over
     * fork() is left alone (closing it would end the parent's session). */
    if (t->conn && t->pid == getpid())
        PQfinish(t->conn);
    free(t);
}

static void conn_key_init(void)
{
    pthread_key_create(&conn_key, conn_destroy);
}

/* Server notices (e.g. "there is no transaction in progress") go to the
 * log at debug level, not raw to stderr. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    log_msg(LOG_DEBUG, "db.notice", "%s", message);
}

static PGconn *connect_db(const task_env *env)
{
    const char *url = env && env->cfg ? env->cfg->database_url : NULL;
    if (!url)
        url = getenv("AIPALQ_DATABASE_URL");
    const char *keys[] = {"dbname", "application_name", "connect_timeout", NULL};
    const char *vals[] = {url ? url : "", "aipal-worker", "10", NULL};
    return PQconnectdbParams(keys, vals, 1);
}

PGconn *task_db(task_ctx *ctx)
{
    pthread_once(&conn_once, conn_key_init);
    thread_conn *t = pthread_getspecific(conn_key);
    if (t && t->pid != getpid()) {
        t->conn = NULL; /* inherited: abandon it */
        t->pid = getpid();
    }
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t) {
            task_fail(ctx, NULL, 1, "out of memory");
            return NULL;
        }
        t->pid = getpid();
        pthread_setspecific(conn_key, t);
    }
    if (t->conn && PQstatus(t->conn) != CONNECTION_OK) {
        if (ctx->db_checked) {
            /* Lost in the middle of the task (and of any transaction). */
            task_fail(ctx, NULL, 1, "database: connection lost: %s", PQerrorMessage(t->conn));
            PQfinish(t->conn);
            t->conn = NULL;
            return NULL;
        }
        PQfinish(t->conn);
        t->conn = NULL;
    }
    if (t->conn && !ctx->db_checked && PQtransactionStatus(t->conn) != PQTRANS_IDLE) {
        PGresult *r = PQexec(t->conn, "ROLLBACK");
        PQclear(r);
        if (PQtransactionStatus(t->conn) != PQTRANS_IDLE) {
            PQfinish(t->conn);
            t->conn = NULL;
        }
    }
    if (!t->conn) {
        t->conn = connect_db(ctx->env);
        if (!t->conn || PQstatus(t->conn) != CONNECTION_OK) {
            task_fail(ctx, NULL, 1, "database: %s",
                      t->conn ? PQerrorMessage(t->conn) : "out of memory");
            PQfinish(t->conn);
            t->conn = NULL;
            return NULL;
        }
        PQsetNoticeProcessor(t->conn, on_notice, NULL);
    }
    ctx->db_checked = 1;
    return t->conn;
}

PGresult *task_sql(task_ctx *ctx, const char *sql, int n, const char *const *values)
{
    PGconn *c = task_db(ctx);
    if (!c)
        return NULL;
    PGresult *r = PQexecParams(c, sql, n, NULL, values, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return r;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(c));
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
        msg[--len] = '\0';
    PQclear(r);
    task_fail(ctx, NULL, 1, "database: %s", msg);
    return NULL;
}

int task_exec(task_ctx *ctx, const char *sql, int n, const char *const *values)
{
    PGresult *r = task_sql(ctx, sql, n, values);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

void task_end(task_ctx *ctx)
{
    if (!ctx->ended) {
        /* A handler that forgot its outcome: say so rather than complete. */
        task_fail(ctx, NULL, 0, "the handler ended without an outcome");
    }
    /* A transaction a failed handler left open would hold its locks until
     * this thread's next task: end it now. */
    thread_conn *t = ctx->db_checked ? pthread_getspecific(conn_key) : NULL;
    if (t && t->conn && t->pid == getpid() && PQtransactionStatus(t->conn) != PQTRANS_IDLE) {
        PQclear(PQexec(t->conn, "ROLLBACK"));
        if (PQtransactionStatus(t->conn) != PQTRANS_IDLE) {
            PQfinish(t->conn);
            t->conn = NULL;
        }
    }
    cJSON_Delete(ctx->params);
    ctx->params = NULL;
}

/* ------------------------------------------------------------ outcomes */

static void set_result(task_ctx *ctx, cJSON *result)
{
    char *text = result ? cJSON_PrintUnformatted(result) : NULL;
    cJSON_Delete(result);
    aipalq_status st = text ? aipalq_job_set_result(ctx->job, text) : AIPALQ_ENOMEM;
    free(text);
    ctx->ended = 1;
    if (st != AIPALQ_OK) {
        aipalq_job_set_error(ctx->job, "the result could not be stored", aipalq_status_name(st),
                             st == AIPALQ_ENOMEM);
        cJSON *extra = cJSON_CreateObject();
        if (extra)
            cJSON_AddStringToObject(extra, "error", aipalq_status_name(st));
        log_outcome(ctx, LOG_ERROR, "task.failed", METRICS_FAILED, extra);
        return;
    }
    log_outcome(ctx, LOG_INFO, "task.succeeded", METRICS_SUCCEEDED, NULL);
}

void task_succeed(task_ctx *ctx, cJSON *result, cJSON *counts)
{
    if (ctx->ended) {
        cJSON_Delete(result);
        cJSON_Delete(counts);
        return;
    }
    if (!result)
        result = cJSON_CreateObject();
    cJSON *meta = cJSON_CreateObject();
    if (!result || !meta) {
        cJSON_Delete(result);
        cJSON_Delete(meta);
        cJSON_Delete(counts);
        set_result(ctx, NULL);
        return;
    }
    int64_t end = task_wall_ms();
    cJSON_AddStringToObject(meta, "task_id", aipalq_job_id(ctx->job));
    cJSON_AddStringToObject(meta, "task_type", aipalq_job_type(ctx->job));
    cJSON_AddStringToObject(meta, "version", "aipal-worker " AIPAL_WORKER_VERSION);
    cJSON_AddNumberToObject(meta, "attempt", aipalq_job_attempt(ctx->job));
    task_add_time(meta, "started_at", ctx->start_wall_ms);
    task_add_time(meta, "completed_at", end);
    cJSON_AddNumberToObject(meta, "duration_ms", (double)(task_mono_ms() - ctx->start_mono_ms));
    cJSON_AddItemToObject(meta, "counts", counts ? counts : cJSON_CreateObject());
    cJSON_AddItemToObject(result, "metadata", meta);
    set_result(ctx, result);
}

void task_succeed_raw(task_ctx *ctx, cJSON *result)
{
    if (ctx->ended) {
        cJSON_Delete(result);
        return;
    }
    set_result(ctx, result ? result : cJSON_CreateNull());
}

void task_fail(task_ctx *ctx, const char *field, int retryable, const char *fmt, ...)
{
    if (ctx->ended)
        return;
    char why[1024], msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof msg, "%s%s%s", field ? field : "", field ? ": " : "", why);
    cJSON *d = cJSON_CreateObject();
    char *detail = NULL;
    if (d) {
        if (field)
            cJSON_AddStringToObject(d, "field", field);
        else
            cJSON_AddNullToObject(d, "field");
        cJSON_AddStringToObject(d, "error", why);
        detail = cJSON_PrintUnformatted(d);
        cJSON_Delete(d);
    }
    aipalq_job_set_error(ctx->job, msg, detail, retryable);
    free(detail);
    ctx->ended = 1;
    cJSON *extra = cJSON_CreateObject();
    if (extra) {
        cJSON_AddStringToObject(extra, "error", msg);
        if (field)
            cJSON_AddStringToObject(extra, "field", field);
        cJSON_AddBoolToObject(extra, "retryable", retryable);
    }
    log_outcome(ctx, retryable ? LOG_WARN : LOG_ERROR, "task.failed",
                retryable ? METRICS_FAILED_RETRY : METRICS_FAILED, extra);
}

void task_stopped(task_ctx *ctx, const char *where)
{
    if (ctx->ended)
        return;
    char msg[600];
    if (aipalq_job_cancel_requested(ctx->job)) {
        snprintf(msg, sizeof msg, "cancelled (%s)", where);
        aipalq_job_set_error(ctx->job, msg, NULL, 0);
        ctx->ended = 1;
        cJSON *extra = cJSON_CreateObject();
        if (extra)
            cJSON_AddStringToObject(extra, "stopped_at", where);
        log_outcome(ctx, LOG_INFO, "task.cancelled", METRICS_CANCELLED, extra);
        return;
    }
    if (aipalq_job_soft_limit_passed(ctx->job)) {
        task_fail(ctx, NULL, 0, "soft time limit exceeded (%s)", where);
        return;
    }
    /* The worker is stopping fast (or lost the lease): no outcome, so that
     * the library hands the task back without counting the attempt. */
    ctx->ended = 1;
    cJSON *extra = cJSON_CreateObject();
    if (extra)
        cJSON_AddStringToObject(extra, "stopped_at", where);
    log_outcome(ctx, LOG_WARN, "task.interrupted", METRICS_INTERRUPTED, extra);
}

int task_should_stop(const task_ctx *ctx)
{
    return aipalq_job_should_stop(ctx->job);
}

void task_progress(task_ctx *ctx, int percent, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    aipalq_job_progress(ctx->job, percent, msg);
    if (log_enabled(LOG_DEBUG)) {
        cJSON *f = task_fields(ctx);
        if (f) {
            cJSON_AddNumberToObject(f, "percent", percent);
            cJSON_AddStringToObject(f, "message", msg);
        }
        log_json(LOG_DEBUG, "task.progress", f);
    }
}
