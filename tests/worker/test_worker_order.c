/* When tasks run and who runs them: priority order, delayed tasks, and the
 * worker registry. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "wtest.h"

/* The ids of the handler log in the order the handlers finished. */
static int log_order(const wt_ctx *ctx, char ids[][AIPALQ_ID_SIZE], int max)
{
    FILE *f = fopen(ctx->log, "r");
    ck_assert_ptr_nonnull(f);
    char line[512];
    int n = 0;
    while (n < max && fgets(line, sizeof line, f))
        if (sscanf(line, "%36s", ids[n]) == 1)
            n++;
    fclose(f);
    return n;
}

/* Low-priority tasks enqueued before high-priority ones, with no worker
 * running: a worker that runs one task at a time runs every high one first,
 * each priority in enqueue order. */
START_TEST(test_priority_order)
{
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"p.t\",\"queue\":\"@Q\"}]");
    enum { N = 4 };
    char low[N][AIPALQ_ID_SIZE], high[N][AIPALQ_ID_SIZE], mid[AIPALQ_ID_SIZE];
    aipalq_opts *lo = aipalq_opts_new(), *hi = aipalq_opts_new(), *md = aipalq_opts_new();
    ASSERT_OK(ctx.c, aipalq_opts_set_priority(lo, 1));
    ASSERT_OK(ctx.c, aipalq_opts_set_priority(hi, 10));
    ASSERT_OK(ctx.c, aipalq_opts_set_priority(md, 5));
    for (int i = 0; i < N; i++)
        wt_enqueue(&ctx, "p.t", "{\"sleep_ms\":30}", lo, low[i]);
    wt_enqueue(&ctx, "p.t", "{\"sleep_ms\":30}", md, mid);
    for (int i = 0; i < N; i++)
        wt_enqueue(&ctx, "p.t", "{\"sleep_ms\":30}", hi, high[i]);
    aipalq_opts_free(lo);
    aipalq_opts_free(hi);
    aipalq_opts_free(md);
    int64_t ready;
    tu_depth(ctx.c, ctx.queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 2 * N + 1);

    wt_proc_opts o = {.concurrency = 1};
    wt_proc_start(&ctx, &o);
    wt_sql_wait(2 * N + 1, 20000, "SELECT count(*) FROM aipalq_tasks WHERE status = 'completed'");

    char order[2 * N + 1][AIPALQ_ID_SIZE];
    ck_assert_int_eq(log_order(&ctx, order, 2 * N + 1), 2 * N + 1);
    for (int i = 0; i < N; i++) {
        ck_assert_msg(strcmp(order[i], high[i]) == 0, "run %d was %s, want high[%d] %s", i,
                      order[i], i, high[i]);
        ck_assert_msg(strcmp(order[N + 1 + i], low[i]) == 0, "run %d was %s, want low[%d] %s",
                      N + 1 + i, order[N + 1 + i], i, low[i]);
    }
    ck_assert_str_eq(order[N], mid);
    /* PostgreSQL agrees: every high task started before any low one. */
    ck_assert_int_eq(
        wt_sql_int("SELECT ((SELECT max(started_at) FROM aipalq_tasks WHERE priority = 10) <= "
                   "(SELECT min(started_at) FROM aipalq_tasks WHERE priority = 5) AND "
                   "(SELECT max(started_at) FROM aipalq_tasks WHERE priority = 5) <= "
                   "(SELECT min(started_at) FROM aipalq_tasks WHERE priority = 1))::int"),
        1);
    wt_end(&ctx);
}
END_TEST

/* A worker of two queues, idle (blocked on both wake lists) when a task
 * arrives on its second queue: the wake-up must lead to a take of every
 * queue, not only of the first, whose take rides behind the wake-up. */
