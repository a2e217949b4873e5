/* Unit tests of enqueue options (lib/opts.c): validation, and that a refused
 * value leaves the option as it was. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "testutil.h"

START_TEST(test_defaults)
{
    aipalq_opts *o = aipalq_opts_new();
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(o->priority, 0); /* the type's */
    ck_assert_str_eq(o->queue, "");
    ck_assert_int_eq(o->delay_ms, 0);
    ck_assert_int_eq(o->run_at_ms, 0);
    ck_assert_ptr_null(o->idempotency_key);
    ck_assert_int_eq(o->max_retries, -1);
    ck_assert_ptr_null(o->user_id);
    aipalq_opts_free(o);
    aipalq_opts_free(NULL);
}
END_TEST

START_TEST(test_priority)
{
    aipalq_opts *o = aipalq_opts_new();
    ck_assert_int_eq(aipalq_opts_set_priority(o, 0), AIPALQ_EPRIORITY);
    ck_assert_int_eq(o->priority, 0);
    ck_assert_int_eq(aipalq_opts_set_priority(o, 11), AIPALQ_EPRIORITY);
    ck_assert_int_eq(aipalq_opts_set_priority(o, -1), AIPALQ_EPRIORITY);
    ck_assert_int_eq(o->priority, 0);
    ck_assert_int_eq(aipalq_opts_set_priority(o, 1), AIPALQ_OK);
    ck_assert_int_eq(o->priority, 1);
    ck_assert_int_eq(aipalq_opts_set_priority(o, 10), AIPALQ_OK);
    ck_assert_int_eq(o->priority, 10);
    ck_assert_int_eq(aipalq_opts_set_priority(o, 11), AIPALQ_EPRIORITY);
    ck_assert_int_eq(o->priority, 10); /* kept */
    aipalq_opts_free(o);
}
END_TEST

START_TEST(test_queue)
{
    aipalq_opts *o = aipalq_opts_new();
    char long_q[70];
    memset(long_q, 'q', 65);
    long_q[65] = '\0';
    const char *bad[] = {"", "a b", "q:1", "q{x}", "\xc3\xa9", long_q};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_int_eq(aipalq_opts_set_queue(o, bad[i]), AIPALQ_EQUEUE);
    ck_assert_str_eq(o->queue, "");
    long_q[64] = '\0';
    ck_assert_int_eq(aipalq_opts_set_queue(o, long_q), AIPALQ_OK);
    ck_assert_str_eq(o->queue, long_q);
    ck_assert_int_eq(aipalq_opts_set_queue(o, "bad queue"), AIPALQ_EQUEUE);
    ck_assert_str_eq(o->queue, long_q);
    ck_assert_int_eq(aipalq_opts_set_queue(o, NULL), AIPALQ_OK); /* clears */
    ck_assert_str_eq(o->queue, "");
    aipalq_opts_free(o);
}
END_TEST

START_TEST(test_delay_and_run_at)
{
    aipalq_opts *o = aipalq_opts_new();
    ck_assert_int_eq(aipalq_opts_set_delay_ms(o, -1), AIPALQ_EINVAL);
    ck_assert_int_eq(aipalq_opts_set_delay_ms(o, INT64_MAX), AIPALQ_EINVAL);
    ck_assert_int_eq(aipalq_opts_set_delay_ms(o, 5000), AIPALQ_OK);
    ck_assert_int_eq(o->delay_ms, 5000);
    /* A run-at time replaces the delay and the other way round. */
    ck_assert_int_eq(aipalq_opts_set_run_at_ms(o, 1700000000000LL), AIPALQ_OK);
    ck_assert_int_eq(o->run_at_ms, 1700000000000LL);
    ck_assert_int_eq(o->delay_ms, 0);
    ck_assert_int_eq(aipalq_opts_set_delay_ms(o, 10), AIPALQ_OK);
    ck_assert_int_eq(o->run_at_ms, 0);
    ck_assert_int_eq(o->delay_ms, 10);
    ck_assert_int_eq(aipalq_opts_set_run_at_ms(o, -1), AIPALQ_EINVAL);
    ck_assert_int_eq(aipalq_opts_set_run_at_ms(o, 253402300799001LL), AIPALQ_EINVAL);
    ck_assert_int_eq(o->delay_ms, 10); /* the refused value changed nothing */
    ck_assert_int_eq(aipalq_opts_set_run_at_ms(o, 253402300799000LL), AIPALQ_OK);
    ck_assert_int_eq(aipalq_opts_set_delay_ms(o, 0), AIPALQ_OK);
    aipalq_opts_free(o);
}
END_TEST

