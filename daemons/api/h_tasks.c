/* Reading and changing tasks: status, lists, cancel, retry, the types. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "fields.h"
#include "handlers.h"
#include "task_body.h"
#include "respond.h"
#include "tlclient.h"
#include "util.h"

#define MAX_LIST_LIMIT 100
#define MAX_OFFSET     1000000000LL

static void respond_list(api_request *rq, aipalq_list *list, int64_t limit, int64_t offset)
{
    body b = {0};
    body_str(&b, "{\"tasks\":[");
    for (size_t i = 0; i < aipalq_list_count(list); i++) {
        if (i)
            body_add(&b, ",", 1);
        body_task(&b, aipalq_list_at(list, i));
    }
    char counted[40], tail[160];
    util_iso8601(aipalq_list_total_ms(list), counted, sizeof counted);
    snprintf(tail, sizeof tail,
             "],\"total_count\":%lld,\"total_counted_at\":\"%s\",\"limit\":%lld,"
             "\"offset\":%lld}",
             (long long)aipalq_list_total(list), counted, (long long)limit, (long long)offset);
    body_str(&b, tail);
    aipalq_list_free(list);
    respond_body(rq, &b);
}

static bool parse_page(api_request *rq, int64_t default_limit, cJSON *errors, int64_t *limit,
                       int64_t *offset)
{
    bool ok = fields_query_int(rq_query(rq, "limit"), "limit", 1, MAX_LIST_LIMIT, default_limit,
                               errors, limit);
    ok &= fields_query_int(rq_query(rq, "offset"), "offset", 0, MAX_OFFSET, 0, errors, offset);
    return ok;
}

/* status=a,b: each a state name. */
static bool parse_states(const char *csv, aipalq_filter *f, cJSON *errors)
{
    char buf[256];
    if (!csv)
        return true;
    snprintf(buf, sizeof buf, "%s", csv);
    char *save = NULL;
    bool any = false;
    for (char *s = strtok_r(buf, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        aipalq_state state;
        if (aipalq_state_parse(s, &state) != AIPALQ_OK) {
            catalog_add_error(errors, "status",
                              "must be one of: pending, scheduled, running, retrying, "
                              "completed, failed, cancelled (comma-separated)");
            return false;
        }
        aipalq_filter_add_state(f, state);
        any = true;
    }
    if (!any)
        catalog_add_error(errors, "status", "must name at least one state");
    return any;
}

static bool parse_name_filter(api_request *rq, const char *name, const char *alias,
                              aipalq_status (*set)(aipalq_filter *, const char *), aipalq_filter *f,
                              cJSON *errors)
{
    const char *v = rq_query(rq, name);
    if (!v && alias)
        v = rq_query(rq, alias);
    if (!v)
        return true;
    if (!fields_valid_name(v)) {
        catalog_add_error(errors, name, "must be 1 to 64 characters of A-Z a-z 0-9 _ . -");
        return false;
    }
    return set(f, v) == AIPALQ_OK;
}

static bool parse_filters(api_request *rq, aipalq_filter *f, cJSON *errors)
{
    bool ok = parse_states(rq_query(rq, "status"), f, errors);
    ok &= parse_name_filter(rq, "task_type", "type", aipalq_filter_set_type, f, errors);
    ok &= parse_name_filter(rq, "queue", NULL, aipalq_filter_set_queue, f, errors);
    const char *user = rq_query(rq, "user_id");
    /* The library refuses what is not UTF-8; a refused filter must not be
     * dropped, or the list would hold every user's tasks. */
    if (user && (!*user || strlen(user) > 200 || aipalq_filter_set_user_id(f, user) != AIPALQ_OK)) {
        catalog_add_error(errors, "user_id", "must be 1 to 200 bytes of UTF-8");
        ok = false;
    }
    const char *order = rq_query(rq, "order");
    if (order && strcmp(order, "newest") != 0 && strcmp(order, "oldest") != 0) {
        catalog_add_error(errors, "order", "must be one of: newest, oldest");
        ok = false;
    } else if (order) {
        aipalq_filter_set_oldest_first(f, strcmp(order, "oldest") == 0);
    }
    return ok;
}

/* GET /api/tasks/list and GET /api/tasks. */
void h_task_list(api_request *rq)
{
    cJSON *errors = cJSON_CreateArray();
    aipalq_filter *f = aipalq_filter_new();
    int64_t limit, offset;
    bool ok = f && parse_page(rq, 20, errors, &limit, &offset);
    ok = f && parse_filters(rq, f, errors) && ok;
    if (!ok || aipalq_filter_set_page(f, limit, offset) != AIPALQ_OK) {
        aipalq_filter_free(f);
        respond_validation(rq, errors);
        return;
    }
    cJSON_Delete(errors);
    aipalq_client *c = tlclient_get();
    aipalq_list *list = NULL;
    aipalq_status st = c ? aipalq_list_tasks(c, f, &list) : AIPALQ_ENOMEM;
    aipalq_filter_free(f);
    if (st != AIPALQ_OK)
        respond_lib_error(rq, c, st, "list tasks");
    else
        respond_list(rq, list, limit, offset);
}

typedef aipalq_status (*view_fn)(aipalq_client *, int64_t, int64_t, aipalq_list **);

static void list_view(api_request *rq, view_fn view, const char *what)
{
    cJSON *errors = cJSON_CreateArray();
    int64_t limit, offset;
    if (!parse_page(rq, 10, errors, &limit, &offset)) {
        respond_validation(rq, errors);
        return;
    }
    cJSON_Delete(errors);
    aipalq_client *c = tlclient_get();
    aipalq_list *list = NULL;
    aipalq_status st = c ? view(c, limit, offset, &list) : AIPALQ_ENOMEM;
    if (st != AIPALQ_OK)
        respond_lib_error(rq, c, st, what);
    else
        respond_list(rq, list, limit, offset);
}

void h_task_pending(api_request *rq)
{
    list_view(rq, aipalq_list_pending, "list pending tasks");
}

void h_task_failed(api_request *rq)
{
    list_view(rq, aipalq_list_failed, "list failed tasks");
}

/* DELETE /api/tasks/{task_id} */
void h_task_cancel(api_request *rq)
{
    aipalq_client *c = tlclient_get();
    aipalq_state state = AIPALQ_STATE_CANCELLED;
    aipalq_status st = c ? aipalq_cancel(c, rq->params[0], &state) : AIPALQ_ENOMEM;
    if (st != AIPALQ_OK) {
        respond_lib_error(rq, c, st, "cancel");
        return;
    }
    bool now = state == AIPALQ_STATE_CANCELLED;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message",
                            now ? "Task cancelled successfully"
                                : "Cancel requested; the running task stops "
                                  "within a second");
    cJSON_AddStringToObject(o, "task_id", rq->params[0]);
    cJSON_AddStringToObject(o, "status", aipalq_state_name(state));
    cJSON_AddBoolToObject(o, "cancel_requested", !now);
    respond_json(rq, 200, o);
}