START_TEST(test_wake_on_second_queue)
{
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"a.t\",\"queue\":\"@Q\"},{\"name\":\"b.t\",\"queue\":\"@Q-b\"}]");
    char queues[160];
    snprintf(queues, sizeof queues, "%s,%s-b", ctx.queue, ctx.queue);
    wt_proc_opts o = {.concurrency = 2, .queues = queues};
    wt_proc_start(&ctx, &o);
    for (int round = 0; round < 3; round++) {
        wt_sleep_ms(300); /* idle in its BLPOP by now */
        char id[AIPALQ_ID_SIZE];
        wt_enqueue(&ctx, round == 1 ? "a.t" : "b.t", "{}", NULL, id);
        ck_assert_int_ge(wt_wait_state(&ctx, id, AIPALQ_STATE_COMPLETED, 10000), 0);
    }
    wt_end(&ctx);
}
END_TEST

/* A task delayed by 1500 ms runs no earlier than that (and not much
 * later), while an undelayed one enqueued after it runs at once. */
START_TEST(test_delayed_task)
{
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"d.t\",\"queue\":\"@Q\"}]");
    wt_proc_start(&ctx, NULL);
    wt_sleep_ms(300); /* the worker is up and idle */
    char id[AIPALQ_ID_SIZE], now_id[AIPALQ_ID_SIZE];
    aipalq_opts *o = aipalq_opts_new();
    ASSERT_OK(ctx.c, aipalq_opts_set_delay_ms(o, 1500));
    int64_t before = wt_now_ms();
    wt_enqueue(&ctx, "d.t", "{}", o, id);
    aipalq_opts_free(o);
    aipalq_task *t = wt_get(&ctx, id);
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_SCHEDULED);
    ck_assert_int_ge(aipalq_task_run_at_ms(t), before + 1500);
    aipalq_task_free(t);
    wt_enqueue(&ctx, "d.t", "{}", NULL, now_id);
    wt_wait_state(&ctx, now_id, AIPALQ_STATE_COMPLETED, 3000);
    t = wt_get(&ctx, id);
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_SCHEDULED);
    aipalq_task_free(t);

    wt_wait_state(&ctx, id, AIPALQ_STATE_COMPLETED, 6000);
    /* started_at is PostgreSQL's clock (this machine's) when the start was
     * recorded: no earlier than due. created_at comes a little after the
     * producer computed the due time, hence the small tolerance there. */
    long long start_lag =
        wt_sql_int("SELECT (extract(epoch FROM started_at) * 1000)::bigint - %lld "
                   "FROM aipalq_tasks WHERE id = '%s'",
                   (long long)before, id);
    ck_assert_msg(start_lag >= 1500 && start_lag < 3500, "started %lld ms after the enqueue",
                  start_lag);
    long long waited = wt_sql_int("SELECT (extract(epoch FROM started_at - created_at) * 1000)"
                                  "::bigint FROM aipalq_tasks WHERE id = '%s'",
                                  id);
    /* created_at is when the insert's transaction began, after `before`:
     * on a slow run (TSan) tens of ms after it, which the due time is not. */
    long long created_lag =
        wt_sql_int("SELECT (extract(epoch FROM created_at) * 1000)::bigint - %lld "
                   "FROM aipalq_tasks WHERE id = '%s'",
                   (long long)before, id);
    ck_assert_msg(waited >= 1500 - created_lag - 2 && waited < 3500,
                  "started %lld ms after it was created (created %lld ms after the enqueue "
                  "began)",
                  waited, created_lag);
    /* The handler's own clock: it started no earlier than due. */
    FILE *f = fopen(ctx.log, "r");
    ck_assert_ptr_nonnull(f);
    char line[512], lid[64], what[32];
    int att;
    long pid;
    long long start = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%63s %d %ld %31s %lld", lid, &att, &pid, what, &start) == 5 &&
            strcmp(lid, id) == 0)
            break;
    fclose(f);
    ck_assert_str_eq(lid, id);
    ck_assert_msg(start >= before + 1500, "the handler started %lld ms after the enqueue",
                  start - before);
    wt_end(&ctx);
}
END_TEST

