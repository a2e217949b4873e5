/* Task type definitions: routing and the settings of each type. The library
 * knows no type by itself; applications define theirs (in code or JSON). */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "internal.h"

#define MINUTE_MS (60 * 1000)

static void type_defaults(aipalq__type *t)
{
    t->priority = 5;
    t->max_retries = 3;
    t->backoff_base_ms = 60 * 1000;
    t->backoff_cap_ms = 60 * MINUTE_MS;
    t->backoff_jitter_percent = 10;
    t->soft_limit_ms = 25 * MINUTE_MS;
    t->hard_limit_ms = 30 * MINUTE_MS;
    t->result_ttl_ms = 0; /* PostgreSQL holds every outcome; no copy in Redis */
}

const aipalq__type *aipalq__types_find(const aipalq__types *types, const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < types->count; i++)
        if (strcmp(types->items[i].name, name) == 0)
            return &types->items[i];
    return NULL;
}

void aipalq__types_free(aipalq__types *types)
{
    free(types->items);
    memset(types, 0, sizeof *types);
}

/* Inserts or replaces t in the registry. */
static bool types_put(aipalq__types *types, const aipalq__type *t)
{
    aipalq__type *existing = (aipalq__type *)aipalq__types_find(types, t->name);
    if (existing) {
        *existing = *t;
        return true;
    }
    if (types->count == types->cap) {
        size_t cap = types->cap ? types->cap * 2 : 16;
        aipalq__type *items = realloc(types->items, cap * sizeof *items);
        if (!items)
            return false;
        types->items = items;
        types->cap = cap;
    }
    types->items[types->count++] = *t;
    return true;
}

static aipalq_status check_type(aipalq_client *c, const aipalq__type *t, const char *where)
{
    if (!aipalq__valid_name(t->name))
        return aipalq__fail(c, AIPALQ_EINVAL, "%sbad type name (1-64 of [A-Za-z0-9_.-])", where);
    if (!aipalq__valid_name(t->queue))
        return aipalq__fail(c, AIPALQ_EQUEUE, "%stype %s: bad queue name", where, t->name);
    if (t->priority < 1 || t->priority > 10)
        return aipalq__fail(c, AIPALQ_EPRIORITY, "%stype %s: priority must be 1..10", where,
                            t->name);
    if (t->max_retries < 0 || t->max_retries > 1000)
        return aipalq__fail(c, AIPALQ_EINVAL, "%stype %s: max_retries must be 0..1000", where,
                            t->name);
    if (t->backoff_base_ms < 0 || t->backoff_cap_ms < t->backoff_base_ms ||
        t->backoff_jitter_percent < 0 || t->backoff_jitter_percent > 100)
        return aipalq__fail(c, AIPALQ_EINVAL,
                            "%stype %s: backoff needs 0 <= base <= cap and jitter 0..100", where,
                            t->name);
    if (t->soft_limit_ms < 0 || t->hard_limit_ms < 0 ||
        (t->hard_limit_ms > 0 && t->soft_limit_ms > t->hard_limit_ms))
        return aipalq__fail(c, AIPALQ_EINVAL, "%stype %s: time limits need 0 <= soft <= hard",
                            where, t->name);
    if (t->result_ttl_ms != 0 && t->result_ttl_ms < 1000)
        return aipalq__fail(c, AIPALQ_EINVAL,
                            "%stype %s: result TTL must be 0 (no copy in Redis) or at least 1000 ms",
                            where, t->name);
    return AIPALQ_OK;
}

aipalq_status aipalq_type_define(aipalq_client *c, const char *name, const char *queue)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    aipalq__type t;
    memset(&t, 0, sizeof t);
    type_defaults(&t);
    if (!aipalq__valid_name(name))
        return aipalq__fail(c, AIPALQ_EINVAL, "bad type name (1-64 of [A-Za-z0-9_.-])");
    if (!aipalq__valid_name(queue))
        return aipalq__fail(c, AIPALQ_EQUEUE, "bad queue name for type %s", name);
    strcpy(t.name, name);
    strcpy(t.queue, queue);
    const aipalq__type *old = aipalq__types_find(&c->types, name);
    if (old) { /* redefining moves the queue, keeps the settings */
        t = *old;
        strcpy(t.queue, queue);
    }
    if (!types_put(&c->types, &t))
        return aipalq__fail(c, AIPALQ_ENOMEM, "out of memory defining type %s", name);
    return aipalq__ok(c);
}

