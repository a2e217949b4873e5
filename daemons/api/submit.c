/* Reading submissions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fields.h"
#include "submit.h"

#define MAX_USER_ID_BYTES 200
#define MAX_KEY_BYTES     200
#define MAX_DELAY_MS      (366LL * 24 * 3600 * 1000)

void submission_clear(submission *s)
{
    free(s->params);
    aipalq_opts_free(s->opts);
    memset(s, 0, sizeof *s);
}

/* Validates params against the type; stores the normalized text. */
static bool take_params(submission *s, const cJSON *params, const char *prefix, cJSON *errors,
                        cJSON **normalized_out)
{
    cJSON *norm = catalog_validate(s->type, params, prefix, errors);
    if (!norm)
        return false;
    s->params = cJSON_PrintUnformatted(norm);
    if (!s->params || strlen(s->params) > AIPALQ_MAX_PARAMS_BYTES) {
        char field[300];
        snprintf(field, sizeof field, "%.*s", (int)strlen(prefix) - 1, prefix);
        catalog_add_error(errors, field, "must be at most 1048576 bytes of JSON");
        cJSON_Delete(norm);
        return false;
    }
    *normalized_out = norm;
    return true;
}

/* The record's user: the explicit one, else params.user_id. */
static bool set_user(submission *s, const char *explicit_user, const cJSON *params,
                     const char *params_prefix, cJSON *errors)
{
    const char *user = explicit_user;
    const cJSON *pu = cJSON_GetObjectItemCaseSensitive(params, "user_id");
    if (!user && cJSON_IsString(pu))
        user = pu->valuestring;
    if (user && strlen(user) > MAX_USER_ID_BYTES) {
        char field[300 + sizeof "user_id"]; /* params_prefix has at most 299 bytes */
        snprintf(field, sizeof field, "%suser_id", explicit_user ? "" : params_prefix);
        catalog_add_error(errors, field, "must be at most 200 bytes of UTF-8");
        return false;
    }
    return !user || aipalq_opts_set_user_id(s->opts, user) == AIPALQ_OK;
}

/* type / task_type: exactly one known type. */
static const catalog_type *parse_type(const cJSON *item, const char *prefix, cJSON *errors)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(item, "type");
    const cJSON *alias = cJSON_GetObjectItemCaseSensitive(item, "task_type");
    char field[300];
    snprintf(field, sizeof field, "%stype", prefix);
    if (t && alias) {
        catalog_add_error(errors, field, "give type or task_type, not both");
        return NULL;
    }
    t = t ? t : alias;
    if (!t) {
        catalog_add_error(errors, field, "is required");
        return NULL;
    }
    const catalog_type *type = cJSON_IsString(t) ? catalog_find(t->valuestring) : NULL;
    if (!type)
        catalog_add_error(errors, field, "unknown task type; GET /api/tasks/types lists them");
    return type;
}

static bool parse_queue(submission *s, const cJSON *item, const char *prefix, cJSON *errors)
{
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(item, "queue");
    if (!q || cJSON_IsNull(q))
        return true;
    for (size_t i = 0; cJSON_IsString(q) && i < catalog_queue_count(); i++)
        if (strcmp(catalog_queue_at(i), q->valuestring) == 0) {
            s->queue = catalog_queue_at(i);
            return aipalq_opts_set_queue(s->opts, s->queue) == AIPALQ_OK;
        }
    char field[300], msg[300];
    size_t used = (size_t)snprintf(msg, sizeof msg, "must be one of:");
    for (size_t i = 0; i < catalog_queue_count() && used < sizeof msg; i++)
        used += (size_t)snprintf(msg + used, sizeof msg - used, "%s %s", i ? "," : "",
                                 catalog_queue_at(i));
    snprintf(field, sizeof field, "%squeue", prefix);
    catalog_add_error(errors, field, msg);
    return false;
}

/* priority, delay_ms, max_retries, idempotency_key. */
static bool parse_options(submission *s, const cJSON *item, const char *prefix,
                          const char *idem_default, cJSON *errors)
{
    int64_t prio = 0, delay = 0, retries = 0;
    bool has_prio, has_delay, has_retries;
    const char *key = NULL;
    int max_priority = s->type ? s->type->max_priority : 10;
    bool ok = fields_int(item, "priority", 1, max_priority, prefix, errors, &prio, &has_prio);
    ok &= fields_int(item, "delay_ms", 0, MAX_DELAY_MS, prefix, errors, &delay, &has_delay);
    ok &= fields_int(item, "max_retries", 0, 1000, prefix, errors, &retries, &has_retries);
    ok &= fields_string(item, "idempotency_key", MAX_KEY_BYTES, prefix, errors, &key);
    if (!ok)
        return false;
    s->priority = has_prio ? (int)prio : s->type ? s->type->priority : 5;
    s->delayed = has_delay && delay > 0;
    /* The Idempotency-Key header is not checked like the body: the library
     * refuses one that is not UTF-8, and the client must be told why. */
    bool from_header = !key && idem_default;
    key = key ? key : idem_default;
    if (key && aipalq_opts_set_idempotency_key(s->opts, key) != AIPALQ_OK) {
        char field[300];
        snprintf(field, sizeof field, "%s%s", from_header ? "" : prefix,
                 from_header ? "Idempotency-Key" : "idempotency_key");
        catalog_add_error(errors, field, "must be 1 to 200 bytes of UTF-8");
        return false;
    }
    return (!has_prio || aipalq_opts_set_priority(s->opts, (int)prio) == AIPALQ_OK) &&
           (!s->delayed || aipalq_opts_set_delay_ms(s->opts, delay) == AIPALQ_OK) &&
           (!has_retries || aipalq_opts_set_max_retries(s->opts, (int)retries) == AIPALQ_OK);
}

