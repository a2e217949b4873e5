/* aipal-worker end to end: the daemon binary started as a process
 * (prefork pool), one task of each of the seventeen types enqueued through
 * the library and completed with the expected results, the health port
 * (/healthz, /readyz, /metrics), JSON log lines, SIGTERM with tasks in flight
 * (graceful, then fast: none lost), refusing root without --allow-root, and
 * two daemons electing one scheduler leader, with the other taking over,
 * firing by firing, when the leader is killed (SIGKILL). Needs Redis and
 * PostgreSQL (wtest.h) and AIPAL_WORKER_BIN. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wtest.h"

static char ns[64];
/* prefork, or threads under the sanitizers (see daemons/worker/meson.build). */
static const char *pool = "prefork";
static char tmpdir[] = "/tmp/aipal-wd-XXXXXX";
static aipalq_client *c;

/* ------------------------------------------------------------ processes */

typedef struct daemon_proc {
    pid_t pid;
    int port;
    char log[512];
} daemon_proc;

/* Every daemon started, so that a failed test leaves none behind. */
static pid_t started[32];
static int nstarted;

static void kill_leftovers(void)
{
    for (int i = 0; i < nstarted; i++)
        if (started[i] > 0 && kill(started[i], 0) == 0) {
            kill(started[i], SIGKILL);
            waitpid(started[i], NULL, 0);
        }
    nstarted = 0;
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(s, (struct sockaddr *)&a, sizeof a);
    socklen_t len = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &len);
    close(s);
    return ntohs(a.sin_port);
}

/* GET path on the daemon's port: the status (0 when unreachable); the body
 * goes to body (may be NULL). */
