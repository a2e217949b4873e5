/* libaipalq: a job queue with PostgreSQL as the durable record of every task
 * and Redis for dispatch.
 *
 * This header is the manual. Conventions that hold for every function unless
 * its comment says otherwise:
 *
 * Threads. Handles are not thread-safe: a client, and everything obtained from
 *   it, is used by one thread at a time (open one client per thread; they are
 *   cheap). Objects that are not tied to a client (options, batches, filters,
 *   task and list snapshots) may be moved between threads. Functions that take
 *   no handle (version, strerror, state names) may be called from any thread.
 *
 * Errors. Functions return an aipalq_status. AIPALQ_OK is success; AIPALQ_EMPTY
 *   is a normal "nothing there" result; every other code is an error, and the
 *   client keeps a message for the last one (aipalq_client_errmsg) until the next
 *   call on that client. A NULL handle gives AIPALQ_EMISUSE. A failed call
 *   leaves no half-written task behind.
 *
 * Memory. Strings passed in are copied (the caller keeps ownership). Strings
 *   returned by accessors belong to the object they come from and live as long
 *   as it does. Every object the library allocates has one free function;
 *   passing NULL to it is a no-op.
 *
 * Connections. A client connects lazily on first use (or eagerly with
 *   aipalq_client_connect) and re-establishes a broken connection on the next
 *   call, so a call that failed with AIPALQ_EREDIS or AIPALQ_EPG can simply be
 *   repeated once the server is back.
 *
 * Delivery. Tasks are delivered at least once: a task whose worker dies is run
 *   again after its lease expires. Handlers that must not repeat side effects
 *   should key them on the task id; producers that must not create a task twice
 *   use an idempotency key (aipalq_opts_set_idempotency_key).
 *
 * Priorities run from 1 to 10; 10 is the most urgent. Within one priority,
 *   tasks of a queue run in the order they were enqueued.
 *
 * Times are int64_t milliseconds: durations, or Unix time in ms for instants
 *   (0 means "not set"). Text is UTF-8. Params and results are JSON text.
 */
#ifndef AIPAL_AIPALQ_H
#define AIPAL_AIPALQ_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(AIPALQ_BUILDING) && defined(__GNUC__)
#define AIPALQ_API __attribute__((visibility("default")))
#else
#define AIPALQ_API
#endif

/* A task id is a UUID in its 36-character text form; buffers that receive one
 * are AIPALQ_ID_SIZE bytes (with the terminating NUL). Ids are UUIDv7: they
 * sort by creation time. */
#define AIPALQ_ID_SIZE 37

/* The largest params document accepted, in bytes of JSON text. Larger params
 * get AIPALQ_ETOOBIG: a queue is no place for bulk data; store it elsewhere
 * and pass a reference. */
#define AIPALQ_MAX_PARAMS_BYTES (1024 * 1024)

/* The largest result document a handler may store. */
#define AIPALQ_MAX_RESULT_BYTES (4 * 1024 * 1024)

/* Queue and type names: 1 to 64 characters from [A-Za-z0-9_.-]. */
#define AIPALQ_MAX_NAME_LEN 64

typedef struct aipalq_client aipalq_client;
typedef struct aipalq_opts aipalq_opts;
typedef struct aipalq_batch aipalq_batch;
typedef struct aipalq_task aipalq_task;
typedef struct aipalq_filter aipalq_filter;
typedef struct aipalq_list aipalq_list;

/* libpq's connection type, for the transactional enqueue. Declared here so
 * that this header does not require libpq-fe.h. */
struct pg_conn;

/* ---------------------------------------------------------------- version */

/* AIPALQ_VERSION_HEX of the library actually loaded (which may differ from
 * the header a program was built with). Any thread. */
AIPALQ_API unsigned aipalq_version(void);

/* "MAJOR.MINOR.PATCH" of the loaded library; static storage. Any thread. */
AIPALQ_API const char *aipalq_version_string(void);

/* ----------------------------------------------------- status and states */

/* A sentence describing a status code; static storage, never NULL (unknown
 * codes give "unknown status"). Any thread. */
AIPALQ_API const char *aipalq_strerror(aipalq_status status);

