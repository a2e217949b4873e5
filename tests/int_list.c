/* Integration tests of task lists (lib/list.c): filters, pages, the pending
 * and failed views. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static char ns[64], queue[64], q2[64];

static void setup(void)
{
    tu_pg_truncate();
    tu_unique("li", ns, sizeof ns);
    tu_unique("q", queue, sizeof queue);
    tu_unique("r", q2, sizeof q2);
}

static void teardown(void)
{
    tu_redis_ns_del(ns);
}

#define NTASKS 14

/* The data set, ids in creation order:
 *  0..5   t.a, user u1 (0-2) / u2 (3-5), queue
 *  6..9   t.b, user u1, queue; 8 and 9 are cancelled
 *  10     t.a, no user, queue, scheduled (delayed)
 *  11..13 t.a, user u3, q2; 13 made failed */
static char ids[NTASKS][AIPALQ_ID_SIZE];

static aipalq_client *populate(void)
{
    aipalq_client *c = tu_client(ns, queue);
    aipalq_opts *o = aipalq_opts_new();
    for (int i = 0; i < NTASKS; i++) {
        aipalq_opts_set_user_id(o, i < 3     ? "u1"
                                   : i < 6   ? "u2"
                                   : i < 10  ? "u1"
                                   : i == 10 ? NULL
                                             : "u3");
        aipalq_opts_set_delay_ms(o, i == 10 ? 3600000 : 0);
        aipalq_opts_set_queue(o, i >= 11 ? q2 : NULL);
        ASSERT_OK(c, aipalq_enqueue(c, i >= 6 && i < 10 ? "t.b" : "t.a", "{}", o, ids[i], NULL));
    }
    aipalq_opts_free(o);
    ASSERT_OK(c, aipalq_cancel(c, ids[8], NULL));
    ASSERT_OK(c, aipalq_cancel(c, ids[9], NULL));
    tu_pg_exec("UPDATE aipalq_tasks SET status = 'failed', error_message = 'boom',"
               " attempts = 4, completed_at = now() WHERE id = '%s'",
               ids[13]);
    return c;
}

static aipalq_list *run(aipalq_client *c, aipalq_filter *f)
{
    aipalq_list *l = NULL;
    ASSERT_OK(c, aipalq_list_tasks(c, f, &l));
    ck_assert_ptr_nonnull(l);
    return l;
}

/* Checks a page: its total, and that it holds exactly the tasks `want` (indexes
 * into ids, in page order). */
static void expect_page(aipalq_list *l, int64_t total, const int *want, size_t n)
{
    ck_assert_int_eq(aipalq_list_total(l), total);
    ck_assert_uint_eq(aipalq_list_count(l), n);
    for (size_t i = 0; i < n; i++) {
        const aipalq_task *t = aipalq_list_at(l, i);
        ck_assert_ptr_nonnull(t);
        ck_assert_msg(strcmp(aipalq_task_id(t), ids[want[i]]) == 0, "row %zu: %s, want task %d %s",
                      i, aipalq_task_id(t), want[i], ids[want[i]]);
    }
    ck_assert_ptr_null(aipalq_list_at(l, n));
}

