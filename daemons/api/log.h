/* Structured logging: one JSON object per line on stderr. Lines are written
 * with a single write(2), so lines of different threads never interleave.
 * Never pass secrets (API keys, passwords in URLs) to these functions. */
#ifndef AIPAL_API_LOG_H
#define AIPAL_API_LOG_H

#include <stdbool.h>

#include <cjson/cJSON.h>

/* Writes {"ts", "level", "msg", ...fields}; takes ownership of `fields` (an
 * object or NULL). */
void log_json(const char *level, const char *msg, cJSON *fields);

/* A message with printf formatting and no extra fields. */
void log_msg(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One access-log line per request, written without building a cJSON tree
 * (it is on every request's path): {"ts", "level": "info", "msg": "request",
 * "method", "path", "status", "duration_ms", "request_id", "remote"} and
 * "outcome" when not NULL. */
void log_request_line(const char *method, const char *path, unsigned status, double ms,
                      const char *request_id, const char *remote, const char *outcome);

#endif
