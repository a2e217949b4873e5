/* The step API (aipalq_worker_next, aipalq_job_complete / _fail / _release)
 * and fencing: a delivery that lost its lease cannot record an outcome. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "wtest.h"

#define ASSERT_JOB(job, expr, want)                                                                \
    do {                                                                                           \
        aipalq_status st_ = (expr);                                                                \
        ck_assert_msg(st_ == (want), "%s: got %s, want %s (%s)", #expr, aipalq_status_name(st_),   \
                      aipalq_status_name(want), aipalq_job_errmsg(job));                           \
    } while (0)

#define ASSERT_W(w, expr, want)                                                                    \
    do {                                                                                           \
        aipalq_status st_ = (expr);                                                                \
        ck_assert_msg(st_ == (want), "%s: got %s, want %s (%s)", #expr, aipalq_status_name(st_),   \
                      aipalq_status_name(want), aipalq_worker_errmsg(w));                          \
    } while (0)

static int64_t cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

static aipalq_worker *step_worker(wt_ctx *ctx)
{
    aipalq_worker *w = aipalq_worker_new(ctx->c);
    ck_assert_ptr_nonnull(w);
    ASSERT_W(w, aipalq_worker_set_maintenance_ms(w, 0), AIPALQ_OK);
    return w;
}

static void depth_is(wt_ctx *ctx, int64_t ready, int64_t sched, int64_t leased)
{
    int64_t r, s, l;
    tu_depth(ctx->c, ctx->queue, &r, &s, &l);
    ck_assert_msg(r == ready && s == sched && l == leased,
                  "depth ready/scheduled/leased = %lld/%lld/%lld, want %lld/%lld/%lld",
                  (long long)r, (long long)s, (long long)l, (long long)ready, (long long)sched,
                  (long long)leased);
}

/* An empty queue: next(0) answers at once, next(timeout) blocks for about
 * the timeout without spinning. */
START_TEST(test_next_empty_blocks)
{
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"s.t\",\"queue\":\"@Q\"}]");
    aipalq_worker *w = step_worker(&ctx);
    aipalq_job *job = (aipalq_job *)1;
    int64_t t0 = wt_mono_ms();
    ASSERT_W(w, aipalq_worker_next(w, 0, &job), AIPALQ_EMPTY);
    ck_assert_ptr_null(job);
    ck_assert_int_lt(wt_mono_ms() - t0, 1000);

    for (int round = 0; round < 2; round++) {
        int64_t timeout = round == 0 ? 1000 : 300;
        int64_t cpu0 = cpu_ms();
        t0 = wt_mono_ms();
        ASSERT_W(w, aipalq_worker_next(w, timeout, &job), AIPALQ_EMPTY);
        int64_t wall = wt_mono_ms() - t0, cpu = cpu_ms() - cpu0;
        ck_assert_ptr_null(job);
        ck_assert_msg(wall >= timeout - 20 && wall <= timeout + 600,
                      "next(%lld) on an empty queue took %lld ms", (long long)timeout,
                      (long long)wall);
        /* The wait is a blocking read: the whole process (heartbeat and
         * recorder threads included) stays nearly idle. */
        ck_assert_msg(cpu < wall / 4 + 50, "next(%lld) used %lld ms of CPU in %lld ms",
                      (long long)timeout, (long long)cpu, (long long)wall);
    }

    /* A task enqueued while next waits wakes it at once. */
    char id[AIPALQ_ID_SIZE];
    wt_enqueue(&ctx, "s.t", "{}", NULL, id);
    t0 = wt_mono_ms();
    ASSERT_W(w, aipalq_worker_next(w, 5000, &job), AIPALQ_OK);
    ck_assert_int_lt(wt_mono_ms() - t0, 1000);
    ck_assert_str_eq(aipalq_job_id(job), id);
    ASSERT_JOB(job, aipalq_job_complete(job, NULL), AIPALQ_OK);
    aipalq_job_free(job);
    /* A type without a result TTL leaves no copy of the outcome in Redis. */
    char key[200];
    snprintf(key, sizeof key, "%s:{%s}:done", ctx.ns, ctx.queue);
    ck_assert_int_eq(tu_redis_int("HLEN %s", key), 0);
    aipalq_worker_free(w);
    wt_end(&ctx);
}
END_TEST

