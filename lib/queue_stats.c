/* What is in the queues: depths from Redis, counts by state from
 * PostgreSQL. */
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "internal.h"

aipalq_status aipalq_queue_depth(aipalq_client *c, const char *queue, int64_t *ready,
                                 int64_t *scheduled, int64_t *leased)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    if (!aipalq__valid_name(queue))
        return aipalq__fail(c, AIPALQ_EQUEUE, "invalid queue name");
    aipalq__argv args;
    aipalq__argv_init(&args);
    redisReply *r = NULL;
    aipalq_status st = aipalq__push_queue_keys(c, queue, &args)
                           ? aipalq__script_call(c, AIPALQ__SCRIPT_DEPTH, AIPALQ__NQKEYS, &args, &r)
                           : aipalq__fail(c, AIPALQ_ENOMEM, "out of memory");
    aipalq__argv_free(&args);
    if (st != AIPALQ_OK)
        return st;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3) {
        freeReplyObject(r);
        return aipalq__fail(c, AIPALQ_EREDIS, "unexpected reply from the depth script");
    }
    if (ready)
        *ready = r->element[0]->integer;
    if (scheduled)
        *scheduled = r->element[1]->integer;
    if (leased)
        *leased = r->element[2]->integer;
    freeReplyObject(r);
    return aipalq__ok(c);
}

/* Unfinished tasks are counted exactly (a small partial index); finished ones
 * over the last hour only, which is what a dashboard shows and stays cheap
 * however many million rows the table holds. */
static const char counts_sql[] =
    "SELECT queue, status, count(*) FROM aipalq_tasks"
    " WHERE status IN " AIPALQ__ACTIVE_STATES_SQL " AND namespace = $1 GROUP BY 1, 2"
    " UNION ALL"
    " SELECT queue, status || '_last_hour', count(*) FROM aipalq_tasks"
    " WHERE status IN ('completed', 'failed', 'cancelled') AND namespace = $1"
    "   AND id >= aipalq_uuid_floor(now() - interval '1 hour') GROUP BY 1, 2";

aipalq_status aipalq_state_counts_json(aipalq_client *c, char **json_out)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    if (!json_out)
        return aipalq__fail(c, AIPALQ_EINVAL, "json_out must not be NULL");
    *json_out = NULL;
    PGresult *res;
    const char *params[] = {c->ns};
    aipalq_status st = aipalq__pg_exec(c, counts_sql, 1, params, &res);
    if (st != AIPALQ_OK)
        return st;
    cJSON *all = cJSON_CreateObject();
    for (int i = 0; all && i < PQntuples(res); i++) {
        const char *queue = PQgetvalue(res, i, 0);
        cJSON *q = cJSON_GetObjectItemCaseSensitive(all, queue);
        if (!q)
            q = cJSON_AddObjectToObject(all, queue);
        if (q)
            cJSON_AddNumberToObject(q, PQgetvalue(res, i, 1),
                                    (double)strtoll(PQgetvalue(res, i, 2), NULL, 10));
    }
    PQclear(res);
    *json_out = all ? cJSON_PrintUnformatted(all) : NULL;
    cJSON_Delete(all);
    return *json_out ? aipalq__ok(c) : aipalq__fail(c, AIPALQ_ENOMEM, "out of memory");
}
