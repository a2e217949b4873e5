/* The Redis connection: connect with timeouts, authenticate, select the db,
 * load the scripts, and run them (alone or pipelined). All Redis work of the
 * library goes through the scripts in redis_scripts.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static struct timeval ms_to_tv(int64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

void aipalq__redis_drop(aipalq_client *c)
{
    if (c && c->redis) {
        redisFree(c->redis);
        c->redis = NULL;
    }
    if (c) {
        c->scripts_loaded = false;
        c->redis_unread = 0;
    }
}

/* Runs a setup command; on failure records the error and drops the link. */
static aipalq_status setup_command(aipalq_client *c, int argc, const char **argv, const char *what)
{
    redisReply *r = redisCommandArgv(c->redis, argc, argv, NULL);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        aipalq_status st = aipalq__fail(c, AIPALQ_EREDIS, "Redis %s failed: %s", what,
                                        r ? r->str : c->redis->errstr);
        freeReplyObject(r);
        aipalq__redis_drop(c);
        return st;
    }
    freeReplyObject(r);
    return AIPALQ_OK;
}

static aipalq_status load_scripts(aipalq_client *c)
{
    for (int i = 0; i < AIPALQ__SCRIPT_COUNT; i++) {
        redisReply *r =
            redisCommand(c->redis, "SCRIPT LOAD %s", aipalq__script_source((aipalq__script_id)i));
        if (!r || r->type != REDIS_REPLY_STRING || r->len != 40) {
            aipalq_status st =
                aipalq__fail(c, AIPALQ_EREDIS, "Redis SCRIPT LOAD %s failed: %s",
                             aipalq__script_name((aipalq__script_id)i),
                             r && r->type == REDIS_REPLY_ERROR ? r->str : c->redis->errstr);
            freeReplyObject(r);
            aipalq__redis_drop(c);
            return st;
        }
        memcpy(c->script_sha[i], r->str, 41);
        freeReplyObject(r);
    }
    c->scripts_loaded = true;
    return AIPALQ_OK;
}

static bool is_noscript(const redisReply *r);

/* Reads the replies of dispatches sent ahead. A failed one needs nothing
 * here: its task is committed and the reconciler dispatches it. But a
 * NOSCRIPT reply means Redis forgot the scripts under this connection (SCRIPT
 * FLUSH): the link is dropped so that the next call reconnects and loads them
 * again, instead of every later sent-ahead dispatch failing the same way. */
static void read_unread(aipalq_client *c)
{
    bool lost_scripts = false;
    while (c->redis && c->redis_unread > 0) {
        void *reply = NULL;
        if (redisGetReply(c->redis, &reply) != REDIS_OK) {
            aipalq__redis_drop(c);
            break;
        }
        lost_scripts = lost_scripts || is_noscript(reply);
        freeReplyObject(reply);
        c->redis_unread--;
    }
    if (lost_scripts)
        aipalq__redis_drop(c);
}

aipalq_status aipalq__redis_ensure(aipalq_client *c)
{
    if (c->redis_unread > 0)
        read_unread(c);
    if (c->redis && c->redis->err == 0)
        return AIPALQ_OK;
    aipalq__redis_drop(c);
    aipalq__redis_target t;
    char err[256];
    if (aipalq__redis_url_parse(c->redis_url, &t, err, sizeof err) != AIPALQ_OK)
        return aipalq__fail(c, AIPALQ_EBADURL, "%s", err);
    struct timeval tv = ms_to_tv(c->connect_timeout_ms);
    aipalq__connect_begin();
    c->redis = t.unix_socket ? redisConnectUnixWithTimeout(t.host, tv)
                             : redisConnectWithTimeout(t.host, t.port, tv);
    aipalq__connect_end();
    if (!c->redis)
        return aipalq__fail(c, AIPALQ_ENOMEM, "out of memory connecting to Redis");
    if (c->redis->err) {
        aipalq_status st = aipalq__fail(c, AIPALQ_EREDIS, "cannot connect to Redis at %s:%d: %s",
                                        t.host, t.port, c->redis->errstr);
        aipalq__redis_drop(c);
        return st;
    }
    redisSetTimeout(c->redis, ms_to_tv(c->command_timeout_ms));
    redisEnableKeepAlive(c->redis);
    aipalq_status st = AIPALQ_OK;
    if (t.password[0]) {
        const char *auth_user[] = {"AUTH", t.user, t.password};
        const char *auth[] = {"AUTH", t.password};
        st = t.user[0] ? setup_command(c, 3, auth_user, "AUTH") : setup_command(c, 2, auth, "AUTH");
    }
    if (st == AIPALQ_OK && t.db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", t.db);
        const char *sel[] = {"SELECT", db};
        st = setup_command(c, 2, sel, "SELECT");
    }
    if (st == AIPALQ_OK)
        st = load_scripts(c);
    return st;
}