START_TEST(test_complete)
{
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"s.t\",\"queue\":\"@Q\",\"priority\":7,\"max_retries\":4,"
                   "\"result_ttl_ms\":60000}]");
    char id[AIPALQ_ID_SIZE];
    aipalq_opts *o = aipalq_opts_new();
    ASSERT_OK(ctx.c, aipalq_opts_set_user_id(o, "user-9"));
    wt_enqueue(&ctx, "s.t", "{\"a\":1}", o, id);
    aipalq_opts_free(o);
    aipalq_worker *w = step_worker(&ctx);
    aipalq_job *job = NULL;
    ASSERT_W(w, aipalq_worker_next(w, 3000, &job), AIPALQ_OK);
    ck_assert_str_eq(aipalq_job_id(job), id);
    ck_assert_str_eq(aipalq_job_type(job), "s.t");
    ck_assert_str_eq(aipalq_job_queue(job), ctx.queue);
    ck_assert_str_eq(aipalq_job_user_id(job), "user-9");
    ck_assert_int_eq(aipalq_job_attempt(job), 1);
    ck_assert_int_eq(aipalq_job_max_retries(job), 4);
    ck_assert_int_eq(aipalq_job_priority(job), 7);
    ck_assert_int_gt(aipalq_job_token(job), 0);
    ck_assert_msg(tu_contains(aipalq_job_params(job), "\"a\""), "params %s",
                  aipalq_job_params(job));
    depth_is(&ctx, 0, 0, 1);
    wt_wait_state(&ctx, id, AIPALQ_STATE_RUNNING, 5000);

    /* A bad result is refused and does not end the job. */
    ASSERT_JOB(job, aipalq_job_complete(job, "{bad"), AIPALQ_EBADJSON);
    ASSERT_JOB(job, aipalq_job_complete(job, "{\"x\":1}"), AIPALQ_OK);
    /* Ending it again is illegal, whatever the way. */
    ASSERT_JOB(job, aipalq_job_complete(job, "{\"x\":2}"), AIPALQ_EILLEGAL);
    ASSERT_JOB(job, aipalq_job_fail(job, "no", NULL, 1), AIPALQ_EILLEGAL);
    ASSERT_JOB(job, aipalq_job_release(job), AIPALQ_EILLEGAL);

    /* complete returns once PostgreSQL has the outcome: no waiting. */
    aipalq_task *t = wt_get(&ctx, id);
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_COMPLETED);
    ck_assert_int_eq(aipalq_task_attempts(t), 1);
    ck_assert_ptr_nonnull(aipalq_task_result(t));
    ck_assert_int_gt(aipalq_task_completed_ms(t), 0);
    aipalq_task_free(t);
    ck_assert_int_eq(wt_sql_int("SELECT (result->>'x')::int FROM aipalq_tasks WHERE id = '%s'", id),
                     1);
    char *evs = wt_history(id);
    ck_assert_str_eq(evs, "running,completed");
    free(evs);
    /* Redis: nothing left to run, a copy of the outcome kept (the type's result TTL). */
    depth_is(&ctx, 0, 0, 0);
    char key[200];
    snprintf(key, sizeof key, "%s:{%s}:done", ctx.ns, ctx.queue);
    char *done = tu_redis_hget(key, id);
    ck_assert_msg(tu_contains(done, "completed"), "cached outcome %s", done ? done : "(none)");
    free(done);
    aipalq_job_free(job);

    /* Nothing else to take. */
    ASSERT_W(w, aipalq_worker_next(w, 0, &job), AIPALQ_EMPTY);
    aipalq_worker_free(w);
    wt_end(&ctx);
}
END_TEST

