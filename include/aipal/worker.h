/* libaipalq workers: run handlers for task types, with leases, heartbeats,
 * retries, time limits, cancellation and graceful shutdown.
 *
 * Delivery is at least once. A worker leases each task it takes; a heartbeat
 * thread (never the handler's) extends the leases of running tasks. If a
 * worker dies, its tasks run again elsewhere once their leases expire, and
 * that counts as an attempt. Every delivery carries a fencing token (epoch and
 * attempt): an outcome from a delivery that lost its lease is rejected, so a
 * "zombie" can never overwrite the outcome of the delivery that replaced it.
 *
 * Two ways to run:
 *  - the loop: register handlers, then aipalq_worker_run() until
 *    aipalq_worker_stop();
 *  - steps, for callers with their own loop: aipalq_worker_next() to take one
 *    task, then aipalq_job_complete / aipalq_job_fail / aipalq_job_release.
 *
 * Threads: a worker is configured and run by one thread; aipalq_worker_stop()
 * may be called from any thread and from a signal handler. Handlers run on the
 * worker's handler threads (thread mode) or in child processes (prefork mode);
 * the aipalq_job_* functions a handler calls are for that handler's job only
 * and are safe on its thread.
 */
#ifndef AIPAL_WORKER_H
#define AIPAL_WORKER_H

#include "aipalq.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aipalq_worker aipalq_worker;
typedef struct aipalq_job aipalq_job;

/* A handler runs one delivery of a task. It reads the params, may report
 * progress and poll aipalq_job_should_stop(), and ends by setting the outcome:
 * aipalq_job_set_result() (completed), aipalq_job_set_error() (failed, retried
 * if retryable and attempts remain), or nothing (completed with a null result,
 * or cancelled if a cancel was requested). During a fast stop, a handler that
 * returns with nothing set has its task handed back without counting the
 * attempt; an error it sets counts as one. */
typedef void (*aipalq_handler_fn)(aipalq_job *job, void *userdata);

/* Called once when a job passes its soft time limit, from a worker thread that
 * is not the handler's: keep it short and thread-safe. */
typedef void (*aipalq_soft_limit_fn)(aipalq_job *job, void *userdata);

typedef enum aipalq_worker_mode {
    /* Handlers run on threads of the worker process. A crashing handler takes
     * the process with it (its tasks run again after their leases expire);
     * the hard time limit fails the task and abandons the thread's result,
     * but cannot stop a handler that never returns. */
    AIPALQ_MODE_THREADS = 0,
    /* Handlers run in child processes, one task per child at a time. A child
     * that crashes, or passes the hard limit (it is killed), fails or retries
     * only its task, and is replaced. Handlers must be registered before
     * aipalq_worker_run (children inherit them at fork). */
    AIPALQ_MODE_PREFORK = 1
} aipalq_worker_mode;

/* Creates a worker with the connection settings, namespace and task types of
 * `client` (copied: the client may be freed afterwards; later changes to it do
 * not reach the worker). Defaults: all queues of the defined types in
 * definition order, concurrency = number of cores, thread mode, no prefetch,
 * 30 s leases, 30 s shutdown deadline. Returns NULL when memory runs out.
 * Free with aipalq_worker_free. */
AIPALQ_API aipalq_worker *aipalq_worker_new(aipalq_client *client);
/* Frees the worker (not while aipalq_worker_run runs). In thread mode it first
 * waits for any handler that outlived the last run's shutdown deadline to
 * return. NULL is ignored. */
AIPALQ_API void aipalq_worker_free(aipalq_worker *worker);

/* The message of the worker's last error ("" after success); owned by the
 * worker, valid until its next call. */
AIPALQ_API const char *aipalq_worker_errmsg(const aipalq_worker *worker);

/* Registers the handler of a defined type. Errors: AIPALQ_EUNKNOWNTYPE,
 * AIPALQ_EINVAL, AIPALQ_EMISUSE (the worker is running). */
AIPALQ_API aipalq_status aipalq_worker_handle(aipalq_worker *worker, const char *type,
                                              aipalq_handler_fn fn, void *userdata);

/* The queues to consume, comma-separated, most important first. A worker
 * with a free slot takes from the first queue that has a ready task, so an
 * earlier queue can starve a later one while it is never empty; to prevent
 * that, every `fair_every` takes (0 = never, the default) the worker starts
 * from the next queue in turn instead (round robin). */