/* Applies a change to a copy, checks it, and stores it only if valid. */
static aipalq_status update_type(aipalq_client *c, const char *name, aipalq__type *copy_out,
                                 aipalq__type **slot)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    *slot = (aipalq__type *)aipalq__types_find(&c->types, name);
    if (!*slot)
        return aipalq__fail(c, AIPALQ_EUNKNOWNTYPE, "unknown task type '%s'", name ? name : "");
    *copy_out = **slot;
    return AIPALQ_OK;
}

static aipalq_status commit_type(aipalq_client *c, aipalq__type *slot, const aipalq__type *t)
{
    aipalq_status st = check_type(c, t, "");
    if (st != AIPALQ_OK)
        return st;
    *slot = *t;
    return aipalq__ok(c);
}

aipalq_status aipalq_type_set_priority(aipalq_client *c, const char *name, int priority)
{
    aipalq__type t, *slot;
    aipalq_status st = update_type(c, name, &t, &slot);
    if (st != AIPALQ_OK)
        return st;
    t.priority = priority;
    return commit_type(c, slot, &t);
}

aipalq_status aipalq_type_set_max_retries(aipalq_client *c, const char *name, int max_retries)
{
    aipalq__type t, *slot;
    aipalq_status st = update_type(c, name, &t, &slot);
    if (st != AIPALQ_OK)
        return st;
    t.max_retries = max_retries;
    return commit_type(c, slot, &t);
}

aipalq_status aipalq_type_set_backoff(aipalq_client *c, const char *name, int64_t base_ms,
                                      int64_t cap_ms, int jitter_percent)
{
    aipalq__type t, *slot;
    aipalq_status st = update_type(c, name, &t, &slot);
    if (st != AIPALQ_OK)
        return st;
    t.backoff_base_ms = base_ms;
    t.backoff_cap_ms = cap_ms;
    t.backoff_jitter_percent = jitter_percent;
    return commit_type(c, slot, &t);
}

aipalq_status aipalq_type_set_time_limits(aipalq_client *c, const char *name, int64_t soft_ms,
                                          int64_t hard_ms)
{
    aipalq__type t, *slot;
    aipalq_status st = update_type(c, name, &t, &slot);
    if (st != AIPALQ_OK)
        return st;
    t.soft_limit_ms = soft_ms;
    t.hard_limit_ms = hard_ms;
    return commit_type(c, slot, &t);
}

aipalq_status aipalq_type_set_result_ttl(aipalq_client *c, const char *name, int64_t ttl_ms)
{
    aipalq__type t, *slot;
    aipalq_status st = update_type(c, name, &t, &slot);
    if (st != AIPALQ_OK)
        return st;
    t.result_ttl_ms = ttl_ms;
    return commit_type(c, slot, &t);
}

/* Reads an optional integer member; false (with a message) when present but
 * not an integer. */
static bool json_int(aipalq_client *c, const cJSON *obj, const char *key, size_t idx, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return true;
    /* Range first: converting a double outside int64_t is undefined. */
    if (!cJSON_IsNumber(v) ||
        !(v->valuedouble >= -9007199254740992.0 && v->valuedouble <= 9007199254740992.0) ||
        v->valuedouble != (double)(int64_t)v->valuedouble) {
        aipalq__fail(c, AIPALQ_EINVAL, "types[%zu].%s must be an integer", idx, key);
        return false;
    }
    *out = (int64_t)v->valuedouble;
    return true;
}

