/* What every task handler shares: its parameters checked against the
 * catalog, its thread's own PostgreSQL connection, the result with its
 * metadata, field-level errors, progress, and one log line per event.
 *
 * A handler is `void handler(aipalq_job *job, void *userdata)` with a
 * task_env as userdata. It starts with task_begin() and ends with exactly
 * one of task_succeed(), task_fail() or task_stopped(), then task_end().
 *
 * Connections. task_db() returns the calling thread's connection, opened
 * lazily on first use (so a prefork child opens its own after the fork, and
 * no connection is ever shared between threads or processes) and checked
 * on a task's first use: a broken one is reopened, a transaction left open
 * by an earlier task is rolled back. A handler may then run BEGIN ... COMMIT
 * over several task_sql() calls. */
#ifndef AIPAL_WORKER_TASK_H
#define AIPAL_WORKER_TASK_H

#include <stdint.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include <aipal/worker.h>

#include "catalog.h"
#include "config.h"
#include "metrics.h"

#ifndef AIPAL_WORKER_VERSION
#define AIPAL_WORKER_VERSION "dev"
#endif

typedef struct task_env {
    const worker_config *cfg;
    worker_metrics *metrics; /* may be NULL */
} task_env;

typedef struct task_ctx {
    aipalq_job *job;
    const task_env *env;
    const catalog_type *type;
    int type_index;
    cJSON *params; /* normalized by the catalog: defaults applied */
    int64_t start_mono_ms, start_wall_ms;
    int ended;
    int db_checked; /* the connection was checked for this task */
} task_ctx;

/* Checks the params. Returns 0, or -1 after failing the task (not
 * retryable) with the first bad field named ("invalid params: FIELD: WHY";
 * the detail lists every error as JSON). */
int task_begin(task_ctx *ctx, aipalq_job *job, void *userdata);
/* Frees what task_begin made and rolls back a transaction the handler left
 * open (after a failure), so that no lock outlives the task. */
void task_end(task_ctx *ctx);

/* Accessors of the normalized params: the value, or `def` when absent or
 * null. */
const char *task_str(const task_ctx *ctx, const char *name, const char *def);
double task_num(const task_ctx *ctx, const char *name, double def);
int task_bool(const task_ctx *ctx, const char *name, int def);
const cJSON *task_param(const task_ctx *ctx, const char *name);

/* The thread's connection, ready for a statement; NULL after failing the
 * task (retryable) when the database cannot be reached. */
PGconn *task_db(task_ctx *ctx);
/* Runs a statement with text parameters. Returns the result (PQclear it),
 * or NULL after failing the task (retryable) with the server's message. */
PGresult *task_sql(task_ctx *ctx, const char *sql, int n, const char *const *values);
/* The same for statements whose result is not needed: 0 or -1. */
int task_exec(task_ctx *ctx, const char *sql, int n, const char *const *values);

/* Completes the task: result (a JSON object, consumed) gets "metadata" with
 * task_id, task_type, version, attempt, started_at, completed_at,
 * duration_ms and `counts` (consumed; may be NULL). */
void task_succeed(task_ctx *ctx, cJSON *result, cJSON *counts);
/* Completes the task with exactly this JSON (consumed), no metadata. */
void task_succeed_raw(task_ctx *ctx, cJSON *result);
/* Fails the task. field (may be NULL) names the parameter at fault: the
 * message is "FIELD: WHY" and the detail {"field": ..., "error": ...}. */
void task_fail(task_ctx *ctx, const char *field, int retryable, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Ends a task that stopped early because task_should_stop(): cancelled
 * (cancel requested), failed (soft time limit, not retried), or - when the
 * worker is stopping fast or lost the lease - with no outcome at all, so
 * that the library hands the task back without counting the attempt.
 * `where` says how far it got. */
void task_stopped(task_ctx *ctx, const char *where);

int task_should_stop(const task_ctx *ctx);
/* Reports progress (0..100) with a message; also logged at debug level. */
void task_progress(task_ctx *ctx, int percent, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Milliseconds: monotonic, and wall clock (Unix). */
int64_t task_mono_ms(void);
int64_t task_wall_ms(void);
/* Formats Unix ms as RFC 3339 UTC with milliseconds into buf (>= 32 bytes). */
const char *task_iso8601(int64_t unix_ms, char *buf, size_t len);
/* Adds an ISO time (or null for 0) to obj. */
void task_add_time(cJSON *obj, const char *name, int64_t unix_ms);

#endif
