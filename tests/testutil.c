/* Helpers shared by the libaipalq test programs; see testutil.h. */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

void tu_require_services(void)
{
    const char *r = getenv("AIPALQ_REDIS_URL");
    const char *p = getenv("AIPALQ_DATABASE_URL");
    if (r && *r && p && *p)
        return;
    fprintf(stderr,
            "FAIL: this integration test needs a Redis and a PostgreSQL server, but "
            "AIPALQ_REDIS_URL and/or AIPALQ_DATABASE_URL are not set.\n"
            "Start private ones with:  source scripts/services.sh; services_start /tmp/aipalq-svc\n"
            "(or run the whole suite with scripts/test.sh).\n");
    exit(1);
}

int tu_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

const char *tu_unique(const char *prefix, char *buf, size_t len)
{
    static unsigned counter;
    snprintf(buf, len, "%s%ldx%u", prefix, (long)getpid(), ++counter);
    return buf;
}

int tu_contains(const char *s, const char *needle)
{
    return s && needle && strstr(s, needle) != NULL;
}

/* ------------------------------------------------------------ PostgreSQL */

static char *scratch_url;
static char *original_url;

char *tu_url_with_db(const char *url, const char *dbname)
{
    size_t n = strlen(url) + strlen(dbname) + 16;
    char *out = malloc(n); /* also used outside tests: no ck_assert here */
    if (!out)
        abort();
    const char *scheme = strstr(url, "://");
    if (!scheme) { /* a conninfo string: a later keyword overrides an earlier one */
        snprintf(out, n, "%s dbname=%s", url, dbname);
        return out;
    }
    const char *rest = scheme + 3;
    const char *cut = rest + strcspn(rest, "/?");
    const char *tail = cut;
    if (*cut == '/')
        tail = cut + 1 + strcspn(cut + 1, "?");
    snprintf(out, n, "%.*s/%s%s", (int)(cut - url), url, dbname, tail);
    return out;
}

const char *tu_db_url(void)
{
    return getenv("AIPALQ_DATABASE_URL");
}

static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGconn *connect_or_die(const char *url)
{
    PGconn *pg = PQconnectdb(url);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "FAIL: cannot connect to PostgreSQL at %s: %s", url, PQerrorMessage(pg));
        PQfinish(pg);
        exit(1);
    }
    PQsetNoticeProcessor(pg, quiet_notice, NULL);
    return pg;
}

char *tu_db_create(const char *tag)
{
    tu_require_services();
    const char *base = original_url ? original_url : getenv("AIPALQ_DATABASE_URL");
    char name[64];
    snprintf(name, sizeof name, "aipalq_t_%s_%ld", tag, (long)getpid());
    PGconn *pg = connect_or_die(base);
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    PQclear(PQexec(pg, sql));
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    PGresult *res = PQexec(pg, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "FAIL: cannot create the scratch database %s: %s", name,
                PQresultErrorMessage(res));
        exit(1);
    }
    PQclear(res);
    PQfinish(pg);
    return tu_url_with_db(base, name);
}

void tu_db_drop(char *url)
{
    if (!url)
        return;
    const char *base = original_url ? original_url : getenv("AIPALQ_DATABASE_URL");
    /* The name is what follows the last '/' (up to a '?'), or the dbname
     * keyword that tu_url_with_db appended. */
    const char *p = strstr(url, "dbname=");
    p = p ? p + 7 : strrchr(url, '/') + 1;
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(p, "? "), p);
    PGconn *pg = connect_or_die(base);
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    PGresult *res = PQexec(pg, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fprintf(stderr, "warning: cannot drop %s: %s", name, PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(pg);
    free(url);
}

void tu_scratch_db_begin(const char *tag)
{
    tu_require_services();
    scratch_url = tu_db_create(tag);
    original_url = strdup(getenv("AIPALQ_DATABASE_URL"));
    setenv("AIPALQ_DATABASE_URL", scratch_url, 1);
    aipalq_client *c = aipalq_client_new(NULL, NULL);
    if (!c || aipalq_migrate(c) != AIPALQ_OK) {
        fprintf(stderr, "FAIL: cannot migrate the scratch database %s: %s\n", scratch_url,
                aipalq_client_errmsg(c));
        exit(1);
    }
    aipalq_client_free(c);
}

void tu_scratch_db_end(void)
{
    if (!original_url)
        return;
    char *url = scratch_url;
    scratch_url = NULL;
    tu_db_drop(url);
    setenv("AIPALQ_DATABASE_URL", original_url, 1);
    free(original_url);
    original_url = NULL;
}

static PGresult *pg_query(const char *fmt, va_list ap)
{
    char *sql = NULL;
    ck_assert_int_ge(vasprintf(&sql, fmt, ap), 0);
    PGconn *pg = connect_or_die(tu_db_url());
    PGresult *res = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
        PQclear(res);
        PQfinish(pg);
        ck_abort_msg("SQL failed: %.300s: %s", sql, msg);
    }
    PQfinish(pg);
    free(sql);
    return res;
}

void tu_pg_exec(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PGresult *res = pg_query(fmt, ap);
    va_end(ap);
    PQclear(res);
}

