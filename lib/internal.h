/* Declarations shared by the library's source files; never installed.
 * Internal names shared across files use the aipalq__ prefix and are hidden
 * by -fvisibility=hidden and the export list (lib/libaipalq.map). */
#ifndef AIPALQ_INTERNAL_H
#define AIPALQ_INTERNAL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pthread.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "aipal/aipalq.h"

#define AIPALQ__CLIENT_MAGIC      0x41495051u /* "AIPQ" */
#define AIPALQ__DEAD_MAGIC        0xdeadbeefu
#define AIPALQ__ERRMSG_SIZE       1024
#define AIPALQ__MAX_KEY_LEN       200
#define AIPALQ__MAX_USER_LEN      200
#define AIPALQ__ACTIVE_STATES_SQL "('pending','scheduled','running','retrying')"

/* ------------------------------------------------------------ utilities */

int64_t aipalq__now_ms(void);
int64_t aipalq__monotonic_ms(void);
char *aipalq__strdup(const char *s);
/* Waits on cv (mu held) for at most ms milliseconds. */
void aipalq__cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms);
/* Names of queues, types, namespaces: 1..64 of [A-Za-z0-9_.-]. */
bool aipalq__valid_name(const char *s);

/* ----------------------------------------------------------------- ids */

/* Writes a new UUIDv7 (time-ordered) into out[AIPALQ_ID_SIZE]. Thread-safe. */
void aipalq__uuid7(char *out);
/* true if s is a UUID in canonical 8-4-4-4-12 hex form. */
bool aipalq__uuid_valid(const char *s);

/* ---------------------------------------------------------- Redis URLs */

typedef struct aipalq__redis_target {
    char host[256];
    int port;
    int db;
    char user[128];
    char password[256];
    bool unix_socket; /* host is a socket path (redis+unix:// or unix://) */
} aipalq__redis_target;

/* Parses redis://[[user]:password@]host[:port][/db] and unix:///path[?db=N].
 * Returns AIPALQ_OK or AIPALQ_EBADURL with a reason in err (errlen bytes). */
aipalq_status aipalq__redis_url_parse(const char *url, aipalq__redis_target *out, char *err,
                                      size_t errlen);

/* -------------------------------------------------------------- params */

/* The offset of the first invalid UTF-8 sequence in s[0..n) (overlong forms,
 * surrogates and code points above U+10FFFF are invalid), or -1. */
long aipalq__utf8_invalid_at(const unsigned char *s, size_t n);

/* Replaces each byte of s that does not start a valid UTF-8 sequence with
 * '?', in place, so that free text (error messages from handlers) can go to
 * PostgreSQL, which refuses the whole statement over one bad byte. NULL is a
 * no-op. */
void aipalq__utf8_scrub(char *s);

/* Checks params text: valid JSON, an object, within the size limit. Returns
 * AIPALQ_OK, AIPALQ_EBADJSON, AIPALQ_ENOTOBJECT or AIPALQ_ETOOBIG, with a
 * reason in err. NULL params are valid ({}). */
aipalq_status aipalq__params_check(const char *params, char *err, size_t errlen);
/* The same checks for any JSON document named `what` ("params", "results"),
 * up to `max` bytes, an object or (object_only false) any value. */
aipalq_status aipalq__json_text_check(const char *text, const char *what, size_t max,
                                      bool object_only, char *err, size_t errlen);

/* --------------------------------------------------------------- state */

#define AIPALQ__STATE_BIT(s) (1u << (s))
#define AIPALQ__ALL_STATES   ((1u << AIPALQ_STATE_COUNT) - 1)
#define AIPALQ__FINAL_STATES                                                                       \
    (AIPALQ__STATE_BIT(AIPALQ_STATE_COMPLETED) | AIPALQ__STATE_BIT(AIPALQ_STATE_FAILED) |          \
     AIPALQ__STATE_BIT(AIPALQ_STATE_CANCELLED))

