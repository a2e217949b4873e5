/* libaipalq's side of the peer benchmarks (../shared/bench): the same
 * scenarios, one JSON line per result on stdout, completion verified in
 * PostgreSQL (every task completed, exactly once), never assumed.
 *
 *   aipalq_bench enqueue N
 *   aipalq_bench enqueue-bulk N
 *   aipalq_bench drain N PROCS CONCURRENCY
 *   aipalq_bench latency N RATE CONCURRENCY
 *   aipalq_bench scale DEPTH TAKE PROCS CONCURRENCY
 *   aipalq_bench record N BATCH
 *
 * scale fills the queue with DEPTH tasks (bulk), then measures at that depth:
 * one-at-a-time enqueue, bulk enqueue, drains of TAKE tasks from the top
 * (SCALE_ROUNDS rounds, 5 by default, the queue refilled to the same depth
 * between them) and status lookups (aipalq_get) of random ids among all rows.
 *
 * record measures PostgreSQL alone recording outcomes (see scenario_record).
 *
 * CPU cost per task: user+sys CPU of the worker processes (or, for enqueue,
 * of this producer), Redis and PostgreSQL (the postmaster with its exited
 * children and every live backend) during the measured interval, divided by
 * the tasks: "cpu_us_per_task", with the parts beside it.
 *
 * Uses AIPALQ_REDIS_URL / AIPALQ_DATABASE_URL; bench/run.sh starts private
 * servers and runs every scenario. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include <aipal/worker.h>

#define QUEUE "bench"
#define NS    "bench"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "aipalq_bench: %s: %s\n", what, msg);
    exit(1);
}

static aipalq_client *client(void)
{
    aipalq_client *c = aipalq_client_new(NULL, NULL);
    if (!c || aipalq_client_set_namespace(c, NS) != AIPALQ_OK)
        die("client", "out of memory");
    if (aipalq_type_define(c, "noop", QUEUE) != AIPALQ_OK)
        die("define", aipalq_client_errmsg(c));
    return c;
}

static PGconn *pg(void)
{
    const char *url = getenv("AIPALQ_DATABASE_URL");
    PGconn *conn = PQconnectdb(url ? url : "");
    if (PQstatus(conn) != CONNECTION_OK)
        die("PostgreSQL", PQerrorMessage(conn));
    return conn;
}

static long long pg_count(PGconn *conn, const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        die("query", PQresultErrorMessage(r));
    long long n = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

/* Empties the benchmark's tables and keys so every scenario starts alike. */
/* A connection to the benchmark's Redis (loopback, port from AIPALQ_REDIS_URL). */
static redisContext *bench_redis(void)
{
    const char *url = getenv("AIPALQ_REDIS_URL");
    int port = url && strrchr(url, ':') ? atoi(strrchr(url, ':') + 1) : 6379;
    return redisConnect("127.0.0.1", port);
}

