/* Batches of tasks to enqueue together. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

aipalq_batch *aipalq_batch_new(void)
{
    return calloc(1, sizeof(aipalq_batch));
}

static void entry_clear(struct aipalq_batch_entry *e)
{
    free(e->type);
    free(e->params);
    free(e->opts.idempotency_key);
    free(e->opts.user_id);
    memset(e, 0, sizeof *e);
}

void aipalq_batch_clear(aipalq_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->count; i++)
        entry_clear(&b->entries[i]);
    b->count = 0;
    b->enqueued = false;
}

void aipalq_batch_free(aipalq_batch *b)
{
    if (!b)
        return;
    aipalq_batch_clear(b);
    free(b->entries);
    free(b);
}

aipalq_status aipalq_batch_add(aipalq_batch *b, const char *type, const char *params,
                               const aipalq_opts *opts)
{
    if (!b)
        return AIPALQ_EMISUSE;
    if (!type)
        return AIPALQ_EINVAL;
    if (b->count == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        struct aipalq_batch_entry *entries = realloc(b->entries, cap * sizeof *entries);
        if (!entries)
            return AIPALQ_ENOMEM;
        b->entries = entries;
        b->cap = cap;
    }
    struct aipalq_batch_entry *e = &b->entries[b->count];
    memset(e, 0, sizeof *e);
    e->type = aipalq__strdup(type);
    e->params = aipalq__strdup(params ? params : "{}");
    bool ok = e->type && e->params;
    if (opts) {
        e->opts = *opts;
        e->opts.idempotency_key = aipalq__strdup(opts->idempotency_key);
        e->opts.user_id = aipalq__strdup(opts->user_id);
        ok = ok && (!opts->idempotency_key || e->opts.idempotency_key) &&
             (!opts->user_id || e->opts.user_id);
        e->has_opts = true;
    } else {
        e->opts.max_retries = -1;
    }
    if (!ok) {
        entry_clear(e);
        return AIPALQ_ENOMEM;
    }
    b->count++;
    b->enqueued = false;
    return AIPALQ_OK;
}

size_t aipalq_batch_size(const aipalq_batch *b)
{
    return b ? b->count : 0;
}

const char *aipalq_batch_id(const aipalq_batch *b, size_t i)
{
    if (!b || !b->enqueued || i >= b->count)
        return NULL;
    return b->entries[i].id;
}

int aipalq_batch_created(const aipalq_batch *b, size_t i)
{
    if (!b || !b->enqueued || i >= b->count)
        return 0;
    return b->entries[i].created;
}
