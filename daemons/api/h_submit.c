/* Submitting tasks: the seed's three endpoints, the generic one and batches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "coalesce.h"
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

/* A submission waiting for its batch (see coalesce.h): submissions that
 * arrive together are committed in one transaction, so that 64 clients
 * share one commit instead of queueing for 64. Each is answered only after
 * that commit. */
typedef struct pending {
    submission s;
    const char *seed_message; /* the seed's endpoints; NULL: the generic one */
    char id[AIPALQ_ID_SIZE];
    int created;
    char state[32]; /* of the task an idempotency key matched */
    aipalq_status st;
    char errmsg[256];
} pending;

static coalescer *submits;

static void pending_free(void *p)
{
    pending *ps = p;
    if (ps)
        submission_clear(&ps->s);
    free(ps);
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

/* The generic form answers with the state of a task its idempotency key
 * matched; the seed's form does not say. */
static void look_up_existing(aipalq_client *c, pending *p)
{
    if (p->st == AIPALQ_OK && !p->created && !p->seed_message)
        existing_status(c, p->id, p->state, sizeof p->state);
}

static void pending_failed(pending *p, aipalq_status st, const char *errmsg)
{
    p->st = st;
    snprintf(p->errmsg, sizeof p->errmsg, "%s", errmsg);
}

static const char *client_errmsg(aipalq_client *c)
{
    return c ? aipalq_client_errmsg(c) : "out of memory";
}

/* Enqueues one submission on its own. */
static void enqueue_one(aipalq_client *c, pending *p)
{
    aipalq_status st =
        c ? aipalq_enqueue(c, p->s.type->name, p->s.params, p->s.opts, p->id, &p->created)
          : AIPALQ_ENOMEM;
    if (st != AIPALQ_OK)
        pending_failed(p, st, client_errmsg(c));
}

static aipalq_status enqueue_together(aipalq_client *c, aipalq_batch *b, api_request **rqs,
                                      size_t n)
{
    for (size_t i = 0; i < n; i++) {
        pending *p = rqs[i]->work;
        aipalq_status st = aipalq_batch_add(b, p->s.type->name, p->s.params, p->s.opts);
        if (st != AIPALQ_OK)
            return st;
    }
    return aipalq_enqueue_batch(c, b);
}

/* A batch refused as a whole for what one submission holds (the server
 * refusing a value, say) must not fail the others: they are then enqueued
 * one by one. A server that is down fails them all at once. */
static bool worth_one_by_one(aipalq_client *c, aipalq_status st, size_t n)
{
    if (n < 2 || st == AIPALQ_EREDIS || st == AIPALQ_ETIMEOUT || st == AIPALQ_ENOMEM)
        return false;
    int pg_ok = 1;
    if (st == AIPALQ_EPG)
        aipalq_ping(c, NULL, &pg_ok);
    return pg_ok;
}

/* The status of the answer to an enqueued submission. */
static unsigned accepted_status(const pending *p)
{
    return p->seed_message || !p->created ? 200 : 202;
}

/* The coalescer's batch: one transaction for every submission in it. */
static void run_submits(api_request **rqs, size_t n)
{
    aipalq_client *c = tlclient_get();
    aipalq_batch *b = c ? aipalq_batch_new() : NULL;
    aipalq_status st = b ? enqueue_together(c, b, rqs, n) : AIPALQ_ENOMEM;
    char errmsg[256] = "";
    if (st != AIPALQ_OK) /* kept before anything else runs on the client */
        snprintf(errmsg, sizeof errmsg, "%s", client_errmsg(c));
    bool one_by_one = st != AIPALQ_OK && worth_one_by_one(c, st, n);
    for (size_t i = 0; i < n; i++) {
        pending *p = rqs[i]->work;
        if (st == AIPALQ_OK) {
            snprintf(p->id, sizeof p->id, "%s", aipalq_batch_id(b, i));
            p->created = aipalq_batch_created(b, i);
        } else if (one_by_one) {
            enqueue_one(c, p);
        } else {
            pending_failed(p, st, errmsg);
        }
        look_up_existing(c, p);
        if (p->st == AIPALQ_OK) /* logged as such even if the client leaves now */
            rqs[i]->status = accepted_status(p);
    }
    aipalq_batch_free(b);
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

/* The seed's TaskSubmitResponse, or the generic accepted form. */
static void respond_pending(api_request *rq, const pending *p)
{
    if (p->st != AIPALQ_OK) {
        respond_lib_failure(rq, p->st, p->errmsg, "enqueue");
        return;
    }
    if (p->seed_message) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "task_id", p->id);
        cJSON_AddStringToObject(o, "celery_task_id", p->id);
        cJSON_AddStringToObject(o, "status", "pending");
        add_now(o, "created_at");
        cJSON_AddStringToObject(o, "message", p->seed_message);
        respond_json(rq, 200, o);
        return;
    }
    const char *status = p->created ? (p->s.delayed ? "scheduled" : "pending") : p->state;
    cJSON *o = accepted_json(&p->s, p->id, p->created, status);
    cJSON_AddStringToObject(o, "message",
                            p->created ? "task submitted"
                                       : "an unfinished task holds this idempotency "
                                         "key; its id is returned");
    respond_json(rq, accepted_status(p), o);
}

