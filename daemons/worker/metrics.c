/* Shared task metrics and their Prometheus rendering; see metrics.h. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "catalog.h"
#include "metrics.h"

/* Upper bounds of the duration histogram, in seconds. */
static const double bucket_le[METRICS_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                  0.5,   1,    2.5,   5,    10,  60};

typedef struct type_slot {
    atomic_llong started;
    atomic_llong outcomes[METRICS_OUTCOMES];
    atomic_llong buckets[METRICS_BUCKETS]; /* non-cumulative */
    atomic_llong count;
    atomic_llong sum_us;
} type_slot;

struct worker_metrics {
    type_slot types[METRICS_MAX_TYPES];
    atomic_llong scheduler_fired;
    atomic_int scheduler_leader;
};

worker_metrics *metrics_create(void)
{
    void *p = mmap(NULL, sizeof(worker_metrics), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    memset(p, 0, sizeof(worker_metrics));
    return p;
}

void metrics_destroy(worker_metrics *m)
{
    if (m)
        munmap(m, sizeof *m);
}

void metrics_task_started(worker_metrics *m, int type)
{
    if (m && type >= 0 && type < METRICS_MAX_TYPES)
        atomic_fetch_add(&m->types[type].started, 1);
}

void metrics_task_finished(worker_metrics *m, int type, metrics_outcome outcome,
                           int64_t duration_ms)
{
    if (!m || type < 0 || type >= METRICS_MAX_TYPES || outcome >= METRICS_OUTCOMES)
        return;
    type_slot *s = &m->types[type];
    atomic_fetch_add(&s->outcomes[outcome], 1);
    double sec = (double)duration_ms / 1000.0;
    for (int b = 0; b < METRICS_BUCKETS; b++)
        if (sec <= bucket_le[b]) {
            atomic_fetch_add(&s->buckets[b], 1);
            break;
        }
    atomic_fetch_add(&s->count, 1);
    atomic_fetch_add(&s->sum_us, duration_ms * 1000);
}

void metrics_scheduler_fired(worker_metrics *m)
{
    if (m)
        atomic_fetch_add(&m->scheduler_fired, 1);
}

void metrics_scheduler_leader(worker_metrics *m, int is_leader)
{
    if (m)
        atomic_store(&m->scheduler_leader, is_leader ? 1 : 0);
}

int metrics_is_leader(const worker_metrics *m)
{
    return m ? atomic_load(&((worker_metrics *)m)->scheduler_leader) : 0;
}

typedef struct buf {
    char *s;
    size_t n, cap;
    int oom;
} buf;

static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(buf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = (b->cap + (size_t)k + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

static void header(buf *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *const outcome_names[METRICS_OUTCOMES] = {
    "succeeded", "failed", "failed_retryable", "cancelled", "interrupted"};

char *metrics_render(const worker_metrics *mc, const aipalq_worker *w, aipalq_client *client,
                     const metrics_extra *extra)
{
    worker_metrics *m = (worker_metrics *)mc;
    buf b = {malloc(8192), 0, 8192, 0};
    if (!b.s)
        return NULL;
    b.s[0] = '\0';
    header(&b, "aipal_worker_info", "gauge", "The worker's version and settings.");
    put(&b, "aipal_worker_info{version=\"%s\",pool=\"%s\",queues=\"%s\"} 1\n",
        aipalq_version_string(), extra && extra->prefork ? "prefork" : "threads",
        extra && extra->queues ? extra->queues : "");
    if (extra) {
        header(&b, "aipal_worker_concurrency", "gauge", "Tasks the worker runs at once.");
        put(&b, "aipal_worker_concurrency %d\n", extra->concurrency);
        if (extra->ready >= 0) {
            header(&b, "aipal_worker_ready", "gauge", "1 when the last readiness check passed.");
            put(&b, "aipal_worker_ready %d\n", extra->ready);
        }
        header(&b, "aipal_worker_dependency_up", "gauge",
               "1 when the server answered the last check.");
        put(&b, "aipal_worker_dependency_up{server=\"redis\"} %d\n", extra->redis_ok);
        put(&b, "aipal_worker_dependency_up{server=\"postgresql\"} %d\n", extra->pg_ok);
    }
    if (w) {
        int64_t done = 0, failed = 0, retried = 0, cancelled = 0, stale = 0, running = 0;
        aipalq_worker_counts(w, &done, &failed, &retried, &cancelled, &stale, &running);
        header(&b, "aipal_worker_tasks_total", "counter",
               "Tasks this worker ended, by outcome as recorded by the library.");
        put(&b,
            "aipal_worker_tasks_total{outcome=\"completed\"} %lld\n"
            "aipal_worker_tasks_total{outcome=\"failed\"} %lld\n"
            "aipal_worker_tasks_total{outcome=\"retried\"} %lld\n"
            "aipal_worker_tasks_total{outcome=\"cancelled\"} %lld\n"
            "aipal_worker_tasks_total{outcome=\"stale\"} %lld\n",
            (long long)done, (long long)failed, (long long)retried, (long long)cancelled,
            (long long)stale);
        header(&b, "aipal_worker_tasks_running", "gauge", "Tasks running now.");
        put(&b, "aipal_worker_tasks_running %lld\n", (long long)running);
        header(&b, "aipal_worker_idle_seconds", "gauge",
               "Seconds since the worker's loop last made progress.");
        put(&b, "aipal_worker_idle_seconds %.3f\n", (double)aipalq_worker_idle_ms(w) / 1000.0);
    }
    header(&b, "aipal_task_started_total", "counter", "Handler runs started, by task type.");
    for (size_t t = 0; t < catalog_count() && t < METRICS_MAX_TYPES; t++)
        put(&b, "aipal_task_started_total{type=\"%s\"} %lld\n", catalog_at(t)->name,
            (long long)atomic_load(&m->types[t].started));
    header(&b, "aipal_task_handled_total", "counter",
           "Handler runs ended, by task type and the handler's outcome.");
    for (size_t t = 0; t < catalog_count() && t < METRICS_MAX_TYPES; t++)
        for (int o = 0; o < METRICS_OUTCOMES; o++)
            put(&b, "aipal_task_handled_total{type=\"%s\",outcome=\"%s\"} %lld\n",
                catalog_at(t)->name, outcome_names[o],
                (long long)atomic_load(&m->types[t].outcomes[o]));
    header(&b, "aipal_task_duration_seconds", "histogram", "Handler run time, by task type.");
    for (size_t t = 0; t < catalog_count() && t < METRICS_MAX_TYPES; t++) {
        const char *name = catalog_at(t)->name;
        long long cum = 0;
        for (int k = 0; k < METRICS_BUCKETS; k++) {
            cum += atomic_load(&m->types[t].buckets[k]);
            put(&b, "aipal_task_duration_seconds_bucket{type=\"%s\",le=\"%g\"} %lld\n", name,
                bucket_le[k], cum);
        }
        long long count = atomic_load(&m->types[t].count);
        put(&b, "aipal_task_duration_seconds_bucket{type=\"%s\",le=\"+Inf\"} %lld\n", name, count);
        put(&b, "aipal_task_duration_seconds_sum{type=\"%s\"} %.6f\n", name,
            (double)atomic_load(&m->types[t].sum_us) / 1e6);
        put(&b, "aipal_task_duration_seconds_count{type=\"%s\"} %lld\n", name, count);
    }
    header(&b, "aipal_scheduler_leader", "gauge", "1 while this worker is the scheduler leader.");
    put(&b, "aipal_scheduler_leader %d\n", atomic_load(&m->scheduler_leader));
    header(&b, "aipal_scheduler_fired_total", "counter",
           "Scheduled firings this worker enqueued as leader.");
    put(&b, "aipal_scheduler_fired_total %lld\n", (long long)atomic_load(&m->scheduler_fired));
    if (client) {
        bool first = true;
        for (size_t q = 0; q < catalog_queue_count(); q++) {
            int64_t ready = 0, scheduled = 0, leased = 0;
            if (aipalq_queue_depth(client, catalog_queue_at(q), &ready, &scheduled, &leased) !=
                AIPALQ_OK)
                break;
            if (first)
                header(&b, "aipal_queue_depth", "gauge",
                       "Tasks in each queue in Redis: ready, waiting for a time, leased.");
            first = false;
            put(&b,
                "aipal_queue_depth{queue=\"%s\",state=\"ready\"} %lld\n"
                "aipal_queue_depth{queue=\"%s\",state=\"scheduled\"} %lld\n"
                "aipal_queue_depth{queue=\"%s\",state=\"leased\"} %lld\n",
                catalog_queue_at(q), (long long)ready, catalog_queue_at(q), (long long)scheduled,
                catalog_queue_at(q), (long long)leased);
        }
    }
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}