static aipalq_status type_from_json(aipalq_client *c, const cJSON *obj, size_t idx, aipalq__type *t)
{
    memset(t, 0, sizeof *t);
    type_defaults(t);
    if (!cJSON_IsObject(obj))
        return aipalq__fail(c, AIPALQ_EINVAL, "types[%zu] must be an object", idx);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(obj, "name");
    const cJSON *queue = cJSON_GetObjectItemCaseSensitive(obj, "queue");
    if (!cJSON_IsString(name) || !aipalq__valid_name(name->valuestring))
        return aipalq__fail(c, AIPALQ_EINVAL, "types[%zu].name is missing or invalid", idx);
    if (!cJSON_IsString(queue) || !aipalq__valid_name(queue->valuestring))
        return aipalq__fail(c, AIPALQ_EQUEUE, "types[%zu].queue is missing or invalid", idx);
    strcpy(t->name, name->valuestring);
    strcpy(t->queue, queue->valuestring);
    int64_t prio = t->priority, retries = t->max_retries, jitter = t->backoff_jitter_percent;
    if (!json_int(c, obj, "priority", idx, &prio) ||
        !json_int(c, obj, "max_retries", idx, &retries) ||
        !json_int(c, obj, "backoff_base_ms", idx, &t->backoff_base_ms) ||
        !json_int(c, obj, "backoff_cap_ms", idx, &t->backoff_cap_ms) ||
        !json_int(c, obj, "backoff_jitter_percent", idx, &jitter) ||
        !json_int(c, obj, "soft_time_limit_ms", idx, &t->soft_limit_ms) ||
        !json_int(c, obj, "hard_time_limit_ms", idx, &t->hard_limit_ms) ||
        !json_int(c, obj, "result_ttl_ms", idx, &t->result_ttl_ms))
        return AIPALQ_EINVAL;
    if (prio < 1 || prio > 10)
        return aipalq__fail(c, AIPALQ_EPRIORITY, "types[%zu].priority must be 1..10", idx);
    if (retries < 0 || retries > 1000 || jitter < 0 || jitter > 100)
        return aipalq__fail(c, AIPALQ_EINVAL,
                            "types[%zu]: max_retries must be 0..1000 and jitter 0..100", idx);
    t->priority = (int)prio;
    t->max_retries = (int)retries;
    t->backoff_jitter_percent = (int)jitter;
    char where[48];
    snprintf(where, sizeof where, "types[%zu]: ", idx);
    return check_type(c, t, where);
}

aipalq_status aipalq_types_define_json(aipalq_client *c, const char *json)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    cJSON *doc = json ? cJSON_Parse(json) : NULL;
    if (!doc)
        return aipalq__fail(c, AIPALQ_EBADJSON, "type definitions are not valid JSON");
    if (!cJSON_IsArray(doc)) {
        cJSON_Delete(doc);
        return aipalq__fail(c, AIPALQ_EINVAL, "type definitions must be a JSON array");
    }
    aipalq__types staged = {0};
    for (size_t i = 0; i < c->types.count; i++)
        if (!types_put(&staged, &c->types.items[i]))
            goto oom;
    size_t idx = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, doc)
    {
        aipalq__type t;
        aipalq_status st = type_from_json(c, item, idx++, &t);
        if (st != AIPALQ_OK) {
            aipalq__types_free(&staged);
            cJSON_Delete(doc);
            return st;
        }
        if (!types_put(&staged, &t))
            goto oom;
    }
    cJSON_Delete(doc);
    aipalq__types_free(&c->types);
    c->types = staged;
    return aipalq__ok(c);
oom:
    aipalq__types_free(&staged);
    cJSON_Delete(doc);
    return aipalq__fail(c, AIPALQ_ENOMEM, "out of memory defining types");
}

char *aipalq_types_json(aipalq_client *c)
{
    if (!aipalq__client_ok(c))
        return NULL;
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < c->types.count; i++) {
        const aipalq__type *t = &c->types.items[i];
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddStringToObject(o, "queue", t->queue);
        cJSON_AddNumberToObject(o, "priority", t->priority);
        cJSON_AddNumberToObject(o, "max_retries", t->max_retries);
        cJSON_AddNumberToObject(o, "backoff_base_ms", (double)t->backoff_base_ms);
        cJSON_AddNumberToObject(o, "backoff_cap_ms", (double)t->backoff_cap_ms);
        cJSON_AddNumberToObject(o, "backoff_jitter_percent", t->backoff_jitter_percent);
        cJSON_AddNumberToObject(o, "soft_time_limit_ms", (double)t->soft_limit_ms);
        cJSON_AddNumberToObject(o, "hard_time_limit_ms", (double)t->hard_limit_ms);
        cJSON_AddNumberToObject(o, "result_ttl_ms", (double)t->result_ttl_ms);
    }
    char *out = arr ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    return out;
}
