/* A configurable worker process for the worker engine's tests: the tests
 * fork/exec it to have workers they can kill, stop and continue.
 *
 *   test_worker_proc --ns NS --types JSON [--queues CSV] [--mode threads|prefork]
 *                    [--concurrency N] [--lease-ms N] [--shutdown-ms N] [--id ID]
 *                    [--tag TAG] [--max-sleep-ms N]
 *                    [--step STATUS_FILE --go-file FILE [--step-timeout-ms N]]
 *
 * Every type of the JSON array (the shape aipalq_types_define_json takes) gets
 * the same handler, whose behaviour the task's params select:
 *   {"sleep_ms": N}         sleep N ms in 10 ms steps, returning early (with no
 *                           outcome) when aipalq_job_should_stop() says so
 *   {"ignore_cancel": true} with sleep_ms: never look at should_stop
 *   {"spin_ms": N}          burn the CPU for N ms without looking at anything
 *   {"until_soft": true}    wait (up to 30 s) for the soft time limit, then
 *                           complete with {"soft_limit_passed":true,...}
 *   {"crash": "segv"|"abort"}  die of that signal
 *   {"fail": "msg", "detail": "d", "retryable": true}  set that error
 *   {"misbehave_attempts": N}  all of the above only on attempts 1..N; later
 *                           attempts complete at once
 * otherwise the task completes with {"tag":TAG,"pid":PID,"attempt":N}.
 * --max-sleep-ms caps sleep_ms (a worker started to finish what another one
 * handed back).
 *
 * When AIPALQ_TEST_LOG names a file, every handler return appends one line
 * "<id> <attempt> <pid> <what> <start_ms>" where what is completed, failed,
 * stopped (returned early without an outcome) or soft; a line is one
 * O_APPEND write, so processes can share the file.
 *
 * SIGTERM / SIGINT stop the worker gracefully, a second one fast.
 *
 * Step mode (--step FILE) takes one task with aipalq_worker_next, writes
 * "taken <id> <token>" to FILE, waits until --go-file exists, then calls
 * aipalq_job_complete and writes "complete <STATUS>" (e.g. "complete ESTALE"),
 * or "empty" when nothing came. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include <aipal/worker.h>

static aipalq_worker *the_worker;
static const char *tag = "";
static long max_sleep_ms = -1;

static int64_t now_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void on_signal(int sig)
{
    static volatile sig_atomic_t seen;
    (void)sig;
    aipalq_worker_stop(the_worker, seen++ > 0);
}

static void log_line(const aipalq_job *job, const char *what, int64_t start_ms)
{
    const char *path = getenv("AIPALQ_TEST_LOG");
    if (!path || !*path)
        return;
    char line[256];
    int n = snprintf(line, sizeof line, "%s %d %ld %s %lld\n", aipalq_job_id(job),
                     aipalq_job_attempt(job), (long)getpid(), what, (long long)start_ms);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    if (write(fd, line, (size_t)n) != n)
        perror("test_worker_proc: log");
    close(fd);
}

static long num(const cJSON *p, const char *key, long dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, key);
    return cJSON_IsNumber(v) ? (long)v->valuedouble : dflt;
}

static const char *str(const cJSON *p, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int flag(const cJSON *p, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, key));
}

/* Dies of `sig` even under a sanitizer that handles it. */
static void die_of(int sig)
{
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    _exit(99);
}

static void complete_default(aipalq_job *job)
{
    char res[256];
    snprintf(res, sizeof res, "{\"tag\":\"%s\",\"pid\":%ld,\"attempt\":%d}", tag, (long)getpid(),
             aipalq_job_attempt(job));
    aipalq_job_set_result(job, res);
}

