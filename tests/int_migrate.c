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

static PGconn *connect_to(const char *db_url)
{
    PGconn *pg = PQconnectdb(db_url);
    ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "connect: %s", PQerrorMessage(pg));
    return pg;
}

static long long scalar(const char *db_url, const char *sql)
{
    PGconn *pg = connect_to(db_url);
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

/* Runs SQL on a connection of its own; fails the test on an error. */
static void exec_on(const char *db_url, const char *sql)
{
    PGconn *pg = connect_to(db_url);
    PGresult *res = PQexec(pg, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK,
                  "%.200s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(pg);
}

/* A migration file of the source tree, malloc'd. */
static char *migration_file(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/lib/migrations/%s", AIPALQ_SOURCE_ROOT, name);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *sql = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(sql);
    ck_assert_int_eq((long)fread(sql, 1, (size_t)len, f), len);
    sql[len] = '\0';
    fclose(f);
    return sql;
}

/* A new database left at schema `version` by an older library: the
 * migration files up to it applied as that library applied them. */
static char *db_at_version(const char *tag, int version)
{
    static const char *const files[] = {"001_schema.sql", "002_record_plpgsql.sql",
                                        "003_fold_start.sql", "004_record_one_update.sql",
                                        "005_record_by_ids.sql"};
    ck_assert_int_le(version, (int)(sizeof files / sizeof files[0]));
    char *url = tu_db_create(tag);
    exec_on(url, "CREATE TABLE aipalq_schema (version integer PRIMARY KEY,"
                 " applied_at timestamptz NOT NULL DEFAULT now())");
    for (int i = 0; i < version; i++) {
        char *sql = migration_file(files[i]);
        exec_on(url, sql);
        free(sql);
        char v[64];
        snprintf(v, sizeof v, "INSERT INTO aipalq_schema (version) VALUES (%d)", i + 1);
        exec_on(url, v);
    }
    return url;
}

/* A database left at schema version 2 by an older library, with a task and
 * its history, is upgraded in place: the history is kept, and the new
 * aipalq_record folds a start into its outcome (one event carrying
 * started_at) and still takes records without a start time. */
START_TEST(test_upgrade_from_v2)
{
    char *url = db_at_version("v2", 2);
    exec_on(url, "SELECT aipalq_ensure_partitions()");
    const char *a = "01900000-0000-7000-8000-00000000000a";
    const char *b = "01900000-0000-7000-8000-00000000000b";
    exec_on(url, "INSERT INTO aipalq_tasks (id, type, queue) VALUES"
                 " ('01900000-0000-7000-8000-00000000000a', 't', 'q'),"
                 " ('01900000-0000-7000-8000-00000000000b', 't', 'q')");
    /* Version 2's function: a start, as an older worker records it. */
    exec_on(url, "SELECT * FROM aipalq_record('[{\"id\":\"01900000-0000-7000-8000-00000000000a\","
                 "\"k\":\"running\",\"tok\":1,\"att\":1,\"pct\":0}]', 'old')");
    aipalq_client *c = client_on(url);
    int v = -1;
    ASSERT_OK(c, aipalq_schema_version(c, &v));
    ck_assert_int_eq(v, 2);
    ASSERT_OK(c, aipalq_migrate(c));
    ASSERT_OK(c, aipalq_schema_version(c, &v));
    ck_assert_int_eq(v, AIPALQ_SCHEMA_VERSION);
    ck_assert_int_eq(scalar(url, "SELECT count(*) FROM aipalq_schema"), AIPALQ_SCHEMA_VERSION);
    /* The old history is there, without a start time of its own. */
    ck_assert_int_eq(scalar(url, "SELECT count(*) FROM aipalq_events WHERE to_status = 'running'"
                                 " AND started_at IS NULL"),
                     1);
    /* An outcome of the running task, without a start (an older worker). */
    exec_on(url, "SELECT * FROM aipalq_record('[{\"id\":\"01900000-0000-7000-8000-00000000000a\","
                 "\"k\":\"completed\",\"tok\":1,\"att\":1,\"result\":\"1\",\"pct\":0}]', 'old')");
    /* A start folded into its outcome, with its start time. */
    exec_on(url, "SELECT * FROM aipalq_record('[{\"id\":\"01900000-0000-7000-8000-00000000000b\","
                 "\"k\":\"completed\",\"tok\":1,\"att\":1,\"started\":true,"
                 "\"st\":1700000000123,\"result\":\"2\",\"pct\":0}]', 'new')");
    ck_assert_int_eq(scalar(url, "SELECT count(*) FROM aipalq_tasks WHERE status = 'completed'"),
                     2);
    /* Task b: one event, from pending, with the start time the worker sent,
     * which is also the row's. Task a: the outcome of a start written alone. */
    const struct {
        const char *id, *where;
        long long want;
    } checks[] = {
        {b,
         "aipalq_events WHERE from_status = 'pending' AND to_status = 'completed'"
         " AND started_at = to_timestamp(1700000000.123) AND task_id",
         1},
        {b, "aipalq_events WHERE task_id", 1},
        {b, "aipalq_tasks WHERE started_at = to_timestamp(1700000000.123) AND id", 1},
        {a,
         "aipalq_events WHERE from_status = 'running' AND to_status = 'completed'"
         " AND started_at IS NULL AND task_id",
         1},
        /* The status before the last transition, added by version 7 (rows
         * written before it have none until their next transition). */
        {b, "aipalq_tasks WHERE prev_status = 'pending' AND id", 1},
        {a, "aipalq_tasks WHERE prev_status = 'running' AND id", 1},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        char sql[512];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s = '%s'", checks[i].where, checks[i].id);
        ck_assert_msg(scalar(url, sql) == checks[i].want, "%s", sql);
    }
    /* Again: nothing changes, nothing fails. */
    ASSERT_OK(c, aipalq_migrate(c));
    aipalq_client_free(c);
    tu_db_drop(url);
}
END_TEST

static long long query_int(PGconn *pg, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK,
                  "%.200s: %s", sql, PQresultErrorMessage(res));
    long long v = PQntuples(res) > 0 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return v;
}

/* The rows of aipalq_tasks that aipalq_record reads to record one outcome, on
 * one connection (as a worker keeps it) whose plan of the function was made
 * when the table held two tasks, after which the table grew by 20,000. */
static long long rows_read_by_record(const char *url)
{
    PGconn *pg = connect_to(url);
    /* No ANALYZE meanwhile, which would make the plan again. */
    query_int(pg, "ALTER TABLE aipalq_tasks_default SET (autovacuum_enabled = false)");
    query_int(pg, "INSERT INTO aipalq_tasks (id, type, queue) VALUES"
                  " ('01900000-0000-7000-8000-00000000000a', 't', 'q'),"
                  " ('01900000-0000-7000-8000-00000000000b', 't', 'q')");
    query_int(pg, "SELECT count(*) FROM aipalq_record('[{\"id\":"
                  "\"01900000-0000-7000-8000-00000000000a\",\"k\":\"running\",\"tok\":1,"
                  "\"att\":1}]', 'w')");
    query_int(pg, "INSERT INTO aipalq_tasks (id, type, queue)"
                  " SELECT ('01900000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, 't', 'q'"
                  " FROM generate_series(16, 20015) AS g");
    query_int(pg, "BEGIN");
    ck_assert_int_eq(query_int(pg, "SELECT count(*) FROM aipalq_record('[{\"id\":"
                                   "\"01900000-0000-7000-8000-00000000000a\",\"k\":\"completed\","
                                   "\"tok\":1,\"att\":1,\"result\":\"1\"}]', 'w') WHERE applied"),
                     1);
    long long rows = query_int(pg, "SELECT coalesce(sum(seq_tup_read), 0)"
                                   " + coalesce(sum(idx_tup_fetch), 0)"
                                   " FROM pg_stat_xact_user_tables"
                                   " WHERE relname LIKE 'aipalq\\_tasks%'");
    query_int(pg, "COMMIT");
    PQfinish(pg);
    return rows;
}

/* aipalq_record's plan is generic and cached per connection. Schema 4 left
 * the join to the planner, which on a small table chose a hash join over a
 * scan of the whole table, kept for good: measured here first, so that the
 * check of the current schema is known to be able to fail. */
START_TEST(test_record_reads_only_its_rows)
{
    char *url = db_at_version("v4rec", 4);
    long long v4 = rows_read_by_record(url);
    ck_assert_msg(v4 > 20000, "schema 4 read %lld rows: the scenario no longer shows the scan", v4);
    exec_on(url, "TRUNCATE aipalq_tasks, aipalq_events");
    aipalq_client *c = client_on(url);
    ASSERT_OK(c, aipalq_migrate(c));
    aipalq_client_free(c);
    long long now = rows_read_by_record(url);
    ck_assert_msg(now <= 4, "aipalq_record read %lld rows of aipalq_tasks to record one task", now);
    tu_db_drop(url);
}
END_TEST

/* The partitions of aipalq_tasks other than the one holding the recorded
 * task whose index aipalq_record scanned, to record that task's outcome, with
 * a week of history in a partition of its own beside this week's. */
static long long other_partitions_scanned_by_record(const char *url, int n)
{
    PGconn *pg = connect_to(url);
    query_int(pg, "SELECT aipalq_ensure_partitions()");
    query_int(pg, "CREATE TABLE IF NOT EXISTS aipalq_tasks_20200106 PARTITION OF aipalq_tasks"
                  " FOR VALUES FROM (aipalq_uuid_floor('2020-01-06 00:00+00'))"
                  " TO (aipalq_uuid_floor('2020-01-13 00:00+00'))");
    query_int(pg, "INSERT INTO aipalq_tasks (id, type, queue, status)"
                  " SELECT (lpad(to_hex((extract(epoch FROM timestamptz '2020-01-07 00:00+00')"
                  " * 1000)::bigint + g), 12, '0') || '70008000000000000000')::uuid,"
                  " 't', 'q', 'completed' FROM generate_series(1, 100) AS g");
    /* n tasks of this week, ids a millisecond apart (UUIDv7 order), and a
     * batch recording their outcomes, made without reading the table. */
    char sql[1024];
    long long now_ms = query_int(pg, "SELECT (extract(epoch FROM now()) * 1000)::bigint");
    char from[256];
    snprintf(from, sizeof from,
             "(SELECT (lpad(to_hex(%lld + g), 12, '0') || '70008000000000000000')::uuid AS id"
             " FROM generate_series(1, %d) AS g) AS s",
             now_ms, n);
    snprintf(sql, sizeof sql,
             "INSERT INTO aipalq_tasks (id, type, queue) SELECT id, 't', 'q' FROM %s", from);
    query_int(pg, sql);
    snprintf(sql, sizeof sql,
             "SELECT jsonb_agg(jsonb_build_object('id', id, 'k', 'completed', 'tok', 1,"
             " 'att', 1, 'started', true, 'result', '1')),"
             " 'aipalq_tasks_' || to_char(date_trunc('week', now() AT TIME ZONE 'UTC'),"
             " 'YYYYMMDD') FROM %s",
             from);
    PGresult *res = PQexec(pg, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    char *batch = strdup(PQgetvalue(res, 0, 0)), *home = strdup(PQgetvalue(res, 0, 1));
    PQclear(res);
    /* The counts below are those of the next transaction only. */
    query_int(pg, "SELECT pg_stat_force_next_flush()");
    query_int(pg, "BEGIN");
    const char *params[] = {batch};
    res = PQexecParams(pg, "SELECT count(*) FROM aipalq_record($1::jsonb, 'w') WHERE applied", 1,
                       NULL, params, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    ck_assert_int_eq(atoi(PQgetvalue(res, 0, 0)), n);
    PQclear(res);
    const char *home_param[] = {home};
    res = PQexecParams(pg,
                       "SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_xact_user_tables"
                       " WHERE relname LIKE 'aipalq\\_tasks\\_%' AND relname <> $1",
                       1, NULL, home_param, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    long long scans = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    query_int(pg, "COMMIT");
    PQfinish(pg);
    free(batch);
    free(home);
    return scans;
}

/* An id list alone cannot prune partitions: schema 5 probed every
 * partition's key (measured first, so that the check of the current schema
 * is known to be able to fail); schema 6 bounds the lookups by the batch's
 * lowest and highest id, and only this week's partition is read. */
START_TEST(test_record_reads_only_its_partition)
{
    char *url = db_at_version("v5part", 5);
    long long v5 = other_partitions_scanned_by_record(url, 3);
    ck_assert_msg(v5 > 0, "schema 5 scanned no other partition: the scenario no longer shows it");
    exec_on(url, "TRUNCATE aipalq_tasks, aipalq_events");
    aipalq_client *c = client_on(url);
    ASSERT_OK(c, aipalq_migrate(c));
    aipalq_client_free(c);
    long long now = other_partitions_scanned_by_record(url, 3);
    ck_assert_msg(now == 0, "aipalq_record scanned %lld other partitions", now);
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
    tcase_add_test(tc, test_upgrade_from_v2);
    tcase_add_test(tc, test_record_reads_only_its_rows);
    tcase_add_test(tc, test_record_reads_only_its_partition);
    tcase_add_test(tc, test_unreachable_database);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
