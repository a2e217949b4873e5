/* Fault tests: one server unreachable (a closed port) while the other, from
 * the environment, works. Enqueue commits to PostgreSQL first: with Redis
 * down it still succeeds and says the dispatch was deferred to the
 * reconciler, which dispatches once Redis answers. With PostgreSQL down
 * nothing is written anywhere. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "testutil.h"

static char ns[64], queue[64], dead_redis[64], dead_pg[128];

static void setup(void)
{
    tu_pg_truncate();
    tu_unique("fu", ns, sizeof ns);
    tu_unique("q", queue, sizeof queue);
    snprintf(dead_redis, sizeof dead_redis, "redis://127.0.0.1:%d/0", tu_closed_port());
    snprintf(dead_pg, sizeof dead_pg, "postgresql://aipalq@127.0.0.1:%d/aipalq", tu_closed_port());
}

static void teardown(void)
{
    tu_redis_ns_del(ns);
}

/* A client with types t.a/t.b on `queue`, in namespace ns, on the given
 * servers (NULL: the environment's). */
static aipalq_client *client(const char *redis_url, const char *pg_url)
{
    aipalq_client *c = aipalq_client_new(redis_url, pg_url);
    ck_assert_ptr_nonnull(c);
    ASSERT_OK(c, aipalq_client_set_namespace(c, ns));
    ASSERT_OK(c, aipalq_client_set_timeouts(c, 2000, 5000));
    ASSERT_OK(c, aipalq_type_define(c, "t.a", queue));
    ASSERT_OK(c, aipalq_type_define(c, "t.b", queue));
    return c;
}

static long long rows(void)
{
    return tu_pg_int("SELECT count(*) FROM aipalq_tasks");
}

START_TEST(test_redis_down_enqueue_deferred_then_reconciled)
{
    aipalq_client *c = client(dead_redis, NULL);
    char id[AIPALQ_ID_SIZE] = "";
    int created = -1;
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{\"n\":1}", NULL, id, &created));
    ck_assert_int_eq(created, 1);
    ck_assert_int_eq(aipalq_client_errcode(c), AIPALQ_OK);
    ck_assert_msg(tu_contains(aipalq_client_errmsg(c), "deferred to the reconciler"), "message: %s",
                  aipalq_client_errmsg(c));
    ck_assert_msg(tu_contains(aipalq_client_errmsg(c), "Redis"), "message: %s",
                  aipalq_client_errmsg(c));
    /* The task exists, pending. */
    aipalq_task *t = NULL;
    ASSERT_OK(c, aipalq_get(c, id, &t));
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_PENDING);
    aipalq_task_free(t);
    ck_assert_int_eq(rows(), 1);
    /* A batch too. */
    aipalq_batch *b = aipalq_batch_new();
    for (int i = 0; i < 10; i++)
        aipalq_batch_add(b, "t.b", "{}", NULL);
    ASSERT_OK(c, aipalq_enqueue_batch(c, b));
    ck_assert(tu_contains(aipalq_client_errmsg(c), "deferred"));
    ck_assert_ptr_nonnull(aipalq_batch_id(b, 9));
    aipalq_batch_free(b);
    ck_assert_int_eq(rows(), 11);
    /* Calls that need Redis fail with EREDIS. */
    int64_t ready = -1;
    ASSERT_ST(c, aipalq_queue_depth(c, queue, &ready, NULL, NULL), AIPALQ_EREDIS);
    ASSERT_ST(c, aipalq_reconcile(c, 0, NULL, NULL), AIPALQ_EREDIS);
    ASSERT_ST(c, aipalq_relay_outbox(c, 10, NULL), AIPALQ_EREDIS);
    int rok = -1, pok = -1;
    ASSERT_ST(c, aipalq_ping(c, &rok, &pok), AIPALQ_EREDIS);
    ck_assert_int_eq(rok, 0);
    ck_assert_int_eq(pok, 1);
    ck_assert(tu_contains(aipalq_client_errmsg(c), "Redis"));
    ck_assert_int_eq(tu_redis_ns_keys(ns), 0);
    /* Once Redis is reachable, the reconciler dispatches all of them. */
    aipalq_client *good = client(NULL, NULL);
    int64_t redispatched = -1, repaired = -1;
    ASSERT_OK(good, aipalq_reconcile(good, 0, &redispatched, &repaired));
    ck_assert_int_eq(redispatched, 11);
    ck_assert_int_eq(repaired, 0);
    tu_depth(good, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 11);
    aipalq_client_free(good);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_redis_down_cancel_and_retry)
{
    aipalq_client *good = client(NULL, NULL);
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(good, aipalq_enqueue(good, "t.a", "{}", NULL, id, NULL));
    int64_t ready;
    tu_depth(good, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    /* Cancel with Redis down: recorded in PostgreSQL (the decision), OK. */
    aipalq_client *c = client(dead_redis, NULL);
    aipalq_state st = AIPALQ_STATE_PENDING;
    ASSERT_OK(c, aipalq_cancel(c, id, &st));
    ck_assert_int_eq(st, AIPALQ_STATE_CANCELLED);
    aipalq_task *t = NULL;
    ASSERT_OK(c, aipalq_get(c, id, &t));
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_CANCELLED);
    aipalq_task_free(t);
    /* Retry with Redis down: pending again, dispatch deferred. */
    ASSERT_OK(c, aipalq_retry(c, id));
    ck_assert_msg(tu_contains(aipalq_client_errmsg(c), "deferred"), "message: %s",
                  aipalq_client_errmsg(c));
    ASSERT_OK(c, aipalq_get(c, id, &t));
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_PENDING);
    aipalq_task_free(t);
    aipalq_client_free(c);
    aipalq_client_free(good);
}
END_TEST

