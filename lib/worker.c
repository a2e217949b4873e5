/* The worker: configuration, the dispatcher loop, handler threads, graceful
 * and fast shutdown, and the step API.
 *
 * Threads of a running worker:
 *   dispatcher (the caller of aipalq_worker_run) takes tasks only when a slot
 *     is free (plus the configured prefetch), and otherwise blocks on Redis
 *     (BLPOP on the queues' wake lists) or on a condition variable;
 *   N slot threads run handlers (thread mode) or drive one child each
 *     (prefork mode);
 *   the recorder writes transitions to PostgreSQL in batches, then settles
 *     Redis;
 *   the heartbeat extends leases, delivers cancels, enforces limits. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "worker_internal.h"

#if ATOMIC_INT_LOCK_FREE != 2
#error "aipalq_worker_stop needs a lock-free atomic int (async-signal-safe)"
#endif

bool aipalq__worker_ok(const aipalq_worker *w)
{
    return w && w->magic == AIPALQ__WORKER_MAGIC;
}

void aipalq__worker_set_err(aipalq_worker *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->errmsg, sizeof w->errmsg, fmt, ap);
    va_end(ap);
}

static aipalq_status werr(aipalq_worker *w, aipalq_status st, const char *msg)
{
    aipalq__worker_set_err(w, "%s", msg);
    return st;
}

/* A fresh client with the worker's settings, for one thread. */
aipalq_client *aipalq__worker_client(aipalq_worker *w)
{
    aipalq_client *c = aipalq_client_new(w->cfg->redis_url, w->cfg->database_url);
    if (!c)
        return NULL;
    strcpy(c->ns, w->cfg->ns);
    c->connect_timeout_ms = w->cfg->connect_timeout_ms;
    c->command_timeout_ms = w->cfg->command_timeout_ms;
    return c;
}

const aipalq__handler *aipalq__worker_handler(const aipalq_worker *w, const char *type)
{
    for (size_t i = 0; i < w->nhandlers; i++)
        if (strcmp(w->handlers[i].type, type) == 0)
            return &w->handlers[i];
    return NULL;
}

void aipalq__inflight_add(aipalq_worker *w, aipalq_job *job)
{
    job->prev = NULL;
    job->next = w->inflight;
    if (w->inflight)
        w->inflight->prev = job;
    w->inflight = job;
}

void aipalq__inflight_remove(aipalq_worker *w, aipalq_job *job)
{
    if (job->prev)
        job->prev->next = job->next;
    else if (w->inflight == job)
        w->inflight = job->next;
    if (job->next)
        job->next->prev = job->prev;
    job->next = job->prev = NULL;
}

/* ------------------------------------------------------------ configure */

static bool add_queue(aipalq_worker *w, const char *q, size_t len)
{
    for (size_t i = 0; i < w->nqueues; i++)
        if (strlen(w->queues[i]) == len && strncmp(w->queues[i], q, len) == 0)
            return true;
    if (w->nqueues == AIPALQ__MAX_QUEUES)
        return false;
    char *copy = malloc(len + 1);
    if (!copy)
        return false;
    memcpy(copy, q, len);
    copy[len] = '\0';
    w->queues[w->nqueues++] = copy;
    return true;
}

static void clear_queues(aipalq_worker *w)
{
    for (size_t i = 0; i < w->nqueues; i++)
        free(w->queues[i]);
    w->nqueues = 0;
}

aipalq_worker *aipalq_worker_new(aipalq_client *client)
{
    if (!aipalq__client_ok(client))
        return NULL;
    aipalq_worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->cfg = aipalq_client_new(client->redis_url, client->database_url);
    if (!w->cfg) {
        free(w);
        return NULL;
    }
    strcpy(w->cfg->ns, client->ns);
    w->cfg->connect_timeout_ms = client->connect_timeout_ms;
    w->cfg->command_timeout_ms = client->command_timeout_ms;
    for (size_t i = 0; i < client->types.count; i++) {
        const aipalq__type *t = &client->types.items[i];
        if (aipalq_type_define(w->cfg, t->name, t->queue) != AIPALQ_OK) {
            aipalq_worker_free(w);
            return NULL;
        }
        *(aipalq__type *)aipalq__types_find(&w->cfg->types, t->name) = *t;
        add_queue(w, t->queue, strlen(t->queue));
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    w->concurrency = cores > 0 ? (int)cores : 1;
    w->lease_ms = 30000;
    w->shutdown_ms = 30000;
    w->maintenance_ms = 30000;
    w->mode = AIPALQ_MODE_THREADS;
    if (gethostname(w->host, sizeof w->host - 1) != 0)
        strcpy(w->host, "unknown");
    char rnd[AIPALQ_ID_SIZE];
    aipalq__uuid7(rnd);
    snprintf(w->id, sizeof w->id, "%.64s:%d:%.8s", w->host, (int)getpid(), rnd + 28);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->slot_cv, NULL);
    pthread_mutex_init(&w->rec_mu, NULL);
    pthread_cond_init(&w->rec_cv, NULL);
    pthread_cond_init(&w->rec_idle_cv, NULL);
    w->magic = AIPALQ__WORKER_MAGIC;
    return w;
}

