/* Checks of request envelope fields (the JSON around a task's params, and
 * query parameters), producing the same field-level errors as the catalog. */
#ifndef AIPAL_API_FIELDS_H
#define AIPAL_API_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* Rejects keys of `obj` not in `allowed` (NULL-terminated), naming each
 * (prefix + key). Returns true when all are known. */
bool fields_only(const cJSON *obj, const char *const *allowed, const char *prefix, cJSON *errors);

/* An optional integer member in [lo, hi]. Returns false (and adds an error)
 * when present and bad; *present says whether it was given (null = absent). */
bool fields_int(const cJSON *obj, const char *name, int64_t lo, int64_t hi, const char *prefix,
                cJSON *errors, int64_t *out, bool *present);

/* An optional string member of 1..max_bytes bytes; *out is NULL when absent
 * or null. */
bool fields_string(const cJSON *obj, const char *name, size_t max_bytes, const char *prefix,
                   cJSON *errors, const char **out);

/* A query parameter that must be an integer in [lo, hi]; `fallback` when
 * absent. */
bool fields_query_int(const char *value, const char *name, int64_t lo, int64_t hi, int64_t fallback,
                      cJSON *errors, int64_t *out);

/* Queue and type names: 1..64 of [A-Za-z0-9_.-]. */
bool fields_valid_name(const char *s);

#endif
