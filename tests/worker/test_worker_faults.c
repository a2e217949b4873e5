/* Failures and limits: retries with backoff, a worker killed mid-task, soft
 * and hard time limits, crashing handlers, a prefork child killed, and
 * cancellation of running tasks. Workers are helper processes
 * (test_worker_proc); outcomes are read from PostgreSQL and Redis. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wtest.h"

static const char *const modes[] = {"threads", "prefork"};

static char *events_of(const char *id)
{
    return wt_history(id);
}

static long long count_events(const char *id, const char *to_status)
{
    return wt_sql_int(
        "SELECT count(*) FROM aipalq_events WHERE task_id = '%s' AND to_status = '%s'", id,
        to_status);
}

/* A retryable failure runs max_retries + 1 times, each retry after its
 * backoff (200 ms, then 400 ms), then fails with the handler's error. */
START_TEST(test_retries_with_backoff)
{
    wt_ctx ctx;
    wt_begin(&ctx,
             "[{\"name\":\"f.t\",\"queue\":\"@Q\",\"max_retries\":2,"
             "\"backoff_base_ms\":200,\"backoff_cap_ms\":1000,\"backoff_jitter_percent\":0}]");
    wt_proc_start(&ctx, NULL);
    char id[AIPALQ_ID_SIZE];
    wt_enqueue(&ctx, "f.t", "{\"fail\":\"boom\",\"detail\":\"trace: here\",\"retryable\":true}",
               NULL, id);
    wt_wait_state(&ctx, id, AIPALQ_STATE_FAILED, 15000);
    aipalq_task *t = wt_get(&ctx, id);
    ck_assert_int_eq(aipalq_task_attempts(t), 3);
    ck_assert_int_eq(aipalq_task_max_retries(t), 2);
    ck_assert_str_eq(aipalq_task_error_message(t), "boom");
    ck_assert_str_eq(aipalq_task_error_detail(t), "trace: here");
    ck_assert_int_gt(aipalq_task_completed_ms(t), 0);
    aipalq_task_free(t);
    char *evs = events_of(id);
    ck_assert_str_eq(evs, "running,retrying,running,retrying,running,failed");
    free(evs);
    ck_assert_int_eq(wt_log_count(&ctx, id, "failed"), 3);
    /* Each retry started at least its backoff after the previous attempt
     * started (the handlers' clock), and not much later than that after the
     * failure was recorded (the events' clock; a little slack for the
     * recorder). */
    const int64_t delay[] = {200, 400};
    long long starts[4] = {0};
    FILE *f = fopen(ctx.log, "r");
    ck_assert_ptr_nonnull(f);
    char line[512], lid[64], what[32];
    int att;
    long pid;
    long long start;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%63s %d %ld %31s %lld", lid, &att, &pid, what, &start) == 5 &&
            strcmp(lid, id) == 0 && att >= 1 && att <= 3)
            starts[att] = start;
    fclose(f);
    for (int n = 0; n < 2; n++) {
        long long between = starts[n + 2] - starts[n + 1];
        ck_assert_msg(starts[n + 1] > 0 && between >= delay[n],
                      "attempt %d started %lld ms after attempt %d, want >= %lld", n + 2, between,
                      n + 1, (long long)delay[n]);
        long long gap = wt_sql_int("WITH e AS (SELECT * FROM " WT_HISTORY ") "
                                   "SELECT (extract(epoch FROM (SELECT at FROM e WHERE i = %d) - "
                                   "(SELECT at FROM e WHERE i = %d)) * 1000)::bigint",
                                   id, id, 2 * n + 3, 2 * n + 2);
        ck_assert_msg(gap >= delay[n] - 150 && gap <= delay[n] + 2500,
                      "retry %d started %lld ms after the failure, want about %lld", n + 1, gap,
                      (long long)delay[n]);
        /* The attempt numbers of the events. */
        ck_assert_int_eq(
            wt_sql_int("SELECT attempt FROM " WT_HISTORY " WHERE i = %d", id, id, 2 * n + 2),
            n + 1);
    }
    /* Redis holds nothing of it but the cached outcome. */
    int64_t r, s, l;
    tu_depth(ctx.c, ctx.queue, &r, &s, &l);
    ck_assert_int_eq(r + s + l, 0);
    wt_end(&ctx);
}
END_TEST