/* Writes, as a SQL array literal such as {pending,scheduled}, the states among
 * `candidates` (a mask of AIPALQ__STATE_BIT) from which the state machine
 * allows `to`. SQL updates take it as their WHERE status = ANY(...). */
void aipalq__states_into_sql(aipalq_state to, unsigned candidates, char *out, size_t outlen);

/* ------------------------------------------------------------- backoff */

/* Delay before retry number `retry` (1-based) given a uniform random value
 * r in [0,1). Pure arithmetic; saturates instead of overflowing. */
int64_t aipalq__backoff_ms(int64_t base_ms, int64_t cap_ms, int jitter_percent, int retry,
                           double r);

/* ---------------------------------------------------------- task types */

typedef struct aipalq__type {
    char name[AIPALQ_MAX_NAME_LEN + 1];
    char queue[AIPALQ_MAX_NAME_LEN + 1];
    int priority;
    int max_retries;
    int64_t backoff_base_ms;
    int64_t backoff_cap_ms;
    int backoff_jitter_percent;
    int64_t soft_limit_ms;
    int64_t hard_limit_ms;
    int64_t result_ttl_ms;
} aipalq__type;

typedef struct aipalq__types {
    aipalq__type *items;
    size_t count;
    size_t cap;
} aipalq__types;

const aipalq__type *aipalq__types_find(const aipalq__types *types, const char *name);
void aipalq__types_free(aipalq__types *types);

/* ------------------------------------------------------------- options */

struct aipalq_opts {
    int priority; /* 0 = type default */
    char queue[AIPALQ_MAX_NAME_LEN + 1];
    int64_t delay_ms;
    int64_t run_at_ms;
    char *idempotency_key;
    int max_retries; /* -1 = type default */
    char *user_id;
};

/* ----------------------------------------------------------- fork guard */

/* Around every connection set-up (shared) and every fork of a handler
 * process (exclusive): see fork_guard.c. The parent ends a fork with
 * aipalq__fork_end, the child with aipalq__fork_end_in_child. */
void aipalq__connect_begin(void);
void aipalq__connect_end(void);
void aipalq__fork_begin(void);
void aipalq__fork_end(void);
void aipalq__fork_end_in_child(void);

/* --------------------------------------------------------------- client */

/* A total that aipalq_list_tasks counted, kept for reuse within
 * list_total_max_age_ms: the filter it counted (shape and values) and when. */
#define AIPALQ__LIST_TOTALS 8
typedef struct aipalq__list_total {
    char *filter_key;
    int64_t total;
    int64_t counted_ms;
} aipalq__list_total;
/* Forgets the kept totals (freeing the client, or a change of settings). */
void aipalq__list_totals_clear(aipalq_client *c);

struct aipalq_client {
    uint32_t magic;
    char *redis_url;
    char *database_url;
    char ns[AIPALQ_MAX_NAME_LEN + 1];
    int64_t connect_timeout_ms;
    int64_t command_timeout_ms;
    bool async_commit; /* synchronous_commit = off on this client's connection */
    redisContext *redis;
    PGconn *pg;
    bool scripts_loaded;
    int redis_unread;          /* replies of sent-ahead dispatches not yet read */
    unsigned pg_prepared;      /* bit per aipalq__stmt prepared on this connection */
    uint64_t pg_list_prepared; /* bit per list shape prepared on this connection */
    int64_t list_total_max_age_ms;
    aipalq__list_total list_totals[AIPALQ__LIST_TOTALS]; /* recent counts, by filter */
    char script_sha[16][41]; /* by aipalq__script_id, from SCRIPT LOAD */
    aipalq__types types;
    aipalq_status last_status;
    char errmsg[AIPALQ__ERRMSG_SIZE];
};