const char *aipalq_worker_errmsg(const aipalq_worker *w)
{
    return aipalq__worker_ok(w) ? w->errmsg : "invalid worker handle";
}

static aipalq_status configurable(aipalq_worker *w)
{
    if (!aipalq__worker_ok(w))
        return AIPALQ_EMISUSE;
    if (w->runtime_started)
        return werr(w, AIPALQ_EMISUSE, "the worker is running; configure it before");
    return AIPALQ_OK;
}

aipalq_status aipalq_worker_handle(aipalq_worker *w, const char *type, aipalq_handler_fn fn,
                                   void *userdata)
{
    aipalq_status st = configurable(w);
    if (st != AIPALQ_OK)
        return st;
    if (!fn || !type)
        return werr(w, AIPALQ_EINVAL, "type and handler must not be NULL");
    if (!aipalq__types_find(&w->cfg->types, type)) {
        aipalq__worker_set_err(w, "unknown task type '%.64s': define it on the client first", type);
        return AIPALQ_EUNKNOWNTYPE;
    }
    aipalq__handler *existing = (aipalq__handler *)aipalq__worker_handler(w, type);
    if (!existing) {
        aipalq__handler *grown = realloc(w->handlers, (w->nhandlers + 1) * sizeof *grown);
        if (!grown)
            return werr(w, AIPALQ_ENOMEM, "out of memory");
        w->handlers = grown;
        existing = &w->handlers[w->nhandlers++];
        snprintf(existing->type, sizeof existing->type, "%s", type);
    }
    existing->fn = fn;
    existing->userdata = userdata;
    w->errmsg[0] = '\0';
    return AIPALQ_OK;
}

