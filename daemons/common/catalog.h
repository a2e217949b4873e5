/* The task catalog of AI-Pal: every task type as data (queue, priority,
 * retries, backoff, time limits, parameter schema, description, example).
 *
 * The catalog knows nothing of HTTP: the API daemon validates submissions
 * with it and publishes its schemas, and the worker daemon uses it to define
 * types and to read parameters. Routing (type -> queue) lives here, not in the
 * library.
 *
 * Everything here is immutable static data; every function may be called from
 * any thread.
 */
#ifndef AIPAL_DAEMONS_CATALOG_H
#define AIPAL_DAEMONS_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include <aipal/aipalq.h>

typedef enum catalog_kind {
    CATALOG_STRING,
    CATALOG_INTEGER,
    CATALOG_NUMBER,
    CATALOG_BOOLEAN,
    CATALOG_STRING_ARRAY,
    CATALOG_OBJECT,
    CATALOG_ENUM
} catalog_kind;

typedef struct catalog_field catalog_field;

/* One parameter. Bounds apply by kind: min/max to integers and numbers,
 * min_len/max_len to string lengths (in characters) and, for string arrays,
 * min_items/max_items to the item count and min_len/max_len to each item.
 * An object with no sub-fields is free-form; with sub-fields it is checked
 * like the parameters themselves (unknown keys rejected). */
struct catalog_field {
    const char *name;
    catalog_kind kind;
    bool required;
    /* JSON null is accepted and means "not given" (e.g. user_id: none = all
     * users); for other optional fields null is an error. */
    bool nullable;
    /* JSON text of the default applied when the field is absent; NULL: none. */
    const char *default_json;
    bool has_min, has_max;
    double min, max;
    int min_len, max_len; /* 0 max_len: no limit */
    int min_items, max_items;
    /* CATALOG_ENUM (and string-array items when set): NULL-terminated. */
    const char *const *enum_values;
    const catalog_field *fields;
    size_t nfields;
    const char *description;
};

typedef struct catalog_type {
    const char *name;     /* the Celery name of the original, e.g. "plan_ffe_goal" */
    const char *queue;    /* one of the six queues */
    const char *category; /* the original's task_type label, e.g. "ffe_planning" */
    const char *description;
    int priority;     /* default priority, 1..10 */
    int max_priority; /* highest priority a submission may ask for */
    int max_retries;
    int64_t backoff_base_ms, backoff_cap_ms;
    int backoff_jitter_percent;
    int64_t soft_limit_ms, hard_limit_ms;
    int64_t result_ttl_ms;
    const catalog_field *fields;
    size_t nfields;
    const char *example_json; /* a valid params object */
} catalog_type;

/* The type named `name`, or NULL. */
const catalog_type *catalog_find(const char *name);

/* Iteration in catalog order (the 14 domain types, then echo, sleep, fail). */
size_t catalog_count(void);
const catalog_type *catalog_at(size_t i);

/* The queues tasks are routed to, most important first. */
size_t catalog_queue_count(void);
const char *catalog_queue_at(size_t i);
/* 1 if `queue` is one of them. */
bool catalog_queue_known(const char *queue);

/* Defines every type of the catalog on `client` (all or nothing). */
aipalq_status catalog_define_all(aipalq_client *client);

/* The catalog's type definitions as the JSON array aipalq_types_define_json
 * takes; the caller frees it with free(). NULL when memory runs out. */
char *catalog_types_define_json(void);

/* Checks `params` (a JSON object, or NULL for {}) against the type's schema.
 * Each problem is appended to `errors_out` (a cJSON array) as
 * {"field": "<prefix><name>", "error": "<why>"}; prefix is e.g. "parameters."
 * (NULL: none). Returns the normalized params (defaults applied, fields in
 * schema order) for the caller to cJSON_Delete, or NULL when there were
 * errors (or memory ran out: then an error with field "" is added). */
cJSON *catalog_validate(const catalog_type *type, const cJSON *params, const char *prefix,
                        cJSON *errors_out);

/* The type's parameters as a JSON Schema object (OpenAPI 3.0 dialect:
 * "nullable" rather than type arrays), with description, defaults and the
 * example. Caller deletes. NULL when memory runs out. */
cJSON *catalog_schema_json(const catalog_type *type);

/* The type's settings and schema, for listings: name, queue, category,
 * description, priority, max_priority, max_retries, backoff, limits,
 * params_schema, example. Caller deletes. */
cJSON *catalog_type_json(const catalog_type *type);

/* Appends {"field": field, "error": error} to errors. */
void catalog_add_error(cJSON *errors, const char *field, const char *error);

#endif