/* Returns once Redis has no AOF rewrite under way or scheduled. */
static void wait_for_aof_rewrite(redisContext *r)
{
    for (;;) {
        redisReply *rep = redisCommand(r, "INFO persistence");
        bool busy = !rep || rep->type != REDIS_REPLY_STRING ||
                    strstr(rep->str, "aof_rewrite_in_progress:1") ||
                    strstr(rep->str, "aof_rewrite_scheduled:1");
        freeReplyObject(rep);
        if (!busy)
            break;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static void reset(void)
{
    aipalq_client *c = client();
    if (aipalq_migrate(c) != AIPALQ_OK)
        die("migrate", aipalq_client_errmsg(c));
    aipalq_client_free(c);
    PGconn *conn = pg();
    PQclear(
        PQexec(conn, "TRUNCATE aipalq_tasks, aipalq_events, aipalq_outbox, aipalq_idempotency"));
    PQclear(PQexec(conn, "CHECKPOINT"));
    PQfinish(conn);
    redisContext *r = bench_redis();
    if (!r || r->err)
        die("Redis", r ? r->errstr : "cannot connect");
    freeReplyObject(redisCommand(r, "FLUSHALL"));
    /* The AOF grows from scenario to scenario, and Redis rewrites it (a fork)
     * once it has doubled: rewritten now, while empty, it cannot fall due in
     * the middle of the next measurement. */
    freeReplyObject(redisCommand(r, "BGREWRITEAOF"));
    wait_for_aof_rewrite(r);
    redisFree(r);
}

static double redis_cpu_s(void)
{
    redisContext *r = bench_redis();
    double cpu = 0;
    redisReply *rep = r && !r->err ? redisCommand(r, "INFO cpu") : NULL;
    if (rep && rep->type == REDIS_REPLY_STRING) {
        const char *u = strstr(rep->str, "used_cpu_user:");
        const char *s = strstr(rep->str, "used_cpu_sys:");
        cpu = (u ? atof(u + 14) : 0) + (s ? atof(s + 13) : 0);
    }
    freeReplyObject(rep);
    if (r)
        redisFree(r);
    return cpu;
}

/* /proc/PID/stat after the command name (which may hold spaces and ')'),
 * in buf; NULL when the process is gone. */
static const char *proc_stat(long pid, char *buf, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    size_t len = f ? fread(buf, 1, size - 1, f) : 0;
    if (f)
        fclose(f);
    buf[len] = '\0';
    const char *p = strrchr(buf, ')');
    return p ? p + 1 : NULL;
}

/* CPU seconds (user+sys) of a process; with children, also of its exited
 * children it has waited for. */
static double proc_cpu_s(long pid, bool children)
{
    char buf[1024];
    const char *p = proc_stat(pid, buf, sizeof buf);
    unsigned long long ut = 0, st = 0, cut = 0, cst = 0;
    /* state ppid ...: fields 14-17 of the line are utime stime cutime cstime */
    if (!p || sscanf(p, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", &ut,
                     &st, &cut, &cst) != 4)
        return 0;
    return (double)(ut + st + (children ? cut + cst : 0)) / (double)sysconf(_SC_CLK_TCK);
}

static long proc_ppid(long pid)
{
    char buf[1024];
    const char *p = proc_stat(pid, buf, sizeof buf);
    long ppid = 0;
    return p && sscanf(p, " %*c %ld", &ppid) == 1 ? ppid : 0;
}

/* The postmaster: the parent of this connection's backend (same machine). */
static long postmaster_pid(PGconn *conn)
{
    static long pm;
    if (!pm) {
        long backend = (long)pg_count(conn, "SELECT pg_backend_pid()");
        pm = proc_ppid(backend);
        if (pm <= 1)
            die("PostgreSQL", "cannot find the postmaster (is the server on this machine?)");
    }
    return pm;
}

/* PostgreSQL's CPU so far: the postmaster, the backends that have exited
 * (its children's times) and every live child process. */
static double pg_cpu_s(PGconn *conn)
{
    long pm = postmaster_pid(conn);
    double cpu = proc_cpu_s(pm, true);
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        long pid = atol(e->d_name);
        if (pid > 0 && proc_ppid(pid) == pm)
            cpu += proc_cpu_s(pid, false);
    }
    if (d)
        closedir(d);
    return cpu;
}

/* This process's own CPU (the producer of the enqueue scenarios). */
static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* CPU of Redis, PostgreSQL and this process, at one moment. */
typedef struct cpu_mark {
    double redis, pg, self;
} cpu_mark;

static cpu_mark cpu_now(PGconn *conn)
{
    return (cpu_mark){redis_cpu_s(), pg_cpu_s(conn), self_cpu_s()};
}

/* One JSON line. Negative p50 / rss / depth: null or left out. */
typedef struct result {
    const char *scenario;
    char variant[64];
    long n;
    int conc, procs;
    double secs, p50, p99, rss_mb;
    double worker_cpu, redis_cpu, pg_cpu, client_cpu;
    long depth;     /* scale: tasks waiting in the queue */
    long long rows; /* scale: rows in the table */
} result;

static result result_new(const char *scenario, long n, int conc, int procs, double secs)
{
    return (result){.scenario = scenario,
                    .n = n,
                    .conc = conc,
                    .procs = procs,
                    .secs = secs,
                    .p50 = -1,
                    .p99 = -1,
                    .rss_mb = -1,
                    .depth = -1,
                    .rows = -1};
}

/* The CPU used since MARK by Redis, PostgreSQL and (when client) this process. */
static void result_cpu(result *r, PGconn *conn, cpu_mark mark, bool client)
{
    cpu_mark now = cpu_now(conn);
    r->redis_cpu = now.redis - mark.redis;
    r->pg_cpu = now.pg - mark.pg;
    r->client_cpu = client ? now.self - mark.self : 0;
}

static void print_result(const result *r)
{
    printf("{\"system\":\"libaipalq\",\"variant\":\"%s\",\"scenario\":\"%s\",\"n\":%ld,"
           "\"concurrency\":%d,\"seconds\":%.3f,\"jobs_per_s\":%.0f,",
           r->variant, r->scenario, r->n, r->conc, r->secs, r->secs > 0 ? r->n / r->secs : 0.0);
    if (r->p50 >= 0)
        printf("\"p50_ms\":%.3f,\"p99_ms\":%.3f,", r->p50, r->p99);
    else
        printf("\"p50_ms\":null,\"p99_ms\":null,");
    if (r->rss_mb >= 0)
        printf("\"worker_peak_rss_mb\":%.1f,", r->rss_mb);
    else
        printf("\"worker_peak_rss_mb\":null,");
    if (r->depth >= 0)
        printf("\"depth\":%ld,\"rows_in_table\":%lld,", r->depth, r->rows);
    double cpu = r->worker_cpu + r->redis_cpu + r->pg_cpu + r->client_cpu;
    printf("\"procs\":%d,\"cpu_us_per_task\":%.1f,\"worker_cpu_s\":%.2f,\"client_cpu_s\":%.2f,"
           "\"redis_cpu_s\":%.2f,\"pg_cpu_s\":%.2f,\"versions\":\"libaipalq %s\"}\n",
           r->procs, r->n > 0 ? cpu * 1e6 / (double)r->n : 0.0, r->worker_cpu, r->client_cpu,
           r->redis_cpu, r->pg_cpu, aipalq_version_string());
    fflush(stdout);
}

/* ------------------------------------------------------------- enqueue */

/* N tasks waiting: N pending rows of the benchmark's namespace and N ready
 * in Redis. */
static void verify_waiting(PGconn *conn, long n)
{
    long long rows = pg_count(conn, "SELECT count(*) FROM aipalq_tasks WHERE namespace = '" NS
                                    "' AND status = 'pending'");
    int64_t ready = 0;
    aipalq_client *c = client();
    aipalq_queue_depth(c, QUEUE, &ready, NULL, NULL);
    aipalq_client_free(c);
    if (rows != n || ready != n) {
        fprintf(stderr,
                "expected %ld pending rows and tasks in Redis, found %lld and %" PRId64 "\n", n,
                rows, ready);
        exit(1);
    }
}

/* Enqueues n no-op tasks through c, one at a time or in batches of 1,000,
 * and frees c (which reads the last replies). Big fills report progress. */
static void enqueue_many(aipalq_client *c, long n, bool bulk)
{
    char id[AIPALQ_ID_SIZE], params[64];
    aipalq_batch *b = aipalq_batch_new();
    double t = now_s();
    for (long i = 0; i < n; i++) {
        snprintf(params, sizeof params, "{\"i\":%ld}", i);
        if (!bulk) {
            if (aipalq_enqueue(c, "noop", params, NULL, id, NULL) != AIPALQ_OK)
                die("enqueue", aipalq_client_errmsg(c));
            continue;
        }
        aipalq_batch_add(b, "noop", params, NULL);
        if (aipalq_batch_size(b) == 1000 || i == n - 1) {
            if (aipalq_enqueue_batch(c, b) != AIPALQ_OK)
                die("enqueue batch", aipalq_client_errmsg(c));
            aipalq_batch_clear(b);
        }
        if ((i + 1) % 100000 == 0) {
            fprintf(stderr, "aipalq_bench: %ld enqueued, the last 100,000 at %.0f/s\n", i + 1,
                    100000 / (now_s() - t));
            t = now_s();
        }
    }
    aipalq_client_free(c);
    aipalq_batch_free(b);
}

/* Times enqueue_many and verifies that waiting tasks are then waiting. */
static result enqueue_measured(PGconn *conn, aipalq_client *c, const char *scenario, long n,
                               bool bulk, long waiting)
{
    cpu_mark m0 = cpu_now(conn);
    double t0 = now_s();
    enqueue_many(c, n, bulk);
    result r = result_new(scenario, n, 1, 0, now_s() - t0);
    result_cpu(&r, conn, m0, true);
    verify_waiting(conn, waiting);
    return r;
}

static void scenario_enqueue(long n, bool bulk, bool async_commit)
{
    reset();
    aipalq_client *c = client();
    if (async_commit)
        aipalq_client_set_synchronous_commit(c, 0);
    PGconn *conn = pg();
    result r = enqueue_measured(conn, c, bulk ? "enqueue-bulk" : "enqueue", n, bulk, n);
    PQfinish(conn);
    snprintf(r.variant, sizeof r.variant, "%s",
             bulk ? (async_commit ? "batch-1000-async-commit" : "batch-1000")
                  : (async_commit ? "sequential-async-commit" : "sequential"));
    print_result(&r);
}

static void enqueue_bulk_untimed(long n)
{
    enqueue_many(client(), n, true);
}

/* ------------------------------------------------------------- workers */

/* Latency samples, shared with the worker processes. */
typedef struct shared {
    atomic_long count;
    atomic_long handled;
    double samples_ms[];
} shared;

static shared *sh;
static aipalq_worker *worker_of_child;

static void noop(aipalq_job *job, void *ud)
{
    (void)ud;
    atomic_fetch_add(&sh->handled, 1);
    const char *t = strstr(aipalq_job_params(job), "\"t\":");
    if (t) {
        long k = atomic_fetch_add(&sh->count, 1);
        sh->samples_ms[k] = (double)(now_us() - atoll(t + 4)) / 1000.0;
    }
    aipalq_job_set_result(job, "{\"ok\":true}");
}

static void on_term(int sig)
{
    (void)sig;
    aipalq_worker_stop(worker_of_child, 0);
}

/* PREFETCH=N: workers take up to N tasks beyond their free slots (a
 * variant: a slot that finishes finds its next task waiting instead of
 * sleeping until the dispatcher hands one over). */
static int bench_prefetch(void)
{
    const char *v = getenv("PREFETCH");
    return v ? atoi(v) : 0;
}

/* Starts a worker process that runs once it reads a byte from go_fd. */
static pid_t start_worker(int conc, int go_fd, int ready_fd)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    aipalq_client *c = client();
    aipalq_worker *w = aipalq_worker_new(c);
    aipalq_client_free(c);
    aipalq_worker_set_concurrency(w, conc);
    if (bench_prefetch() > 0)
        aipalq_worker_set_prefetch(w, bench_prefetch());
    aipalq_worker_set_maintenance_ms(w, 0);
    aipalq_worker_handle(w, "noop", noop, NULL);
    worker_of_child = w;
    signal(SIGTERM, on_term);
    char b = 1;
    if (write(ready_fd, &b, 1) != 1 || read(go_fd, &b, 1) != 1)
        _exit(1);
    aipalq_worker_run(w);
    aipalq_worker_free(w);
    _exit(0);
}