long long tu_pg_int(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PGresult *res = pg_query(fmt, ap);
    va_end(ap);
    ck_assert_msg(PQntuples(res) == 1 && PQnfields(res) == 1, "expected one value");
    long long v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

char *tu_pg_text(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PGresult *res = pg_query(fmt, ap);
    va_end(ap);
    ck_assert_msg(PQntuples(res) == 1 && PQnfields(res) == 1, "expected one value");
    char *v = PQgetisnull(res, 0, 0) ? NULL : strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

void tu_pg_truncate(void)
{
    tu_pg_exec("TRUNCATE aipalq_tasks, aipalq_outbox, aipalq_idempotency, aipalq_events");
}

/* ----------------------------------------------------------------- Redis */

/* Connects to AIPALQ_REDIS_URL: redis://[[user]:password@]host[:port][/db]. */
static redisContext *redis_connect(void)
{
    const char *url = getenv("AIPALQ_REDIS_URL");
    ck_assert_msg(url && strncmp(url, "redis://", 8) == 0, "AIPALQ_REDIS_URL must be redis://");
    char buf[512];
    snprintf(buf, sizeof buf, "%s", url + 8);
    char *host = buf, *pass = NULL;
    char *at = strrchr(buf, '@');
    if (at) {
        *at = '\0';
        host = at + 1;
        pass = strchr(buf, ':') ? strchr(buf, ':') + 1 : buf;
    }
    int db = 0, port = 6379;
    char *slash = strchr(host, '/');
    if (slash) {
        *slash = '\0';
        db = atoi(slash + 1);
    }
    char *colon = strrchr(host, ':');
    if (colon && !strchr(host, ']')) {
        *colon = '\0';
        port = atoi(colon + 1);
    }
    redisContext *r = redisConnect(host, port);
    ck_assert_msg(r && !r->err, "cannot connect to Redis %s: %s", url, r ? r->errstr : "?");
    if (pass && *pass) {
        redisReply *rep = redisCommand(r, "AUTH %s", pass);
        ck_assert_msg(rep && rep->type != REDIS_REPLY_ERROR, "Redis AUTH failed");
        freeReplyObject(rep);
    }
    if (db) {
        redisReply *rep = redisCommand(r, "SELECT %d", db);
        ck_assert_msg(rep && rep->type != REDIS_REPLY_ERROR, "Redis SELECT failed");
        freeReplyObject(rep);
    }
    return r;
}

static redisReply *redis_vcommand(const char *fmt, va_list ap)
{
    redisContext *r = redis_connect();
    redisReply *rep = redisvCommand(r, fmt, ap);
    ck_assert_msg(rep && rep->type != REDIS_REPLY_ERROR, "Redis command %s failed: %s", fmt,
                  rep ? rep->str : r->errstr);
    redisFree(r);
    return rep;
}

long long tu_redis_int(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redis_vcommand(fmt, ap);
    va_end(ap);
    long long v = rep->type == REDIS_REPLY_ARRAY ? (long long)rep->elements
                  : rep->type == REDIS_REPLY_NIL ? 0
                                                 : rep->integer;
    freeReplyObject(rep);
    return v;
}

static redisReply *redis_command(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redis_vcommand(fmt, ap);
    va_end(ap);
    return rep;
}

char **tu_redis_zrange(const char *key, size_t *n)
{
    redisReply *rep = redis_command("ZRANGE %s 0 -1", key);
    ck_assert_int_eq(rep->type, REDIS_REPLY_ARRAY);
    *n = rep->elements;
    char **v = calloc(rep->elements + 1, sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (size_t i = 0; i < rep->elements; i++)
        v[i] = strdup(rep->element[i]->str);
    freeReplyObject(rep);
    return v;
}

char *tu_redis_hget(const char *key, const char *field)
{
    redisReply *rep = redis_command("HGET %s %s", key, field);
    char *v = rep->type == REDIS_REPLY_STRING ? strdup(rep->str) : NULL;
    freeReplyObject(rep);
    return v;
}

long long tu_redis_ns_keys(const char *ns)
{
    return tu_redis_int("KEYS %s:*", ns);
}

void tu_redis_ns_del(const char *ns)
{
    redisReply *rep = redis_command("KEYS %s:*", ns);
    for (size_t i = 0; i < rep->elements; i++)
        freeReplyObject(redis_command("DEL %s", rep->element[i]->str));
    freeReplyObject(rep);
}

void tu_strv_free(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* ----------------------------------------------------------------- client */

aipalq_client *tu_client(const char *ns, const char *queue)
{
    aipalq_client *c = aipalq_client_new(NULL, NULL);
    ck_assert_ptr_nonnull(c);
    ASSERT_OK(c, aipalq_client_set_namespace(c, ns));
    ASSERT_OK(c, aipalq_type_define(c, "t.a", queue));
    ASSERT_OK(c, aipalq_type_define(c, "t.b", queue));
    return c;
}

void tu_depth(aipalq_client *c, const char *queue, int64_t *ready, int64_t *scheduled,
              int64_t *leased)
{
    int64_t r = -1, s = -1, l = -1;
    ASSERT_OK(c, aipalq_queue_depth(c, queue, &r, &s, &l));
    if (ready)
        *ready = r;
    if (scheduled)
        *scheduled = s;
    if (leased)
        *leased = l;
}

int tu_closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}
