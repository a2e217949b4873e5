/* Task snapshots: reading one from a row, its accessors, its JSON form, and
 * lookup by id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "internal.h"

void aipalq__task_clear(aipalq_task *t)
{
    free(t->type);
    free(t->queue);
    free(t->params);
    free(t->result);
    free(t->error_message);
    free(t->error_detail);
    free(t->worker_id);
    free(t->user_id);
    free(t->idempotency_key);
    free(t->progress_message);
    free(t->json);
    memset(t, 0, sizeof *t);
}

/* Copies a column; NULL for SQL NULL. Sets *ok to false when memory runs out. */
static char *column(const PGresult *res, int row, int col, bool *ok)
{
    if (PQgetisnull(res, row, col))
        return NULL;
    char *s = aipalq__strdup(PQgetvalue(res, row, col));
    if (!s)
        *ok = false;
    return s;
}

static int int_column(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : atoi(PQgetvalue(res, row, col));
}

bool aipalq__task_from_row(aipalq_task *t, const PGresult *res, int row, int col0)
{
    bool ok = true;
    memset(t, 0, sizeof *t);
    snprintf(t->id, sizeof t->id, "%s", PQgetvalue(res, row, col0));
    t->type = column(res, row, col0 + 1, &ok);
    t->queue = column(res, row, col0 + 2, &ok);
    if (aipalq_state_parse(PQgetvalue(res, row, col0 + 3), &t->state) != AIPALQ_OK)
        t->state = AIPALQ_STATE_PENDING;
    t->priority = int_column(res, row, col0 + 4);
    t->params = column(res, row, col0 + 5, &ok);
    t->result = column(res, row, col0 + 6, &ok);
    t->error_message = column(res, row, col0 + 7, &ok);
    t->error_detail = column(res, row, col0 + 8, &ok);
    t->attempts = int_column(res, row, col0 + 9);
    t->max_retries = int_column(res, row, col0 + 10);
    t->created_ms = aipalq__pg_ms(res, row, col0 + 11);
    t->started_ms = aipalq__pg_ms(res, row, col0 + 12);
    t->completed_ms = aipalq__pg_ms(res, row, col0 + 13);
    t->updated_ms = aipalq__pg_ms(res, row, col0 + 14);
    t->run_at_ms = aipalq__pg_ms(res, row, col0 + 15);
    t->worker_id = column(res, row, col0 + 16, &ok);
    t->user_id = column(res, row, col0 + 17, &ok);
    t->idempotency_key = column(res, row, col0 + 18, &ok);
    t->progress = int_column(res, row, col0 + 19);
    t->progress_message = column(res, row, col0 + 20, &ok);
    t->cancel_requested = PQgetvalue(res, row, col0 + 21)[0] == 't';
    t->epoch = int_column(res, row, col0 + 22);
    if (!t->params && ok)
        ok = (t->params = aipalq__strdup("{}")) != NULL;
    if (!ok)
        aipalq__task_clear(t);
    return ok;
}

aipalq_status aipalq_get(aipalq_client *c, const char *id, aipalq_task **out)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    if (!out)
        return aipalq__fail(c, AIPALQ_EINVAL, "out must not be NULL");
    *out = NULL;
    if (!aipalq__uuid_valid(id))
        return aipalq__fail(c, AIPALQ_EBADID, "'%.40s' is not a task id (a UUID)", id ? id : "");
    PGresult *res;
    const char *params[] = {id};
    aipalq_status st = aipalq__pg_exec_prepared(c, AIPALQ__STMT_GET_TASK, 1, params, &res);
    if (st != AIPALQ_OK)
        return st;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return aipalq__fail(c, AIPALQ_ENOTFOUND, "no task with id %s", id);
    }
    aipalq_task *t = malloc(sizeof *t);
    if (!t || !aipalq__task_from_row(t, res, 0, 0)) {
        free(t);
        PQclear(res);
        return aipalq__fail(c, AIPALQ_ENOMEM, "out of memory reading task %s", id);
    }
    PQclear(res);
    *out = t;
    return aipalq__ok(c);
}

void aipalq_task_free(aipalq_task *t)
{
    if (!t)
        return;
    aipalq__task_clear(t);
    free(t);
}

