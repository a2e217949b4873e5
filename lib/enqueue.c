/* Enqueue: validate, commit to PostgreSQL, then dispatch to Redis.
 *
 * Order matters. The row is committed first, so that a task is never in Redis
 * without its record; if the process dies or Redis fails after the commit, the
 * reconciler finds the pending row that Redis lacks and dispatches it. One
 * statement inserts a whole batch (a COPY, or the SQL function aipalq_enqueue
 * when idempotency keys need deciding), and the dispatch is written to Redis
 * without waiting for its reply, which the client's next Redis call reads: the
 * caller waits for its commit, not for a second round trip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "internal.h"

/* Resolves the settings of entry i against its type and fills its dispatch
 * item. */
static aipalq_status prepare_entry(aipalq_client *c, struct aipalq_batch_entry *e, size_t i,
                                   bool single, int64_t now, aipalq__dispatch_item *it)
{
    const char *where = single ? "" : "batch task ";
    char idx[32] = "";
    if (!single)
        snprintf(idx, sizeof idx, "%zu: ", i);
    const aipalq__type *t = aipalq__types_find(&c->types, e->type);
    if (!t)
        return aipalq__fail(c, AIPALQ_EUNKNOWNTYPE, "%s%sunknown task type '%.64s'", where, idx,
                            e->type);
    char err[256];
    aipalq_status st = aipalq__params_check(e->params, err, sizeof err);
    if (st != AIPALQ_OK)
        return aipalq__fail(c, st, "%s%s%s", where, idx, err);
    const aipalq_opts *o = &e->opts;
    int priority = o->priority ? o->priority : t->priority;
    if (priority < 1 || priority > 10)
        return aipalq__fail(c, AIPALQ_EPRIORITY, "%s%spriority %d is outside 1..10", where, idx,
                            priority);
    int64_t run_at = 0;
    if (o->delay_ms > 0)
        run_at = now + o->delay_ms;
    else if (o->run_at_ms > now)
        run_at = o->run_at_ms;
    aipalq__uuid7(e->id);
    *it = (aipalq__dispatch_item){
        .id = e->id,
        .type = t->name,
        .queue = o->queue[0] ? o->queue : t->queue,
        .params = e->params,
        .user_id = o->user_id,
        .priority = priority,
        .max_retries = o->max_retries >= 0 ? o->max_retries : t->max_retries,
        .run_at_ms = run_at,
    };
    return AIPALQ_OK;
}

/* The batch as the JSON array the SQL function aipalq_enqueue takes; NULL when
 * out of memory. Free with cJSON_free. */
static char *batch_json(aipalq_client *c, const aipalq_batch *b, const aipalq__dispatch_item *items)
{
    cJSON *rows = cJSON_CreateArray();
    bool ok = rows != NULL;
    for (size_t i = 0; ok && i < b->count; i++) {
        const aipalq__dispatch_item *it = &items[i];
        const char *key = b->entries[i].opts.idempotency_key;
        cJSON *row = cJSON_CreateObject();
        ok = row && cJSON_AddItemToArray(rows, row);
        if (!ok) {
            cJSON_Delete(row);
            break;
        }
        ok = cJSON_AddStringToObject(row, "id", it->id) &&
             cJSON_AddStringToObject(row, "type", it->type) &&
             cJSON_AddStringToObject(row, "queue", it->queue) &&
             cJSON_AddStringToObject(row, "ns", c->ns) &&
             cJSON_AddNumberToObject(row, "priority", it->priority) &&
             cJSON_AddStringToObject(row, "params", it->params) &&
             cJSON_AddNumberToObject(row, "max_retries", it->max_retries) &&
             (!it->run_at_ms || cJSON_AddNumberToObject(row, "run_at", (double)it->run_at_ms)) &&
             (!it->user_id || cJSON_AddStringToObject(row, "user_id", it->user_id)) &&
             (!key || cJSON_AddStringToObject(row, "key", key));
    }
    char *json = ok ? cJSON_PrintUnformatted(rows) : NULL;
    cJSON_Delete(rows);
    return json;
}

