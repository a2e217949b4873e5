/* Unit tests of status codes, their names and messages, and the version
 * (lib/status.c, lib/version.c). Public API only. */
#include <stdio.h>
#include <string.h>

#include <aipal/aipalq.h>

#include "testutil.h"

static const struct {
    aipalq_status code;
    int number;
    const char *name;
} codes[] = {
    {AIPALQ_OK, 0, "OK"},
    {AIPALQ_EMPTY, 1, "EMPTY"},
    {AIPALQ_EINVAL, 2, "EINVAL"},
    {AIPALQ_EBADJSON, 3, "EBADJSON"},
    {AIPALQ_ENOTOBJECT, 4, "ENOTOBJECT"},
    {AIPALQ_EPRIORITY, 5, "EPRIORITY"},
    {AIPALQ_EUNKNOWNTYPE, 6, "EUNKNOWNTYPE"},
    {AIPALQ_ETOOBIG, 7, "ETOOBIG"},
    {AIPALQ_EBADURL, 8, "EBADURL"},
    {AIPALQ_EREDIS, 9, "EREDIS"},
    {AIPALQ_EPG, 10, "EPG"},
    {AIPALQ_ENOTFOUND, 11, "ENOTFOUND"},
    {AIPALQ_EILLEGAL, 12, "EILLEGAL"},
    {AIPALQ_ESTALE, 13, "ESTALE"},
    {AIPALQ_ESCHEMA, 14, "ESCHEMA"},
    {AIPALQ_ENOMEM, 15, "ENOMEM"},
    {AIPALQ_ETIMEOUT, 16, "ETIMEOUT"},
    {AIPALQ_EMISUSE, 17, "EMISUSE"},
    {AIPALQ_EBADID, 18, "EBADID"},
    {AIPALQ_EQUEUE, 19, "EQUEUE"},
    {AIPALQ_ESHUTDOWN, 20, "ESHUTDOWN"},
    {AIPALQ_EHANDLER, 21, "EHANDLER"},
};
#define NCODES (sizeof codes / sizeof codes[0])

START_TEST(test_numbers_are_stable)
{
    /* The ABI promise: a number keeps its meaning. */
    for (size_t i = 0; i < NCODES; i++)
        ck_assert_int_eq((int)codes[i].code, codes[i].number);
}
END_TEST

START_TEST(test_every_code_has_a_name)
{
    for (size_t i = 0; i < NCODES; i++)
        ck_assert_str_eq(aipalq_status_name(codes[i].code), codes[i].name);
}
END_TEST

START_TEST(test_list_matches)
{
    /* Every code of AIPALQ_STATUS_LIST is in the table above, with its name. */
    size_t seen = 0;
#define CHECK_CODE(name, num, msg)                                                                 \
    ck_assert_str_eq(aipalq_status_name(AIPALQ_##name), #name);                                    \
    ck_assert_str_eq(aipalq_strerror(AIPALQ_##name), msg);                                         \
    ck_assert_int_eq(AIPALQ_##name, num);                                                          \
    seen++;
    AIPALQ_STATUS_LIST(CHECK_CODE)
#undef CHECK_CODE
    ck_assert_uint_eq(seen, NCODES);
}
END_TEST

START_TEST(test_messages)
{
    for (size_t i = 0; i < NCODES; i++) {
        const char *m = aipalq_strerror(codes[i].code);
        ck_assert_ptr_nonnull(m);
        ck_assert_uint_gt(strlen(m), 3);
        ck_assert_str_ne(m, "unknown status");
        for (size_t j = 0; j < i; j++) {
            ck_assert_str_ne(aipalq_strerror(codes[j].code), m);
            ck_assert_str_ne(aipalq_status_name(codes[j].code), codes[i].name);
        }
    }
    ck_assert_str_eq(aipalq_strerror(AIPALQ_OK), "success");
}
END_TEST

START_TEST(test_unknown_codes)
{
    int unknown[] = {-1, 22, 99, 1000, -2147483647};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        ck_assert_str_eq(aipalq_strerror((aipalq_status)unknown[i]), "unknown status");
        ck_assert_str_eq(aipalq_status_name((aipalq_status)unknown[i]), "UNKNOWN");
    }
}
END_TEST

START_TEST(test_version)
{
    ck_assert_uint_eq(aipalq_version(), AIPALQ_VERSION_HEX);
    ck_assert_str_eq(aipalq_version_string(), AIPALQ_VERSION_STRING);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", AIPALQ_VERSION_MAJOR, AIPALQ_VERSION_MINOR,
             AIPALQ_VERSION_PATCH);
    ck_assert_str_eq(aipalq_version_string(), want);
    ck_assert_uint_eq(aipalq_version() >> 16, AIPALQ_VERSION_MAJOR);
    ck_assert_int_ge(AIPALQ_SCHEMA_VERSION, 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("status");
    TCase *tc = tcase_create("names");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_numbers_are_stable);
    tcase_add_test(tc, test_every_code_has_a_name);
    tcase_add_test(tc, test_list_matches);
    tcase_add_test(tc, test_messages);
    tcase_add_test(tc, test_unknown_codes);
    tcase_add_test(tc, test_version);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
