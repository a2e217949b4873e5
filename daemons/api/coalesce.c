/* Coalescers: a queue of suspended requests and the threads that serve
 * them in batches. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "coalesce.h"
#include "log.h"
#include "metrics.h"

typedef struct server {
    struct coalescer *co;
    pthread_t thread;
    api_request **batch; /* the one it serves: max_batch slots */
    bool started;
} server;

struct coalescer {
    const char *name;
    int metrics_kind;
    size_t max_batch;
    coalesce_run_fn run;
    server *servers;
    unsigned nservers;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    api_request **queue; /* waiting requests are queue[head..len) */
    size_t head, len, cap;
    bool stopping, stopped;
};

/* Room for one more at the end of the queue; caller holds the lock. */
static bool make_room(coalescer *co)
{
    if (co->head == co->len)
        co->head = co->len = 0;
    if (co->len < co->cap)
        return true;
    if (co->head > 0) {
        memmove(co->queue, co->queue + co->head, (co->len - co->head) * sizeof *co->queue);
        co->len -= co->head;
        co->head = 0;
        return true;
    }
    size_t cap = co->cap ? co->cap * 2 : 64;
    api_request **q = realloc(co->queue, cap * sizeof *q);
    if (!q)
        return false;
    co->queue = q;
    co->cap = cap;
    return true;
}

/* Waits for requests and moves up to max_batch of them into `batch`;
 * 0 when stopping with nothing left. */
static size_t next_batch(coalescer *co, api_request **batch)
{
    pthread_mutex_lock(&co->mu);
    while (co->head == co->len && !co->stopping)
        pthread_cond_wait(&co->wake, &co->mu);
    size_t n = co->len - co->head;
    if (n > co->max_batch)
        n = co->max_batch;
    if (n) {
        memcpy(batch, co->queue + co->head, n * sizeof *batch);
        co->head += n;
    }
    pthread_mutex_unlock(&co->mu);
    return n;
}

static void *serve(void *arg)
{
    server *sv = arg;
    coalescer *co = sv->co;
    api_request **batch = sv->batch;
    size_t n;
    while ((n = next_batch(co, batch)) > 0) {
        co->run(batch, n);
        metrics_coalesced(co->metrics_kind, n);
        /* A resumed request may be answered and freed by its HTTP thread at
         * once: nothing of it is touched after its resume. */
        for (size_t i = 0; i < n; i++)
            MHD_resume_connection(batch[i]->conn);
    }
    return NULL;
}

static void free_coalescer(coalescer *co)
{
    for (unsigned i = 0; i < co->nservers; i++)
        free(co->servers[i].batch);
    free(co->servers);
    pthread_cond_destroy(&co->wake);
    pthread_mutex_destroy(&co->mu);
    free(co->queue);
    free(co);
}

coalescer *coalescer_start(const char *name, size_t max_batch, unsigned threads,
                           coalesce_run_fn run)
{
    coalescer *co = calloc(1, sizeof *co);
    if (!co)
        return NULL;
    co->name = name;
    co->metrics_kind = metrics_coalescer_register(name);
    co->max_batch = max_batch ? max_batch : 1;
    co->run = run;
    co->nservers = threads ? threads : 1;
    pthread_mutex_init(&co->mu, NULL);
    pthread_cond_init(&co->wake, NULL);
    co->servers = calloc(co->nservers, sizeof *co->servers);
    bool ok = co->servers != NULL;
    for (unsigned i = 0; ok && i < co->nservers; i++) {
        server *sv = &co->servers[i];
        sv->co = co;
        ok = (sv->batch = malloc(co->max_batch * sizeof *sv->batch)) != NULL &&
             pthread_create(&sv->thread, NULL, serve, sv) == 0;
        sv->started = ok;
    }
    if (!ok) {
        log_msg("error", "cannot start the %s coalescer's threads", name);
        if (co->servers)
            coalescer_stop(co);
        else
            co->nservers = 0;
        free_coalescer(co);
        return NULL;
    }
    return co;
}

bool coalescer_submit(coalescer *co, api_request *rq, void (*finish)(api_request *rq), void *work,
                      void (*work_free)(void *work))
{
    if (!co)
        return false;
    pthread_mutex_lock(&co->mu);
    if (co->stopping || !make_room(co)) {
        pthread_mutex_unlock(&co->mu);
        return false;
    }
    rq->finish = finish;
    rq->work = work;
    rq->work_free = work_free;
    /* Suspended before it is queued, so that its resume cannot come first. */
    MHD_suspend_connection(rq->conn);
    co->queue[co->len++] = rq;
    pthread_cond_signal(&co->wake);
    pthread_mutex_unlock(&co->mu);
    return true;
}

void coalescer_stop(coalescer *co)
{
    if (!co)
        return;
    pthread_mutex_lock(&co->mu);
    bool join = !co->stopped;
    co->stopping = co->stopped = true;
    pthread_cond_broadcast(&co->wake);
    pthread_mutex_unlock(&co->mu);
    for (unsigned i = 0; join && i < co->nservers; i++)
        if (co->servers[i].started)
            pthread_join(co->servers[i].thread, NULL);
}

void coalescer_free(coalescer *co)
{
    if (!co)
        return;
    coalescer_stop(co);
    free_coalescer(co);
}
