/* The diagnostic types on the default queue: echo, sleep and fail. */
#include <stdio.h>
#include <time.h>

#include "handlers.h"
#include "task.h"

/* The result is the params, exactly as given. */
void handle_echo(aipalq_job *job, void *userdata)
{
    task_ctx ctx;
    if (task_begin(&ctx, job, userdata) == 0)
        task_succeed_raw(&ctx, cJSON_Parse(aipalq_job_params(job)));
    task_end(&ctx);
}

/* Sleeps "ms" milliseconds in 10 ms steps, reporting progress each second
 * and stopping early on cancel, soft limit or a fast shutdown. */
void handle_sleep(aipalq_job *job, void *userdata)
{
    task_ctx ctx;
    if (task_begin(&ctx, job, userdata) != 0) {
        task_end(&ctx);
        return;
    }
    int64_t ms = (int64_t)task_num(&ctx, "ms", 1000);
    int64_t start = task_mono_ms(), last_report = start;
    for (;;) {
        int64_t slept = task_mono_ms() - start;
        if (slept >= ms)
            break;
        if (task_should_stop(&ctx)) {
            char where[64];
            snprintf(where, sizeof where, "after %lld of %lld ms", (long long)slept, (long long)ms);
            task_stopped(&ctx, where);
            task_end(&ctx);
            return;
        }
        if (task_mono_ms() - last_report >= 1000) {
            last_report = task_mono_ms();
            task_progress(&ctx, (int)(slept * 100 / ms), "slept %lld of %lld ms", (long long)slept,
                          (long long)ms);
        }
        int64_t left = ms - slept;
        struct timespec ts = {0, (long)((left < 10 ? left : 10) * 1000000)};
        nanosleep(&ts, NULL);
    }
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "slept_ms", (double)(task_mono_ms() - start));
    cJSON_AddNumberToObject(r, "requested_ms", (double)ms);
    task_succeed(&ctx, r, NULL);
    task_end(&ctx);
}

void handle_fail(aipalq_job *job, void *userdata)
{
    task_ctx ctx;
    if (task_begin(&ctx, job, userdata) == 0)
        task_fail(&ctx, NULL, task_bool(&ctx, "retryable", 0), "%s",
                  task_str(&ctx, "message", "requested failure"));
    task_end(&ctx);
}
