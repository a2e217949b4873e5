/* Unit tests of the params checks (lib/params.c): what enqueue accepts must
 * be what PostgreSQL's jsonb accepts, so a bad document is refused before any
 * write with its own code instead of surfacing as AIPALQ_EPG. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "testutil.h"

static void expect(const char *params, aipalq_status want)
{
    char err[256] = "";
    aipalq_status st = aipalq__params_check(params, err, sizeof err);
    ck_assert_msg(st == want, "params '%.80s': got %s, want %s (%s)", params ? params : "(null)",
                  aipalq_status_name(st), aipalq_status_name(want), err);
    if (want != AIPALQ_OK)
        ck_assert_msg(err[0] != '\0', "params '%.80s': no reason given", params);
}

START_TEST(test_valid_objects)
{
    expect(NULL, AIPALQ_OK);
    expect("{}", AIPALQ_OK);
    expect(" \t\r\n{ }\n", AIPALQ_OK);
    expect("{\"a\":1}", AIPALQ_OK);
    expect("{\"time_window_hours\":24,\"tags\":[\"x\",\"y\"],\"nested\":{\"ok\":true,"
           "\"none\":null,\"f\":-0.5e-3,\"big\":1E+300,\"zero\":0,\"neg\":-12}}",
           AIPALQ_OK);
    expect("{\"unicode\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}", AIPALQ_OK);
    expect("{\"esc\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"}", AIPALQ_OK);
    expect("{\"\":\"\"}", AIPALQ_OK);
    expect("{\"a\":1,\"a\":2}", AIPALQ_OK); /* duplicate keys: jsonb keeps the last */
    /* An escaped backslash followed by the text u0000 is not a NUL escape. */
    expect("{\"a\":\"\\\\u0000\"}", AIPALQ_OK);
    expect("{\"a\":\"\\u0001\"}", AIPALQ_OK);
}
END_TEST

START_TEST(test_invalid_json)
{
    expect("", AIPALQ_EBADJSON);
    expect("   ", AIPALQ_EBADJSON);
    expect("{", AIPALQ_EBADJSON);
    expect("{\"a\":}", AIPALQ_EBADJSON);
    expect("{\"a\":1,}", AIPALQ_EBADJSON);
    expect("{a:1}", AIPALQ_EBADJSON);
    expect("{'a':1}", AIPALQ_EBADJSON);
    expect("{} x", AIPALQ_EBADJSON);
    expect("{}{}", AIPALQ_EBADJSON);
    expect("{\"a\":tru}", AIPALQ_EBADJSON);
    expect("{\"a\":\"\\q\"}", AIPALQ_EBADJSON);
    expect("{\"a\":NaN}", AIPALQ_EBADJSON);
    expect("{\"a\":\"unterminated}", AIPALQ_EBADJSON);
}
END_TEST

START_TEST(test_json_postgres_refuses)
{
    /* Documents a lenient parser takes but PostgreSQL's json grammar does not. */
    expect("{\"a\":01}", AIPALQ_EBADJSON);
    expect("{\"a\":-01}", AIPALQ_EBADJSON);
    expect("{\"a\":1.}", AIPALQ_EBADJSON);
    expect("{\"a\":1.e5}", AIPALQ_EBADJSON);
    expect("{\"a\":+1}", AIPALQ_EBADJSON);
    expect("{\"a\":.5}", AIPALQ_EBADJSON);
    expect("{\"a\":\"\x01\"}", AIPALQ_EBADJSON); /* raw control characters in strings */
    expect("{\"a\":\"tab\there\"}", AIPALQ_EBADJSON);
    expect("{\"a\":\"line\nbreak\"}", AIPALQ_EBADJSON);
    expect("{\x01\"a\":1}", AIPALQ_EBADJSON); /* control characters as white space */
    expect("{}\x0c", AIPALQ_EBADJSON);
    expect("{\"a\":\"\\u00zz\"}", AIPALQ_EBADJSON); /* bad \u escape */
    expect("{\"a\":\"\\u12\"}", AIPALQ_EBADJSON);
    expect("{\"a\":\"\\ud800\"}", AIPALQ_EBADJSON); /* lone surrogates */
    expect("{\"a\":\"\\udc00\"}", AIPALQ_EBADJSON);
    /* ...while the valid forms next to them pass. */
    expect("{\"a\":0,\"b\":-0,\"c\":0.5,\"d\":10,\"e\":1e5,\"f\":1.0E-5}", AIPALQ_OK);
    expect("{\"true\":true,\"false\":false,\"null\":null,\"e\":[1e1,2E2]}", AIPALQ_OK);
    expect("{\"a\":\"\\u00ZZ\\u00aF\"}", AIPALQ_EBADJSON);
    expect("{\"a\":\"\\u00Af\"}", AIPALQ_OK);
}
END_TEST

START_TEST(test_not_an_object)
{
    expect("[1]", AIPALQ_ENOTOBJECT);
    expect("[]", AIPALQ_ENOTOBJECT);
    expect("\"x\"", AIPALQ_ENOTOBJECT);
    expect("3", AIPALQ_ENOTOBJECT);
    expect("-3.5", AIPALQ_ENOTOBJECT);
    expect("true", AIPALQ_ENOTOBJECT);
    expect("null", AIPALQ_ENOTOBJECT);
    expect(" [ {\"a\":1} ] ", AIPALQ_ENOTOBJECT);
}
END_TEST

/* A valid object of exactly n bytes: {"a":"xxx...x"}. */
static char *object_of_size(size_t n)
{
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    memcpy(s, "{\"a\":\"", 6);
    memset(s + 6, 'x', n - 8);
    memcpy(s + n - 2, "\"}", 3);
    ck_assert_uint_eq(strlen(s), n);
    return s;
}

