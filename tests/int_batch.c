/* Integration tests of batch enqueue (lib/batch.c, enqueue.c): one
 * transaction, pipelined dispatch, all or nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static char ns[64], queue[64];

static void setup(void)
{
    tu_pg_truncate();
    tu_unique("ba", ns, sizeof ns);
    tu_unique("q", queue, sizeof queue);
}

static void teardown(void)
{
    tu_redis_ns_del(ns);
}

static char *key(const char *q, const char *suffix)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "%s:{%s}:%s", ns, q, suffix);
    return buf;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

START_TEST(test_batch_of_1000)
{
    aipalq_client *c = tu_client(ns, queue);
    aipalq_batch *b = aipalq_batch_new();
    char params[64];
    for (int i = 0; i < 1000; i++) {
        snprintf(params, sizeof params, "{\"n\":%d}", i);
        ck_assert_int_eq(aipalq_batch_add(b, i % 2 ? "t.a" : "t.b", params, NULL), AIPALQ_OK);
    }
    ck_assert_uint_eq(aipalq_batch_size(b), 1000);
    ASSERT_OK(c, aipalq_enqueue_batch(c, b));
    ck_assert_str_eq(aipalq_client_errmsg(c), "");
    /* Ids: all set, well formed, distinct. */
    const char *ids[1000];
    for (size_t i = 0; i < 1000; i++) {
        ids[i] = aipalq_batch_id(b, i);
        ck_assert_ptr_nonnull(ids[i]);
        ck_assert_uint_eq(strlen(ids[i]), 36);
        ck_assert_int_eq(aipalq_batch_created(b, i), 1);
    }
    ck_assert_ptr_null(aipalq_batch_id(b, 1000));
    const char *sorted[1000];
    memcpy(sorted, ids, sizeof ids);
    qsort(sorted, 1000, sizeof sorted[0], cmp_str);
    for (int i = 1; i < 1000; i++)
        ck_assert_str_ne(sorted[i - 1], sorted[i]);
    /* Rows: exactly these ids, each with its own params. */
    ck_assert_int_eq(tu_pg_int("SELECT count(*) FROM aipalq_tasks WHERE queue = '%s'", queue),
                     1000);
    char *all = tu_pg_text("SELECT string_agg(id::text, ',' ORDER BY id) FROM aipalq_tasks");
    size_t len = 0;
    for (int i = 0; i < 1000; i++)
        len += strlen(sorted[i]) + 1;
    char *want = malloc(len);
    want[0] = '\0';
    for (int i = 0; i < 1000; i++) {
        strcat(want, sorted[i]);
        if (i < 999)
            strcat(want, ",");
    }
    ck_assert_str_eq(all, want);
    free(all);
    free(want);
    ck_assert_int_eq(
        tu_pg_int("SELECT (params->>'n')::int FROM aipalq_tasks WHERE id = '%s'", ids[777]), 777);
    /* Redis: all 1000 ready, in the batch's order (same priority: FIFO). */
    int64_t ready, scheduled, leased;
    tu_depth(c, queue, &ready, &scheduled, &leased);
    ck_assert_int_eq(ready, 1000);
    ck_assert_int_eq(scheduled, 0);
    size_t n = 0;
    char **ranked = tu_redis_zrange(key(queue, "ready"), &n);
    ck_assert_uint_eq(n, 1000);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(ranked[i], ids[i]);
    tu_strv_free(ranked, n);
    aipalq_batch_free(b);
    aipalq_client_free(c);
}
END_TEST

/* A batch of 1000 whose task 500 is bad in some way: nothing is written and
 * the message names index 500. */
static void bad_at_500(const char *type, const char *params, aipalq_status want)
{
    aipalq_client *c = tu_client(ns, queue);
    aipalq_batch *b = aipalq_batch_new();
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(
            aipalq_batch_add(b, i == 500 ? type : "t.a", i == 500 ? params : "{}", NULL),
            AIPALQ_OK);
    ASSERT_ST(c, aipalq_enqueue_batch(c, b), want);
    ck_assert_msg(tu_contains(aipalq_client_errmsg(c), "500"), "message: %s",
                  aipalq_client_errmsg(c));
    ck_assert_msg(!tu_contains(aipalq_client_errmsg(c), "499"), "message: %s",
                  aipalq_client_errmsg(c));
    ck_assert_int_eq(tu_pg_int("SELECT count(*) FROM aipalq_tasks"), 0);
    ck_assert_int_eq(tu_redis_ns_keys(ns), 0);
    ck_assert_ptr_null(aipalq_batch_id(b, 0));
    ck_assert_int_eq(aipalq_batch_created(b, 0), 0);
    /* Fixed, the same batch goes through. */
    aipalq_batch_clear(b);
    for (int i = 0; i < 1000; i++)
        aipalq_batch_add(b, "t.a", "{}", NULL);
    ASSERT_OK(c, aipalq_enqueue_batch(c, b));
    ck_assert_int_eq(tu_pg_int("SELECT count(*) FROM aipalq_tasks"), 1000);
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1000);
    aipalq_batch_free(b);
    aipalq_client_free(c);
}