static bool any_idempotency_key(const aipalq_batch *b)
{
    for (size_t i = 0; i < b->count; i++)
        if (b->entries[i].opts.idempotency_key)
            return true;
    return false;
}

/* Reads the (idx, id, created) rows of aipalq_enqueue() into the batch and
 * keeps, in items[0..*ncreated), the tasks that were created. */
static aipalq_status read_outcome(aipalq_client *c, aipalq_batch *b, PGresult *res,
                                  aipalq__dispatch_item *items, size_t *ncreated)
{
    if ((size_t)PQntuples(res) != b->count)
        return aipalq__fail(c, AIPALQ_EPG, "aipalq_enqueue returned %d rows for %zu tasks",
                            PQntuples(res), b->count);
    size_t kept = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        size_t i = (size_t)atol(PQgetvalue(res, r, 0));
        if (i >= b->count)
            return aipalq__fail(c, AIPALQ_EPG, "aipalq_enqueue returned a bad index");
        struct aipalq_batch_entry *e = &b->entries[i];
        e->created = PQgetvalue(res, r, 2)[0] == 't';
        if (!e->created)
            snprintf(e->id, sizeof e->id, "%s", PQgetvalue(res, r, 1));
    }
    for (size_t i = 0; i < b->count; i++)
        if (b->entries[i].created)
            items[kept++] = items[i];
    *ncreated = kept;
    return AIPALQ_OK;
}

/* The single-task fast path: one prepared INSERT. */
static aipalq_status insert_one(aipalq_client *c, const aipalq__dispatch_item *it)
{
    char prio[8], maxr[16], run_at[24];
    snprintf(prio, sizeof prio, "%d", it->priority);
    snprintf(maxr, sizeof maxr, "%d", it->max_retries);
    snprintf(run_at, sizeof run_at, "%lld", (long long)it->run_at_ms);
    const char *params[] = {it->id,     it->type, it->queue,   prio,
                            it->params, maxr,     it->user_id, it->run_at_ms ? run_at : NULL,
                            c->ns};
    return aipalq__pg_exec_prepared(c, AIPALQ__STMT_INSERT_TASK, 9, params, NULL);
}