START_TEST(test_pg_down_nothing_written)
{
    aipalq_client *c = client(NULL, dead_pg);
    char id[AIPALQ_ID_SIZE] = "";
    ASSERT_ST(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL), AIPALQ_EPG);
    ck_assert(tu_contains(aipalq_client_errmsg(c), "PostgreSQL"));
    aipalq_batch *b = aipalq_batch_new();
    for (int i = 0; i < 5; i++)
        aipalq_batch_add(b, "t.a", "{}", NULL);
    ASSERT_ST(c, aipalq_enqueue_batch(c, b), AIPALQ_EPG);
    ck_assert_ptr_null(aipalq_batch_id(b, 0));
    aipalq_batch_free(b);
    ck_assert_int_eq(tu_redis_ns_keys(ns), 0);
    ck_assert_int_eq(rows(), 0);
    /* Every call that needs PostgreSQL says so. */
    aipalq_task *t = NULL;
    const char *some_id = "01900000-0000-7000-8000-000000000001";
    ASSERT_ST(c, aipalq_get(c, some_id, &t), AIPALQ_EPG);
    ASSERT_ST(c, aipalq_cancel(c, some_id, NULL), AIPALQ_EPG);
    ASSERT_ST(c, aipalq_retry(c, some_id), AIPALQ_EPG);
    aipalq_list *l = NULL;
    ASSERT_ST(c, aipalq_list_pending(c, 10, 0, &l), AIPALQ_EPG);
    ck_assert_ptr_null(l);
    aipalq_filter *f = aipalq_filter_new();
    ASSERT_ST(c, aipalq_list_tasks(c, f, &l), AIPALQ_EPG);
    aipalq_filter_free(f);
    char *json = NULL;
    ASSERT_ST(c, aipalq_state_counts_json(c, &json), AIPALQ_EPG);
    ck_assert_ptr_null(json);
    ASSERT_ST(c, aipalq_migrate(c), AIPALQ_EPG);
    ASSERT_ST(c, aipalq_reconcile(c, 0, NULL, NULL), AIPALQ_EPG);
    ASSERT_ST(c, aipalq_relay_outbox(c, 10, NULL), AIPALQ_EPG);
    int rok = -1, pok = -1;
    ASSERT_ST(c, aipalq_ping(c, &rok, &pok), AIPALQ_EPG);
    ck_assert_int_eq(rok, 1);
    ck_assert_int_eq(pok, 0);
    ASSERT_ST(c, aipalq_client_connect(c), AIPALQ_EPG);
    /* Redis-only calls still work. */
    int64_t ready = -1;
    ASSERT_OK(c, aipalq_queue_depth(c, queue, &ready, NULL, NULL));
    ck_assert_int_eq(ready, 0);
    ck_assert_int_eq(tu_redis_ns_keys(ns), 0);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_both_down)
{
    aipalq_client *c = client(dead_redis, dead_pg);
    int rok = -1, pok = -1;
    ASSERT_ST(c, aipalq_ping(c, &rok, &pok), AIPALQ_EREDIS); /* the first that failed */
    ck_assert_int_eq(rok, 0);
    ck_assert_int_eq(pok, 0);
    char id[AIPALQ_ID_SIZE];
    ASSERT_ST(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL), AIPALQ_EPG);
    ASSERT_ST(c, aipalq_client_connect(c), AIPALQ_EREDIS);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_outbox_survives_redis_outage)
{
    /* Committed transactional tasks stay in the outbox while Redis is down
     * and are relayed once it answers. */
    aipalq_client *c = client(dead_redis, NULL);
    PGconn *pg = PQconnectdb(tu_db_url());
    ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue_tx(c, pg, "t.a", "{}", NULL, id, NULL));
    int64_t n = -1;
    ASSERT_ST(c, aipalq_relay_outbox(c, 10, &n), AIPALQ_EREDIS);
    ck_assert_int_eq(tu_pg_int("SELECT count(*) FROM aipalq_outbox"), 1);
    aipalq_client *good = client(NULL, NULL);
    ASSERT_OK(good, aipalq_relay_outbox(good, 10, &n));
    ck_assert_int_eq(n, 1);
    int64_t ready;
    tu_depth(good, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    aipalq_client_free(good);
    PQfinish(pg);
    aipalq_client_free(c);
}
END_TEST

