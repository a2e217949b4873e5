/* Taking tasks: the take script leases tasks from the worker's queues in
 * order, and waiting for work blocks on the queues' wake lists (BLPOP), so an
 * idle worker costs nothing and a new task wakes it at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker_internal.h"

/* Records what the take script did to expired leases of other deliveries. */
static void record_reclaimed(aipalq_worker *w, const char *queue, const redisReply *list)
{
    for (size_t i = 0; i < list->elements; i++) {
        const redisReply *e = list->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 4)
            continue;
        const char *state = e->element[1]->str;
        aipalq__record *r = aipalq__record_new(state, NULL);
        if (!r)
            continue;
        snprintf(r->id, sizeof r->id, "%s", e->element[0]->str);
        snprintf(r->queue, sizeof r->queue, "%s", queue);
        r->attempt = (int)e->element[2]->integer;
        r->token = e->element[3]->integer;
        r->redis_done = true; /* the script already moved it in Redis */
        if (strcmp(state, "requeued") == 0)
            r->err = aipalq__strdup("lease expired: its worker stopped answering");
        else if (strcmp(state, "failed") == 0)
            r->err = aipalq__strdup("worker lost: lease expired on the last attempt");
        else
            r->err = aipalq__strdup("cancelled; its worker was lost");
        if (strcmp(state, "failed") == 0)
            atomic_fetch_add(&w->n_failed, 1);
        aipalq__recorder_push(w, r);
    }
}

/* The take script's arguments for one queue. now_ms 0 lets the script read
 * Redis's clock: a take sent behind a BLPOP runs when the BLPOP returns, and
 * a time taken at sending could be a second old by then. */
static bool take_args(aipalq_worker *w, aipalq_client *c, const char *queue, int max,
                      int64_t now_ms, aipalq__argv *args)
{
    aipalq__argv_init(args);
    return aipalq__push_queue_keys(c, queue, args) && aipalq__argv_push_int(args, now_ms) &&
           aipalq__argv_push_int(args, w->lease_ms) && aipalq__argv_push_int(args, max) &&
           aipalq__argv_push_int(args, 3600 * 1000);
}

/* Reads the take script's reply (and frees it): jobs to *jobs, their running
 * records and reclaimed leases to the recorder. */
static aipalq_status accept_taken(aipalq_worker *w, aipalq_client *c, const char *queue,
                                  redisReply *r, aipalq_job **jobs, int *njobs, int64_t *next_due)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        freeReplyObject(r);
        return aipalq__fail(c, AIPALQ_EREDIS, "unexpected reply from the take script");
    }
    const redisReply *taken = r->element[0];
    record_reclaimed(w, queue, r->element[1]);
    int64_t due = r->element[2]->integer;
    if (due > 0 && (*next_due < 0 || due < *next_due))
        *next_due = due;
    for (size_t i = 0; i < taken->elements; i++) {
        const redisReply *e = taken->element[i];
        aipalq_job *job = aipalq__job_new(w, queue, e->element[1]->str, (int)e->element[2]->integer,
                                          e->element[3]->integer);
        if (!job) {
            /* A payload we cannot read: its lease expires and the reconciler
             * or a newer worker deals with it; never guess. */
            continue;
        }
        aipalq__record *run = aipalq__record_new("running", job);
        if (!run) {
            aipalq__job_destroy(job);
            continue;
        }
        run->started_ms = aipalq__now_ms();
        aipalq__recorder_push_start(w, run);
        jobs[(*njobs)++] = job;
    }
    freeReplyObject(r);
    return AIPALQ_OK;
}

/* Takes up to max tasks from one queue. */
static aipalq_status take_queue(aipalq_worker *w, aipalq_client *c, const char *queue, int max,
                                aipalq_job **jobs, int *njobs, int64_t *next_due)
{
    aipalq__argv args;
    redisReply *r = NULL;
    aipalq_status st = take_args(w, c, queue, max, aipalq__now_ms(), &args)
                           ? aipalq__script_call(c, AIPALQ__SCRIPT_TAKE, AIPALQ__NQKEYS, &args, &r)
                           : aipalq__fail(c, AIPALQ_ENOMEM, "out of memory taking tasks");
    aipalq__argv_free(&args);
    if (st != AIPALQ_OK)
        return st;
    return accept_taken(w, c, queue, r, jobs, njobs, next_due);
}

