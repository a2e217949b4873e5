/* Jobs: one delivery of a task to a handler. What a handler reads and sets,
 * and the outcome record built from it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "prefork_proto.h"
#include "worker_internal.h"

static bool job_ok(const aipalq_job *job)
{
    return job && job->magic == AIPALQ__JOB_MAGIC;
}

/* Splits our payload {"id":..,...,"params":<raw>} into its small head and
 * the params text, which is passed on without being parsed again. The head
 * cannot contain the key sequence: its strings are escaped JSON. */
static char *split_params(const char *payload, char **head_out)
{
    const char *p = strstr(payload, ",\"params\":");
    size_t plen = strlen(payload);
    if (!p || plen < 2 || payload[plen - 1] != '}')
        return NULL;
    const char *start = p + strlen(",\"params\":");
    size_t n = (size_t)(payload + plen - 1 - start);
    char *params = malloc(n + 1);
    char *head = malloc((size_t)(p - payload) + 2);
    if (!params || !head) {
        free(params);
        free(head);
        return NULL;
    }
    memcpy(params, start, n);
    params[n] = '\0';
    memcpy(head, payload, (size_t)(p - payload));
    head[p - payload] = '}';
    head[p - payload + 1] = '\0';
    *head_out = head;
    return params;
}

aipalq_job *aipalq__job_new(aipalq_worker *w, const char *queue, const char *payload, int attempt,
                            int64_t token)
{
    aipalq_job *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    job->magic = AIPALQ__JOB_MAGIC;
    job->w = w;
    job->child_fd = -1;
    job->attempt = attempt;
    job->token = token;
    char *head = NULL;
    job->params = split_params(payload, &head);
    cJSON *doc = head ? cJSON_Parse(head) : NULL;
    free(head);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(doc, "id");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(doc, "type");
    const cJSON *prio = cJSON_GetObjectItemCaseSensitive(doc, "priority");
    const cJSON *maxr = cJSON_GetObjectItemCaseSensitive(doc, "max_retries");
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(doc, "user_id");
    bool ok = job->params && cJSON_IsString(id) && cJSON_IsString(type) &&
              aipalq__uuid_valid(id->valuestring);
    if (ok) {
        snprintf(job->id, sizeof job->id, "%s", id->valuestring);
        job->type = aipalq__strdup(type->valuestring);
        job->queue = aipalq__strdup(queue);
        job->user_id = cJSON_IsString(user) ? aipalq__strdup(user->valuestring) : NULL;
        job->priority = cJSON_IsNumber(prio) ? prio->valueint : 5;
        job->max_retries = cJSON_IsNumber(maxr) ? maxr->valueint : 0;
        ok = job->type && job->queue;
    }
    cJSON_Delete(doc);
    if (!ok) {
        aipalq__job_destroy(job);
        return NULL;
    }
    const aipalq__type *t = aipalq__types_find(&w->cfg->types, job->type);
    if (t) {
        job->settings = *t;
    } else {
        /* Taken from a shared queue by a worker that does not know the type:
         * the job fails without a handler, with neutral settings. */
        memset(&job->settings, 0, sizeof job->settings);
    }
    job->taken_mono = aipalq__monotonic_ms();
    return job;
}

void aipalq__job_destroy(aipalq_job *job)
{
    if (!job)
        return;
    free(job->type);
    free(job->queue);
    free(job->params);
    free(job->user_id);
    free(job->result);
    free(job->err_msg);
    free(job->err_detail);
    job->magic = AIPALQ__DEAD_MAGIC;
    free(job);
}

/* ------------------------------------------------------------- accessors */

const char *aipalq_job_id(const aipalq_job *job)
{
    return job_ok(job) ? job->id : NULL;
}
const char *aipalq_job_type(const aipalq_job *job)
{
    return job_ok(job) ? job->type : NULL;
}
const char *aipalq_job_queue(const aipalq_job *job)
{
    return job_ok(job) ? job->queue : NULL;
}
const char *aipalq_job_params(const aipalq_job *job)
{
    return job_ok(job) ? job->params : NULL;
}
const char *aipalq_job_user_id(const aipalq_job *job)
{
    return job_ok(job) ? job->user_id : NULL;
}
int aipalq_job_priority(const aipalq_job *job)
{
    return job_ok(job) ? job->priority : 0;
}
int aipalq_job_attempt(const aipalq_job *job)
{
    return job_ok(job) ? job->attempt : 0;
}
int aipalq_job_max_retries(const aipalq_job *job)
{
    return job_ok(job) ? job->max_retries : 0;
}
int64_t aipalq_job_token(const aipalq_job *job)
{
    return job_ok(job) ? job->token : 0;
}
const char *aipalq_job_errmsg(const aipalq_job *job)
{
    return job_ok(job) ? job->errmsg : "invalid job handle";
}

