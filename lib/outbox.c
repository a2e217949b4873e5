/* The relay of the transactional outbox: tasks that callers enqueued inside
 * their own transactions become visible here only once those commit. The rows
 * are taken with SKIP LOCKED inside a transaction that commits only after
 * Redis accepted them, so concurrent relays share the work and a relay that
 * dies leaves its rows for the next. */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

static const char take_sql[] =
    "WITH o AS (DELETE FROM aipalq_outbox WHERE task_id IN"
    "   (SELECT o.task_id FROM aipalq_outbox o JOIN aipalq_tasks t ON t.id = o.task_id"
    "    WHERE t.namespace = $2 ORDER BY o.created_at LIMIT $1 FOR UPDATE OF o SKIP LOCKED)"
    "   RETURNING task_id)"
    " SELECT " AIPALQ__DISPATCH_COLUMNS("t.") " FROM aipalq_tasks t JOIN o ON t.id = o.task_id"
                                              " WHERE t.status IN " AIPALQ__ACTIVE_STATES_SQL;

aipalq_status aipalq_relay_outbox(aipalq_client *c, int max, int64_t *relayed_out)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    if (relayed_out)
        *relayed_out = 0;
    if (max < 1 || max > 10000)
        return aipalq__fail(c, AIPALQ_EINVAL, "max must be 1..10000");
    aipalq_status st = aipalq__redis_ensure(c);
    if (st == AIPALQ_OK)
        st = aipalq__pg_exec(c, "BEGIN", 0, NULL, NULL);
    if (st != AIPALQ_OK)
        return st;
    char limit[16];
    snprintf(limit, sizeof limit, "%d", max);
    const char *params[] = {limit, c->ns};
    PGresult *res = NULL;
    st = aipalq__pg_exec(c, take_sql, 2, params, &res);
    aipalq__dispatch_item *items = NULL;
    int rows = st == AIPALQ_OK ? PQntuples(res) : 0;
    if (st == AIPALQ_OK && !(items = calloc((size_t)rows + 1, sizeof *items)))
        st = aipalq__fail(c, AIPALQ_ENOMEM, "out of memory relaying");
    for (int i = 0; st == AIPALQ_OK && i < rows; i++)
        items[i] = aipalq__dispatch_item_from_row(res, i);
    if (st == AIPALQ_OK)
        st = aipalq__dispatch(c, items, (size_t)rows, false);
    if (st == AIPALQ_OK)
        st = aipalq__pg_exec(c, "COMMIT", 0, NULL, NULL);
    if (st != AIPALQ_OK && c->pg) {
        char msg[AIPALQ__ERRMSG_SIZE];
        snprintf(msg, sizeof msg, "%s", c->errmsg);
        aipalq__pg_exec(c, "ROLLBACK", 0, NULL, NULL);
        aipalq__fail(c, st, "%s", msg);
    }
    free(items);
    PQclear(res);
    if (st == AIPALQ_OK && relayed_out)
        *relayed_out = rows;
    return st == AIPALQ_OK ? aipalq__ok(c) : st;
}