/* The cached outcome in Redis, parsed; NULL when there is none. */
static cJSON *cached_outcome(const wt_ctx *ctx, const char *id)
{
    char key[200];
    snprintf(key, sizeof key, "%s:{%s}:done", ctx->ns, ctx->queue);
    char *done = tu_redis_hget(key, id);
    cJSON *doc = done ? cJSON_Parse(done) : NULL;
    ck_assert_msg(doc, "cached outcome of %s: %s", id, done ? done : "(none)");
    free(done);
    return doc;
}

/* Text a handler gives (results, errors, progress messages) reaches
 * PostgreSQL and Redis's cached outcome as it was: every character JSON
 * escapes, and bytes that are not UTF-8 replaced rather than refused. */
START_TEST(test_outcome_text_round_trips)
{
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"s.t\",\"queue\":\"@Q\",\"max_retries\":0,"
                   "\"result_ttl_ms\":60000}]");
    char done_id[AIPALQ_ID_SIZE], failed_id[AIPALQ_ID_SIZE];
    wt_enqueue(&ctx, "s.t", "{}", NULL, done_id);
    wt_enqueue(&ctx, "s.t", "{}", NULL, failed_id);
    aipalq_worker *w = step_worker(&ctx);

    aipalq_job *job = NULL;
    ASSERT_W(w, aipalq_worker_next(w, 3000, &job), AIPALQ_OK);
    ck_assert_str_eq(aipalq_job_id(job), done_id);
    const char *msg = "half \"way\" \\ there\n\tnow";
    aipalq_job_progress(job, 50, msg);
    wt_sql_wait(50, 5000, "SELECT progress FROM aipalq_tasks WHERE id = '%s'", done_id);
    aipalq_task *t = wt_get(&ctx, done_id);
    ck_assert_str_eq(aipalq_task_progress_message(t), msg);
    aipalq_task_free(t);
    ASSERT_JOB(job,
               aipalq_job_complete(job, "{\"s\":\"q\\\"uote \\\\ \\u0001 é\",\"n\":[1,2.5e3]}"),
               AIPALQ_OK);
    aipalq_job_free(job);
    char *s = wt_sql_text("SELECT result->>'s' FROM aipalq_tasks WHERE id = '%s'", done_id);
    ck_assert_str_eq(s, "q\"uote \\ \x01 é");
    free(s);
    cJSON *doc = cached_outcome(&ctx, done_id);
    ck_assert_str_eq(cJSON_GetObjectItem(doc, "status")->valuestring, "completed");
    const cJSON *result = cJSON_GetObjectItem(doc, "result");
    ck_assert_str_eq(cJSON_GetObjectItem(result, "s")->valuestring, "q\"uote \\ \x01 é");
    ck_assert_double_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(result, "n"), 1)->valuedouble, 2500);
    cJSON_Delete(doc);

    ASSERT_W(w, aipalq_worker_next(w, 3000, &job), AIPALQ_OK);
    ck_assert_str_eq(aipalq_job_id(job), failed_id);
    ASSERT_JOB(job, aipalq_job_fail(job, "bad \"input\" \\ at\r\n\x01 \xff end", "é\ttab", 0),
               AIPALQ_OK);
    aipalq_job_free(job);
    const char *want = "bad \"input\" \\ at\r\n\x01 ? end";
    t = wt_get(&ctx, failed_id);
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_FAILED);
    ck_assert_str_eq(aipalq_task_error_message(t), want);
    ck_assert_str_eq(aipalq_task_error_detail(t), "é\ttab");
    aipalq_task_free(t);
    doc = cached_outcome(&ctx, failed_id);
    ck_assert_str_eq(cJSON_GetObjectItem(doc, "status")->valuestring, "failed");
    ck_assert_str_eq(cJSON_GetObjectItem(doc, "error")->valuestring, want);
    cJSON_Delete(doc);
    aipalq_worker_free(w);
    wt_end(&ctx);
}
END_TEST

