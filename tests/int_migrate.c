/* Integration tests of schema migrations (lib/migrate.c) on a real
 * PostgreSQL: repeated, concurrent, and a database newer than the library. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "testutil.h"

static aipalq_client *client_on(const char *db_url)
{
    aipalq_client *c = aipalq_client_new(NULL, db_url);
    ck_assert_ptr_nonnull(c);
    return c;
}

static long long scalar(const char *db_url, const char *sql)
{
    PGconn *pg = PQconnectdb(db_url);
    ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "connect: %s", PQerrorMessage(pg));
    PGresult *res = PQexec(pg, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK,
                  "%s: %s", sql, PQresultErrorMessage(res));
    long long v = PQntuples(res) > 0 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    PQfinish(pg);
    return v;
}

START_TEST(test_migrate_environment_database_twice)
{
    /* The environment's own database, as an application would use it. */
    aipalq_client *c = aipalq_client_new(NULL, NULL);
    ASSERT_OK(c, aipalq_migrate(c));
    int v = -1;
    ASSERT_OK(c, aipalq_schema_version(c, &v));
    ck_assert_int_eq(v, AIPALQ_SCHEMA_VERSION);
    ASSERT_OK(c, aipalq_migrate(c));
    ASSERT_OK(c, aipalq_schema_version(c, &v));
    ck_assert_int_eq(v, AIPALQ_SCHEMA_VERSION);
    ck_assert_str_eq(aipalq_client_errmsg(c), "");
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_fresh_database)
{
    char *url = tu_db_create("fresh");
    aipalq_client *c = client_on(url);
    int v = -1;
    ASSERT_OK(c, aipalq_schema_version(c, &v));
    ck_assert_int_eq(v, 0); /* never migrated */
    ASSERT_OK(c, aipalq_migrate(c));
    ASSERT_OK(c, aipalq_schema_version(c, &v));
    ck_assert_int_eq(v, AIPALQ_SCHEMA_VERSION);
    /* Every migration is recorded once, and the tables are there. */
    ck_assert_int_eq(scalar(url, "SELECT count(*) FROM aipalq_schema"), AIPALQ_SCHEMA_VERSION);
    ck_assert_int_eq(scalar(url, "SELECT count(*) FROM aipalq_tasks"), 0);
    ck_assert_int_eq(scalar(url, "SELECT count(*) FROM aipalq_outbox"), 0);
    ck_assert_int_eq(scalar(url, "SELECT count(*) FROM aipalq_events"), 0);
    ck_assert_int_eq(scalar(url, "SELECT count(*) FROM aipalq_idempotency"), 0);
    /* Weekly partitions from this week on, and the default one. */
    ck_assert_int_ge(scalar(url, "SELECT count(*) FROM pg_inherits"
                                 " WHERE inhparent = 'aipalq_tasks'::regclass"),
                     6);
    ck_assert_int_eq(scalar(url, "SELECT count(*) FROM pg_class"
                                 " WHERE relname = 'aipalq_tasks_default'"),
                     1);
    /* Again: nothing changes, nothing fails. */
    ASSERT_OK(c, aipalq_migrate(c));
    ck_assert_int_eq(scalar(url, "SELECT count(*) FROM aipalq_schema"), AIPALQ_SCHEMA_VERSION);
    aipalq_client_free(c);
    tu_db_drop(url);
}
END_TEST

#define NPROC 6

START_TEST(test_concurrent_migrations)
{
    char *url = tu_db_create("concurrent");
    int gate[2];
    ck_assert_int_eq(pipe(gate), 0);
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            close(gate[1]);
            char b;
            (void)!read(gate[0], &b, 1); /* all start together when the gate closes */
            aipalq_client *c = aipalq_client_new(NULL, url);
            aipalq_status st = aipalq_migrate(c);
            int v = -1;
            if (st == AIPALQ_OK)
                st = aipalq_schema_version(c, &v);
            if (st != AIPALQ_OK || v != AIPALQ_SCHEMA_VERSION)
                fprintf(stderr, "migrator %d: %s (version %d): %s\n", i, aipalq_status_name(st), v,
                        aipalq_client_errmsg(c));
            aipalq_client_free(c);
            _exit(st == AIPALQ_OK && v == AIPALQ_SCHEMA_VERSION ? 0 : 1);
        }
    }
    close(gate[0]);
    close(gate[1]);
    int failures = 0;
    for (int i = 0; i < NPROC; i++) {
        int status = 0;
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failures++;
    }
    ck_assert_msg(failures == 0, "%d of %d concurrent migrations failed", failures, NPROC);
    ck_assert_int_eq(scalar(url, "SELECT max(version) FROM aipalq_schema"), AIPALQ_SCHEMA_VERSION);
    ck_assert_int_eq(scalar(url, "SELECT count(*) FROM aipalq_schema"), AIPALQ_SCHEMA_VERSION);
    aipalq_client *c = client_on(url);
    int v = -1;
    ASSERT_OK(c, aipalq_schema_version(c, &v));
    ck_assert_int_eq(v, AIPALQ_SCHEMA_VERSION);
    aipalq_client_free(c);
    tu_db_drop(url);
}
END_TEST

START_TEST(test_newer_schema_refused)
{
    char *url = tu_db_create("newer");
    aipalq_client *c = client_on(url);
    ASSERT_OK(c, aipalq_migrate(c));
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO aipalq_schema (version) VALUES (%d)",
             AIPALQ_SCHEMA_VERSION + 98);
    scalar(url, sql);
    ASSERT_ST(c, aipalq_migrate(c), AIPALQ_ESCHEMA);
    char want[16];
    snprintf(want, sizeof want, "%d", AIPALQ_SCHEMA_VERSION + 98);
    ck_assert_msg(tu_contains(aipalq_client_errmsg(c), want), "message: %s",
                  aipalq_client_errmsg(c));
    int v = -1;
    ASSERT_OK(c, aipalq_schema_version(c, &v));
    ck_assert_int_eq(v, AIPALQ_SCHEMA_VERSION + 98);
    /* The advisory lock was released: another client migrates (and fails the
     * same way) instead of waiting forever. */
    aipalq_client *d = client_on(url);
    ASSERT_ST(d, aipalq_migrate(d), AIPALQ_ESCHEMA);
    aipalq_client_free(d);
    aipalq_client_free(c);
    tu_db_drop(url);
}
END_TEST

START_TEST(test_unreachable_database)
{
    char url[128];
    snprintf(url, sizeof url, "postgresql://aipalq@127.0.0.1:%d/aipalq", tu_closed_port());
    aipalq_client *c = client_on(url);
    ASSERT_ST(c, aipalq_migrate(c), AIPALQ_EPG);
    ck_assert(tu_contains(aipalq_client_errmsg(c), "PostgreSQL"));
    int v = -1;
    ASSERT_ST(c, aipalq_schema_version(c, &v), AIPALQ_EPG);
    aipalq_client_free(c);
}
END_TEST

int main(void)
{
    tu_require_services();
    Suite *s = suite_create("migrate");
    TCase *tc = tcase_create("migrate");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_migrate_environment_database_twice);
    tcase_add_test(tc, test_fresh_database);
    tcase_add_test(tc, test_concurrent_migrations);
    tcase_add_test(tc, test_newer_schema_refused);
    tcase_add_test(tc, test_unreachable_database);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