static void handler(aipalq_job *job, void *userdata)
{
    (void)userdata;
    int64_t start = now_ms(CLOCK_REALTIME);
    cJSON *p = cJSON_Parse(aipalq_job_params(job));
    long upto = num(p, "misbehave_attempts", -1);
    int misbehave = upto < 0 || aipalq_job_attempt(job) <= upto;
    const char *what = "completed";
    if (misbehave) {
        const char *crash = str(p, "crash");
        if (crash)
            die_of(strcmp(crash, "abort") == 0 ? SIGABRT : SIGSEGV);
        long spin = num(p, "spin_ms", 0);
        if (spin > 0) {
            int64_t until = now_ms(CLOCK_MONOTONIC) + spin;
            volatile unsigned long x = 0;
            while (now_ms(CLOCK_MONOTONIC) < until)
                for (int i = 0; i < 100000; i++)
                    x = x + (unsigned long)i;
        }
        long sleep = num(p, "sleep_ms", 0);
        if (max_sleep_ms >= 0 && sleep > max_sleep_ms)
            sleep = max_sleep_ms;
        if (sleep > 0) {
            int ignore = flag(p, "ignore_cancel");
            int64_t until = now_ms(CLOCK_MONOTONIC) + sleep;
            while (now_ms(CLOCK_MONOTONIC) < until) {
                if (!ignore && aipalq_job_should_stop(job)) {
                    what = "stopped";
                    break;
                }
                nap_ms(10);
            }
        }
        if (flag(p, "until_soft")) {
            int64_t t0 = now_ms(CLOCK_MONOTONIC);
            while (!aipalq_job_soft_limit_passed(job) && now_ms(CLOCK_MONOTONIC) - t0 < 30000)
                nap_ms(10);
            char res[128];
            snprintf(res, sizeof res, "{\"soft_limit_passed\":%s,\"waited_ms\":%lld}",
                     aipalq_job_soft_limit_passed(job) ? "true" : "false",
                     (long long)(now_ms(CLOCK_MONOTONIC) - t0));
            aipalq_job_set_result(job, res);
            what = "soft";
        } else if (str(p, "fail") && strcmp(what, "stopped") != 0) {
            aipalq_job_set_error(job, str(p, "fail"), str(p, "detail"), flag(p, "retryable"));
            what = "failed";
        }
    }
    if (strcmp(what, "completed") == 0)
        complete_default(job);
    cJSON_Delete(p);
    log_line(job, what, start);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "a");
    if (!f) {
        perror(path);
        return;
    }
    fputs(text, f);
    fclose(f);
}