static int http_get(int port, const char *path, char *body, size_t len)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        close(s);
        return 0;
    }
    char req[256];
    snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
    if (write(s, req, strlen(req)) < 0) {
        close(s);
        return 0;
    }
    static char buf[1 << 20];
    size_t n = 0;
    ssize_t k;
    while (n < sizeof buf - 1 && (k = read(s, buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)k;
    buf[n] = '\0';
    close(s);
    int status = 0;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    char *b = strstr(buf, "\r\n\r\n");
    if (body)
        snprintf(body, len, "%s", b ? b + 4 : "");
    return status;
}

static daemon_proc start_daemon(const char *name, const char *const *extra)
{
    daemon_proc d = {0};
    d.port = free_port();
    snprintf(d.log, sizeof d.log, "%s/%s.log", tmpdir, name);
    char port[16], artifacts[300], temp[300];
    snprintf(port, sizeof port, "%d", d.port);
    snprintf(artifacts, sizeof artifacts, "%s/artifacts", tmpdir);
    snprintf(temp, sizeof temp, "%s/tmp", tmpdir);
    const char *argv[64] = {getenv("AIPAL_WORKER_BIN"),
                            "--allow-root",
                            "--namespace",
                            ns,
                            "--health-port",
                            port,
                            "--health-addr",
                            "127.0.0.1",
                            "--artifacts-dir",
                            artifacts,
                            "--temp-dir",
                            temp,
                            "--train-epochs",
                            "30",
                            "--benchmark-iterations",
                            "20"};
    int n = 16;
    for (int i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    d.pid = fork();
    if (d.pid == 0) {
        int fd = open(d.log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    if (nstarted < 32)
        started[nstarted++] = d.pid;
    /* Ready when /readyz says so. */
    for (int i = 0; i < 300; i++) {
        if (http_get(d.port, "/readyz", NULL, 0) == 200)
            return d;
        int st;
        if (waitpid(d.pid, &st, WNOHANG) == d.pid)
            ck_abort_msg("aipal-worker %s exited at start (see %s)", name, d.log);
        wt_sleep_ms(100);
    }
    ck_abort_msg("aipal-worker %s not ready after 30 s (see %s)", name, d.log);
    return d;
}

/* Waits for the daemon to exit; returns its exit status (-1 on timeout). */
static int wait_exit(daemon_proc *d, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        wt_sleep_ms(50);
    }
    return -1;
}

static int count_running(const char *ids[], int n)
{
    int running = 0;
    for (int i = 0; i < n; i++) {
        aipalq_task *t;
        if (aipalq_get(c, ids[i], &t) == AIPALQ_OK) {
            running += aipalq_task_state(t) == AIPALQ_STATE_RUNNING;
            aipalq_task_free(t);
        }
    }
    return running;
}

/* ------------------------------------------------------------- fixtures */

static void fixtures(void)
{
    wt_sql("INSERT INTO ari_snapshots (user_id, \"timestamp\", engagement, autonomy_retention)"
           " SELECT 'e2e', now() - interval '1 hour' - make_interval(days => 3 - i),"
           " (ARRAY[0.5, 0.6, 0.7, 0.8])[i + 1], (ARRAY[10, 9, 8, 7])[i + 1]"
           " FROM generate_series(0, 3) AS i;"
           "INSERT INTO ffe_goals (goal_id, user_id, description, created_at) VALUES"
           " ('e2e-track', 'e2e', 'x', now() - interval '2 days');"
           "INSERT INTO atomic_blocks (block_id, goal_id, user_id, description, block_index,"
           " estimated_minutes, completed, completed_at) VALUES"
           " ('e2e-track:1', 'e2e-track', 'e2e', 'a', 1, 60, true, now() - interval '1 day'),"
           " ('e2e-track:2', 'e2e-track', 'e2e', 'b', 2, 60, false, NULL);"
           "INSERT INTO edm_debts (user_id, \"timestamp\", claim, debt_type, severity, resolved,"
           " resolution_date, resolution_method) VALUES"
           " ('e2e', now() - interval '3 days', 'a', 'vague_claim', 'low', true,"
           "  now() - interval '2 days', 'verified');"
           "INSERT INTO edm_interactions (interaction_id, user_id, response) VALUES"
           " ('e2e-i1', 'e2e', 'Bats are blind, and lightning never strikes twice.');"
           "INSERT INTO ml_samples (user_id, text, label, split) VALUES"
           " ('e2e', 'great wonderful love', 'pos', 'train'),"
           " ('e2e', 'excellent happy great', 'pos', 'train'),"
           " ('e2e', 'terrible awful hate', 'neg', 'train'),"
           " ('e2e', 'horrible sad awful', 'neg', 'train'),"
           " ('e2e', 'love it, great', 'pos', 'test'),"
           " ('e2e', 'awful, hate it', 'neg', 'test');"
           "INSERT INTO audit_logs (created_at, action) SELECT now() - interval '120 days', 'e2e'"
           " FROM generate_series(1, 25)");
}

typedef struct expect {
    const char *type, *params;
    aipalq_state state;
    const char *path; /* a number in the result */
    double value;
} expect;

static const expect all_types[] = {
    {"aggregate_ari_snapshots", "{\"user_id\":\"e2e\",\"time_window_hours\":24}",
     AIPALQ_STATE_COMPLETED, "aggregates.e2e.metrics.engagement.latest", 0.8},
    {"analyze_ari_trends", "{\"user_id\":\"e2e\"}", AIPALQ_STATE_COMPLETED,
     "trends.autonomy_retention.change_percent", -30},
    {"plan_ffe_goal",
     "{\"goal_id\":\"e2e-plan\",\"user_id\":\"e2e\",\"goal_description\":\"Write the project "
     "report, review it and send it to the team\",\"complexity_level\":\"simple\","
     "\"available_hours\":2}",
     AIPALQ_STATE_COMPLETED, "blocks.0.estimated_minutes", 70},
    {"track_ffe_progress", "{\"goal_id\":\"e2e-track\",\"user_id\":\"e2e\"}",
     AIPALQ_STATE_COMPLETED, "completion_percent", 50},
    {"edm_batch_analysis", "{\"user_id\":\"e2e\",\"texts\":[\"Studies show it always works.\"]}",
     AIPALQ_STATE_COMPLETED, "texts.0.score", 5},
    {"edm_track_resolutions", "{\"user_id\":\"e2e\"}", AIPALQ_STATE_COMPLETED,
     "mean_resolution_hours", 24},
    {"edm_detect_misinformation", "{\"user_id\":\"e2e\",\"interaction_ids\":[\"e2e-i1\"]}",
     AIPALQ_STATE_COMPLETED, "by_confidence.high", 2},
    {"archive_audit_logs", "{\"days_to_keep\":90}", AIPALQ_STATE_COMPLETED, "archived", 25},
    {"maintain_database", "{\"optimization_level\":\"light\"}", AIPALQ_STATE_COMPLETED,
     "metadata.counts.tables", 19},
    {"cleanup_cache", "{}", AIPALQ_STATE_COMPLETED, "app_cache.expired_removed", 0},
    {"enforce_retention_policy", "{\"policy\":{\"temp_files\":7}}", AIPALQ_STATE_COMPLETED,
     "results.temp_files.files", 0},
    {"echo", "{\"message\":\"hello\"}", AIPALQ_STATE_COMPLETED, NULL, 0},
    {"sleep", "{\"ms\":100}", AIPALQ_STATE_COMPLETED, "requested_ms", 100},
    {"fail", "{\"message\":\"as asked\"}", AIPALQ_STATE_FAILED, NULL, 0},
};

START_TEST(every_type_end_to_end)
{
    kill_leftovers();
    const char *extra[] = {"--concurrency", "4", "--pool", pool, NULL};
    daemon_proc d = start_daemon("e2e", extra);
    char body[1 << 16];
    ck_assert_int_eq(http_get(d.port, "/healthz", body, sizeof body), 200);
    ck_assert_ptr_nonnull(strstr(body, "\"ok\""));
    ck_assert_int_eq(http_get(d.port, "/readyz", body, sizeof body), 200);
    ck_assert_ptr_nonnull(strstr(body, "\"redis\":true"));
    ck_assert_int_eq(http_get(d.port, "/nope", NULL, 0), 404);

    size_t n = sizeof all_types / sizeof all_types[0];
    char ids[32][AIPALQ_ID_SIZE];
    for (size_t i = 0; i < n; i++)
        wt_enqueue(c, all_types[i].type, all_types[i].params, ids[i]);
    for (size_t i = 0; i < n; i++) {
        aipalq_task *t = wt_wait(c, ids[i], 60000, -1);
        ck_assert_msg(aipalq_task_state(t) == all_types[i].state, "%s: %s (%s)", all_types[i].type,
                      aipalq_state_name(aipalq_task_state(t)),
                      aipalq_task_error_message(t) ? aipalq_task_error_message(t) : "");
        if (all_types[i].path) {
            cJSON *r = cJSON_Parse(aipalq_task_result(t));
            ck_assert_msg(wt_get(r, all_types[i].path) != NULL, "%s: no %s in %s",
                          all_types[i].type, all_types[i].path, aipalq_task_result(t));
            ck_assert_double_eq_tol(wt_num(r, all_types[i].path), all_types[i].value, 1e-6);
            ck_assert(cJSON_IsNumber(wt_get(r, "metadata.duration_ms")));
            cJSON_Delete(r);
        }
        if (strcmp(all_types[i].type, "echo") == 0) {
            cJSON *got = cJSON_Parse(aipalq_task_result(t)),
                  *want = cJSON_Parse(all_types[i].params);
            ck_assert(cJSON_Compare(got, want, 1));
            cJSON_Delete(got);
            cJSON_Delete(want);
        }
        if (strcmp(all_types[i].type, "fail") == 0)
            ck_assert_str_eq(aipalq_task_error_message(t), "as asked");
        aipalq_task_free(t);
    }
    /* The model types: train, then evaluate and benchmark the saved model. */
    cJSON *r = wt_run(c, "finetune_model",
                      "{\"user_id\":\"e2e\",\"model_name\":\"e2e-model\",\"learning_rate\":0.5}",
                      AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_double_eq(wt_num(r, "samples"), 4);
    ck_assert_double_eq_tol(wt_num(r, "metrics.train_accuracy"), 1, 1e-9);
    cJSON_Delete(r);
    r = wt_run(c, "evaluate_model", "{\"user_id\":\"e2e\",\"model_name\":\"e2e-model\"}",
               AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_double_eq_tol(wt_num(r, "accuracy"), 1, 1e-9);
    ck_assert_double_eq_tol(wt_num(r, "f1"), 1, 1e-9);
    cJSON_Delete(r);
    r = wt_run(c, "benchmark_model", "{\"model_name\":\"e2e-model\",\"scenarios\":[\"writing\"]}",
               AIPALQ_STATE_COMPLETED, NULL);
    ck_assert_double_eq(wt_num(r, "scenarios.writing.requests"), 20);
    cJSON_Delete(r);
    /* Bad params: rejected with the field named, not retried. */
    aipalq_task *t;
    cJSON_Delete(wt_run(c, "plan_ffe_goal", "{\"goal_id\":\"x\",\"user_id\":\"e2e\"}",
                        AIPALQ_STATE_FAILED, &t));
    ck_assert_str_eq(aipalq_task_error_message(t), "invalid params: goal_description: is required");
    ck_assert_int_eq(aipalq_task_attempts(t), 1);
    aipalq_task_free(t);

    /* Metrics, counted across the prefork children. */
    ck_assert_int_eq(http_get(d.port, "/metrics", body, sizeof body), 200);
    ck_assert_ptr_nonnull(
        strstr(body, "aipal_task_handled_total{type=\"echo\",outcome=\"succeeded\"} 1\n"));
    ck_assert_ptr_nonnull(
        strstr(body, "aipal_task_handled_total{type=\"fail\",outcome=\"failed\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(body, "aipal_worker_tasks_total{outcome=\"completed\"} 16\n"));
    ck_assert_ptr_nonnull(strstr(body, "aipal_task_duration_seconds_count{type=\"sleep\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(body, "aipal_queue_depth{queue=\"default\",state=\"ready\"} 0\n"));

    kill(d.pid, SIGTERM);
    ck_assert_int_eq(wait_exit(&d, 30000), 0);
    /* Every log line is one JSON object; every task has its outcome line. */
    FILE *f = fopen(d.log, "r");
    char line[1 << 16];
    int lines = 0, outcomes = 0, started = 0, stopped = 0;
    while (fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        ck_assert_msg(o != NULL, "not JSON: %s", line);
        const char *ev = cJSON_GetStringValue(cJSON_GetObjectItem(o, "event"));
        ck_assert_ptr_nonnull(ev);
        outcomes += strcmp(ev, "task.succeeded") == 0 || strcmp(ev, "task.failed") == 0;
        started += strcmp(ev, "worker.started") == 0;
        stopped += strcmp(ev, "worker.stopped") == 0;
        cJSON_Delete(o);
        lines++;
    }
    fclose(f);
    ck_assert_int_eq(started, 1);
    ck_assert_int_eq(stopped, 1);
    ck_assert_int_eq(outcomes, (int)n + 4);
}
END_TEST

START_TEST(sigterm_with_tasks_in_flight_loses_none)
{
    kill_leftovers();
    const char *extra[] = {"--concurrency", "4", "--pool", pool, "--queues", "default", NULL};
    /* Graceful: the four running finish, the two waiting stay queued. */
    daemon_proc d = start_daemon("sigterm1", extra);
    char idbuf[6][AIPALQ_ID_SIZE];
    const char *ids[6];
    for (int i = 0; i < 6; i++) {
        wt_enqueue(c, "sleep", "{\"ms\":2500}", idbuf[i]);
        ids[i] = idbuf[i];
    }
    for (int i = 0; i < 200 && count_running(ids, 6) < 4; i++)
        wt_sleep_ms(50);
    ck_assert_int_eq(count_running(ids, 6), 4);
    kill(d.pid, SIGTERM);
    ck_assert_int_eq(wait_exit(&d, 30000), 0);
    int completed = 0, waiting = 0;
    for (int i = 0; i < 6; i++) {
        aipalq_task *t;
        ck_assert_int_eq(aipalq_get(c, ids[i], &t), AIPALQ_OK);
        completed += aipalq_task_state(t) == AIPALQ_STATE_COMPLETED;
        waiting += aipalq_task_state(t) == AIPALQ_STATE_PENDING;
        aipalq_task_free(t);
    }
    ck_assert_int_eq(completed, 4);
    ck_assert_int_eq(waiting, 2);
    /* Fast (a second signal): running tasks are handed back at once. */
    d = start_daemon("sigterm2", extra);
    char more[4][AIPALQ_ID_SIZE];
    for (int i = 0; i < 4; i++)
        wt_enqueue(c, "sleep", "{\"ms\":8000}", more[i]);
    const char *fresh[4] = {more[0], more[1], more[2], more[3]};
    for (int i = 0; i < 300 && count_running(fresh, 4) < 2; i++)
        wt_sleep_ms(50);
    ck_assert_int_ge(count_running(fresh, 4), 2);
    int64_t t0 = wt_now_ms();
    kill(d.pid, SIGTERM);
    wt_sleep_ms(200);
    kill(d.pid, SIGTERM);
    ck_assert_int_eq(wait_exit(&d, 15000), 0);
    ck_assert_int_lt(wt_now_ms() - t0, 6000);
    /* A new worker finishes everything: nothing was lost. */
    d = start_daemon("sigterm3", extra);
    for (int i = 0; i < 4; i++) {
        aipalq_task *t = wt_wait(c, more[i], 60000, -1);
        ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_COMPLETED);
        aipalq_task_free(t);
    }
    for (int i = 0; i < 6; i++) {
        aipalq_task *t = wt_wait(c, ids[i], 60000, -1);
        ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_COMPLETED);
        ck_assert_int_eq(aipalq_task_attempts(t), 1);
        aipalq_task_free(t);
    }
    kill(d.pid, SIGTERM);
    ck_assert_int_eq(wait_exit(&d, 30000), 0);
}
END_TEST

START_TEST(refuses_root_without_allow_root)
{
    if (geteuid() != 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 2);
        execl(getenv("AIPAL_WORKER_BIN"), "aipal-worker", "--health-port", "0", (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    ck_assert(WIFEXITED(st));
    ck_assert_int_eq(WEXITSTATUS(st), 2);
}
END_TEST

static int is_leader(int port)
{
    static char body[1 << 17];
    if (http_get(port, "/metrics", body, sizeof body) != 200)
        return -1;
    return strstr(body, "\naipal_scheduler_leader 1\n") != NULL;
}

START_TEST(two_daemons_one_scheduler_takeover_on_kill)
{
    kill_leftovers();
    char sched[512];
    snprintf(sched, sizeof sched, "%s/schedule", tmpdir);
    FILE *f = fopen(sched, "w");
    fputs("# e2e\nbeat @every 1s echo {\"message\":\"beat\"}\n", f);
    fclose(f);
    const char *extra[] = {"--concurrency",     "2",       "--pool",     "threads",
                           "--queues",          "default", "--schedule", sched,
                           "--scheduler-lease", "3",       NULL};
    daemon_proc a = start_daemon("sched-a", extra);
    daemon_proc b = start_daemon("sched-b", extra);
    wt_sleep_ms(3000);
    int la = is_leader(a.port), lb = is_leader(b.port);
    ck_assert_int_eq(la + lb, 1);
    daemon_proc *leader = la ? &a : &b, *other = la ? &b : &a;
    long before = wt_sql_int("SELECT count(*) FROM aipalq_tasks WHERE idempotency_key LIKE "
                             "'cron:beat:%%'");
    ck_assert_int_ge(before, 2);
    kill(leader->pid, SIGKILL);
    wait_exit(leader, 5000);
    wt_sleep_ms(7000);
    ck_assert_int_eq(is_leader(other->port), 1);
    kill(other->pid, SIGTERM);
    ck_assert_int_eq(wait_exit(other, 30000), 0);
    /* Each second fired once, with none missing across the takeover. */
    long tasks = wt_sql_int("SELECT count(*) FROM aipalq_tasks WHERE idempotency_key LIKE "
                            "'cron:beat:%%'");
    ck_assert_int_ge(tasks, before + 4);
    ck_assert_int_eq(wt_sql_int("SELECT count(DISTINCT idempotency_key) FROM aipalq_tasks WHERE "
                                "idempotency_key LIKE 'cron:beat:%%'"),
                     tasks);
    ck_assert_int_eq(wt_sql_int("SELECT (max(split_part(idempotency_key, ':', 3)::bigint) - "
                                "min(split_part(idempotency_key, ':', 3)::bigint)) / 1000 + 1 "
                                "FROM aipalq_tasks WHERE idempotency_key LIKE 'cron:beat:%%'"),
                     tasks);
    ck_assert_int_eq(wt_sql_int("SELECT fired_count FROM aipal_schedule_state WHERE name = "
                                "'beat'"),
                     tasks);
}
END_TEST

int main(void)
{
    wt_require_services();
    if (!getenv("AIPAL_WORKER_BIN")) {
        fprintf(stderr, "AIPAL_WORKER_BIN must name the aipal-worker binary\n");
        return 1;
    }
    if (getenv("AIPAL_TEST_POOL"))
        pool = getenv("AIPAL_TEST_POOL");
    if (!mkdtemp(tmpdir))
        return 1;
    wt_scratch_db_begin("daemon");
    wt_unique("wt_daemon_", ns, sizeof ns);
    c = wt_client(ns);
    fixtures();
    Suite *s = suite_create("worker_daemon");
    TCase *tc = tcase_create("daemon");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, every_type_end_to_end);
    tcase_add_test(tc, sigterm_with_tasks_in_flight_loses_none);
    tcase_add_test(tc, refuses_root_without_allow_root);
    tcase_add_test(tc, two_daemons_one_scheduler_takeover_on_kill);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    kill_leftovers();
    aipalq_client_free(c);
    wt_scratch_db_end();
    if (!failed) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    } else {
        fprintf(stderr, "daemon logs kept in %s\n", tmpdir);
    }
    return failed ? 1 : 0;
}
