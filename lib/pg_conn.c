/* The PostgreSQL connection: connect with timeouts and keepalives, run
 * parameterised statements, drop a broken link so the next call reconnects. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* libpq prints notices to stderr by default; a library must not. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static void pg_drop(aipalq_client *c)
{
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    c->pg_prepared = 0;
    c->pg_list_prepared = 0;
}

/* libpq ends messages with a newline; error text reads better without. */
static const char *trim_message(char *buf, size_t len, const char *msg)
{
    snprintf(buf, len, "%s", msg ? msg : "");
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return buf;
}

/* libpq quotes a URI it cannot parse in full, password included, and client
 * error messages end up in logs and HTTP error bodies: every occurrence of
 * the URL's password in msg (msglen bytes) becomes "***". */
static void redact_password(char *msg, size_t msglen, const char *url)
{
    char pw[256] = "";
    const char *scheme = strstr(url, "://");
    if (scheme) { /* scheme://user:password@host... (the last '@' before ?/#) */
        const char *auth = scheme + 3, *end = auth + strcspn(auth, "?#"), *at = NULL;
        for (const char *p = auth; p < end; p++)
            if (*p == '@')
                at = p;
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon)
            snprintf(pw, sizeof pw, "%.*s", (int)(at - colon - 1), colon + 1);
    } else if ((scheme = strstr(url, "password"))) { /* conninfo: password = value */
        const char *p = scheme + 8 + strspn(scheme + 8, " \t");
        if (*p == '=') {
            p += 1 + strspn(p + 1, " \t");
            bool quoted = *p == '\'';
            p += quoted;
            snprintf(pw, sizeof pw, "%.*s", (int)strcspn(p, quoted ? "'" : " \t\n"), p);
        }
    }
    /* An unescaped '/' ends the authority for libpq, which then reads the
     * password's first part as a port and quotes it: mask that part too. */
    size_t n = strlen(pw), head = strcspn(pw, "/");
    if (head < n && head >= 4) {
        char part[256];
        snprintf(part, sizeof part, "%.*s", (int)head, pw);
        char url_part[300];
        snprintf(url_part, sizeof url_part, "postgresql://x:%s@", part);
        redact_password(msg, msglen, url_part);
    }
    if (n == 0)
        return;
    char out[AIPALQ__ERRMSG_SIZE];
    size_t o = 0;
    for (const char *p = msg; *p && o + 4 < sizeof out;) {
        if (strncmp(p, pw, n) == 0) {
            memcpy(out + o, "***", 3);
            o += 3;
            p += n;
        } else {
            out[o++] = *p++;
        }
    }
    if (o >= msglen)
        o = msglen - 1;
    memcpy(msg, out, o);
    msg[o] = '\0';
}

