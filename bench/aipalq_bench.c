/* libaipalq's side of the peer benchmarks (../shared/bench): the same
 * scenarios, one JSON line per result on stdout, completion verified in
 * PostgreSQL (every task completed, exactly once), never assumed.
 *
 *   aipalq_bench enqueue N
 *   aipalq_bench enqueue-bulk N
 *   aipalq_bench drain N PROCS CONCURRENCY
 *   aipalq_bench latency N RATE CONCURRENCY
 *
 * Uses AIPALQ_REDIS_URL / AIPALQ_DATABASE_URL; bench/run.sh starts private
 * servers and runs every scenario. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include <aipal/worker.h>

#define QUEUE "bench"
#define NS "bench"

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
static void reset(void)
{
    aipalq_client *c = client();
    if (aipalq_migrate(c) != AIPALQ_OK)
        die("migrate", aipalq_client_errmsg(c));
    aipalq_client_free(c);
    PGconn *conn = pg();
    PQclear(PQexec(conn, "TRUNCATE aipalq_tasks, aipalq_events, aipalq_outbox, aipalq_idempotency"));
    PQclear(PQexec(conn, "CHECKPOINT"));
    PQfinish(conn);
    const char *url = getenv("AIPALQ_REDIS_URL");
    int port = 6379;
    if (url && strrchr(url, ':'))
        port = atoi(strrchr(url, ':') + 1);
    redisContext *r = redisConnect("127.0.0.1", port);
    if (!r || r->err)
        die("Redis", r ? r->errstr : "cannot connect");
    freeReplyObject(redisCommand(r, "FLUSHALL"));
    redisFree(r);
}

static double redis_cpu_s(void)
{
    const char *url = getenv("AIPALQ_REDIS_URL");
    int port = url && strrchr(url, ':') ? atoi(strrchr(url, ':') + 1) : 6379;
    redisContext *r = redisConnect("127.0.0.1", port);
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

static void print_result(const char *scenario, const char *variant, long n, int conc, double secs,
                         double p50, double p99, double rss_mb, int procs, double worker_cpu,
                         double redis_cpu)
{
    printf("{\"system\":\"libaipalq\",\"variant\":\"%s\",\"scenario\":\"%s\",\"n\":%ld,"
           "\"concurrency\":%d,\"seconds\":%.3f,\"jobs_per_s\":%.0f,",
           variant, scenario, n, conc, secs, secs > 0 ? n / secs : 0.0);
    if (p50 >= 0)
        printf("\"p50_ms\":%.3f,\"p99_ms\":%.3f,", p50, p99);
    else
        printf("\"p50_ms\":null,\"p99_ms\":null,");
    if (rss_mb >= 0)
        printf("\"worker_peak_rss_mb\":%.1f,", rss_mb);
    else
        printf("\"worker_peak_rss_mb\":null,");
    printf("\"procs\":%d,\"worker_cpu_s\":%.2f,\"redis_cpu_s\":%.2f,\"versions\":\"libaipalq %s\"}\n",
           procs, worker_cpu, redis_cpu, aipalq_version_string());
    fflush(stdout);
}

/* ------------------------------------------------------------- enqueue */

static void verify_rows(long n)
{
    PGconn *conn = pg();
    long long rows = pg_count(conn, "SELECT count(*) FROM aipalq_tasks WHERE status = 'pending'");
    PQfinish(conn);
    if (rows != n) {
        fprintf(stderr, "expected %ld pending rows, found %lld\n", n, rows);
        exit(1);
    }
}

static void scenario_enqueue(long n, bool bulk, bool async_commit)
{
    reset();
    aipalq_client *c = client();
    if (async_commit)
        aipalq_client_set_synchronous_commit(c, 0);
    char id[AIPALQ_ID_SIZE], params[64];
    aipalq_batch *b = aipalq_batch_new();
    double r0 = redis_cpu_s();
    double t0 = now_s();
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
    }
    aipalq_client_free(c); /* reads the last replies */
    double secs = now_s() - t0;
    double rcpu = redis_cpu_s() - r0;
    aipalq_batch_free(b);
    verify_rows(n);
    int64_t ready = 0;
    c = client();
    aipalq_queue_depth(c, QUEUE, &ready, NULL, NULL);
    aipalq_client_free(c);
    if (ready != n) {
        fprintf(stderr, "expected %ld tasks in Redis, found %" PRId64 "\n", n, ready);
        exit(1);
    }
    print_result(bulk ? "enqueue-bulk" : "enqueue",
                 bulk ? (async_commit ? "batch-1000-async-commit" : "batch-1000")
                      : (async_commit ? "sequential-async-commit" : "sequential"),
                 n, 1, secs, -1, -1, -1, 0, 0, rcpu);
}

