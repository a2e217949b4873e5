/* Fuzz target: the JSON result check of handlers (aipalq_job_set_result ->
 * aipalq__json_text_check with object_only false), with size limits and error
 * buffer sizes chosen by the first two bytes, against the oracle of
 * json_oracle.h. A result that passes here is written by the recorder in a
 * group commit: one PostgreSQL can refuse would fail the whole batch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json_oracle.h"

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_result_json: " __VA_ARGS__);                                         \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    /* Byte 0: the size limit (most inputs get the real one); byte 1: the
     * error buffer's size, exactly allocated so that ASan sees an overrun. */
    size_t max = data[0] < 192 ? AIPALQ_MAX_RESULT_BYTES : (size_t)(data[0] - 192) * 4;
    size_t errlen = data[1];
    data += 2, size -= 2;
    char *text = malloc(size + 1);
    char *err = malloc(errlen ? errlen : 1);
    if (!text || !err) {
        free(text);
        free(err);
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    size_t n = strlen(text);

    aipalq_status st =
        aipalq__json_text_check(text, "results", max, false, errlen ? err : NULL, errlen);
    if (st != AIPALQ_OK && errlen && strnlen(err, errlen) >= errlen)
        FAIL("error message not terminated within %zu bytes", errlen);
    if (st == AIPALQ_ENOTOBJECT)
        FAIL("results may be any JSON value");

    oracle o;
    bool valid = oracle_check(&o, (const unsigned char *)text, n);
    aipalq_status want;
    if (n > max)
        want = AIPALQ_ETOOBIG;
    else if (!valid || o.pg_numeric_bad || o.nul_escape)
        want = AIPALQ_EBADJSON;
    else
        want = AIPALQ_OK;
    bool lib_may_refuse = o.max_depth >= 990 || o.long_number;
    if (st == AIPALQ_OK && want != AIPALQ_OK)
        FAIL("accepted a result that PostgreSQL's jsonb would refuse (oracle: %s): %.200s",
             aipalq_status_name(want), text);
    if (st != want && !(lib_may_refuse && st == AIPALQ_EBADJSON))
        FAIL("result check %s, oracle %s: %.200s", aipalq_status_name(st),
             aipalq_status_name(want), text);
    free(text);
    free(err);
    return 0;
}