static long peak_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

typedef struct fleet {
    pid_t pids[16];
    int n;
    int go[2];
} fleet;

static void fleet_start(fleet *f, int procs, int conc)
{
    int ready[2];
    if (pipe(f->go) != 0 || pipe(ready) != 0)
        die("pipe", strerror(errno));
    f->n = procs;
    for (int i = 0; i < procs; i++)
        f->pids[i] = start_worker(conc, f->go[0], ready[1]);
    for (int i = 0; i < procs; i++) {
        char b;
        if (read(ready[0], &b, 1) != 1)
            die("worker", "did not start");
    }
    close(ready[0]);
    close(ready[1]);
}

static void fleet_go(fleet *f)
{
    char go[16] = {0};
    if (write(f->go[1], go, (size_t)f->n) != f->n)
        die("pipe", strerror(errno));
}

/* CPU seconds of the worker processes so far. */
static double fleet_cpu(const fleet *f)
{
    double cpu = 0;
    for (int i = 0; i < f->n; i++)
        cpu += proc_cpu_s(f->pids[i], false);
    return cpu;
}

/* Stops the workers gracefully (running handlers finish, outcomes recorded)
 * and returns their peak resident memory, MB. */
static double fleet_stop(fleet *f)
{
    double rss_mb = 0;
    for (int i = 0; i < f->n; i++) {
        double r = (double)peak_rss_kb(f->pids[i]) / 1024.0;
        rss_mb = r > rss_mb ? r : rss_mb;
        kill(f->pids[i], SIGTERM);
    }
    for (int i = 0; i < f->n; i++)
        waitpid(f->pids[i], NULL, 0);
    return rss_mb;
}

