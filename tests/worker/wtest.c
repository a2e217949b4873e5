/* Helpers of the worker engine's tests; see wtest.h. */
#include "wtest.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define MAX_PROCS 16

static pid_t procs[MAX_PROCS];
static int nprocs;
static PGconn *pg; /* wt_sql_*: one connection per test */

int64_t wt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t wt_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void wt_sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static const char *db_tag = "worker";

static void db_setup(void)
{
    tu_scratch_db_begin(db_tag);
}

static void db_teardown(void)
{
    tu_scratch_db_end();
}

TCase *wt_tcase(const char *name, int timeout_s)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, timeout_s);
    /* Unchecked: runs once in the runner, whose environment the forked
     * tests inherit. */
    tcase_add_unchecked_fixture(tc, db_setup, db_teardown);
    return tc;
}

int wt_main(const char *tag, Suite *(*make_suite)(void))
{
    tu_require_services();
    db_tag = tag;
    return tu_run(make_suite());
}

/* ------------------------------------------------------------ context */

void wt_begin(wt_ctx *ctx, const char *types_json)
{
    memset(ctx, 0, sizeof *ctx);
    tu_unique("wk", ctx->ns, sizeof ctx->ns);
    tu_unique("q", ctx->queue, sizeof ctx->queue);
    /* The types, with "@Q" replaced by the queue name. */
    size_t o = 0;
    for (const char *p = types_json; *p; p++) {
        if (p[0] == '@' && p[1] == 'Q') {
            o += (size_t)snprintf(ctx->types + o, sizeof ctx->types - o, "%s", ctx->queue);
            p++;
        } else if (o + 1 < sizeof ctx->types) {
            ctx->types[o++] = *p;
        }
        ck_assert_msg(o + 1 < sizeof ctx->types, "types JSON too long");
    }
    ctx->types[o] = '\0';
    snprintf(ctx->log, sizeof ctx->log, "/tmp/aipalq-wt-%s.log", ctx->ns);
    unlink(ctx->log);
    setenv("AIPALQ_TEST_LOG", ctx->log, 1);
    ctx->c = aipalq_client_new(NULL, NULL);
    ck_assert_ptr_nonnull(ctx->c);
    ASSERT_OK(ctx->c, aipalq_client_set_namespace(ctx->c, ctx->ns));
    ASSERT_OK(ctx->c, aipalq_types_define_json(ctx->c, ctx->types));
    nprocs = 0;
}

void wt_end(wt_ctx *ctx)
{
    for (int i = 0; i < nprocs; i++) {
        if (procs[i] > 0 && kill(procs[i], 0) == 0) {
            kill(procs[i], SIGKILL);
            waitpid(procs[i], NULL, 0);
        }
    }
    nprocs = 0;
    PQfinish(pg);
    pg = NULL;
    unlink(ctx->log);
    tu_redis_ns_del(ctx->ns);
    aipalq_client_free(ctx->c);
    ctx->c = NULL;
}

/* ----------------------------------------------------------- processes */

static const char *proc_path(void)
{
    static char path[PATH_MAX];
    const char *env = getenv("AIPALQ_WORKER_PROC");
    if (env && *env)
        return env;
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 32);
    ck_assert_msg(n > 0, "cannot find the test program's directory");
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    snprintf(slash + 1, sizeof path - (size_t)(slash + 1 - path), "test_worker_proc");
    return path;
}

pid_t wt_proc_start(wt_ctx *ctx, const wt_proc_opts *o)
{
    static const wt_proc_opts none;
    if (!o)
        o = &none;
    const char *argv[40];
    char bufs[8][32];
    int argc = 0;
    argv[argc++] = "test_worker_proc";
    argv[argc++] = "--ns";
    argv[argc++] = ctx->ns;
    argv[argc++] = "--types";
    argv[argc++] = ctx->types;
    argv[argc++] = "--mode";
    argv[argc++] = o->mode ? o->mode : "threads";
    snprintf(bufs[0], sizeof bufs[0], "%d", o->concurrency > 0 ? o->concurrency : 1);
    argv[argc++] = "--concurrency";
    argv[argc++] = bufs[0];
    if (o->lease_ms > 0) {
        snprintf(bufs[1], sizeof bufs[1], "%lld", (long long)o->lease_ms);
        argv[argc++] = "--lease-ms";
        argv[argc++] = bufs[1];
    }
    if (o->shutdown_ms != 0) {
        snprintf(bufs[2], sizeof bufs[2], "%lld",
                 (long long)(o->shutdown_ms < 0 ? 0 : o->shutdown_ms));
        argv[argc++] = "--shutdown-ms";
        argv[argc++] = bufs[2];
    }
    if (o->max_sleep_ms > 0) {
        snprintf(bufs[3], sizeof bufs[3], "%lld", (long long)o->max_sleep_ms);
        argv[argc++] = "--max-sleep-ms";
        argv[argc++] = bufs[3];
    }
    if (o->step_timeout_ms > 0) {
        snprintf(bufs[4], sizeof bufs[4], "%lld", (long long)o->step_timeout_ms);
        argv[argc++] = "--step-timeout-ms";
        argv[argc++] = bufs[4];
    }
    const char *const strs[][2] = {{"--queues", o->queues},
                                   {"--id", o->id},
                                   {"--tag", o->tag},
                                   {"--step", o->step_file},
                                   {"--go-file", o->go_file}};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        if (strs[i][1]) {
            argv[argc++] = strs[i][0];
            argv[argc++] = strs[i][1];
        }
    }
    argv[argc] = NULL;
    const char *path = proc_path();
    ck_assert_msg(access(path, X_OK) == 0, "helper %s is not executable", path);
    ck_assert_int_lt(nprocs, MAX_PROCS);
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* Never outlive the test (a failed assertion ends it at once). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    procs[nprocs++] = pid;
    return pid;
}

