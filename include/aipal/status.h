/* libaipalq status codes and task states.
 *
 * Every status code is listed once, in AIPALQ_STATUS_LIST, which generates
 * the enum, aipalq_status_name() and aipalq_strerror(). Codes are only ever
 * appended: a number, once given, keeps its meaning for the life of the ABI.
 */
#ifndef AIPAL_STATUS_H
#define AIPAL_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, number, message) */
#define AIPALQ_STATUS_LIST(X)                                                                      \
    X(OK, 0, "success")                                                                            \
    X(EMPTY, 1, "no task was available before the timeout (not an error)")                         \
    X(EINVAL, 2, "invalid argument")                                                               \
    X(EBADJSON, 3, "params are not valid JSON")                                                    \
    X(ENOTOBJECT, 4, "params must be a JSON object")                                               \
    X(EPRIORITY, 5, "priority must be between 1 and 10")                                           \
    X(EUNKNOWNTYPE, 6, "unknown task type")                                                        \
    X(ETOOBIG, 7, "params exceed the size limit")                                                  \
    X(EBADURL, 8, "malformed connection URL")                                                      \
    X(EREDIS, 9, "Redis is unreachable or failed")                                                 \
    X(EPG, 10, "PostgreSQL is unreachable or failed")                                              \
    X(ENOTFOUND, 11, "no task with that id")                                                       \
    X(EILLEGAL, 12, "illegal state transition")                                                    \
    X(ESTALE, 13, "the delivery lost its lease (stale fencing token)")                             \
    X(ESCHEMA, 14, "the database schema is newer than this library")                               \
    X(ENOMEM, 15, "out of memory")                                                                 \
    X(ETIMEOUT, 16, "operation timed out")                                                         \
    X(EMISUSE, 17, "library misuse (NULL, freed or wrong handle, or wrong thread)")                \
    X(EBADID, 18, "malformed task id (expected a UUID)")                                           \
    X(EQUEUE, 19, "invalid queue name")                                                            \
    X(ESHUTDOWN, 20, "the worker is shutting down")                                                \
    X(EHANDLER, 21, "no handler registered for this task type")

typedef enum aipalq_status {
#define AIPALQ__STATUS_ENUM(name, num, msg) AIPALQ_##name = num,
    AIPALQ_STATUS_LIST(AIPALQ__STATUS_ENUM)
#undef AIPALQ__STATUS_ENUM
} aipalq_status;

/* The lifecycle of a task; docs/STATE_MACHINE.md draws the legal transitions.
 * PENDING    waiting in its queue, ready to run
 * SCHEDULED  waiting for its run-at time (a delayed task)
 * RUNNING    delivered to a worker that holds its lease
 * RETRYING   an attempt failed; waiting for its backoff before the next one
 * COMPLETED  finished with a result (final)
 * FAILED     out of attempts, or failed without retry (final until retried)
 * CANCELLED  withdrawn by a caller (final until retried)
 */
#define AIPALQ_STATE_LIST(X)                                                                       \
    X(PENDING, 0, "pending")                                                                       \
    X(SCHEDULED, 1, "scheduled")                                                                   \
    X(RUNNING, 2, "running")                                                                       \
    X(RETRYING, 3, "retrying")                                                                     \
    X(COMPLETED, 4, "completed")                                                                   \
    X(FAILED, 5, "failed")                                                                         \
    X(CANCELLED, 6, "cancelled")

typedef enum aipalq_state {
#define AIPALQ__STATE_ENUM(name, num, text) AIPALQ_STATE_##name = num,
    AIPALQ_STATE_LIST(AIPALQ__STATE_ENUM)
#undef AIPALQ__STATE_ENUM
} aipalq_state;

#define AIPALQ_STATE_COUNT 7

#ifdef __cplusplus
}
#endif

#endif