static long long completed_rows(PGconn *conn)
{
    return pg_count(conn, "SELECT count(*) FROM aipalq_tasks WHERE namespace = '" NS
                          "' AND status = 'completed'");
}

/* Waits until the handlers ran n tasks and PostgreSQL records n completions
 * more than the `already` it held before; fails after a stall. */
static void wait_completed(PGconn *conn, long n, long long already)
{
    long long last = -1;
    double last_change = now_s();
    /* The handlers' shared counter first (free to read), then PostgreSQL,
     * which is what counts: a task is done when its row says so. */
    while (atomic_load(&sh->handled) < n && now_s() - last_change < 60) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
        long h = atomic_load(&sh->handled);
        if (h != last) {
            last = h;
            last_change = now_s();
        }
    }
    for (;;) {
        long long done = completed_rows(conn) - already;
        if (done >= n)
            return;
        if (done != last) {
            last = done;
            last_change = now_s();
        } else if (now_s() - last_change > 60) {
            fprintf(stderr, "stalled at %lld of %ld completed\n", done, n);
            exit(1);
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Every task completed exactly once: one completed row and one completion
 * event per task, and handlers ran once each. With at_least, n or more tasks
 * completed that way (a drain stopped while more were waiting); `already`
 * completed before this drain's handlers ran. */
static void verify_completed(PGconn *conn, long n, bool at_least, long long already)
{
    long long rows = pg_count(conn, "SELECT count(*) FROM aipalq_tasks WHERE status = 'completed'"
                                    " AND result = '{\"ok\": true}'");
    long long events = pg_count(conn, "SELECT count(*) FROM aipalq_events"
                                      " WHERE to_status = 'completed'");
    long long dup = pg_count(conn, "SELECT count(*) FROM (SELECT task_id FROM aipalq_events"
                                   " WHERE to_status = 'completed' GROUP BY 1"
                                   " HAVING count(*) > 1) d");
    long handled = atomic_load(&sh->handled);
    long long fresh = rows - already;
    if ((at_least ? fresh < n : fresh != n) || events != rows || dup != 0 || handled != fresh) {
        fprintf(stderr,
                "verification failed: %lld completed rows (%lld before), %lld completion events, "
                "%lld duplicated, %ld handler runs, for %ld tasks\n",
                rows, already, events, dup, handled, n);
        exit(1);
    }
}

/* Starts procs x conc workers on the waiting tasks and times them until n
 * are completed; then stops them and verifies (at_least: more were waiting). */
static result drain_measured(PGconn *conn, const char *scenario, long n, int procs, int conc,
                             bool at_least)
{
    long long already = at_least ? completed_rows(conn) : 0;
    atomic_store(&sh->handled, 0);
    atomic_store(&sh->count, 0);
    fleet f;
    fleet_start(&f, procs, conc);
    cpu_mark m0 = cpu_now(conn);
    double w0 = fleet_cpu(&f);
    double t0 = now_s();
    fleet_go(&f);
    wait_completed(conn, n, already);
    result r = result_new(scenario, n, conc, procs, now_s() - t0);
    r.worker_cpu = fleet_cpu(&f) - w0;
    result_cpu(&r, conn, m0, false);
    r.rss_mb = fleet_stop(&f);
    verify_completed(conn, n, at_least, already);
    return r;
}

static void scenario_drain(long n, int procs, int conc)
{
    reset();
    enqueue_bulk_untimed(n);
    PGconn *conn = pg();
    result r = drain_measured(conn, "drain", n, procs, conc, false);
    PQfinish(conn);
    if (bench_prefetch() > 0)
        snprintf(r.variant, sizeof r.variant, "%dproc-c%d-threads-prefetch%d", procs, conc,
                 bench_prefetch());
    else
        snprintf(r.variant, sizeof r.variant, "%dproc-c%d-threads", procs, conc);
    print_result(&r);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The P-th percentile of K sorted samples (nearest rank). */
static double percentile(const double *sorted, long k, int p)
{
    return k > 0 ? sorted[(k * p + 99) / 100 - 1] : -1;
}

/* With async_commit the producer commits asynchronously (as the enqueue
 * scenario's variant): the WAL flush no longer comes before the dispatch. */
static void scenario_latency(long n, int rate, int conc, bool async_commit)
{
    reset();
    atomic_store(&sh->handled, 0);
    atomic_store(&sh->count, 0);
    PGconn *conn = pg();
    fleet f;
    fleet_start(&f, 1, conc);
    cpu_mark m0 = cpu_now(conn);
    double w0 = fleet_cpu(&f);
    fleet_go(&f);
    aipalq_client *c = client();
    if (async_commit)
        aipalq_client_set_synchronous_commit(c, 0);
    char id[AIPALQ_ID_SIZE], params[64];
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        double due = t0 + (double)i / rate; /* open loop, absolute schedule */
        double wait = due - now_s();
        if (wait > 0) {
            struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
            nanosleep(&ts, NULL);
        }
        snprintf(params, sizeof params, "{\"t\":%" PRId64 "}", now_us());
        if (aipalq_enqueue(c, "noop", params, NULL, id, NULL) != AIPALQ_OK)
            die("enqueue", aipalq_client_errmsg(c));
    }
    aipalq_client_free(c);
    wait_completed(conn, n, 0);
    result r = result_new("latency", n, conc, 1, now_s() - t0);
    r.worker_cpu = fleet_cpu(&f) - w0;
    result_cpu(&r, conn, m0, true); /* this process was the producer */
    r.rss_mb = fleet_stop(&f);
    verify_completed(conn, n, false, 0);
    PQfinish(conn);
    long k = atomic_load(&sh->count);
    qsort(sh->samples_ms, (size_t)k, sizeof(double), cmp_double);
    r.p50 = percentile(sh->samples_ms, k, 50);
    r.p99 = percentile(sh->samples_ms, k, 99);
    snprintf(r.variant, sizeof r.variant, "%dper_s-1proc-c%d%s", rate, conc,
             async_commit ? "-async-commit" : "");
    print_result(&r);
}

/* ------------------------------------------------------------- scale */

static long long table_rows(PGconn *conn)
{
    return pg_count(conn, "SELECT count(*) FROM aipalq_tasks");
}

/* Enqueues n at the present depth, one at a time or in batches of 1,000. */
static void scale_enqueue(PGconn *conn, long depth, long n, bool bulk)
{
    result r = enqueue_measured(conn, client(), bulk ? "scale-enqueue-bulk" : "scale-enqueue", n,
                                bulk, depth + n);
    r.depth = depth;
    r.rows = table_rows(conn);
    snprintf(r.variant, sizeof r.variant, "depth-%ld-%s", depth,
             bulk ? "batch-1000" : "sequential");
    print_result(&r);
}

/* aipalq_get of n ids drawn at random from every row, one at a time. */
static void scale_status(PGconn *conn, long depth, long n)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT id::text FROM aipalq_tasks ORDER BY random() LIMIT %ld", n);
    PGresult *ids = PQexec(conn, sql);
    if (PQresultStatus(ids) != PGRES_TUPLES_OK || PQntuples(ids) != n)
        die("sample ids", PQresultErrorMessage(ids));
    double *ms = malloc(sizeof(double) * (size_t)n);
    if (!ms)
        die("status", "out of memory");
    aipalq_client *c = client();
    cpu_mark m0 = cpu_now(conn);
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        aipalq_task *t = NULL;
        double s0 = now_s();
        if (aipalq_get(c, PQgetvalue(ids, (int)i, 0), &t) != AIPALQ_OK)
            die("get", aipalq_client_errmsg(c));
        ms[i] = (now_s() - s0) * 1000;
        aipalq_task_free(t);
    }
    result r = result_new("scale-status", n, 1, 0, now_s() - t0);
    result_cpu(&r, conn, m0, true);
    aipalq_client_free(c);
    PQclear(ids);
    qsort(ms, (size_t)n, sizeof(double), cmp_double);
    r.p50 = percentile(ms, n, 50);
    r.p99 = percentile(ms, n, 99);
    free(ms);
    r.depth = depth;
    r.rows = table_rows(conn);
    snprintf(r.variant, sizeof r.variant, "depth-%ld-aipalq_get", depth);
    print_result(&r);
}

