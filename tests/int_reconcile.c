/* Integration tests of the reconciler (lib/reconcile.c): PostgreSQL is the
 * record; what Redis lost is dispatched again, what Redis knows and
 * PostgreSQL missed is recorded. Redis is emptied by deleting the test's
 * namespace (the effect of a FLUSHALL on it, without disturbing other users
 * of the same server). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "testutil.h"

static char ns[64], queue[64];

static void setup(void)
{
    tu_pg_truncate();
    tu_unique("rc", ns, sizeof ns);
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

static void reconcile(aipalq_client *c, int64_t grace, int64_t want_redispatched,
                      int64_t want_repaired)
{
    int64_t redispatched = -1, repaired = -1;
    ASSERT_OK(c, aipalq_reconcile(c, grace, &redispatched, &repaired));
    ck_assert_int_eq(redispatched, want_redispatched);
    ck_assert_int_eq(repaired, want_repaired);
}

START_TEST(test_lost_tasks_redispatched)
{
    aipalq_client *c = tu_client(ns, queue);
    aipalq_batch *b = aipalq_batch_new();
    for (int i = 0; i < 30; i++)
        aipalq_batch_add(b, "t.a", "{}", NULL);
    ASSERT_OK(c, aipalq_enqueue_batch(c, b));
    aipalq_opts *o = aipalq_opts_new();
    aipalq_opts_set_delay_ms(o, 3600000);
    char delayed[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", o, delayed, NULL));
    aipalq_opts_free(o);
    int64_t ready, scheduled;
    tu_depth(c, queue, &ready, &scheduled, NULL);
    ck_assert_int_eq(ready, 30);
    ck_assert_int_eq(scheduled, 1);
    /* Nothing lost: nothing to do. */
    reconcile(c, 0, 0, 0);
    /* Redis loses everything. */
    tu_redis_ns_del(ns);
    tu_depth(c, queue, &ready, &scheduled, NULL);
    ck_assert_int_eq(ready, 0);
    ck_assert_int_eq(scheduled, 0);
    /* Younger than the grace period: left alone. */
    reconcile(c, 3600000, 0, 0);
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 0);
    /* With no grace: every one back, each in its place. */
    reconcile(c, 0, 31, 0);
    tu_depth(c, queue, &ready, &scheduled, NULL);
    ck_assert_int_eq(ready, 30);
    ck_assert_int_eq(scheduled, 1);
    ck_assert_int_eq(tu_pg_int("SELECT count(*) FROM aipalq_tasks WHERE epoch = 1"), 31);
    ck_assert_int_eq(tu_pg_int("SELECT count(*) FROM aipalq_tasks WHERE status = 'scheduled'"), 1);
    ck_assert_int_eq(tu_pg_int("SELECT count(*) FROM aipalq_events"
                               " WHERE message LIKE '%%reconciler%%'"),
                     31);
    /* Dispatched as they were: order and payload. */
    size_t n = 0;
    char **ranked = tu_redis_zrange(key("ready"), &n);
    ck_assert_uint_eq(n, 30);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(ranked[i], aipalq_batch_id(b, i));
    tu_strv_free(ranked, n);
    char *meta = tu_redis_hget(key("meta"), aipalq_batch_id(b, 3));
    ck_assert_msg(meta && strncmp(meta, "p 0 1 5 ", 8) == 0, "meta: %s", meta);
    free(meta);
    /* Again: all present now. */
    reconcile(c, 0, 0, 0);
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 30);
    aipalq_batch_free(b);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_partial_loss)
{
    aipalq_client *c = tu_client(ns, queue);
    char ids[5][AIPALQ_ID_SIZE];
    for (int i = 0; i < 5; i++)
        ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, ids[i], NULL));
    tu_depth(c, queue, NULL, NULL, NULL);
    /* Two lost (a crash between commit and dispatch looks like this). */
    tu_redis_int("HDEL %s %s %s", key("meta"), ids[1], ids[3]);
    tu_redis_int("HDEL %s %s %s", key("job"), ids[1], ids[3]);
    tu_redis_int("ZREM %s %s %s", key("ready"), ids[1], ids[3]);
    reconcile(c, 0, 2, 0);
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 5);
    ck_assert_int_eq(tu_pg_int("SELECT count(*) FROM aipalq_tasks WHERE epoch = 1"), 2);
    ck_assert_int_eq(tu_pg_int("SELECT epoch FROM aipalq_tasks WHERE id = '%s'", ids[3]), 1);
    ck_assert_int_eq(tu_pg_int("SELECT epoch FROM aipalq_tasks WHERE id = '%s'", ids[2]), 0);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_lost_running_tasks)
{
    aipalq_client *c = tu_client(ns, queue);
    char spent[AIPALQ_ID_SIZE], left[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, spent, NULL));
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, left, NULL));
    tu_depth(c, queue, NULL, NULL, NULL);
    /* Both running in PostgreSQL; Redis lost them. One has used its last
     * attempt (max_retries 3: the 4th), one has attempts left. */
    tu_pg_exec("UPDATE aipalq_tasks SET status = 'running', attempts = 4, worker_id = 'w'"
               " WHERE id = '%s'",
               spent);
    tu_pg_exec("UPDATE aipalq_tasks SET status = 'running', attempts = 1, worker_id = 'w'"
               " WHERE id = '%s'",
               left);
    tu_redis_ns_del(ns);
    reconcile(c, 0, 1, 1);
    aipalq_task *t = NULL;
    ASSERT_OK(c, aipalq_get(c, spent, &t));
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_FAILED);
    ck_assert(tu_contains(aipalq_task_error_message(t), "lost"));
    ck_assert_int_gt(aipalq_task_completed_ms(t), 0);
    aipalq_task_free(t);
    ASSERT_OK(c, aipalq_get(c, left, &t));
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_PENDING);
    ck_assert_int_eq(aipalq_task_attempts(t), 1); /* the lost attempt counts */
    ck_assert_ptr_null(aipalq_task_worker_id(t));
    aipalq_task_free(t);
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    char *meta = tu_redis_hget(key("meta"), left);
    ck_assert_msg(meta && strncmp(meta, "p 1 1 ", 6) == 0, "meta: %s", meta);
    free(meta);
    /* The failed one shows in the failed view. */
    aipalq_list *l = NULL;
    ASSERT_OK(c, aipalq_list_failed(c, 10, 0, &l));
    ck_assert_int_eq(aipalq_list_total(l), 1);
    ck_assert_str_eq(aipalq_task_id(aipalq_list_at(l, 0)), spent);
    aipalq_list_free(l);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_outcome_recovered_from_redis)
{
    /* A worker's failure reached Redis (its cached outcome) but not
     * PostgreSQL. */
    aipalq_client *c = tu_client(ns, queue);
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    tu_depth(c, queue, NULL, NULL, NULL);
    tu_pg_exec("UPDATE aipalq_tasks SET status = 'running', attempts = 1 WHERE id = '%s'", id);
    tu_redis_ns_del(ns);
    tu_redis_int("HSET %s %s %s", key("done"), id, "{\"status\":\"failed\",\"error\":\"boom\"}");
    reconcile(c, 0, 0, 1);
    aipalq_task *t = NULL;
    ASSERT_OK(c, aipalq_get(c, id, &t));
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_FAILED);
    ck_assert_str_eq(aipalq_task_error_message(t), "boom");
    aipalq_task_free(t);
    reconcile(c, 0, 0, 0);
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 0);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_one_reconciler_at_a_time)
{
    aipalq_client *c = tu_client(ns, queue);
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    tu_depth(c, queue, NULL, NULL, NULL);
    tu_redis_ns_del(ns);
    /* Another process holds the reconciler's lock ("aipalqrc"). */
    PGconn *pg = PQconnectdb(tu_db_url());
    ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
    PQclear(PQexec(pg, "SELECT pg_advisory_lock(7019893431471006563)"));
    reconcile(c, 0, 0, 0); /* OK, nothing done */
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 0);
    PQclear(PQexec(pg, "SELECT pg_advisory_unlock(7019893431471006563)"));
    reconcile(c, 0, 1, 0);
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    /* The reconciler released its lock: the other process can take it. */
    PGresult *res = PQexec(pg, "SELECT pg_try_advisory_lock(7019893431471006563)");
    ck_assert_str_eq(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    PQfinish(pg);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_final_tasks_not_redispatched)
{
    aipalq_client *c = tu_client(ns, queue);
    char a[AIPALQ_ID_SIZE], b[AIPALQ_ID_SIZE], d[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, a, NULL));
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, b, NULL));
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, d, NULL));
    ASSERT_OK(c, aipalq_cancel(c, a, NULL));
    tu_pg_exec("UPDATE aipalq_tasks SET status = 'completed' WHERE id = '%s'", b);
    tu_pg_exec("UPDATE aipalq_tasks SET status = 'failed' WHERE id = '%s'", d);
    tu_redis_ns_del(ns);
    reconcile(c, 0, 0, 0);
    ck_assert_int_eq(tu_redis_ns_keys(ns), 0);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_many_pages)
{
    /* More lost tasks than one reconciler page (500), over two queues. */
    aipalq_client *c = tu_client(ns, queue);
    char q2[64];
    tu_unique("q2", q2, sizeof q2);
    ASSERT_OK(c, aipalq_type_define(c, "t.b", q2));
    aipalq_batch *b = aipalq_batch_new();
    for (int i = 0; i < 1200; i++)
        aipalq_batch_add(b, i % 3 ? "t.a" : "t.b", "{}", NULL);
    ASSERT_OK(c, aipalq_enqueue_batch(c, b));
    aipalq_batch_free(b);
    /* The enqueue did not wait for its dispatch's reply; a call on the same
     * client does, so Redis loses the tasks only after it had them. */
    tu_depth(c, queue, NULL, NULL, NULL);
    tu_redis_ns_del(ns);
    reconcile(c, 0, 1200, 0);
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 800);
    tu_depth(c, q2, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 400);
    reconcile(c, 0, 0, 0);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_concurrent_reconcilers)
{
    /* Reconcilers in several processes at once: each lost task is
     * dispatched again exactly once (one holds the lock; the others return
     * OK with zero counts or find nothing left). */
    enum { NPROC = 4, NTASKS = 200 };
    aipalq_client *c = tu_client(ns, queue);
    aipalq_batch *b = aipalq_batch_new();
    for (int i = 0; i < NTASKS; i++)
        aipalq_batch_add(b, "t.a", "{}", NULL);
    ASSERT_OK(c, aipalq_enqueue_batch(c, b));
    aipalq_batch_free(b);
    /* The enqueue did not wait for its dispatch's reply; a call on the same
     * client does, so Redis loses the tasks only after it had them. */
    tu_depth(c, queue, NULL, NULL, NULL);
    tu_redis_ns_del(ns);
    int out[2], gate[2];
    ck_assert_int_eq(pipe(out), 0);
    ck_assert_int_eq(pipe(gate), 0);
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            close(gate[1]);
            char ch;
            (void)!read(gate[0], &ch, 1);
            aipalq_client *r = aipalq_client_new(NULL, NULL);
            aipalq_client_set_namespace(r, ns);
            int64_t redispatched = 0, repaired = 0;
            aipalq_status st = aipalq_reconcile(r, 0, &redispatched, &repaired);
            char line[64];
            snprintf(line, sizeof line, "%lld %d\n", (long long)redispatched, (int)st);
            (void)!write(out[1], line, strlen(line));
            aipalq_client_free(r);
            _exit(0);
        }
    }
    close(gate[0]);
    close(gate[1]);
    close(out[1]);
    for (int i = 0; i < NPROC; i++)
        waitpid(pids[i], NULL, 0);
    char buf[NPROC * 64 + 1];
    size_t len = 0;
    ssize_t got;
    while ((got = read(out[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)got;
    buf[len] = '\0';
    close(out[0]);
    long long sum = 0;
    int lines = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        long long n = -1;
        int st = -1;
        ck_assert_int_eq(sscanf(line, "%lld %d", &n, &st), 2);
        ck_assert_msg(st == AIPALQ_OK, "a reconciler failed: %s", aipalq_status_name(st));
        sum += n;
        lines++;
    }
    ck_assert_int_eq(lines, NPROC);
    ck_assert_int_eq(sum, NTASKS);
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, NTASKS);
    ck_assert_int_eq(tu_pg_int("SELECT count(*) FROM aipalq_tasks WHERE epoch = 1"), NTASKS);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_namespace_scopes_reconciler)
{
    /* A reconciler dispatches only its own namespace's lost tasks, into its
     * own keys. */
    aipalq_client *a = tu_client(ns, queue);
    char other_ns[64];
    tu_unique("rc_other", other_ns, sizeof other_ns);
    aipalq_client *b = tu_client(other_ns, queue);
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(a, aipalq_enqueue(a, "t.a", "{}", NULL, id, NULL));
    for (int i = 0; i < 4; i++)
        ASSERT_OK(b, aipalq_enqueue(b, "t.a", "{}", NULL, id, NULL));
    int64_t ready;
    tu_depth(b, queue, &ready, NULL, NULL);
    tu_redis_ns_del(ns);
    tu_redis_ns_del(other_ns);
    reconcile(a, 0, 1, 0);
    tu_depth(a, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    ck_assert_int_eq(tu_redis_ns_keys(other_ns), 0);
    reconcile(b, 0, 4, 0);
    tu_depth(b, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 4);
    tu_depth(a, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    aipalq_client_free(a);
    aipalq_client_free(b);
    tu_redis_ns_del(other_ns);
}
END_TEST

START_TEST(test_running_but_waiting_in_redis)
{
    /* PostgreSQL says running, Redis has the task waiting again (its lease
     * was reclaimed and the reclaimer died before recording it): recorded as
     * pending, nothing dispatched twice. */
    aipalq_client *c = tu_client(ns, queue);
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    tu_depth(c, queue, NULL, NULL, NULL);
    tu_pg_exec("UPDATE aipalq_tasks SET status = 'running', attempts = 1, worker_id = 'w'"
               " WHERE id = '%s'",
               id);
    reconcile(c, 0, 0, 1);
    aipalq_task *t = NULL;
    ASSERT_OK(c, aipalq_get(c, id, &t));
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_PENDING);
    ck_assert_ptr_null(aipalq_task_worker_id(t));
    aipalq_task_free(t);
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_lost_retrying_task_waits_for_its_time)
{
    aipalq_client *c = tu_client(ns, queue);
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    tu_depth(c, queue, NULL, NULL, NULL);
    tu_pg_exec("UPDATE aipalq_tasks SET status = 'retrying', attempts = 1,"
               " run_at = now() + interval '1 hour' WHERE id = '%s'",
               id);
    tu_redis_ns_del(ns);
    reconcile(c, 0, 1, 0);
    int64_t ready, scheduled;
    tu_depth(c, queue, &ready, &scheduled, NULL);
    ck_assert_int_eq(ready, 0);
    ck_assert_int_eq(scheduled, 1);
    char *meta = tu_redis_hget(key("meta"), id);
    ck_assert_msg(meta && strncmp(meta, "s 1 1 ", 6) == 0, "meta: %s", meta);
    free(meta);
    aipalq_client_free(c);
}
END_TEST

int main(void)
{
    tu_require_services();
    tu_scratch_db_begin("reconcile");
    Suite *s = suite_create("reconcile");
    TCase *tc = tcase_create("reconcile");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_lost_tasks_redispatched);
    tcase_add_test(tc, test_partial_loss);
    tcase_add_test(tc, test_lost_running_tasks);
    tcase_add_test(tc, test_outcome_recovered_from_redis);
    tcase_add_test(tc, test_one_reconciler_at_a_time);
    tcase_add_test(tc, test_final_tasks_not_redispatched);
    tcase_add_test(tc, test_many_pages);
    tcase_add_test(tc, test_concurrent_reconcilers);
    tcase_add_test(tc, test_namespace_scopes_reconciler);
    tcase_add_test(tc, test_running_but_waiting_in_redis);
    tcase_add_test(tc, test_lost_retrying_task_waits_for_its_time);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    tu_scratch_db_end();
    return rc;
}
