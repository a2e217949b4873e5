/* Task submissions: reading and checking a submission (the generic form of
 * POST /api/tasks and batch items, or the seed's TaskSubmitRequest), into
 * what aipalq_enqueue takes. */
#ifndef AIPAL_API_SUBMIT_H
#define AIPAL_API_SUBMIT_H

#include <stdbool.h>

#include <aipal/aipalq.h>
#include <cjson/cJSON.h>

#include "catalog.h"

typedef struct submission {
    const catalog_type *type;
    char *params; /* normalized params, JSON text */
    aipalq_opts *opts;
    const char *queue; /* the queue it goes to */
    int priority;
    bool delayed;
} submission;

/* The generic form: {type, params, priority?, queue?, delay_ms?,
 * idempotency_key?, user_id?, max_retries?} (task_type and parameters are
 * accepted as aliases). Errors are named prefix + field. `idem_default` (may
 * be NULL) is the Idempotency-Key header. Returns true when valid. */
bool submission_parse(const cJSON *item, const char *prefix, const char *idem_default,
                      submission *out, cJSON *errors);

/* The seed's TaskSubmitRequest {task_type, user_id?, priority?, parameters}
 * for the endpoint of `type`. */
bool submission_parse_seed(const cJSON *body, const catalog_type *type, submission *out,
                           cJSON *errors);

void submission_clear(submission *s);

#endif
