/* GET /api/tasks/status/{task_id}: status lookups, coalesced.
 *
 * Lookups that arrive together are read with one aipalq_get_many on the
 * lookup coalescer's thread (see coalesce.h): under load one PostgreSQL
 * round trip serves dozens of requests. A lone lookup is read at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coalesce.h"
#include "handlers.h"
#include "respond.h"
#include "task_body.h"
#include "tlclient.h"

#define LOOKUP_BATCH_MAX 256

typedef struct lookup {
    char id[AIPALQ_ID_SIZE];
    aipalq_task *task;
    aipalq_status st;
    char errmsg[256];
} lookup;

static coalescer *lookups;

static void lookup_free(void *p)
{
    lookup *l = p;
    if (l)
        aipalq_task_free(l->task);
    free(l);
}

static void lookup_failed(lookup *l, aipalq_status st, aipalq_client *c)
{
    l->st = st;
    snprintf(l->errmsg, sizeof l->errmsg, "%s", c ? aipalq_client_errmsg(c) : "out of memory");
}

/* One by one: when the batch was refused as a whole (an id the library
 * rejects spoils the batch), each request gets its own answer. */
static void run_each(aipalq_client *c, api_request **rqs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        lookup *l = rqs[i]->work;
        aipalq_status st = aipalq_get(c, l->id, &l->task);
        if (st != AIPALQ_OK)
            lookup_failed(l, st, c);
    }
}

/* The coalescer's batch: one round trip for every lookup in it. */
static void run_lookups(api_request **rqs, size_t n)
{
    aipalq_client *c = tlclient_get();
    const char *ids[LOOKUP_BATCH_MAX];
    aipalq_task *tasks[LOOKUP_BATCH_MAX];
    for (size_t i = 0; i < n; i++)
        ids[i] = ((lookup *)rqs[i]->work)->id;
    aipalq_status st = c ? aipalq_get_many(c, ids, n, tasks) : AIPALQ_ENOMEM;
    if (st == AIPALQ_EBADID) {
        run_each(c, rqs, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        lookup *l = rqs[i]->work;
        if (st != AIPALQ_OK)
            lookup_failed(l, st, c);
        else if (!(l->task = tasks[i]))
            l->st = AIPALQ_ENOTFOUND;
    }
}

static void respond_lookup(api_request *rq, const lookup *l)
{
    if (l->st != AIPALQ_OK) {
        respond_lib_failure(rq, l->st, l->errmsg, "get task");
        return;
    }
    body b = {0};
    body_task(&b, l->task);
    respond_body(rq, &b);
}

static void finish_lookup(api_request *rq)
{
    respond_lookup(rq, rq->work);
}

/* GET /api/tasks/status/{task_id} and GET /api/tasks/{task_id}. */
void h_task_status(api_request *rq)
{
    lookup *l = calloc(1, sizeof *l);
    if (!l) {
        respond_internal(rq, "out of memory looking up a task");
        return;
    }
    if (strlen(rq->params[0]) != AIPALQ_ID_SIZE - 1) { /* no UUID: no lookup */
        l->st = AIPALQ_EBADID;
    } else {
        memcpy(l->id, rq->params[0], AIPALQ_ID_SIZE);
        if (coalescer_submit(lookups, rq, finish_lookup, l, lookup_free))
            return;
        /* coalescing off, or stopping: on this thread */
        aipalq_client *c = tlclient_get();
        aipalq_status st = c ? aipalq_get(c, l->id, &l->task) : AIPALQ_ENOMEM;
        if (st != AIPALQ_OK)
            lookup_failed(l, st, c);
    }
    respond_lookup(rq, l);
    lookup_free(l);
}

int h_status_start(const api_config *cfg)
{
    if (cfg->coalesce_max == 0)
        return 0;
    size_t max = cfg->coalesce_max < LOOKUP_BATCH_MAX ? cfg->coalesce_max : LOOKUP_BATCH_MAX;
    lookups = coalescer_start("status", max, cfg->coalesce_threads, run_lookups);
    return lookups ? 0 : -1;
}

void h_status_stop(void)
{
    coalescer_stop(lookups);
}

void h_status_free(void)
{
    coalescer_free(lookups);
    lookups = NULL;
}