/* The code's name without prefix ("EINVAL", "OK"); static storage, never NULL.
 * Any thread. */
AIPALQ_API const char *aipalq_status_name(aipalq_status status);

/* The state's lowercase name ("pending", ...), as stored in PostgreSQL and
 * shown by the API; static storage; "unknown" for a bad value. Any thread. */
AIPALQ_API const char *aipalq_state_name(aipalq_state state);

/* Parses a state name. Returns AIPALQ_OK and sets *out, or AIPALQ_EINVAL.
 * Any thread. */
AIPALQ_API aipalq_status aipalq_state_parse(const char *name, aipalq_state *out);

/* 1 if `state` is final (completed, failed, cancelled), else 0. */
AIPALQ_API int aipalq_state_is_final(aipalq_state state);

/* 1 if the task state machine allows `from` -> `to`, else 0. This is the one
 * table every transition in the library is checked against. Any thread. */
AIPALQ_API int aipalq_state_transition_allowed(aipalq_state from, aipalq_state to);

/* ----------------------------------------------------------------- client */

/* Creates a client. `redis_url` is redis://[[user]:password@]host[:port][/db]
 * (rediss:// is refused: TLS is not built in); NULL takes AIPALQ_REDIS_URL from
 * the environment, else redis://127.0.0.1:6379/0. `database_url` is a libpq
 * URL or conninfo string; NULL takes AIPALQ_DATABASE_URL, else libpq's own
 * defaults (PGHOST, ...). Nothing is connected yet. Returns NULL only when
 * memory runs out; a malformed URL is reported by the first call that needs it
 * (AIPALQ_EBADURL), and by aipalq_client_connect. Free with
 * aipalq_client_free. Any thread. */
AIPALQ_API aipalq_client *aipalq_client_new(const char *redis_url, const char *database_url);

/* Closes the connections and frees the client and the task types defined on
 * it. Objects obtained from the client (tasks, lists) stay valid. */
AIPALQ_API void aipalq_client_free(aipalq_client *client);

/* The message for the last error on this client, "" after a success. Owned by
 * the client; valid until the next call on it. Never NULL (even for a NULL
 * client). */
AIPALQ_API const char *aipalq_client_errmsg(const aipalq_client *client);

/* The status of the last call on this client. */
AIPALQ_API aipalq_status aipalq_client_errcode(const aipalq_client *client);

/* Namespace of this client (default "aipalq"; 1-64 characters of
 * [A-Za-z0-9_.-]), so that deployments can share one Redis and one database:
 * it prefixes every Redis key, is recorded on every task enqueued, and scopes
 * lists, counts, the reconciler and the outbox relay to its own tasks (a task
 * id is found by aipalq_get whatever the namespace). Set it before the first
 * call that uses the servers. Errors: AIPALQ_EINVAL. */
AIPALQ_API aipalq_status aipalq_client_set_namespace(aipalq_client *client, const char *ns);

/* Timeout for establishing each connection (default 5000 ms) and for each
 * Redis command (default 10000 ms). Errors: AIPALQ_EINVAL for values < 1. */
AIPALQ_API aipalq_status aipalq_client_set_timeouts(aipalq_client *client, int64_t connect_ms,
                                                    int64_t command_ms);

/* Durability of this client's enqueues. on = 1 (the default): a call returns
 * after PostgreSQL has flushed the commit to disk. on = 0: PostgreSQL's
 * synchronous_commit is off for this client's connection: a commit is on disk
 * within a fraction of a second (wal_writer_delay), like Redis's appendfsync
 * everysec; a crash of the operating system (not of PostgreSQL) can lose the
 * last moment's enqueues. Enqueue then costs no disk flush per call. Applies
 * from the next connection. Errors: AIPALQ_EMISUSE. */
AIPALQ_API aipalq_status aipalq_client_set_synchronous_commit(aipalq_client *client, int on);

/* How old a list's total may be, in milliseconds (default 0: every
 * aipalq_list_tasks counts the matching tasks). Counting is linear in the
 * matching tasks, while a page is not: a dashboard or an API that lists
 * often can let this client reuse a total counted less than max_age_ms ago
 * for the same filter (whatever the page), and run only the page's query.
 * aipalq_list_total_ms tells when a list's total was counted. Errors:
 * AIPALQ_EINVAL for a negative value. */