static const char *const generic_fields[] = {
    "type",     "task_type", "params",      "parameters",      "priority", "queue",
    "delay_ms", "user_id",   "max_retries", "idempotency_key", NULL,
};

/* params / parameters: at most one of them. */
static const cJSON *pick_params(const cJSON *item, const char *prefix, char *pprefix, size_t plen,
                                cJSON *errors, bool *ok)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(item, "params");
    const cJSON *alias = cJSON_GetObjectItemCaseSensitive(item, "parameters");
    snprintf(pprefix, plen, "%s%s.", prefix, p || !alias ? "params" : "parameters");
    if (p && alias) {
        char field[300];
        snprintf(field, sizeof field, "%sparams", prefix);
        catalog_add_error(errors, field, "give params or parameters, not both");
        *ok = false;
    }
    return p ? p : alias;
}

bool submission_parse(const cJSON *item, const char *prefix, const char *idem_default,
                      submission *s, cJSON *errors)
{
    memset(s, 0, sizeof *s);
    if (!cJSON_IsObject(item)) {
        char field[300];
        snprintf(field, sizeof field, "%.*s", prefix[0] ? (int)strlen(prefix) - 1 : 4,
                 prefix[0] ? prefix : "body");
        catalog_add_error(errors, field, "must be an object");
        return false;
    }
    bool ok = fields_only(item, generic_fields, prefix, errors);
    s->type = parse_type(item, prefix, errors);
    s->opts = aipalq_opts_new();
    if (!s->opts)
        return false;
    s->queue = s->type ? s->type->queue : NULL;
    char pprefix[300];
    const cJSON *params = pick_params(item, prefix, pprefix, sizeof pprefix, errors, &ok);
    const char *user = NULL;
    ok &= fields_string(item, "user_id", MAX_USER_ID_BYTES, prefix, errors, &user);
    ok &= parse_queue(s, item, prefix, errors);
    ok &= parse_options(s, item, prefix, idem_default, errors);
    if (!s->type) /* the envelope was still checked: all errors at once */
        return false;
    cJSON *norm = NULL;
    ok &= take_params(s, params, pprefix, errors, &norm);
    ok = ok && set_user(s, user, norm, pprefix, errors);
    cJSON_Delete(norm);
    return ok;
}

static const char *const seed_fields[] = {"task_type", "user_id", "priority", "parameters", NULL};

/* The seed copies the request's user_id into the params when the type takes
 * one and the params do not name it. */
static cJSON *seed_params(const cJSON *body, const catalog_type *type, const char *user)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "parameters");
    cJSON *params = cJSON_IsObject(p) ? cJSON_Duplicate(p, 1) : NULL;
    if (!params)
        return p && !cJSON_IsNull(p) ? cJSON_Duplicate(p, 1) : cJSON_CreateObject();
    const cJSON *pu = cJSON_GetObjectItemCaseSensitive(params, "user_id");
    bool takes_user = false;
    for (size_t i = 0; i < type->nfields; i++)
        takes_user |= strcmp(type->fields[i].name, "user_id") == 0;
    if (user && takes_user && (!pu || cJSON_IsNull(pu))) {
        cJSON_DeleteItemFromObjectCaseSensitive(params, "user_id");
        cJSON_AddStringToObject(params, "user_id", user);
    }
    return params;
}

bool submission_parse_seed(const cJSON *body, const catalog_type *type, submission *s,
                           cJSON *errors)
{
    memset(s, 0, sizeof *s);
    if (!cJSON_IsObject(body)) {
        catalog_add_error(errors, "body", "must be a JSON object (a TaskSubmitRequest)");
        return false;
    }
    s->type = type;
    s->queue = type->queue;
    s->opts = aipalq_opts_new();
    if (!s->opts)
        return false;
    bool ok = fields_only(body, seed_fields, "", errors);
    const cJSON *tt = cJSON_GetObjectItemCaseSensitive(body, "task_type");
    if (!cJSON_IsString(tt) || !tt->valuestring[0]) {
        catalog_add_error(errors, "task_type", tt ? "must be a non-empty string" : "is required");
        ok = false;
    }
    const char *user = NULL;
    int64_t prio = 5;
    bool has_prio;
    ok &= fields_string(body, "user_id", MAX_USER_ID_BYTES, "", errors, &user);
    ok &= fields_int(body, "priority", 1, type->max_priority, "", errors, &prio, &has_prio);
    s->priority = has_prio ? (int)prio : 5;
    cJSON *params = seed_params(body, type, user);
    cJSON *norm = NULL;
    ok &= take_params(s, params, "parameters.", errors, &norm);
    /* as the seed did: the params' user_id first, then the request's */
    const cJSON *pu = cJSON_GetObjectItemCaseSensitive(norm, "user_id");
    ok = ok && set_user(s, cJSON_IsString(pu) ? NULL : user, norm, "parameters.", errors) &&
         aipalq_opts_set_priority(s->opts, s->priority) == AIPALQ_OK;
    cJSON_Delete(params);
    cJSON_Delete(norm);
    return ok;
}