/* POST /api/tasks/{task_id}/retry: the same task, queued again. */
void h_task_retry(api_request *rq)
{
    aipalq_client *c = tlclient_get();
    aipalq_status st = c ? aipalq_retry(c, rq->params[0]) : AIPALQ_ENOMEM;
    if (st != AIPALQ_OK) {
        respond_lib_error(rq, c, st, "retry");
        return;
    }
    aipalq_task *t = NULL;
    int64_t created =
        aipalq_get(c, rq->params[0], &t) == AIPALQ_OK ? aipalq_task_created_ms(t) : util_now_ms();
    aipalq_task_free(t);
    char ts[40];
    util_iso8601(created, ts, sizeof ts);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task_id", rq->params[0]);
    cJSON_AddStringToObject(o, "celery_task_id", rq->params[0]);
    cJSON_AddStringToObject(o, "status", "pending");
    cJSON_AddStringToObject(o, "created_at", ts);
    cJSON_AddStringToObject(o, "message",
                            "Task retried successfully (same task id, attempts "
                            "reset)");
    respond_json(rq, 200, o);
}

/* GET /api/tasks/types: the catalog, with each type's params schema. */
void h_task_types(api_request *rq)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "types");
    for (size_t i = 0; i < catalog_count(); i++)
        cJSON_AddItemToArray(arr, catalog_type_json(catalog_at(i)));
    cJSON *queues = cJSON_AddArrayToObject(o, "queues");
    for (size_t i = 0; i < catalog_queue_count(); i++)
        cJSON_AddItemToArray(queues, cJSON_CreateString(catalog_queue_at(i)));
    respond_json(rq, 200, o);
}
