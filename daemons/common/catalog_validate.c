/* Checking params against a type's schema: field-level errors, defaults
 * applied, output in schema order. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"

#define PATH_SIZE 512

/* A body can name thousands of bad fields; the first ones are enough to fix
 * it, and the error response stays small. */
#define MAX_ERRORS 100

void catalog_add_error(cJSON *errors, const char *field, const char *error)
{
    int n = cJSON_GetArraySize(errors);
    if (n > MAX_ERRORS)
        return;
    if (n == MAX_ERRORS) {
        field = "";
        error = "too many errors; only the first 100 are listed";
    }
    cJSON *e = cJSON_CreateObject();
    if (!e)
        return;
    cJSON_AddStringToObject(e, "field", field);
    cJSON_AddStringToObject(e, "error", error);
    cJSON_AddItemToArray(errors, e);
}

static void add_errorf(cJSON *errors, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_errorf(cJSON *errors, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    catalog_add_error(errors, field, msg);
}

/* Numbers as people write them: 8760, 0.25, 1e-07. */
static void fmt_num(char *buf, size_t len, double v)
{
    if (v == floor(v) && fabs(v) < 1e15)
        snprintf(buf, len, "%.0f", v);
    else
        snprintf(buf, len, "%g", v);
}

static void describe_bounds(const catalog_field *f, char *buf, size_t len)
{
    char lo[32], hi[32];
    fmt_num(lo, sizeof lo, f->min);
    fmt_num(hi, sizeof hi, f->max);
    if (f->has_min && f->has_max)
        snprintf(buf, len, " between %s and %s", lo, hi);
    else if (f->has_min)
        snprintf(buf, len, " >= %s", lo);
    else if (f->has_max)
        snprintf(buf, len, " <= %s", hi);
    else
        buf[0] = '\0';
}

static void describe_length(int min_len, int max_len, const char *unit, char *buf, size_t len)
{
    if (max_len > 0 && min_len > 0)
        snprintf(buf, len, " of %d to %d %s", min_len, max_len, unit);
    else if (max_len > 0)
        snprintf(buf, len, " of at most %d %s", max_len, unit);
    else if (min_len > 0)
        snprintf(buf, len, " of at least %d %s", min_len, unit);
    else
        buf[0] = '\0';
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static bool in_bounds(const catalog_field *f, double v)
{
    return (!f->has_min || v >= f->min) && (!f->has_max || v <= f->max);
}

static cJSON *check_number(const catalog_field *f, const cJSON *v, const char *path, cJSON *errors)
{
    bool integer = f->kind == CATALOG_INTEGER;
    if (cJSON_IsNumber(v) && isfinite(v->valuedouble) && in_bounds(f, v->valuedouble) &&
        (!integer || (v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 9e15)))
        return cJSON_CreateNumber(v->valuedouble);
    char bounds[96];
    describe_bounds(f, bounds, sizeof bounds);
    add_errorf(errors, path, "must be %s%s", integer ? "an integer" : "a number", bounds);
    return NULL;
}

static bool string_ok(const cJSON *v, int min_len, int max_len)
{
    if (!cJSON_IsString(v) || !v->valuestring)
        return false;
    size_t n = utf8_chars(v->valuestring);
    return n >= (size_t)min_len && (max_len <= 0 || n <= (size_t)max_len);
}

static cJSON *check_string(const catalog_field *f, const cJSON *v, const char *path, cJSON *errors)
{
    if (string_ok(v, f->min_len, f->max_len))
        return cJSON_CreateString(v->valuestring);
    char len[96];
    describe_length(f->min_len, f->max_len, "characters", len, sizeof len);
    add_errorf(errors, path, "must be a string%s", len);
    return NULL;
}

static bool enum_ok(const char *const *values, const cJSON *v)
{
    if (!cJSON_IsString(v) || !v->valuestring)
        return false;
    for (; *values; values++)
        if (strcmp(*values, v->valuestring) == 0)
            return true;
    return false;
}

static void enum_error(const char *const *values, const char *path, cJSON *errors)
{
    char list[400] = "";
    size_t used = 0;
    for (; *values && used < sizeof list; values++)
        used +=
            (size_t)snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", *values);
    add_errorf(errors, path, "must be one of: %s", list);
}

static cJSON *check_enum(const catalog_field *f, const cJSON *v, const char *path, cJSON *errors)
{
    if (enum_ok(f->enum_values, v))
        return cJSON_CreateString(v->valuestring);
    enum_error(f->enum_values, path, errors);
    return NULL;
}

static cJSON *check_boolean(const cJSON *v, const char *path, cJSON *errors)
{
    if (cJSON_IsBool(v))
        return cJSON_CreateBool(cJSON_IsTrue(v));
    catalog_add_error(errors, path, "must be true or false");
    return NULL;
}

/* One item of a string array; appends a copy to out. */
static bool check_item(const catalog_field *f, const cJSON *item, const char *path, int i,
                       cJSON *out, cJSON *errors)
{
    char ipath[PATH_SIZE];
    snprintf(ipath, sizeof ipath, "%.480s[%d]", path, i);
    if (f->enum_values ? !enum_ok(f->enum_values, item)
                       : !string_ok(item, f->min_len, f->max_len)) {
        if (f->enum_values) {
            enum_error(f->enum_values, ipath, errors);
        } else {
            char len[96];
            describe_length(f->min_len, f->max_len, "characters", len, sizeof len);
            add_errorf(errors, ipath, "must be a string%s", len);
        }
        return false;
    }
    cJSON_AddItemToArray(out, cJSON_CreateString(item->valuestring));
    return true;
}

static cJSON *check_array(const catalog_field *f, const cJSON *v, const char *path, cJSON *errors)
{
    int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (n < f->min_items || (f->max_items > 0 && n > f->max_items)) {
        char items[96];
        describe_length(f->min_items, f->max_items, "strings", items, sizeof items);
        add_errorf(errors, path, "must be an array%s", items[0] ? items : " of strings");
        return NULL;
    }
    cJSON *out = cJSON_CreateArray();
    bool ok = out != NULL;
    int i = 0;
    for (const cJSON *item = v->child; item && out; item = item->next, i++)
        ok &= check_item(f, item, path, i, out, errors);
    if (!ok) {
        cJSON_Delete(out);
        return NULL;
    }
    return out;
}

static cJSON *validate_fields(const catalog_field *fields, size_t n, const cJSON *obj,
                              const char *prefix, cJSON *errors);

static cJSON *check_object(const catalog_field *f, const cJSON *v, const char *path, cJSON *errors)
{
    if (!cJSON_IsObject(v)) {
        catalog_add_error(errors, path, "must be an object");
        return NULL;
    }
    if (!f->fields)
        return cJSON_Duplicate(v, 1);
    char prefix[PATH_SIZE];
    snprintf(prefix, sizeof prefix, "%.480s.", path);
    return validate_fields(f->fields, f->nfields, v, prefix, errors);
}

static cJSON *check_value(const catalog_field *f, const cJSON *v, const char *path, cJSON *errors)
{
    switch (f->kind) {
    case CATALOG_INTEGER:
    case CATALOG_NUMBER:
        return check_number(f, v, path, errors);
    case CATALOG_STRING:
        return check_string(f, v, path, errors);
    case CATALOG_ENUM:
        return check_enum(f, v, path, errors);
    case CATALOG_BOOLEAN:
        return check_boolean(v, path, errors);
    case CATALOG_STRING_ARRAY:
        return check_array(f, v, path, errors);
    case CATALOG_OBJECT:
        return check_object(f, v, path, errors);
    }
    return NULL;
}

static const catalog_field *field_named(const catalog_field *fields, size_t n, const char *name)
{
    for (size_t i = 0; name && i < n; i++)
        if (strcmp(fields[i].name, name) == 0)
            return &fields[i];
    return NULL;
}

/* Unknown and repeated keys are errors. Linear in the number of keys: a scan
 * back over the earlier keys for each repeat made a 1 MB body of unknown keys
 * followed by repeats of a known one cost minutes of CPU. */
static bool check_keys(const catalog_field *fields, size_t n, const cJSON *obj, const char *prefix,
                       cJSON *errors)
{
    bool ok = true;
    unsigned char *seen = calloc(n ? n : 1, 1); /* by field index */
    if (!seen) {
        catalog_add_error(errors, "", "out of memory");
        return false;
    }
    for (const cJSON *c = obj->child; c; c = c->next) {
        char path[PATH_SIZE];
        snprintf(path, sizeof path, "%s%s", prefix, c->string ? c->string : "");
        const catalog_field *f = field_named(fields, n, c->string);
        if (!f) {
            catalog_add_error(errors, path, "unknown field");
            ok = false;
            continue;
        }
        if (seen[f - fields]) {
            catalog_add_error(errors, path, "duplicate field");
            ok = false;
        }
        seen[f - fields] = 1;
    }
    free(seen);
    return ok;
}

/* Validates one field of obj into out; false on error. */
static bool validate_field(const catalog_field *f, const cJSON *obj, const char *prefix, cJSON *out,
                           cJSON *errors)
{
    char path[PATH_SIZE];
    snprintf(path, sizeof path, "%s%s", prefix, f->name);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, f->name);
    if (cJSON_IsNull(v) && !f->nullable && !f->required) {
        catalog_add_error(errors, path, "must not be null");
        return false;
    }
    if (!v || cJSON_IsNull(v)) {
        if (f->required) {
            catalog_add_error(errors, path, "is required");
            return false;
        }
        cJSON *def = f->default_json ? cJSON_Parse(f->default_json) : NULL;
        if (def)
            cJSON_AddItemToObject(out, f->name, def);
        return true;
    }
    cJSON *copy = check_value(f, v, path, errors);
    if (!copy)
        return false;
    cJSON_AddItemToObject(out, f->name, copy);
    return true;
}

static cJSON *validate_fields(const catalog_field *fields, size_t n, const cJSON *obj,
                              const char *prefix, cJSON *errors)
{
    bool ok = check_keys(fields, n, obj, prefix, errors);
    cJSON *out = cJSON_CreateObject();
    if (!out) {
        catalog_add_error(errors, "", "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        ok &= validate_field(&fields[i], obj, prefix, out, errors);
    if (!ok) {
        cJSON_Delete(out);
        return NULL;
    }
    return out;
}

cJSON *catalog_validate(const catalog_type *type, const cJSON *params, const char *prefix,
                        cJSON *errors_out)
{
    if (!type || !errors_out)
        return NULL;
    prefix = prefix ? prefix : "";
    cJSON *empty = NULL;
    if (!params || cJSON_IsNull(params))
        params = empty = cJSON_CreateObject();
    if (!cJSON_IsObject(params)) {
        char path[PATH_SIZE];
        size_t len = strlen(prefix);
        snprintf(path, sizeof path, "%.*s", (int)(len && prefix[len - 1] == '.' ? len - 1 : len),
                 prefix);
        catalog_add_error(errors_out, path, "must be an object");
        return NULL;
    }
    cJSON *out = validate_fields(type->fields, type->nfields, params, prefix, errors_out);
    cJSON_Delete(empty);
    return out;
}