AIPALQ_API aipalq_status aipalq_client_set_list_total_max_age(aipalq_client *client,
                                                              int64_t max_age_ms);

/* Connects to Redis and PostgreSQL now (otherwise the first call does).
 * Errors: AIPALQ_EBADURL, AIPALQ_EREDIS, AIPALQ_EPG. */
AIPALQ_API aipalq_status aipalq_client_connect(aipalq_client *client);

/* Checks both servers with a round trip each; *redis_ok and *pg_ok (either
 * may be NULL) get 1 or 0. Returns AIPALQ_OK when both answer, else the error
 * of the first that did not (its message names it). */
AIPALQ_API aipalq_status aipalq_ping(aipalq_client *client, int *redis_ok, int *pg_ok);

/* Applies the schema migrations to PostgreSQL, up to AIPALQ_SCHEMA_VERSION.
 * Safe when many processes call it at once (they serialise on an advisory
 * lock; later callers find the work done). Errors: AIPALQ_EPG, and
 * AIPALQ_ESCHEMA when the database is at a newer version than this library
 * knows. */
AIPALQ_API aipalq_status aipalq_migrate(aipalq_client *client);

/* The schema version recorded in the database into *version (0 when never
 * migrated). Errors: AIPALQ_EPG. */
AIPALQ_API aipalq_status aipalq_schema_version(aipalq_client *client, int *version);

/* ------------------------------------------------------------- task types */

/* Defines (or redefines) a task type on this client, routed to `queue`, with
 * defaults: priority 5, max retries 3, backoff 60 s doubling up to 1 h with 10%
 * jitter, soft limit 25 min, hard limit 30 min, result TTL 1 h. Producers need
 * a type defined to enqueue it; workers also use its backoff and limits.
 * Errors: AIPALQ_EINVAL (bad name), AIPALQ_EQUEUE (bad queue name). */
AIPALQ_API aipalq_status aipalq_type_define(aipalq_client *client, const char *name,
                                            const char *queue);

/* The setters below change one setting of a defined type.
 * Errors: AIPALQ_EUNKNOWNTYPE, AIPALQ_EINVAL / AIPALQ_EPRIORITY for bad values. */
AIPALQ_API aipalq_status aipalq_type_set_priority(aipalq_client *client, const char *name,
                                                  int priority);
/* max_retries: 0..1000. A task runs at most max_retries + 1 times. */
AIPALQ_API aipalq_status aipalq_type_set_max_retries(aipalq_client *client, const char *name,
                                                     int max_retries);
/* Retry n (1-based) waits min(cap, base * 2^(n-1)), then +-jitter_percent. */
AIPALQ_API aipalq_status aipalq_type_set_backoff(aipalq_client *client, const char *name,
                                                 int64_t base_ms, int64_t cap_ms,
                                                 int jitter_percent);
/* soft_ms <= hard_ms; 0 disables a limit. */
AIPALQ_API aipalq_status aipalq_type_set_time_limits(aipalq_client *client, const char *name,
                                                     int64_t soft_ms, int64_t hard_ms);
/* How long Redis keeps a copy of a finished task's outcome (status, error,
 * result) in the queue's hash <ns>:{queue}:done, for consumers that read
 * results from Redis. 0, the default, keeps none: PostgreSQL holds every
 * outcome until retention removes the row, and aipalq_get reads it there.
 * The copy costs Redis memory (throughput x TTL) and about a fifth of Redis's
 * work per task. ttl_ms: 0, or at least 1000. */
AIPALQ_API aipalq_status aipalq_type_set_result_ttl(aipalq_client *client, const char *name,
                                                    int64_t ttl_ms);

/* Defines many types from JSON: an array of objects with "name" and "queue"
 * (required) and optional "priority", "max_retries", "backoff_base_ms",
 * "backoff_cap_ms", "backoff_jitter_percent", "soft_time_limit_ms",
 * "hard_time_limit_ms", "result_ttl_ms". All or nothing: on an error no type
 * is changed and the message names the entry and field. Errors: AIPALQ_EBADJSON,
 * AIPALQ_EINVAL, AIPALQ_EQUEUE, AIPALQ_EPRIORITY. */
