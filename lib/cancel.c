/* Cancel: withdraw a waiting task, or ask a running one to stop.
 *
 * Redis is asked first, because it alone knows whether a worker holds the
 * task right now: a worker records a start a little after it begins (a short
 * task's start and outcome are one record), so PostgreSQL may still say
 * pending while a handler runs. A task Redis leases gets a request the worker
 * sees, whatever its row says. Otherwise Redis has withdrawn it (or never
 * held it) and PostgreSQL decides with a conditional update, so that a task
 * that finished meanwhile is not "cancelled". */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static const char cancel_sql[] =
    "WITH t AS (SELECT status, queue, namespace FROM aipalq_tasks WHERE id = $1),"
    " w AS (UPDATE aipalq_tasks SET prev_status = status, status = 'cancelled',"
    "       completed_at = now(), updated_at = now()"
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
    "WITH u AS (UPDATE aipalq_tasks SET prev_status = status, status = 'cancelled',"
    " completed_at = now(), updated_at = now() WHERE id = $1 AND status = 'running' RETURNING id)"
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

/* A task some worker leases: the request is recorded on its row unless it
 * has finished meanwhile. Returns false for a finished task. */
static const char request_sql[] =
    "UPDATE aipalq_tasks SET cancel_requested = true, updated_at = now()"
    " WHERE id = $1 AND status IN ('pending', 'scheduled', 'retrying', 'running') RETURNING id";

static const char where_sql[] = "SELECT status, queue, namespace FROM aipalq_tasks WHERE id = $1";

/* Where the task was dispatched (its queue in its namespace) and its status. */
static aipalq_status locate(aipalq_client *c, const char *id, char *status, size_t slen,
                            char *queue, size_t qlen, char *ns, size_t nlen)
{
    const char *params[] = {id};
    PGresult *res;
    aipalq_status st = aipalq__pg_exec(c, where_sql, 1, params, &res);
    if (st != AIPALQ_OK)
        return st;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return aipalq__fail(c, AIPALQ_ENOTFOUND, "no task with id %s", id);
    }
    snprintf(status, slen, "%s", PQgetvalue(res, 0, 0));
    snprintf(queue, qlen, "%s", PQgetvalue(res, 0, 1));
    snprintf(ns, nlen, "%s", PQgetvalue(res, 0, 2));
    PQclear(res);
    return AIPALQ_OK;
}

static aipalq_status not_cancellable(aipalq_client *c, const char *id, const char *status)
{
    return aipalq__fail(c, AIPALQ_EILLEGAL,
                        "task %s is %s; only pending, scheduled, retrying or running tasks "
                        "can be cancelled",
                        id, status);
}

/* Redis leases the task: a request for its worker. */
static aipalq_status request_stop(aipalq_client *c, const char *id, aipalq_state *state_out)
{
    const char *params[] = {id};
    PGresult *res;
    aipalq_status st = aipalq__pg_exec(c, request_sql, 1, params, &res);
    if (st != AIPALQ_OK)
        return st;
    bool recorded = PQntuples(res) == 1;
    PQclear(res);
    if (!recorded) /* finished between the two looks */
        return not_cancellable(c, id, "finished");
    if (state_out)
        *state_out = AIPALQ_STATE_RUNNING;
    return aipalq__ok(c);
}

aipalq_status aipalq_cancel(aipalq_client *c, const char *id, aipalq_state *state_out)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    if (!aipalq__uuid_valid(id))
        return aipalq__fail(c, AIPALQ_EBADID, "'%.40s' is not a task id (a UUID)", id ? id : "");
    char status[32], queue[AIPALQ_MAX_NAME_LEN + 1], ns[AIPALQ_MAX_NAME_LEN + 1];
    aipalq_status st = locate(c, id, status, sizeof status, queue, sizeof queue, ns, sizeof ns);
    if (st != AIPALQ_OK)
        return st;
    aipalq_state now;
    if (aipalq_state_parse(status, &now) == AIPALQ_OK && aipalq_state_is_final(now))
        return not_cancellable(c, id, status);
    char outcome[32] = "";
    aipalq_status redis_st = tell_redis(c, id, ns, queue, outcome, sizeof outcome);
    if (redis_st == AIPALQ_OK && strcmp(outcome, "requested") == 0)
        return request_stop(c, id, state_out);
    /* Redis withdrew it, never held it, or is down: PostgreSQL decides. */
    char waiting[128];
    aipalq__states_into_sql(AIPALQ_STATE_CANCELLED,
                            AIPALQ__ALL_STATES & ~AIPALQ__STATE_BIT(AIPALQ_STATE_RUNNING), waiting,
                            sizeof waiting);
    const char *params[] = {id, waiting};
    PGresult *res;
    st = aipalq__pg_exec(c, cancel_sql, 2, params, &res);
    if (st != AIPALQ_OK)
        return st;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return aipalq__fail(c, AIPALQ_ENOTFOUND, "no task with id %s", id);
    }
    snprintf(status, sizeof status, "%s", PQgetvalue(res, 0, 0));
    bool withdrawn = PQgetvalue(res, 0, 2)[0] == 't';
    bool requested = PQgetvalue(res, 0, 3)[0] == 't';
    PQclear(res);
    if (!withdrawn && !requested)
        return not_cancellable(c, id, status);
    if (redis_st != AIPALQ_OK && !withdrawn)
        return redis_st; /* running, and Redis cannot say who holds it */
    aipalq_state final = AIPALQ_STATE_CANCELLED;
    if (requested) {
        /* PostgreSQL says running but no worker leases it: nobody can
         * observe a request, so the task ends now. */
        st = aipalq__pg_exec(c, cancel_unleased_sql, 1, params, NULL);
        if (st != AIPALQ_OK)
            return st;
    }
    if (state_out)
        *state_out = final;
    return aipalq__ok(c);
}