/* A worker process killed with SIGKILL mid-task: once the lease (2 s) runs
 * out, another worker runs the task; the lost delivery counts as an attempt,
 * and the task completes exactly once. */
START_TEST(test_worker_killed_mid_task)
{
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"k.t\",\"queue\":\"@Q\",\"max_retries\":3}]");
    wt_proc_opts oa = {.lease_ms = 2000, .tag = "A"};
    pid_t a = wt_proc_start(&ctx, &oa);
    char id[AIPALQ_ID_SIZE];
    wt_enqueue(&ctx, "k.t", "{\"sleep_ms\":30000,\"misbehave_attempts\":1}", NULL, id);
    wt_wait_running_on(&ctx, id, a, 10000);
    ck_assert_int_eq(kill(a, SIGKILL), 0);
    int ws = wt_proc_wait(a, 5000);
    ck_assert(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
    int64_t killed = wt_mono_ms();

    wt_proc_opts ob = {.lease_ms = 2000, .tag = "B"};
    pid_t b = wt_proc_start(&ctx, &ob);
    wt_wait_state(&ctx, id, AIPALQ_STATE_COMPLETED, 15000);
    int64_t took = wt_mono_ms() - killed;
    ck_assert_msg(took < 10000, "completed %lld ms after the kill", (long long)took);
    aipalq_task *t = wt_get(&ctx, id);
    ck_assert_int_eq(aipalq_task_attempts(t), 2);
    char needle[32];
    snprintf(needle, sizeof needle, ":%d:", (int)b);
    ck_assert_msg(tu_contains(aipalq_task_worker_id(t), needle), "completed by %s",
                  aipalq_task_worker_id(t));
    aipalq_task_free(t);
    char *tag = wt_sql_text("SELECT result->>'tag' FROM aipalq_tasks WHERE id = '%s'", id);
    ck_assert_str_eq(tag, "B");
    free(tag);
    ck_assert_int_eq(count_events(id, "completed"), 1);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM aipalq_events WHERE task_id = '%s' AND "
                                "to_status = 'pending' AND message LIKE 'lease expired%%'",
                                id),
                     1);
    char *evs = events_of(id);
    ck_assert_str_eq(evs, "running,pending,running,completed");
    free(evs);
    ck_assert_int_eq(wt_log_count(&ctx, id, NULL), 1); /* A never finished its run */
    int64_t r, s, l;
    tu_depth(ctx.c, ctx.queue, &r, &s, &l);
    ck_assert_int_eq(r + s + l, 0);
    wt_end(&ctx);
}
END_TEST

/* The same on the last attempt (max_retries 0): the reclaimed task fails
 * with "worker lost", and no handler ever completes it. */
START_TEST(test_worker_killed_on_last_attempt)
{
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"k.t\",\"queue\":\"@Q\",\"max_retries\":0}]");
    wt_proc_opts oa = {.lease_ms = 2000, .tag = "A"};
    pid_t a = wt_proc_start(&ctx, &oa);
    char id[AIPALQ_ID_SIZE];
    wt_enqueue(&ctx, "k.t", "{\"sleep_ms\":30000,\"misbehave_attempts\":1}", NULL, id);
    wt_wait_running_on(&ctx, id, a, 10000);
    ck_assert_int_eq(kill(a, SIGKILL), 0);
    wt_proc_wait(a, 5000);
    wt_proc_opts ob = {.lease_ms = 2000, .tag = "B"};
    wt_proc_start(&ctx, &ob);
    wt_wait_state(&ctx, id, AIPALQ_STATE_FAILED, 10000);
    aipalq_task *t = wt_get(&ctx, id);
    ck_assert_int_eq(aipalq_task_attempts(t), 1);
    ck_assert_msg(tu_contains(aipalq_task_error_message(t), "worker lost"), "error: %s",
                  aipalq_task_error_message(t) ? aipalq_task_error_message(t) : "(null)");
    aipalq_task_free(t);
    char *evs = events_of(id);
    ck_assert_str_eq(evs, "running,failed");
    free(evs);
    ck_assert_int_eq(wt_log_count(&ctx, id, NULL), 0);
    int64_t r, s, l;
    tu_depth(ctx.c, ctx.queue, &r, &s, &l);
    ck_assert_int_eq(r + s + l, 0);
    wt_end(&ctx);
}
END_TEST

