/* Building the OpenAPI document. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aipal/aipalq.h>
#include <cjson/cJSON.h>

#include "auth.h"
#include "catalog.h"
#include "openapi.h"
#include "ratelimit.h"
#include "router.h"

extern const unsigned char api_asset_openapi_base[];
extern const size_t api_asset_openapi_base_len;

static char *text;
static size_t text_len;
static const api_config *config;

static const char *const seed_types[] = {"aggregate_ari_snapshots", "plan_ffe_goal",
                                         "edm_batch_analysis"};

static cJSON *ref(const char *kind, const char *name)
{
    char buf[160];
    snprintf(buf, sizeof buf, "#/components/%s/%s", kind, name);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "$ref", buf);
    return o;
}

static cJSON *schema_of(const char *type)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    return o;
}

/* ---------------------------------------------------- per-type schemas */

static cJSON *priority_schema(int max, int fallback)
{
    cJSON *p = schema_of("integer");
    cJSON_AddNumberToObject(p, "minimum", 1);
    cJSON_AddNumberToObject(p, "maximum", max);
    cJSON_AddNumberToObject(p, "default", fallback);
    cJSON_AddStringToObject(p, "description", "1..10, 10 the most urgent");
    return p;
}

static cJSON *queue_schema(void)
{
    cJSON *q = schema_of("string");
    cJSON *e = cJSON_AddArrayToObject(q, "enum");
    for (size_t i = 0; i < catalog_queue_count(); i++)
        cJSON_AddItemToArray(e, cJSON_CreateString(catalog_queue_at(i)));
    cJSON_AddStringToObject(q, "description", "Route to this queue instead of the type's");
    return q;
}

static cJSON *ranged(const char *type, double lo, double hi, const char *description)
{
    cJSON *s = schema_of(type);
    cJSON_AddNumberToObject(s, "minimum", lo);
    cJSON_AddNumberToObject(s, "maximum", hi);
    cJSON_AddStringToObject(s, "description", description);
    return s;
}

static cJSON *string_schema(int max, const char *description)
{
    cJSON *s = schema_of("string");
    cJSON_AddNumberToObject(s, "minLength", 1);
    cJSON_AddNumberToObject(s, "maxLength", max);
    cJSON_AddStringToObject(s, "description", description);
    return s;
}

/* The generic submission of one type. */
static cJSON *submit_schema(const catalog_type *t, char *name, size_t nlen)
{
    snprintf(name, nlen, "Params_%s", t->name);
    cJSON *s = schema_of("object");
    cJSON_AddStringToObject(s, "description",
                            "type (or its alias task_type) is required; params may also be "
                            "given as parameters");
    cJSON_AddBoolToObject(s, "additionalProperties", 0);
    cJSON *props = cJSON_AddObjectToObject(s, "properties");
    for (const char *key = "type"; key; key = strcmp(key, "type") ? NULL : "task_type") {
        cJSON *ty = schema_of("string");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(ty, "enum"), cJSON_CreateString(t->name));
        cJSON_AddItemToObject(props, key, ty);
    }
    cJSON_AddItemToObject(props, "params", ref("schemas", name));
    cJSON_AddItemToObject(props, "parameters", ref("schemas", name));
    cJSON_AddItemToObject(props, "priority", priority_schema(t->max_priority, t->priority));
    cJSON_AddItemToObject(props, "queue", queue_schema());
    cJSON_AddItemToObject(props, "delay_ms",
                          ranged("integer", 0, 366.0 * 24 * 3600 * 1000,
                                 "Run no earlier than this many ms from now"));
    cJSON_AddItemToObject(props, "max_retries",
                          ranged("integer", 0, 1000, "Override the type's retries"));
    cJSON_AddItemToObject(props, "idempotency_key",
                          string_schema(200, "Submitting the same key again while the task "
                                             "is unfinished returns that task"));
    cJSON *user = string_schema(200, "The user the task is for (default: params.user_id)");
    cJSON_AddBoolToObject(user, "nullable", 1);
    cJSON_AddItemToObject(props, "user_id", user);
    cJSON *example = cJSON_CreateObject();
    cJSON_AddStringToObject(example, "type", t->name);
    cJSON_AddItemToObject(example, "params", cJSON_Parse(t->example_json));
    cJSON_AddItemToObject(s, "example", example);
    return s;
}

/* The seed's TaskSubmitRequest with the type's parameters. */
static cJSON *seed_schema(const catalog_type *t)
{
    char params[128];
    snprintf(params, sizeof params, "Params_%s", t->name);
    cJSON *s = cJSON_CreateObject();
    cJSON *all = cJSON_AddArrayToObject(s, "allOf");
    cJSON_AddItemToArray(all, ref("schemas", "TaskSubmitRequest"));
    cJSON *over = schema_of("object");
    cJSON_AddItemToObject(cJSON_AddObjectToObject(over, "properties"), "parameters",
                          ref("schemas", params));
    cJSON_AddItemToArray(all, over);
    cJSON *example = cJSON_CreateObject();
    cJSON_AddStringToObject(example, "task_type", t->category);
    cJSON_AddStringToObject(example, "user_id", "user-123");
    cJSON_AddNumberToObject(example, "priority", 5);
    cJSON_AddItemToObject(example, "parameters", cJSON_Parse(t->example_json));
    cJSON_AddItemToObject(s, "example", example);
    return s;
}

