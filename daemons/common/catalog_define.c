/* Defining the catalog's types on a client. */
#include <stdlib.h>

#include "catalog.h"

static cJSON *definition(const catalog_type *t)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
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
    return o;
}

char *catalog_types_define_json(void)
{
    cJSON *arr = cJSON_CreateArray();
    if (!arr)
        return NULL;
    for (size_t i = 0; i < catalog_count(); i++) {
        cJSON *d = definition(catalog_at(i));
        if (!d) {
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddItemToArray(arr, d);
    }
    char *text = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    return text;
}

aipalq_status catalog_define_all(aipalq_client *client)
{
    char *json = catalog_types_define_json();
    if (!json)
        return AIPALQ_ENOMEM;
    aipalq_status st = aipalq_types_define_json(client, json);
    free(json);
    return st;
}