START_TEST(test_fail_and_release)
{
    wt_ctx ctx;
    wt_begin(&ctx,
             "[{\"name\":\"s.t\",\"queue\":\"@Q\",\"max_retries\":1,"
             "\"backoff_base_ms\":300,\"backoff_cap_ms\":1000,\"backoff_jitter_percent\":0}]");
    char id[AIPALQ_ID_SIZE];
    wt_enqueue(&ctx, "s.t", "{}", NULL, id);
    aipalq_worker *w = step_worker(&ctx);

    /* release: back to the queue, the attempt not counted. */
    aipalq_job *j1 = NULL;
    ASSERT_W(w, aipalq_worker_next(w, 3000, &j1), AIPALQ_OK);
    ck_assert_int_eq(aipalq_job_attempt(j1), 1);
    int64_t tok1 = aipalq_job_token(j1);
    ASSERT_JOB(j1, aipalq_job_release(j1), AIPALQ_OK);
    ASSERT_JOB(j1, aipalq_job_release(j1), AIPALQ_EILLEGAL);
    aipalq_job_free(j1);
    aipalq_task *t = wt_get(&ctx, id);
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_PENDING);
    ck_assert_int_eq(aipalq_task_attempts(t), 0);
    aipalq_task_free(t);
    depth_is(&ctx, 1, 0, 0);

    /* Taken again: still attempt 1, with a newer fencing token. */
    aipalq_job *j2 = NULL;
    ASSERT_W(w, aipalq_worker_next(w, 3000, &j2), AIPALQ_OK);
    ck_assert_str_eq(aipalq_job_id(j2), id);
    ck_assert_int_eq(aipalq_job_attempt(j2), 1);
    ck_assert_int_gt(aipalq_job_token(j2), tok1);
    /* A retryable failure with retries left: retrying after the backoff. */
    ASSERT_JOB(j2, aipalq_job_fail(j2, "m1", "d1", 1), AIPALQ_OK);
    ASSERT_JOB(j2, aipalq_job_complete(j2, NULL), AIPALQ_EILLEGAL);
    aipalq_job_free(j2);
    int64_t failed_at = wt_mono_ms();
    t = wt_get(&ctx, id);
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_RETRYING);
    ck_assert_int_eq(aipalq_task_attempts(t), 1);
    ck_assert_str_eq(aipalq_task_error_message(t), "m1");
    ck_assert_str_eq(aipalq_task_error_detail(t), "d1");
    ck_assert_int_gt(aipalq_task_run_at_ms(t), 0);
    aipalq_task_free(t);
    depth_is(&ctx, 0, 1, 0);

    /* next waits for the backoff (300 ms), not for its whole timeout. */
    aipalq_job *j3 = NULL;
    ASSERT_W(w, aipalq_worker_next(w, 5000, &j3), AIPALQ_OK);
    int64_t waited = wt_mono_ms() - failed_at;
    ck_assert_msg(waited >= 250 && waited < 2500, "the retry came after %lld ms",
                  (long long)waited);
    ck_assert_int_eq(aipalq_job_attempt(j3), 2);
    /* Out of retries: failed, with the last error. */
    ASSERT_JOB(j3, aipalq_job_fail(j3, "m2", "d2", 1), AIPALQ_OK);
    aipalq_job_free(j3);
    t = wt_get(&ctx, id);
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_FAILED);
    ck_assert_int_eq(aipalq_task_attempts(t), 2);
    ck_assert_str_eq(aipalq_task_error_message(t), "m2");
    ck_assert_str_eq(aipalq_task_error_detail(t), "d2");
    aipalq_task_free(t);
    depth_is(&ctx, 0, 0, 0);
    char *evs = wt_history(id);
    ck_assert_str_eq(evs, "running,pending,running,retrying,running,failed");
    free(evs);

    /* A failure that is not retryable fails at once. */
    char id2[AIPALQ_ID_SIZE];
    wt_enqueue(&ctx, "s.t", "{}", NULL, id2);
    aipalq_job *j4 = NULL;
    ASSERT_W(w, aipalq_worker_next(w, 3000, &j4), AIPALQ_OK);
    ASSERT_JOB(j4, aipalq_job_fail(j4, NULL, NULL, 0), AIPALQ_OK);
    aipalq_job_free(j4);
    t = wt_get(&ctx, id2);
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_FAILED);
    ck_assert_int_eq(aipalq_task_attempts(t), 1);
    ck_assert_ptr_nonnull(aipalq_task_error_message(t));
    aipalq_task_free(t);

    /* Freeing a job that was not ended hands it back. */
    char id3[AIPALQ_ID_SIZE];
    wt_enqueue(&ctx, "s.t", "{}", NULL, id3);
    aipalq_job *j5 = NULL;
    ASSERT_W(w, aipalq_worker_next(w, 3000, &j5), AIPALQ_OK);
    aipalq_job_free(j5);
    t = wt_get(&ctx, id3);
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_PENDING);
    ck_assert_int_eq(aipalq_task_attempts(t), 0);
    aipalq_task_free(t);
    depth_is(&ctx, 1, 0, 0);
    aipalq_worker_free(w);
    wt_end(&ctx);
}
END_TEST