START_TEST(test_filters)
{
    aipalq_client *c = populate();
    aipalq_filter *f = aipalq_filter_new();
    aipalq_filter_set_page(f, 100, 0);
    aipalq_list *l = run(c, f); /* everything, newest first */
    int all[NTASKS];
    for (int i = 0; i < NTASKS; i++)
        all[i] = NTASKS - 1 - i;
    expect_page(l, NTASKS, all, NTASKS);
    aipalq_list_free(l);

    aipalq_filter_set_queue(f, queue);
    l = run(c, f);
    const int in_queue[] = {10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
    expect_page(l, 11, in_queue, 11);
    aipalq_list_free(l);

    aipalq_filter_add_state(f, AIPALQ_STATE_CANCELLED);
    l = run(c, f);
    const int cancelled[] = {9, 8};
    expect_page(l, 2, cancelled, 2);
    /* Rows are full snapshots. */
    const aipalq_task *t = aipalq_list_at(l, 0);
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_CANCELLED);
    ck_assert_str_eq(aipalq_task_type(t), "t.b");
    ck_assert_str_eq(aipalq_task_user_id(t), "u1");
    ck_assert_str_eq(aipalq_task_params(t), "{}");
    ck_assert_int_gt(aipalq_task_completed_ms(t), 0);
    aipalq_list_free(l);

    aipalq_filter_add_state(f, AIPALQ_STATE_SCHEDULED); /* several states: any of them */
    l = run(c, f);
    const int cancelled_or_scheduled[] = {10, 9, 8};
    expect_page(l, 3, cancelled_or_scheduled, 3);
    aipalq_list_free(l);
    aipalq_filter_free(f);

    f = aipalq_filter_new();
    aipalq_filter_set_type(f, "t.b");
    l = run(c, f);
    const int type_b[] = {9, 8, 7, 6};
    expect_page(l, 4, type_b, 4);
    aipalq_list_free(l);

    aipalq_filter_set_type(f, "t.a");
    aipalq_filter_set_user_id(f, "u2");
    l = run(c, f);
    const int a_u2[] = {5, 4, 3};
    expect_page(l, 3, a_u2, 3);
    aipalq_list_free(l);

    aipalq_filter_set_type(f, NULL); /* NULL clears a filter */
    aipalq_filter_set_user_id(f, "u1");
    l = run(c, f);
    const int u1[] = {9, 8, 7, 6, 2, 1, 0};
    expect_page(l, 7, u1, 7);
    aipalq_list_free(l);

    aipalq_filter_set_user_id(f, NULL);
    aipalq_filter_set_queue(f, q2);
    aipalq_filter_add_state(f, AIPALQ_STATE_FAILED);
    l = run(c, f);
    const int failed_q2[] = {13};
    expect_page(l, 1, failed_q2, 1);
    ck_assert_str_eq(aipalq_task_error_message(aipalq_list_at(l, 0)), "boom");
    ck_assert_int_eq(aipalq_task_attempts(aipalq_list_at(l, 0)), 4);
    aipalq_list_free(l);

    /* Filters match whole values; text is never SQL. */
    aipalq_filter_set_queue(f, "no-such-queue");
    l = run(c, f);
    expect_page(l, 0, NULL, 0);
    aipalq_list_free(l);
    aipalq_filter_free(f);
    f = aipalq_filter_new();
    aipalq_filter_set_user_id(f, "u1' OR '1'='1");
    l = run(c, f);
    expect_page(l, 0, NULL, 0);
    aipalq_list_free(l);
    aipalq_filter_set_user_id(f, "u");
    l = run(c, f);
    expect_page(l, 0, NULL, 0);
    aipalq_list_free(l);
    aipalq_filter_free(f);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_default_page)
{
    aipalq_client *c = tu_client(ns, queue);
    aipalq_batch *b = aipalq_batch_new();
    for (int i = 0; i < 25; i++)
        aipalq_batch_add(b, "t.a", "{}", NULL);
    ASSERT_OK(c, aipalq_enqueue_batch(c, b));
    aipalq_filter *f = aipalq_filter_new();
    aipalq_list *l = run(c, f);
    ck_assert_uint_eq(aipalq_list_count(l), 20); /* limit 20 by default */
    ck_assert_int_eq(aipalq_list_total(l), 25);
    ck_assert_str_eq(aipalq_task_id(aipalq_list_at(l, 0)), aipalq_batch_id(b, 24));
    aipalq_list_free(l);
    aipalq_filter_free(f);
    aipalq_batch_free(b);
    aipalq_client_free(c);
}
END_TEST

/* Walks every page of `f` with `limit`, collecting ids in order. */
static size_t walk(aipalq_client *c, aipalq_filter *f, int64_t limit, char (*out)[AIPALQ_ID_SIZE],
                   int64_t want_total)
{
    size_t n = 0;
    for (int64_t offset = 0;; offset += limit) {
        aipalq_filter_set_page(f, limit, offset);
        aipalq_list *l = run(c, f);
        ck_assert_int_eq(aipalq_list_total(l), want_total);
        size_t count = aipalq_list_count(l);
        ck_assert_uint_le(count, (size_t)limit);
        for (size_t i = 0; i < count; i++)
            snprintf(out[n++], AIPALQ_ID_SIZE, "%s", aipalq_task_id(aipalq_list_at(l, i)));
        aipalq_list_free(l);
        if (count < (size_t)limit) {
            ck_assert_int_ge(offset + (int64_t)count, want_total);
            break;
        }
    }
    return n;
}