aipalq_status aipalq__enqueue_batch_on(aipalq_client *c, PGconn *conn, aipalq_batch *b)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    if (!b)
        return aipalq__fail(c, AIPALQ_EINVAL, "batch must not be NULL");
    b->enqueued = false;
    if (b->count == 0)
        return aipalq__ok(c);
    /* A malformed Redis URL is a mistake in the configuration, not an outage
     * the reconciler could wait out: refuse before committing tasks that
     * nothing could ever dispatch. */
    aipalq__redis_target target;
    char url_err[256];
    if (!conn &&
        aipalq__redis_url_parse(c->redis_url, &target, url_err, sizeof url_err) != AIPALQ_OK)
        return aipalq__fail(c, AIPALQ_EBADURL, "%s", url_err);
    bool single = b->count == 1;
    aipalq__dispatch_item *items = calloc(b->count, sizeof *items);
    char *json = NULL;
    PGresult *res = NULL;
    aipalq_status st =
        items ? AIPALQ_OK : aipalq__fail(c, AIPALQ_ENOMEM, "out of memory enqueueing");
    int64_t now = aipalq__now_ms();
    for (size_t i = 0; st == AIPALQ_OK && i < b->count; i++)
        st = prepare_entry(c, &b->entries[i], i, single, now, &items[i]);
    /* Without keys every task is created, so nothing needs deciding per row:
     * one task is a prepared INSERT, more are one COPY. Keys, and enqueues in
     * the caller's transaction (which write the outbox), take the SQL
     * function. */
    bool all_created = st == AIPALQ_OK && !conn && !any_idempotency_key(b);
    if (all_created && single) {
        st = insert_one(c, &items[0]);
    } else if (all_created) {
        st = aipalq__insert_by_copy(c, items, b->count);
    } else if (st == AIPALQ_OK && !(json = batch_json(c, b, items))) {
        st = aipalq__fail(c, AIPALQ_ENOMEM, "out of memory enqueueing");
    } else if (st == AIPALQ_OK) {
        const char *params[] = {json, conn ? "true" : "false"};
        const char *sql = "SELECT idx, task_id::text, created FROM aipalq_enqueue($1::jsonb, $2)";
        st = conn ? aipalq__pg_exec_on(c, conn, sql, 2, params, &res)
                  : aipalq__pg_exec(c, sql, 2, params, &res);
    }
    size_t ncreated = 0;
    if (st == AIPALQ_OK && all_created) {
        for (size_t i = 0; i < b->count; i++)
            b->entries[i].created = 1;
        ncreated = b->count;
    } else if (st == AIPALQ_OK) {
        st = read_outcome(c, b, res, items, &ncreated);
    }
    if (st == AIPALQ_OK) {
        b->enqueued = true;
        aipalq__ok(c);
        /* Committed: from here on the task exists whatever happens. A failed
         * dispatch is reported in the message, not as a failure: the
         * reconciler will dispatch the task. */
        if (!conn) {
            aipalq_status ds = aipalq__dispatch(c, items, ncreated, true);
            if (ds != AIPALQ_OK) {
                char why[AIPALQ__ERRMSG_SIZE / 2];
                snprintf(why, sizeof why, "%.400s", c->errmsg);
                aipalq__ok(c);
                snprintf(c->errmsg, sizeof c->errmsg,
                         "enqueued; dispatch deferred to the reconciler (%s)", why);
            }
        }
    }
    PQclear(res);
    cJSON_free(json);
    free(items);
    return st;
}

aipalq_status aipalq_enqueue_batch(aipalq_client *c, aipalq_batch *b)
{
    return aipalq__enqueue_batch_on(c, NULL, b);
}

aipalq_status aipalq_enqueue_batch_tx(aipalq_client *c, struct pg_conn *conn, aipalq_batch *b)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    if (!conn)
        return aipalq__fail(c, AIPALQ_EINVAL, "conn must not be NULL");
    return aipalq__enqueue_batch_on(c, conn, b);
}

/* One task is a batch of one: the single and batch paths are one code path,
 * so they cannot drift apart. */
static aipalq_status enqueue_one(aipalq_client *c, PGconn *conn, const char *type,
                                 const char *params, const aipalq_opts *opts, char *id_out,
                                 int *created_out)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    if (!type || !id_out)
        return aipalq__fail(c, AIPALQ_EINVAL, "type and id_out must not be NULL");
    aipalq_batch b = {0};
    aipalq_status st = aipalq_batch_add(&b, type, params, opts);
    if (st != AIPALQ_OK) {
        free(b.entries);
        return aipalq__fail(c, st, "cannot prepare the task: %s", aipalq_strerror(st));
    }
    st = aipalq__enqueue_batch_on(c, conn, &b);
    if (st == AIPALQ_OK) {
        memcpy(id_out, b.entries[0].id, AIPALQ_ID_SIZE);
        if (created_out)
            *created_out = b.entries[0].created;
    }
    aipalq_batch_clear(&b);
    free(b.entries);
    return st;
}

aipalq_status aipalq_enqueue(aipalq_client *c, const char *type, const char *params_json,
                             const aipalq_opts *opts, char *id_out, int *created_out)
{
    return enqueue_one(c, NULL, type, params_json, opts, id_out, created_out);
}

aipalq_status aipalq_enqueue_tx(aipalq_client *c, struct pg_conn *conn, const char *type,
                                const char *params_json, const aipalq_opts *opts, char *id_out,
                                int *created_out)
{
    if (aipalq__client_ok(c) && !conn)
        return aipalq__fail(c, AIPALQ_EINVAL, "conn must not be NULL");
    return enqueue_one(c, conn, type, params_json, opts, id_out, created_out);
}
