/* The worker's log: one JSON object per line on stderr, written with a
 * single write(2) so that lines from threads and prefork children never
 * interleave. Every line has "ts" (UTC, ms), "level", "event", "pid" and,
 * once known, "worker"; task events add the task's fields. */
#ifndef AIPAL_WORKER_LOG_H
#define AIPAL_WORKER_LOG_H

#include <cjson/cJSON.h>

typedef enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* Returns 0 and sets *out for "debug", "info", "warn" (or "warning"),
 * "error"; else -1. */
int log_parse_level(const char *name, log_level *out);
const char *log_level_name(log_level level);

/* Sets the lowest level written (default info). Not thread-safe: call at
 * start. */
void log_set_level(log_level level);
/* Sets the worker id added to every line (copied). Call at start. */
void log_set_worker(const char *worker_id);
int log_enabled(log_level level);

/* Writes one line with `fields` (a JSON object, consumed; NULL: none). */
void log_json(log_level level, const char *event, cJSON *fields);
/* Writes one line with a "msg" field. */
void log_msg(log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
