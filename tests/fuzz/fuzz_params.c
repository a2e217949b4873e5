/* Fuzz target: the params check of every enqueue (aipalq__params_check, and
 * the UTF-8 scan under it), against an independent RFC 8259 + jsonb oracle
 * (json_oracle.h) and the API daemon's own UTF-8 check (daemons/api/util.c),
 * which must agree byte for byte with the library's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json_oracle.h"
#include "util.h" /* daemons/api/util.h: util_utf8_valid */

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_params: " __VA_ARGS__);                                              \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    size_t n = strlen(text); /* C strings end at the first NUL */

    /* The two UTF-8 checks of the project must agree, on the raw bytes too. */
    bool lib_utf8 = aipalq__utf8_invalid_at(data, size) < 0;
    if (lib_utf8 != util_utf8_valid((const char *)data, size))
        FAIL("UTF-8 checks disagree: lib %d, api %d", lib_utf8, !lib_utf8);
    if (lib_utf8 != oracle_utf8_ok(data, size))
        FAIL("UTF-8 check disagrees with the oracle (lib says %d)", lib_utf8);
    long at = aipalq__utf8_invalid_at(data, size);
    if (at >= 0 && (size_t)at >= size)
        FAIL("UTF-8 offset %ld out of range %zu", at, size);

    char err[256];
    memset(err, 'x', sizeof err);
    aipalq_status st = aipalq__params_check(text, err, sizeof err);
    if (st != AIPALQ_OK && memchr(err, '\0', sizeof err) == NULL)
        FAIL("error message not terminated");

    oracle o;
    bool valid = oracle_check(&o, (const unsigned char *)text, n);
    aipalq_status want;
    if (!valid || o.pg_numeric_bad)
        want = AIPALQ_EBADJSON;
    else if (!o.top_object)
        want = AIPALQ_ENOTOBJECT;
    else if (o.nul_escape)
        want = AIPALQ_EBADJSON;
    else
        want = AIPALQ_OK;
    /* Where cJSON is stricter than JSON (nesting deeper than 1000, numbers
     * longer than 63 characters) the library may refuse more. */
    bool lib_may_refuse = o.max_depth >= 990 || o.long_number;
    if (st == AIPALQ_OK && want != AIPALQ_OK)
        FAIL("accepted params that PostgreSQL's jsonb would refuse (oracle: %s): %.200s",
             aipalq_status_name(want), text);
    if (st != want && !(lib_may_refuse && st == AIPALQ_EBADJSON))
        FAIL("params check %s, oracle %s: %.200s (%s)", aipalq_status_name(st),
             aipalq_status_name(want), text, err);

    /* A tiny error buffer must be honoured. */
    char *small = malloc(7);
    if (small) {
        aipalq_status st2 = aipalq__params_check(text, small, 7);
        if (st2 != st)
            FAIL("status depends on the error buffer");
        if (st2 != AIPALQ_OK && strlen(small) > 6)
            FAIL("small error buffer overrun");
        free(small);
    }
    free(text);
    return 0;
}