/* ------------------------------------------------------------ argv */

void aipalq__argv_init(aipalq__argv *a)
{
    memset(a, 0, sizeof *a);
}

void aipalq__argv_free(aipalq__argv *a)
{
    for (size_t i = 0; i < a->nowned; i++)
        free(a->owned[i]);
    free(a->owned);
    free(a->argv);
    free(a->lens);
    memset(a, 0, sizeof *a);
}

bool aipalq__argv_push(aipalq__argv *a, const char *s, size_t len)
{
    if (!s)
        return false;
    if (a->argc == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 32;
        const char **argv = realloc(a->argv, cap * sizeof *argv);
        if (!argv)
            return false;
        a->argv = argv;
        size_t *lens = realloc(a->lens, cap * sizeof *lens);
        if (!lens)
            return false;
        a->lens = lens;
        a->cap = cap;
    }
    a->argv[a->argc] = s;
    a->lens[a->argc] = len;
    a->argc++;
    return true;
}

bool aipalq__argv_push_str(aipalq__argv *a, const char *s)
{
    return s && aipalq__argv_push(a, s, strlen(s));
}

bool aipalq__argv_push_owned(aipalq__argv *a, char *s)
{
    if (!s)
        return false;
    if (a->nowned == a->owned_cap) {
        size_t cap = a->owned_cap ? a->owned_cap * 2 : 16;
        char **owned = realloc(a->owned, cap * sizeof *owned);
        if (!owned) {
            free(s);
            return false;
        }
        a->owned = owned;
        a->owned_cap = cap;
    }
    a->owned[a->nowned++] = s;
    return aipalq__argv_push_str(a, s);
}

bool aipalq__argv_push_int(aipalq__argv *a, int64_t v)
{
    char *s = malloc(24);
    if (!s)
        return false;
    snprintf(s, 24, "%lld", (long long)v);
    return aipalq__argv_push_owned(a, s);
}

/* ------------------------------------------------------------ scripts */

/* EVALSHA/EVAL argument vector: command, sha-or-source, nkeys, args... */
static aipalq__argv *build_eval(const aipalq_client *c, aipalq__script_id id, int nkeys,
                                const aipalq__argv *args, bool by_sha, aipalq__argv *out,
                                char *nkeys_buf)
{
    aipalq__argv_init(out);
    snprintf(nkeys_buf, 16, "%d", nkeys);
    bool ok = aipalq__argv_push_str(out, by_sha ? "EVALSHA" : "EVAL") &&
              aipalq__argv_push_str(out, by_sha ? c->script_sha[id] : aipalq__script_source(id)) &&
              aipalq__argv_push_str(out, nkeys_buf);
    for (size_t i = 0; ok && i < args->argc; i++)
        ok = aipalq__argv_push(out, args->argv[i], args->lens[i]);
    if (!ok) {
        aipalq__argv_free(out);
        return NULL;
    }
    return out;
}

static aipalq_status reply_status(aipalq_client *c, aipalq__script_id id, redisReply *r)
{
    if (!r) {
        /* hiredis reports a command timeout as an I/O error (EAGAIN). */
        bool timed_out =
            c->redis->err == REDIS_ERR_IO && (strstr(c->redis->errstr, "temporarily unavailable") ||
                                              strstr(c->redis->errstr, "timed out"));
        aipalq_status st = aipalq__fail(c, timed_out ? AIPALQ_ETIMEOUT : AIPALQ_EREDIS, "Redis: %s",
                                        c->redis->errstr);
        aipalq__redis_drop(c);
        return st;
    }
    if (r->type == REDIS_REPLY_ERROR)
        return aipalq__fail(c, AIPALQ_EREDIS, "Redis script %s: %s", aipalq__script_name(id),
                            r->str);
    return AIPALQ_OK;
}

static bool is_noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