/* Sets Redis's auto-aof-rewrite-percentage, returning the value it had. */
static long set_aof_rewrite_percentage(long pct)
{
    redisContext *r = bench_redis();
    if (!r || r->err)
        die("Redis", r ? r->errstr : "cannot connect");
    long old = 100;
    redisReply *rep = redisCommand(r, "CONFIG GET auto-aof-rewrite-percentage");
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[1]->type == REDIS_REPLY_STRING)
        old = atol(rep->element[1]->str);
    freeReplyObject(rep);
    freeReplyObject(redisCommand(r, "CONFIG SET auto-aof-rewrite-percentage %ld", pct));
    redisFree(r);
    return old;
}

/* Lets PostgreSQL finish the upkeep a fill of `depth` tasks owes before
 * anything is measured, as it would have long done with a queue that deep
 * in steady state: otherwise the measurements at a million would meet
 * autovacuum's insert-triggered pass over the new rows and a checkpoint on
 * the same two cores, and measure those instead of the queue. Redis's
 * counterpart, the automatic AOF rewrite, is kept off for the scenario (see
 * scenario_scale), and any rewrite under way is waited for. */
static void settle_servers(PGconn *conn)
{
    double t0 = now_s();
    PQclear(PQexec(conn, "VACUUM (ANALYZE) aipalq_tasks"));
    PQclear(PQexec(conn, "CHECKPOINT"));
    redisContext *r = bench_redis();
    if (!r || r->err)
        die("Redis", r ? r->errstr : "cannot connect");
    wait_for_aof_rewrite(r);
    redisFree(r);
    fprintf(stderr, "aipalq_bench: servers settled in %.1f s\n", now_s() - t0);
}