static void add_type_schemas(cJSON *schemas)
{
    cJSON *one_of = cJSON_CreateArray();
    for (size_t i = 0; i < catalog_count(); i++) {
        const catalog_type *t = catalog_at(i);
        char name[128], params[128];
        snprintf(params, sizeof params, "Params_%s", t->name);
        cJSON_AddItemToObject(schemas, params, catalog_schema_json(t));
        snprintf(name, sizeof name, "SubmitTask_%s", t->name);
        cJSON_AddItemToObject(schemas, name, submit_schema(t, params, sizeof params));
        cJSON_AddItemToArray(one_of, ref("schemas", name));
    }
    cJSON *submit = cJSON_CreateObject();
    cJSON_AddItemToObject(submit, "oneOf", one_of);
    cJSON_AddItemToObject(schemas, "SubmitTask", submit);
    cJSON *batch = schema_of("object");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(batch, "required"), cJSON_CreateString("tasks"));
    cJSON_AddBoolToObject(batch, "additionalProperties", 0);
    cJSON *tasks = schema_of("array");
    cJSON_AddItemToObject(tasks, "items", ref("schemas", "SubmitTask"));
    cJSON_AddNumberToObject(tasks, "minItems", 1);
    cJSON_AddNumberToObject(tasks, "maxItems", 500);
    cJSON_AddItemToObject(cJSON_AddObjectToObject(batch, "properties"), "tasks", tasks);
    cJSON_AddItemToObject(schemas, "BatchRequest", batch);
    for (size_t i = 0; i < sizeof seed_types / sizeof seed_types[0]; i++) {
        char name[128];
        snprintf(name, sizeof name, "TaskSubmitRequest_%s", seed_types[i]);
        cJSON_AddItemToObject(schemas, name, seed_schema(catalog_find(seed_types[i])));
    }
}

/* ------------------------------------------------------------ operations */

static bool needs_key(const api_op *op)
{
    if (auth_key_count() == 0)
        return false;
    return op->access == ACCESS_READ || op->access == ACCESS_WRITE ||
           (op->access == ACCESS_PROBE && !config->open_metrics);
}

static void add_response_ref(cJSON *responses, const char *status, const char *name)
{
    cJSON_AddItemToObject(responses, status, ref("responses", name));
}

static cJSON *media(const char *content_type, const char *schema)
{
    cJSON *content = cJSON_CreateObject();
    cJSON *m = cJSON_AddObjectToObject(content, content_type);
    if (schema && strcmp(content_type, "application/json") == 0)
        cJSON_AddItemToObject(m, "schema", ref("schemas", schema));
    else
        cJSON_AddItemToObject(m, "schema", schema_of("string"));
    return content;
}

static cJSON *success_response(const api_op *op)
{
    cJSON *r = cJSON_CreateObject();
    const char *what = strcmp(op->content_type, "text/event-stream") == 0
                           ? "An event stream of TaskEvent data (see the TaskEvent schema)"
                           : "Success";
    cJSON_AddStringToObject(r, "description", what);
    cJSON_AddItemToObject(r, "content", media(op->content_type, op->response_schema));
    return r;
}

static void add_error_responses(cJSON *responses, const api_op *op)
{
    bool health = op->response_schema && strcmp(op->response_schema, "HealthResponse") == 0;
    if (op->json_body || (op->errors & DOC_400))
        add_response_ref(responses, "400", "BadRequest");
    if (needs_key(op)) {
        add_response_ref(responses, "401", "Unauthorized");
        if (op->access == ACCESS_WRITE)
            add_response_ref(responses, "403", "Forbidden");
    }
    if (op->errors & DOC_404)
        add_response_ref(responses, "404", "NotFound");
    if (op->errors & DOC_409)
        add_response_ref(responses, "409", "Conflict");
    add_response_ref(responses, "413", "PayloadTooLarge");
    if (op->json_body)
        add_response_ref(responses, "415", "UnsupportedMediaType");
    if (ratelimit_enabled() && op->access != ACCESS_PROBE)
        add_response_ref(responses, "429", "TooManyRequests");
    add_response_ref(responses, "500", "InternalError");
    if (health) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "description", "Redis or PostgreSQL is down (named)");
        cJSON_AddItemToObject(r, "content", media("application/json", "HealthResponse"));
        cJSON_AddItemToObject(responses, "503", r);
    } else if (op->errors & DOC_503) {
        add_response_ref(responses, "503", "ServiceUnavailable");
    }
}

