/* Graceful and fast shutdown with tasks in flight: nothing is lost, nothing
 * fails, handed-back tasks do not count an attempt and run elsewhere. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wtest.h"

static const char *const modes[] = {"threads", "prefork"};

static void assert_clean_exit(int ws)
{
    ck_assert_msg(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "the worker ended with status 0x%x", ws);
}

static void assert_no_failures(void)
{
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM aipalq_events "
                                "WHERE to_status IN ('failed', 'cancelled', 'retrying')"),
                     0);
}

/* Each task handed back: pending, attempts 0, one running -> pending event
 * without an error. */
static void assert_handed_back(wt_ctx *ctx, const char *id)
{
    aipalq_task *t = wt_get(ctx, id);
    ck_assert_msg(aipalq_task_state(t) == AIPALQ_STATE_PENDING, "task %s is %s", id,
                  aipalq_state_name(aipalq_task_state(t)));
    ck_assert_int_eq(aipalq_task_attempts(t), 0);
    aipalq_task_free(t);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM aipalq_events WHERE task_id = '%s' AND "
                                "from_status = 'running' AND to_status = 'pending'",
                                id),
                     1);
}

/* Another worker finishes the handed-back tasks: each completes once, on its
 * first counted attempt. */
static void finish_elsewhere(wt_ctx *ctx, char ids[][AIPALQ_ID_SIZE], int n)
{
    wt_proc_opts ob = {.concurrency = n, .tag = "B", .max_sleep_ms = 100};
    wt_proc_start(ctx, &ob);
    for (int i = 0; i < n; i++) {
        wt_wait_state(ctx, ids[i], AIPALQ_STATE_COMPLETED, 10000);
        aipalq_task *t = wt_get(ctx, ids[i]);
        ck_assert_int_eq(aipalq_task_attempts(t), 1);
        aipalq_task_free(t);
        char *tag = wt_sql_text("SELECT result->>'tag' FROM aipalq_tasks WHERE id = '%s'", ids[i]);
        ck_assert_str_eq(tag, "B");
        free(tag);
        ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM aipalq_events WHERE task_id = '%s' "
                                    "AND to_status = 'completed'",
                                    ids[i]),
                         1);
    }
    assert_no_failures();
}

/* SIGTERM with a shutdown timeout (1 s) shorter than the tasks: the worker
 * waits that long, hands them back and exits. */
START_TEST(test_graceful_timeout_hands_back)
{
    const char *mode = modes[_i];
    WT_SKIP_PREFORK_UNDER_ASAN(mode);
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"g.t\",\"queue\":\"@Q\"}]");
    wt_proc_opts oa = {.mode = mode, .concurrency = 2, .shutdown_ms = 1000, .tag = "A"};
    pid_t a = wt_proc_start(&ctx, &oa);
    char ids[2][AIPALQ_ID_SIZE];
    for (int i = 0; i < 2; i++)
        wt_enqueue(&ctx, "g.t", "{\"sleep_ms\":30000}", NULL, ids[i]);
    for (int i = 0; i < 2; i++)
        wt_wait_running_on(&ctx, ids[i], a, 10000);
    int64_t t0 = wt_mono_ms();
    ck_assert_int_eq(kill(a, SIGTERM), 0);
    assert_clean_exit(wt_proc_wait(a, 10000));
    int64_t took = wt_mono_ms() - t0;
    ck_assert_msg(took >= 900 && took < 6000, "%s: the worker took %lld ms to stop", mode,
                  (long long)took);
    for (int i = 0; i < 2; i++)
        assert_handed_back(&ctx, ids[i]);
    assert_no_failures();
    int64_t ready, sched, leased;
    tu_depth(ctx.c, ctx.queue, &ready, &sched, &leased);
    ck_assert_int_eq(ready, 2);
    ck_assert_int_eq(sched + leased, 0);
    finish_elsewhere(&ctx, ids, 2);
    wt_end(&ctx);
}
END_TEST

/* SIGTERM with a shutdown timeout longer than the tasks: they complete
 * there, and the worker takes nothing new meanwhile. */