START_TEST(test_pagination)
{
    aipalq_client *c = tu_client(ns, queue);
    enum { N = 57 };
    aipalq_batch *b = aipalq_batch_new();
    for (int i = 0; i < N; i++)
        aipalq_batch_add(b, "t.a", "{}", NULL);
    ASSERT_OK(c, aipalq_enqueue_batch(c, b));
    aipalq_filter *f = aipalq_filter_new();
    aipalq_filter_set_queue(f, queue);
    static char got[N + 1][AIPALQ_ID_SIZE];
    /* Limit 1: every task exactly once, newest first. */
    size_t n = walk(c, f, 1, got, N);
    ck_assert_uint_eq(n, N);
    for (size_t i = 0; i < N; i++)
        ck_assert_str_eq(got[i], aipalq_batch_id(b, N - 1 - i));
    /* Other page sizes give the same sequence: no duplicates, no gaps. */
    static char again[N + 1][AIPALQ_ID_SIZE];
    const int64_t limits[] = {2, 7, 56, 57, 58, 1000};
    for (size_t k = 0; k < sizeof limits / sizeof limits[0]; k++) {
        ck_assert_uint_eq(walk(c, f, limits[k], again, N), N);
        for (size_t i = 0; i < N; i++)
            ck_assert_str_eq(again[i], got[i]);
    }
    /* Oldest first: the reverse. */
    aipalq_filter_set_oldest_first(f, 1);
    ck_assert_uint_eq(walk(c, f, 10, again, N), N);
    for (size_t i = 0; i < N; i++)
        ck_assert_str_eq(again[i], aipalq_batch_id(b, i));
    aipalq_filter_set_oldest_first(f, 0);
    /* Offset past the end: an empty page with the right total. */
    const int64_t past[] = {N, N + 1, 1000000, INT64_MAX};
    for (size_t k = 0; k < sizeof past / sizeof past[0]; k++) {
        aipalq_filter_set_page(f, 10, past[k]);
        aipalq_list *l = run(c, f);
        ck_assert_uint_eq(aipalq_list_count(l), 0);
        ck_assert_int_eq(aipalq_list_total(l), N);
        ck_assert_ptr_null(aipalq_list_at(l, 0));
        aipalq_list_free(l);
    }
    /* The last partial page. */
    aipalq_filter_set_page(f, 10, 50);
    aipalq_list *l = run(c, f);
    ck_assert_uint_eq(aipalq_list_count(l), 7);
    ck_assert_str_eq(aipalq_task_id(aipalq_list_at(l, 6)), aipalq_batch_id(b, 0));
    aipalq_list_free(l);
    /* Pages stay stable while newer tasks arrive (oldest first). */
    aipalq_filter_set_oldest_first(f, 1);
    aipalq_filter_set_page(f, 5, 10);
    l = run(c, f);
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    aipalq_list *l2 = run(c, f);
    ck_assert_int_eq(aipalq_list_total(l2), N + 1);
    for (size_t i = 0; i < 5; i++)
        ck_assert_str_eq(aipalq_task_id(aipalq_list_at(l, i)),
                         aipalq_task_id(aipalq_list_at(l2, i)));
    aipalq_list_free(l);
    aipalq_list_free(l2);
    aipalq_filter_free(f);
    aipalq_batch_free(b);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_empty_database)
{
    aipalq_client *c = tu_client(ns, queue);
    aipalq_filter *f = aipalq_filter_new();
    aipalq_list *l = run(c, f);
    expect_page(l, 0, NULL, 0);
    aipalq_list_free(l);
    ASSERT_OK(c, aipalq_list_pending(c, 10, 0, &l));
    expect_page(l, 0, NULL, 0);
    aipalq_list_free(l);
    ASSERT_OK(c, aipalq_list_failed(c, 10, 0, &l));
    expect_page(l, 0, NULL, 0);
    aipalq_list_free(l);
    aipalq_filter_free(f);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_pending_view)
{
    aipalq_client *c = populate();
    tu_pg_exec("UPDATE aipalq_tasks SET status = 'retrying' WHERE id = '%s'", ids[4]);
    tu_pg_exec("UPDATE aipalq_tasks SET status = 'running' WHERE id = '%s'", ids[5]);
    aipalq_list *l = NULL;
    ASSERT_OK(c, aipalq_list_pending(c, 100, 0, &l));
    /* pending, scheduled and retrying, oldest first; not running, cancelled, failed */
    const int waiting[] = {0, 1, 2, 3, 4, 6, 7, 10, 11, 12};
    expect_page(l, 10, waiting, 10);
    aipalq_list_free(l);
    ASSERT_OK(c, aipalq_list_pending(c, 3, 3, &l));
    const int page2[] = {3, 4, 6};
    expect_page(l, 10, page2, 3);
    aipalq_list_free(l);
    ASSERT_OK(c, aipalq_list_pending(c, 3, 10, &l));
    expect_page(l, 10, NULL, 0);
    aipalq_list_free(l);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_failed_view)
{
    aipalq_client *c = populate();
    tu_pg_exec("UPDATE aipalq_tasks SET status = 'failed', error_message = 'second'"
               " WHERE id = '%s'",
               ids[2]);
    aipalq_list *l = NULL;
    ASSERT_OK(c, aipalq_list_failed(c, 10, 0, &l));
    const int failed[] = {13, 2}; /* newest first */
    expect_page(l, 2, failed, 2);
    ck_assert_str_eq(aipalq_task_error_message(aipalq_list_at(l, 1)), "second");
    ck_assert_int_eq(aipalq_task_state(aipalq_list_at(l, 0)), AIPALQ_STATE_FAILED);
    aipalq_list_free(l);
    ASSERT_OK(c, aipalq_list_failed(c, 1, 1, &l));
    const int second[] = {2};
    expect_page(l, 2, second, 1);
    aipalq_list_free(l);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_namespaces_scope_lists)
{
    /* Two deployments share the database: each sees only its own tasks in
     * lists, views and counts; a task id is found whatever the namespace. */
    aipalq_client *a = tu_client(ns, queue);
    char other_ns[64];
    tu_unique("li_other", other_ns, sizeof other_ns);
    aipalq_client *b = tu_client(other_ns, queue);
    char ida[AIPALQ_ID_SIZE], idb[AIPALQ_ID_SIZE];
    ASSERT_OK(a, aipalq_enqueue(a, "t.a", "{}", NULL, ida, NULL));
    for (int i = 0; i < 3; i++)
        ASSERT_OK(b, aipalq_enqueue(b, "t.a", "{}", NULL, idb, NULL));
    aipalq_filter *f = aipalq_filter_new();
    aipalq_list *l = run(a, f);
    ck_assert_int_eq(aipalq_list_total(l), 1);
    ck_assert_str_eq(aipalq_task_id(aipalq_list_at(l, 0)), ida);
    aipalq_list_free(l);
    l = run(b, f);
    ck_assert_int_eq(aipalq_list_total(l), 3);
    aipalq_list_free(l);
    ASSERT_OK(a, aipalq_list_pending(a, 10, 0, &l));
    ck_assert_int_eq(aipalq_list_total(l), 1);
    aipalq_list_free(l);
    char *json = NULL;
    ASSERT_OK(a, aipalq_state_counts_json(a, &json));
    ck_assert_msg(tu_contains(json, "\"pending\":1") && !tu_contains(json, "\"pending\":3"),
                  "counts of a: %s", json);
    aipalq_free(json);
    aipalq_task *t = NULL;
    ASSERT_OK(a, aipalq_get(a, idb, &t));
    aipalq_task_free(t);
    /* Cancel and retry act on the task's own namespace in Redis. */
    ASSERT_OK(a, aipalq_cancel(a, idb, NULL));
    int64_t ready;
    tu_depth(b, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 2);
    ASSERT_OK(a, aipalq_retry(a, idb));
    tu_depth(b, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 3);
    tu_depth(a, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    aipalq_filter_free(f);
    aipalq_client_free(a);
    aipalq_client_free(b);
    tu_redis_ns_del(other_ns);
}
END_TEST

START_TEST(test_total_max_age)
{
    /* With a max age the client reuses a filter's count (whatever the page)
     * until it is that old; pages are always read afresh. */
    aipalq_client *c = populate();
    ck_assert_int_eq(aipalq_client_set_list_total_max_age(c, -1), AIPALQ_EINVAL);
    ASSERT_OK(c, aipalq_client_set_list_total_max_age(c, 60000));
    aipalq_filter *f = aipalq_filter_new();
    ASSERT_OK(c, aipalq_filter_set_type(f, "t.b"));
    aipalq_list *l = run(c, f);
    const int newest_b[] = {9, 8, 7, 6};
    expect_page(l, 4, newest_b, 4);
    int64_t counted = aipalq_list_total_ms(l);
    ck_assert(counted > 0);
    aipalq_list_free(l);

    char extra[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.b", "{}", NULL, extra, NULL));
    ASSERT_OK(c, aipalq_filter_set_page(f, 2, 1));
    l = run(c, f);
    /* the kept total, the current page (the new task is on it) */
    ck_assert_int_eq(aipalq_list_total(l), 4);
    ck_assert_int_eq(aipalq_list_total_ms(l), counted);
    ck_assert_uint_eq(aipalq_list_count(l), 2);
    ck_assert_str_eq(aipalq_task_id(aipalq_list_at(l, 0)), ids[9]);
    aipalq_list_free(l);
    /* oldest first is the same filter; an empty page keeps the total too */
    ASSERT_OK(c, aipalq_filter_set_oldest_first(f, 1));
    ASSERT_OK(c, aipalq_filter_set_page(f, 10, 100));
    l = run(c, f);
    ck_assert_int_eq(aipalq_list_total(l), 4);
    ck_assert_uint_eq(aipalq_list_count(l), 0);
    aipalq_list_free(l);

    /* Another filter value is counted on its own. */
    ASSERT_OK(c, aipalq_filter_set_type(f, "t.a"));
    ASSERT_OK(c, aipalq_filter_set_page(f, 20, 0));
    l = run(c, f);
    ck_assert_int_eq(aipalq_list_total(l), 10);
    aipalq_list_free(l);

    /* Max age 0: counted on every call again. */
    ASSERT_OK(c, aipalq_client_set_list_total_max_age(c, 0));
    ASSERT_OK(c, aipalq_filter_set_type(f, "t.b"));
    l = run(c, f);
    ck_assert_int_eq(aipalq_list_total(l), 5);
    ck_assert(aipalq_list_total_ms(l) >= counted);
    aipalq_list_free(l);

    /* A short max age runs out. */
    ASSERT_OK(c, aipalq_client_set_list_total_max_age(c, 200));
    l = run(c, f);
    ck_assert_int_eq(aipalq_list_total(l), 5);
    aipalq_list_free(l);
    ASSERT_OK(c, aipalq_enqueue(c, "t.b", "{}", NULL, extra, NULL));
    l = run(c, f);
    ck_assert_int_eq(aipalq_list_total(l), 5);
    aipalq_list_free(l);
    usleep(250 * 1000);
    l = run(c, f);
    ck_assert_int_eq(aipalq_list_total(l), 6);
    aipalq_list_free(l);

    /* More filters than kept slots: each still gets its own right total. */
    ASSERT_OK(c, aipalq_client_set_list_total_max_age(c, 60000));
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 12; i++) {
            char user[16];
            snprintf(user, sizeof user, "u%d", i);
            ASSERT_OK(c, aipalq_filter_set_user_id(f, user));
            ASSERT_OK(c, aipalq_filter_set_type(f, NULL));
            l = run(c, f);
            int64_t want = i == 1 ? 7 : i == 2 ? 3 : i == 3 ? 3 : 0;
            ck_assert_int_eq(aipalq_list_total(l), want);
            aipalq_list_free(l);
        }
    aipalq_filter_free(f);
    aipalq_client_free(c);
}
END_TEST

int main(void)
{
    tu_require_services();
    tu_scratch_db_begin("list");
    Suite *s = suite_create("list");
    TCase *tc = tcase_create("list");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_filters);
    tcase_add_test(tc, test_default_page);
    tcase_add_test(tc, test_pagination);
    tcase_add_test(tc, test_empty_database);
    tcase_add_test(tc, test_pending_view);
    tcase_add_test(tc, test_failed_view);
    tcase_add_test(tc, test_namespaces_scope_lists);
    tcase_add_test(tc, test_total_max_age);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    tu_scratch_db_end();
    return rc;
}
