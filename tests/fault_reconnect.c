/* Fault tests: servers killed and restarted under a live client, which must
 * work again on the next call once they are back. Run by fault_reconnect.sh,
 * which starts private servers (AIPALQ_SVC_DIR) and says where
 * scripts/services.sh is (AIPALQ_SERVICES_SH). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static char ns[64], queue[64];

/* Runs a function of scripts/services.sh on the private servers. */
static void svc(const char *what)
{
    const char *sh = getenv("AIPALQ_SERVICES_SH");
    ck_assert_msg(sh && getenv("AIPALQ_SVC_DIR"), "run me through tests/fault_reconnect.sh");
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "bash -c 'source \"$AIPALQ_SERVICES_SH\" && source \"$AIPALQ_SVC_DIR/env\" && %s'",
             what);
    int rc = system(cmd);
    ck_assert_msg(rc == 0, "%s failed (%d)", what, rc);
}

static void setup(void)
{
    tu_pg_truncate();
    tu_unique("fr", ns, sizeof ns);
    tu_unique("q", queue, sizeof queue);
}

static void teardown(void)
{
    tu_redis_ns_del(ns);
}

static aipalq_client *client(void)
{
    aipalq_client *c = tu_client(ns, queue);
    ASSERT_OK(c, aipalq_client_set_timeouts(c, 2000, 5000));
    ASSERT_OK(c, aipalq_client_connect(c));
    return c;
}

