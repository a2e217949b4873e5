/* Cancel: withdraw a waiting task, or ask a running one to stop.
 *
 * PostgreSQL decides first, with a conditional update (so a task that
 * finished meanwhile cannot be "cancelled"), then Redis is told. If Redis
 * turns out to have handed the task to a worker already, the cancel becomes a
 * request the worker sees; the worker's late outcome is then rejected by the
 * same conditional updates, because the row is already cancelled. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static const char cancel_sql[] =
    "WITH t AS (SELECT status, queue, namespace FROM aipalq_tasks WHERE id = $1),"
    " w AS (UPDATE aipalq_tasks SET status = 'cancelled', completed_at = now(), updated_at = now()"
    "       WHERE id = $1 AND status = ANY($2::text[]) RETURNING id),"
    " r AS (UPDATE aipalq_tasks SET cancel_requested = true, updated_at = now()"
    "       WHERE id = $1 AND status = 'running' RETURNING id),"
    " ev AS (INSERT INTO aipalq_events (task_id, from_status, to_status, message)"
    "        SELECT $1, (SELECT status FROM t), 'cancelled', 'cancelled while waiting' FROM w)"
    " SELECT t.status, t.queue, EXISTS (SELECT 1 FROM w), EXISTS (SELECT 1 FROM r), t.namespace"
    " FROM t";

/* A running task that Redis no longer leases cannot be stopped by a worker:
 * end it here. */
static const char cancel_unleased_sql[] =
    "WITH u AS (UPDATE aipalq_tasks SET status = 'cancelled', completed_at = now(),"
    " updated_at = now() WHERE id = $1 AND status = 'running' RETURNING id)"
    " INSERT INTO aipalq_events (task_id, from_status, to_status, message)"
    " SELECT id, 'running', 'cancelled', 'cancelled; no worker held it' FROM u";

/* Tells Redis, in the namespace the task was dispatched in. */
static aipalq_status tell_redis(aipalq_client *c, const char *id, const char *ns, const char *queue,
                                char *outcome, size_t len)
{
    aipalq__argv args;
    aipalq__argv_init(&args);
    redisReply *r = NULL;
    aipalq_status st =
        aipalq__push_queue_keys_ns(ns, queue, &args) && aipalq__argv_push_str(&args, id)
            ? aipalq__script_call(c, AIPALQ__SCRIPT_CANCEL, AIPALQ__NQKEYS, &args, &r)
            : aipalq__fail(c, AIPALQ_ENOMEM, "out of memory cancelling");
    if (st == AIPALQ_OK)
        snprintf(outcome, len, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    aipalq__argv_free(&args);
    return st;
}

aipalq_status aipalq_cancel(aipalq_client *c, const char *id, aipalq_state *state_out)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    if (!aipalq__uuid_valid(id))
        return aipalq__fail(c, AIPALQ_EBADID, "'%.40s' is not a task id (a UUID)", id ? id : "");
    /* Running tasks get a request instead of a withdrawal. */
    char waiting[128];
    aipalq__states_into_sql(AIPALQ_STATE_CANCELLED,
                            AIPALQ__ALL_STATES & ~AIPALQ__STATE_BIT(AIPALQ_STATE_RUNNING), waiting,
                            sizeof waiting);
    const char *params[] = {id, waiting};
    PGresult *res;
    aipalq_status st = aipalq__pg_exec(c, cancel_sql, 2, params, &res);
    if (st != AIPALQ_OK)
        return st;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return aipalq__fail(c, AIPALQ_ENOTFOUND, "no task with id %s", id);
    }
    char status[32], queue[AIPALQ_MAX_NAME_LEN + 1], ns[AIPALQ_MAX_NAME_LEN + 1];
    snprintf(status, sizeof status, "%s", PQgetvalue(res, 0, 0));
    snprintf(queue, sizeof queue, "%s", PQgetvalue(res, 0, 1));
    snprintf(ns, sizeof ns, "%s", PQgetvalue(res, 0, 4));
    bool withdrawn = PQgetvalue(res, 0, 2)[0] == 't';
    bool requested = PQgetvalue(res, 0, 3)[0] == 't';
    PQclear(res);
    if (!withdrawn && !requested)
        return aipalq__fail(c, AIPALQ_EILLEGAL,
                            "task %s is %s; only pending, scheduled, retrying or running tasks "
                            "can be cancelled",
                            id, status);
    char outcome[32] = "";
    st = tell_redis(c, id, ns, queue, outcome, sizeof outcome);
    if (st != AIPALQ_OK && withdrawn) {
        /* Recorded as cancelled; a worker that still takes it will find the
         * row cancelled and drop it, and the reconciler cleans Redis. */
        if (state_out)
            *state_out = AIPALQ_STATE_CANCELLED;
        return aipalq__ok(c);
    }
    if (st != AIPALQ_OK)
        return st;
    aipalq_state final = withdrawn ? AIPALQ_STATE_CANCELLED : AIPALQ_STATE_RUNNING;
    if (requested && strcmp(outcome, "requested") != 0) {
        /* PostgreSQL said running but no worker holds a lease: nobody can
         * observe the request, so the task ends now. */
        st = aipalq__pg_exec(c, cancel_unleased_sql, 1, params, NULL);
        if (st != AIPALQ_OK)
            return st;
        final = AIPALQ_STATE_CANCELLED;
    }
    if (state_out)
        *state_out = final;
    return aipalq__ok(c);
}
