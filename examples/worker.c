/* A worker with three small handlers: echo, sleep and fail.
 *
 *   AIPALQ_REDIS_URL=... AIPALQ_DATABASE_URL=... ./worker [threads|prefork] [concurrency]
 *
 * Ctrl-C stops it gracefully (running tasks finish or are handed back); a
 * second Ctrl-C stops it fast, still losing nothing. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <aipal/worker.h>

static aipalq_worker *the_worker;

static void on_signal(int sig)
{
    static volatile sig_atomic_t seen;
    (void)sig;
    aipalq_worker_stop(the_worker, seen++ > 0);
}

static void echo(aipalq_job *job, void *userdata)
{
    (void)userdata;
    aipalq_job_set_result(job, aipalq_job_params(job));
}

/* Sleeps "ms" milliseconds in small steps, stopping early when asked to. */
static void sleep_handler(aipalq_job *job, void *userdata)
{
    (void)userdata;
    const char *p = strstr(aipalq_job_params(job), "\"ms\":");
    long ms = p ? strtol(p + 5, NULL, 10) : 1000;
    for (long slept = 0; slept < ms; slept += 10) {
        if (aipalq_job_should_stop(job)) {
            aipalq_job_set_error(job, "stopped early", NULL, 1);
            return;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (slept % 1000 == 0)
            aipalq_job_progress(job, (int)(slept * 100 / (ms ? ms : 1)), "sleeping");
    }
    aipalq_job_set_result(job, "{\"slept\":true}");
}

static void fail_handler(aipalq_job *job, void *userdata)
{
    (void)userdata;
    int retryable = strstr(aipalq_job_params(job), "\"retryable\":true") != NULL;
    aipalq_job_set_error(job, "failed on purpose", aipalq_job_params(job), retryable);
}

int main(int argc, char **argv)
{
    aipalq_client *c = aipalq_client_new(NULL, NULL);
    if (!c || aipalq_migrate(c) != AIPALQ_OK) {
        fprintf(stderr, "migrate: %s\n", aipalq_client_errmsg(c));
        return 1;
    }
    aipalq_types_define_json(c, "[{\"name\":\"echo\",\"queue\":\"default\"},"
                                "{\"name\":\"sleep\",\"queue\":\"default\"},"
                                "{\"name\":\"fail\",\"queue\":\"default\",\"max_retries\":2,"
                                "\"backoff_base_ms\":200,\"backoff_cap_ms\":1000}]");
    aipalq_worker *w = aipalq_worker_new(c);
    aipalq_client_free(c);
    if (!w)
        return 1;
    if (argc > 1 && strcmp(argv[1], "prefork") == 0)
        aipalq_worker_set_mode(w, AIPALQ_MODE_PREFORK);
    if (argc > 2)
        aipalq_worker_set_concurrency(w, atoi(argv[2]));
    aipalq_worker_handle(w, "echo", echo, NULL);
    aipalq_worker_handle(w, "sleep", sleep_handler, NULL);
    aipalq_worker_handle(w, "fail", fail_handler, NULL);
    the_worker = w;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    aipalq_status st = aipalq_worker_run(w);
    int64_t done = 0, failed = 0;
    aipalq_worker_counts(w, &done, &failed, NULL, NULL, NULL, NULL);
    fprintf(stderr, "worker stopped (%s): %lld completed, %lld failed\n", aipalq_status_name(st),
            (long long)done, (long long)failed);
    aipalq_worker_free(w);
    return st == AIPALQ_OK ? 0 : 1;
}