/* The registry entry of `id` in aipalq_workers_json, or NULL. */
static cJSON *registry_entry(wt_ctx *ctx, int64_t dead_after_ms, const char *id, cJSON **all)
{
    char *json = NULL;
    ASSERT_OK(ctx->c, aipalq_workers_json(ctx->c, dead_after_ms, &json));
    *all = cJSON_Parse(json);
    aipalq_free(json);
    ck_assert(cJSON_IsArray(*all));
    const cJSON *e;
    cJSON_ArrayForEach(e, *all)
    {
        const cJSON *wid = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (cJSON_IsString(wid) && strcmp(wid->valuestring, id) == 0)
            return (cJSON *)e;
    }
    return NULL;
}

/* Polls until the entry of `id` is listed with "alive" == alive. */
static void wait_registry(wt_ctx *ctx, int64_t dead_after_ms, const char *id, int alive,
                          int64_t timeout_ms)
{
    int64_t t0 = wt_mono_ms();
    for (;;) {
        cJSON *all = NULL;
        cJSON *e = registry_entry(ctx, dead_after_ms, id, &all);
        int ok = e && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "alive")) == alive;
        cJSON_Delete(all);
        if (ok)
            return;
        ck_assert_msg(wt_mono_ms() - t0 < timeout_ms, "worker %s not listed as %s after %lld ms",
                      id, alive ? "alive" : "dead", (long long)timeout_ms);
        wt_sleep_ms(100);
    }
}

START_TEST(test_registry)
{
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"r.t\",\"queue\":\"@Q\"}]");
    char wid[128], queues[160], wid2[128];
    snprintf(wid, sizeof wid, "reg-%s", ctx.ns);
    snprintf(wid2, sizeof wid2, "reg2-%s", ctx.ns);
    snprintf(queues, sizeof queues, "%s,other.q", ctx.queue);
    wt_proc_opts o = {.mode = "prefork", .concurrency = 3, .queues = queues, .id = wid};
    pid_t p = wt_proc_start(&ctx, &o);
    wt_proc_opts o2 = {.concurrency = 2, .id = wid2};
    pid_t p2 = wt_proc_start(&ctx, &o2);
    wait_registry(&ctx, 3000, wid, 1, 8000);
    wait_registry(&ctx, 3000, wid2, 1, 8000);

    cJSON *all = NULL;
    cJSON *e = registry_entry(&ctx, 3000, wid, &all);
    ck_assert_ptr_nonnull(e);
    const cJSON *qs = cJSON_GetObjectItemCaseSensitive(e, "queues");
    ck_assert(cJSON_IsArray(qs));
    ck_assert_int_eq(cJSON_GetArraySize(qs), 2);
    ck_assert_str_eq(cJSON_GetArrayItem(qs, 0)->valuestring, ctx.queue);
    ck_assert_str_eq(cJSON_GetArrayItem(qs, 1)->valuestring, "other.q");
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(e, "concurrency")->valueint, 3);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(e, "mode")->valuestring, "prefork");
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(e, "pid")->valueint, p);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "alive")));
    ck_assert(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(e, "counts")));
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(e, "last_heartbeat_ms")));
    cJSON_Delete(all);
    e = registry_entry(&ctx, 3000, wid2, &all);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(e, "mode")->valuestring, "threads");
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(e, "concurrency")->valueint, 2);
    cJSON_Delete(all);

    /* Killed: still listed, no longer alive (silent for dead_after_ms). */
    ck_assert_int_eq(kill(p, SIGKILL), 0);
    wt_proc_wait(p, 5000);
    wait_registry(&ctx, 1000, wid, 0, 6000);
    /* Stopped gracefully: it leaves the registry. */
    ck_assert_int_eq(kill(p2, SIGTERM), 0);
    int ws = wt_proc_wait(p2, 10000);
    ck_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    e = registry_entry(&ctx, 3000, wid2, &all);
    ck_assert_ptr_null(e);
    cJSON_Delete(all);
    wt_end(&ctx);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("worker_order");
    TCase *tc = wt_tcase("order", 60);
    tcase_add_test(tc, test_priority_order);
    tcase_add_test(tc, test_delayed_task);
    tcase_add_test(tc, test_wake_on_second_queue);
    tcase_add_test(tc, test_registry);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return wt_main("worder", suite);
}
