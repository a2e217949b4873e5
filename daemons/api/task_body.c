/* Response bodies written as text, and tasks in them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "fields.h"
#include "respond.h"
#include "task_body.h"

void body_add(body *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->s, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->s = grown;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void body_str(body *b, const char *s)
{
    body_add(b, s, strlen(s));
}

/* s as a JSON string: names need no escaping, anything else goes through cJSON. */
static void body_quoted(body *b, const char *s)
{
    if (fields_valid_name(s)) {
        body_add(b, "\"", 1);
        body_str(b, s);
        body_add(b, "\"", 1);
        return;
    }
    cJSON *str = cJSON_CreateString(s);
    char *q = str ? cJSON_PrintUnformatted(str) : NULL;
    cJSON_Delete(str);
    if (q)
        body_str(b, q);
    else
        b->failed = true;
    free(q);
}

/* A task in the seed's TaskStatusResponse shape (plus our fields): the
 * library's JSON object with task_name and category added, spliced as text
 * rather than parsed and printed again. */
void body_task(body *b, const aipalq_task *t)
{
    const char *json = aipalq_task_json(t);
    size_t n = json ? strlen(json) : 0;
    if (n < 3 || json[n - 1] != '}') { /* the library always renders fields */
        b->failed = true;
        return;
    }
    const char *type = aipalq_task_type(t);
    const catalog_type *ct = catalog_find(type);
    body_add(b, json, n - 1);
    body_str(b, ",\"task_name\":");
    body_quoted(b, type ? type : "");
    body_str(b, ",\"category\":");
    body_quoted(b, ct ? ct->category : "unknown");
    body_add(b, "}", 1);
}

void respond_body(api_request *rq, body *b)
{
    if (b->failed) {
        free(b->s);
        respond_internal(rq, "cannot render a task");
        return;
    }
    respond_take(rq, 200, "application/json", b->s, b->len);
}
