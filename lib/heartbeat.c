/* The heartbeat thread: extends the leases of running jobs (handlers never
 * do), brings cancel requests to them, enforces time limits and publishes the
 * worker in the registry. Nothing that can take long runs here (the fleet's
 * maintenance has a thread of its own, maintenance.c): a late beat is a lost
 * lease. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "worker_internal.h"

#define TICK_BUSY_MS      100
#define TICK_IDLE_MS      250
#define REGISTRY_EVERY_MS 2000

typedef struct beat_item {
    char id[AIPALQ_ID_SIZE];
    char queue[AIPALQ_MAX_NAME_LEN + 1];
    int64_t token;
    int result;
} beat_item;

/* Soft and hard limits. A hard limit in thread mode ends the task at once
 * (its handler's later outcome is ignored); in prefork mode the slot thread
 * kills the child. */
static void check_limits(aipalq_worker *w, int64_t now)
{
    pthread_mutex_lock(&w->mu);
    for (aipalq_job *j = w->inflight; j; j = j->next) {
        if (!atomic_load(&j->running) || atomic_load(&j->abandoned))
            continue;
        int64_t ran = now - j->started_mono;
        if (j->settings.soft_limit_ms > 0 && ran >= j->settings.soft_limit_ms &&
            !j->soft_notified) {
            j->soft_notified = true;
            atomic_store(&j->soft_passed, 1);
            if (w->soft_fn)
                w->soft_fn(j, w->soft_ud);
        }
        if (w->mode == AIPALQ_MODE_THREADS && j->settings.hard_limit_ms > 0 &&
            ran >= j->settings.hard_limit_ms) {
            atomic_store(&j->abandoned, 1);
            aipalq__record *r =
                aipalq__job_failure_record(j, "hard time limit exceeded",
                                           "the handler ran past its hard time limit; its result "
                                           "will be ignored",
                                           false);
            if (r)
                aipalq__recorder_push(w, r);
        }
    }
    pthread_mutex_unlock(&w->mu);
}

static beat_item *collect(aipalq_worker *w, int *n)
{
    pthread_mutex_lock(&w->mu);
    int count = 0;
    for (aipalq_job *j = w->inflight; j; j = j->next)
        count++;
    beat_item *items = calloc((size_t)count + 1, sizeof *items);
    int k = 0;
    for (aipalq_job *j = w->inflight; items && j; j = j->next) {
        if (atomic_load(&j->abandoned))
            continue;
        memcpy(items[k].id, j->id, sizeof items[k].id);
        snprintf(items[k].queue, sizeof items[k].queue, "%s", j->queue);
        items[k].token = j->token;
        k++;
    }
    pthread_mutex_unlock(&w->mu);
    *n = k;
    return items;
}

static void apply_results(aipalq_worker *w, const beat_item *items, int n)
{
    pthread_mutex_lock(&w->mu);
    for (aipalq_job *j = w->inflight; j; j = j->next)
        for (int i = 0; i < n; i++) {
            if (items[i].token != j->token || strcmp(items[i].id, j->id) != 0)
                continue;
            if (items[i].result == 0)
                atomic_store(&j->lease_lost, 1);
            else if (items[i].result == 2)
                atomic_store(&j->cancel, 1);
        }
    pthread_mutex_unlock(&w->mu);
}

/* One heartbeat script call per queue. */
static void extend_leases(aipalq_worker *w, aipalq_client *c)
{
    int n = 0;
    beat_item *items = collect(w, &n);
    if (!items)
        return;
    bool *done = calloc((size_t)n + 1, sizeof *done);
    for (int i = 0; done && i < n; i++) {
        if (done[i])
            continue;
        aipalq__argv args;
        aipalq__argv_init(&args);
        int idx[n];
        int m = 0;
        bool ok = aipalq__push_queue_keys(c, items[i].queue, &args) &&
                  aipalq__argv_push_int(&args, aipalq__now_ms()) &&
                  aipalq__argv_push_int(&args, w->lease_ms);
        for (int j = i; ok && j < n; j++) {
            if (done[j] || strcmp(items[j].queue, items[i].queue) != 0)
                continue;
            done[j] = true;
            idx[m++] = j;
            ok = aipalq__argv_push_str(&args, items[j].id) &&
                 aipalq__argv_push_int(&args, items[j].token);
        }
        redisReply *r = NULL;
        if (ok &&
            aipalq__script_call(c, AIPALQ__SCRIPT_HEARTBEAT, AIPALQ__NQKEYS, &args, &r) ==
                AIPALQ_OK &&
            r->type == REDIS_REPLY_ARRAY && r->elements == (size_t)m) {
            for (int k = 0; k < m; k++)
                items[idx[k]].result = (int)r->element[k]->integer;
        } else {
            /* Redis did not answer: the leases still run; try next beat. */
            for (int k = 0; k < m; k++)
                items[idx[k]].result = 1;
        }
        freeReplyObject(r);
        aipalq__argv_free(&args);
    }
    apply_results(w, items, n);
    free(done);
    free(items);
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void *heartbeat_main(void *arg)
{
    aipalq_worker *w = arg;
    aipalq_client *c = aipalq__worker_client(w);
    if (!c)
        return NULL;
    int64_t beat_every = w->lease_ms / 3 < 500 ? w->lease_ms / 3 : 500;
    int64_t last_beat = 0, last_registry = 0;
    while (!atomic_load(&w->heartbeat_stop)) {
        int64_t now = aipalq__monotonic_ms();
        check_limits(w, now);
        if (now - last_beat >= beat_every) {
            extend_leases(w, c);
            last_beat = now;
        }
        if (now - last_registry >= REGISTRY_EVERY_MS) {
            aipalq__registry_publish(w, c, false);
            last_registry = now;
        }
        sleep_ms(atomic_load(&w->n_running) > 0 ? TICK_BUSY_MS : TICK_IDLE_MS);
    }
    aipalq__registry_publish(w, c, true);
    aipalq_client_free(c);
    return NULL;
}

aipalq_status aipalq__heartbeat_start(aipalq_worker *w)
{
    atomic_store(&w->heartbeat_stop, 0);
    if (pthread_create(&w->heartbeat_thread, NULL, heartbeat_main, w) != 0)
        return AIPALQ_ENOMEM;
    return AIPALQ_OK;
}

void aipalq__heartbeat_stop(aipalq_worker *w)
{
    atomic_store(&w->heartbeat_stop, 1);
    pthread_join(w->heartbeat_thread, NULL);
}