/* A zombie in the loop: worker A freezes (SIGSTOP) mid-task past its lease,
 * B reclaims and completes the task, then A wakes up and its handler
 * completes too: A's late result is rejected, the row keeps B's, and there
 * is one completion. A goes on working. */
START_TEST(test_zombie_outcome_rejected)
{
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"z.t\",\"queue\":\"@Q\",\"max_retries\":3}]");
    wt_proc_opts oa = {.lease_ms = 2000, .tag = "A"};
    pid_t a = wt_proc_start(&ctx, &oa);
    char id[AIPALQ_ID_SIZE], id2[AIPALQ_ID_SIZE];
    /* A sleeps without looking at should_stop, so it completes whatever
     * happened meanwhile; later attempts complete at once. */
    wt_enqueue(&ctx, "z.t", "{\"sleep_ms\":1500,\"ignore_cancel\":true,\"misbehave_attempts\":1}",
               NULL, id);
    wt_wait_running_on(&ctx, id, a, 10000);
    ck_assert_int_eq(kill(a, SIGSTOP), 0);
    wt_proc_opts ob = {.lease_ms = 2000, .tag = "B"};
    pid_t b = wt_proc_start(&ctx, &ob);
    wt_wait_state(&ctx, id, AIPALQ_STATE_COMPLETED, 10000);
    ck_assert_int_eq(kill(b, SIGTERM), 0);
    wt_proc_wait(b, 10000);
    ck_assert_int_eq(kill(a, SIGCONT), 0);
    /* A's handler finishes, and its outcome goes through A's recorder. */
    int64_t t0 = wt_mono_ms();
    while (wt_log_count(&ctx, id, "completed") < 2) {
        ck_assert_msg(wt_mono_ms() - t0 < 5000, "A's handler did not finish");
        wt_sleep_ms(20);
    }
    wt_enqueue(&ctx, "z.t", "{}", NULL, id2);
    wt_wait_state(&ctx, id2, AIPALQ_STATE_COMPLETED, 10000); /* A again, after its record */
    char *tag = wt_sql_text("SELECT result->>'tag' FROM aipalq_tasks WHERE id = '%s'", id);
    ck_assert_str_eq(tag, "B");
    free(tag);
    tag = wt_sql_text("SELECT result->>'tag' FROM aipalq_tasks WHERE id = '%s'", id2);
    ck_assert_str_eq(tag, "A");
    free(tag);
    aipalq_task *t = wt_get(&ctx, id);
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_COMPLETED);
    ck_assert_int_eq(aipalq_task_attempts(t), 2);
    aipalq_task_free(t);
    ck_assert_int_eq(count_events(id, "completed"), 1);
    char *evs = events_of(id);
    ck_assert_str_eq(evs, "running,pending,running,completed");
    free(evs);
    int64_t r, s, l;
    tu_depth(ctx.c, ctx.queue, &r, &s, &l);
    ck_assert_int_eq(r + s + l, 0);
    wt_end(&ctx);
}
END_TEST

/* A handler that waits for its soft time limit (300 ms) sees it, in both
 * modes (prefork: the parent signals the child). */
