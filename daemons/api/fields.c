/* Envelope and query field checks. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "catalog.h"
#include "fields.h"
#include "util.h"

static void path_of(char *buf, size_t len, const char *prefix, const char *name)
{
    snprintf(buf, len, "%s%s", prefix ? prefix : "", name);
}

bool fields_only(const cJSON *obj, const char *const *allowed, const char *prefix, cJSON *errors)
{
    bool ok = true;
    for (const cJSON *c = obj ? obj->child : NULL; c; c = c->next) {
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(*a, c->string) == 0;
        if (!known) {
            char path[300];
            path_of(path, sizeof path, prefix, c->string);
            catalog_add_error(errors, path, "unknown field");
            ok = false;
        }
    }
    return ok;
}

bool fields_int(const cJSON *obj, const char *name, int64_t lo, int64_t hi, const char *prefix,
                cJSON *errors, int64_t *out, bool *present)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    *present = v && !cJSON_IsNull(v);
    if (!*present)
        return true;
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (d == floor(d) && d >= (double)lo && d <= (double)hi) {
        *out = (int64_t)d;
        return true;
    }
    char path[300], msg[128];
    path_of(path, sizeof path, prefix, name);
    snprintf(msg, sizeof msg, "must be an integer between %lld and %lld", (long long)lo,
             (long long)hi);
    catalog_add_error(errors, path, msg);
    return false;
}

bool fields_string(const cJSON *obj, const char *name, size_t max_bytes, const char *prefix,
                   cJSON *errors, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return true;
    size_t len = cJSON_IsString(v) && v->valuestring ? strlen(v->valuestring) : 0;
    if (len >= 1 && len <= max_bytes) {
        *out = v->valuestring;
        return true;
    }
    char path[300], msg[128];
    path_of(path, sizeof path, prefix, name);
    snprintf(msg, sizeof msg, "must be a string of 1 to %zu bytes", max_bytes);
    catalog_add_error(errors, path, msg);
    return false;
}

bool fields_query_int(const char *value, const char *name, int64_t lo, int64_t hi, int64_t fallback,
                      cJSON *errors, int64_t *out)
{
    *out = fallback;
    if (!value)
        return true;
    int64_t v;
    if (util_parse_i64(value, &v) && v >= lo && v <= hi) {
        *out = v;
        return true;
    }
    char msg[128];
    snprintf(msg, sizeof msg, "must be an integer between %lld and %lld", (long long)lo,
             (long long)hi);
    catalog_add_error(errors, name, msg);
    return false;
}

bool fields_valid_name(const char *s)
{
    size_t len = s ? strlen(s) : 0;
    if (len < 1 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
            return false;
    return true;
}