START_TEST(test_graceful_lets_tasks_finish)
{
    const char *mode = modes[_i];
    WT_SKIP_PREFORK_UNDER_ASAN(mode);
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"g.t\",\"queue\":\"@Q\"}]");
    wt_proc_opts oa = {.mode = mode, .concurrency = 2, .shutdown_ms = 15000, .tag = "A"};
    pid_t a = wt_proc_start(&ctx, &oa);
    char ids[2][AIPALQ_ID_SIZE], later[AIPALQ_ID_SIZE];
    for (int i = 0; i < 2; i++)
        wt_enqueue(&ctx, "g.t", "{\"sleep_ms\":2500}", NULL, ids[i]);
    for (int i = 0; i < 2; i++)
        wt_wait_running_on(&ctx, ids[i], a, 10000);
    ck_assert_int_eq(kill(a, SIGTERM), 0);
    wt_sleep_ms(100);
    wt_enqueue(&ctx, "g.t", "{}", NULL, later);
    assert_clean_exit(wt_proc_wait(a, 15000));
    for (int i = 0; i < 2; i++) {
        aipalq_task *t = wt_get(&ctx, ids[i]);
        ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_COMPLETED);
        ck_assert_int_eq(aipalq_task_attempts(t), 1);
        aipalq_task_free(t);
        char *tag = wt_sql_text("SELECT result->>'tag' FROM aipalq_tasks WHERE id = '%s'", ids[i]);
        ck_assert_str_eq(tag, "A");
        free(tag);
    }
    ck_assert_int_eq(wt_log_count(&ctx, NULL, "completed"), 2);
    aipalq_task *t = wt_get(&ctx, later);
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_PENDING);
    ck_assert_int_eq(aipalq_task_attempts(t), 0);
    aipalq_task_free(t);
    assert_no_failures();
    wt_end(&ctx);
}
END_TEST

/* A second signal stops fast: running tasks are handed back at once, none
 * is lost or failed, and another worker completes them. */
START_TEST(test_fast_stop_hands_back)
{
    const char *mode = modes[_i];
    WT_SKIP_PREFORK_UNDER_ASAN(mode);
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"g.t\",\"queue\":\"@Q\"}]");
    wt_proc_opts oa = {.mode = mode, .concurrency = 2, .shutdown_ms = 30000, .tag = "A"};
    pid_t a = wt_proc_start(&ctx, &oa);
    char ids[3][AIPALQ_ID_SIZE];
    for (int i = 0; i < 2; i++)
        wt_enqueue(&ctx, "g.t", "{\"sleep_ms\":30000}", NULL, ids[i]);
    for (int i = 0; i < 2; i++)
        wt_wait_running_on(&ctx, ids[i], a, 10000);
    wt_enqueue(&ctx, "g.t", "{\"sleep_ms\":30000}", NULL, ids[2]); /* waits for a slot */
    int64_t t0 = wt_mono_ms();
    ck_assert_int_eq(kill(a, SIGTERM), 0);
    wt_sleep_ms(300);
    ck_assert_int_eq(kill(a, SIGTERM), 0);
    assert_clean_exit(wt_proc_wait(a, 10000));
    int64_t took = wt_mono_ms() - t0;
    ck_assert_msg(took < 5000, "%s: the fast stop took %lld ms", mode, (long long)took);
    for (int i = 0; i < 2; i++)
        assert_handed_back(&ctx, ids[i]);
    aipalq_task *t = wt_get(&ctx, ids[2]);
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_PENDING);
    ck_assert_int_eq(aipalq_task_attempts(t), 0);
    aipalq_task_free(t);
    assert_no_failures();
    int64_t ready, sched, leased;
    tu_depth(ctx.c, ctx.queue, &ready, &sched, &leased);
    ck_assert_int_eq(ready, 3);
    ck_assert_int_eq(sched + leased, 0);
    finish_elsewhere(&ctx, ids, 3);
    wt_end(&ctx);
}
END_TEST

/* Thread mode: a handler that ignores the stop and outlives the shutdown
 * deadline has its task handed back; its thread is left to finish, and once
 * the handler returns the process exits (aipalq_worker_free waits for it,
 * and the thread must not wait for work of a run that is over). */
START_TEST(test_handler_past_the_deadline_lets_the_worker_exit)
{
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"g.t\",\"queue\":\"@Q\"}]");
    wt_proc_opts oa = {.mode = "threads", .concurrency = 2, .shutdown_ms = 300, .tag = "A"};
    pid_t a = wt_proc_start(&ctx, &oa);
    char ids[1][AIPALQ_ID_SIZE];
    wt_enqueue(&ctx, "g.t", "{\"sleep_ms\":1500,\"ignore_cancel\":true}", NULL, ids[0]);
    wt_wait_running_on(&ctx, ids[0], a, 10000);
    ck_assert_int_eq(kill(a, SIGTERM), 0);
    assert_clean_exit(wt_proc_wait(a, 20000));
    ck_assert_int_eq(wt_log_count(&ctx, ids[0], "completed"), 1); /* it did return */
    assert_handed_back(&ctx, ids[0]); /* and its late outcome was ignored */
    assert_no_failures();
    finish_elsewhere(&ctx, ids, 1);
    wt_end(&ctx);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("worker_shutdown");
    TCase *tc = wt_tcase("shutdown", 60);
    tcase_add_loop_test(tc, test_graceful_timeout_hands_back, 0, 2);
    tcase_add_loop_test(tc, test_graceful_lets_tasks_finish, 0, 2);
    tcase_add_loop_test(tc, test_fast_stop_hands_back, 0, 2);
    tcase_add_test(tc, test_handler_past_the_deadline_lets_the_worker_exit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return wt_main("wshut", suite);
}
