/* Submitting tasks: the seed's three endpoints, the generic one and batches. */
#include <stdio.h>
#include <string.h>

#include <microhttpd.h>

#include "fields.h"
#include "handlers.h"
#include "respond.h"
#include "submit.h"
#include "tlclient.h"
#include "util.h"

#define MAX_BATCH 500

static void add_now(cJSON *o, const char *key)
{
    char ts[40];
    util_iso8601(util_now_ms(), ts, sizeof ts);
    cJSON_AddStringToObject(o, key, ts);
}

/* The seed's endpoints: TaskSubmitRequest in, TaskSubmitResponse out. */
static void submit_seed(api_request *rq, const char *type_name, const char *message)
{
    cJSON *errors = cJSON_CreateArray();
    submission s = {0};
    if (!submission_parse_seed(rq->json, catalog_find(type_name), &s, errors)) {
        submission_clear(&s);
        respond_validation(rq, errors);
        return;
    }
    cJSON_Delete(errors);
    aipalq_client *c = tlclient_get();
    char id[AIPALQ_ID_SIZE];
    aipalq_status st =
        c ? aipalq_enqueue(c, s.type->name, s.params, s.opts, id, NULL) : AIPALQ_ENOMEM;
    submission_clear(&s);
    if (st != AIPALQ_OK) {
        respond_lib_error(rq, c, st, "enqueue");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task_id", id);
    cJSON_AddStringToObject(o, "celery_task_id", id);
    cJSON_AddStringToObject(o, "status", "pending");
    add_now(o, "created_at");
    cJSON_AddStringToObject(o, "message", message);
    respond_json(rq, 200, o);
}

void h_submit_ari(api_request *rq)
{
    submit_seed(rq, "aggregate_ari_snapshots", "ARI snapshot aggregation task submitted");
}

void h_submit_ffe(api_request *rq)
{
    submit_seed(rq, "plan_ffe_goal", "FFE goal planning task submitted");
}

void h_submit_edm(api_request *rq)
{
    submit_seed(rq, "edm_batch_analysis", "EDM batch analysis task submitted");
}

/* The state of a task an idempotency key matched. */
static const char *existing_status(aipalq_client *c, const char *id, char *buf, size_t len)
{
    aipalq_task *t = NULL;
    snprintf(buf, len, "pending");
    if (aipalq_get(c, id, &t) == AIPALQ_OK)
        snprintf(buf, len, "%s", aipalq_state_name(aipalq_task_state(t)));
    aipalq_task_free(t);
    return buf;
}

static cJSON *accepted_json(const submission *s, const char *id, int created, const char *status)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task_id", id);
    cJSON_AddStringToObject(o, "status", status);
    cJSON_AddBoolToObject(o, "created", created);
    add_now(o, "created_at");
    cJSON_AddStringToObject(o, "type", s->type->name);
    cJSON_AddStringToObject(o, "queue", s->queue);
    cJSON_AddNumberToObject(o, "priority", s->priority);
    return o;
}

void h_submit_task(api_request *rq)
{
    cJSON *errors = cJSON_CreateArray();
    submission s = {0};
    if (!rq->json) {
        submission_clear(&s);
        cJSON_Delete(errors);
        respond_field_error(rq, "body", "is required (a JSON object with type and params)");
        return;
    }
    if (!submission_parse(rq->json, "", rq_header(rq, "Idempotency-Key"), &s, errors)) {
        submission_clear(&s);
        respond_validation(rq, errors);
        return;
    }
    cJSON_Delete(errors);
    aipalq_client *c = tlclient_get();
    char id[AIPALQ_ID_SIZE], state[32];
    int created = 1;
    aipalq_status st =
        c ? aipalq_enqueue(c, s.type->name, s.params, s.opts, id, &created) : AIPALQ_ENOMEM;
    if (st != AIPALQ_OK) {
        submission_clear(&s);
        respond_lib_error(rq, c, st, "enqueue");
        return;
    }
    const char *status = created ? (s.delayed ? "scheduled" : "pending")
                                 : existing_status(c, id, state, sizeof state);
    cJSON *o = accepted_json(&s, id, created, status);
    cJSON_AddStringToObject(o, "message",
                            created ? "task submitted"
                                    : "an unfinished task holds this idempotency "
                                      "key; its id is returned");
    submission_clear(&s);
    respond_json(rq, created ? 202 : 200, o);
}

static const char *const batch_fields[] = {"tasks", NULL};

/* Parses every item; all must be valid. Returns the count, or -1. */
static int parse_batch(const cJSON *body, submission *items, cJSON *errors)
{
    if (!cJSON_IsObject(body)) {
        catalog_add_error(errors, "body", "is required (a JSON object with tasks)");
        return -1;
    }
    bool ok = fields_only(body, batch_fields, "", errors);
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(body, "tasks");
    int n = cJSON_IsArray(tasks) ? cJSON_GetArraySize(tasks) : -1;
    if (n < 1 || n > MAX_BATCH) {
        catalog_add_error(errors, "tasks", "must be an array of 1 to 500 tasks");
        return -1;
    }
    int i = 0;
    for (const cJSON *t = tasks->child; t; t = t->next, i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "tasks[%d].", i);
        ok &= submission_parse(t, prefix, NULL, &items[i], errors);
    }
    return ok ? n : -1;
}

static void respond_batch(api_request *rq, aipalq_batch *batch, const submission *items, int n)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "tasks");
    for (int i = 0; i < n; i++) {
        int created = aipalq_batch_created(batch, (size_t)i);
        const char *status = created ? (items[i].delayed ? "scheduled" : "pending") : "existing";
        cJSON_AddItemToArray(
            arr, accepted_json(&items[i], aipalq_batch_id(batch, (size_t)i), created, status));
    }
    cJSON_AddNumberToObject(o, "count", n);
    respond_json(rq, 202, o);
}

static aipalq_status enqueue_batch(aipalq_client *c, aipalq_batch *batch, const submission *items,
                                   int n)
{
    for (int i = 0; i < n; i++) {
        aipalq_status st =
            aipalq_batch_add(batch, items[i].type->name, items[i].params, items[i].opts);
        if (st != AIPALQ_OK)
            return st;
    }
    return aipalq_enqueue_batch(c, batch);
}

void h_submit_batch(api_request *rq)
{
    static _Thread_local submission items[MAX_BATCH];
    cJSON *errors = cJSON_CreateArray();
    int n = parse_batch(rq->json, items, errors);
    int parsed = n;
    if (n < 0) {
        const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(rq->json, "tasks");
        parsed = cJSON_IsArray(tasks) ? cJSON_GetArraySize(tasks) : 0;
        parsed = parsed > MAX_BATCH ? 0 : parsed;
    }
    if (n < 0) {
        for (int i = 0; i < parsed; i++)
            submission_clear(&items[i]);
        respond_validation(rq, errors);
        return;
    }
    cJSON_Delete(errors);
    aipalq_client *c = tlclient_get();
    aipalq_batch *batch = aipalq_batch_new();
    aipalq_status st = c && batch ? enqueue_batch(c, batch, items, n) : AIPALQ_ENOMEM;
    if (st == AIPALQ_OK)
        respond_batch(rq, batch, items, n);
    else
        respond_lib_error(rq, c, st, "enqueue batch");
    aipalq_batch_free(batch);
    for (int i = 0; i < n; i++)
        submission_clear(&items[i]);
}