aipalq_status aipalq__pg_ensure(aipalq_client *c)
{
    if (c->pg && PQstatus(c->pg) == CONNECTION_OK)
        return AIPALQ_OK;
    pg_drop(c);
    /* A URL or conninfo string libpq cannot even parse is the caller's
     * mistake (AIPALQ_EBADURL), whatever words libpq's message uses. */
    char *perr = NULL;
    PQconninfoOption *parsed = PQconninfoParse(c->database_url, &perr);
    if (!parsed) {
        char msg[AIPALQ__ERRMSG_SIZE - 64];
        trim_message(msg, sizeof msg, perr ? perr : "out of memory");
        PQfreemem(perr);
        redact_password(msg, sizeof msg, c->database_url);
        return aipalq__fail(c, AIPALQ_EBADURL, "malformed PostgreSQL URL: %s", msg);
    }
    /* Our settings go after the URL's own options, which are kept:
     * jit = off because JIT compiles per execution, never cached with a plan,
     * and the queue's statements are short while the planner's cost estimates
     * grow with the table: at a million rows aipalq_record() was JIT-compiled
     * on every call, seconds of LLVM work for a millisecond of execution. */
    char options[512];
    const char *url_options = NULL;
    for (PQconninfoOption *o = parsed; o->keyword; o++)
        if (strcmp(o->keyword, "options") == 0 && o->val)
            url_options = o->val;
    int olen =
        snprintf(options, sizeof options, "%s%s-c jit=off%s", url_options ? url_options : "",
                 url_options ? " " : "", c->async_commit ? " -c synchronous_commit=off" : "");
    PQconninfoFree(parsed);
    if (olen < 0 || (size_t)olen >= sizeof options)
        return aipalq__fail(c, AIPALQ_EBADURL, "PostgreSQL URL: options too long");
    char timeout[24];
    /* libpq counts whole seconds, with 1 treated as 2; round up. */
    int64_t secs = (c->connect_timeout_ms + 999) / 1000;
    snprintf(timeout, sizeof timeout, "%lld", (long long)(secs < 2 ? 2 : secs));
    /* Settings before "dbname" are defaults that the URL may override. */
    const char *keys[] = {"connect_timeout",
                          "application_name",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "dbname",
                          "options",
                          NULL};
    const char *vals[] = {timeout, "libaipalq",     "1",     "10", "5",
                          "3",     c->database_url, options, NULL};
    aipalq__connect_begin();
    c->pg = PQconnectdbParams(keys, vals, 1);
    aipalq__connect_end();
    if (!c->pg)
        return aipalq__fail(c, AIPALQ_ENOMEM, "out of memory connecting to PostgreSQL");
    if (PQstatus(c->pg) != CONNECTION_OK) {
        char msg[AIPALQ__ERRMSG_SIZE - 64];
        trim_message(msg, sizeof msg, PQerrorMessage(c->pg));
        redact_password(msg, sizeof msg, c->database_url);
        pg_drop(c);
        bool bad_url = strstr(msg, "invalid") &&
                       (strstr(msg, "URI") || strstr(msg, "option") || strstr(msg, "connection"));
        return aipalq__fail(c, bad_url ? AIPALQ_EBADURL : AIPALQ_EPG,
                            "cannot connect to PostgreSQL: %s", msg);
    }
    PQsetNoticeProcessor(c->pg, ignore_notice, NULL);
    return AIPALQ_OK;
}

aipalq_status aipalq__pg_exec_on(aipalq_client *c, PGconn *conn, const char *sql, int nparams,
                                 const char *const *values, PGresult **out)
{
    if (out)
        *out = NULL;
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, values, NULL, NULL, 0);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (out)
            *out = res;
        else
            PQclear(res);
        return AIPALQ_OK;
    }
    char msg[AIPALQ__ERRMSG_SIZE - 64];
    trim_message(msg, sizeof msg, res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
    if (!msg[0])
        trim_message(msg, sizeof msg, PQerrorMessage(conn));
    PQclear(res);
    return aipalq__fail(c, AIPALQ_EPG, "PostgreSQL: %s", msg);
}

aipalq_status aipalq__pg_exec(aipalq_client *c, const char *sql, int nparams,
                              const char *const *values, PGresult **out)
{
    if (out)
        *out = NULL;
    aipalq_status st = aipalq__pg_ensure(c);
    if (st != AIPALQ_OK)
        return st;
    st = aipalq__pg_exec_on(c, c->pg, sql, nparams, values, out);
    if (st != AIPALQ_OK && PQstatus(c->pg) != CONNECTION_OK)
        pg_drop(c); /* reconnect on the next call */
    return st;
}

static const struct {
    const char *name;
    const char *sql;
    int nparams;
} statements[AIPALQ__STMT_COUNT] = {
    /* One task, no idempotency key: a plain insert, the cheapest commit. */
    [AIPALQ__STMT_INSERT_TASK] = {"aipalq_insert_task",
                                  "INSERT INTO aipalq_tasks (id, type, queue, status, priority,"
                                  " params, max_retries, run_at, user_id, namespace)"
                                  " VALUES ($1, $2, $3, CASE WHEN $8::bigint IS NULL THEN"
                                  " 'pending' ELSE 'scheduled' END, $4, $5, $6,"
                                  " to_timestamp($8::bigint / 1000.0), $7, $9)",
                                  9},
    [AIPALQ__STMT_GET_TASK] = {"aipalq_get_task",
                               "SELECT " AIPALQ__TASK_COLUMNS " FROM aipalq_tasks WHERE id = $1",
                               1},
    /* $2 and $3 are the lowest and highest id: bounds PostgreSQL prunes
     * partitions by when the statement starts, which an id list alone
     * cannot do (every partition's key would be probed for every id). */
    [AIPALQ__STMT_GET_TASKS] = {"aipalq_get_tasks",
                                "SELECT " AIPALQ__TASK_COLUMNS
                                " FROM aipalq_tasks WHERE id = ANY($1::uuid[])"
                                " AND id BETWEEN $2::uuid AND $3::uuid",
                                3},
    [AIPALQ__STMT_RECORD] = {"aipalq_record",
                             "SELECT idx, applied, old_status FROM aipalq_record($1::jsonb, $2)",
                             2},
};