/* Reads the step helper's status file ("" when absent). */
static void read_status(const char *path, char *out, size_t len)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t n = fread(out, 1, len - 1, f);
    out[n] = '\0';
    fclose(f);
}

/* A zombie: worker A takes a task with the step API and freezes (SIGSTOP)
 * past its lease; B reclaims and completes it; A wakes up and its complete
 * is rejected with AIPALQ_ESTALE. The row keeps B's result. */
START_TEST(test_cancel_as_soon_as_taken)
{
    /* A worker records a start a little after it begins (a short task's start
     * and outcome are one record), so the row may still say pending while
     * the job runs: a cancel must still become a request for that worker,
     * not a withdrawal that the running job never hears of. */
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"s.t\",\"queue\":\"@Q\"}]");
    char id[AIPALQ_ID_SIZE];
    wt_enqueue(&ctx, "s.t", "{}", NULL, id);
    aipalq_worker *w = step_worker(&ctx);
    aipalq_job *job = NULL;
    ASSERT_W(w, aipalq_worker_next(w, 3000, &job), AIPALQ_OK);
    aipalq_state state = AIPALQ_STATE_PENDING;
    ASSERT_OK(ctx.c, aipalq_cancel(ctx.c, id, &state));
    ck_assert_int_eq(state, AIPALQ_STATE_RUNNING);
    int64_t until = wt_now_ms() + 5000;
    while (!aipalq_job_cancel_requested(job) && wt_now_ms() < until)
        wt_sleep_ms(20);
    ck_assert_int_eq(aipalq_job_cancel_requested(job), 1);
    /* A request, not a withdrawal: the job may still end as it likes, and
     * its outcome is recorded (a withdrawal would have refused it). */
    ASSERT_JOB(job, aipalq_job_complete(job, "{\"done\":true}"), AIPALQ_OK);
    aipalq_task *t = wt_get(&ctx, id);
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_COMPLETED);
    ck_assert_int_eq(aipalq_task_cancel_requested(t), 1);
    aipalq_task_free(t);
    aipalq_job_free(job);
    depth_is(&ctx, 0, 0, 0);
    /* A finished task is not cancellable; the message says what it is. */
    ck_assert_int_eq(aipalq_cancel(ctx.c, id, &state), AIPALQ_EILLEGAL);
    ck_assert_msg(tu_contains(aipalq_client_errmsg(ctx.c), "completed"), "%s",
                  aipalq_client_errmsg(ctx.c));
    aipalq_worker_free(w);
    wt_end(&ctx);
}
END_TEST