AIPALQ_API aipalq_status aipalq_types_define_json(aipalq_client *client, const char *json);

/* The defined types as a JSON array (the shape aipalq_types_define_json takes).
 * Returns a string the caller frees with aipalq_free, or NULL when memory runs
 * out. */
AIPALQ_API char *aipalq_types_json(aipalq_client *client);

/* Frees a string returned by the library (aipalq_types_json, aipalq_task_json
 * ...). NULL is a no-op. */
AIPALQ_API void aipalq_free(void *ptr);

/* --------------------------------------------------------- enqueue options */

/* Options for one enqueue; NULL options mean the type's defaults. Free with
 * aipalq_opts_free. Returns NULL when memory runs out. */
AIPALQ_API aipalq_opts *aipalq_opts_new(void);
AIPALQ_API void aipalq_opts_free(aipalq_opts *opts);
/* 1..10 (10 most urgent). Errors: AIPALQ_EPRIORITY (the option is left unset). */
AIPALQ_API aipalq_status aipalq_opts_set_priority(aipalq_opts *opts, int priority);
/* Route to this queue instead of the type's. Errors: AIPALQ_EQUEUE. */
AIPALQ_API aipalq_status aipalq_opts_set_queue(aipalq_opts *opts, const char *queue);
/* Run no earlier than `delay_ms` from now (replaces a run-at time). */
AIPALQ_API aipalq_status aipalq_opts_set_delay_ms(aipalq_opts *opts, int64_t delay_ms);
/* Run no earlier than this Unix time in ms (replaces a delay). */
AIPALQ_API aipalq_status aipalq_opts_set_run_at_ms(aipalq_opts *opts, int64_t unix_ms);
/* While a task enqueued with this key is not final (completed, failed or
 * cancelled), enqueueing the same key again creates nothing and returns the
 * first task's id. 1..200 bytes. NULL clears it. */
AIPALQ_API aipalq_status aipalq_opts_set_idempotency_key(aipalq_opts *opts, const char *key);
/* Override the type's max retries (0..1000). */
AIPALQ_API aipalq_status aipalq_opts_set_max_retries(aipalq_opts *opts, int max_retries);
/* The user the task is for (free text up to 200 bytes; recorded and
 * filterable, not interpreted). NULL clears it. */
AIPALQ_API aipalq_status aipalq_opts_set_user_id(aipalq_opts *opts, const char *user_id);

/* ---------------------------------------------------------------- enqueue */

/* Enqueues one task of a defined type. `params_json` must be a JSON object
 * (NULL means {}) of at most AIPALQ_MAX_PARAMS_BYTES. The task is committed to
 * PostgreSQL first, then dispatched to Redis; if dispatch fails after the
 * commit the call still returns AIPALQ_OK (the task exists and the reconciler
 * dispatches it) and aipalq_client_errmsg says so. The call waits for the
 * commit but not for Redis's reply to the dispatch, which the client's next
 * call that uses Redis (or aipalq_client_free) reads: Redis applies the
 * dispatch before anything else this client sends it, while another
 * connection may, for a moment, not see the task yet.
 * On success the id is written to `id_out` (AIPALQ_ID_SIZE bytes) and
 * *created_out (may be NULL) is 1, or 0 when an idempotency key matched an
 * unfinished task whose id was returned instead.
 * Errors: AIPALQ_EUNKNOWNTYPE, AIPALQ_EBADJSON, AIPALQ_ENOTOBJECT,
 * AIPALQ_ETOOBIG, AIPALQ_EPRIORITY, AIPALQ_EPG, AIPALQ_EINVAL. */
AIPALQ_API aipalq_status aipalq_enqueue(aipalq_client *client, const char *type,
                                        const char *params_json, const aipalq_opts *opts,
                                        char *id_out, int *created_out);