START_TEST(test_redis_killed_and_back)
{
    aipalq_client *c = client();
    char id1[AIPALQ_ID_SIZE], id2[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id1, NULL));
    int64_t ready = -1;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);

    svc("services_redis_kill9");
    ASSERT_ST(c, aipalq_queue_depth(c, queue, &ready, NULL, NULL), AIPALQ_EREDIS);
    /* PostgreSQL is fine: the task is recorded, its dispatch deferred. */
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id2, NULL));
    ck_assert_msg(tu_contains(aipalq_client_errmsg(c), "deferred"), "message: %s",
                  aipalq_client_errmsg(c));
    ASSERT_ST(c, aipalq_queue_depth(c, queue, &ready, NULL, NULL), AIPALQ_EREDIS);
    aipalq_task *t = NULL;
    ASSERT_OK(c, aipalq_get(c, id2, &t));
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_PENDING);
    aipalq_task_free(t);

    svc("services_redis_start_again");
    /* The same client reconnects on its next call. */
    ASSERT_OK(c, aipalq_queue_depth(c, queue, &ready, NULL, NULL));
    int rok = -1, pok = -1;
    ASSERT_OK(c, aipalq_ping(c, &rok, &pok));
    ck_assert_int_eq(rok, 1);
    /* Whatever the restarted Redis kept (AOF, fsync every second), the
     * reconciler makes it hold both tasks, once each. */
    ASSERT_OK(c, aipalq_reconcile(c, 0, NULL, NULL));
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 2);
    ASSERT_OK(c, aipalq_reconcile(c, 0, NULL, NULL));
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 2);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_redis_restarted_between_calls)
{
    aipalq_client *c = client();
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    int64_t ready = -1;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    svc("services_redis_restart"); /* SHUTDOWN with the AOF kept, start again */
    /* The call that finds the old link broken may fail (EREDIS); the one
     * after it works on a new link. */
    aipalq_status st = aipalq_queue_depth(c, queue, &ready, NULL, NULL);
    ck_assert_msg(st == AIPALQ_OK || st == AIPALQ_EREDIS, "got %s: %s", aipalq_status_name(st),
                  aipalq_client_errmsg(c));
    ASSERT_OK(c, aipalq_queue_depth(c, queue, &ready, NULL, NULL));
    ck_assert_int_eq(ready, 1); /* kept by a clean shutdown */
    /* Enqueue right after a restart: committed whatever the link does. */
    svc("services_redis_restart");
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    ASSERT_OK(c, aipalq_reconcile(c, 0, NULL, NULL));
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 2);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_pg_stopped_and_back)
{
    aipalq_client *c = client();
    char id[AIPALQ_ID_SIZE], id2[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    aipalq_task *t = NULL;
    ASSERT_OK(c, aipalq_get(c, id, &t));
    aipalq_task_free(t);
    int64_t ready = -1;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);

    svc("services_pg_stop fast");
    ASSERT_ST(c, aipalq_get(c, id, &t), AIPALQ_EPG);
    ASSERT_ST(c, aipalq_get(c, id, &t), AIPALQ_EPG);
    /* Nothing reaches Redis without its record. */
    ASSERT_ST(c, aipalq_enqueue(c, "t.a", "{}", NULL, id2, NULL), AIPALQ_EPG);
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    int rok = -1, pok = -1;
    ASSERT_ST(c, aipalq_ping(c, &rok, &pok), AIPALQ_EPG);
    ck_assert_int_eq(rok, 1);
    ck_assert_int_eq(pok, 0);

    svc("services_pg_start_again");
    /* The broken link was dropped when it failed: the next call reconnects. */
    ASSERT_OK(c, aipalq_get(c, id, &t));
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_PENDING);
    aipalq_task_free(t);
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id2, NULL));
    ck_assert_str_eq(aipalq_client_errmsg(c), "");
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 2);
    ASSERT_OK(c, aipalq_ping(c, &rok, &pok));
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_pg_restarted_between_calls)
{
    aipalq_client *c = client();
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    const char *modes[] = {"services_pg_restart fast", "services_pg_restart immediate"};
    for (int m = 0; m < 2; m++) {
        svc(modes[m]);
        /* The first call finds the old session gone (EPG); the next works. */
        aipalq_task *t = NULL;
        aipalq_status st = aipalq_get(c, id, &t);
        ck_assert_msg(st == AIPALQ_OK || st == AIPALQ_EPG, "%s: got %s: %s", modes[m],
                      aipalq_status_name(st), aipalq_client_errmsg(c));
        aipalq_task_free(t);
        t = NULL;
        ASSERT_OK(c, aipalq_get(c, id, &t));
        aipalq_task_free(t);
        /* Prepared statements are prepared again on the new session. */
        char id2[AIPALQ_ID_SIZE];
        ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id2, NULL));
        ASSERT_OK(c, aipalq_get(c, id2, &t));
        aipalq_task_free(t);
    }
    /* A failed enqueue after a restart left nothing in Redis without a row. */
    ASSERT_OK(c, aipalq_reconcile(c, 0, NULL, NULL));
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, tu_pg_int("SELECT count(*) FROM aipalq_tasks"));
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_enqueue_across_pg_restart)
{
    /* An enqueue whose statement hits the dead session fails cleanly (EPG,
     * nothing in Redis); repeated, it succeeds. */
    aipalq_client *c = client();
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    svc("services_pg_restart immediate");
    aipalq_status st = aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL);
    ck_assert_msg(st == AIPALQ_OK || st == AIPALQ_EPG, "got %s", aipalq_status_name(st));
    if (st != AIPALQ_OK)
        ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 2);
    ck_assert_int_eq(tu_pg_int("SELECT count(*) FROM aipalq_tasks"), 2);
    aipalq_client_free(c);
}
END_TEST

int main(void)
{
    tu_require_services();
    if (!getenv("AIPALQ_SERVICES_SH") || !getenv("AIPALQ_SVC_DIR")) {
        fprintf(stderr, "FAIL: run this test through tests/fault_reconnect.sh, which starts the "
                        "private servers it kills\n");
        return 1;
    }
    tu_scratch_db_begin("reconnect");
    Suite *s = suite_create("fault_reconnect");
    TCase *tc = tcase_create("reconnect");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_redis_killed_and_back);
    tcase_add_test(tc, test_redis_restarted_between_calls);
    tcase_add_test(tc, test_pg_stopped_and_back);
    tcase_add_test(tc, test_pg_restarted_between_calls);
    tcase_add_test(tc, test_enqueue_across_pg_restart);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    tu_scratch_db_end();
    return rc;
}