START_TEST(test_zombie_complete_is_stale)
{
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"z.t\",\"queue\":\"@Q\",\"max_retries\":3}]");
    char status_file[300], go_file[300];
    snprintf(status_file, sizeof status_file, "%s.status", ctx.log);
    snprintf(go_file, sizeof go_file, "%s.go", ctx.log);
    unlink(status_file);
    unlink(go_file);
    char id[AIPALQ_ID_SIZE];
    wt_enqueue(&ctx, "z.t", "{}", NULL, id);
    wt_proc_opts oa = {.lease_ms = 2000,
                       .tag = "A",
                       .step_file = status_file,
                       .go_file = go_file,
                       .step_timeout_ms = 10000};
    pid_t a = wt_proc_start(&ctx, &oa);
    char st[512];
    int64_t t0 = wt_mono_ms();
    for (;;) {
        read_status(status_file, st, sizeof st);
        if (strncmp(st, "taken ", 6) == 0)
            break;
        ck_assert_msg(wt_mono_ms() - t0 < 10000, "helper A took nothing: '%s'", st);
        wt_sleep_ms(20);
    }
    ck_assert_msg(tu_contains(st, id), "A took another task: %s", st);
    long long tok_a = strtoll(st + 6 + 37, NULL, 10);
    wt_wait_running_on(&ctx, id, a, 5000);
    ck_assert_int_eq(kill(a, SIGSTOP), 0);
    int64_t stopped = wt_mono_ms();

    /* B: the lease expires ~2 s after A's last heartbeat. */
    aipalq_worker *wb = step_worker(&ctx);
    ASSERT_W(wb, aipalq_worker_set_id(wb, "worker-B"), AIPALQ_OK);
    aipalq_job *jb = NULL;
    while (!jb) {
        aipalq_status s = aipalq_worker_next(wb, 500, &jb);
        ck_assert_msg(s == AIPALQ_OK || s == AIPALQ_EMPTY, "next: %s", aipalq_status_name(s));
        ck_assert_msg(wt_mono_ms() - stopped < 10000, "B never got the task back");
    }
    int64_t took = wt_mono_ms() - stopped;
    ck_assert_msg(took >= 1000, "B took the task %lld ms after A froze, before its lease ran out",
                  (long long)took);
    ck_assert_str_eq(aipalq_job_id(jb), id);
    ck_assert_int_eq(aipalq_job_attempt(jb), 2); /* the lost delivery counts */
    ck_assert_int_gt(aipalq_job_token(jb), tok_a);
    ASSERT_JOB(jb, aipalq_job_complete(jb, "{\"by\":\"B\"}"), AIPALQ_OK);
    aipalq_job_free(jb);

    /* A wakes up and tries to complete. */
    FILE *g = fopen(go_file, "w");
    ck_assert_ptr_nonnull(g);
    fclose(g);
    ck_assert_int_eq(kill(a, SIGCONT), 0);
    int ws = wt_proc_wait(a, 15000);
    ck_assert_msg(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "helper A ended with status %d", ws);
    read_status(status_file, st, sizeof st);
    ck_assert_msg(tu_contains(st, "complete ESTALE"), "A's complete: %s", st);

    aipalq_task *t = wt_get(&ctx, id);
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_COMPLETED);
    ck_assert_int_eq(aipalq_task_attempts(t), 2);
    ck_assert_str_eq(aipalq_task_worker_id(t), "worker-B");
    aipalq_task_free(t);
    char *by = wt_sql_text("SELECT result->>'by' FROM aipalq_tasks WHERE id = '%s'", id);
    ck_assert_str_eq(by, "B");
    free(by);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM aipalq_events WHERE task_id = '%s' "
                                "AND to_status = 'completed'",
                                id),
                     1);
    ck_assert_int_eq(wt_sql_int("SELECT count(*) FROM aipalq_events WHERE task_id = '%s' "
                                "AND to_status = 'pending' AND message LIKE 'lease expired%%'",
                                id),
                     1);
    depth_is(&ctx, 0, 0, 0);
    aipalq_worker_free(wb);
    unlink(status_file);
    unlink(go_file);
    wt_end(&ctx);
}
END_TEST