START_TEST(test_all_or_nothing_unknown_type)
{
    bad_at_500("no.such.type", "{}", AIPALQ_EUNKNOWNTYPE);
}
END_TEST

START_TEST(test_all_or_nothing_bad_params)
{
    bad_at_500("t.a", "[1]", AIPALQ_ENOTOBJECT);
}
END_TEST

START_TEST(test_all_or_nothing_bad_json)
{
    bad_at_500("t.a", "{\"a\":01}", AIPALQ_EBADJSON);
}
END_TEST

START_TEST(test_all_or_nothing_too_big)
{
    char *big = malloc(AIPALQ_MAX_PARAMS_BYTES + 16);
    strcpy(big, "{\"a\":\"");
    memset(big + 6, 'x', AIPALQ_MAX_PARAMS_BYTES);
    strcpy(big + 6 + AIPALQ_MAX_PARAMS_BYTES, "\"}");
    bad_at_500("t.a", big, AIPALQ_ETOOBIG);
    free(big);
}
END_TEST

START_TEST(test_mixed_queues_priorities_and_delays)
{
    aipalq_client *c = tu_client(ns, queue);
    char q2[64];
    tu_unique("q2", q2, sizeof q2);
    ASSERT_OK(c, aipalq_type_define(c, "t.b", q2));
    aipalq_opts *urgent = aipalq_opts_new(), *later = aipalq_opts_new();
    aipalq_opts_set_priority(urgent, 10);
    aipalq_opts_set_delay_ms(later, 3600000);
    aipalq_batch *b = aipalq_batch_new();
    aipalq_batch_add(b, "t.a", "{}", NULL);   /* 0: queue, 5 */
    aipalq_batch_add(b, "t.b", "{}", NULL);   /* 1: q2 */
    aipalq_batch_add(b, "t.a", "{}", urgent); /* 2: queue, 10 */
    aipalq_batch_add(b, "t.b", "{}", later);  /* 3: q2, scheduled */
    aipalq_batch_add(b, "t.a", "{}", later);  /* 4: queue, scheduled */
    aipalq_batch_add(b, "t.a", "{}", NULL);   /* 5: queue, 5 */
    ASSERT_OK(c, aipalq_enqueue_batch(c, b));
    int64_t ready, scheduled;
    tu_depth(c, queue, &ready, &scheduled, NULL);
    ck_assert_int_eq(ready, 3);
    ck_assert_int_eq(scheduled, 1);
    tu_depth(c, q2, &ready, &scheduled, NULL);
    ck_assert_int_eq(ready, 1);
    ck_assert_int_eq(scheduled, 1);
    size_t n = 0;
    char **ranked = tu_redis_zrange(key(queue, "ready"), &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(ranked[0], aipalq_batch_id(b, 2));
    ck_assert_str_eq(ranked[1], aipalq_batch_id(b, 0));
    ck_assert_str_eq(ranked[2], aipalq_batch_id(b, 5));
    tu_strv_free(ranked, n);
    ck_assert_int_eq(tu_pg_int("SELECT count(*) FROM aipalq_tasks WHERE status = 'scheduled'"), 2);
    ck_assert_int_eq(
        tu_pg_int("SELECT priority FROM aipalq_tasks WHERE id = '%s'", aipalq_batch_id(b, 2)), 10);
    aipalq_batch_free(b);
    aipalq_opts_free(urgent);
    aipalq_opts_free(later);
    aipalq_client_free(c);
}
END_TEST

/* A batch without keys is written with COPY, whose text format gives
 * backslash, tab, newline and carriage return a meaning: tasks carrying them
 * (in JSON strings, as JSON whitespace, in a user id) must come back exactly,
 * with the columns a one-row INSERT would have written. */
START_TEST(test_copy_keeps_every_character)
{
    aipalq_client *c = tu_client(ns, queue);
    const char *params[] = {
        "{\"path\":\"C:\\\\dir\\\\new\",\"esc\":\"a\\tb\\nc\\rd\\\\N\"}",
        "{\t\"ws\"\r\n:\n[1,\t2]}",
        "{\"u\":\"\\u00e9t\\u00e9 \xe2\x82\xac\",\"nul\":null}",
        "{}",
    };
    aipalq_opts *o = aipalq_opts_new();
    ck_assert_int_eq(aipalq_opts_set_user_id(o, "user\\with\ttab"), AIPALQ_OK);
    ck_assert_int_eq(aipalq_opts_set_max_retries(o, 7), AIPALQ_OK);
    ck_assert_int_eq(aipalq_opts_set_priority(o, 9), AIPALQ_OK);
    aipalq_opts *later = aipalq_opts_new();
    const int64_t run_at = 4102444800123; /* 2100-01-01 00:00:00.123 UTC */
    ck_assert_int_eq(aipalq_opts_set_run_at_ms(later, run_at), AIPALQ_OK);
    aipalq_batch *b = aipalq_batch_new();
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(aipalq_batch_add(b, "t.a", params[i], i == 0 ? o : NULL), AIPALQ_OK);
    ck_assert_int_eq(aipalq_batch_add(b, "t.a", "{}", later), AIPALQ_OK);
    ASSERT_OK(c, aipalq_enqueue_batch(c, b));
    for (int i = 0; i < 4; i++) {
        char *same = tu_pg_text("SELECT (params = $x$%s$x$::jsonb)::text FROM aipalq_tasks"
                                " WHERE id = '%s'",
                                params[i], aipalq_batch_id(b, (size_t)i));
        ck_assert_msg(same && strcmp(same, "true") == 0, "params %d changed", i);
        free(same);
    }
    const char *id0 = aipalq_batch_id(b, 0);
    char *row = tu_pg_text("SELECT concat_ws('|', user_id, max_retries, priority, status, queue,"
                           " namespace, type, attempts, run_at IS NULL) FROM aipalq_tasks"
                           " WHERE id = '%s'",
                           id0);
    char want[256];
    snprintf(want, sizeof want, "user\\with\ttab|7|9|pending|%s|%s|t.a|0|t", queue, ns);
    ck_assert_str_eq(row, want);
    free(row);
    ck_assert_int_eq(tu_pg_int("SELECT (extract(epoch FROM run_at) * 1000)::bigint FROM"
                               " aipalq_tasks WHERE id = '%s' AND status = 'scheduled'",
                               aipalq_batch_id(b, 4)),
                     run_at);
    /* The lookup reads back what was written. */
    aipalq_task *t = NULL;
    ASSERT_OK(c, aipalq_get(c, id0, &t));
    ck_assert_str_eq(aipalq_task_user_id(t), "user\\with\ttab");
    aipalq_task_free(t);
    int64_t ready, scheduled;
    tu_depth(c, queue, &ready, &scheduled, NULL);
    ck_assert_int_eq(ready, 4);
    ck_assert_int_eq(scheduled, 1);
    aipalq_batch_free(b);
    aipalq_opts_free(o);
    aipalq_opts_free(later);
    aipalq_client_free(c);
}
END_TEST

/* A COPY the server refuses (here a constraint added for the test) writes
 * nothing, reports the server's message, and leaves the client's connection
 * in step: the next batch goes through on the same client. */
START_TEST(test_refused_copy_writes_nothing)
{
    aipalq_client *c = tu_client(ns, queue);
    tu_pg_exec("ALTER TABLE aipalq_tasks ADD CONSTRAINT test_refuse CHECK"
               " (params->>'a' IS DISTINCT FROM 'refused')");
    aipalq_batch *b = aipalq_batch_new();
    aipalq_batch_add(b, "t.a", "{\"a\":\"fine\"}", NULL);
    aipalq_batch_add(b, "t.a", "{\"a\":\"refused\"}", NULL);
    aipalq_status st = aipalq_enqueue_batch(c, b);
    tu_pg_exec("ALTER TABLE aipalq_tasks DROP CONSTRAINT test_refuse");
    ASSERT_ST(c, st, AIPALQ_EPG);
    ck_assert_msg(tu_contains(aipalq_client_errmsg(c), "test_refuse"), "message: %s",
                  aipalq_client_errmsg(c));
    ck_assert_int_eq(tu_pg_int("SELECT count(*) FROM aipalq_tasks"), 0);
    ck_assert_int_eq(tu_redis_ns_keys(ns), 0);
    ck_assert_ptr_null(aipalq_batch_id(b, 0));
    aipalq_batch_clear(b);
    aipalq_batch_add(b, "t.a", "{\"a\":1}", NULL);
    aipalq_batch_add(b, "t.a", "{\"a\":2}", NULL);
    ASSERT_OK(c, aipalq_enqueue_batch(c, b));
    ck_assert_int_eq(tu_pg_int("SELECT count(*) FROM aipalq_tasks"), 2);
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 2);
    aipalq_batch_free(b);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_idempotency_keys_in_a_batch)
{
    aipalq_client *c = tu_client(ns, queue);
    aipalq_opts *k1 = aipalq_opts_new(), *k2 = aipalq_opts_new();
    aipalq_opts_set_idempotency_key(k1, "k1");
    aipalq_opts_set_idempotency_key(k2, "k2");
    aipalq_batch *b = aipalq_batch_new();
    aipalq_batch_add(b, "t.a", "{\"i\":0}", k1);
    aipalq_batch_add(b, "t.a", "{\"i\":1}", k1); /* same key: the first task */
    aipalq_batch_add(b, "t.a", "{\"i\":2}", k2);
    aipalq_batch_add(b, "t.a", "{\"i\":3}", NULL);
    ASSERT_OK(c, aipalq_enqueue_batch(c, b));
    ck_assert_int_eq(aipalq_batch_created(b, 0), 1);
    ck_assert_int_eq(aipalq_batch_created(b, 1), 0);
    ck_assert_int_eq(aipalq_batch_created(b, 2), 1);
    ck_assert_int_eq(aipalq_batch_created(b, 3), 1);
    ck_assert_str_eq(aipalq_batch_id(b, 1), aipalq_batch_id(b, 0));
    ck_assert_str_ne(aipalq_batch_id(b, 2), aipalq_batch_id(b, 0));
    ck_assert_int_eq(tu_pg_int("SELECT count(*) FROM aipalq_tasks"), 3);
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 3);
    /* A second batch with a held key: created 0, that task's id. */
    char first[AIPALQ_ID_SIZE];
    snprintf(first, sizeof first, "%s", aipalq_batch_id(b, 2));
    aipalq_batch_clear(b);
    aipalq_batch_add(b, "t.a", "{}", k2);
    aipalq_batch_add(b, "t.b", "{}", NULL);
    ASSERT_OK(c, aipalq_enqueue_batch(c, b));
    ck_assert_int_eq(aipalq_batch_created(b, 0), 0);
    ck_assert_str_eq(aipalq_batch_id(b, 0), first);
    ck_assert_int_eq(aipalq_batch_created(b, 1), 1);
    ck_assert_int_eq(tu_pg_int("SELECT count(*) FROM aipalq_tasks"), 4);
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 4);
    aipalq_batch_free(b);
    aipalq_opts_free(k1);
    aipalq_opts_free(k2);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_reuse_and_empty)
{
    aipalq_client *c = tu_client(ns, queue);
    aipalq_batch *b = aipalq_batch_new();
    ASSERT_OK(c, aipalq_enqueue_batch(c, b)); /* empty: nothing */
    ck_assert_int_eq(tu_pg_int("SELECT count(*) FROM aipalq_tasks"), 0);
    aipalq_batch_add(b, "t.a", "{}", NULL);
    ASSERT_OK(c, aipalq_enqueue_batch(c, b));
    char first[AIPALQ_ID_SIZE];
    snprintf(first, sizeof first, "%s", aipalq_batch_id(b, 0));
    /* Enqueued again as it is: new tasks with new ids. */
    ASSERT_OK(c, aipalq_enqueue_batch(c, b));
    ck_assert_str_ne(aipalq_batch_id(b, 0), first);
    /* Adding after an enqueue clears the ids until the next enqueue. */
    aipalq_batch_add(b, "t.a", "{}", NULL);
    ck_assert_ptr_null(aipalq_batch_id(b, 0));
    ASSERT_OK(c, aipalq_enqueue_batch(c, b));
    ck_assert_ptr_nonnull(aipalq_batch_id(b, 1));
    ck_assert_int_eq(tu_pg_int("SELECT count(*) FROM aipalq_tasks"), 4);
    aipalq_batch_free(b);
    aipalq_client_free(c);
}
END_TEST

int main(void)
{
    tu_require_services();
    tu_scratch_db_begin("batch");
    Suite *s = suite_create("batch");
    TCase *tc = tcase_create("batch");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_batch_of_1000);
    tcase_add_test(tc, test_all_or_nothing_unknown_type);
    tcase_add_test(tc, test_all_or_nothing_bad_params);
    tcase_add_test(tc, test_all_or_nothing_bad_json);
    tcase_add_test(tc, test_all_or_nothing_too_big);
    tcase_add_test(tc, test_mixed_queues_priorities_and_delays);
    tcase_add_test(tc, test_copy_keeps_every_character);
    tcase_add_test(tc, test_refused_copy_writes_nothing);
    tcase_add_test(tc, test_idempotency_keys_in_a_batch);
    tcase_add_test(tc, test_reuse_and_empty);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    tu_scratch_db_end();
    return rc;
}
