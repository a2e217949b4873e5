/* Helpers shared by the libaipalq test programs (Check framework).
 *
 * Integration tests talk to the Redis and PostgreSQL named by AIPALQ_REDIS_URL
 * and AIPALQ_DATABASE_URL. They do not skip when those are unset: they fail
 * with a message saying how to start the services. Each integration program
 * works in a scratch database of its own (created from AIPALQ_DATABASE_URL and
 * dropped at the end) and each test in Redis namespaces of its own, so test
 * programs cannot see each other's tasks. */
#ifndef AIPALQ_TESTUTIL_H
#define AIPALQ_TESTUTIL_H

#include <check.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <aipal/aipalq.h>

/* Asserts that `expr` (an aipalq call on client c) returns `want`, showing
 * the client's message otherwise. */
#define ASSERT_ST(c, expr, want)                                                                   \
    do {                                                                                           \
        aipalq_status st_ = (expr);                                                                \
        aipalq_status want_ = (want);                                                              \
        ck_assert_msg(st_ == want_, "%s: got %s, want %s (%s)", #expr, aipalq_status_name(st_),    \
                      aipalq_status_name(want_), aipalq_client_errmsg(c));                         \
    } while (0)

#define ASSERT_OK(c, expr) ASSERT_ST(c, expr, AIPALQ_OK)

/* Fails the program (exit 1) with a clear message when the server URLs are not
 * in the environment. */
void tu_require_services(void);

/* Runs a suite (CK_FORK, CK_VERBOSITY ... from the environment); returns the
 * exit status for main: 0 when every test passed. */
int tu_run(Suite *s);

/* Writes a name unique to this process and call, "<prefix><pid>x<n>", into
 * buf (len bytes) and returns buf. */
const char *tu_unique(const char *prefix, char *buf, size_t len);

/* ------------------------------------------------------------ PostgreSQL */

/* `url` with its database name replaced by `dbname` (malloc'd). */
char *tu_url_with_db(const char *url, const char *dbname);

/* Creates an empty database named after `tag` and this process (dropping a
 * leftover of that name) and returns its URL (malloc'd). Exits on error. */
char *tu_db_create(const char *tag);
/* Drops the database of a URL from tu_db_create, and frees the URL. */
void tu_db_drop(char *url);

/* Creates a scratch database named after `tag` and this process, migrates
 * it with the library, and points AIPALQ_DATABASE_URL at it. Exits on error. */
void tu_scratch_db_begin(const char *tag);
/* Drops the scratch database and restores AIPALQ_DATABASE_URL. */
void tu_scratch_db_end(void);
/* The URL of the scratch database (or of the environment's if none). */
const char *tu_db_url(void);

/* Runs SQL on a new connection to the current database; fails the test on
 * error. */
void tu_pg_exec(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Runs a query returning one integer; fails the test on error. */
long long tu_pg_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Runs a query returning one text value (malloc'd; NULL for SQL NULL). */
char *tu_pg_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Empties every aipalq table of the current database. */
void tu_pg_truncate(void);

/* ----------------------------------------------------------------- Redis */

/* Runs a Redis command (printf-style, hiredis formatting) on a connection to
 * AIPALQ_REDIS_URL and returns an integer reply (or the element count of an
 * array reply); fails the test on error. */
long long tu_redis_int(const char *fmt, ...);
/* The members of a sorted set in rank order; *n gets the count. Free with
 * tu_strv_free. */
char **tu_redis_zrange(const char *key, size_t *n);
/* HGET key field (malloc'd, NULL when absent). */
char *tu_redis_hget(const char *key, const char *field);
/* Number of keys in namespace `ns` (KEYS ns:*). */
long long tu_redis_ns_keys(const char *ns);
/* Deletes every key of namespace `ns`. */
void tu_redis_ns_del(const char *ns);
void tu_strv_free(char **v, size_t n);

/* ----------------------------------------------------------------- client */

/* A client on the environment's servers with namespace `ns`, with the task
 * types "t.a" and "t.b" routed to `queue`. Fails the test on error. */
aipalq_client *tu_client(const char *ns, const char *queue);

/* The queue depth as three numbers; fails the test on error. */
void tu_depth(aipalq_client *c, const char *queue, int64_t *ready, int64_t *scheduled,
              int64_t *leased);

/* 1 if `s` contains `needle`. */
int tu_contains(const char *s, const char *needle);

/* A free TCP port on 127.0.0.1 that nothing listens on (bound and closed). */
int tu_closed_port(void);

#endif