/* In a prefork child the flags are set by signals from the parent. */
int aipalq_job_soft_limit_passed(const aipalq_job *job)
{
    if (!job_ok(job))
        return 0;
    return job->child_fd >= 0 ? aipalq__child_soft_flag() : atomic_load(&job->soft_passed);
}

int aipalq_job_cancel_requested(const aipalq_job *job)
{
    if (!job_ok(job))
        return 0;
    return job->child_fd >= 0 ? aipalq__child_cancel_flag() : atomic_load(&job->cancel);
}

int aipalq_job_should_stop(const aipalq_job *job)
{
    if (!job_ok(job))
        return 1;
    if (aipalq_job_soft_limit_passed(job) || aipalq_job_cancel_requested(job))
        return 1;
    if (job->child_fd >= 0)
        return 0;
    return atomic_load(&job->lease_lost) || atomic_load(&job->abandoned) || job->w->stop == 2;
}

void aipalq_job_progress(aipalq_job *job, int percent, const char *message)
{
    if (!job_ok(job))
        return;
    if (percent < 0)
        percent = 0;
    if (percent > 100)
        percent = 100;
    if (job->child_fd >= 0) {
        aipalq__child_send_progress(job->child_fd, percent, message);
        return;
    }
    aipalq__record *r = aipalq__record_new("progress", job);
    if (!r)
        return;
    r->pct = percent;
    r->msg = aipalq__strdup(message);
    aipalq__recorder_push(job->w, r);
}

/* Checks a result document: any JSON value PostgreSQL accepts, within the
 * size limit. */
static aipalq_status check_result(aipalq_job *job, const char *json)
{
    if (!json)
        return AIPALQ_OK;
    return aipalq__json_text_check(json, "results", AIPALQ_MAX_RESULT_BYTES, false, job->errmsg,
                                   sizeof job->errmsg);
}

aipalq_status aipalq_job_set_result(aipalq_job *job, const char *result_json)
{
    if (!job_ok(job))
        return AIPALQ_EMISUSE;
    aipalq_status st = check_result(job, result_json);
    if (st != AIPALQ_OK)
        return st;
    char *copy = result_json ? aipalq__strdup(result_json) : NULL;
    if (result_json && !copy)
        return AIPALQ_ENOMEM;
    free(job->result);
    job->result = copy;
    job->outcome = JOB_COMPLETED;
    return AIPALQ_OK;
}

aipalq_status aipalq_job_set_error(aipalq_job *job, const char *message, const char *detail,
                                   int retryable)
{
    if (!job_ok(job))
        return AIPALQ_EMISUSE;
    free(job->err_msg);
    free(job->err_detail);
    job->err_msg = aipalq__strdup(message ? message : "handler failed");
    job->err_detail = aipalq__strdup(detail);
    job->retryable = retryable != 0;
    job->outcome = JOB_FAILED;
    return AIPALQ_OK;
}

/* --------------------------------------------------------------- records */

aipalq__record *aipalq__record_new(const char *kind, const aipalq_job *job)
{
    aipalq__record *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    snprintf(r->kind, sizeof r->kind, "%s", kind);
    if (job) {
        memcpy(r->id, job->id, sizeof r->id);
        snprintf(r->queue, sizeof r->queue, "%s", job->queue);
        r->token = job->token;
        r->attempt = job->attempt;
        r->ttl_ms = job->settings.result_ttl_ms;
    }
    return r;
}

void aipalq__record_free(aipalq__record *r)
{
    if (!r)
        return;
    free(r->result);
    free(r->err);
    free(r->detail);
    free(r->msg);
    free(r);
}