static aipalq_status call_eval(aipalq_client *c, aipalq__script_id id, int nkeys,
                               const aipalq__argv *args, bool by_sha, redisReply **reply)
{
    aipalq__argv cmd;
    char nk[16];
    if (!build_eval(c, id, nkeys, args, by_sha, &cmd, nk))
        return aipalq__fail(c, AIPALQ_ENOMEM, "out of memory building a Redis call");
    redisReply *r = redisCommandArgv(c->redis, (int)cmd.argc, cmd.argv, cmd.lens);
    aipalq__argv_free(&cmd);
    if (by_sha && is_noscript(r)) {
        /* The script cache was flushed (restart, failover, SCRIPT FLUSH):
         * run from source, which also caches it again. */
        freeReplyObject(r);
        return call_eval(c, id, nkeys, args, false, reply);
    }
    aipalq_status st = reply_status(c, id, r);
    if (st != AIPALQ_OK) {
        freeReplyObject(r);
        return st;
    }
    *reply = r;
    return AIPALQ_OK;
}

aipalq_status aipalq__script_call(aipalq_client *c, aipalq__script_id id, int nkeys,
                                  const aipalq__argv *args, redisReply **reply)
{
    *reply = NULL;
    aipalq_status st = aipalq__redis_ensure(c);
    if (st != AIPALQ_OK)
        return st;
    return call_eval(c, id, nkeys, args, true, reply);
}

aipalq_status aipalq__script_append(aipalq_client *c, aipalq__script_id id, int nkeys,
                                    const aipalq__argv *args)
{
    aipalq_status st = aipalq__redis_ensure(c);
    if (st != AIPALQ_OK)
        return st;
    aipalq__argv cmd;
    char nk[16];
    if (!build_eval(c, id, nkeys, args, true, &cmd, nk))
        return aipalq__fail(c, AIPALQ_ENOMEM, "out of memory building a Redis call");
    int rc = redisAppendCommandArgv(c->redis, (int)cmd.argc, cmd.argv, cmd.lens);
    aipalq__argv_free(&cmd);
    if (rc != REDIS_OK)
        return aipalq__fail(c, AIPALQ_ENOMEM, "out of memory queueing a Redis call");
    return AIPALQ_OK;
}

aipalq_status aipalq__script_reply(aipalq_client *c, aipalq__script_id id, int nkeys,
                                   const aipalq__argv *args, redisReply **reply)
{
    *reply = NULL;
    if (!c->redis)
        return aipalq__fail(c, AIPALQ_EREDIS, "Redis connection lost mid-pipeline");
    void *raw = NULL;
    if (redisGetReply(c->redis, &raw) != REDIS_OK)
        raw = NULL;
    redisReply *r = raw;
    if (is_noscript(r)) {
        /* Scripts are loaded on every connect, so this means SCRIPT FLUSH on a
         * live link. The rest of the pipeline is unusable: start afresh on a
         * new link (which reloads the scripts) and let the caller retry; work
         * already committed to PostgreSQL is redone by the reconciler. */
        freeReplyObject(r);
        (void)nkeys;
        (void)args;
        aipalq__redis_drop(c);
        return aipalq__fail(c, AIPALQ_EREDIS, "Redis lost its script cache mid-pipeline");
    }
    aipalq_status st = reply_status(c, id, r);
    if (st != AIPALQ_OK) {
        freeReplyObject(r);
        return st;
    }
    *reply = r;
    return AIPALQ_OK;
}

static char *qkey_ns(const char *ns, const char *queue, const char *suffix)
{
    size_t n = strlen(ns) + strlen(queue) + strlen(suffix) + 6;
    char *k = malloc(n);
    if (k)
        snprintf(k, n, "%s:{%s}:%s", ns, queue, suffix);
    return k;
}

char *aipalq__qkey(const aipalq_client *c, const char *queue, const char *suffix)
{
    return qkey_ns(c->ns, queue, suffix);
}

bool aipalq__push_queue_keys(const aipalq_client *c, const char *queue, aipalq__argv *args)
{
    return aipalq__push_queue_keys_ns(c->ns, queue, args);
}

bool aipalq__push_queue_keys_ns(const char *ns, const char *queue, aipalq__argv *args)
{
    static const char *const suffix[AIPALQ__NQKEYS] = {
        [AIPALQ__K_READY] = "ready",   [AIPALQ__K_SCHED] = "sched",
        [AIPALQ__K_LEASES] = "leases", [AIPALQ__K_JOB] = "job",
        [AIPALQ__K_META] = "meta",     [AIPALQ__K_CANCEL] = "cancel",
        [AIPALQ__K_SEQ] = "seq",       [AIPALQ__K_WAKE] = "wake",
        [AIPALQ__K_DONE] = "done",     [AIPALQ__K_DONE_EXP] = "done_exp",
    };
    for (int i = 0; i < AIPALQ__NQKEYS; i++)
        if (!aipalq__argv_push_owned(args, qkey_ns(ns, queue, suffix[i])))
            return false;
    return true;
}