START_TEST(test_soft_limit_observed)
{
    const char *mode = modes[_i];
    WT_SKIP_PREFORK_UNDER_ASAN(mode);
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"s.t\",\"queue\":\"@Q\",\"soft_time_limit_ms\":300,"
                   "\"hard_time_limit_ms\":20000}]");
    wt_proc_opts o = {.mode = mode};
    wt_proc_start(&ctx, &o);
    char id[AIPALQ_ID_SIZE];
    wt_enqueue(&ctx, "s.t", "{\"until_soft\":true}", NULL, id);
    wt_wait_state(&ctx, id, AIPALQ_STATE_COMPLETED, 15000);
    ck_assert_int_eq(
        wt_sql_int("SELECT (result->>'soft_limit_passed')::bool::int FROM aipalq_tasks "
                   "WHERE id = '%s'",
                   id),
        1);
    long long waited =
        wt_sql_int("SELECT (result->>'waited_ms')::bigint FROM aipalq_tasks WHERE id = '%s'", id);
    ck_assert_msg(waited >= 250 && waited < 3000, "%s: the soft limit came after %lld ms", mode,
                  waited);
    ck_assert_int_eq(wt_log_count(&ctx, id, "soft"), 1);
    wt_end(&ctx);
}
END_TEST

/* Prefork: a handler that spins past its hard limit (1 s) without looking
 * is killed, its task fails, and the worker goes on. */
START_TEST(test_hard_limit_kills_prefork_handler)
{
    WT_SKIP_PREFORK_UNDER_ASAN("prefork");
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"h.t\",\"queue\":\"@Q\",\"max_retries\":3,"
                   "\"soft_time_limit_ms\":0,\"hard_time_limit_ms\":1000}]");
    wt_proc_opts o = {.mode = "prefork"};
    pid_t p = wt_proc_start(&ctx, &o);
    char id[AIPALQ_ID_SIZE], id2[AIPALQ_ID_SIZE];
    wt_enqueue(&ctx, "h.t", "{\"spin_ms\":15000}", NULL, id);
    wt_wait_state(&ctx, id, AIPALQ_STATE_FAILED, 10000);
    aipalq_task *t = wt_get(&ctx, id);
    ck_assert_str_eq(aipalq_task_error_message(t), "hard time limit exceeded");
    ck_assert_int_eq(aipalq_task_attempts(t), 1); /* a time limit is not retried */
    int64_t ran = aipalq_task_completed_ms(t) - aipalq_task_started_ms(t);
    ck_assert_msg(ran >= 900 && ran < 5000, "the handler ran %lld ms", (long long)ran);
    aipalq_task_free(t);
    ck_assert_int_eq(wt_log_count(&ctx, id, NULL), 0);
    /* The worker is still there and runs the next task. */
    wt_enqueue(&ctx, "h.t", "{}", NULL, id2);
    wt_wait_state(&ctx, id2, AIPALQ_STATE_COMPLETED, 10000);
    ck_assert(wt_proc_alive(p));
    wt_end(&ctx);
}
END_TEST

/* Prefork: a handler that dies of SIGSEGV (or SIGABRT) fails only its own
 * task, with the signal in the error detail; the worker goes on. */
