/* 10,000 tasks drained by two worker processes (threads, concurrency 4
 * each): every task completed exactly once in PostgreSQL, nothing left in
 * Redis. And slow tasks taken in one go spread over every slot. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wtest.h"

enum { NTASKS = 10000, BATCH = 1000 };

/* Handler runs per process in the log. */
static void runs_per_pid(const wt_ctx *ctx, pid_t a, pid_t b, int *na, int *nb)
{
    *na = *nb = 0;
    FILE *f = fopen(ctx->log, "r");
    ck_assert_ptr_nonnull(f);
    char line[512], id[64], what[32];
    int att;
    long pid;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%63s %d %ld %31s", id, &att, &pid, what) != 4)
            continue;
        if (pid == a)
            (*na)++;
        else if (pid == b)
            (*nb)++;
    }
    fclose(f);
}

START_TEST(test_drain_10k_two_workers)
{
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"d.t\",\"queue\":\"@Q\"}]");
    aipalq_batch *b = aipalq_batch_new();
    ck_assert_ptr_nonnull(b);
    for (int done = 0; done < NTASKS; done += BATCH) {
        aipalq_batch_clear(b);
        for (int i = 0; i < BATCH; i++) {
            char params[32];
            snprintf(params, sizeof params, "{\"n\":%d}", done + i);
            ck_assert_int_eq(aipalq_batch_add(b, "d.t", params, NULL), AIPALQ_OK);
        }
        ASSERT_OK(ctx.c, aipalq_enqueue_batch(ctx.c, b));
    }
    aipalq_batch_free(b);
    int64_t ready;
    tu_depth(ctx.c, ctx.queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, NTASKS);

    wt_proc_opts o = {.mode = "threads", .concurrency = 4};
    int64_t t0 = wt_mono_ms();
    pid_t pa = wt_proc_start(&ctx, &o);
    pid_t pb = wt_proc_start(&ctx, &o);
    wt_sql_wait(NTASKS, 240000, "SELECT count(*) FROM aipalq_tasks WHERE status = 'completed'");
    int64_t took = wt_mono_ms() - t0;
    fprintf(stderr, "drained %d tasks with 2 workers in %lld ms\n", NTASKS, (long long)took);
    /* Stop both; their last records are written before they exit. */
    ck_assert_int_eq(kill(pa, SIGTERM), 0);
    ck_assert_int_eq(kill(pb, SIGTERM), 0);
    int wa = wt_proc_wait(pa, 40000), wb = wt_proc_wait(pb, 40000);
    ck_assert(WIFEXITED(wa) && WEXITSTATUS(wa) == 0);
    ck_assert(WIFEXITED(wb) && WEXITSTATUS(wb) == 0);

    /* PostgreSQL: every task completed, once. */
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM aipalq_tasks"), NTASKS);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM aipalq_tasks WHERE status = 'completed' "
                                "AND result IS NOT NULL AND completed_at IS NOT NULL"),
                     NTASKS);
    ck_assert_int_eq(wt_sql_int("SELECT max(attempts) FROM aipalq_tasks"), 1);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM aipalq_events WHERE to_status = 'completed'"),
                     NTASKS);
    ck_assert_int_eq(wt_sql_int("SELECT count(DISTINCT task_id) FROM aipalq_events "
                                "WHERE to_status = 'completed'"),
                     NTASKS);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM (SELECT task_id FROM aipalq_events WHERE "
                                "to_status = 'completed' GROUP BY task_id HAVING count(*) > 1) d"),
                     0);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM aipalq_events "
                                "WHERE to_status NOT IN ('running', 'completed')"),
                     0);
    /* Every handler ran once, and both workers took part. */
    ck_assert_int_eq(wt_log_count(&ctx, NULL, "completed"), NTASKS);
    int na, nb;
    runs_per_pid(&ctx, pa, pb, &na, &nb);
    ck_assert_int_eq(na + nb, NTASKS);
    ck_assert_msg(na > 0 && nb > 0, "runs per worker: %d and %d", na, nb);

    /* Redis: nothing ready, waiting, leased, and no payload or state left. */
    const char *keys[] = {"ready", "sched", "leases", "cancel", "job", "meta"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        ck_assert_msg(tu_redis_int("EXISTS %s:{%s}:%s", ctx.ns, ctx.queue, keys[i]) == 0,
                      "Redis still has %s:{%s}:%s", ctx.ns, ctx.queue, keys[i]);
    ck_assert_int_eq(tu_redis_int("HLEN %s:{%s}:job", ctx.ns, ctx.queue), 0);
    ck_assert_int_eq(tu_redis_int("HLEN %s:{%s}:meta", ctx.ns, ctx.queue), 0);
    int64_t r, s, l;
    tu_depth(ctx.c, ctx.queue, &r, &s, &l);
    ck_assert_int_eq(r + s + l, 0);
    wt_end(&ctx);
}
END_TEST

static const char *const modes[] = {"threads", "prefork"};

/* When the handler of `id` started (Unix ms, from its log line). */
static long long handler_start_ms(const wt_ctx *ctx, const char *id)
{
    FILE *f = fopen(ctx->log, "r");
    ck_assert_ptr_nonnull(f);
    char line[512], lid[64], what[32];
    int att;
    long pid;
    long long start = -1, ms;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%63s %d %ld %31s %lld", lid, &att, &pid, what, &ms) == 5 &&
            strcmp(lid, id) == 0)
            start = ms;
    fclose(f);
    ck_assert_msg(start >= 0, "no log line for task %s", id);
    return start;
}

/* Six slow tasks waiting when a worker with six slots starts: its first take
 * gets them all, and although slot threads are woken one at a time (so that
 * short tasks run on as few threads as keep up), the six handlers run at
 * once: they all start well before the first of them ends. */
START_TEST(test_slow_tasks_spread_over_every_slot)
{
    const char *mode = modes[_i];
    WT_SKIP_PREFORK_UNDER_ASAN(mode);
    enum { NSLOW = 6, SLOW_MS = 3000 };
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"d.s\",\"queue\":\"@Q\"}]");
    char ids[NSLOW][AIPALQ_ID_SIZE];
    char params[64];
    snprintf(params, sizeof params, "{\"sleep_ms\":%d,\"ignore_cancel\":true}", SLOW_MS);
    for (int i = 0; i < NSLOW; i++)
        wt_enqueue(&ctx, "d.s", params, NULL, ids[i]);
    wt_proc_opts o = {.mode = mode, .concurrency = NSLOW};
    wt_proc_start(&ctx, &o);
    wt_sql_wait(NSLOW, 60000,
                "SELECT count(*) FROM aipalq_tasks WHERE queue = '%s' AND status = 'completed'",
                ctx.queue);
    long long first = -1, last = -1;
    for (int i = 0; i < NSLOW; i++) {
        long long start = handler_start_ms(&ctx, ids[i]);
        first = first < 0 || start < first ? start : first;
        last = start > last ? start : last;
    }
    ck_assert_msg(last - first < SLOW_MS / 2,
                  "%s: the last handler started %lld ms after the first", mode, last - first);
    wt_end(&ctx);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("worker_drain");
    TCase *tc = wt_tcase("drain", 300);
    tcase_add_test(tc, test_drain_10k_two_workers);
    tcase_add_loop_test(tc, test_slow_tasks_spread_over_every_slot, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return wt_main("wdrain", suite);
}