aipalq_status aipalq__take(aipalq_worker *w, aipalq_client *c, int max, aipalq_job ***jobs_out,
                           int *njobs, int64_t *next_due_ms)
{
    *njobs = 0;
    *next_due_ms = -1;
    aipalq_job **jobs = calloc((size_t)max + 1, sizeof *jobs);
    if (!jobs)
        return aipalq__fail(c, AIPALQ_ENOMEM, "out of memory taking tasks");
    /* Queue order is priority order; with fair_every set, every so often the
     * round starts from the next queue, so none starves. */
    size_t first = 0;
    if (w->fair_every > 0 && w->nqueues > 1) {
        unsigned round = w->take_round++;
        if (round % (unsigned)w->fair_every == 0)
            first = (round / (unsigned)w->fair_every) % w->nqueues;
    }
    aipalq_status st = AIPALQ_OK;
    for (size_t k = 0; k < w->nqueues && *njobs < max && st == AIPALQ_OK; k++) {
        const char *queue = w->queues[(first + k) % w->nqueues];
        st = take_queue(w, c, queue, max - *njobs, jobs, njobs, next_due_ms);
    }
    *jobs_out = jobs;
    return st;
}

/* Reads the BLPOP's reply. */
static aipalq_status wake_reply(aipalq_client *c)
{
    void *raw = NULL;
    if (redisGetReply(c->redis, &raw) != REDIS_OK || !raw) {
        aipalq_status st = aipalq__fail(c, AIPALQ_EREDIS, "Redis: %s", c->redis->errstr);
        aipalq__redis_drop(c);
        return st;
    }
    redisReply *r = raw;
    aipalq_status st = r->type == REDIS_REPLY_ERROR
                           ? aipalq__fail(c, AIPALQ_EREDIS, "Redis BLPOP: %s", r->str)
                           : AIPALQ_OK;
    freeReplyObject(r);
    return st;
}

/* The take behind the BLPOP: Redis runs it as soon as the BLPOP returns, so
 * a woken worker has its tasks without another round trip. It takes from the
 * first queue of the round; the caller's next take covers the others. */
static aipalq_status take_behind_wake(aipalq_worker *w, aipalq_client *c, int max,
                                      aipalq_job ***jobs_out, int *njobs, int64_t *next_due)
{
    const char *queue = w->queues[0];
    aipalq__argv args;
    aipalq_status st = take_args(w, c, queue, max, 0, &args)
                           ? aipalq__script_append(c, AIPALQ__SCRIPT_TAKE, AIPALQ__NQKEYS, &args)
                           : aipalq__fail(c, AIPALQ_ENOMEM, "out of memory taking tasks");
    if (st != AIPALQ_OK) {
        aipalq__argv_free(&args);
        return st;
    }
    aipalq_job **jobs = calloc((size_t)max + 1, sizeof *jobs);
    st = wake_reply(c);
    redisReply *r = NULL;
    if (c->redis) {
        aipalq_status ts = aipalq__script_reply(c, AIPALQ__SCRIPT_TAKE, AIPALQ__NQKEYS, &args, &r);
        if (st == AIPALQ_OK)
            st = ts;
    }
    aipalq__argv_free(&args);
    if (r && jobs)
        st = accept_taken(w, c, queue, r, jobs, njobs, next_due);
    else if (r)
        freeReplyObject(r); /* its leases expire: the tasks run again later */
    *jobs_out = jobs;
    return jobs ? st : aipalq__fail(c, AIPALQ_ENOMEM, "out of memory taking tasks");
}

aipalq_status aipalq__wait_for_work(aipalq_worker *w, aipalq_client *c, int64_t timeout_ms, int max,
                                    aipalq_job ***jobs_out, int *njobs, int64_t *next_due_ms)
{
    if (jobs_out) {
        *jobs_out = NULL;
        *njobs = 0;
        *next_due_ms = -1;
    }
    if (timeout_ms <= 0)
        return AIPALQ_OK;
    aipalq_status st = aipalq__redis_ensure(c);
    if (st != AIPALQ_OK)
        return st;
    const char *argv[AIPALQ__MAX_QUEUES + 2];
    char *keys[AIPALQ__MAX_QUEUES];
    size_t argc = 0;
    argv[argc++] = "BLPOP";
    for (size_t i = 0; i < w->nqueues; i++) {
        keys[i] = aipalq__qkey(c, w->queues[i], "wake");
        if (!keys[i]) {
            for (size_t j = 0; j < i; j++)
                free(keys[j]);
            return aipalq__fail(c, AIPALQ_ENOMEM, "out of memory");
        }
        argv[argc++] = keys[i];
    }
    char timeout[32];
    snprintf(timeout, sizeof timeout, "%.3f", (double)timeout_ms / 1000.0);
    argv[argc++] = timeout;
    /* BLPOP only wakes us; the take script does the work. It is the one
     * plain command of the worker, and touches only the wake lists. */
    int rc = redisAppendCommandArgv(c->redis, (int)argc, argv, NULL);
    for (size_t i = 0; i < w->nqueues; i++)
        free(keys[i]);
    if (rc != REDIS_OK)
        return aipalq__fail(c, AIPALQ_ENOMEM, "out of memory queueing a Redis call");
    if (jobs_out && max > 0)
        return take_behind_wake(w, c, max, jobs_out, njobs, next_due_ms);
    return wake_reply(c);
}