aipalq_status aipalq__pg_exec_prepared(aipalq_client *c, aipalq__stmt stmt, int nparams,
                                       const char *const *values, PGresult **out)
{
    if (out)
        *out = NULL;
    aipalq_status st = aipalq__pg_ensure(c);
    if (st != AIPALQ_OK)
        return st;
    if (!(c->pg_prepared & (1u << stmt))) {
        PGresult *res = PQprepare(c->pg, statements[stmt].name, statements[stmt].sql,
                                  statements[stmt].nparams, NULL);
        bool ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
        char msg[AIPALQ__ERRMSG_SIZE - 64];
        trim_message(msg, sizeof msg, res ? PQresultErrorMessage(res) : PQerrorMessage(c->pg));
        PQclear(res);
        if (!ok) {
            if (PQstatus(c->pg) != CONNECTION_OK)
                pg_drop(c);
            return aipalq__fail(c, AIPALQ_EPG, "PostgreSQL: %s", msg);
        }
        c->pg_prepared |= 1u << stmt;
    }
    return aipalq__pg_exec_named(c, statements[stmt].name, nparams, values, out);
}

aipalq_status aipalq__pg_exec_named(aipalq_client *c, const char *name, int nparams,
                                    const char *const *values, PGresult **out)
{
    if (out)
        *out = NULL;
    PGresult *res = PQexecPrepared(c->pg, name, nparams, values, NULL, NULL, 0);
    ExecStatusType rs = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK) {
        if (out)
            *out = res;
        else
            PQclear(res);
        return AIPALQ_OK;
    }
    char msg[AIPALQ__ERRMSG_SIZE - 64];
    trim_message(msg, sizeof msg, res ? PQresultErrorMessage(res) : PQerrorMessage(c->pg));
    PQclear(res);
    if (PQstatus(c->pg) != CONNECTION_OK)
        pg_drop(c);
    return aipalq__fail(c, AIPALQ_EPG, "PostgreSQL: %s", msg);
}

/* The error of a failed step of COPY: the result's message, else the
 * connection's. */
static aipalq_status copy_failed(aipalq_client *c, PGresult *res)
{
    char msg[AIPALQ__ERRMSG_SIZE - 64];
    const char *why = res ? PQresultErrorMessage(res) : "";
    trim_message(msg, sizeof msg, why && why[0] ? why : PQerrorMessage(c->pg));
    PQclear(res);
    /* Whatever is left of the exchange is read away, so the connection is in
     * step for the next statement (or found broken and dropped). */
    while ((res = PQgetResult(c->pg)) != NULL)
        PQclear(res);
    if (PQstatus(c->pg) != CONNECTION_OK)
        pg_drop(c);
    return aipalq__fail(c, AIPALQ_EPG, "PostgreSQL: %s", msg);
}

aipalq_status aipalq__pg_copy_in(aipalq_client *c, const char *sql, const char *data, size_t len)
{
    aipalq_status st = aipalq__pg_ensure(c);
    if (st != AIPALQ_OK)
        return st;
    PGresult *res = PQexec(c->pg, sql);
    if (!res || PQresultStatus(res) != PGRES_COPY_IN)
        return copy_failed(c, res);
    PQclear(res);
    /* libpq takes the data in pieces of any size; bounded pieces keep its
     * output buffer from doubling to the size of a huge batch. */
    const size_t piece = 256 * 1024;
    bool sent = true;
    for (size_t off = 0; sent && off < len; off += piece)
        sent = PQputCopyData(c->pg, data + off, (int)(len - off < piece ? len - off : piece)) == 1;
    if (PQputCopyEnd(c->pg, sent ? NULL : "aborted by libaipalq") != 1)
        return copy_failed(c, NULL);
    res = PQgetResult(c->pg);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
        return copy_failed(c, res);
    PQclear(res);
    while ((res = PQgetResult(c->pg)) != NULL)
        PQclear(res);
    return AIPALQ_OK;
}

int64_t aipalq__pg_ms(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return 0;
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}
