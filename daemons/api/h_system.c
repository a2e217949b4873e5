/* The system: health, workers, queues. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aipal/worker.h>

#include "catalog.h"
#include "fields.h"
#include "handlers.h"
#include "respond.h"
#include "tlclient.h"
#include "util.h"

#define DEFAULT_DEAD_AFTER_MS 30000

static void add_now(cJSON *o)
{
    char ts[40];
    util_iso8601(util_now_ms(), ts, sizeof ts);
    cJSON_AddStringToObject(o, "timestamp", ts);
}

/* GET /api/tasks/health: 200 when both servers answer, else 503 naming the
 * one that does not. */
void h_health(api_request *rq)
{
    aipalq_client *c = tlclient_get();
    int redis_ok = 0, pg_ok = 0;
    if (c)
        aipalq_ping(c, &redis_ok, &pg_ok);
    bool healthy = redis_ok && pg_ok;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", healthy ? "healthy" : "unhealthy");
    cJSON_AddStringToObject(o, "redis", redis_ok ? "ok" : "down");
    cJSON_AddStringToObject(o, "postgres", pg_ok ? "ok" : "down");
    cJSON_AddStringToObject(o, "version", aipalq_version_string());
    add_now(o);
    respond_json(rq, healthy ? 200 : 503, o);
}

/* GET /api/workers: the live registry. */
void h_workers(api_request *rq)
{
    cJSON *errors = cJSON_CreateArray();
    int64_t dead_after;
    if (!fields_query_int(rq_query(rq, "dead_after_ms"), "dead_after_ms", 1000, 86400000,
                          DEFAULT_DEAD_AFTER_MS, errors, &dead_after)) {
        respond_validation(rq, errors);
        return;
    }
    cJSON_Delete(errors);
    aipalq_client *c = tlclient_get();
    char *json = NULL;
    aipalq_status st = c ? aipalq_workers_json(c, dead_after, &json) : AIPALQ_ENOMEM;
    if (st != AIPALQ_OK) {
        respond_lib_error(rq, c, st, "list workers");
        return;
    }
    cJSON *workers = cJSON_Parse(json);
    aipalq_free(json);
    if (!cJSON_IsArray(workers)) {
        cJSON_Delete(workers);
        respond_internal(rq, "the worker registry returned malformed JSON");
        return;
    }
    int alive = 0;
    for (const cJSON *w = workers->child; w; w = w->next)
        alive += cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(w, "alive"));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "count", cJSON_GetArraySize(workers));
    cJSON_AddNumberToObject(o, "alive", alive);
    cJSON_AddItemToObject(o, "workers", workers);
    add_now(o);
    respond_json(rq, 200, o);
}

static cJSON *queue_entry(cJSON *arr, const char *name)
{
    cJSON *q = cJSON_CreateObject();
    cJSON_AddStringToObject(q, "name", name);
    cJSON_AddItemToArray(arr, q);
    return q;
}

/* Depth from Redis for each known queue. */
static aipalq_status add_depths(aipalq_client *c, cJSON *arr)
{
    for (size_t i = 0; i < catalog_queue_count(); i++) {
        int64_t ready = 0, scheduled = 0, leased = 0;
        aipalq_status st = aipalq_queue_depth(c, catalog_queue_at(i), &ready, &scheduled, &leased);
        if (st != AIPALQ_OK)
            return st;
        cJSON *q = queue_entry(arr, catalog_queue_at(i));
        cJSON_AddNumberToObject(q, "ready", (double)ready);
        cJSON_AddNumberToObject(q, "scheduled", (double)scheduled);
        cJSON_AddNumberToObject(q, "leased", (double)leased);
        cJSON_AddNumberToObject(q, "depth", (double)(ready + scheduled + leased));
    }
    return AIPALQ_OK;
}

/* Counts by state from PostgreSQL, attached to each queue (queues the
 * catalog does not know are listed too). */
static void add_states(cJSON *arr, cJSON *counts)
{
    for (cJSON *q = arr->child; q; q = q->next) {
        const char *name = cJSON_GetObjectItemCaseSensitive(q, "name")->valuestring;
        cJSON *states = cJSON_DetachItemFromObjectCaseSensitive(counts, name);
        cJSON_AddItemToObject(q, "states", states ? states : cJSON_CreateObject());
    }
    while (counts && counts->child) {
        cJSON *states = counts->child;
        cJSON_DetachItemViaPointer(counts, states);
        cJSON *q = queue_entry(arr, states->string);
        cJSON_AddItemToObject(q, "states", states);
    }
}

/* GET /api/queues */
void h_queues(api_request *rq)
{
    aipalq_client *c = tlclient_get();
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "queues");
    aipalq_status st = c ? add_depths(c, arr) : AIPALQ_ENOMEM;
    char *json = NULL;
    if (st == AIPALQ_OK)
        st = aipalq_state_counts_json(c, &json);
    if (st != AIPALQ_OK) {
        cJSON_Delete(o);
        respond_lib_error(rq, c, st, "queue statistics");
        return;
    }
    cJSON *counts = cJSON_Parse(json);
    aipalq_free(json);
    add_states(arr, counts);
    cJSON_Delete(counts);
    add_now(o);
    respond_json(rq, 200, o);
}