static cJSON *parameters(const api_route *route, const api_op *op)
{
    cJSON *params = cJSON_CreateArray();
    if (strstr(route->pattern, "{task_id}"))
        cJSON_AddItemToArray(params, ref("parameters", "task_id"));
    for (const char *const *q = op->query; q && *q; q++)
        cJSON_AddItemToArray(params, ref("parameters", *q));
    return params;
}

/* One example per type for the generic submission. */
static cJSON *submit_examples(void)
{
    cJSON *examples = cJSON_CreateObject();
    for (size_t i = 0; i < catalog_count(); i++) {
        const catalog_type *t = catalog_at(i);
        cJSON *e = cJSON_AddObjectToObject(examples, t->name);
        cJSON_AddStringToObject(e, "summary", t->description);
        cJSON *v = cJSON_AddObjectToObject(e, "value");
        cJSON_AddStringToObject(v, "type", t->name);
        cJSON_AddItemToObject(v, "params", cJSON_Parse(t->example_json));
    }
    return examples;
}

static cJSON *request_body(const api_op *op)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddBoolToObject(body, "required", 1);
    cJSON *content = media("application/json", op->request_schema);
    if (strcmp(op->request_schema, "SubmitTask") == 0)
        cJSON_AddItemToObject(cJSON_GetObjectItem(content, "application/json"), "examples",
                              submit_examples());
    cJSON_AddItemToObject(body, "content", content);
    return body;
}

static cJSON *operation(const api_route *route, const api_op *op)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "operationId", op->operation_id);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "tags"), cJSON_CreateString(op->tag));
    cJSON_AddStringToObject(o, "summary", op->summary);
    if (op->description)
        cJSON_AddStringToObject(o, "description", op->description);
    cJSON *params = parameters(route, op);
    if (cJSON_GetArraySize(params) > 0)
        cJSON_AddItemToObject(o, "parameters", params);
    else
        cJSON_Delete(params);
    if (op->request_schema)
        cJSON_AddItemToObject(o, "requestBody", request_body(op));
    cJSON *responses = cJSON_AddObjectToObject(o, "responses");
    char status[8];
    snprintf(status, sizeof status, "%d", op->status);
    cJSON_AddItemToObject(responses, status, success_response(op));
    if (op->status == 202 && op->query) {
        cJSON *again = success_response(op);
        cJSON_ReplaceItemInObject(again, "description",
                                  cJSON_CreateString("An unfinished task holds the key"));
        cJSON_AddItemToObject(responses, "200", again);
    }
    add_error_responses(responses, op);
    if (needs_key(op)) {
        cJSON *sec = cJSON_AddArrayToObject(o, "security");
        cJSON *req = cJSON_CreateObject();
        cJSON_AddItemToObject(req, "bearerAuth", cJSON_CreateArray());
        cJSON_AddItemToArray(sec, req);
    }
    return o;
}

static void add_paths(cJSON *doc)
{
    cJSON *paths = cJSON_AddObjectToObject(doc, "paths");
    for (size_t i = 0; i < routes_count(); i++) {
        const api_route *route = routes_at(i);
        cJSON *item = cJSON_AddObjectToObject(paths, route->pattern);
        for (int j = 0; j < API_MAX_OPS && route->ops[j].method; j++) {
            char method[16];
            size_t k = 0;
            for (; route->ops[j].method[k] && k < sizeof method - 1; k++)
                method[k] = (char)(route->ops[j].method[k] | 0x20);
            method[k] = '\0';
            cJSON_AddItemToObject(item, method, operation(route, &route->ops[j]));
        }
    }
}

static void add_security(cJSON *doc)
{
    if (auth_key_count() == 0)
        return;
    cJSON *components = cJSON_GetObjectItem(doc, "components");
    cJSON *schemes = cJSON_AddObjectToObject(components, "securitySchemes");
    cJSON *bearer = cJSON_AddObjectToObject(schemes, "bearerAuth");
    cJSON_AddStringToObject(bearer, "type", "http");
    cJSON_AddStringToObject(bearer, "scheme", "bearer");
    cJSON_AddStringToObject(bearer, "description",
                            "An API key: read-only keys may GET, read-write keys may also "
                            "submit, cancel and retry");
}

int openapi_build(const api_config *cfg)
{
    config = cfg;
    cJSON *doc =
        cJSON_ParseWithLength((const char *)api_asset_openapi_base, api_asset_openapi_base_len);
    if (!doc)
        return -1;
    cJSON_AddStringToObject(cJSON_GetObjectItem(doc, "info"), "version", aipalq_version_string());
    add_type_schemas(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "components"), "schemas"));
    add_security(doc);
    add_paths(doc);
    free(text);
    text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (!text)
        return -1;
    text_len = strlen(text);
    return 0;
}

const char *openapi_text(size_t *len)
{
    *len = text_len;
    return text;
}

void openapi_free(void)
{
    free(text);
    text = NULL;
    text_len = 0;
}