START_TEST(test_crashing_handler_prefork)
{
    WT_SKIP_PREFORK_UNDER_ASAN("prefork");
    const char *crash = _i == 0 ? "segv" : "abort";
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"c.t\",\"queue\":\"@Q\",\"max_retries\":0}]");
    wt_proc_opts o = {.mode = "prefork"};
    pid_t p = wt_proc_start(&ctx, &o);
    char id[AIPALQ_ID_SIZE], id2[AIPALQ_ID_SIZE], params[64];
    snprintf(params, sizeof params, "{\"crash\":\"%s\"}", crash);
    wt_enqueue(&ctx, "c.t", params, NULL, id);
    wt_enqueue(&ctx, "c.t", "{}", NULL, id2);
    wt_wait_state(&ctx, id, AIPALQ_STATE_FAILED, 10000);
    wt_wait_state(&ctx, id2, AIPALQ_STATE_COMPLETED, 10000);
    aipalq_task *t = wt_get(&ctx, id);
    ck_assert_str_eq(aipalq_task_error_message(t), "handler crashed");
    const char *detail = aipalq_task_error_detail(t);
    if (_i == 0)
        ck_assert_msg(tu_contains(detail, "signal 11") && tu_contains(detail, "Segmentation fault"),
                      "detail: %s", detail ? detail : "(null)");
    else
        ck_assert_msg(tu_contains(detail, "signal 6") && tu_contains(detail, "Abort"), "detail: %s",
                      detail ? detail : "(null)");
    ck_assert_int_eq(aipalq_task_attempts(t), 1);
    aipalq_task_free(t);
    ck_assert(wt_proc_alive(p));
    ck_assert_int_eq(wt_log_count(&ctx, id2, "completed"), 1);
    wt_end(&ctx);
}
END_TEST

/* Prefork: the child running a task is killed with SIGKILL; the task is
 * retried and completes, and the worker goes on with a new child. */
START_TEST(test_prefork_child_killed)
{
    WT_SKIP_PREFORK_UNDER_ASAN("prefork");
    wt_ctx ctx;
    wt_begin(&ctx,
             "[{\"name\":\"p.t\",\"queue\":\"@Q\",\"max_retries\":2,"
             "\"backoff_base_ms\":200,\"backoff_cap_ms\":1000,\"backoff_jitter_percent\":0}]");
    wt_proc_opts o = {.mode = "prefork"};
    pid_t p = wt_proc_start(&ctx, &o);
    char id[AIPALQ_ID_SIZE], id2[AIPALQ_ID_SIZE];
    wt_enqueue(&ctx, "p.t", "{\"sleep_ms\":30000,\"misbehave_attempts\":1}", NULL, id);
    wt_wait_running_on(&ctx, id, p, 10000);
    pid_t kids[8];
    int n = wt_children(p, kids, 8);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(kill(kids[0], SIGKILL), 0);
    wt_wait_state(&ctx, id, AIPALQ_STATE_COMPLETED, 10000);
    aipalq_task *t = wt_get(&ctx, id);
    ck_assert_int_eq(aipalq_task_attempts(t), 2);
    aipalq_task_free(t);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM aipalq_events WHERE task_id = '%s' AND "
                                "to_status = 'retrying' AND message = 'handler crashed'",
                                id),
                     1);
    ck_assert_int_eq(count_events(id, "completed"), 1);
    ck_assert_int_eq(wt_log_count(&ctx, id, "completed"), 1);
    /* Another task runs on the replacement child. */
    wt_enqueue(&ctx, "p.t", "{}", NULL, id2);
    wt_wait_state(&ctx, id2, AIPALQ_STATE_COMPLETED, 10000);
    ck_assert(wt_proc_alive(p));
    n = wt_children(p, kids, 8);
    ck_assert_int_eq(n, 1);
    wt_end(&ctx);
}
END_TEST

/* Cancelling a running task whose handler polls should_stop: cancelled
 * within about a second, in both modes; the worker goes on. */
