/* The worker registry in Redis: each worker publishes itself every few
 * seconds; readers list live workers and see dead ones as such. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "worker_internal.h"

/* Registry keys share one hash tag so the script stays in one slot. */
static bool push_registry_keys(const aipalq_client *c, aipalq__argv *args)
{
    size_t n = strlen(c->ns) + 32;
    char *all = malloc(n), *seen = malloc(n);
    if (!all || !seen) {
        free(all);
        free(seen);
        return false;
    }
    snprintf(all, n, "%s:{workers}:all", c->ns);
    snprintf(seen, n, "%s:{workers}:seen", c->ns);
    return aipalq__argv_push_owned(args, all) && aipalq__argv_push_owned(args, seen);
}

static char *worker_json(aipalq_worker *w)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "id", w->id);
    cJSON_AddStringToObject(o, "host", w->host);
    cJSON_AddNumberToObject(o, "pid", (double)getpid());
    cJSON *queues = cJSON_AddArrayToObject(o, "queues");
    for (size_t i = 0; queues && i < w->nqueues; i++)
        cJSON_AddItemToArray(queues, cJSON_CreateString(w->queues[i]));
    cJSON_AddNumberToObject(o, "concurrency", w->concurrency);
    cJSON_AddStringToObject(o, "mode", w->mode == AIPALQ_MODE_PREFORK ? "prefork" : "threads");
    cJSON_AddNumberToObject(o, "started_at_ms", (double)w->started_ms);
    cJSON *counts = cJSON_AddObjectToObject(o, "counts");
    if (counts) {
        cJSON_AddNumberToObject(counts, "completed", (double)atomic_load(&w->n_completed));
        cJSON_AddNumberToObject(counts, "failed", (double)atomic_load(&w->n_failed));
        cJSON_AddNumberToObject(counts, "retried", (double)atomic_load(&w->n_retried));
        cJSON_AddNumberToObject(counts, "cancelled", (double)atomic_load(&w->n_cancelled));
    }
    cJSON_AddNumberToObject(o, "running", (double)atomic_load(&w->n_running));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Registry entries are judged dead after this long without a heartbeat. */
#define DEAD_AFTER_MS 10000

aipalq_status aipalq__registry_publish(aipalq_worker *w, aipalq_client *c, bool leaving)
{
    aipalq__argv args;
    aipalq__argv_init(&args);
    bool ok = push_registry_keys(c, &args) && aipalq__argv_push_int(&args, aipalq__now_ms()) &&
              aipalq__argv_push_int(&args, DEAD_AFTER_MS) && aipalq__argv_push_str(&args, w->id) &&
              aipalq__argv_push_owned(&args, leaving ? aipalq__strdup("") : worker_json(w));
    redisReply *r = NULL;
    aipalq_status st =
        ok ? aipalq__script_call(c, AIPALQ__SCRIPT_REGISTRY, 2, &args, &r) : AIPALQ_ENOMEM;
    freeReplyObject(r);
    aipalq__argv_free(&args);
    return st;
}

aipalq_status aipalq_workers_json(aipalq_client *c, int64_t dead_after_ms, char **json_out)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    if (!json_out || dead_after_ms < 1)
        return aipalq__fail(c, AIPALQ_EINVAL, "json_out must be set and dead_after_ms >= 1");
    *json_out = NULL;
    aipalq__argv args;
    aipalq__argv_init(&args);
    bool ok = push_registry_keys(c, &args) && aipalq__argv_push_int(&args, aipalq__now_ms()) &&
              aipalq__argv_push_int(&args, dead_after_ms);
    redisReply *r = NULL;
    aipalq_status st = ok ? aipalq__script_call(c, AIPALQ__SCRIPT_REGISTRY, 2, &args, &r)
                          : aipalq__fail(c, AIPALQ_ENOMEM, "out of memory");
    aipalq__argv_free(&args);
    if (st != AIPALQ_OK)
        return st;
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 4)
            continue;
        cJSON *o = cJSON_Parse(e->element[1]->str);
        if (!cJSON_IsObject(o)) {
            cJSON_Delete(o);
            continue;
        }
        cJSON_AddNumberToObject(o, "last_heartbeat_ms", (double)e->element[2]->integer);
        cJSON_AddBoolToObject(o, "alive", e->element[3]->integer == 1);
        cJSON_AddItemToArray(arr, o);
    }
    freeReplyObject(r);
    *json_out = arr ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    return *json_out ? aipalq__ok(c) : aipalq__fail(c, AIPALQ_ENOMEM, "out of memory");
}