/* A batch collects tasks for aipalq_enqueue_batch. Any thread, no client
 * needed. Free with aipalq_batch_free. NULL when memory runs out. */
AIPALQ_API aipalq_batch *aipalq_batch_new(void);
AIPALQ_API void aipalq_batch_free(aipalq_batch *batch);
/* Adds a task; arguments as for aipalq_enqueue (copied; opts may be NULL).
 * Validation happens when the batch is enqueued. Errors: AIPALQ_ENOMEM,
 * AIPALQ_EINVAL (NULL type). */
AIPALQ_API aipalq_status aipalq_batch_add(aipalq_batch *batch, const char *type,
                                          const char *params_json, const aipalq_opts *opts);
/* Number of tasks added. */
AIPALQ_API size_t aipalq_batch_size(const aipalq_batch *batch);
/* After a successful enqueue: the id of task i (owned by the batch), or NULL
 * when i is out of range or the batch was not enqueued. */
AIPALQ_API const char *aipalq_batch_id(const aipalq_batch *batch, size_t i);
/* After a successful enqueue: 1 if task i was created, 0 if its idempotency
 * key matched an existing task. */
AIPALQ_API int aipalq_batch_created(const aipalq_batch *batch, size_t i);
/* Empties the batch for reuse. */
AIPALQ_API void aipalq_batch_clear(aipalq_batch *batch);

/* Enqueues every task of the batch in one PostgreSQL transaction (a COPY when
 * no task has an idempotency key) and pipelined Redis script calls, one per
 * queue and 500 tasks, whose replies are read later as for aipalq_enqueue.
 * All or nothing: if any task is invalid nothing is written and the message
 * names the task's index and the problem.
 * Errors: as aipalq_enqueue. */
AIPALQ_API aipalq_status aipalq_enqueue_batch(aipalq_client *client, aipalq_batch *batch);

/* Transactional enqueue: inserts the task through `conn`, the caller's own
 * libpq connection, inside the caller's open transaction (or as its own
 * statement when none is open). The task is dispatched only if and after that
 * transaction commits: it is written to an outbox that workers relay
 * (aipalq_relay_outbox, woken by NOTIFY at commit). If the caller rolls back,
 * the task never existed. `conn` is used, never closed, and must not be in
 * pipeline mode. Errors: as aipalq_enqueue; a failed statement aborts the
 * caller's transaction, as any failed statement does. */
AIPALQ_API aipalq_status aipalq_enqueue_tx(aipalq_client *client, struct pg_conn *conn,
                                           const char *type, const char *params_json,
                                           const aipalq_opts *opts, char *id_out, int *created_out);

/* The batch form of aipalq_enqueue_tx. */
AIPALQ_API aipalq_status aipalq_enqueue_batch_tx(aipalq_client *client, struct pg_conn *conn,
                                                 aipalq_batch *batch);

/* Dispatches up to `max` tasks from the transactional outbox to Redis
 * (committed ones only); *relayed_out (may be NULL) gets the number moved.
 * Safe to run in many processes at once. Errors: AIPALQ_EPG, AIPALQ_EREDIS. */
AIPALQ_API aipalq_status aipalq_relay_outbox(aipalq_client *client, int max, int64_t *relayed_out);

/* Repairs drift between PostgreSQL and Redis: every task that PostgreSQL says
 * is waiting or running, older than `grace_ms`, that Redis does not hold is
 * dispatched again (a running task so lost counts the attempt); final states
 * that Redis reached but PostgreSQL missed are recorded. Runs one process at a
 * time across a fleet (an advisory lock; a concurrent call returns AIPALQ_OK
 * with zero counts). *redispatched_out and *repaired_out may be NULL.
 * Errors: AIPALQ_EPG, AIPALQ_EREDIS. */
AIPALQ_API aipalq_status aipalq_reconcile(aipalq_client *client, int64_t grace_ms,
                                          int64_t *redispatched_out, int64_t *repaired_out);

/* ------------------------------------------------------------ task records */

/* Reads a task from PostgreSQL. On success *out is a snapshot the caller
 * frees with aipalq_task_free. Errors: AIPALQ_EBADID, AIPALQ_ENOTFOUND (an
 * unknown id is never "pending"), AIPALQ_EPG. */
