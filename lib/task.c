/* Task snapshots: reading one from a row, and its accessors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

void aipalq__task_clear(aipalq_task *t)
{
    free(t->type);
    free(t->queue);
    free(t->params);
    free(t->result);
    free(t->error_message);
    free(t->error_detail);
    free(t->worker_id);
    free(t->user_id);
    free(t->idempotency_key);
    free(t->progress_message);
    free(t->json);
    memset(t, 0, sizeof *t);
}

/* Copies a column; NULL for SQL NULL. Sets *ok to false when memory runs out. */
static char *column(const PGresult *res, int row, int col, bool *ok)
{
    if (PQgetisnull(res, row, col))
        return NULL;
    char *s = aipalq__strdup(PQgetvalue(res, row, col));
    if (!s)
        *ok = false;
    return s;
}

static int int_column(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : atoi(PQgetvalue(res, row, col));
}

bool aipalq__task_from_row(aipalq_task *t, const PGresult *res, int row, int col0)
{
    bool ok = true;
    memset(t, 0, sizeof *t);
    snprintf(t->id, sizeof t->id, "%s", PQgetvalue(res, row, col0));
    t->type = column(res, row, col0 + 1, &ok);
    t->queue = column(res, row, col0 + 2, &ok);
    if (aipalq_state_parse(PQgetvalue(res, row, col0 + 3), &t->state) != AIPALQ_OK)
        t->state = AIPALQ_STATE_PENDING;
    t->priority = int_column(res, row, col0 + 4);
    t->params = column(res, row, col0 + 5, &ok);
    t->result = column(res, row, col0 + 6, &ok);
    t->error_message = column(res, row, col0 + 7, &ok);
    t->error_detail = column(res, row, col0 + 8, &ok);
    t->attempts = int_column(res, row, col0 + 9);
    t->max_retries = int_column(res, row, col0 + 10);
    t->created_ms = aipalq__pg_ms(res, row, col0 + 11);
    t->started_ms = aipalq__pg_ms(res, row, col0 + 12);
    t->completed_ms = aipalq__pg_ms(res, row, col0 + 13);
    t->updated_ms = aipalq__pg_ms(res, row, col0 + 14);
    t->run_at_ms = aipalq__pg_ms(res, row, col0 + 15);
    t->worker_id = column(res, row, col0 + 16, &ok);
    t->user_id = column(res, row, col0 + 17, &ok);
    t->idempotency_key = column(res, row, col0 + 18, &ok);
    t->progress = int_column(res, row, col0 + 19);
    t->progress_message = column(res, row, col0 + 20, &ok);
    t->cancel_requested = PQgetvalue(res, row, col0 + 21)[0] == 't';
    t->epoch = int_column(res, row, col0 + 22);
    if (!t->params && ok)
        ok = (t->params = aipalq__strdup("{}")) != NULL;
    if (!ok)
        aipalq__task_clear(t);
    return ok;
}

void aipalq_task_free(aipalq_task *t)
{
    if (!t)
        return;
    aipalq__task_clear(t);
    free(t);
}

#define ACCESSOR(type, name, field, fallback)                                                      \
    type aipalq_task_##name(const aipalq_task *t)                                                  \
    {                                                                                              \
        return t ? t->field : fallback;                                                            \
    }

ACCESSOR(const char *, id, id, NULL)
ACCESSOR(const char *, type, type, NULL)
ACCESSOR(const char *, queue, queue, NULL)
ACCESSOR(aipalq_state, state, state, AIPALQ_STATE_PENDING)
ACCESSOR(int, priority, priority, 0)
ACCESSOR(const char *, params, params, NULL)
ACCESSOR(const char *, result, result, NULL)
ACCESSOR(const char *, error_message, error_message, NULL)
ACCESSOR(const char *, error_detail, error_detail, NULL)
ACCESSOR(int, attempts, attempts, 0)
ACCESSOR(int, max_retries, max_retries, 0)
ACCESSOR(int64_t, created_ms, created_ms, 0)
ACCESSOR(int64_t, started_ms, started_ms, 0)
ACCESSOR(int64_t, completed_ms, completed_ms, 0)
ACCESSOR(int64_t, updated_ms, updated_ms, 0)
ACCESSOR(int64_t, run_at_ms, run_at_ms, 0)
ACCESSOR(const char *, worker_id, worker_id, NULL)
ACCESSOR(const char *, user_id, user_id, NULL)
ACCESSOR(const char *, idempotency_key, idempotency_key, NULL)
ACCESSOR(int, progress, progress, 0)
ACCESSOR(const char *, progress_message, progress_message, NULL)
ACCESSOR(int, cancel_requested, cancel_requested, 0)