/* A failure retries when the handler allows it and attempts remain. */
static aipalq__record *failure_record(aipalq_job *job, const char *msg, const char *detail,
                                      bool retryable)
{
    bool retry = retryable && job->attempt <= job->max_retries;
    aipalq__record *r = aipalq__record_new(retry ? "retrying" : "failed", job);
    if (!r)
        return NULL;
    r->err = aipalq__strdup(msg);
    r->detail = aipalq__strdup(detail);
    if (retry) {
        double u = (double)(rand() % 1000000) / 1000000.0;
        int64_t delay =
            aipalq__backoff_ms(job->settings.backoff_base_ms, job->settings.backoff_cap_ms,
                               job->settings.backoff_jitter_percent, job->attempt, u);
        r->run_at_ms = aipalq__now_ms() + delay;
    }
    return r;
}

aipalq__record *aipalq__job_outcome_record(aipalq_job *job)
{
    if (atomic_load(&job->cancel) && job->outcome != JOB_COMPLETED) {
        aipalq__record *r = aipalq__record_new("cancelled", job);
        if (r)
            r->err = aipalq__strdup("cancelled by request");
        return r;
    }
    if (job->outcome == JOB_FAILED)
        return failure_record(job, job->err_msg, job->err_detail, job->retryable);
    aipalq__record *r = aipalq__record_new("completed", job);
    if (r && job->result) {
        r->result = job->result;
        job->result = NULL;
    }
    return r;
}

aipalq__record *aipalq__job_failure_record(aipalq_job *job, const char *msg, const char *detail,
                                           bool retryable)
{
    return failure_record(job, msg, detail, retryable);
}

/* ------------------------------------------------------------------ steps */

static void sync_init(aipalq__sync *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
}

static void sync_wait(aipalq__sync *s)
{
    pthread_mutex_lock(&s->mu);
    while (!s->done)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}

/* Sends a step job's final record through the recorder (so it lands after
 * the job's running record) and waits for it. */
static aipalq_status end_step(aipalq_job *job, aipalq__record *r)
{
    if (!r)
        return AIPALQ_ENOMEM;
    aipalq__sync s;
    sync_init(&s);
    r->sync = &s;
    aipalq_worker *w = job->w;
    aipalq__recorder_push(w, r);
    sync_wait(&s);
    job->ended = true;
    pthread_mutex_lock(&w->mu);
    aipalq__inflight_remove(w, job);
    pthread_mutex_unlock(&w->mu);
    if (s.status != AIPALQ_OK) {
        snprintf(job->errmsg, sizeof job->errmsg, "%s", s.message);
        return s.status;
    }
    if (!s.applied) {
        snprintf(job->errmsg, sizeof job->errmsg,
                 "delivery %lld of task %s lost its lease; its outcome was not recorded",
                 (long long)job->token, job->id);
        return AIPALQ_ESTALE;
    }
    job->errmsg[0] = '\0';
    return AIPALQ_OK;
}

static aipalq_status step_check(aipalq_job *job)
{
    if (!job_ok(job) || !job->step)
        return AIPALQ_EMISUSE;
    if (job->ended) {
        snprintf(job->errmsg, sizeof job->errmsg, "the job has already ended");
        return AIPALQ_EILLEGAL;
    }
    return AIPALQ_OK;
}

aipalq_status aipalq_job_complete(aipalq_job *job, const char *result_json)
{
    aipalq_status st = step_check(job);
    if (st != AIPALQ_OK)
        return st;
    st = check_result(job, result_json);
    if (st != AIPALQ_OK)
        return st;
    aipalq__record *r = aipalq__record_new("completed", job);
    if (r && result_json && !(r->result = aipalq__strdup(result_json))) {
        aipalq__record_free(r);
        r = NULL;
    }
    return end_step(job, r);
}

aipalq_status aipalq_job_fail(aipalq_job *job, const char *message, const char *detail,
                              int retryable)
{
    aipalq_status st = step_check(job);
    if (st != AIPALQ_OK)
        return st;
    return end_step(job, failure_record(job, message ? message : "failed", detail, retryable));
}

aipalq_status aipalq_job_release(aipalq_job *job)
{
    aipalq_status st = step_check(job);
    if (st != AIPALQ_OK)
        return st;
    return end_step(job, aipalq__record_new("released", job));
}

void aipalq_job_free(aipalq_job *job)
{
    if (!job_ok(job))
        return;
    if (job->step && !job->ended)
        aipalq_job_release(job);
    aipalq__job_destroy(job);
}