AIPALQ_API aipalq_status aipalq_get(aipalq_client *client, const char *id, aipalq_task **out);

/* Reads up to 1,000 tasks in one round trip (what a status endpoint under
 * load wants instead of one aipalq_get per request). `out` has room for n
 * pointers: out[i] receives a snapshot of the task with id ids[i], which the
 * caller frees with aipalq_task_free, or NULL when there is no such task. An
 * id asked for twice gets two snapshots. On an error every out[i] is NULL.
 * Errors: AIPALQ_EINVAL (ids or out NULL, n not 1..1000), AIPALQ_EBADID (an
 * id is not a UUID: nothing is read, the message names its index),
 * AIPALQ_EPG, AIPALQ_ENOMEM. */
AIPALQ_API aipalq_status aipalq_get_many(aipalq_client *client, const char *const *ids, size_t n,
                                         aipalq_task **out);

AIPALQ_API void aipalq_task_free(aipalq_task *task);

/* Accessors of a task snapshot. Strings are owned by the snapshot; optional
 * ones are NULL when unset. */
AIPALQ_API const char *aipalq_task_id(const aipalq_task *task);
AIPALQ_API const char *aipalq_task_type(const aipalq_task *task);
AIPALQ_API const char *aipalq_task_queue(const aipalq_task *task);
AIPALQ_API aipalq_state aipalq_task_state(const aipalq_task *task);
AIPALQ_API int aipalq_task_priority(const aipalq_task *task);
/* JSON object text, never NULL. */
AIPALQ_API const char *aipalq_task_params(const aipalq_task *task);
/* JSON text, NULL until completed. */
AIPALQ_API const char *aipalq_task_result(const aipalq_task *task);
AIPALQ_API const char *aipalq_task_error_message(const aipalq_task *task);
/* The error's detail: a traceback, a signal, the reason of a time limit. */
AIPALQ_API const char *aipalq_task_error_detail(const aipalq_task *task);
/* Deliveries so far (each start of the handler counts one). */
AIPALQ_API int aipalq_task_attempts(const aipalq_task *task);
AIPALQ_API int aipalq_task_max_retries(const aipalq_task *task);
AIPALQ_API int64_t aipalq_task_created_ms(const aipalq_task *task);
AIPALQ_API int64_t aipalq_task_started_ms(const aipalq_task *task);
AIPALQ_API int64_t aipalq_task_completed_ms(const aipalq_task *task);
AIPALQ_API int64_t aipalq_task_updated_ms(const aipalq_task *task);
AIPALQ_API int64_t aipalq_task_run_at_ms(const aipalq_task *task);
AIPALQ_API const char *aipalq_task_worker_id(const aipalq_task *task);
AIPALQ_API const char *aipalq_task_user_id(const aipalq_task *task);
AIPALQ_API const char *aipalq_task_idempotency_key(const aipalq_task *task);
/* 0..100. */
AIPALQ_API int aipalq_task_progress(const aipalq_task *task);
AIPALQ_API const char *aipalq_task_progress_message(const aipalq_task *task);
/* 1 when a cancel was requested while the task was running. */
AIPALQ_API int aipalq_task_cancel_requested(const aipalq_task *task);
/* The whole record as one JSON object (the shape the REST API returns), owned
 * by the snapshot. NULL only when memory runs out. */
AIPALQ_API const char *aipalq_task_json(const aipalq_task *task);

/* ------------------------------------------------------------------ lists */

/* A list query: no filter, newest first, limit 20, offset 0. Free with
 * aipalq_filter_free. NULL when memory runs out. Any thread. */
AIPALQ_API aipalq_filter *aipalq_filter_new(void);
AIPALQ_API void aipalq_filter_free(aipalq_filter *filter);
/* Adds a state to match (several states match any of them). */
AIPALQ_API aipalq_status aipalq_filter_add_state(aipalq_filter *filter, aipalq_state state);
/* NULL clears a filter. */
AIPALQ_API aipalq_status aipalq_filter_set_type(aipalq_filter *filter, const char *type);
AIPALQ_API aipalq_status aipalq_filter_set_queue(aipalq_filter *filter, const char *queue);
AIPALQ_API aipalq_status aipalq_filter_set_user_id(aipalq_filter *filter, const char *user_id);
/* limit 1..1000; offset >= 0. Errors: AIPALQ_EINVAL. */
AIPALQ_API aipalq_status aipalq_filter_set_page(aipalq_filter *filter, int64_t limit,
                                                int64_t offset);