/* A job held longer than its lease (1 s) keeps it: the worker's heartbeat
 * thread extends it, so no one else takes the task and it completes. */
START_TEST(test_held_job_keeps_its_lease)
{
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"s.t\",\"queue\":\"@Q\"}]");
    char id[AIPALQ_ID_SIZE];
    wt_enqueue(&ctx, "s.t", "{}", NULL, id);
    aipalq_worker *w = step_worker(&ctx);
    ASSERT_W(w, aipalq_worker_set_lease_ms(w, 1000), AIPALQ_OK);
    aipalq_worker *other = step_worker(&ctx);
    aipalq_job *job = NULL, *stolen = NULL;
    ASSERT_W(w, aipalq_worker_next(w, 3000, &job), AIPALQ_OK);
    /* Another worker keeps asking for 3.5 s: the lease is never free. */
    ASSERT_W(other, aipalq_worker_next(other, 3500, &stolen), AIPALQ_EMPTY);
    ck_assert_int_eq(aipalq_job_should_stop(job), 0);
    ASSERT_JOB(job, aipalq_job_complete(job, "{\"held\":true}"), AIPALQ_OK);
    aipalq_job_free(job);
    aipalq_task *t = wt_get(&ctx, id);
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_COMPLETED);
    ck_assert_int_eq(aipalq_task_attempts(t), 1);
    aipalq_task_free(t);
    aipalq_worker_free(other);
    aipalq_worker_free(w);
    wt_end(&ctx);
}
END_TEST

/* A worker dies holding a task; a step worker already waiting in
 * aipalq_worker_next gets the task once the lease (2 s) expires, within the
 * same call, not only after its whole timeout. */
START_TEST(test_next_sees_expired_lease)
{
    wt_ctx ctx;
    wt_begin(&ctx, "[{\"name\":\"s.t\",\"queue\":\"@Q\",\"max_retries\":3}]");
    wt_proc_opts oa = {.lease_ms = 2000};
    pid_t a = wt_proc_start(&ctx, &oa);
    char id[AIPALQ_ID_SIZE];
    wt_enqueue(&ctx, "s.t", "{\"sleep_ms\":30000}", NULL, id);
    wt_wait_running_on(&ctx, id, a, 10000);
    aipalq_worker *w = step_worker(&ctx);
    aipalq_job *job = NULL;
    ASSERT_W(w, aipalq_worker_next(w, 0, &job), AIPALQ_EMPTY); /* leased: nothing to take */
    ck_assert_int_eq(kill(a, SIGKILL), 0);
    int64_t t0 = wt_mono_ms();
    ASSERT_W(w, aipalq_worker_next(w, 10000, &job), AIPALQ_OK);
    int64_t took = wt_mono_ms() - t0;
    ck_assert_msg(took < 5000, "next returned the task %lld ms after its worker died",
                  (long long)took);
    ck_assert_str_eq(aipalq_job_id(job), id);
    ck_assert_int_eq(aipalq_job_attempt(job), 2);
    ASSERT_JOB(job, aipalq_job_complete(job, NULL), AIPALQ_OK);
    aipalq_job_free(job);
    aipalq_worker_free(w);
    wt_proc_wait(a, 5000);
    wt_end(&ctx);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("worker_step");
    TCase *tc = wt_tcase("step", 60);
    tcase_add_test(tc, test_next_empty_blocks);
    tcase_add_test(tc, test_complete);
    tcase_add_test(tc, test_fail_and_release);
    tcase_add_test(tc, test_outcome_text_round_trips);
    tcase_add_test(tc, test_cancel_as_soon_as_taken);
    tcase_add_test(tc, test_zombie_complete_is_stale);
    tcase_add_test(tc, test_held_job_keeps_its_lease);
    tcase_add_test(tc, test_next_sees_expired_lease);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return wt_main("wstep", suite);
}
