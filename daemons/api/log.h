/* Structured logging: one JSON object per line on stderr. Lines are written
 * with a single write(2), so lines of different threads never interleave.
 * Never pass secrets (API keys, passwords in URLs) to these functions. */
#ifndef AIPAL_API_LOG_H
#define AIPAL_API_LOG_H

#include <cjson/cJSON.h>

/* Writes {"ts", "level", "msg", ...fields}; takes ownership of `fields` (an
 * object or NULL). */
void log_json(const char *level, const char *msg, cJSON *fields);

/* A message with printf formatting and no extra fields. */
void log_msg(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