/* Rounds of the drain: a drain of 20,000 lasts about a second, and one such
 * sample differs from the next by up to a fifth on this machine, more than
 * the effect of depth being measured. SCALE_ROUNDS (5) rounds, one line
 * each; compare.py takes the median. */
static int scale_rounds(void)
{
    const char *v = getenv("SCALE_ROUNDS");
    int n = v ? atoi(v) : 5;
    return n > 0 ? n : 1;
}

/* Drains take tasks from the top of a queue holding depth, in rounds; after
 * each but the last, as many tasks as it completed are enqueued again (at
 * the back, untimed) and the servers settled, so every round starts at the
 * same depth. */
static void scale_drain(PGconn *conn, long depth, long take, int procs, int conc)
{
    int rounds = scale_rounds();
    for (int k = 1; k <= rounds; k++) {
        long long rows = table_rows(conn);
        long long before = completed_rows(conn);
        result r = drain_measured(conn, "scale-drain", take, procs, conc, true);
        r.depth = depth;
        r.rows = rows;
        snprintf(r.variant, sizeof r.variant, "depth-%ld-%dproc-c%d-threads-round%d", depth, procs,
                 conc, k);
        print_result(&r);
        if (k < rounds) {
            enqueue_bulk_untimed((long)(completed_rows(conn) - before));
            settle_servers(conn);
        }
    }
}

/* depth tasks waiting (bulk enqueued, not timed), then at that depth:
 * take/10 enqueues one at a time, take in batches, a drain of take from the
 * top, and 2,000 status lookups among all rows. */
static void scenario_scale(long depth, long take, int procs, int conc)
{
    reset();
    /* An AOF rewrite forks Redis, and after the fork every page of the
     * parent is write-protected until first written again: at a million
     * tasks (~300 MB) the drain then pays a page fault for each page it
     * touches, measured here at ~2x Redis's CPU per task. That is the cost of
     * the fork, whatever the data structures, so the rewrite is kept off. */
    long aof_pct = set_aof_rewrite_percentage(0);
    double t0 = now_s();
    enqueue_bulk_untimed(depth);
    fprintf(stderr, "aipalq_bench: %ld tasks waiting, enqueued in %.1f s\n", depth, now_s() - t0);
    PGconn *conn = pg();
    settle_servers(conn);
    scale_enqueue(conn, depth, take / 10, false);
    scale_enqueue(conn, depth + take / 10, take, true);
    long waiting = depth + take / 10 + take;
    scale_drain(conn, waiting, take, procs, conc);
    scale_status(conn, waiting - take, 2000);
    PQfinish(conn);
    /* Left off: turned back on at once, it would fork the 300 MB process under
     * whatever runs next on these rows (bench/run.sh measures the API's
     * status lookups among them, then empties both servers and turns it on). */
    if (aof_pct != 0)
        fprintf(stderr,
                "aipalq_bench: Redis's automatic AOF rewrite left off (it was %ld%%): "
                "CONFIG SET auto-aof-rewrite-percentage %ld to restore it\n",
                aof_pct, aof_pct);
}

