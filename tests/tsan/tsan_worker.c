/* ThreadSanitizer driver of the worker engine's threaded paths (built and run
 * by tests/tsan/run.sh in build-tsan/, -Db_sanitize=thread).
 *
 * On a scratch database and a namespace of its own, at the same time:
 *  - a thread-mode worker, concurrency 8, drains 2,000 tasks whose handlers
 *    report progress (coalesced by the recorder), set results or errors (some
 *    error messages are not UTF-8: the recorder must still write them), poll
 *    aipalq_job_should_stop; a few pass their soft limit (the callback runs on
 *    the heartbeat thread), one is cancelled by the main thread while it runs;
 *  - a second worker serves 200 tasks of another queue through the step API
 *    (aipalq_worker_next, then complete / fail / release) from its own thread;
 *  - the main thread reads aipalq_worker_counts and aipalq_worker_idle_ms
 *    (documented as any-thread) while both run,
 * then stops the first worker gracefully from the main thread and checks that
 * every task reached the expected final state in PostgreSQL.
 *
 * Environment: AIPALQ_REDIS_URL, AIPALQ_DATABASE_URL (scripts/services.sh).
 * Exit status 0 when every check passed (TSan reports make it non-zero via
 * TSAN_OPTIONS=halt_on_error=1 / exitcode). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include <aipal/aipalq.h>
#include <aipal/worker.h>

#define N_TASKS 2000
#define N_SLOW 4
#define N_STEP 200

static int failures;
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "tsan_worker: FAIL %s:%d: ", __FILE__, __LINE__);                      \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)
#define DIE(...)                                                                                   \
    do {                                                                                           \
        fprintf(stderr, "tsan_worker: " __VA_ARGS__);                                              \
        fputc('\n', stderr);                                                                       \
        exit(1);                                                                                   \
    } while (0)

static char ns[64], queue[64], step_queue[64], db_name[64];
static char *db_url;
static atomic_int soft_calls, handler_runs, cancel_seen;
static atomic_int cancel_running; /* the cancel task's handler has started */
static char cancel_id[AIPALQ_ID_SIZE];

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------- setup */

static char *url_with_db(const char *url, const char *name)
{
    size_t n = strlen(url) + strlen(name) + 16;
    char *out = malloc(n);
    const char *scheme = strstr(url, "://");
    if (!scheme) {
        snprintf(out, n, "%s dbname=%s", url, name);
        return out;
    }
    const char *rest = scheme + 3;
    const char *cut = rest + strcspn(rest, "/?");
    const char *tail = cut;
    if (*cut == '/')
        tail = cut + 1 + strcspn(cut + 1, "?");
    snprintf(out, n, "%.*s/%s%s", (int)(cut - url), url, name, tail);
    return out;
}