/* Validates a client handle; false for NULL or a freed client. */
bool aipalq__client_ok(const aipalq_client *c);
/* Records a status and message on the client and returns the status. */
aipalq_status aipalq__fail(aipalq_client *c, aipalq_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Records success (clears the message) and returns AIPALQ_OK. */
aipalq_status aipalq__ok(aipalq_client *c);

/* --------------------------------------------------------------- Redis */

/* Ensures a live Redis connection (connecting, authenticating, selecting the
 * db and loading scripts as needed). */
aipalq_status aipalq__redis_ensure(aipalq_client *c);
/* Drops the connection after an I/O error so that the next call reconnects. */
void aipalq__redis_drop(aipalq_client *c);

typedef enum aipalq__script_id {
    AIPALQ__SCRIPT_DISPATCH,
    AIPALQ__SCRIPT_DISPATCH_ONE,
    AIPALQ__SCRIPT_CANCEL,
    AIPALQ__SCRIPT_PROBE,
    AIPALQ__SCRIPT_DEPTH,
    AIPALQ__SCRIPT_TAKE,
    AIPALQ__SCRIPT_SETTLE,
    AIPALQ__SCRIPT_HEARTBEAT,
    AIPALQ__SCRIPT_REGISTRY,
    AIPALQ__SCRIPT_COUNT
} aipalq__script_id;

const char *aipalq__script_source(aipalq__script_id id);
const char *aipalq__script_name(aipalq__script_id id);

/* An argument vector for a script call, grown as needed. */
typedef struct aipalq__argv {
    const char **argv;
    size_t *lens;
    char **owned; /* strings this vector allocated */
    size_t argc, cap, nowned, owned_cap;
} aipalq__argv;

void aipalq__argv_init(aipalq__argv *a);
void aipalq__argv_free(aipalq__argv *a);
bool aipalq__argv_push(aipalq__argv *a, const char *s, size_t len); /* borrowed */
bool aipalq__argv_push_str(aipalq__argv *a, const char *s);         /* borrowed */
bool aipalq__argv_push_int(aipalq__argv *a, int64_t v);             /* copied */
bool aipalq__argv_push_owned(aipalq__argv *a, char *s);             /* takes s */

/* Runs a script: args holds the keys then the arguments; nkeys says how many
 * are keys. On success *reply is the reply (freeReplyObject), never an error
 * reply. */
aipalq_status aipalq__script_call(aipalq_client *c, aipalq__script_id id, int nkeys,
                                  const aipalq__argv *args, redisReply **reply);
/* Queues a script call in the connection's output buffer (pipelining). */
aipalq_status aipalq__script_append(aipalq_client *c, aipalq__script_id id, int nkeys,
                                    const aipalq__argv *args);
/* Reads the reply of the oldest appended call; a NOSCRIPT reply is retried
 * with the script's source, which needs id, nkeys and args again. */
aipalq_status aipalq__script_reply(aipalq_client *c, aipalq__script_id id, int nkeys,
                                   const aipalq__argv *args, redisReply **reply);

/* Redis key of a queue: "<ns>:{<queue>}:<suffix>". The hash tag makes every
 * key of one queue live in one cluster slot. Returns a malloc'd string. */
char *aipalq__qkey(const aipalq_client *c, const char *queue, const char *suffix);

/* The six per-queue keys every dispatch-side script takes, in this order. */
enum {
    AIPALQ__K_READY,
    AIPALQ__K_SCHED,
    AIPALQ__K_LEASES,
    AIPALQ__K_JOB,
    AIPALQ__K_META,
    AIPALQ__K_CANCEL,
    AIPALQ__K_SEQ,
    AIPALQ__K_WAKE,
    AIPALQ__K_DONE,
    AIPALQ__K_DONE_EXP,
    AIPALQ__NQKEYS
};
/* Pushes all AIPALQ__NQKEYS keys of `queue` onto args (owned by args), in the
 * client's namespace or (the _ns form) in namespace ns. */
bool aipalq__push_queue_keys(const aipalq_client *c, const char *queue, aipalq__argv *args);
bool aipalq__push_queue_keys_ns(const char *ns, const char *queue, aipalq__argv *args);

/* ------------------------------------------------------------ text buffer */

/* A growable text buffer (lib/text.c), always NUL-terminated once anything
 * was added; start it zeroed, free `s`. After a failed allocation `failed`
 * stays set and appends do nothing. */
typedef struct aipalq__text {
    char *s;
    size_t len, cap;
    bool failed;
} aipalq__text;

/* Makes room for `more` bytes (and the NUL) after len; false once failed. */
bool aipalq__text_reserve(aipalq__text *t, size_t more);
void aipalq__text_add(aipalq__text *t, const char *s, size_t n);
void aipalq__text_str(aipalq__text *t, const char *s);
/* Appends at most 63 bytes of formatted text (numbers, short fields). */
void aipalq__text_printf(aipalq__text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The text, the caller's to free(); NULL (and the buffer freed) when an
 * allocation failed on the way. */
char *aipalq__text_finish(aipalq__text *t);
/* Appends s as a JSON string: quotes, backslashes and control characters
 * escaped, every other byte (UTF-8, checked where the text came in) as is. */
void aipalq__text_json_string(aipalq__text *t, const char *s);
/* Appends `,"name":`, the start of an object member after the first. */
void aipalq__text_json_key(aipalq__text *t, const char *name);
/* Appends `,"name":` and value as a JSON string, or null when it is NULL. */
void aipalq__text_json_field(aipalq__text *t, const char *name, const char *value);

/* ----------------------------------------------------------- PostgreSQL */

aipalq_status aipalq__pg_ensure(aipalq_client *c);
/* Runs a parameterised statement (text parameters, text results). Returns
 * AIPALQ_OK with *res (PQclear it; NULL allowed when unwanted) or AIPALQ_EPG
 * with the server's message; a broken connection is dropped for reconnection. */
aipalq_status aipalq__pg_exec(aipalq_client *c, const char *sql, int nparams,
                              const char *const *values, PGresult **res);
/* The same on a caller's connection, reporting errors on client c. */
aipalq_status aipalq__pg_exec_on(aipalq_client *c, PGconn *conn, const char *sql, int nparams,
                                 const char *const *values, PGresult **res);
/* Statements on the hot path, prepared once per connection. */
typedef enum aipalq__stmt {
    AIPALQ__STMT_INSERT_TASK,
    AIPALQ__STMT_GET_TASK,
    AIPALQ__STMT_GET_TASKS,
    AIPALQ__STMT_RECORD,
    AIPALQ__STMT_COUNT
} aipalq__stmt;

/* Runs a prepared statement (preparing it first on a new connection). */
aipalq_status aipalq__pg_exec_prepared(aipalq_client *c, aipalq__stmt stmt, int nparams,
                                       const char *const *values, PGresult **res);
/* Runs a statement already prepared on this connection under `name`. */
aipalq_status aipalq__pg_exec_named(aipalq_client *c, const char *name, int nparams,
                                    const char *const *values, PGresult **res);
/* Runs `sql`, a COPY ... FROM STDIN, on the client's connection with `len`
 * bytes of COPY text data. Autocommit: every row or none. AIPALQ_EPG with the
 * server's message on failure. */
aipalq_status aipalq__pg_copy_in(aipalq_client *c, const char *sql, const char *data, size_t len);
/* Parses a timestamptz column rendered as epoch milliseconds text. */
int64_t aipalq__pg_ms(const PGresult *res, int row, int col);

/* --------------------------------------------------------------- tasks */

/* The columns every task query selects, in the order aipalq__task_from_row
 * reads them. */
#define AIPALQ__TASK_COLUMNS                                                                       \
    "id::text, type, queue, status, priority, params::text, result::text, error_message, "         \
    "error_detail, attempts, max_retries, "                                                        \
    "(extract(epoch from created_at)*1000)::bigint, "                                              \
    "(extract(epoch from started_at)*1000)::bigint, "                                              \
    "(extract(epoch from completed_at)*1000)::bigint, "                                            \
    "(extract(epoch from updated_at)*1000)::bigint, "                                              \
    "(extract(epoch from run_at)*1000)::bigint, worker_id, user_id, idempotency_key, progress, "   \
    "progress_message, cancel_requested, epoch"

struct aipalq_task {
    char id[AIPALQ_ID_SIZE];
    char *type, *queue, *params, *result, *error_message, *error_detail;
    char *worker_id, *user_id, *idempotency_key, *progress_message;
    aipalq_state state;
    int priority, attempts, max_retries, progress, cancel_requested, epoch;
    int64_t created_ms, started_ms, completed_ms, updated_ms, run_at_ms;
    char *json; /* built on first aipalq_task_json */
};

/* Fills t from row `row` of a result with AIPALQ__TASK_COLUMNS at `col0`.
 * Returns false when memory runs out (t is then cleared). */
bool aipalq__task_from_row(aipalq_task *t, const PGresult *res, int row, int col0);
void aipalq__task_clear(aipalq_task *t);

/* ------------------------------------------------------------- dispatch */

/* What Redis needs to dispatch one task. Strings are borrowed. */
typedef struct aipalq__dispatch_item {
    const char *id;
    const char *type;
    const char *queue;
    const char *ns; /* NULL: the client's namespace */
    const char *params;
    const char *user_id;
    int priority;
    int max_retries;
    int attempts;
    int epoch;
    int64_t run_at_ms; /* 0 = now */
} aipalq__dispatch_item;

/* The columns aipalq__dispatch_item_from_row reads, in order; `t` is a table
 * prefix such as "t." or "". */
#define AIPALQ__DISPATCH_COLUMNS(t)                                                                \
    t "id::text, " t "type, " t "queue, " t "params::text, " t "user_id, " t "priority, " t        \
      "max_retries, " t "attempts, " t "epoch, (extract(epoch FROM " t "run_at) * 1000)::bigint"

/* A dispatch item borrowing the strings of row `row` (AIPALQ__DISPATCH_COLUMNS
 * first). */
aipalq__dispatch_item aipalq__dispatch_item_from_row(const PGresult *res, int row);

/* aipalq_reconcile, stopping early (between pages) once *stop is set; stop may
 * be NULL. */
aipalq_status aipalq__reconcile(aipalq_client *c, int64_t grace_ms, const atomic_int *stop,
                                int64_t *redispatched_out, int64_t *repaired_out);

/* Dispatches items to Redis, grouped by queue, one pipelined script call per
 * queue-run (a lone task has a script of its own, without the batch
 * machinery). Tasks Redis already holds are left alone. With send_only the
 * calls are written but their replies are read by the next Redis call of the
 * client (the caller does not wait a round trip; a failure is the
 * reconciler's to repair, as for any dispatch after commit). */
aipalq_status aipalq__dispatch(aipalq_client *c, const aipalq__dispatch_item *items, size_t n,
                               bool send_only);

/* Inserts n new tasks of namespace c->ns with one COPY (no idempotency keys:
 * every row is created). */
aipalq_status aipalq__insert_by_copy(aipalq_client *c, const aipalq__dispatch_item *items,
                                     size_t n);

struct aipalq_batch_entry {
    char *type;
    char *params;
    aipalq_opts opts;
    bool has_opts;
    char id[AIPALQ_ID_SIZE];
    int created;
};

struct aipalq_batch {
    struct aipalq_batch_entry *entries;
    size_t count, cap;
    bool enqueued;
};

/* Enqueues a batch through `conn` (NULL: the client's own connection, with
 * dispatch after commit; otherwise the caller's, with the outbox). */
aipalq_status aipalq__enqueue_batch_on(aipalq_client *c, PGconn *conn, aipalq_batch *b);

#endif
