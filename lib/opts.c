/* Enqueue options. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

aipalq_opts *aipalq_opts_new(void)
{
    aipalq_opts *o = calloc(1, sizeof *o);
    if (o)
        o->max_retries = -1;
    return o;
}

void aipalq_opts_free(aipalq_opts *o)
{
    if (!o)
        return;
    free(o->idempotency_key);
    free(o->user_id);
    free(o);
}

aipalq_status aipalq_opts_set_priority(aipalq_opts *o, int priority)
{
    if (!o)
        return AIPALQ_EMISUSE;
    if (priority < 1 || priority > 10)
        return AIPALQ_EPRIORITY;
    o->priority = priority;
    return AIPALQ_OK;
}

aipalq_status aipalq_opts_set_queue(aipalq_opts *o, const char *queue)
{
    if (!o)
        return AIPALQ_EMISUSE;
    if (!queue) {
        o->queue[0] = '\0';
        return AIPALQ_OK;
    }
    if (!aipalq__valid_name(queue))
        return AIPALQ_EQUEUE;
    strcpy(o->queue, queue);
    return AIPALQ_OK;
}

aipalq_status aipalq_opts_set_delay_ms(aipalq_opts *o, int64_t delay_ms)
{
    if (!o)
        return AIPALQ_EMISUSE;
    if (delay_ms < 0 || delay_ms > (int64_t)366 * 24 * 3600 * 1000 * 100)
        return AIPALQ_EINVAL;
    o->delay_ms = delay_ms;
    o->run_at_ms = 0;
    return AIPALQ_OK;
}

aipalq_status aipalq_opts_set_run_at_ms(aipalq_opts *o, int64_t unix_ms)
{
    if (!o)
        return AIPALQ_EMISUSE;
    /* Up to year 9999: far enough, and within what timestamptz holds. */
    if (unix_ms < 0 || unix_ms > 253402300799000LL)
        return AIPALQ_EINVAL;
    o->run_at_ms = unix_ms;
    o->delay_ms = 0;
    return AIPALQ_OK;
}

/* Replaces *slot with a copy of s (NULL clears), bounded in length. The text
 * must be UTF-8: PostgreSQL refuses anything else, which would otherwise fail
 * the enqueue later as AIPALQ_EPG. */
static aipalq_status set_text(char **slot, const char *s, size_t max)
{
    char *copy = NULL;
    if (s) {
        size_t n = strlen(s);
        if (n == 0 || n > max || aipalq__utf8_invalid_at((const unsigned char *)s, n) >= 0)
            return AIPALQ_EINVAL;
        copy = aipalq__strdup(s);
        if (!copy)
            return AIPALQ_ENOMEM;
    }
    free(*slot);
    *slot = copy;
    return AIPALQ_OK;
}

aipalq_status aipalq_opts_set_idempotency_key(aipalq_opts *o, const char *key)
{
    if (!o)
        return AIPALQ_EMISUSE;
    return set_text(&o->idempotency_key, key, AIPALQ__MAX_KEY_LEN);
}

aipalq_status aipalq_opts_set_max_retries(aipalq_opts *o, int max_retries)
{
    if (!o)
        return AIPALQ_EMISUSE;
    if (max_retries < 0 || max_retries > 1000)
        return AIPALQ_EINVAL;
    o->max_retries = max_retries;
    return AIPALQ_OK;
}

aipalq_status aipalq_opts_set_user_id(aipalq_opts *o, const char *user_id)
{
    if (!o)
        return AIPALQ_EMISUSE;
    return set_text(&o->user_id, user_id, AIPALQ__MAX_USER_LEN);
}