static void admin_sql(const char *sql)
{
    PGconn *pg = PQconnectdb(getenv("AIPALQ_DATABASE_URL"));
    if (PQstatus(pg) != CONNECTION_OK)
        DIE("cannot connect to AIPALQ_DATABASE_URL: %s", PQerrorMessage(pg));
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        DIE("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(pg);
}

static long long db_int(const char *sql)
{
    PGconn *pg = PQconnectdb(db_url);
    PGresult *r = PQexec(pg, sql);
    long long v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        v = atoll(PQgetvalue(r, 0, 0));
    else
        fprintf(stderr, "tsan_worker: %s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(pg);
    return v;
}

static void redis_cleanup(void)
{
    const char *url = getenv("AIPALQ_REDIS_URL");
    char host[128] = "127.0.0.1";
    int port = 6379;
    if (url && sscanf(url, "redis://%127[^:/]:%d", host, &port) < 1)
        return;
    redisContext *r = redisConnect(host, port);
    if (!r || r->err) {
        redisFree(r);
        return;
    }
    char pattern[96];
    snprintf(pattern, sizeof pattern, "%s:*", ns);
    char cursor[32] = "0";
    do {
        redisReply *rep = redisCommand(r, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
            freeReplyObject(rep);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        for (size_t i = 0; i < rep->element[1]->elements; i++)
            freeReplyObject(redisCommand(r, "DEL %s", rep->element[1]->element[i]->str));
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    redisFree(r);
}

/* ------------------------------------------------------------- handlers */

static void on_soft_limit(aipalq_job *job, void *ud)
{
    (void)ud;
    /* documented: another worker thread; may read the job */
    if (aipalq_job_id(job)[0])
        atomic_fetch_add(&soft_calls, 1);
}

/* tsan_work: progress, then a result or an error by the task's number. */
static void h_work(aipalq_job *job, void *ud)
{
    (void)ud;
    atomic_fetch_add(&handler_runs, 1);
    const char *params = aipalq_job_params(job);
    const char *p = strstr(params, "\"n\":");
    int n = p ? atoi(p + 4) : 0;
    aipalq_job_progress(job, 10, "started");
    aipalq_job_progress(job, 50, n % 2 ? "half way" : NULL);
    if (aipalq_job_should_stop(job))
        return;
    aipalq_job_progress(job, 100, "done");
    if (n % 10 == 7) {
        /* not UTF-8: must reach PostgreSQL scrubbed, not stall the recorder */
        aipalq_job_set_error(job, "bad bytes \xff\xfe here", n % 20 == 7 ? "\xc3(" : NULL, 0);
        return;
    }
    char result[96];
    snprintf(result, sizeof result, "{\"n\":%d,\"attempt\":%d}", n, aipalq_job_attempt(job));
    if (aipalq_job_set_result(job, result) != AIPALQ_OK)
        aipalq_job_set_error(job, "result refused", aipalq_job_errmsg(job), 0);
    if (n % 50 == 3) /* a result PostgreSQL cannot store is refused up front */
        if (aipalq_job_set_result(job, "{\"x\":1e999999}") != AIPALQ_EBADJSON)
            atomic_fetch_add(&cancel_seen, 1000); /* flagged below */
}

/* tsan_slow: runs past its soft limit (200 ms) until told to stop. */
static void h_slow(aipalq_job *job, void *ud)
{
    (void)ud;
    int64_t end = now_ms() + 3000;
    while (!aipalq_job_soft_limit_passed(job) && now_ms() < end)
        sleep_ms(10);
    aipalq_job_set_result(job, aipalq_job_soft_limit_passed(job) ? "\"soft\"" : "\"late\"");
}

/* tsan_cancel: waits for its cancel request. */
static void h_cancel(aipalq_job *job, void *ud)
{
    (void)ud;
    atomic_store(&cancel_running, 1);
    int64_t end = now_ms() + 30000;
    while (!aipalq_job_cancel_requested(job) && now_ms() < end)
        sleep_ms(5);
    if (aipalq_job_cancel_requested(job))
        atomic_fetch_add(&cancel_seen, 1);
}

/* -------------------------------------------------------------- threads */

static void *run_worker(void *arg)
{
    aipalq_worker *w = arg;
    aipalq_status st = aipalq_worker_run(w);
    if (st != AIPALQ_OK)
        fprintf(stderr, "tsan_worker: worker_run: %s: %s\n", aipalq_status_name(st),
                aipalq_worker_errmsg(w));
    return (void *)(intptr_t)st;
}

typedef struct step_ctx {
    aipalq_worker *w;
    int completed, failed, released;
} step_ctx;

static void *run_steps(void *arg)
{
    step_ctx *s = arg;
    int64_t deadline = now_ms() + 240000;
    int done = 0;
    while (done < N_STEP && now_ms() < deadline) {
        aipalq_job *job = NULL;
        aipalq_status st = aipalq_worker_next(s->w, 500, &job);
        if (st == AIPALQ_EMPTY)
            continue;
        if (st != AIPALQ_OK) {
            sleep_ms(50);
            continue;
        }
        const char *p = strstr(aipalq_job_params(job), "\"n\":");
        int n = p ? atoi(p + 4) : 0;
        if (n % 9 == 4 && aipalq_job_attempt(job) == 1 && s->released < 20) {
            if (aipalq_job_release(job) == AIPALQ_OK)
                s->released++;
        } else if (n % 5 == 1) {
            if (aipalq_job_fail(job, "step failure", NULL, 0) == AIPALQ_OK)
                s->failed++, done++;
        } else {
            if (aipalq_job_complete(job, "{\"step\":true}") == AIPALQ_OK)
                s->completed++, done++;
        }
        aipalq_job_free(job);
    }
    return NULL;
}

/* ----------------------------------------------------------------- main */

static void enqueue_all(aipalq_client *c)
{
    aipalq_batch *b = aipalq_batch_new();
    char params[64];
    for (int i = 0; i < N_TASKS; i++) {
        const char *type = "tsan_work";
        if (i % (N_TASKS / N_SLOW) == 11)
            type = "tsan_slow";
        snprintf(params, sizeof params, "{\"n\":%d}", i);
        aipalq_batch_add(b, type, params, NULL);
        if (aipalq_batch_size(b) == 250 || i == N_TASKS - 1) {
            if (aipalq_enqueue_batch(c, b) != AIPALQ_OK)
                DIE("enqueue_batch: %s", aipalq_client_errmsg(c));
            aipalq_batch_clear(b);
        }
    }
    for (int i = 0; i < N_STEP; i++) {
        snprintf(params, sizeof params, "{\"n\":%d}", i);
        aipalq_batch_add(b, "tsan_step", params, NULL);
    }
    if (aipalq_enqueue_batch(c, b) != AIPALQ_OK)
        DIE("enqueue_batch (steps): %s", aipalq_client_errmsg(c));
    aipalq_batch_free(b);
}

int main(void)
{
    if (!getenv("AIPALQ_REDIS_URL") || !getenv("AIPALQ_DATABASE_URL"))
        DIE("AIPALQ_REDIS_URL and AIPALQ_DATABASE_URL must be set (scripts/services.sh)");
    setvbuf(stdout, NULL, _IOLBF, 0);
    long pid = (long)getpid();
    snprintf(ns, sizeof ns, "tsan%ld", pid);
    snprintf(queue, sizeof queue, "tsanq%ld", pid);
    snprintf(step_queue, sizeof step_queue, "tsanstep%ld", pid);
    snprintf(db_name, sizeof db_name, "aipalq_tsan_%ld", pid);
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db_name);
    admin_sql(sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db_name);
    admin_sql(sql);
    db_url = url_with_db(getenv("AIPALQ_DATABASE_URL"), db_name);

    aipalq_client *c = aipalq_client_new(NULL, db_url);
    if (!c || aipalq_client_set_namespace(c, ns) != AIPALQ_OK || aipalq_migrate(c) != AIPALQ_OK)
        DIE("client/migrate: %s", aipalq_client_errmsg(c));
    char types[1024];
    snprintf(types, sizeof types,
             "[{\"name\":\"tsan_work\",\"queue\":\"%s\",\"max_retries\":0},"
             "{\"name\":\"tsan_slow\",\"queue\":\"%s\",\"max_retries\":0,"
             "\"soft_time_limit_ms\":200,\"hard_time_limit_ms\":20000},"
             "{\"name\":\"tsan_cancel\",\"queue\":\"%s\",\"max_retries\":0},"
             "{\"name\":\"tsan_step\",\"queue\":\"%s\",\"max_retries\":0}]",
             queue, queue, queue, step_queue);
    if (aipalq_types_define_json(c, types) != AIPALQ_OK)
        DIE("types: %s", aipalq_client_errmsg(c));

    /* The thread-mode worker. */
    aipalq_worker *w = aipalq_worker_new(c);
    if (!w || aipalq_worker_set_queues(w, queue, 0) != AIPALQ_OK ||
        aipalq_worker_set_concurrency(w, 8) != AIPALQ_OK ||
        aipalq_worker_set_mode(w, AIPALQ_MODE_THREADS) != AIPALQ_OK ||
        aipalq_worker_set_prefetch(w, 2) != AIPALQ_OK ||
        aipalq_worker_set_lease_ms(w, 5000) != AIPALQ_OK ||
        aipalq_worker_set_maintenance_ms(w, 1000) != AIPALQ_OK ||
        aipalq_worker_set_shutdown_timeout_ms(w, 10000) != AIPALQ_OK ||
        aipalq_worker_on_soft_limit(w, on_soft_limit, NULL) != AIPALQ_OK ||
        aipalq_worker_handle(w, "tsan_work", h_work, NULL) != AIPALQ_OK ||
        aipalq_worker_handle(w, "tsan_slow", h_slow, NULL) != AIPALQ_OK ||
        aipalq_worker_handle(w, "tsan_cancel", h_cancel, NULL) != AIPALQ_OK)
        DIE("worker setup: %s", w ? aipalq_worker_errmsg(w) : "out of memory");

    /* The step worker, on its own queue. */
    aipalq_worker *sw = aipalq_worker_new(c);
    if (!sw || aipalq_worker_set_queues(sw, step_queue, 0) != AIPALQ_OK ||
        aipalq_worker_set_lease_ms(sw, 5000) != AIPALQ_OK ||
        aipalq_worker_set_maintenance_ms(sw, 0) != AIPALQ_OK)
        DIE("step worker setup: %s", sw ? aipalq_worker_errmsg(sw) : "out of memory");

    /* The cancel task first, so that it starts early; then the rest. */
    char id[AIPALQ_ID_SIZE];
    if (aipalq_enqueue(c, "tsan_cancel", "{}", NULL, cancel_id, NULL) != AIPALQ_OK)
        DIE("enqueue: %s", aipalq_client_errmsg(c));
    enqueue_all(c);
    (void)id;

    int64_t t0 = now_ms();
    pthread_t wt, st;
    step_ctx sc = {.w = sw};
    pthread_create(&wt, NULL, run_worker, w);
    pthread_create(&st, NULL, run_steps, &sc);

    /* Cancel the cancel task once its handler runs. */
    bool cancelled = false;
    int64_t deadline = now_ms() + 240000;
    long long final = 0;
    const long long want_final = N_TASKS + 1;
    while (now_ms() < deadline) {
        int64_t completed, failed, retried, cancelled_n, stale, running;
        aipalq_worker_counts(w, &completed, &failed, &retried, &cancelled_n, &stale, &running);
        (void)aipalq_worker_idle_ms(w);
        if (!cancelled && atomic_load(&cancel_running)) {
            aipalq_state state;
            aipalq_status cs = aipalq_cancel(c, cancel_id, &state);
            CHECK(cs == AIPALQ_OK && state == AIPALQ_STATE_RUNNING,
                  "cancel of the running task: %s (%s)", aipalq_status_name(cs),
                  aipalq_client_errmsg(c));
            cancelled = true;
        }
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM aipalq_tasks WHERE queue = '%s' AND status IN "
                 "('completed','failed','cancelled')",
                 queue);
        final = db_int(sql);
        if (final >= want_final)
            break;
        sleep_ms(250);
    }
    printf("tsan_worker: %lld of %lld tasks final after %lld ms\n", final, want_final,
           (long long)(now_ms() - t0));
    CHECK(final == want_final, "only %lld of %lld tasks reached a final state", final,
          want_final);

    /* Graceful stop from this thread, while the step thread may still run. */
    aipalq_worker_stop(w, 0);
    void *ret = NULL;
    pthread_join(wt, &ret);
    CHECK((intptr_t)ret == AIPALQ_OK, "worker_run returned %ld", (long)(intptr_t)ret);
    pthread_join(st, NULL);

    int64_t completed, failed, retried, cancelled_n, stale, running;
    aipalq_worker_counts(w, &completed, &failed, &retried, &cancelled_n, &stale, &running);
    printf("tsan_worker: worker counts: completed %lld failed %lld retried %lld cancelled %lld "
           "stale %lld running %lld; soft-limit calls %d; step: %d completed %d failed %d "
           "released\n",
           (long long)completed, (long long)failed, (long long)retried, (long long)cancelled_n,
           (long long)stale, (long long)running, atomic_load(&soft_calls), sc.completed,
           sc.failed, sc.released);

    /* What PostgreSQL holds. */
    int want_failed = 0;
    for (int i = 0; i < N_TASKS; i++)
        want_failed += i % 10 == 7 && i % (N_TASKS / N_SLOW) != 11;
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM aipalq_tasks WHERE queue = '%s' AND status = 'failed'", queue);
    long long db_failed = db_int(sql);
    CHECK(db_failed == want_failed, "failed tasks: %lld, want %d", db_failed, want_failed);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM aipalq_tasks WHERE queue = '%s' AND status = 'failed' AND "
             "error_message = 'bad bytes ?? here'",
             queue);
    CHECK(db_int(sql) == want_failed, "scrubbed error messages not recorded as expected");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM aipalq_tasks WHERE id = '%s' AND status = 'cancelled'",
             cancel_id);
    CHECK(db_int(sql) == 1, "the cancelled task is not cancelled");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM aipalq_tasks WHERE queue = '%s' AND status = 'completed' AND "
             "result = '\"soft\"'::jsonb",
             queue);
    CHECK(db_int(sql) == N_SLOW, "soft-limited tasks: %lld, want %d", db_int(sql), N_SLOW);
    CHECK(atomic_load(&soft_calls) >= N_SLOW, "soft-limit callback ran %d times, want >= %d",
          atomic_load(&soft_calls), N_SLOW);
    CHECK(atomic_load(&cancel_seen) == 1, "cancel seen by the handler: %d (>= 1000: an "
          "out-of-range result was accepted)", atomic_load(&cancel_seen));
    CHECK(completed + failed + cancelled_n == want_final,
          "worker counts %lld + %lld + %lld != %lld", (long long)completed, (long long)failed,
          (long long)cancelled_n, want_final);
    CHECK(running == 0, "%lld still running after stop", (long long)running);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM aipalq_tasks WHERE queue = '%s' AND status IN "
             "('completed','failed')",
             step_queue);
    CHECK(db_int(sql) == N_STEP, "step tasks final: %lld, want %d", db_int(sql), N_STEP);
    CHECK(sc.completed + sc.failed == N_STEP, "step outcomes %d + %d", sc.completed, sc.failed);

    aipalq_worker_free(sw);
    aipalq_worker_free(w);
    aipalq_client_free(c);
    redis_cleanup();
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db_name);
    admin_sql(sql);
    free(db_url);
    printf("tsan_worker: %s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