/* ------------------------------------------------------------- record */

/* The ids of the benchmark's pending rows, oldest first. */
static PGresult *pending_ids(PGconn *conn)
{
    PGresult *ids = PQexec(conn, "SELECT id::text FROM aipalq_tasks WHERE namespace = '" NS
                                 "' AND status = 'pending' ORDER BY id");
    if (PQresultStatus(ids) != PGRES_TUPLES_OK)
        die("query", PQresultErrorMessage(ids));
    return ids;
}

/* Rows [from, to) of ids as the one parameter of a batch: for
 * aipalq_record() the JSON array a worker's recorder sends, each a no-op's
 * completion folded with its start as a drain records it; for plain SQL a
 * uuid[] literal. */
static void batch_param(char *buf, size_t size, PGresult *ids, int from, int to, bool plain)
{
    int64_t started_ms = now_us() / 1000;
    size_t len = 0;
    buf[len++] = plain ? '{' : '[';
    for (int i = from; i < to && len < size; i++) {
        const char *sep = i > from ? "," : "", *id = PQgetvalue(ids, i, 0);
        len += (size_t)(plain ? snprintf(buf + len, size - len, "%s%s", sep, id)
                              : snprintf(buf + len, size - len,
                                         "%s{\"id\":\"%s\",\"k\":\"completed\",\"tok\":1,"
                                         "\"att\":1,\"pct\":0,\"started\":true,\"st\":%" PRId64 "}",
                                         sep, id, started_ms));
    }
    if (len + 2 > size)
        die("record", "batch buffer too small");
    buf[len++] = plain ? '}' : ']';
    buf[len] = '\0';
}

/* Sends sql with one parameter and checks that it changed want rows. */
static void exec_expecting(PGconn *conn, const char *sql, const char *param, long want)
{
    PGresult *r = PQexecParams(conn, sql, 1, NULL, &param, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
        die("record", PQresultErrorMessage(r));
    long got = st == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : atol(PQcmdTuples(r));
    PQclear(r);
    if (got != want) {
        fprintf(stderr, "aipalq_bench: record: %ld of %ld rows changed\n", got, want);
        exit(1);
    }
}

/* CPU seconds of this connection's backend so far, to the nanosecond
 * (/proc/PID/schedstat): only the work of the statements sent, not that of
 * autovacuum or the WAL writer, which may fall in any run. */
static double backend_cpu_s(PGconn *conn)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/schedstat", PQbackendPID(conn));
    FILE *f = fopen(path, "r");
    unsigned long long ns = 0;
    if (!f || fscanf(f, "%llu", &ns) != 1)
        die("record", "cannot read the backend's CPU time (is the server on this machine?)");
    fclose(f);
    return (double)ns / 1e9;
}

/* What one way of recording has taken: the backend's CPU and the wall clock,
 * for that many tasks. */
typedef struct record_cost {
    double cpu, secs;
    long tasks;
} record_cost;

/* Completes the 2n pending rows batch by batch, alternating between
 * aipalq_record() (*ours) and plain SQL making the same row changes and
 * event rows (*plain), so that both meet the host in the same state: its
 * speed swings over seconds, a batch takes milliseconds. */
static void record_alternating(PGconn *conn, long n, int batch, record_cost *ours,
                               record_cost *plain)
{
    static const char ours_sql[] = "SELECT count(*) FILTER (WHERE applied)"
                                   " FROM aipalq_record($1::jsonb, 'bench')";
    static const char plain_sql[] =
        "WITH u AS (UPDATE aipalq_tasks SET status = 'completed', attempts = 1, token = 1,"
        " started_at = now(), completed_at = now(), updated_at = now(), progress = 100,"
        " worker_id = 'bench', run_at = NULL WHERE id = ANY($1::uuid[])"
        " RETURNING id)"
        " INSERT INTO aipalq_events (task_id, from_status, to_status, attempt, worker_id,"
        " started_at) SELECT id, 'pending', 'completed', 1, 'bench', now() FROM u";
    PGresult *ids = pending_ids(conn);
    if (PQntuples(ids) != 2 * n)
        die("record", "the pending rows are not the tasks just enqueued");
    size_t size = (size_t)batch * 160 + 16;
    char *buf = malloc(size);
    if (!buf)
        die("record", "out of memory");
    *ours = *plain = (record_cost){0, 0, 0};
    /* The first change of each page after a checkpoint logs the whole page
     * to the WAL, on the backend's CPU: both start from a fresh one (needs
     * pg_checkpoint rights; without them, checkpoints fall where they may). */
    PQclear(PQexec(conn, "CHECKPOINT"));
    for (int from = 0, k = 0; from < 2 * n; from += batch, k++) {
        int to = from + batch < 2 * n ? from + batch : (int)(2 * n);
        bool is_plain = k % 2 == 1;
        batch_param(buf, size, ids, from, to, is_plain);
        record_cost *cost = is_plain ? plain : ours;
        double cpu0 = backend_cpu_s(conn), t0 = now_s();
        exec_expecting(conn, is_plain ? plain_sql : ours_sql, buf, to - from);
        cost->secs += now_s() - t0;
        cost->cpu += backend_cpu_s(conn) - cpu0;
        cost->tasks += to - from;
    }
    free(buf);
    PQclear(ids);
}

