/* Unit tests of the retry backoff arithmetic (lib/backoff.c). */
#include <stdint.h>

#include "internal.h"
#include "testutil.h"

START_TEST(test_doubling)
{
    int64_t want = 1000;
    for (int retry = 1; retry <= 6; retry++, want *= 2)
        ck_assert_int_eq(aipalq__backoff_ms(1000, 3600000, 0, retry, 0.0), want);
    /* The defaults of a type: 60 s doubling up to 1 h. */
    ck_assert_int_eq(aipalq__backoff_ms(60000, 3600000, 0, 1, 0.5), 60000);
    ck_assert_int_eq(aipalq__backoff_ms(60000, 3600000, 0, 2, 0.5), 120000);
    ck_assert_int_eq(aipalq__backoff_ms(60000, 3600000, 0, 6, 0.5), 1920000);
    ck_assert_int_eq(aipalq__backoff_ms(60000, 3600000, 0, 7, 0.5), 3600000);
}
END_TEST

START_TEST(test_cap)
{
    ck_assert_int_eq(aipalq__backoff_ms(1000, 5000, 0, 3, 0.0), 4000);
    ck_assert_int_eq(aipalq__backoff_ms(1000, 5000, 0, 4, 0.0), 5000); /* 8000 capped */
    ck_assert_int_eq(aipalq__backoff_ms(1000, 5000, 0, 50, 0.0), 5000);
    /* A cap below the base is raised to the base. */
    ck_assert_int_eq(aipalq__backoff_ms(1000, 10, 0, 1, 0.0), 1000);
    ck_assert_int_eq(aipalq__backoff_ms(1000, 10, 0, 9, 0.0), 1000);
    /* The cap itself, not a power of two near it. */
    ck_assert_int_eq(aipalq__backoff_ms(3, 10, 0, 3, 0.0), 10);
    ck_assert_int_eq(aipalq__backoff_ms(3, 10, 0, 2, 0.0), 6);
}
END_TEST

START_TEST(test_monotonic_in_retry)
{
    int64_t prev = 0;
    for (int retry = 1; retry <= 200; retry++) {
        int64_t d = aipalq__backoff_ms(7, 86400000, 0, retry, 0.0);
        ck_assert_int_ge(d, prev);
        ck_assert_int_le(d, 86400000);
        prev = d;
    }
    ck_assert_int_eq(prev, 86400000);
}
END_TEST

START_TEST(test_no_delay)
{
    ck_assert_int_eq(aipalq__backoff_ms(0, 1000, 10, 3, 0.9), 0);
    ck_assert_int_eq(aipalq__backoff_ms(-5, 1000, 10, 3, 0.9), 0);
    ck_assert_int_eq(aipalq__backoff_ms(1000, 5000, 10, 0, 0.9), 0);
    ck_assert_int_eq(aipalq__backoff_ms(1000, 5000, 10, -1, 0.9), 0);
}
END_TEST

START_TEST(test_jitter_bounds)
{
    /* +-10% of 10000: r = 0 gives the low end, r -> 1 approaches the high end. */
    ck_assert_int_eq(aipalq__backoff_ms(10000, 60000, 10, 1, 0.0), 9000);
    ck_assert_int_eq(aipalq__backoff_ms(10000, 60000, 10, 1, 0.5), 10000);
    int64_t hi = aipalq__backoff_ms(10000, 60000, 10, 1, 0.999);
    ck_assert_int_ge(hi, 10990);
    ck_assert_int_lt(hi, 11000);
    /* Jitter applies after the cap. */
    ck_assert_int_eq(aipalq__backoff_ms(10000, 20000, 10, 5, 0.0), 18000);
    hi = aipalq__backoff_ms(10000, 20000, 10, 5, 0.999);
    ck_assert_int_ge(hi, 21990);
    ck_assert_int_lt(hi, 22000);
    /* Every r in [0,1) stays within the band. */
    for (int i = 0; i < 1000; i++) {
        double r = i / 1000.0;
        int64_t d = aipalq__backoff_ms(4000, 60000, 25, 2, r);
        ck_assert_int_ge(d, 6000);
        ck_assert_int_lt(d, 10000);
    }
}
END_TEST

START_TEST(test_jitter_limits)
{
    /* Over 100% is clamped to 100%: r = 0 may give 0, never below. */
    ck_assert_int_eq(aipalq__backoff_ms(1000, 1000, 250, 1, 0.0), 0);
    ck_assert_int_lt(aipalq__backoff_ms(1000, 1000, 250, 1, 0.999), 2000);
    /* A negative jitter means none. */
    ck_assert_int_eq(aipalq__backoff_ms(1000, 1000, -20, 1, 0.0), 1000);
    ck_assert_int_eq(aipalq__backoff_ms(1000, 1000, -20, 1, 0.999), 1000);
}
END_TEST

START_TEST(test_no_overflow)
{
    ck_assert_int_eq(aipalq__backoff_ms(1000, 3600000, 0, 1000, 0.0), 3600000);
    ck_assert_int_eq(aipalq__backoff_ms(1000, 3600000, 10, 1000, 0.0), 3240000);
    ck_assert_int_eq(aipalq__backoff_ms(60000, 3600000, 10, INT32_MAX, 0.5), 3600000);
    /* The largest cap: doubling saturates at the cap instead of wrapping. */
    ck_assert_int_eq(aipalq__backoff_ms(1, INT64_MAX, 0, 1000, 0.0), INT64_MAX);
    ck_assert_int_eq(aipalq__backoff_ms(INT64_MAX / 3, INT64_MAX, 0, 3, 0.0), INT64_MAX);
    ck_assert_int_eq(aipalq__backoff_ms(INT64_MAX, INT64_MAX, 0, 1000, 0.0), INT64_MAX);
    /* Jitter above a huge delay saturates too (never wraps negative or to 0). */
    int64_t d = aipalq__backoff_ms(1, INT64_MAX, 50, 1000, 0.999);
    ck_assert_msg(d >= INT64_MAX / 2, "jitter over a huge delay gave %lld", (long long)d);
    d = aipalq__backoff_ms(INT64_MAX / 2, INT64_MAX / 2, 100, 1, 0.999);
    ck_assert_msg(d > INT64_MAX / 2, "jitter over a huge delay gave %lld", (long long)d);
    d = aipalq__backoff_ms(1, INT64_MAX, 10, 1000, 0.0);
    ck_assert_msg(d > INT64_MAX / 10 * 8, "low jitter end gave %lld", (long long)d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("backoff");
    TCase *tc = tcase_create("arithmetic");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_doubling);
    tcase_add_test(tc, test_cap);
    tcase_add_test(tc, test_monotonic_in_retry);
    tcase_add_test(tc, test_no_delay);
    tcase_add_test(tc, test_jitter_bounds);
    tcase_add_test(tc, test_jitter_limits);
    tcase_add_test(tc, test_no_overflow);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
