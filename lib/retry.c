/* Retry: queue a failed or cancelled task again, with a fresh budget. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The epoch moves on, so every token of the earlier deliveries is stale. */
static const char retry_sql[] =
    "WITH t AS (SELECT status FROM aipalq_tasks WHERE id = $1),"
    " u AS (UPDATE aipalq_tasks SET prev_status = status, status = 'pending', attempts = 0,"
    "       epoch = epoch + 1,"
    "       result = NULL, error_message = NULL, error_detail = NULL, progress = 0,"
    "       progress_message = NULL, cancel_requested = false, started_at = NULL,"
    "       completed_at = NULL, worker_id = NULL, run_at = NULL, updated_at = now()"
    "       WHERE id = $1 AND status = ANY($2::text[])"
    "       RETURNING id::text, type, queue, params::text, user_id, priority, max_retries, epoch,"
    "         namespace),"
    " ev AS (INSERT INTO aipalq_events (task_id, from_status, to_status, message)"
    "        SELECT $1, (SELECT status FROM t), 'pending', 'retried by request' FROM u)"
    " SELECT t.status, u.* FROM t LEFT JOIN u ON true";

aipalq_status aipalq_retry(aipalq_client *c, const char *id)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    if (!aipalq__uuid_valid(id))
        return aipalq__fail(c, AIPALQ_EBADID, "'%.40s' is not a task id (a UUID)", id ? id : "");
    /* As for enqueue: a malformed Redis URL is refused before the commit. */
    aipalq__redis_target target;
    char url_err[256];
    if (aipalq__redis_url_parse(c->redis_url, &target, url_err, sizeof url_err) != AIPALQ_OK)
        return aipalq__fail(c, AIPALQ_EBADURL, "%s", url_err);
    char states[128];
    aipalq__states_into_sql(AIPALQ_STATE_PENDING, AIPALQ__FINAL_STATES, states, sizeof states);
    const char *params[] = {id, states};
    PGresult *res;
    aipalq_status st = aipalq__pg_exec(c, retry_sql, 2, params, &res);
    if (st != AIPALQ_OK)
        return st;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return aipalq__fail(c, AIPALQ_ENOTFOUND, "no task with id %s", id);
    }
    if (PQgetisnull(res, 0, 1)) {
        st = aipalq__fail(c, AIPALQ_EILLEGAL,
                          "task %s is %s; only failed or cancelled tasks can be retried", id,
                          PQgetvalue(res, 0, 0));
        PQclear(res);
        return st;
    }
    aipalq__dispatch_item it = {
        .id = PQgetvalue(res, 0, 1),
        .type = PQgetvalue(res, 0, 2),
        .queue = PQgetvalue(res, 0, 3),
        .params = PQgetvalue(res, 0, 4),
        .user_id = PQgetisnull(res, 0, 5) ? NULL : PQgetvalue(res, 0, 5),
        .priority = atoi(PQgetvalue(res, 0, 6)),
        .max_retries = atoi(PQgetvalue(res, 0, 7)),
        .epoch = atoi(PQgetvalue(res, 0, 8)),
        .ns = PQgetvalue(res, 0, 9),
    };
    /* Committed; a failed dispatch is left to the reconciler. */
    if (aipalq__dispatch(c, &it, 1, false) != AIPALQ_OK) {
        char why[AIPALQ__ERRMSG_SIZE / 2];
        snprintf(why, sizeof why, "%.400s", c->errmsg);
        PQclear(res);
        aipalq__ok(c);
        snprintf(c->errmsg, sizeof c->errmsg, "retried; dispatch deferred to the reconciler (%s)",
                 why);
        return AIPALQ_OK;
    }
    PQclear(res);
    return aipalq__ok(c);
}
