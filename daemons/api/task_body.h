/* Response bodies written as text: tasks (the library's JSON of a task with
 * the catalog's fields added) spliced in without parsing them again. */
#ifndef AIPAL_API_TASK_BODY_H
#define AIPAL_API_TASK_BODY_H

#include <stdbool.h>
#include <stddef.h>

#include <aipal/aipalq.h>

#include "request.h"

/* A response body built as text (failed: out of memory or a task the
 * library could not render). */
typedef struct body {
    char *s;
    size_t len, cap;
    bool failed;
} body;

/* Appends text; on running out of memory the body is marked failed. */
void body_add(body *b, const char *s, size_t n);
void body_str(body *b, const char *s);

/* A task in the seed's TaskStatusResponse shape (plus our fields). */
void body_task(body *b, const aipalq_task *t);

/* 200 with the body (which it takes), or 500 when the body failed. */
void respond_body(api_request *rq, body *b);

#endif