START_TEST(test_cancel_running_cooperative)
{
    const char *mode = modes[_i];
    WT_SKIP_PREFORK_UNDER_ASAN(mode);
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"x.t\",\"queue\":\"@Q\"}]");
    wt_proc_opts o = {.mode = mode};
    pid_t p = wt_proc_start(&ctx, &o);
    char id[AIPALQ_ID_SIZE], id2[AIPALQ_ID_SIZE];
    wt_enqueue(&ctx, "x.t", "{\"sleep_ms\":30000}", NULL, id);
    wt_wait_running_on(&ctx, id, p, 10000);
    aipalq_state st = AIPALQ_STATE_PENDING;
    ASSERT_OK(ctx.c, aipalq_cancel(ctx.c, id, &st));
    ck_assert_int_eq(st, AIPALQ_STATE_RUNNING);
    int64_t took = wt_wait_state(&ctx, id, AIPALQ_STATE_CANCELLED, 5000);
    ck_assert_msg(took < 2500, "%s: cancelled after %lld ms", mode, (long long)took);
    aipalq_task *t = wt_get(&ctx, id);
    ck_assert_int_eq(aipalq_task_cancel_requested(t), 1);
    ck_assert_int_eq(aipalq_task_attempts(t), 1);
    aipalq_task_free(t);
    ck_assert_int_eq(count_events(id, "cancelled"), 1);
    ck_assert_int_eq(wt_log_count(&ctx, id, "stopped"), 1);
    ASSERT_ST(ctx.c, aipalq_cancel(ctx.c, id, NULL), AIPALQ_EILLEGAL);
    wt_enqueue(&ctx, "x.t", "{}", NULL, id2);
    wt_wait_state(&ctx, id2, AIPALQ_STATE_COMPLETED, 10000);
    int64_t r, s, l;
    tu_depth(ctx.c, ctx.queue, &r, &s, &l);
    ck_assert_int_eq(r + s + l, 0);
    wt_end(&ctx);
}
END_TEST

/* Prefork: a handler that ignores the cancel is killed after the grace
 * period (5 s) and the task is cancelled; the worker goes on. */
START_TEST(test_cancel_ignored_prefork)
{
    WT_SKIP_PREFORK_UNDER_ASAN("prefork");
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"i.t\",\"queue\":\"@Q\"}]");
    wt_proc_opts o = {.mode = "prefork"};
    pid_t p = wt_proc_start(&ctx, &o);
    char id[AIPALQ_ID_SIZE], id2[AIPALQ_ID_SIZE];
    wt_enqueue(&ctx, "i.t", "{\"sleep_ms\":30000,\"ignore_cancel\":true}", NULL, id);
    wt_wait_running_on(&ctx, id, p, 10000);
    aipalq_state st = AIPALQ_STATE_PENDING;
    ASSERT_OK(ctx.c, aipalq_cancel(ctx.c, id, &st));
    ck_assert_int_eq(st, AIPALQ_STATE_RUNNING);
    int64_t took = wt_wait_state(&ctx, id, AIPALQ_STATE_CANCELLED, 12000);
    ck_assert_msg(took >= 4500 && took < 8500, "cancelled after %lld ms, want about 5 s",
                  (long long)took);
    aipalq_task *t = wt_get(&ctx, id);
    ck_assert_msg(tu_contains(aipalq_task_error_message(t), "grace"), "error: %s",
                  aipalq_task_error_message(t) ? aipalq_task_error_message(t) : "(null)");
    aipalq_task_free(t);
    ck_assert_int_eq(wt_log_count(&ctx, id, NULL), 0);
    wt_enqueue(&ctx, "i.t", "{}", NULL, id2);
    wt_wait_state(&ctx, id2, AIPALQ_STATE_COMPLETED, 10000);
    ck_assert(wt_proc_alive(p));
    wt_end(&ctx);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("worker_faults");
    TCase *tc = wt_tcase("faults", 60);
    tcase_add_test(tc, test_retries_with_backoff);
    tcase_add_test(tc, test_worker_killed_mid_task);
    tcase_add_test(tc, test_worker_killed_on_last_attempt);
    tcase_add_test(tc, test_zombie_outcome_rejected);
    tcase_add_loop_test(tc, test_soft_limit_observed, 0, 2);
    tcase_add_test(tc, test_hard_limit_kills_prefork_handler);
    tcase_add_loop_test(tc, test_crashing_handler_prefork, 0, 2);
    tcase_add_test(tc, test_prefork_child_killed);
    tcase_add_loop_test(tc, test_cancel_running_cooperative, 0, 2);
    tcase_add_test(tc, test_cancel_ignored_prefork);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return wt_main("wfault", suite);
}