#define ACCESSOR(type, name, field, fallback)                                                      \
    type aipalq_task_##name(const aipalq_task *t)                                                  \
    {                                                                                              \
        return t ? t->field : fallback;                                                            \
    }

ACCESSOR(const char *, id, id, NULL)
ACCESSOR(const char *, type, type, NULL)
ACCESSOR(const char *, queue, queue, NULL)
ACCESSOR(aipalq_state, state, state, AIPALQ_STATE_PENDING)
ACCESSOR(int, priority, priority, 0)
ACCESSOR(const char *, params, params, NULL)
ACCESSOR(const char *, result, result, NULL)
ACCESSOR(const char *, error_message, error_message, NULL)
ACCESSOR(const char *, error_detail, error_detail, NULL)
ACCESSOR(int, attempts, attempts, 0)
ACCESSOR(int, max_retries, max_retries, 0)
ACCESSOR(int64_t, created_ms, created_ms, 0)
ACCESSOR(int64_t, started_ms, started_ms, 0)
ACCESSOR(int64_t, completed_ms, completed_ms, 0)
ACCESSOR(int64_t, updated_ms, updated_ms, 0)
ACCESSOR(int64_t, run_at_ms, run_at_ms, 0)
ACCESSOR(const char *, worker_id, worker_id, NULL)
ACCESSOR(const char *, user_id, user_id, NULL)
ACCESSOR(const char *, idempotency_key, idempotency_key, NULL)
ACCESSOR(int, progress, progress, 0)
ACCESSOR(const char *, progress_message, progress_message, NULL)
ACCESSOR(int, cancel_requested, cancel_requested, 0)

/* Adds a JSON value parsed from text, or null when absent or unparsable. */
static void add_raw_json(cJSON *o, const char *key, const char *text)
{
    cJSON *v = text ? cJSON_Parse(text) : NULL;
    cJSON_AddItemToObject(o, key, v ? v : cJSON_CreateNull());
}

static void add_text(cJSON *o, const char *key, const char *text)
{
    if (text)
        cJSON_AddStringToObject(o, key, text);
    else
        cJSON_AddNullToObject(o, key);
}

/* Instants as ISO 8601 UTC with milliseconds, the API's format. */
static void add_time(cJSON *o, const char *key, int64_t ms)
{
    if (!ms) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char buf[64];
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    cJSON_AddStringToObject(o, key, buf);
}

const char *aipalq_task_json(const aipalq_task *ct)
{
    if (!ct)
        return NULL;
    aipalq_task *t = (aipalq_task *)ct; /* the cache is not part of the value */
    if (t->json)
        return t->json;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "task_id", t->id);
    add_text(o, "task_type", t->type);
    add_text(o, "queue", t->queue);
    cJSON_AddStringToObject(o, "status", aipalq_state_name(t->state));
    cJSON_AddNumberToObject(o, "priority", t->priority);
    add_text(o, "user_id", t->user_id);
    add_raw_json(o, "params", t->params);
    add_raw_json(o, "result", t->result);
    add_text(o, "error_message", t->error_message);
    add_text(o, "error_detail", t->error_detail);
    cJSON_AddNumberToObject(o, "attempts", t->attempts);
    cJSON_AddNumberToObject(o, "max_retries", t->max_retries);
    add_time(o, "created_at", t->created_ms);
    add_time(o, "started_at", t->started_ms);
    add_time(o, "completed_at", t->completed_ms);
    add_time(o, "updated_at", t->updated_ms);
    add_time(o, "run_at", t->run_at_ms);
    if (t->started_ms && t->completed_ms)
        cJSON_AddNumberToObject(o, "duration_seconds",
                                (double)(t->completed_ms - t->started_ms) / 1000.0);
    else
        cJSON_AddNullToObject(o, "duration_seconds");
    add_text(o, "worker_id", t->worker_id);
    add_text(o, "idempotency_key", t->idempotency_key);
    cJSON_AddNumberToObject(o, "progress", t->progress);
    add_text(o, "progress_message", t->progress_message);
    cJSON_AddBoolToObject(o, "cancel_requested", t->cancel_requested);
    t->json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return t->json;
}
