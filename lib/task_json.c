/* A task snapshot as one JSON object, written directly as text.
 *
 * Lists and status lookups render this object for every task they return, so
 * it is written in one pass into one buffer: params and result come from
 * PostgreSQL's jsonb output, which is always valid JSON, and are copied as
 * they are instead of being parsed and printed again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static void field_raw_json(aipalq__text *t, const char *name, const char *json)
{
    aipalq__text_json_key(t, name);
    aipalq__text_str(t, json && *json ? json : "null");
}

static void field_int(aipalq__text *t, const char *name, long long v)
{
    aipalq__text_json_key(t, name);
    aipalq__text_printf(t, "%lld", v);
}

/* Instants as ISO 8601 UTC with milliseconds, the API's format. */
static void field_time(aipalq__text *t, const char *name, int64_t ms)
{
    aipalq__text_json_key(t, name);
    if (!ms) {
        aipalq__text_add(t, "null", 4);
        return;
    }
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    aipalq__text_printf(t, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"", tm.tm_year + 1900,
                        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                        (int)(ms % 1000));
}

/* Seconds as a JSON number: the shortest of %.15g and %.17g that reads back
 * as the same double. */
static void field_seconds(aipalq__text *t, const char *name, int64_t ms)
{
    aipalq__text_json_key(t, name);
    double v = (double)ms / 1000.0;
    char buf[40];
    snprintf(buf, sizeof buf, "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, sizeof buf, "%.17g", v);
    aipalq__text_str(t, buf);
}

const char *aipalq_task_json(const aipalq_task *ct)
{
    if (!ct)
        return NULL;
    aipalq_task *task = (aipalq_task *)ct; /* the cache is not part of the value */
    if (task->json)
        return task->json;
    aipalq__text t = {0};
    aipalq__text_str(&t, "{\"task_id\":");
    aipalq__text_json_string(&t, task->id);
    aipalq__text_json_field(&t, "task_type", task->type);
    aipalq__text_json_field(&t, "queue", task->queue);
    aipalq__text_json_field(&t, "status", aipalq_state_name(task->state));
    field_int(&t, "priority", task->priority);
    aipalq__text_json_field(&t, "user_id", task->user_id);
    field_raw_json(&t, "params", task->params);
    field_raw_json(&t, "result", task->result);
    aipalq__text_json_field(&t, "error_message", task->error_message);
    aipalq__text_json_field(&t, "error_detail", task->error_detail);
    field_int(&t, "attempts", task->attempts);
    field_int(&t, "max_retries", task->max_retries);
    field_time(&t, "created_at", task->created_ms);
    field_time(&t, "started_at", task->started_ms);
    field_time(&t, "completed_at", task->completed_ms);
    field_time(&t, "updated_at", task->updated_ms);
    field_time(&t, "run_at", task->run_at_ms);
    if (task->started_ms && task->completed_ms)
        field_seconds(&t, "duration_seconds", task->completed_ms - task->started_ms);
    else
        field_raw_json(&t, "duration_seconds", NULL);
    aipalq__text_json_field(&t, "worker_id", task->worker_id);
    aipalq__text_json_field(&t, "idempotency_key", task->idempotency_key);
    field_int(&t, "progress", task->progress);
    aipalq__text_json_field(&t, "progress_message", task->progress_message);
    aipalq__text_json_key(&t, "cancel_requested");
    aipalq__text_str(&t, task->cancel_requested ? "true" : "false");
    aipalq__text_add(&t, "}", 1);
    task->json = aipalq__text_finish(&t);
    return task->json;
}
