/* Integration tests of cancel and retry (lib/cancel.c, retry.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static char ns[64], queue[64];

static void setup(void)
{
    tu_pg_truncate();
    tu_unique("cr", ns, sizeof ns);
    tu_unique("q", queue, sizeof queue);
}

static void teardown(void)
{
    tu_redis_ns_del(ns);
}

static char *key(const char *suffix)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "%s:{%s}:%s", ns, queue, suffix);
    return buf;
}

static aipalq_state state_of(aipalq_client *c, const char *id)
{
    aipalq_task *t = NULL;
    ASSERT_OK(c, aipalq_get(c, id, &t));
    aipalq_state s = aipalq_task_state(t);
    aipalq_task_free(t);
    return s;
}

static long long epoch_of(const char *id)
{
    return tu_pg_int("SELECT epoch FROM aipalq_tasks WHERE id = '%s'", id);
}

START_TEST(test_cancel_pending)
{
    aipalq_client *c = tu_client(ns, queue);
    char id[AIPALQ_ID_SIZE], other[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, other, NULL));
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 2);
    aipalq_state st = AIPALQ_STATE_RUNNING;
    ASSERT_OK(c, aipalq_cancel(c, id, &st));
    ck_assert_int_eq(st, AIPALQ_STATE_CANCELLED);
    /* Withdrawn from Redis: depth drops, its payload is gone. */
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    char *payload = tu_redis_hget(key("job"), id);
    ck_assert_ptr_null(payload);
    payload = tu_redis_hget(key("job"), other);
    ck_assert_ptr_nonnull(payload);
    free(payload);
    /* Recorded in PostgreSQL, with an event. */
    aipalq_task *t = NULL;
    ASSERT_OK(c, aipalq_get(c, id, &t));
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_CANCELLED);
    ck_assert_int_gt(aipalq_task_completed_ms(t), 0);
    aipalq_task_free(t);
    ck_assert_int_eq(tu_pg_int("SELECT count(*) FROM aipalq_events WHERE task_id = '%s'"
                               " AND from_status = 'pending' AND to_status = 'cancelled'",
                               id),
                     1);
    ck_assert_int_eq(tu_pg_int("SELECT count(*) FROM aipalq_tasks WHERE id = '%s'"
                               " AND prev_status = 'pending'",
                               id),
                     1);
    ck_assert_int_eq(state_of(c, other), AIPALQ_STATE_PENDING);
    /* Again: illegal, and nothing changes. */
    st = AIPALQ_STATE_PENDING;
    ASSERT_ST(c, aipalq_cancel(c, id, &st), AIPALQ_EILLEGAL);
    ck_assert(tu_contains(aipalq_client_errmsg(c), "cancelled"));
    ck_assert_int_eq(state_of(c, id), AIPALQ_STATE_CANCELLED);
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    /* state_out may be NULL. */
    ASSERT_OK(c, aipalq_cancel(c, other, NULL));
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 0);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_cancel_scheduled)
{
    aipalq_client *c = tu_client(ns, queue);
    aipalq_opts *o = aipalq_opts_new();
    aipalq_opts_set_delay_ms(o, 3600000);
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", o, id, NULL));
    aipalq_opts_free(o);
    int64_t ready, scheduled;
    tu_depth(c, queue, &ready, &scheduled, NULL);
    ck_assert_int_eq(scheduled, 1);
    aipalq_state st;
    ASSERT_OK(c, aipalq_cancel(c, id, &st));
    ck_assert_int_eq(st, AIPALQ_STATE_CANCELLED);
    tu_depth(c, queue, &ready, &scheduled, NULL);
    ck_assert_int_eq(ready, 0);
    ck_assert_int_eq(scheduled, 0);
    ck_assert_int_eq(state_of(c, id), AIPALQ_STATE_CANCELLED);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_cancel_final_states_illegal)
{
    aipalq_client *c = tu_client(ns, queue);
    char done[AIPALQ_ID_SIZE], failed[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, done, NULL));
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, failed, NULL));
    tu_pg_exec("UPDATE aipalq_tasks SET status = 'completed', result = '{\"ok\":1}'"
               " WHERE id = '%s'",
               done);
    tu_pg_exec("UPDATE aipalq_tasks SET status = 'failed' WHERE id = '%s'", failed);
    ASSERT_ST(c, aipalq_cancel(c, done, NULL), AIPALQ_EILLEGAL);
    ck_assert(tu_contains(aipalq_client_errmsg(c), "completed"));
    ASSERT_ST(c, aipalq_cancel(c, failed, NULL), AIPALQ_EILLEGAL);
    ck_assert_int_eq(state_of(c, done), AIPALQ_STATE_COMPLETED);
    ck_assert_int_eq(state_of(c, failed), AIPALQ_STATE_FAILED);
    /* Retry: failed yes, completed never. */
    ASSERT_ST(c, aipalq_retry(c, done), AIPALQ_EILLEGAL);
    ck_assert(tu_contains(aipalq_client_errmsg(c), "completed"));
    ck_assert_int_eq(state_of(c, done), AIPALQ_STATE_COMPLETED);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_cancel_running_without_lease)
{
    /* PostgreSQL says running but no worker holds a lease (Redis lost it, or
     * never leased it): nobody could see a request, so it ends at once. */
    aipalq_client *c = tu_client(ns, queue);
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    tu_depth(c, queue, NULL, NULL, NULL);
    tu_pg_exec("UPDATE aipalq_tasks SET status = 'running', attempts = 1 WHERE id = '%s'", id);
    aipalq_state st = AIPALQ_STATE_PENDING;
    ASSERT_OK(c, aipalq_cancel(c, id, &st));
    ck_assert_int_eq(st, AIPALQ_STATE_CANCELLED);
    ck_assert_int_eq(state_of(c, id), AIPALQ_STATE_CANCELLED);
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 0);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_unknown_and_malformed_ids)
{
    aipalq_client *c = tu_client(ns, queue);
    const char *unknown = "01900000-0000-7000-8000-000000000001";
    ASSERT_ST(c, aipalq_cancel(c, unknown, NULL), AIPALQ_ENOTFOUND);
    ck_assert(tu_contains(aipalq_client_errmsg(c), unknown));
    ASSERT_ST(c, aipalq_retry(c, unknown), AIPALQ_ENOTFOUND);
    ASSERT_ST(c, aipalq_cancel(c, "not-a-uuid", NULL), AIPALQ_EBADID);
    ASSERT_ST(c, aipalq_retry(c, "not-a-uuid"), AIPALQ_EBADID);
    ASSERT_ST(c, aipalq_cancel(c, NULL, NULL), AIPALQ_EBADID);
    ASSERT_ST(c, aipalq_retry(c, NULL), AIPALQ_EBADID);
    ck_assert_int_eq(tu_pg_int("SELECT count(*) FROM aipalq_tasks"), 0);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_retry_cancelled)
{
    aipalq_client *c = tu_client(ns, queue);
    aipalq_opts *o = aipalq_opts_new();
    aipalq_opts_set_priority(o, 9);
    aipalq_opts_set_user_id(o, "someone");
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{\"x\":[1,2]}", o, id, NULL));
    aipalq_opts_free(o);
    ASSERT_OK(c, aipalq_cancel(c, id, NULL));
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 0);
    ck_assert_int_eq(epoch_of(id), 0);
    tu_pg_exec("UPDATE aipalq_tasks SET attempts = 2, error_message = 'old error',"
               " progress = 40 WHERE id = '%s'",
               id);

    ASSERT_OK(c, aipalq_retry(c, id));
    ck_assert_str_eq(aipalq_client_errmsg(c), "");
    aipalq_task *t = NULL;
    ASSERT_OK(c, aipalq_get(c, id, &t));
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_PENDING);
    ck_assert_int_eq(aipalq_task_attempts(t), 0);
    ck_assert_ptr_null(aipalq_task_error_message(t));
    ck_assert_int_eq(aipalq_task_progress(t), 0);
    ck_assert_int_eq(aipalq_task_completed_ms(t), 0);
    ck_assert_int_eq(aipalq_task_priority(t), 9);
    aipalq_task_free(t);
    ck_assert_int_eq(epoch_of(id), 1);
    /* Dispatched again, as the task it was. */
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    char *meta = tu_redis_hget(key("meta"), id);
    ck_assert_ptr_nonnull(meta);
    ck_assert_msg(strncmp(meta, "p 0 1 9 ", 8) == 0, "meta: %s", meta); /* state att epoch prio */
    free(meta);
    char *payload = tu_redis_hget(key("job"), id);
    ck_assert(tu_contains(payload, "\"user_id\":\"someone\""));
    ck_assert(tu_contains(payload, id));
    free(payload);
    ck_assert_int_eq(tu_pg_int("SELECT count(*) FROM aipalq_events WHERE task_id = '%s'"
                               " AND from_status = 'cancelled' AND to_status = 'pending'",
                               id),
                     1);
    ck_assert_int_eq(tu_pg_int("SELECT count(*) FROM aipalq_tasks WHERE id = '%s'"
                               " AND prev_status = 'cancelled'",
                               id),
                     1);
    /* Retry of a pending task: illegal, nothing changes. */
    ASSERT_ST(c, aipalq_retry(c, id), AIPALQ_EILLEGAL);
    ck_assert(tu_contains(aipalq_client_errmsg(c), "pending"));
    ck_assert_int_eq(epoch_of(id), 1);
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    /* The whole cycle again bumps the epoch again. */
    ASSERT_OK(c, aipalq_cancel(c, id, NULL));
    ASSERT_OK(c, aipalq_retry(c, id));
    ck_assert_int_eq(epoch_of(id), 2);
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_retry_failed)
{
    aipalq_client *c = tu_client(ns, queue);
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    /* As a worker would leave it: failed after its attempts, gone from Redis. */
    tu_depth(c, queue, NULL, NULL, NULL);
    tu_pg_exec("UPDATE aipalq_tasks SET status = 'failed', attempts = 4, error_message = 'x',"
               " error_detail = 'trace', completed_at = now(), started_at = now(),"
               " worker_id = 'w1' WHERE id = '%s'",
               id);
    tu_redis_int("ZREM %s %s", key("ready"), id);
    tu_redis_int("HDEL %s %s", key("meta"), id);
    tu_redis_int("HDEL %s %s", key("job"), id);
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 0);
    ASSERT_OK(c, aipalq_retry(c, id));
    aipalq_task *t = NULL;
    ASSERT_OK(c, aipalq_get(c, id, &t));
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_PENDING);
    ck_assert_int_eq(aipalq_task_attempts(t), 0);
    ck_assert_ptr_null(aipalq_task_error_message(t));
    ck_assert_ptr_null(aipalq_task_error_detail(t));
    ck_assert_ptr_null(aipalq_task_worker_id(t));
    ck_assert_int_eq(aipalq_task_started_ms(t), 0);
    aipalq_task_free(t);
    ck_assert_int_eq(epoch_of(id), 1);
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_cancel_leased_task_is_a_request)
{
    /* A task a worker holds (leased in Redis, running in PostgreSQL) is not
     * withdrawn: the cancel becomes a request its worker sees, and the task
     * stays running until its handler stops. */
    aipalq_client *c = tu_client(ns, queue);
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    tu_depth(c, queue, NULL, NULL, NULL);
    /* What a worker's take does: ready -> leased, meta state r. */
    tu_redis_int("ZREM %s %s", key("ready"), id);
    tu_redis_int("HSET %s %s %s", key("meta"), id, "r 1 0 5 3 1");
    tu_redis_int("ZADD %s 99999999999999 %s", key("leases"), id);
    tu_pg_exec("UPDATE aipalq_tasks SET status = 'running', attempts = 1, token = 1,"
               " worker_id = 'w-1', started_at = now() WHERE id = '%s'",
               id);
    int64_t ready, scheduled, leased;
    tu_depth(c, queue, &ready, &scheduled, &leased);
    ck_assert_int_eq(ready, 0);
    ck_assert_int_eq(leased, 1);
    aipalq_state st = AIPALQ_STATE_CANCELLED;
    ASSERT_OK(c, aipalq_cancel(c, id, &st));
    ck_assert_int_eq(st, AIPALQ_STATE_RUNNING);
    aipalq_task *t = NULL;
    ASSERT_OK(c, aipalq_get(c, id, &t));
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_RUNNING);
    ck_assert_int_eq(aipalq_task_cancel_requested(t), 1);
    aipalq_task_free(t);
    ck_assert_int_eq(tu_redis_int("SISMEMBER %s %s", key("cancel"), id), 1);
    tu_depth(c, queue, &ready, &scheduled, &leased);
    ck_assert_int_eq(leased, 1); /* still its worker's */
    /* Asking again is allowed while it runs, and changes nothing. */
    ASSERT_OK(c, aipalq_cancel(c, id, &st));
    ck_assert_int_eq(st, AIPALQ_STATE_RUNNING);
    /* Retry of a running task is illegal. */
    ASSERT_ST(c, aipalq_retry(c, id), AIPALQ_EILLEGAL);
    aipalq_client_free(c);
}
END_TEST

int main(void)
{
    tu_require_services();
    tu_scratch_db_begin("cancel");
    Suite *s = suite_create("cancel_retry");
    TCase *tc = tcase_create("cancel_retry");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_cancel_pending);
    tcase_add_test(tc, test_cancel_scheduled);
    tcase_add_test(tc, test_cancel_final_states_illegal);
    tcase_add_test(tc, test_cancel_running_without_lease);
    tcase_add_test(tc, test_unknown_and_malformed_ids);
    tcase_add_test(tc, test_retry_cancelled);
    tcase_add_test(tc, test_retry_failed);
    tcase_add_test(tc, test_cancel_leased_task_is_a_request);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    tu_scratch_db_end();
    return rc;
}
