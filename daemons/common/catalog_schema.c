/* The catalog as JSON: JSON Schema of each type's params (OpenAPI 3.0
 * dialect), each type's settings, and the definitions the library takes. */
#include <stdlib.h>

#include "catalog.h"

static void add_enum(cJSON *schema, const char *const *values)
{
    cJSON *e = cJSON_AddArrayToObject(schema, "enum");
    for (; e && *values; values++)
        cJSON_AddItemToArray(e, cJSON_CreateString(*values));
}

static void add_lengths(cJSON *s, const char *min_key, const char *max_key, int lo, int hi)
{
    if (lo > 0)
        cJSON_AddNumberToObject(s, min_key, lo);
    if (hi > 0)
        cJSON_AddNumberToObject(s, max_key, hi);
}

static cJSON *string_schema(const catalog_field *f)
{
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "type", "string");
    if (f->enum_values)
        add_enum(s, f->enum_values);
    else
        add_lengths(s, "minLength", "maxLength", f->min_len, f->max_len);
    return s;
}

static cJSON *fields_schema(const catalog_field *fields, size_t n);

static void add_kind(cJSON *s, const catalog_field *f)
{
    static const char *const names[] = {
        [CATALOG_STRING] = "string",      [CATALOG_INTEGER] = "integer",
        [CATALOG_NUMBER] = "number",      [CATALOG_BOOLEAN] = "boolean",
        [CATALOG_STRING_ARRAY] = "array", [CATALOG_OBJECT] = "object",
        [CATALOG_ENUM] = "string",
    };
    cJSON_AddStringToObject(s, "type", names[f->kind]);
    switch (f->kind) {
    case CATALOG_INTEGER:
    case CATALOG_NUMBER:
        if (f->has_min)
            cJSON_AddNumberToObject(s, "minimum", f->min);
        if (f->has_max)
            cJSON_AddNumberToObject(s, "maximum", f->max);
        break;
    case CATALOG_STRING:
        add_lengths(s, "minLength", "maxLength", f->min_len, f->max_len);
        break;
    case CATALOG_ENUM:
        add_enum(s, f->enum_values);
        break;
    case CATALOG_STRING_ARRAY:
        cJSON_AddItemToObject(s, "items", string_schema(f));
        add_lengths(s, "minItems", "maxItems", f->min_items, f->max_items);
        break;
    case CATALOG_OBJECT:
        if (f->fields) {
            cJSON *sub = fields_schema(f->fields, f->nfields);
            cJSON_AddItemToObject(s, "properties", cJSON_DetachItemFromObject(sub, "properties"));
            cJSON_AddBoolToObject(s, "additionalProperties", 0);
            cJSON_Delete(sub);
        } else {
            cJSON_AddBoolToObject(s, "additionalProperties", 1);
        }
        break;
    case CATALOG_BOOLEAN:
        break;
    }
}

static cJSON *field_schema(const catalog_field *f)
{
    cJSON *s = cJSON_CreateObject();
    if (!s)
        return NULL;
    add_kind(s, f);
    if (f->nullable)
        cJSON_AddBoolToObject(s, "nullable", 1);
    if (f->default_json)
        cJSON_AddItemToObject(s, "default", cJSON_Parse(f->default_json));
    if (f->description)
        cJSON_AddStringToObject(s, "description", f->description);
    return s;
}

static cJSON *fields_schema(const catalog_field *fields, size_t n)
{
    cJSON *s = cJSON_CreateObject();
    if (!s)
        return NULL;
    cJSON_AddStringToObject(s, "type", "object");
    cJSON *props = cJSON_AddObjectToObject(s, "properties");
    cJSON *required = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON_AddItemToObject(props, fields[i].name, field_schema(&fields[i]));
        if (fields[i].required)
            cJSON_AddItemToArray(required, cJSON_CreateString(fields[i].name));
    }
    if (cJSON_GetArraySize(required) > 0)
        cJSON_AddItemToObject(s, "required", required);
    else
        cJSON_Delete(required);
    cJSON_AddBoolToObject(s, "additionalProperties", 0);
    return s;
}

cJSON *catalog_schema_json(const catalog_type *t)
{
    if (!t)
        return NULL;
    cJSON *s = fields_schema(t->fields, t->nfields);
    if (!s)
        return NULL;
    cJSON_AddStringToObject(s, "title", t->name);
    cJSON_AddStringToObject(s, "description", t->description);
    cJSON_AddItemToObject(s, "example", cJSON_Parse(t->example_json));
    return s;
}

cJSON *catalog_type_json(const catalog_type *t)
{
    cJSON *o = t ? cJSON_CreateObject() : NULL;
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "name", t->name);
    cJSON_AddStringToObject(o, "queue", t->queue);
    cJSON_AddStringToObject(o, "category", t->category);
    cJSON_AddStringToObject(o, "description", t->description);
    cJSON_AddNumberToObject(o, "priority", t->priority);
    cJSON_AddNumberToObject(o, "max_priority", t->max_priority);
    cJSON_AddNumberToObject(o, "max_retries", t->max_retries);
    cJSON_AddNumberToObject(o, "backoff_base_ms", (double)t->backoff_base_ms);
    cJSON_AddNumberToObject(o, "backoff_cap_ms", (double)t->backoff_cap_ms);
    cJSON_AddNumberToObject(o, "soft_time_limit_ms", (double)t->soft_limit_ms);
    cJSON_AddNumberToObject(o, "hard_time_limit_ms", (double)t->hard_limit_ms);
    cJSON_AddNumberToObject(o, "result_ttl_ms", (double)t->result_ttl_ms);
    cJSON_AddItemToObject(o, "params_schema", catalog_schema_json(t));
    cJSON_AddItemToObject(o, "example", cJSON_Parse(t->example_json));
    return o;
}