AIPALQ_API aipalq_status aipalq_worker_set_queues(aipalq_worker *worker, const char *queues_csv,
                                                  int fair_every);
/* 1..1024 handlers at once. */
AIPALQ_API aipalq_status aipalq_worker_set_concurrency(aipalq_worker *worker, int concurrency);
AIPALQ_API aipalq_status aipalq_worker_set_mode(aipalq_worker *worker, aipalq_worker_mode mode);
/* Tasks taken beyond free slots (0..concurrency, default 0). Prefetched tasks
 * wait for a slot while leased, so keep this small. */
AIPALQ_API aipalq_status aipalq_worker_set_prefetch(aipalq_worker *worker, int prefetch);
/* Lease length (1000 ms .. 1 h, default 30000); heartbeats run every third of
 * it, and cancel requests are seen at the next heartbeat (at most 1 s). */
AIPALQ_API aipalq_status aipalq_worker_set_lease_ms(aipalq_worker *worker, int64_t lease_ms);
/* How long a graceful stop waits for running handlers before handing their
 * tasks back (default 30000 ms). */
AIPALQ_API aipalq_status aipalq_worker_set_shutdown_timeout_ms(aipalq_worker *worker,
                                                               int64_t timeout_ms);
/* Prefork: replace a child after `max_tasks` tasks (0 = never) or when its
 * resident memory passes `max_rss_kb` (0 = no limit). */
AIPALQ_API aipalq_status aipalq_worker_set_recycle(aipalq_worker *worker, int max_tasks,
                                                   int64_t max_rss_kb);
/* Overrides the worker id (default host:pid:random), 1..128 bytes. */
AIPALQ_API aipalq_status aipalq_worker_set_id(aipalq_worker *worker, const char *id);
/* How often this worker offers to run the reconciler and the outbox relay
 * (default 30000 ms; 0 = never). One worker of the fleet runs it at a time. */
AIPALQ_API aipalq_status aipalq_worker_set_maintenance_ms(aipalq_worker *worker,
                                                          int64_t interval_ms);
/* The soft-limit callback for all jobs of this worker (NULL: none). */
AIPALQ_API aipalq_status aipalq_worker_on_soft_limit(aipalq_worker *worker, aipalq_soft_limit_fn fn,
                                                     void *userdata);

/* Runs the loop until aipalq_worker_stop(), then shuts down: stops taking
 * tasks, lets running handlers finish up to the shutdown deadline, hands the
 * rest back (they run elsewhere; not counted as attempts), records every
 * outcome and returns AIPALQ_OK. In thread mode a handler still running at
 * the deadline cannot be interrupted: its task is handed back, its thread is
 * left to finish (its late outcome is ignored), and aipalq_worker_free or the
 * next run waits for it. Errors: AIPALQ_EMISUSE (already running, or no
 * handler), AIPALQ_EINVAL (no queue). Lost connections are retried with
 * backoff, not returned. */
AIPALQ_API aipalq_status aipalq_worker_run(aipalq_worker *worker);

/* Asks a running worker to stop: graceful (fast = 0) or fast (fast = 1: hand
 * back every running task at once, lose nothing). Async-signal-safe; any
 * thread. */
AIPALQ_API void aipalq_worker_stop(aipalq_worker *worker, int fast);

/* Writes the worker's id into out (outlen bytes). */
AIPALQ_API aipalq_status aipalq_worker_id(const aipalq_worker *worker, char *out, size_t outlen);

/* Counters since start: tasks completed, failed (finally), retried,
 * cancelled, lost their lease, and currently running. Any pointer may be
 * NULL. Any thread. */
AIPALQ_API void aipalq_worker_counts(const aipalq_worker *worker, int64_t *completed,
                                     int64_t *failed, int64_t *retried, int64_t *cancelled,
                                     int64_t *stale, int64_t *running);

/* Milliseconds since the loop last made progress (took a task, or found the
 * queues empty); a readiness probe can compare it with its own threshold. */
AIPALQ_API int64_t aipalq_worker_idle_ms(const aipalq_worker *worker);

/* ----------------------------------------------------------------- steps */

/* Takes one task from the worker's queues, waiting up to timeout_ms (0: do
 * not wait; the wait blocks on Redis and wakes when a task is enqueued; it
 * also looks once a second for leases of dead workers, which send no wake-up).
 * Returns AIPALQ_OK with
 * *job (end it with aipalq_job_complete / _fail / _release, then free it
 * with aipalq_job_free), AIPALQ_EMPTY when nothing came, or AIPALQ_EREDIS /
 * AIPALQ_EPG. While a job is held, a background thread of the worker extends
 * its lease. */