/* Every task completed once, with exactly one event of its completion. */
static void verify_recorded(PGconn *conn, long n)
{
    long long done = completed_rows(conn);
    long long events = pg_count(conn, "SELECT count(*) FROM aipalq_events e JOIN aipalq_tasks t"
                                      " ON t.id = e.task_id WHERE t.namespace = '" NS
                                      "' AND e.to_status = 'completed'");
    if (done != n || events != n) {
        fprintf(stderr, "aipalq_bench: record: %lld completed rows and %lld events for %ld\n", done,
                events, n);
        exit(1);
    }
}

/* PostgreSQL's own cost of recording outcomes, apart from Redis and the
 * workers: of 2n enqueued tasks, n are completed by aipalq_record() calls of
 * `batch` outcomes each (the statement a worker's recorder sends) and n by
 * plain SQL making the same row changes and event rows, the floor for those
 * writes on these indexes; batches of the two alternate, one at a time from
 * this process. The figures are the CPU time of the one backend doing the
 * work, which moves far less with the host's load swings than a drain's
 * (±15 %): changes to the schema or to aipalq_record can be compared. */
static void scenario_record(long n, int batch)
{
    if (n <= 0 || batch <= 0 || batch > 10000)
        die("usage", "record N BATCH (BATCH 1 to 10,000)");
    record_cost ours, plain;
    reset();
    enqueue_bulk_untimed(2 * n);
    PGconn *conn = pg();
    record_alternating(conn, n, batch, &ours, &plain);
    verify_recorded(conn, 2 * n);
    PQfinish(conn);
    double ours_us = ours.cpu * 1e6 / (double)ours.tasks;
    double plain_us = plain.tasks > 0 ? plain.cpu * 1e6 / (double)plain.tasks : 0.0;
    printf("{\"system\":\"libaipalq\",\"variant\":\"batch-%d\",\"scenario\":\"record\",\"n\":%ld,"
           "\"seconds\":%.3f,\"jobs_per_s\":%.0f,\"pg_cpu_us_per_task\":%.2f,"
           "\"plain_sql_n\":%ld,\"plain_sql_seconds\":%.3f,\"plain_sql_pg_cpu_us_per_task\":%.2f,"
           "\"vs_plain_sql\":%.2f,\"versions\":\"libaipalq %s\"}\n",
           batch, ours.tasks, ours.secs, (double)ours.tasks / ours.secs, ours_us, plain.tasks,
           plain.secs, plain_us, plain_us > 0 ? ours_us / plain_us : 0.0, aipalq_version_string());
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: aipalq_bench enqueue|enqueue-bulk N | drain N PROCS CONC |"
                        " latency N RATE CONC | scale DEPTH TAKE PROCS CONC |"
                        " record N BATCH\n");
        return 2;
    }
    long n = atol(argv[2]);
    sh = mmap(NULL, sizeof(shared) + sizeof(double) * (size_t)(n + 1), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        die("mmap", strerror(errno));
    bool async_commit = getenv("ASYNC_COMMIT") && atoi(getenv("ASYNC_COMMIT"));
    if (strcmp(argv[1], "enqueue") == 0)
        scenario_enqueue(n, false, async_commit);
    else if (strcmp(argv[1], "enqueue-bulk") == 0)
        scenario_enqueue(n, true, async_commit);
    else if (strcmp(argv[1], "drain") == 0 && argc >= 5)
        scenario_drain(n, atoi(argv[3]), atoi(argv[4]));
    else if (strcmp(argv[1], "latency") == 0 && argc >= 5)
        scenario_latency(n, atoi(argv[3]), atoi(argv[4]), async_commit);
    else if (strcmp(argv[1], "record") == 0 && argc >= 4)
        scenario_record(n, atoi(argv[3]));
    else if (strcmp(argv[1], "scale") == 0 && argc >= 6 && atol(argv[3]) >= 10)
        scenario_scale(n, atol(argv[3]), atoi(argv[4]), atoi(argv[5]));
    else
        die("usage", "unknown scenario");
    return 0;
}
