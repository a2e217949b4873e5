/* Dispatch: handing tasks that PostgreSQL holds to Redis. Used after an
 * enqueue commits, by the outbox relay, by retry and by the reconciler; the
 * dispatch script skips tasks Redis already holds, so repeating is safe. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "internal.h"

/* Tasks per script call: big enough to amortise the round trip, small enough
 * not to stall Redis for long. */
#define DISPATCH_CHUNK 500

/* The payload a worker receives: {"id","type","queue","priority",
 * "max_retries","user_id","params"}. params is spliced in as the raw text
 * that was validated at enqueue. */
static char *build_payload(const aipalq__dispatch_item *it)
{
    char *user = NULL;
    if (it->user_id) {
        cJSON *s = cJSON_CreateString(it->user_id);
        user = s ? cJSON_PrintUnformatted(s) : NULL;
        cJSON_Delete(s);
        if (!user)
            return NULL;
    }
    const char *params = it->params ? it->params : "{}";
    size_t n =
        strlen(params) + strlen(it->type) + strlen(it->queue) + (user ? strlen(user) : 4) + 160;
    char *out = malloc(n);
    if (out)
        snprintf(out, n,
                 "{\"id\":\"%s\",\"type\":\"%s\",\"queue\":\"%s\",\"priority\":%d,"
                 "\"max_retries\":%d,\"user_id\":%s,\"params\":%s}",
                 it->id, it->type, it->queue, it->priority, it->max_retries, user ? user : "null",
                 params);
    free(user);
    return out;
}

static bool push_item(aipalq__argv *args, const aipalq__dispatch_item *it)
{
    return aipalq__argv_push_str(args, it->id) &&
           aipalq__argv_push_owned(args, build_payload(it)) &&
           aipalq__argv_push_int(args, it->priority) &&
           aipalq__argv_push_int(args, it->run_at_ms) && aipalq__argv_push_int(args, it->epoch) &&
           aipalq__argv_push_int(args, it->attempts) &&
           aipalq__argv_push_int(args, it->max_retries);
}

aipalq__dispatch_item aipalq__dispatch_item_from_row(const PGresult *res, int row)
{
    return (aipalq__dispatch_item){
        .id = PQgetvalue(res, row, 0),
        .type = PQgetvalue(res, row, 1),
        .queue = PQgetvalue(res, row, 2),
        .params = PQgetvalue(res, row, 3),
        .user_id = PQgetisnull(res, row, 4) ? NULL : PQgetvalue(res, row, 4),
        .priority = atoi(PQgetvalue(res, row, 5)),
        .max_retries = atoi(PQgetvalue(res, row, 6)),
        .attempts = atoi(PQgetvalue(res, row, 7)),
        .epoch = atoi(PQgetvalue(res, row, 8)),
        .run_at_ms = aipalq__pg_ms(res, row, 9),
    };
}

typedef struct call {
    aipalq__argv args;
} call;

aipalq_status aipalq__dispatch(aipalq_client *c, const aipalq__dispatch_item *items, size_t n,
                               bool send_only)
{
    if (n == 0)
        return AIPALQ_OK;
    aipalq_status st = aipalq__redis_ensure(c);
    if (st != AIPALQ_OK)
        return st;
    bool *done = calloc(n, sizeof *done);
    call *calls = NULL;
    size_t ncalls = 0, cap = 0;
    if (!done)
        return aipalq__fail(c, AIPALQ_ENOMEM, "out of memory dispatching");
    int64_t now = aipalq__now_ms();
    /* Group by queue: one script call per queue (and chunk), all pipelined. */
    for (size_t i = 0; i < n && st == AIPALQ_OK; i++) {
        if (done[i])
            continue;
        const char *queue = items[i].queue;
        const char *ns = items[i].ns ? items[i].ns : c->ns;
        size_t in_call = DISPATCH_CHUNK;
        for (size_t j = i; j < n && st == AIPALQ_OK; j++) {
            if (done[j] || strcmp(items[j].queue, queue) != 0 ||
                strcmp(items[j].ns ? items[j].ns : c->ns, ns) != 0)
                continue;
            if (in_call == DISPATCH_CHUNK) {
                if (ncalls == cap) {
                    cap = cap ? cap * 2 : 4;
                    call *grown = realloc(calls, cap * sizeof *calls);
                    if (!grown) {
                        st = aipalq__fail(c, AIPALQ_ENOMEM, "out of memory dispatching");
                        break;
                    }
                    calls = grown;
                }
                aipalq__argv_init(&calls[ncalls].args);
                ncalls++;
                in_call = 0;
                if (!aipalq__push_queue_keys_ns(ns, queue, &calls[ncalls - 1].args) ||
                    !aipalq__argv_push_int(&calls[ncalls - 1].args, now))
                    st = aipalq__fail(c, AIPALQ_ENOMEM, "out of memory dispatching");
            }
            if (st == AIPALQ_OK && !push_item(&calls[ncalls - 1].args, &items[j]))
                st = aipalq__fail(c, AIPALQ_ENOMEM, "out of memory dispatching");
            done[j] = true;
            in_call++;
        }
    }
    aipalq__script_id script = n == 1 ? AIPALQ__SCRIPT_DISPATCH_ONE : AIPALQ__SCRIPT_DISPATCH;
    size_t appended = 0;
    for (; st == AIPALQ_OK && appended < ncalls; appended++)
        st = aipalq__script_append(c, script, AIPALQ__NQKEYS, &calls[appended].args);
    if (send_only && st == AIPALQ_OK) {
        int done_writing = 0;
        while (!done_writing && st == AIPALQ_OK)
            if (redisBufferWrite(c->redis, &done_writing) != REDIS_OK) {
                st = aipalq__fail(c, AIPALQ_EREDIS, "Redis: %s", c->redis->errstr);
                aipalq__redis_drop(c);
            }
        if (st == AIPALQ_OK)
            c->redis_unread += (int)appended;
        appended = 0;
    }
    /* Read every reply of what was sent, even after an error, so the
     * connection stays in step. */
    for (size_t k = 0; k < appended; k++) {
        redisReply *r = NULL;
        aipalq_status rs = aipalq__script_reply(c, script, AIPALQ__NQKEYS, &calls[k].args, &r);
        freeReplyObject(r);
        if (rs != AIPALQ_OK && st == AIPALQ_OK)
            st = rs;
        if (!c->redis)
            break;
    }
    for (size_t k = 0; k < ncalls; k++)
        aipalq__argv_free(&calls[k].args);
    free(calls);
    free(done);
    return st;
}