AIPALQ_API aipalq_status aipalq_worker_next(aipalq_worker *worker, int64_t timeout_ms,
                                            aipalq_job **job);

/* Records the job completed with `result_json` (NULL = null) in PostgreSQL,
 * then acknowledges it in Redis. Errors: AIPALQ_ESTALE (the delivery lost its
 * lease; another delivery owns the task now), AIPALQ_EBADJSON, AIPALQ_ETOOBIG,
 * AIPALQ_EPG, AIPALQ_EREDIS, AIPALQ_EILLEGAL (already ended). */
AIPALQ_API aipalq_status aipalq_job_complete(aipalq_job *job, const char *result_json);
/* Records a failure: retried after the type's backoff if `retryable` and
 * attempts remain, else failed. message and detail may be NULL. Errors: as
 * aipalq_job_complete. */
AIPALQ_API aipalq_status aipalq_job_fail(aipalq_job *job, const char *message, const char *detail,
                                         int retryable);
/* Hands the task back to its queue without counting the attempt. */
AIPALQ_API aipalq_status aipalq_job_release(aipalq_job *job);
/* Frees a job taken with aipalq_worker_next; an unended job is released
 * first. NULL is a no-op. */
AIPALQ_API void aipalq_job_free(aipalq_job *job);
/* The message of the job's last error; owned by the job. */
AIPALQ_API const char *aipalq_job_errmsg(const aipalq_job *job);

/* ------------------------------------------------- a job, for handlers */

AIPALQ_API const char *aipalq_job_id(const aipalq_job *job);
AIPALQ_API const char *aipalq_job_type(const aipalq_job *job);
AIPALQ_API const char *aipalq_job_queue(const aipalq_job *job);
/* JSON object text; owned by the job. */
AIPALQ_API const char *aipalq_job_params(const aipalq_job *job);
AIPALQ_API const char *aipalq_job_user_id(const aipalq_job *job);
AIPALQ_API int aipalq_job_priority(const aipalq_job *job);
/* 1 on the first delivery. */
AIPALQ_API int aipalq_job_attempt(const aipalq_job *job);
AIPALQ_API int aipalq_job_max_retries(const aipalq_job *job);
/* The fencing token of this delivery: grows with every delivery of the task.
 * Side effects elsewhere can be guarded with it. */
AIPALQ_API int64_t aipalq_job_token(const aipalq_job *job);

/* Reports progress (0..100, clamped) and an optional message; coalesced and
 * recorded in PostgreSQL in the background. */
AIPALQ_API void aipalq_job_progress(aipalq_job *job, int percent, const char *message);
/* 1 once the soft time limit has passed. */
AIPALQ_API int aipalq_job_soft_limit_passed(const aipalq_job *job);
/* 1 once a cancel was requested (seen within a second). */
AIPALQ_API int aipalq_job_cancel_requested(const aipalq_job *job);
/* 1 when the handler should wrap up: soft limit passed, cancel requested, the
 * worker is stopping fast, or the lease was lost. */
AIPALQ_API int aipalq_job_should_stop(const aipalq_job *job);
/* Sets the result (completed). Errors: AIPALQ_EBADJSON, AIPALQ_ETOOBIG. */
AIPALQ_API aipalq_status aipalq_job_set_result(aipalq_job *job, const char *result_json);
/* Sets an error instead (failed or retried). message and detail may be NULL. */
AIPALQ_API aipalq_status aipalq_job_set_error(aipalq_job *job, const char *message,
                                              const char *detail, int retryable);

/* ------------------------------------------------------ worker registry */

/* Every live or recently dead worker as a JSON array of objects: id, host,
 * pid, queues, concurrency, mode, started_at, last_heartbeat, alive, counts
 * (completed, failed, retried, cancelled) and running. A worker silent for
 * `dead_after_ms` is listed with "alive": false; one silent for ten times
 * that is forgotten. The caller frees *json_out with aipalq_free.
 * Errors: AIPALQ_EREDIS. */
AIPALQ_API aipalq_status aipalq_workers_json(aipalq_client *client, int64_t dead_after_ms,
                                             char **json_out);

#ifdef __cplusplus
}
#endif

#endif
