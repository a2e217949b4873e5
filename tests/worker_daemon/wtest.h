/* Helpers of the aipal-worker tests: a scratch database, SQL, an in-process
 * worker running the daemon's handlers, enqueue-and-wait, JSON lookups.
 * Integration tests need AIPALQ_REDIS_URL and AIPALQ_DATABASE_URL (they fail,
 * not skip, without them: `source scripts/services.sh; services_start`). */
#ifndef AIPAL_WORKER_WTEST_H
#define AIPAL_WORKER_WTEST_H

#include <check.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include <aipal/worker.h>

#include "config.h"

/* Exits with a message when the servers are not configured. */
void wt_require_services(void);

/* Creates database aipal_wt_<tag>_<pid>, points AIPALQ_DATABASE_URL at it,
 * and applies the queue's and the domain's migrations. */
void wt_scratch_db_begin(const char *tag);
/* Drops it and restores AIPALQ_DATABASE_URL. */
void wt_scratch_db_end(void);
/* The current database URL. */
const char *wt_db_url(void);

/* SQL on a fresh connection; fails the test on error. */
void wt_sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
long long wt_sql_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* malloc'd; NULL for SQL NULL. */
char *wt_sql_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A client on namespace ns with the catalog's types defined. */
aipalq_client *wt_client(const char *ns);

/* An in-process worker (thread mode) with every handler, on namespace ns,
 * consuming all queues; cfg is the daemon configuration the handlers see
 * (the caller keeps it alive and may change it between tasks). */
typedef struct wt_worker wt_worker;
wt_worker *wt_worker_start(const char *ns, worker_config *cfg, int concurrency);
void wt_worker_stop(wt_worker *w);

/* Enqueues a task (user may be NULL); fails the test on error. The id is
 * written to id (AIPALQ_ID_SIZE). */
void wt_enqueue(aipalq_client *c, const char *type, const char *params, char *id);
/* Waits up to timeout_ms for the task to reach a final state (or `until`,
 * when not -1) and returns its snapshot; fails the test on timeout. */
aipalq_task *wt_wait(aipalq_client *c, const char *id, int64_t timeout_ms, int until);
/* Enqueues, waits for a final state, asserts it is `state`, returns the
 * parsed result (completed) or NULL; *task_out (may be NULL) gets the
 * snapshot (caller frees). */
cJSON *wt_run(aipalq_client *c, const char *type, const char *params, aipalq_state state,
              aipalq_task **task_out);

/* A value by dotted path ("debts.by_severity.high", "blocks.0.minutes"). */
const cJSON *wt_get(const cJSON *o, const char *path);
double wt_num(const cJSON *o, const char *path);
const char *wt_str(const cJSON *o, const char *path);

/* A unique name "<prefix><pid>x<n>". */
const char *wt_unique(const char *prefix, char *buf, size_t len);

int64_t wt_now_ms(void);
void wt_sleep_ms(int ms);

#endif