/* 0: newest first (default); 1: oldest first. Ties are broken by id, so the
 * order is stable across pages. */
AIPALQ_API aipalq_status aipalq_filter_set_oldest_first(aipalq_filter *filter, int oldest_first);

/* Runs a list query. On success *out holds the page and the total count of
 * matching tasks; free it with aipalq_list_free. Errors: AIPALQ_EPG,
 * AIPALQ_EINVAL. */
AIPALQ_API aipalq_status aipalq_list_tasks(aipalq_client *client, const aipalq_filter *filter,
                                           aipalq_list **out);
/* The pending view: tasks waiting to run (pending, scheduled, retrying),
 * oldest first. */
AIPALQ_API aipalq_status aipalq_list_pending(aipalq_client *client, int64_t limit, int64_t offset,
                                             aipalq_list **out);
/* The failed view: failed tasks, newest first. */
AIPALQ_API aipalq_status aipalq_list_failed(aipalq_client *client, int64_t limit, int64_t offset,
                                            aipalq_list **out);
AIPALQ_API void aipalq_list_free(aipalq_list *list);
/* Tasks on this page. */
AIPALQ_API size_t aipalq_list_count(const aipalq_list *list);
/* Task i of the page, owned by the list; NULL when out of range. */
AIPALQ_API const aipalq_task *aipalq_list_at(const aipalq_list *list, size_t i);
/* Matching tasks in all pages. */
AIPALQ_API int64_t aipalq_list_total(const aipalq_list *list);
/* When the total was counted, in Unix milliseconds: now, or earlier when
 * aipalq_client_set_list_total_max_age let the client reuse a count. */
AIPALQ_API int64_t aipalq_list_total_ms(const aipalq_list *list);

/* ------------------------------------------------------- cancel and retry */

/* Cancels a task. A pending, scheduled or retrying task is withdrawn from
 * dispatch and becomes cancelled at once (*state_out = CANCELLED). A running
 * task gets a cancel request that reaches its worker within a second; it stays
 * running until its handler stops (*state_out = RUNNING). state_out may be
 * NULL. Errors: AIPALQ_EBADID, AIPALQ_ENOTFOUND, AIPALQ_EILLEGAL (already
 * completed, failed or cancelled), AIPALQ_EPG, AIPALQ_EREDIS. */
AIPALQ_API aipalq_status aipalq_cancel(aipalq_client *client, const char *id,
                                       aipalq_state *state_out);

/* Queues a failed or cancelled task again as pending, with a fresh budget:
 * attempts restart at 0 and the old result, error and progress are cleared
 * (the event history keeps them). Errors: AIPALQ_EBADID, AIPALQ_ENOTFOUND,
 * AIPALQ_EILLEGAL (pending, running or completed), AIPALQ_EPG. */
AIPALQ_API aipalq_status aipalq_retry(aipalq_client *client, const char *id);

/* ----------------------------------------------------------------- queues */

/* Depth of a queue in Redis: tasks ready to run, waiting for a time (delayed
 * or backing off) and leased to workers. Any pointer may be NULL.
 * Errors: AIPALQ_EQUEUE, AIPALQ_EREDIS. */
AIPALQ_API aipalq_status aipalq_queue_depth(aipalq_client *client, const char *queue,
                                            int64_t *ready, int64_t *scheduled, int64_t *leased);

/* Counts of tasks per queue and state from PostgreSQL, as a JSON object
 * {"queue": {"pending": n, ...}, ...}; the caller frees *json_out with
 * aipalq_free. Errors: AIPALQ_EPG. */
AIPALQ_API aipalq_status aipalq_state_counts_json(aipalq_client *client, char **json_out);

#ifdef __cplusplus
}
#endif

#endif