START_TEST(test_idempotency_key)
{
    aipalq_opts *o = aipalq_opts_new();
    char key[256];
    memset(key, 'k', 201);
    key[201] = '\0';
    ck_assert_int_eq(aipalq_opts_set_idempotency_key(o, key), AIPALQ_EINVAL);
    ck_assert_int_eq(aipalq_opts_set_idempotency_key(o, ""), AIPALQ_EINVAL);
    ck_assert_ptr_null(o->idempotency_key);
    key[200] = '\0';
    ck_assert_int_eq(aipalq_opts_set_idempotency_key(o, key), AIPALQ_OK);
    ck_assert_str_eq(o->idempotency_key, key);
    /* Copied: the caller's buffer may change. */
    key[0] = 'X';
    ck_assert_int_eq(o->idempotency_key[0], 'k');
    ck_assert_int_eq(aipalq_opts_set_idempotency_key(o, "other"), AIPALQ_OK);
    ck_assert_str_eq(o->idempotency_key, "other");
    ck_assert_int_eq(aipalq_opts_set_idempotency_key(o, ""), AIPALQ_EINVAL);
    ck_assert_str_eq(o->idempotency_key, "other");
    /* Text is UTF-8: a key PostgreSQL cannot store is refused up front. */
    ck_assert_int_eq(aipalq_opts_set_idempotency_key(o, "bad\xff"), AIPALQ_EINVAL);
    ck_assert_str_eq(o->idempotency_key, "other");
    ck_assert_int_eq(aipalq_opts_set_idempotency_key(o, "caf\xc3\xa9"), AIPALQ_OK);
    ck_assert_int_eq(aipalq_opts_set_idempotency_key(o, NULL), AIPALQ_OK);
    ck_assert_ptr_null(o->idempotency_key);
    aipalq_opts_free(o);
}
END_TEST

START_TEST(test_max_retries)
{
    aipalq_opts *o = aipalq_opts_new();
    ck_assert_int_eq(aipalq_opts_set_max_retries(o, -1), AIPALQ_EINVAL);
    ck_assert_int_eq(aipalq_opts_set_max_retries(o, 1001), AIPALQ_EINVAL);
    ck_assert_int_eq(o->max_retries, -1);
    ck_assert_int_eq(aipalq_opts_set_max_retries(o, 0), AIPALQ_OK);
    ck_assert_int_eq(o->max_retries, 0);
    ck_assert_int_eq(aipalq_opts_set_max_retries(o, 1000), AIPALQ_OK);
    ck_assert_int_eq(o->max_retries, 1000);
    aipalq_opts_free(o);
}
END_TEST

START_TEST(test_user_id)
{
    aipalq_opts *o = aipalq_opts_new();
    char user[256];
    memset(user, 'u', 201);
    user[201] = '\0';
    ck_assert_int_eq(aipalq_opts_set_user_id(o, user), AIPALQ_EINVAL);
    ck_assert_ptr_null(o->user_id);
    user[200] = '\0';
    ck_assert_int_eq(aipalq_opts_set_user_id(o, user), AIPALQ_OK);
    ck_assert_str_eq(o->user_id, user);
    ck_assert_int_eq(aipalq_opts_set_user_id(o, "\xc0\xaf"), AIPALQ_EINVAL);
    ck_assert_str_eq(o->user_id, user);
    ck_assert_int_eq(aipalq_opts_set_user_id(o, "user \"42\" \\ \xe2\x82\xac"), AIPALQ_OK);
    ck_assert_int_eq(aipalq_opts_set_user_id(o, NULL), AIPALQ_OK);
    ck_assert_ptr_null(o->user_id);
    aipalq_opts_free(o);
}
END_TEST

START_TEST(test_null_opts)
{
    ck_assert_int_eq(aipalq_opts_set_priority(NULL, 5), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_opts_set_queue(NULL, "q"), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_opts_set_delay_ms(NULL, 1), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_opts_set_run_at_ms(NULL, 1), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_opts_set_idempotency_key(NULL, "k"), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_opts_set_max_retries(NULL, 1), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_opts_set_user_id(NULL, "u"), AIPALQ_EMISUSE);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("opts");
    TCase *tc = tcase_create("validation");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_priority);
    tcase_add_test(tc, test_queue);
    tcase_add_test(tc, test_delay_and_run_at);
    tcase_add_test(tc, test_idempotency_key);
    tcase_add_test(tc, test_max_retries);
    tcase_add_test(tc, test_user_id);
    tcase_add_test(tc, test_null_opts);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