static int run_step(aipalq_worker *w, const char *status_file, const char *go_file, long timeout_ms)
{
    aipalq_job *job = NULL;
    aipalq_status st = aipalq_worker_next(w, timeout_ms, &job);
    char line[256];
    if (st != AIPALQ_OK) {
        snprintf(line, sizeof line, "%s\n", st == AIPALQ_EMPTY ? "empty" : aipalq_status_name(st));
        write_file(status_file, line);
        return st == AIPALQ_EMPTY ? 0 : 1;
    }
    snprintf(line, sizeof line, "taken %s %lld\n", aipalq_job_id(job),
             (long long)aipalq_job_token(job));
    write_file(status_file, line);
    struct stat sb;
    while (stat(go_file, &sb) != 0)
        nap_ms(20);
    char res[128];
    snprintf(res, sizeof res, "{\"tag\":\"%s\",\"pid\":%ld}", tag, (long)getpid());
    st = aipalq_job_complete(job, res);
    snprintf(line, sizeof line, "complete %s\n", aipalq_status_name(st));
    write_file(status_file, line);
    aipalq_job_free(job);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: test_worker_proc --ns NS --types JSON [options] (see the source)\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *ns = NULL, *types = NULL, *queues = NULL, *mode = "threads", *id = NULL;
    const char *step_file = NULL, *go_file = NULL;
    long concurrency = 1, lease_ms = 0, shutdown_ms = -1, step_timeout = 10000;
    static const struct option longopts[] = {
        {"ns", required_argument, NULL, 'n'},
        {"types", required_argument, NULL, 't'},
        {"queues", required_argument, NULL, 'q'},
        {"mode", required_argument, NULL, 'm'},
        {"concurrency", required_argument, NULL, 'c'},
        {"lease-ms", required_argument, NULL, 'l'},
        {"shutdown-ms", required_argument, NULL, 's'},
        {"id", required_argument, NULL, 'i'},
        {"tag", required_argument, NULL, 'g'},
        {"max-sleep-ms", required_argument, NULL, 'x'},
        {"step", required_argument, NULL, 'S'},
        {"go-file", required_argument, NULL, 'G'},
        {"step-timeout-ms", required_argument, NULL, 'T'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'n':
            ns = optarg;
            break;
        case 't':
            types = optarg;
            break;
        case 'q':
            queues = optarg;
            break;
        case 'm':
            mode = optarg;
            break;
        case 'c':
            concurrency = atol(optarg);
            break;
        case 'l':
            lease_ms = atol(optarg);
            break;
        case 's':
            shutdown_ms = atol(optarg);
            break;
        case 'i':
            id = optarg;
            break;
        case 'g':
            tag = optarg;
            break;
        case 'x':
            max_sleep_ms = atol(optarg);
            break;
        case 'S':
            step_file = optarg;
            break;
        case 'G':
            go_file = optarg;
            break;
        case 'T':
            step_timeout = atol(optarg);
            break;
        default:
            usage();
        }
    }
    if (!ns || !types || (step_file && !go_file))
        usage();

    aipalq_client *c = aipalq_client_new(NULL, NULL);
    if (!c || aipalq_client_set_namespace(c, ns) != AIPALQ_OK ||
        aipalq_types_define_json(c, types) != AIPALQ_OK) {
        fprintf(stderr, "test_worker_proc: setup: %s\n", aipalq_client_errmsg(c));
        return 1;
    }
    aipalq_worker *w = aipalq_worker_new(c);
    if (!w) {
        fprintf(stderr, "test_worker_proc: aipalq_worker_new failed\n");
        return 1;
    }
    cJSON *arr = cJSON_Parse(types);
    const cJSON *t;
    cJSON_ArrayForEach(t, arr)
    {
        aipalq_worker_handle(w, str(t, "name"), handler, NULL);
    }
    cJSON_Delete(arr);
    aipalq_client_free(c);
    int bad = 0;
    if (queues)
        bad |= aipalq_worker_set_queues(w, queues, 0) != AIPALQ_OK;
    bad |=
        aipalq_worker_set_mode(w, strcmp(mode, "prefork") == 0 ? AIPALQ_MODE_PREFORK
                                                               : AIPALQ_MODE_THREADS) != AIPALQ_OK;
    bad |= aipalq_worker_set_concurrency(w, (int)concurrency) != AIPALQ_OK;
    if (lease_ms > 0)
        bad |= aipalq_worker_set_lease_ms(w, lease_ms) != AIPALQ_OK;
    if (shutdown_ms >= 0)
        bad |= aipalq_worker_set_shutdown_timeout_ms(w, shutdown_ms) != AIPALQ_OK;
    if (id)
        bad |= aipalq_worker_set_id(w, id) != AIPALQ_OK;
    /* No reconciler or relay passes: tests watch the engine alone. */
    bad |= aipalq_worker_set_maintenance_ms(w, 0) != AIPALQ_OK;
    if (bad) {
        fprintf(stderr, "test_worker_proc: configure: %s\n", aipalq_worker_errmsg(w));
        aipalq_worker_free(w);
        return 1;
    }
    int rc;
    if (step_file) {
        rc = run_step(w, step_file, go_file, step_timeout);
    } else {
        the_worker = w;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        aipalq_status st = aipalq_worker_run(w);
        if (st != AIPALQ_OK)
            fprintf(stderr, "test_worker_proc: run: %s: %s\n", aipalq_status_name(st),
                    aipalq_worker_errmsg(w));
        rc = st == AIPALQ_OK ? 0 : 1;
    }
    aipalq_worker_free(w);
    return rc;
}