/* A server that accepts connections (the kernel completes them into the
 * backlog) and never answers. Returns the listening socket; *port gets its
 * port. */
static int silent_server(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

START_TEST(test_redis_silent)
{
    /* Redis accepts but never answers: calls give up after the command
     * timeout instead of hanging, and enqueue still commits. */
    int port;
    int fd = silent_server(&port);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    aipalq_client *c = client(url, NULL);
    ASSERT_OK(c, aipalq_client_set_timeouts(c, 1000, 300));
    int64_t ready;
    aipalq_status st = aipalq_queue_depth(c, queue, &ready, NULL, NULL);
    ck_assert_msg(st == AIPALQ_EREDIS || st == AIPALQ_ETIMEOUT, "got %s", aipalq_status_name(st));
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    ck_assert(tu_contains(aipalq_client_errmsg(c), "deferred"));
    ck_assert_int_eq(rows(), 1);
    int rok = -1, pok = -1;
    st = aipalq_ping(c, &rok, &pok);
    ck_assert_int_ne(st, AIPALQ_OK);
    ck_assert_int_eq(rok, 0);
    ck_assert_int_eq(pok, 1);
    aipalq_client_free(c);
    close(fd);
}
END_TEST

START_TEST(test_pg_silent)
{
    /* PostgreSQL accepts but never answers: the connect timeout ends it. */
    int port;
    int fd = silent_server(&port);
    char url[128];
    snprintf(url, sizeof url, "postgresql://aipalq@127.0.0.1:%d/aipalq", port);
    aipalq_client *c = client(NULL, url);
    ASSERT_OK(c, aipalq_client_set_timeouts(c, 1000, 1000));
    char id[AIPALQ_ID_SIZE];
    ASSERT_ST(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL), AIPALQ_EPG);
    ck_assert_int_eq(tu_redis_ns_keys(ns), 0);
    aipalq_client_free(c);
    close(fd);
}
END_TEST

int main(void)
{
    tu_require_services();
    tu_scratch_db_begin("unreachable");
    Suite *s = suite_create("fault_unreachable");
    TCase *tc = tcase_create("unreachable");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_redis_down_enqueue_deferred_then_reconciled);
    tcase_add_test(tc, test_redis_down_cancel_and_retry);
    tcase_add_test(tc, test_pg_down_nothing_written);
    tcase_add_test(tc, test_both_down);
    tcase_add_test(tc, test_outbox_survives_redis_outage);
    tcase_add_test(tc, test_redis_silent);
    tcase_add_test(tc, test_pg_silent);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    tu_scratch_db_end();
    return rc;
}
