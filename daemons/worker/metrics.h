/* Per-type task counters and duration histograms in memory shared with the
 * prefork children (an anonymous shared mapping made before they fork), so
 * that /metrics sees the tasks every child ran. Lock-free atomics; any
 * thread, any process of the worker. */
#ifndef AIPAL_WORKER_METRICS_H
#define AIPAL_WORKER_METRICS_H

#include <stdint.h>

#include <aipal/worker.h>

#define METRICS_MAX_TYPES 32
#define METRICS_BUCKETS   12

typedef enum metrics_outcome {
    METRICS_SUCCEEDED = 0,
    METRICS_FAILED,       /* the handler failed the task, not retryable */
    METRICS_FAILED_RETRY, /* the handler failed the task, retryable */
    METRICS_CANCELLED,    /* stopped by a cancel request */
    METRICS_INTERRUPTED,  /* stopped by a fast shutdown: handed back */
    METRICS_OUTCOMES
} metrics_outcome;

typedef struct worker_metrics worker_metrics;

/* NULL when the mapping fails. */
worker_metrics *metrics_create(void);
void metrics_destroy(worker_metrics *m);

/* `type` is an index below METRICS_MAX_TYPES (the catalog's order); others
 * are ignored. */
void metrics_task_started(worker_metrics *m, int type);
void metrics_task_finished(worker_metrics *m, int type, metrics_outcome outcome,
                           int64_t duration_ms);

void metrics_scheduler_fired(worker_metrics *m);
void metrics_scheduler_leader(worker_metrics *m, int is_leader);
int metrics_is_leader(const worker_metrics *m);

/* Extra gauges for one rendering. */
typedef struct metrics_extra {
    int concurrency;
    int prefork;
    int ready; /* -1: unknown */
    int redis_ok, pg_ok;
    const char *queues; /* csv */
} metrics_extra;

/* The Prometheus text exposition (version 0.0.4) of the counters, the
 * worker's own counts (aipalq_worker_counts, idle) and the queue depths of
 * `client` (NULL: none). malloc'd. */
char *metrics_render(const worker_metrics *m, const aipalq_worker *w, aipalq_client *client,
                     const metrics_extra *extra);

#endif