aipalq_status aipalq_worker_set_queues(aipalq_worker *w, const char *csv, int fair_every)
{
    aipalq_status st = configurable(w);
    if (st != AIPALQ_OK)
        return st;
    if (!csv || fair_every < 0)
        return werr(w, AIPALQ_EINVAL, "queues must not be NULL and fair_every >= 0");
    clear_queues(w);
    const char *p = csv;
    while (*p) {
        size_t len = strcspn(p, ",");
        char name[AIPALQ_MAX_NAME_LEN + 2];
        if (len == 0 || len > AIPALQ_MAX_NAME_LEN) {
            clear_queues(w);
            return werr(w, AIPALQ_EQUEUE, "bad queue name in the list");
        }
        memcpy(name, p, len);
        name[len] = '\0';
        if (!aipalq__valid_name(name) || !add_queue(w, name, len)) {
            clear_queues(w);
            aipalq__worker_set_err(w, "bad queue name '%s' (or more than %d queues)", name,
                                   AIPALQ__MAX_QUEUES);
            return AIPALQ_EQUEUE;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    if (w->nqueues == 0)
        return werr(w, AIPALQ_EQUEUE, "no queue given");
    w->fair_every = fair_every;
    return AIPALQ_OK;
}

aipalq_status aipalq_worker_set_concurrency(aipalq_worker *w, int n)
{
    aipalq_status st = configurable(w);
    if (st == AIPALQ_OK && (n < 1 || n > 1024))
        st = werr(w, AIPALQ_EINVAL, "concurrency must be 1..1024");
    if (st == AIPALQ_OK)
        w->concurrency = n;
    return st;
}

aipalq_status aipalq_worker_set_mode(aipalq_worker *w, aipalq_worker_mode mode)
{
    aipalq_status st = configurable(w);
    if (st == AIPALQ_OK && mode != AIPALQ_MODE_THREADS && mode != AIPALQ_MODE_PREFORK)
        st = werr(w, AIPALQ_EINVAL, "unknown mode");
    if (st == AIPALQ_OK)
        w->mode = mode;
    return st;
}

aipalq_status aipalq_worker_set_prefetch(aipalq_worker *w, int prefetch)
{
    aipalq_status st = configurable(w);
    if (st == AIPALQ_OK && (prefetch < 0 || prefetch > w->concurrency))
        st = werr(w, AIPALQ_EINVAL, "prefetch must be 0..concurrency");
    if (st == AIPALQ_OK)
        w->prefetch = prefetch;
    return st;
}

aipalq_status aipalq_worker_set_lease_ms(aipalq_worker *w, int64_t lease_ms)
{
    aipalq_status st = configurable(w);
    if (st == AIPALQ_OK && (lease_ms < 1000 || lease_ms > 3600 * 1000))
        st = werr(w, AIPALQ_EINVAL, "lease must be 1000 ms .. 1 h");
    if (st == AIPALQ_OK)
        w->lease_ms = lease_ms;
    return st;
}

aipalq_status aipalq_worker_set_shutdown_timeout_ms(aipalq_worker *w, int64_t timeout_ms)
{
    aipalq_status st = configurable(w);
    if (st == AIPALQ_OK && timeout_ms < 0)
        st = werr(w, AIPALQ_EINVAL, "timeout must be >= 0");
    if (st == AIPALQ_OK)
        w->shutdown_ms = timeout_ms;
    return st;
}

aipalq_status aipalq_worker_set_recycle(aipalq_worker *w, int max_tasks, int64_t max_rss_kb)
{
    aipalq_status st = configurable(w);
    if (st == AIPALQ_OK && (max_tasks < 0 || max_rss_kb < 0))
        st = werr(w, AIPALQ_EINVAL, "limits must be >= 0");
    if (st == AIPALQ_OK) {
        w->recycle_tasks = max_tasks;
        w->recycle_rss_kb = max_rss_kb;
    }
    return st;
}

aipalq_status aipalq_worker_set_id(aipalq_worker *w, const char *id)
{
    aipalq_status st = configurable(w);
    if (st == AIPALQ_OK && (!id || !*id || strlen(id) > 128 ||
                            aipalq__utf8_invalid_at((const unsigned char *)id, strlen(id)) >= 0))
        st = werr(w, AIPALQ_EINVAL, "id must be 1..128 bytes of UTF-8");
    if (st == AIPALQ_OK)
        snprintf(w->id, sizeof w->id, "%s", id);
    return st;
}

aipalq_status aipalq_worker_set_maintenance_ms(aipalq_worker *w, int64_t interval_ms)
{
    aipalq_status st = configurable(w);
    if (st == AIPALQ_OK && interval_ms < 0)
        st = werr(w, AIPALQ_EINVAL, "interval must be >= 0");
    if (st == AIPALQ_OK)
        w->maintenance_ms = interval_ms;
    return st;
}

aipalq_status aipalq_worker_on_soft_limit(aipalq_worker *w, aipalq_soft_limit_fn fn, void *userdata)
{
    aipalq_status st = configurable(w);
    if (st == AIPALQ_OK) {
        w->soft_fn = fn;
        w->soft_ud = userdata;
    }
    return st;
}

aipalq_status aipalq_worker_id(const aipalq_worker *w, char *out, size_t outlen)
{
    if (!aipalq__worker_ok(w) || !out || outlen == 0)
        return AIPALQ_EMISUSE;
    snprintf(out, outlen, "%s", w->id);
    return AIPALQ_OK;
}

void aipalq_worker_counts(const aipalq_worker *w, int64_t *completed, int64_t *failed,
                          int64_t *retried, int64_t *cancelled, int64_t *stale, int64_t *running)
{
    if (!aipalq__worker_ok(w))
        return;
    aipalq_worker *m = (aipalq_worker *)w; /* atomics are read, not changed */
    if (completed)
        *completed = atomic_load(&m->n_completed);
    if (failed)
        *failed = atomic_load(&m->n_failed);
    if (retried)
        *retried = atomic_load(&m->n_retried);
    if (cancelled)
        *cancelled = atomic_load(&m->n_cancelled);
    if (stale)
        *stale = atomic_load(&m->n_stale);
    if (running)
        *running = atomic_load(&m->n_running);
}

int64_t aipalq_worker_idle_ms(const aipalq_worker *w)
{
    if (!aipalq__worker_ok(w))
        return -1;
    aipalq_worker *m = (aipalq_worker *)w;
    return aipalq__monotonic_ms() - atomic_load(&m->last_progress_mono);
}

void aipalq_worker_stop(aipalq_worker *w, int fast)
{
    /* Only lock-free atomic operations: safe in a signal handler and from any
     * thread. A graceful request never downgrades a fast one (0 -> 1 only).
     * The dispatcher wakes within its short blocking timeouts. */
    if (w && w->magic == AIPALQ__WORKER_MAGIC) {
        int graceful_from = 0;
        if (fast)
            atomic_store(&w->stop, 2);
        else
            atomic_compare_exchange_strong(&w->stop, &graceful_from, 1);
    }
}

/* ---------------------------------------------------------- the runtime */

static aipalq_status start_runtime(aipalq_worker *w)
{
    if (w->runtime_started)
        return AIPALQ_OK;
    if (w->nqueues == 0)
        return werr(w, AIPALQ_EINVAL, "no queue to consume: define types or set queues");
    w->main = aipalq__worker_client(w);
    if (!w->main)
        return werr(w, AIPALQ_ENOMEM, "out of memory");
    w->started_ms = aipalq__now_ms();
    w->start_hold_ms =
        AIPALQ__START_HOLD_MS < w->lease_ms / 10 ? AIPALQ__START_HOLD_MS : w->lease_ms / 10;
    atomic_store(&w->last_progress_mono, aipalq__monotonic_ms());
    if (aipalq__recorder_start(w) != AIPALQ_OK)
        return werr(w, AIPALQ_ENOMEM, "cannot start the recorder thread");
    if (aipalq__heartbeat_start(w) != AIPALQ_OK) {
        aipalq__recorder_stop(w);
        return werr(w, AIPALQ_ENOMEM, "cannot start the heartbeat thread");
    }
    if (aipalq__maintenance_start(w) != AIPALQ_OK) {
        aipalq__heartbeat_stop(w);
        aipalq__recorder_stop(w);
        return werr(w, AIPALQ_ENOMEM, "cannot start the maintenance thread");
    }
    w->runtime_started = true;
    return AIPALQ_OK;
}

/* Flushes every record, then stops the recorder and the heartbeat (in that
 * order: leases must live until their outcomes are written). */
static void stop_runtime(aipalq_worker *w, int64_t deadline)
{
    if (!w->runtime_started)
        return;
    aipalq__maintenance_stop(w);
    aipalq__recorder_drain(w, deadline);
    aipalq__recorder_stop(w);
    aipalq__heartbeat_stop(w);
    aipalq_client_free(w->main);
    w->main = NULL;
    w->runtime_started = false;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Under mu: wakes the slot thread that went idle last (its caches are the
 * warmest), handing it `job`. */
static void wake_idle_slot(aipalq_worker *w, aipalq_job *job)
{
    aipalq__slot_waiter *idle = w->idle_slots;
    w->idle_slots = idle->next;
    idle->next = NULL;
    idle->job = job;
    w->slot_waking = true;
    pthread_cond_signal(&idle->cv);
}

static void queue_ready(aipalq_worker *w, aipalq_job *job)
{
    job->next_ready = NULL;
    if (w->ready_tail)
        w->ready_tail->next_ready = job;
    else
        w->ready_head = job;
    w->ready_tail = job;
    w->nready++;
}

static aipalq_job *unqueue_ready(aipalq_worker *w)
{
    aipalq_job *job = w->ready_head;
    if (!job)
        return NULL;
    w->ready_head = job->next_ready;
    if (!w->ready_head)
        w->ready_tail = NULL;
    w->nready--;
    return job;
}

/* Under mu: one slot thread is being woken at a time. A wake-up costs more
 * than a short handler (on this kind of VM, tens of microseconds), so jobs
 * that arrive meanwhile wait in the ready queue: the woken thread, or a
 * thread that finishes its job first, takes the next one and wakes the next
 * idle thread only if work is still waiting then. Short handlers thus run on
 * as few threads as keep up with them; long ones still spread over every
 * slot, one wake-up after another. */
static void push_ready(aipalq_worker *w, aipalq_job *job)
{
    if (w->idle_slots && !w->slot_waking)
        wake_idle_slot(w, job);
    else
        queue_ready(w, job);
}

/* Under mu: passes the wake-up on when work is still waiting. */
static void wake_next_if_waiting(aipalq_worker *w)
{
    if (w->ready_head && w->idle_slots && !w->slot_waking)
        wake_idle_slot(w, unqueue_ready(w));
}

void aipalq__wake_idle_slots(aipalq_worker *w)
{
    for (aipalq__slot_waiter *s = w->idle_slots; s; s = s->next)
        pthread_cond_signal(&s->cv);
}

static bool slots_should_exit(const aipalq_worker *w)
{
    return w->stop || w->slots_closing;
}

/* Under mu: the next job for a slot, or NULL when stopping. */
aipalq_job *aipalq__pop_ready(aipalq_worker *w)
{
    aipalq_job *job = NULL;
    if (!w->ready_head && !slots_should_exit(w)) {
        aipalq__slot_waiter me = {.job = NULL, .next = w->idle_slots};
        pthread_cond_init(&me.cv, NULL);
        w->idle_slots = &me;
        while (!me.job && !slots_should_exit(w))
            pthread_cond_wait(&me.cv, &w->mu);
        pthread_cond_destroy(&me.cv);
        job = me.job;
        if (job) {
            w->slot_waking = false; /* this was the wake-up in flight */
        } else {
            /* Stopping: leave the stack (nobody handed us a job). */
            for (aipalq__slot_waiter **p = &w->idle_slots; *p; p = &(*p)->next)
                if (*p == &me) {
                    *p = me.next;
                    break;
                }
        }
    }
    if (!job)
        job = unqueue_ready(w);
    wake_next_if_waiting(w);
    return job;
}

/* Ends a job that will not run (or whose handler is gone): the task goes
 * back to its queue without counting the attempt. */
void aipalq__release_job(aipalq_worker *w, aipalq_job *job)
{
    aipalq__record *r = aipalq__record_new("released", job);
    if (r)
        aipalq__recorder_push(w, r);
}

/* Runs one job on this thread and records its outcome. */
static void run_handler(aipalq_worker *w, aipalq_job *job)
{
    const aipalq__handler *h = aipalq__worker_handler(w, job->type);
    job->started_mono = aipalq__monotonic_ms();
    atomic_store(&job->running, 1);
    atomic_fetch_add(&w->n_running, 1);
    if (h)
        h->fn(job, h->userdata);
    else
        aipalq_job_set_error(job, "no handler for this task type on this worker", job->type, 1);
    atomic_store(&job->running, 0);
    atomic_fetch_sub(&w->n_running, 1);
    aipalq__record *r = NULL;
    if (atomic_load(&job->abandoned))
        r = NULL; /* its end was already recorded (hard limit or hand-back) */
    else if (w->stop == 2 && job->outcome == JOB_NO_OUTCOME)
        r = aipalq__record_new("released", job); /* stopped short: run it elsewhere */
    else
        r = aipalq__job_outcome_record(job);
    if (r)
        aipalq__recorder_push(w, r);
}

void aipalq__slot_done(aipalq_worker *w, aipalq_job *job)
{
    pthread_mutex_lock(&w->mu);
    aipalq__inflight_remove(w, job);
    w->nrunning--;
    pthread_cond_broadcast(&w->slot_cv);
    pthread_mutex_unlock(&w->mu);
    aipalq__job_destroy(job);
}

void aipalq__slot_loop(aipalq_worker *w, aipalq__run_fn run, void *ctx)
{
    for (;;) {
        pthread_mutex_lock(&w->mu);
        aipalq_job *job = aipalq__pop_ready(w);
        pthread_mutex_unlock(&w->mu);
        if (!job)
            break;
        if (w->stop == 2 || atomic_load(&job->abandoned)) {
            if (!atomic_load(&job->abandoned))
                aipalq__release_job(w, job);
        } else {
            run(w, job, ctx);
        }
        aipalq__slot_done(w, job);
    }
}

static void run_handler_in_thread(aipalq_worker *w, aipalq_job *job, void *ctx)
{
    (void)ctx;
    run_handler(w, job);
}

static void *thread_slot(void *arg)
{
    aipalq_worker *w = arg;
    aipalq__slot_loop(w, run_handler_in_thread, NULL);
    aipalq__slot_exit(w);
    return NULL;
}

void aipalq__slot_exit(aipalq_worker *w)
{
    pthread_mutex_lock(&w->mu);
    w->live_slots--;
    pthread_cond_broadcast(&w->slot_cv);
    pthread_mutex_unlock(&w->mu);
}

/* How many tasks the slots (plus prefetch) can take now. */
static int free_capacity(aipalq_worker *w)
{
    pthread_mutex_lock(&w->mu);
    int capacity = w->concurrency + w->prefetch - w->nrunning;
    pthread_mutex_unlock(&w->mu);
    return capacity;
}

/* Hands taken jobs to the slots. Returns how many there were, or -1 when
 * the take failed and took nothing. */
static int hand_out(aipalq_worker *w, aipalq_job **jobs, int n, aipalq_status st)
{
    pthread_mutex_lock(&w->mu);
    for (int i = 0; i < n; i++) {
        aipalq__inflight_add(w, jobs[i]);
        w->nrunning++;
        push_ready(w, jobs[i]);
    }
    pthread_mutex_unlock(&w->mu);
    free(jobs);
    if (n > 0)
        aipalq__recorder_kick(w); /* the starts, once the handlers have their jobs */
    if (st != AIPALQ_OK && n == 0) {
        aipalq__worker_set_err(w, "%s", aipalq_client_errmsg(w->main));
        return -1;
    }
    atomic_store(&w->last_progress_mono, aipalq__monotonic_ms());
    return n;
}

/* Takes as many tasks as there are free slots (plus prefetch). Returns how
 * many were taken, or -1 on a connection error; *drained says the take found
 * fewer than it could start (Redis had no more ready). */
static int dispatch_once(aipalq_worker *w, int64_t *next_due, bool *drained)
{
    int capacity = free_capacity(w);
    *next_due = -1;
    *drained = false;
    if (capacity <= 0)
        return 0;
    aipalq_job **jobs = NULL;
    int n = 0;
    aipalq_status st = aipalq__take(w, w->main, capacity, &jobs, &n, next_due);
    *drained = n < capacity;
    return hand_out(w, jobs, n, st);
}

/* Blocks until woken, then takes what the wake announced with no further
 * round trip (aipalq__wait_for_work). Returns and reports as dispatch_once. */
static int wait_then_take(aipalq_worker *w, int64_t wait_ms, int64_t *next_due, bool *drained)
{
    aipalq_job **jobs = NULL;
    int n = 0;
    int capacity = free_capacity(w);
    aipalq_status st = aipalq__wait_for_work(w, w->main, wait_ms, capacity, &jobs, &n, next_due);
    /* The take behind the wake-up covers the first queue only: with more,
     * the wake-up may be for another, which the next full take finds. */
    *drained = w->nqueues == 1 && n < capacity;
    return hand_out(w, jobs, n, st);
}

/* Waits while every slot is busy (no Redis traffic meanwhile). */
static void wait_for_slot(aipalq_worker *w)
{
    pthread_mutex_lock(&w->mu);
    while (!w->stop && w->nrunning >= w->concurrency + w->prefetch) {
        aipalq__cond_wait_ms(&w->slot_cv, &w->mu, 200);
    }
    pthread_mutex_unlock(&w->mu);
}

/* Takes while takes come back full; once one comes back short, Redis had
 * nothing more ready, so the next take waits behind a BLPOP for a wake-up
 * instead of asking again at once (which, one task at a time, was a second
 * script call per task that always found nothing). */
static void dispatch_loop(aipalq_worker *w)
{
    int64_t backoff = 100;
    bool drained = false;
    int64_t next_due = -1;
    while (!w->stop) {
        wait_for_slot(w);
        if (w->stop)
            break;
        if (aipalq__recorder_backlog(w) > AIPALQ__RECORDER_BACKLOG) {
            sleep_ms(50); /* PostgreSQL is behind: do not run what it cannot record */
            continue;
        }
        if (!drained) {
            int n = dispatch_once(w, &next_due, &drained);
            if (n < 0) {
                sleep_ms(backoff);
                backoff = backoff < 5000 ? backoff * 2 : 5000;
                continue;
            }
            backoff = 100;
            if (!drained)
                continue;
        }
        /* Block until woken, a scheduled task falls due, or a second passes
         * (to notice a stop request). */
        int64_t wait = 1000;
        if (next_due > 0) {
            int64_t until = next_due - aipalq__now_ms();
            wait = until < 1 ? 1 : (until < wait ? until : wait);
        }
        if (wait_then_take(w, wait, &next_due, &drained) < 0) {
            drained = false;
            sleep_ms(100);
        }
    }
}

/* Hands back every job that has not started, and (at the deadline) those
 * still running, whose late outcomes are then ignored. */
static void hand_back(aipalq_worker *w, bool running_too)
{
    pthread_mutex_lock(&w->mu);
    for (aipalq_job *j = w->inflight; j; j = j->next) {
        if (j->step || atomic_load(&j->abandoned))
            continue;
        if (!atomic_load(&j->running) && !running_too)
            continue;
        atomic_store(&j->abandoned, 1);
        aipalq__release_job(w, j);
    }
    pthread_mutex_unlock(&w->mu);
}

static void shutdown_slots(aipalq_worker *w)
{
    int64_t deadline = aipalq__monotonic_ms() + (w->stop == 2 ? 0 : w->shutdown_ms);
    /* Graceful: running handlers may finish until the deadline. Queued
     * (prefetched) jobs are handed back now. */
    pthread_mutex_lock(&w->mu);
    for (aipalq_job *job; (job = unqueue_ready(w));) {
        atomic_store(&job->abandoned, 1);
        aipalq__release_job(w, job);
        aipalq__inflight_remove(w, job);
        w->nrunning--;
        aipalq__job_destroy(job);
    }
    w->slots_closing = true;
    aipalq__wake_idle_slots(w);
    while (w->nrunning > 0 && aipalq__monotonic_ms() < deadline && w->stop != 2) {
        aipalq__cond_wait_ms(&w->slot_cv, &w->mu, 100);
    }
    pthread_mutex_unlock(&w->mu);
    hand_back(w, true);
    if (w->mode == AIPALQ_MODE_PREFORK)
        w->stop = 2; /* slot threads kill their children */
}

/* Handler threads of an earlier run that outlived its shutdown deadline
 * (thread mode) exit once their handlers return; they use this worker until
 * then, so a new run or aipalq_worker_free waits for them first. */
static void wait_for_detached_slots(aipalq_worker *w)
{
    if (!w->slot_threads)
        return;
    pthread_mutex_lock(&w->mu);
    while (w->live_slots > 0)
        pthread_cond_wait(&w->slot_cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    free(w->slot_threads);
    w->slot_threads = NULL;
    w->nslot_threads = 0;
}

aipalq_status aipalq_worker_run(aipalq_worker *w)
{
    if (!aipalq__worker_ok(w))
        return AIPALQ_EMISUSE;
    if (w->running_loop || w->runtime_started)
        return werr(w, AIPALQ_EMISUSE, "the worker is already running");
    if (w->nhandlers == 0)
        return werr(w, AIPALQ_EMISUSE, "no handler registered");
    wait_for_detached_slots(w);
    /* A stop requested before the loop started (a signal right after the
     * handler was installed) is honoured: the loop ends at once. */
    aipalq_status st = start_runtime(w);
    if (st != AIPALQ_OK)
        return st;
    w->running_loop = true;
    w->slots_closing = false;
    w->slot_waking = false;
    w->slot_threads = calloc((size_t)w->concurrency, sizeof *w->slot_threads);
    void *(*slot_fn)(void *) = w->mode == AIPALQ_MODE_PREFORK ? aipalq__prefork_slot : thread_slot;
    for (int i = 0; w->slot_threads && i < w->concurrency; i++) {
        pthread_mutex_lock(&w->mu);
        w->live_slots++;
        pthread_mutex_unlock(&w->mu);
        if (pthread_create(&w->slot_threads[i], NULL, slot_fn, w) != 0) {
            aipalq__slot_exit(w);
            break;
        }
        w->nslot_threads++;
    }
    if (w->nslot_threads == 0) {
        free(w->slot_threads);
        w->slot_threads = NULL;
        w->running_loop = false;
        stop_runtime(w, aipalq__monotonic_ms());
        return werr(w, AIPALQ_ENOMEM, "cannot start handler threads");
    }
    dispatch_loop(w);
    shutdown_slots(w);
    bool all_joined = true;
    pthread_mutex_lock(&w->mu);
    aipalq__wake_idle_slots(w);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->nslot_threads; i++) {
        /* In thread mode a handler past the deadline may still run; its
         * task is handed back already. Do not wait for it here. */
        if (w->mode == AIPALQ_MODE_THREADS && atomic_load(&w->n_running) > 0) {
            /* detached: aipalq_worker_free waits for live_slots to reach 0 */
            all_joined = false;
            pthread_detach(w->slot_threads[i]);
        } else {
            pthread_join(w->slot_threads[i], NULL);
        }
    }
    int64_t deadline = aipalq__monotonic_ms() + (w->shutdown_ms > 5000 ? w->shutdown_ms : 5000);
    if (all_joined) {
        free(w->slot_threads);
        w->slot_threads = NULL;
        w->nslot_threads = 0;
    }
    stop_runtime(w, deadline);
    w->running_loop = false;
    w->stop = 0; /* the worker may be run again */
    w->errmsg[0] = '\0';
    return AIPALQ_OK;
}

/* ----------------------------------------------------------------- steps */

/* The caller of aipalq_worker_next runs the job itself. */
static aipalq_job *start_step_job(aipalq_worker *w, aipalq_job **jobs)
{
    aipalq_job *job = jobs[0];
    free(jobs);
    job->step = true;
    job->started_mono = aipalq__monotonic_ms();
    atomic_store(&job->running, 1);
    pthread_mutex_lock(&w->mu);
    aipalq__inflight_add(w, job);
    pthread_mutex_unlock(&w->mu);
    aipalq__recorder_kick(w);
    return job;
}

aipalq_status aipalq_worker_next(aipalq_worker *w, int64_t timeout_ms, aipalq_job **job_out)
{
    if (!aipalq__worker_ok(w) || !job_out || w->running_loop)
        return AIPALQ_EMISUSE;
    *job_out = NULL;
    aipalq_status st = start_runtime(w);
    if (st != AIPALQ_OK)
        return st;
    int64_t deadline = aipalq__monotonic_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        aipalq_job **jobs = NULL;
        int n = 0;
        int64_t next_due = -1;
        st = aipalq__take(w, w->main, 1, &jobs, &n, &next_due);
        if (n > 0) {
            *job_out = start_step_job(w, jobs);
            return AIPALQ_OK;
        }
        free(jobs);
        if (st != AIPALQ_OK) {
            aipalq__worker_set_err(w, "%s", aipalq_client_errmsg(w->main));
            return st;
        }
        int64_t left = deadline - aipalq__monotonic_ms();
        if (left <= 0)
            return AIPALQ_EMPTY;
        /* At most a second, as in the loop: an expired lease sends no wake,
         * and only a take reclaims it. */
        int64_t wait = left < 1000 ? left : 1000;
        if (next_due > 0 && next_due - aipalq__now_ms() < wait)
            wait = next_due - aipalq__now_ms() < 1 ? 1 : next_due - aipalq__now_ms();
        int64_t due_after_wake;
        st = aipalq__wait_for_work(w, w->main, wait, 1, &jobs, &n, &due_after_wake);
        if (n > 0) {
            *job_out = start_step_job(w, jobs);
            return AIPALQ_OK;
        }
        free(jobs);
        if (st != AIPALQ_OK) {
            aipalq__worker_set_err(w, "%s", aipalq_client_errmsg(w->main));
            return st;
        }
    }
}

void aipalq_worker_free(aipalq_worker *w)
{
    if (!aipalq__worker_ok(w))
        return;
    wait_for_detached_slots(w);
    stop_runtime(w, aipalq__monotonic_ms() + 5000);
    clear_queues(w);
    free(w->handlers);
    aipalq_client_free(w->cfg);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->slot_cv);
    pthread_mutex_destroy(&w->rec_mu);
    pthread_cond_destroy(&w->rec_cv);
    pthread_cond_destroy(&w->rec_idle_cv);
    w->magic = AIPALQ__DEAD_MAGIC;
    free(w);
}
