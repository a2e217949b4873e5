/* Helpers of the worker engine's tests (tests/worker): helper worker
 * processes (test_worker_proc), waiting for task states, counting rows and
 * handler runs. Built on tests/testutil.h. */
#ifndef AIPALQ_WTEST_H
#define AIPALQ_WTEST_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include <aipal/aipalq.h>
#include <aipal/worker.h>

#include "../testutil.h"

/* What one test works in: a namespace and a queue of its own, a client on
 * them with the types of `types_json`, and a log file for handler runs. */
typedef struct wt_ctx {
    char ns[64];
    char queue[64];
    char types[2048];
    char log[256];
    aipalq_client *c;
} wt_ctx;

/* Sets up ctx: a fresh namespace and queue, the types of `types_json` (an
 * array as aipalq_types_define_json takes, in which every "@Q" stands for
 * the queue's name) defined on a new client, and the log path (exported as
 * AIPALQ_TEST_LOG for the helper processes). */
void wt_begin(wt_ctx *ctx, const char *types_json);
/* Kills the helper processes still running, removes the log and the Redis
 * keys of the namespace, frees the client. */
void wt_end(wt_ctx *ctx);

/* GCC 12's AddressSanitizer runtime is not fork-safe: a child forked while
 * another thread of the parent holds the runtime's allocator lock inherits
 * that lock held and deadlocks at its first malloc (the prefork tests caught
 * children stuck in __sanitizer::Mutex::Lock, about one run in three under
 * load). glibc's malloc, which the library runs on outside ASan, takes its
 * locks around fork. So under ASan a test whose tasks run in prefork children
 * ends at this check; the plain pass, the TSan pass and the fault
 * suite (tests/fault, prefork worker and child kills) run them. */
#if defined(__SANITIZE_ADDRESS__)
#define WT_PREFORK_RUNS_TASKS 0
#else
#define WT_PREFORK_RUNS_TASKS 1
#endif
#define WT_SKIP_PREFORK_UNDER_ASAN(mode)                                                           \
    do {                                                                                           \
        if (!WT_PREFORK_RUNS_TASKS && strcmp((mode), "prefork") == 0) {                            \
            fprintf(stderr, "%s: prefork not run under AddressSanitizer (not fork-safe)\n",        \
                    __func__);                                                                     \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* Options of a helper worker process; zero values mean the helper's
 * defaults (threads, concurrency 1, default lease and shutdown timeout). */
typedef struct wt_proc_opts {
    const char *mode; /* "threads" or "prefork" */
    int concurrency;
    int64_t lease_ms;
    int64_t shutdown_ms; /* 0: default; use -1 for an explicit 0 */
    const char *queues;  /* default: the types' queues */
    const char *id;
    const char *tag;
    int64_t max_sleep_ms; /* 0: no cap */
    const char *step_file;
    const char *go_file;
    int64_t step_timeout_ms;
} wt_proc_opts;

/* Starts a helper worker process; returns its pid. The process dies with the
 * test (PR_SET_PDEATHSIG) and is killed by wt_end. */
pid_t wt_proc_start(wt_ctx *ctx, const wt_proc_opts *o);
/* Waits up to timeout_ms for the process to exit and returns its wait
 * status; fails the test if it does not. */
int wt_proc_wait(pid_t pid, int64_t timeout_ms);
/* 1 while pid runs (not a zombie). */
int wt_proc_alive(pid_t pid);
/* The child processes of pid (up to max) into out; returns how many. */
int wt_children(pid_t pid, pid_t *out, int max);

/* Enqueues a task of `type` with params; the id goes to id_out. */
void wt_enqueue(wt_ctx *ctx, const char *type, const char *params, const aipalq_opts *opts,
                char *id_out);
/* Polls the task until it is in `state` (fails the test after timeout_ms);
 * returns the milliseconds it took. */
int64_t wt_wait_state(wt_ctx *ctx, const char *id, aipalq_state state, int64_t timeout_ms);
/* Polls until the task is running with a worker id of process `pid`. */
void wt_wait_running_on(wt_ctx *ctx, const char *id, pid_t pid, int64_t timeout_ms);
/* A snapshot of the task (freed by the caller). */
aipalq_task *wt_get(wt_ctx *ctx, const char *id);

/* SQL on one persistent connection to the test's database. */
long long wt_sql_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The query's single text value, malloc'd ("" for NULL). */
char *wt_sql_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A task's transitions as a relation e(i, to_status, at, attempt), i from 1
 * in order, for "FROM " WT_HISTORY with the task id given twice. An outcome
 * event that carries its delivery's start (started_at: start and outcome
 * written together, schema 3) counts as a 'running' transition at started_at
 * followed by the outcome; a 'running' event's time is its started_at. */
#define WT_HISTORY                                                                                 \
    "(SELECT row_number() OVER (ORDER BY id, part) AS i, to_status, at, attempt FROM ("            \
    " SELECT id, 0 AS part, 'running' AS to_status, started_at AS at, attempt"                     \
    " FROM aipalq_events WHERE task_id = '%s' AND started_at IS NOT NULL"                          \
    " AND to_status <> 'running'"                                                                  \
    " UNION ALL SELECT id, 1, to_status, CASE WHEN to_status = 'running'"                          \
    " THEN coalesce(started_at, at) ELSE at END, attempt"                                          \
    " FROM aipalq_events WHERE task_id = '%s') h) e"
/* The task's transitions as "running,completed" (WT_HISTORY); free it. */
char *wt_history(const char *id);
/* Polls a one-integer query until it returns `want`; fails after timeout_ms. */
void wt_sql_wait(long long want, int64_t timeout_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Lines of the handler log whose 4th field is `what` (NULL: all lines) and,
 * when id is not NULL, whose 1st field is id. */
int wt_log_count(const wt_ctx *ctx, const char *id, const char *what);

/* The main() of a worker test program: runs the suite; each test case made
 * with wt_tcase works in a scratch database named after `tag`. */
int wt_main(const char *tag, Suite *(*make_suite)(void));
/* A test case with a timeout and the scratch database. */
TCase *wt_tcase(const char *name, int timeout_s);

int64_t wt_now_ms(void);
int64_t wt_mono_ms(void);
void wt_sleep_ms(int64_t ms);

#endif