static void finish_pending(api_request *rq)
{
    respond_pending(rq, rq->work);
}

/* Hands a parsed submission to the coalescer, or (coalescing off or
 * stopping) enqueues it on this thread. Takes p. */
static void submit_pending(api_request *rq, pending *p)
{
    if (coalescer_submit(submits, rq, finish_pending, p, pending_free))
        return;
    aipalq_client *c = tlclient_get();
    enqueue_one(c, p);
    look_up_existing(c, p);
    respond_pending(rq, p);
    pending_free(p);
}

/* A submission that failed its checks: answered with the errors, which it
 * takes (*errors becomes NULL). Returns NULL. */
static pending *refuse(api_request *rq, pending *p, cJSON **errors)
{
    pending_free(p);
    respond_validation(rq, *errors);
    *errors = NULL;
    return NULL;
}

/* After parsing: p NULL is a refusal already answered (errors NULL) or a
 * lack of memory. */
static void submit_parsed(api_request *rq, pending *p, cJSON *errors)
{
    bool refused = !p && !errors;
    cJSON_Delete(errors);
    if (p)
        submit_pending(rq, p);
    else if (!refused)
        respond_internal(rq, "out of memory submitting a task");
}

/* The seed's endpoints: TaskSubmitRequest in, TaskSubmitResponse out. */
static void submit_seed(api_request *rq, const char *type_name, const char *message)
{
    pending *p = calloc(1, sizeof *p);
    cJSON *errors = cJSON_CreateArray();
    if (p) {
        p->seed_message = message;
        if (!submission_parse_seed(rq->json, catalog_find(type_name), &p->s, errors))
            p = refuse(rq, p, &errors);
    }
    submit_parsed(rq, p, errors);
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

void h_submit_task(api_request *rq)
{
    if (!rq->json) {
        respond_field_error(rq, "body", "is required (a JSON object with type and params)");
        return;
    }
    pending *p = calloc(1, sizeof *p);
    cJSON *errors = cJSON_CreateArray();
    if (p && !submission_parse(rq->json, "", rq_header(rq, "Idempotency-Key"), &p->s, errors))
        p = refuse(rq, p, &errors);
    submit_parsed(rq, p, errors);
}

int h_submit_start(const api_config *cfg)
{
    if (cfg->coalesce_max == 0)
        return 0;
    size_t max = cfg->coalesce_max < MAX_BATCH ? cfg->coalesce_max : MAX_BATCH;
    submits = coalescer_start("submit", max, cfg->coalesce_threads, run_submits);
    return submits ? 0 : -1;
}

void h_submit_stop(void)
{
    coalescer_stop(submits);
}

void h_submit_free(void)
{
    coalescer_free(submits);
    submits = NULL;
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