START_TEST(test_size_limit)
{
    char *s = object_of_size(AIPALQ_MAX_PARAMS_BYTES);
    expect(s, AIPALQ_OK);
    free(s);
    s = object_of_size(AIPALQ_MAX_PARAMS_BYTES + 1);
    expect(s, AIPALQ_ETOOBIG);
    free(s);
    s = object_of_size(3 * AIPALQ_MAX_PARAMS_BYTES);
    expect(s, AIPALQ_ETOOBIG);
    free(s);
    /* Over the limit is ETOOBIG even when it is not valid JSON either. */
    s = malloc(AIPALQ_MAX_PARAMS_BYTES + 2);
    memset(s, '[', AIPALQ_MAX_PARAMS_BYTES + 1);
    s[AIPALQ_MAX_PARAMS_BYTES + 1] = '\0';
    expect(s, AIPALQ_ETOOBIG);
    free(s);
    /* The message gives the size and the limit. */
    s = object_of_size(AIPALQ_MAX_PARAMS_BYTES + 10);
    char err[256];
    aipalq__params_check(s, err, sizeof err);
    ck_assert_msg(strstr(err, "1048586") && strstr(err, "1048576"), "message: %s", err);
    free(s);
}
END_TEST

START_TEST(test_invalid_utf8)
{
    expect("{\"a\":\"\xff\"}", AIPALQ_EBADJSON);
    expect("{\"a\":\"\xc0\xaf\"}", AIPALQ_EBADJSON);         /* overlong */
    expect("{\"a\":\"\xe0\x80\xaf\"}", AIPALQ_EBADJSON);     /* overlong */
    expect("{\"a\":\"\xed\xa0\x80\"}", AIPALQ_EBADJSON);     /* UTF-16 surrogate */
    expect("{\"a\":\"\xe2\x82\"}", AIPALQ_EBADJSON);         /* truncated */
    expect("{\"a\":\"\xf4\x90\x80\x80\"}", AIPALQ_EBADJSON); /* above U+10FFFF */
    expect("{\"a\":\"\x80\"}", AIPALQ_EBADJSON);             /* lone continuation */
    expect("{\"\xfe\":1}", AIPALQ_EBADJSON);
    expect("{\"a\":\"x\"}\xc3", AIPALQ_EBADJSON);
    expect("{\"a\":\"\xf4\x8f\xbf\xbf\"}", AIPALQ_OK); /* U+10FFFF itself */
    expect("{\"a\":\"\xee\x80\x80\"}", AIPALQ_OK);     /* U+E000 */
}
END_TEST

START_TEST(test_nul_escape)
{
    expect("{\"a\":\"\\u0000\"}", AIPALQ_EBADJSON);
    expect("{\"a\":\"x\\u0000y\"}", AIPALQ_EBADJSON);
    expect("{\"\\u0000\":1}", AIPALQ_EBADJSON);
    expect("{\"a\":\"\\\\\\u0000\"}", AIPALQ_EBADJSON); /* \\ then \u0000 */
    char err[256];
    aipalq__params_check("{\"a\":\"\\u0000\"}", err, sizeof err);
    ck_assert_msg(strstr(err, "u0000") != NULL, "message: %s", err);
}
END_TEST

static char *nested(int depth)
{
    size_t n = (size_t)depth * 2 + 16;
    char *s = malloc(n);
    size_t o = 0;
    o += (size_t)sprintf(s + o, "{\"a\":");
    for (int i = 0; i < depth; i++)
        s[o++] = '[';
    for (int i = 0; i < depth; i++)
        s[o++] = ']';
    s[o++] = '}';
    s[o] = '\0';
    return s;
}

START_TEST(test_nesting)
{
    char *s = nested(100);
    expect(s, AIPALQ_OK);
    free(s);
    s = nested(5000); /* deeper than any parser here will go */
    expect(s, AIPALQ_EBADJSON);
    free(s);
    s = nested(100000);
    expect(s, AIPALQ_EBADJSON);
    free(s);
}
END_TEST

START_TEST(test_small_error_buffer)
{
    char err[8];
    memset(err, 'Q', sizeof err);
    ck_assert_int_eq(aipalq__params_check("[1]", err, 4), AIPALQ_ENOTOBJECT);
    ck_assert_uint_eq(strlen(err), 3);
    ck_assert_int_eq(err[4], 'Q');
}
END_TEST

START_TEST(test_json_text_check_any_value)
{
    /* Results may be any JSON value, up to their own limit. */
    char err[128];
    ck_assert_int_eq(aipalq__json_text_check("[1,2]", "results", 100, false, err, sizeof err),
                     AIPALQ_OK);
    ck_assert_int_eq(aipalq__json_text_check("\"s\"", "results", 100, false, err, sizeof err),
                     AIPALQ_OK);
    ck_assert_int_eq(aipalq__json_text_check("[01]", "results", 100, false, err, sizeof err),
                     AIPALQ_EBADJSON);
    ck_assert_int_eq(aipalq__json_text_check("[1,2,3]", "results", 6, false, err, sizeof err),
                     AIPALQ_ETOOBIG);
    ck_assert_msg(strstr(err, "results") != NULL, "message: %s", err);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("params");
    TCase *tc = tcase_create("check");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_valid_objects);
    tcase_add_test(tc, test_invalid_json);
    tcase_add_test(tc, test_json_postgres_refuses);
    tcase_add_test(tc, test_not_an_object);
    tcase_add_test(tc, test_size_limit);
    tcase_add_test(tc, test_invalid_utf8);
    tcase_add_test(tc, test_nul_escape);
    tcase_add_test(tc, test_nesting);
    tcase_add_test(tc, test_small_error_buffer);
    tcase_add_test(tc, test_json_text_check_any_value);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
