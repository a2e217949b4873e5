/* The client handle: configuration, connections and the last error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

bool aipalq__client_ok(const aipalq_client *c)
{
    return c && c->magic == AIPALQ__CLIENT_MAGIC;
}

aipalq_status aipalq__fail(aipalq_client *c, aipalq_status st, const char *fmt, ...)
{
    if (!aipalq__client_ok(c))
        return st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
    c->last_status = st;
    return st;
}

aipalq_status aipalq__ok(aipalq_client *c)
{
    c->last_status = AIPALQ_OK;
    c->errmsg[0] = '\0';
    return AIPALQ_OK;
}

aipalq_client *aipalq_client_new(const char *redis_url, const char *database_url)
{
    aipalq_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (!redis_url)
        redis_url = getenv("AIPALQ_REDIS_URL");
    if (!redis_url || !*redis_url)
        redis_url = "redis://127.0.0.1:6379/0";
    if (!database_url)
        database_url = getenv("AIPALQ_DATABASE_URL");
    if (!database_url)
        database_url = "";
    c->redis_url = aipalq__strdup(redis_url);
    c->database_url = aipalq__strdup(database_url);
    if (!c->redis_url || !c->database_url) {
        free(c->redis_url);
        free(c->database_url);
        free(c);
        return NULL;
    }
    strcpy(c->ns, "aipalq");
    c->connect_timeout_ms = 5000;
    c->command_timeout_ms = 10000;
    c->magic = AIPALQ__CLIENT_MAGIC;
    return c;
}

void aipalq_client_free(aipalq_client *c)
{
    if (!aipalq__client_ok(c))
        return;
    /* Reads the replies of dispatches sent ahead; never connects just to
     * free (a client that did not use Redis, or lost it, would otherwise
     * block here for the connect timeout). */
    if (c->redis && c->redis_unread > 0)
        aipalq__redis_ensure(c);
    aipalq__redis_drop(c);
    if (c->pg)
        PQfinish(c->pg);
    aipalq__types_free(&c->types);
    aipalq__list_totals_clear(c);
    free(c->redis_url);
    free(c->database_url);
    c->magic = AIPALQ__DEAD_MAGIC;
    free(c);
}

const char *aipalq_client_errmsg(const aipalq_client *c)
{
    return aipalq__client_ok(c) ? c->errmsg : "invalid client handle";
}

aipalq_status aipalq_client_errcode(const aipalq_client *c)
{
    return aipalq__client_ok(c) ? c->last_status : AIPALQ_EMISUSE;
}

aipalq_status aipalq_client_set_namespace(aipalq_client *c, const char *ns)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    if (!aipalq__valid_name(ns))
        return aipalq__fail(c, AIPALQ_EINVAL, "namespace must be 1-64 of [A-Za-z0-9_.-]");
    strcpy(c->ns, ns);
    return aipalq__ok(c);
}

aipalq_status aipalq_client_set_timeouts(aipalq_client *c, int64_t connect_ms, int64_t command_ms)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    if (connect_ms < 1 || command_ms < 1)
        return aipalq__fail(c, AIPALQ_EINVAL, "timeouts must be at least 1 ms");
    c->connect_timeout_ms = connect_ms;
    c->command_timeout_ms = command_ms;
    aipalq__redis_drop(c); /* the new timeouts apply from the next connection */
    return aipalq__ok(c);
}

aipalq_status aipalq_client_set_synchronous_commit(aipalq_client *c, int on)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    c->async_commit = !on;
    if (c->pg) {
        PQfinish(c->pg); /* the setting is part of the connection */
        c->pg = NULL;
        c->pg_prepared = 0;
        c->pg_list_prepared = 0;
    }
    return aipalq__ok(c);
}

aipalq_status aipalq_client_set_list_total_max_age(aipalq_client *c, int64_t max_age_ms)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    if (max_age_ms < 0)
        return aipalq__fail(c, AIPALQ_EINVAL, "the list total's max age must be >= 0 ms");
    c->list_total_max_age_ms = max_age_ms;
    if (max_age_ms == 0)
        aipalq__list_totals_clear(c);
    return aipalq__ok(c);
}

aipalq_status aipalq_client_connect(aipalq_client *c)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    aipalq_status st = aipalq__redis_ensure(c);
    if (st == AIPALQ_OK)
        st = aipalq__pg_ensure(c);
    return st == AIPALQ_OK ? aipalq__ok(c) : st;
}

aipalq_status aipalq_ping(aipalq_client *c, int *redis_ok, int *pg_ok)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    aipalq_status rst = aipalq__redis_ensure(c);
    if (rst == AIPALQ_OK) {
        redisReply *r = redisCommand(c->redis, "PING");
        if (!r) {
            rst = aipalq__fail(c, AIPALQ_EREDIS, "Redis: %s", c->redis->errstr);
            aipalq__redis_drop(c);
        }
        freeReplyObject(r);
    }
    char rmsg[AIPALQ__ERRMSG_SIZE];
    snprintf(rmsg, sizeof rmsg, "%s", c->errmsg);
    aipalq_status pst = aipalq__pg_exec(c, "SELECT 1", 0, NULL, NULL);
    if (redis_ok)
        *redis_ok = rst == AIPALQ_OK;
    if (pg_ok)
        *pg_ok = pst == AIPALQ_OK;
    if (rst != AIPALQ_OK)
        return aipalq__fail(c, rst, "%s", rmsg);
    return pst == AIPALQ_OK ? aipalq__ok(c) : pst;
}
