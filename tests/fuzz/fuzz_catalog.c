/* Fuzz target: task parameter validation of the catalog (daemons/common:
 * catalog_validate). Byte 0 picks the task type, byte 1 the error-path
 * prefix; the rest is the params document, which (as in the API daemon)
 * must be valid UTF-8 and is parsed by cJSON. Checks, beyond memory safety:
 * a result exactly when no error was reported, every error well formed,
 * validation idempotent on its own output, and the normalized params that
 * the API would enqueue accepted by the library's params check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "internal.h"
#include "util.h" /* daemons/api/util.h: util_utf8_valid */

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_catalog: " __VA_ARGS__);                                             \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

static void check_errors(const cJSON *errors, int before, bool want_more, const char *type)
{
    int n = cJSON_GetArraySize(errors);
    if (want_more ? n <= before : n != before)
        FAIL("%s: %d errors after %d, result %s", type, n, before,
             want_more ? "NULL" : "given");
    for (const cJSON *e = errors->child; e; e = e->next) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(e, "field");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "error");
        if (!cJSON_IsString(f) || !cJSON_IsString(m) || !m->valuestring[0])
            FAIL("%s: malformed error entry", type);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool once;
    if (!once) {
        /* The schema renderers, once per type (they take no input). */
        for (size_t i = 0; i < catalog_count(); i++) {
            cJSON_Delete(catalog_schema_json(catalog_at(i)));
            cJSON_Delete(catalog_type_json(catalog_at(i)));
        }
        once = true;
    }
    if (size < 2 || catalog_count() == 0)
        return 0;
    const catalog_type *type = catalog_at(data[0] % catalog_count());
    static char long_prefix[600];
    if (!long_prefix[0]) {
        memset(long_prefix, 'p', sizeof long_prefix - 2);
        long_prefix[sizeof long_prefix - 2] = '.';
    }
    const char *prefixes[] = {NULL, "", "params.", "items[7].params.", long_prefix};
    const char *prefix = prefixes[data[1] % 5];
    data += 2, size -= 2;
    if (!util_utf8_valid((const char *)data, size))
        return 0; /* the API refuses such a body before parsing it */
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    cJSON *params = cJSON_ParseWithLength(text, size);
    free(text);
    if (!params && size > 0)
        return 0;

    cJSON *errors = cJSON_CreateArray();
    cJSON *norm = catalog_validate(type, params, prefix, errors);
    check_errors(errors, 0, norm == NULL, type->name);
    if (norm) {
        /* The output is valid input, and normalizing it changes nothing. */
        cJSON *errors2 = cJSON_CreateArray();
        cJSON *again = catalog_validate(type, norm, prefix, errors2);
        if (!again)
            FAIL("%s: normalized params do not validate: %s", type->name,
                 cJSON_PrintUnformatted(errors2));
        char *a = cJSON_PrintUnformatted(norm), *b = cJSON_PrintUnformatted(again);
        if (!a || !b || strcmp(a, b) != 0)
            FAIL("%s: normalization not idempotent: %s vs %s", type->name, a, b);
        /* What the API enqueues must pass the library's check. */
        char err[256];
        aipalq_status st = aipalq__params_check(a, err, sizeof err);
        if (st != AIPALQ_OK && st != AIPALQ_ETOOBIG)
            FAIL("%s: normalized params refused by the library (%s): %s", type->name, err, a);
        cJSON_free(a);
        cJSON_free(b);
        cJSON_Delete(again);
        cJSON_Delete(errors2);
    }
    cJSON_Delete(norm);
    cJSON_Delete(errors);
    cJSON_Delete(params);
    return 0;
}
