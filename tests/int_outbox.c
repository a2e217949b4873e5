/* Integration tests of the transactional enqueue and its outbox relay
 * (lib/enqueue.c with a caller's connection, lib/outbox.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "testutil.h"

static char ns[64], queue[64];

static void setup(void)
{
    tu_pg_truncate();
    tu_unique("ob", ns, sizeof ns);
    tu_unique("q", queue, sizeof queue);
}

static void teardown(void)
{
    tu_redis_ns_del(ns);
}

static PGconn *own_connection(void)
{
    PGconn *pg = PQconnectdb(tu_db_url());
    ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "connect: %s", PQerrorMessage(pg));
    return pg;
}

static void sql(PGconn *pg, const char *q)
{
    PGresult *res = PQexec(pg, q);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK,
                  "%s: %s", q, PQresultErrorMessage(res));
    PQclear(res);
}

static long long rows(void)
{
    return tu_pg_int("SELECT count(*) FROM aipalq_tasks");
}

static long long outbox(void)
{
    return tu_pg_int("SELECT count(*) FROM aipalq_outbox");
}

static int64_t relay(aipalq_client *c)
{
    int64_t n = -1;
    ASSERT_OK(c, aipalq_relay_outbox(c, 1000, &n));
    return n;
}

START_TEST(test_rollback_leaves_nothing)
{
    aipalq_client *c = tu_client(ns, queue);
    PGconn *pg = own_connection();
    sql(pg, "BEGIN");
    char id[AIPALQ_ID_SIZE];
    int created = -1;
    ASSERT_OK(c, aipalq_enqueue_tx(c, pg, "t.a", "{\"order\":1}", NULL, id, &created));
    ck_assert_int_eq(created, 1);
    /* Inside the transaction it exists; outside not yet. */
    ck_assert_int_eq(rows(), 0);
    sql(pg, "ROLLBACK");
    ck_assert_int_eq(rows(), 0);
    ck_assert_int_eq(outbox(), 0);
    aipalq_task *t = NULL;
    ASSERT_ST(c, aipalq_get(c, id, &t), AIPALQ_ENOTFOUND);
    ck_assert_int_eq(relay(c), 0);
    ck_assert_int_eq(tu_redis_ns_keys(ns), 0);
    PQfinish(pg);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_commit_then_relay)
{
    aipalq_client *c = tu_client(ns, queue);
    PGconn *pg = own_connection();
    ck_assert_int_eq(relay(c), 0); /* nothing waiting */
    sql(pg, "BEGIN");
    sql(pg, "CREATE TEMP TABLE app_orders (n int)"); /* the caller's own work */
    sql(pg, "INSERT INTO app_orders VALUES (1)");
    char id[AIPALQ_ID_SIZE];
    int created = -1;
    ASSERT_OK(c, aipalq_enqueue_tx(c, pg, "t.a", "{\"order\":1}", NULL, id, &created));
    ck_assert_int_eq(PQtransactionStatus(pg), PQTRANS_INTRANS); /* still the caller's */
    /* Not committed: a relay sees nothing. */
    ck_assert_int_eq(relay(c), 0);
    sql(pg, "COMMIT");
    aipalq_task *t = NULL;
    ASSERT_OK(c, aipalq_get(c, id, &t));
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_PENDING);
    ck_assert_str_eq(aipalq_task_queue(t), queue);
    aipalq_task_free(t);
    /* Committed but not in Redis until relayed. */
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 0);
    ck_assert_int_eq(outbox(), 1);
    ck_assert_int_eq(relay(c), 1);
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    ck_assert_int_eq(outbox(), 0);
    ck_assert_int_eq(relay(c), 0); /* once */
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    PQfinish(pg);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_autocommit_statement)
{
    /* No transaction open: the insert is its own statement. */
    aipalq_client *c = tu_client(ns, queue);
    PGconn *pg = own_connection();
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue_tx(c, pg, "t.a", "{}", NULL, id, NULL));
    ck_assert_int_eq(PQtransactionStatus(pg), PQTRANS_IDLE);
    ck_assert_int_eq(rows(), 1);
    ck_assert_int_eq(relay(c), 1);
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    PQfinish(pg);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_bad_input_keeps_transaction_usable)
{
    aipalq_client *c = tu_client(ns, queue);
    PGconn *pg = own_connection();
    sql(pg, "BEGIN");
    char id[AIPALQ_ID_SIZE];
    ASSERT_ST(c, aipalq_enqueue_tx(c, pg, "nope", "{}", NULL, id, NULL), AIPALQ_EUNKNOWNTYPE);
    ASSERT_ST(c, aipalq_enqueue_tx(c, pg, "t.a", "[1]", NULL, id, NULL), AIPALQ_ENOTOBJECT);
    ASSERT_ST(c, aipalq_enqueue_tx(c, pg, "t.a", "{\"a\":01}", NULL, id, NULL), AIPALQ_EBADJSON);
    /* Refused before any statement: the caller's transaction is intact. */
    ck_assert_int_eq(PQtransactionStatus(pg), PQTRANS_INTRANS);
    ASSERT_OK(c, aipalq_enqueue_tx(c, pg, "t.a", "{}", NULL, id, NULL));
    sql(pg, "COMMIT");
    ck_assert_int_eq(rows(), 1);
    ck_assert_int_eq(relay(c), 1);
    /* In a transaction already failed, the statement fails (EPG). */
    sql(pg, "BEGIN");
    PQclear(PQexec(pg, "SELECT 1/0"));
    ASSERT_ST(c, aipalq_enqueue_tx(c, pg, "t.a", "{}", NULL, id, NULL), AIPALQ_EPG);
    sql(pg, "ROLLBACK");
    ck_assert_int_eq(rows(), 1);
    PQfinish(pg);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_batch_tx)
{
    aipalq_client *c = tu_client(ns, queue);
    PGconn *pg = own_connection();
    aipalq_batch *b = aipalq_batch_new();
    for (int i = 0; i < 10; i++)
        aipalq_batch_add(b, "t.a", "{}", NULL);
    sql(pg, "BEGIN");
    ASSERT_OK(c, aipalq_enqueue_batch_tx(c, pg, b));
    sql(pg, "ROLLBACK");
    ck_assert_int_eq(rows(), 0);
    ck_assert_int_eq(relay(c), 0);
    sql(pg, "BEGIN");
    ASSERT_OK(c, aipalq_enqueue_batch_tx(c, pg, b));
    sql(pg, "COMMIT");
    ck_assert_int_eq(rows(), 10);
    /* Relayed in steps of at most `max`. */
    int64_t n = -1;
    ASSERT_OK(c, aipalq_relay_outbox(c, 4, &n));
    ck_assert_int_eq(n, 4);
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 4);
    ck_assert_int_eq(relay(c), 6);
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 10);
    /* All or nothing here too. */
    aipalq_batch_add(b, "nope", "{}", NULL);
    sql(pg, "BEGIN");
    ASSERT_ST(c, aipalq_enqueue_batch_tx(c, pg, b), AIPALQ_EUNKNOWNTYPE);
    ck_assert(tu_contains(aipalq_client_errmsg(c), "10"));
    sql(pg, "COMMIT");
    ck_assert_int_eq(rows(), 10);
    aipalq_batch_free(b);
    PQfinish(pg);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_idempotency_across_transactions)
{
    aipalq_client *c = tu_client(ns, queue);
    PGconn *pg = own_connection();
    aipalq_opts *o = aipalq_opts_new();
    aipalq_opts_set_idempotency_key(o, "tx-key");
    char id1[AIPALQ_ID_SIZE], id2[AIPALQ_ID_SIZE];
    int created = -1;
    ASSERT_OK(c, aipalq_enqueue_tx(c, pg, "t.a", "{}", o, id1, &created));
    ck_assert_int_eq(created, 1);
    sql(pg, "BEGIN");
    ASSERT_OK(c, aipalq_enqueue_tx(c, pg, "t.a", "{}", o, id2, &created));
    ck_assert_int_eq(created, 0);
    ck_assert_str_eq(id1, id2);
    sql(pg, "COMMIT");
    /* The key is shared with the direct path. */
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", o, id2, &created));
    ck_assert_int_eq(created, 0);
    ck_assert_str_eq(id1, id2);
    ck_assert_int_eq(rows(), 1);
    ck_assert_int_eq(relay(c), 1);
    aipalq_opts_free(o);
    PQfinish(pg);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_relay_skips_cancelled)
{
    /* Cancelled before its relay: the relay drops it instead of dispatching. */
    aipalq_client *c = tu_client(ns, queue);
    PGconn *pg = own_connection();
    char id[AIPALQ_ID_SIZE], keep[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue_tx(c, pg, "t.a", "{}", NULL, id, NULL));
    ASSERT_OK(c, aipalq_enqueue_tx(c, pg, "t.a", "{}", NULL, keep, NULL));
    ASSERT_OK(c, aipalq_cancel(c, id, NULL));
    ck_assert_int_eq(relay(c), 1);
    ck_assert_int_eq(outbox(), 0);
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    char buf[256];
    snprintf(buf, sizeof buf, "%s:{%s}:job", ns, queue);
    char *payload = tu_redis_hget(buf, id);
    ck_assert_ptr_null(payload);
    PQfinish(pg);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_delayed_tx_task)
{
    aipalq_client *c = tu_client(ns, queue);
    PGconn *pg = own_connection();
    aipalq_opts *o = aipalq_opts_new();
    aipalq_opts_set_delay_ms(o, 3600000);
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue_tx(c, pg, "t.a", "{}", o, id, NULL));
    aipalq_opts_free(o);
    ck_assert_int_eq(relay(c), 1);
    int64_t ready, scheduled;
    tu_depth(c, queue, &ready, &scheduled, NULL);
    ck_assert_int_eq(ready, 0);
    ck_assert_int_eq(scheduled, 1);
    PQfinish(pg);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_concurrent_relays)
{
    /* Relays in several processes share the outbox: every task is relayed
     * exactly once. */
    enum { NPROC = 4, NTASKS = 300 };
    aipalq_client *c = tu_client(ns, queue);
    PGconn *pg = own_connection();
    aipalq_batch *b = aipalq_batch_new();
    for (int i = 0; i < NTASKS; i++)
        aipalq_batch_add(b, "t.a", "{}", NULL);
    ASSERT_OK(c, aipalq_enqueue_batch_tx(c, pg, b));
    aipalq_batch_free(b);
    PQfinish(pg);
    int out[2], gate[2];
    ck_assert_int_eq(pipe(out), 0);
    ck_assert_int_eq(pipe(gate), 0);
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            close(gate[1]);
            char ch;
            (void)!read(gate[0], &ch, 1);
            aipalq_client *r = aipalq_client_new(NULL, NULL);
            aipalq_client_set_namespace(r, ns);
            long long total = 0;
            int64_t n = 0;
            aipalq_status st;
            while ((st = aipalq_relay_outbox(r, 7, &n)) == AIPALQ_OK && n > 0)
                total += n;
            char line[64];
            snprintf(line, sizeof line, "%lld %d\n", total, (int)st);
            (void)!write(out[1], line, strlen(line));
            aipalq_client_free(r);
            _exit(0);
        }
    }
    close(gate[0]);
    close(gate[1]);
    close(out[1]);
    for (int i = 0; i < NPROC; i++)
        waitpid(pids[i], NULL, 0);
    char buf[NPROC * 64 + 1];
    size_t len = 0;
    ssize_t got;
    while ((got = read(out[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)got;
    buf[len] = '\0';
    close(out[0]);
    long long sum = 0;
    int lines = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        long long total = -1;
        int st = -1;
        ck_assert_int_eq(sscanf(line, "%lld %d", &total, &st), 2);
        ck_assert_msg(st == AIPALQ_OK, "a relay failed: %s", aipalq_status_name(st));
        sum += total;
        lines++;
    }
    ck_assert_int_eq(lines, NPROC);
    ck_assert_int_eq(sum, NTASKS);
    ck_assert_int_eq(outbox(), 0);
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, NTASKS);
    ck_assert_int_eq(tu_pg_int("SELECT count(*) FROM aipalq_tasks WHERE epoch <> 0"), 0);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_namespace_scopes_relay)
{
    aipalq_client *a = tu_client(ns, queue);
    char other_ns[64];
    tu_unique("ob_other", other_ns, sizeof other_ns);
    aipalq_client *b = tu_client(other_ns, queue);
    PGconn *pg = own_connection();
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(a, aipalq_enqueue_tx(a, pg, "t.a", "{}", NULL, id, NULL));
    for (int i = 0; i < 2; i++)
        ASSERT_OK(b, aipalq_enqueue_tx(b, pg, "t.a", "{}", NULL, id, NULL));
    ck_assert_int_eq(relay(a), 1);
    ck_assert_int_eq(outbox(), 2);
    ck_assert_int_eq(tu_redis_ns_keys(other_ns), 0);
    ck_assert_int_eq(relay(b), 2);
    int64_t ready;
    tu_depth(b, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 2);
    tu_depth(a, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    PQfinish(pg);
    aipalq_client_free(a);
    aipalq_client_free(b);
    tu_redis_ns_del(other_ns);
}
END_TEST

int main(void)
{
    tu_require_services();
    tu_scratch_db_begin("outbox");
    Suite *s = suite_create("outbox");
    TCase *tc = tcase_create("outbox");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_rollback_leaves_nothing);
    tcase_add_test(tc, test_commit_then_relay);
    tcase_add_test(tc, test_autocommit_statement);
    tcase_add_test(tc, test_bad_input_keeps_transaction_usable);
    tcase_add_test(tc, test_batch_tx);
    tcase_add_test(tc, test_idempotency_across_transactions);
    tcase_add_test(tc, test_relay_skips_cancelled);
    tcase_add_test(tc, test_delayed_tx_task);
    tcase_add_test(tc, test_concurrent_relays);
    tcase_add_test(tc, test_namespace_scopes_relay);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    tu_scratch_db_end();
    return rc;
}