static void enqueue_bulk_untimed(long n)
{
    aipalq_client *c = client();
    aipalq_batch *b = aipalq_batch_new();
    char params[64];
    for (long i = 0; i < n; i++) {
        snprintf(params, sizeof params, "{\"i\":%ld}", i);
        aipalq_batch_add(b, "noop", params, NULL);
        if (aipalq_batch_size(b) == 1000 || i == n - 1) {
            if (aipalq_enqueue_batch(c, b) != AIPALQ_OK)
                die("enqueue batch", aipalq_client_errmsg(c));
            aipalq_batch_clear(b);
        }
    }
    aipalq_batch_free(b);
    aipalq_client_free(c);
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

static double cpu_s(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    unsigned long ut = 0, st = 0;
    if (f) {
        /* fields 14 and 15: utime, stime in clock ticks */
        if (fscanf(f, "%*d %*s %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) !=
            2)
            ut = st = 0;
        fclose(f);
    }
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
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

static void fleet_stop(fleet *f, double *rss_mb, double *cpu)
{
    *rss_mb = 0;
    *cpu = 0;
    for (int i = 0; i < f->n; i++) {
        double r = (double)peak_rss_kb(f->pids[i]) / 1024.0;
        *rss_mb = r > *rss_mb ? r : *rss_mb;
        *cpu += cpu_s(f->pids[i]);
        kill(f->pids[i], SIGTERM);
    }
    for (int i = 0; i < f->n; i++)
        waitpid(f->pids[i], NULL, 0);
}

/* Waits until PostgreSQL records n completions; fails after a stall. */
static void wait_completed(PGconn *conn, long n)
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
        long long done = pg_count(conn, "SELECT count(*) FROM aipalq_tasks"
                                        " WHERE status = 'completed'");
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
 * event per task, and handlers ran once each. */
static void verify_exactly_once(PGconn *conn, long n)
{
    long long rows = pg_count(conn, "SELECT count(*) FROM aipalq_tasks WHERE status = 'completed'"
                                    " AND result = '{\"ok\": true}'");
    long long events = pg_count(conn, "SELECT count(*) FROM aipalq_events"
                                      " WHERE to_status = 'completed'");
    long long dup = pg_count(conn, "SELECT count(*) FROM (SELECT task_id FROM aipalq_events"
                                   " WHERE to_status = 'completed' GROUP BY 1"
                                   " HAVING count(*) > 1) d");
    long handled = atomic_load(&sh->handled);
    if (rows != n || events != n || dup != 0 || handled != n) {
        fprintf(stderr,
                "verification failed: %lld completed rows, %lld completion events, %lld "
                "duplicated, %ld handler runs, for %ld tasks\n",
                rows, events, dup, handled, n);
        exit(1);
    }
}

static void scenario_drain(long n, int procs, int conc)
{
    reset();
    enqueue_bulk_untimed(n);
    atomic_store(&sh->handled, 0);
    atomic_store(&sh->count, 0);
    PGconn *conn = pg();
    fleet f;
    fleet_start(&f, procs, conc);
    double r0 = redis_cpu_s();
    double t0 = now_s();
    fleet_go(&f);
    wait_completed(conn, n);
    double secs = now_s() - t0;
    double rcpu = redis_cpu_s() - r0;
    double rss, cpu;
    fleet_stop(&f, &rss, &cpu);
    verify_exactly_once(conn, n);
    PQfinish(conn);
    char variant[64];
    snprintf(variant, sizeof variant, "%dproc-c%d-threads", procs, conc);
    print_result("drain", variant, n, conc, secs, -1, -1, rss, procs, cpu, rcpu);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void scenario_latency(long n, int rate, int conc)
{
    reset();
    atomic_store(&sh->handled, 0);
    atomic_store(&sh->count, 0);
    PGconn *conn = pg();
    fleet f;
    fleet_start(&f, 1, conc);
    fleet_go(&f);
    aipalq_client *c = client();
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
    wait_completed(conn, n);
    double secs = now_s() - t0;
    double rss, cpu;
    fleet_stop(&f, &rss, &cpu);
    verify_exactly_once(conn, n);
    PQfinish(conn);
    long k = atomic_load(&sh->count);
    qsort(sh->samples_ms, (size_t)k, sizeof(double), cmp_double);
    double p50 = sh->samples_ms[(k * 50 + 99) / 100 - 1];
    double p99 = sh->samples_ms[(k * 99 + 99) / 100 - 1];
    char variant[64];
    snprintf(variant, sizeof variant, "%dper_s-1proc-c%d", rate, conc);
    print_result("latency", variant, n, conc, secs, p50, p99, rss, 1, cpu, 0);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: aipalq_bench enqueue|enqueue-bulk N | drain N PROCS CONC |"
                        " latency N RATE CONC\n");
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
        scenario_latency(n, atoi(argv[3]), atoi(argv[4]));
    else
        die("usage", "unknown scenario");
    return 0;
}