int wt_proc_wait(pid_t pid, int64_t timeout_ms)
{
    int64_t deadline = wt_mono_ms() + timeout_ms;
    for (;;) {
        int status = 0;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        ck_assert_msg(r == 0, "waitpid(%d): %s", (int)pid, strerror(errno));
        ck_assert_msg(wt_mono_ms() < deadline, "process %d did not exit within %lld ms", (int)pid,
                      (long long)timeout_ms);
        wt_sleep_ms(20);
    }
}

int wt_proc_alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

int wt_children(pid_t pid, pid_t *out, int max)
{
    DIR *d = opendir("/proc");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        char *end;
        long p = strtol(e->d_name, &end, 10);
        if (*end || p <= 0)
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", p);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t k = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[k] = '\0';
        const char *rp = strrchr(buf, ')');
        char state;
        int ppid;
        if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == pid && state != 'Z')
            out[n++] = (pid_t)p;
    }
    closedir(d);
    return n;
}

/* --------------------------------------------------------------- tasks */

void wt_enqueue(wt_ctx *ctx, const char *type, const char *params, const aipalq_opts *opts,
                char *id_out)
{
    ASSERT_OK(ctx->c, aipalq_enqueue(ctx->c, type, params, opts, id_out, NULL));
}

aipalq_task *wt_get(wt_ctx *ctx, const char *id)
{
    aipalq_task *t = NULL;
    ASSERT_OK(ctx->c, aipalq_get(ctx->c, id, &t));
    return t;
}

int64_t wt_wait_state(wt_ctx *ctx, const char *id, aipalq_state state, int64_t timeout_ms)
{
    int64_t t0 = wt_mono_ms();
    aipalq_state last = AIPALQ_STATE_PENDING;
    for (;;) {
        aipalq_task *t = wt_get(ctx, id);
        last = aipalq_task_state(t);
        aipalq_task_free(t);
        int64_t took = wt_mono_ms() - t0;
        if (last == state)
            return took;
        ck_assert_msg(took < timeout_ms, "task %s is %s after %lld ms, want %s", id,
                      aipalq_state_name(last), (long long)took, aipalq_state_name(state));
        wt_sleep_ms(25);
    }
}

void wt_wait_running_on(wt_ctx *ctx, const char *id, pid_t pid, int64_t timeout_ms)
{
    char needle[32];
    snprintf(needle, sizeof needle, ":%d:", (int)pid);
    int64_t t0 = wt_mono_ms();
    for (;;) {
        aipalq_task *t = wt_get(ctx, id);
        int ok = aipalq_task_state(t) == AIPALQ_STATE_RUNNING &&
                 tu_contains(aipalq_task_worker_id(t), needle);
        aipalq_task_free(t);
        if (ok)
            return;
        ck_assert_msg(wt_mono_ms() - t0 < timeout_ms,
                      "task %s not running on process %d after %lld ms", id, (int)pid,
                      (long long)timeout_ms);
        wt_sleep_ms(25);
    }
}

/* ----------------------------------------------------------------- SQL */

static PGresult *vquery(const char *fmt, va_list ap)
{
    char sql[4096];
    vsnprintf(sql, sizeof sql, fmt, ap);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        PQfinish(pg);
        pg = PQconnectdb(tu_db_url());
        ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "PostgreSQL: %s", PQerrorMessage(pg));
    }
    PGresult *res = PQexec(pg, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                      PQnfields(res) == 1,
                  "SQL %s: %s", sql, PQresultErrorMessage(res));
    return res;
}

long long wt_sql_int(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PGresult *res = vquery(fmt, ap);
    va_end(ap);
    long long v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

char *wt_sql_text(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PGresult *res = vquery(fmt, ap);
    va_end(ap);
    char *v = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

char *wt_history(const char *id)
{
    return wt_sql_text(
        "SELECT coalesce(string_agg(to_status, ',' ORDER BY i), '') FROM " WT_HISTORY, id, id);
}

void wt_sql_wait(long long want, int64_t timeout_ms, const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    int64_t t0 = wt_mono_ms();
    for (;;) {
        long long got = wt_sql_int("%s", sql);
        if (got == want)
            return;
        ck_assert_msg(wt_mono_ms() - t0 < timeout_ms, "%s = %lld after %lld ms, want %lld", sql,
                      got, (long long)timeout_ms, want);
        wt_sleep_ms(100);
    }
}

/* ----------------------------------------------------------------- log */

int wt_log_count(const wt_ctx *ctx, const char *id, const char *what)
{
    FILE *f = fopen(ctx->log, "r");
    if (!f)
        return 0;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char lid[64], lwhat[32];
        int att;
        long pid;
        if (sscanf(line, "%63s %d %ld %31s", lid, &att, &pid, lwhat) != 4)
            continue;
        if ((!id || strcmp(id, lid) == 0) && (!what || strcmp(what, lwhat) == 0))
            n++;
    }
    fclose(f);
    return n;
}
