/* Unit tests of the client handle and of misuse (lib/client.c, batch.c,
 * list.c, task.c): NULL and invalid handles, settings, and the errors a
 * client reports before it needs a server. Public API only. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

static const char *const UNREACHABLE_REDIS = "redis://127.0.0.1:1/0";
static const char *const UNREACHABLE_PG = "postgresql://127.0.0.1:1/x?connect_timeout=2";

/* Every function that takes a client, called with `c`, must give EMISUSE. */
static void all_misuse(aipalq_client *c)
{
    char id[AIPALQ_ID_SIZE] = "";
    int created = -1, ok1 = -1, ok2 = -1, version = -1;
    aipalq_task *task = (aipalq_task *)0x1;
    aipalq_list *list = (aipalq_list *)0x1;
    aipalq_state state = AIPALQ_STATE_RUNNING;
    int64_t n1 = -1, n2 = -1, n3 = -1;
    char *json = (char *)0x1;
    aipalq_batch *b = aipalq_batch_new();
    aipalq_filter *f = aipalq_filter_new();
    ck_assert_int_eq(aipalq_client_set_namespace(c, "x"), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_client_set_timeouts(c, 10, 10), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_client_set_synchronous_commit(c, 0), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_client_connect(c), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_ping(c, &ok1, &ok2), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_migrate(c), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_schema_version(c, &version), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_type_define(c, "t", "q"), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_type_set_priority(c, "t", 1), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_type_set_max_retries(c, "t", 1), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_type_set_backoff(c, "t", 1, 2, 3), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_type_set_time_limits(c, "t", 1, 2), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_type_set_result_ttl(c, "t", 5000), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_types_define_json(c, "[]"), AIPALQ_EMISUSE);
    ck_assert_ptr_null(aipalq_types_json(c));
    ck_assert_int_eq(aipalq_enqueue(c, "t", "{}", NULL, id, &created), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_enqueue_batch(c, b), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_enqueue_tx(c, NULL, "t", "{}", NULL, id, &created), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_enqueue_batch_tx(c, NULL, b), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_relay_outbox(c, 10, &n1), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_reconcile(c, 0, &n1, &n2), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_get(c, "00000000-0000-0000-0000-000000000000", &task), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_list_tasks(c, f, &list), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_list_pending(c, 10, 0, &list), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_list_failed(c, 10, 0, &list), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_cancel(c, "00000000-0000-0000-0000-000000000000", &state),
                     AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_retry(c, "00000000-0000-0000-0000-000000000000"), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_queue_depth(c, "q", &n1, &n2, &n3), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_state_counts_json(c, &json), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_client_errcode(c), AIPALQ_EMISUSE);
    ck_assert_ptr_nonnull(aipalq_client_errmsg(c));
    ck_assert_str_ne(aipalq_client_errmsg(c), "");
    aipalq_client_free(c); /* a no-op for a handle that is not a client */
    aipalq_batch_free(b);
    aipalq_filter_free(f);
}

START_TEST(test_null_client)
{
    all_misuse(NULL);
    ck_assert_str_eq(aipalq_client_errmsg(NULL), "invalid client handle");
}
END_TEST

START_TEST(test_wrong_handle)
{
    /* Memory that is not a client (zeroes, or some other object). */
    uint64_t fake[512];
    memset(fake, 0, sizeof fake);
    all_misuse((aipalq_client *)fake);
    memset(fake, 0xff, sizeof fake);
    all_misuse((aipalq_client *)fake);
}
END_TEST

START_TEST(test_freed_client)
{
    /* Reading a freed handle is what this checks, so it cannot run where
     * every such read is reported as an error. */
    if (UNDER_ASAN || RUNNING_ON_VALGRIND)
        return;
    aipalq_client *c = aipalq_client_new(UNREACHABLE_REDIS, UNREACHABLE_PG);
    ck_assert_ptr_nonnull(c);
    aipalq_client_free(c);
    ck_assert_int_eq(aipalq_client_errcode(c), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_type_define(c, "t", "q"), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_client_connect(c), AIPALQ_EMISUSE);
}
END_TEST

START_TEST(test_null_objects)
{
    /* Free functions take NULL. */
    aipalq_client_free(NULL);
    aipalq_opts_free(NULL);
    aipalq_batch_free(NULL);
    aipalq_batch_clear(NULL);
    aipalq_task_free(NULL);
    aipalq_filter_free(NULL);
    aipalq_list_free(NULL);
    aipalq_free(NULL);
    /* Batches */
    ck_assert_int_eq(aipalq_batch_add(NULL, "t", "{}", NULL), AIPALQ_EMISUSE);
    ck_assert_uint_eq(aipalq_batch_size(NULL), 0);
    ck_assert_ptr_null(aipalq_batch_id(NULL, 0));
    ck_assert_int_eq(aipalq_batch_created(NULL, 0), 0);
    /* Filters */
    ck_assert_int_eq(aipalq_filter_add_state(NULL, AIPALQ_STATE_PENDING), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_filter_set_type(NULL, "t"), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_filter_set_queue(NULL, "q"), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_filter_set_user_id(NULL, "u"), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_filter_set_page(NULL, 10, 0), AIPALQ_EMISUSE);
    ck_assert_int_eq(aipalq_filter_set_oldest_first(NULL, 1), AIPALQ_EMISUSE);
    /* Lists */
    ck_assert_uint_eq(aipalq_list_count(NULL), 0);
    ck_assert_ptr_null(aipalq_list_at(NULL, 0));
    ck_assert_int_eq(aipalq_list_total(NULL), 0);
    /* Task accessors */
    ck_assert_ptr_null(aipalq_task_id(NULL));
    ck_assert_ptr_null(aipalq_task_type(NULL));
    ck_assert_ptr_null(aipalq_task_queue(NULL));
    ck_assert_ptr_null(aipalq_task_params(NULL));
    ck_assert_ptr_null(aipalq_task_result(NULL));
    ck_assert_ptr_null(aipalq_task_json(NULL));
    ck_assert_ptr_null(aipalq_task_user_id(NULL));
    ck_assert_int_eq(aipalq_task_attempts(NULL), 0);
    ck_assert_int_eq(aipalq_task_priority(NULL), 0);
    ck_assert_int_eq(aipalq_task_created_ms(NULL), 0);
}
END_TEST

START_TEST(test_client_settings)
{
    aipalq_client *c = aipalq_client_new(UNREACHABLE_REDIS, UNREACHABLE_PG);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(aipalq_client_errmsg(c), "");
    ck_assert_int_eq(aipalq_client_errcode(c), AIPALQ_OK);
    char long_ns[80];
    memset(long_ns, 'n', 65);
    long_ns[65] = '\0';
    const char *bad[] = {NULL, "", "a b", "a:b", "{x}", long_ns};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ASSERT_ST(c, aipalq_client_set_namespace(c, bad[i]), AIPALQ_EINVAL);
        ck_assert_int_eq(aipalq_client_errcode(c), AIPALQ_EINVAL);
        ck_assert_str_ne(aipalq_client_errmsg(c), "");
    }
    long_ns[64] = '\0';
    ASSERT_OK(c, aipalq_client_set_namespace(c, long_ns));
    /* A success clears the message of the previous error. */
    ck_assert_str_eq(aipalq_client_errmsg(c), "");
    ck_assert_int_eq(aipalq_client_errcode(c), AIPALQ_OK);
    ASSERT_ST(c, aipalq_client_set_timeouts(c, 0, 100), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_client_set_timeouts(c, 100, 0), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_client_set_timeouts(c, -5, -5), AIPALQ_EINVAL);
    ASSERT_OK(c, aipalq_client_set_timeouts(c, 1, 1));
    ASSERT_OK(c, aipalq_client_set_timeouts(c, 5000, 10000));
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_bad_redis_url_reported)
{
    const char *bad[] = {"rediss://127.0.0.1:6379", "redis://", "redis://h:0", "http://x",
                         "redis://h/db"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        aipalq_client *c = aipalq_client_new(bad[i], UNREACHABLE_PG);
        ck_assert_ptr_nonnull(c); /* accepted: reported by the first call that needs it */
        ASSERT_ST(c, aipalq_client_connect(c), AIPALQ_EBADURL);
        ck_assert(tu_contains(aipalq_client_errmsg(c), "Redis URL"));
        int64_t r = -1;
        ASSERT_ST(c, aipalq_queue_depth(c, "q", &r, NULL, NULL), AIPALQ_EBADURL);
        int rok = -1, pok = -1;
        ck_assert_int_ne(aipalq_ping(c, &rok, &pok), AIPALQ_OK);
        ck_assert_int_eq(rok, 0);
        ck_assert_int_eq(pok, 0);
        aipalq_client_free(c);
    }
}
END_TEST

START_TEST(test_bad_database_url_reported)
{
    const char *bad[] = {"postgresql://127.0.0.1:notaport/db", "postgresql://%zz@127.0.0.1/db",
                         "nosuchkeyword=1", "postgresql://[::1/db"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        aipalq_client *c = aipalq_client_new(UNREACHABLE_REDIS, bad[i]);
        ck_assert_ptr_nonnull(c);
        int version = -1;
        ASSERT_ST(c, aipalq_schema_version(c, &version), AIPALQ_EBADURL);
        aipalq_client_free(c);
    }
}
END_TEST

START_TEST(test_enqueue_checks_before_any_server)
{
    /* Errors of the caller's input need no server: unknown types and bad
     * params are refused even when nothing is reachable. */
    aipalq_client *c = aipalq_client_new(UNREACHABLE_REDIS, UNREACHABLE_PG);
    char id[AIPALQ_ID_SIZE];
    ASSERT_ST(c, aipalq_enqueue(c, "nope", "{}", NULL, id, NULL), AIPALQ_EUNKNOWNTYPE);
    ck_assert(tu_contains(aipalq_client_errmsg(c), "nope"));
    ASSERT_OK(c, aipalq_type_define(c, "t", "q"));
    ASSERT_ST(c, aipalq_enqueue(c, "t", "{", NULL, id, NULL), AIPALQ_EBADJSON);
    ASSERT_ST(c, aipalq_enqueue(c, "t", "[1]", NULL, id, NULL), AIPALQ_ENOTOBJECT);
    ASSERT_ST(c, aipalq_enqueue(c, NULL, "{}", NULL, id, NULL), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_enqueue(c, "t", "{}", NULL, NULL, NULL), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_enqueue_tx(c, NULL, "t", "{}", NULL, id, NULL), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_enqueue_batch(c, NULL), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_enqueue_batch_tx(c, NULL, NULL), AIPALQ_EINVAL);
    aipalq_batch *b = aipalq_batch_new();
    ASSERT_OK(c, aipalq_enqueue_batch(c, b)); /* empty: nothing to do */
    ASSERT_OK(c, aipalq_batch_add(b, "t", "{}", NULL));
    ASSERT_OK(c, aipalq_batch_add(b, "missing", "{}", NULL));
    ASSERT_ST(c, aipalq_enqueue_batch(c, b), AIPALQ_EUNKNOWNTYPE);
    ck_assert(tu_contains(aipalq_client_errmsg(c), "batch task 1"));
    ck_assert_ptr_null(aipalq_batch_id(b, 0));
    aipalq_batch_free(b);
    /* Malformed ids are refused before any server is asked. */
    aipalq_task *t = NULL;
    ASSERT_ST(c, aipalq_get(c, "nope", &t), AIPALQ_EBADID);
    ck_assert_ptr_null(t);
    ASSERT_ST(c, aipalq_get(c, NULL, &t), AIPALQ_EBADID);
    ASSERT_ST(c, aipalq_get(c, "00000000-0000-0000-0000-000000000000", NULL), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_cancel(c, "1234", NULL), AIPALQ_EBADID);
    ASSERT_ST(c, aipalq_retry(c, ""), AIPALQ_EBADID);
    ASSERT_ST(c, aipalq_retry(c, NULL), AIPALQ_EBADID);
    ASSERT_ST(c, aipalq_queue_depth(c, "bad queue", NULL, NULL, NULL), AIPALQ_EQUEUE);
    ASSERT_ST(c, aipalq_queue_depth(c, NULL, NULL, NULL, NULL), AIPALQ_EQUEUE);
    ASSERT_ST(c, aipalq_relay_outbox(c, 0, NULL), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_relay_outbox(c, 10001, NULL), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_reconcile(c, -1, NULL, NULL), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_state_counts_json(c, NULL), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_schema_version(c, NULL), AIPALQ_EINVAL);
    aipalq_list *l = NULL;
    ASSERT_ST(c, aipalq_list_pending(c, 0, 0, &l), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_list_failed(c, 1001, 0, &l), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_list_failed(c, 10, -1, &l), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_list_tasks(c, NULL, &l), AIPALQ_EINVAL);
    ck_assert_ptr_null(l);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_batch_object)
{
    aipalq_batch *b = aipalq_batch_new();
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(aipalq_batch_size(b), 0);
    ck_assert_int_eq(aipalq_batch_add(b, NULL, "{}", NULL), AIPALQ_EINVAL);
    aipalq_opts *o = aipalq_opts_new();
    aipalq_opts_set_idempotency_key(o, "k");
    aipalq_opts_set_user_id(o, "u");
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(aipalq_batch_add(b, "t", i % 2 ? NULL : "{}", i % 3 ? o : NULL),
                         AIPALQ_OK);
    aipalq_opts_free(o); /* the batch holds copies */
    ck_assert_uint_eq(aipalq_batch_size(b), 1000);
    /* Not enqueued: no ids. */
    ck_assert_ptr_null(aipalq_batch_id(b, 0));
    ck_assert_int_eq(aipalq_batch_created(b, 0), 0);
    ck_assert_ptr_null(aipalq_batch_id(b, 5000));
    aipalq_batch_clear(b);
    ck_assert_uint_eq(aipalq_batch_size(b), 0);
    ck_assert_int_eq(aipalq_batch_add(b, "t", "{}", NULL), AIPALQ_OK);
    ck_assert_uint_eq(aipalq_batch_size(b), 1);
    aipalq_batch_free(b);
}
END_TEST

START_TEST(test_filter_object)
{
    aipalq_filter *f = aipalq_filter_new();
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(aipalq_filter_add_state(f, (aipalq_state)7), AIPALQ_EINVAL);
    ck_assert_int_eq(aipalq_filter_add_state(f, (aipalq_state)-1), AIPALQ_EINVAL);
    ck_assert_int_eq(aipalq_filter_add_state(f, AIPALQ_STATE_CANCELLED), AIPALQ_OK);
    ck_assert_int_eq(aipalq_filter_set_page(f, 0, 0), AIPALQ_EINVAL);
    ck_assert_int_eq(aipalq_filter_set_page(f, 1001, 0), AIPALQ_EINVAL);
    ck_assert_int_eq(aipalq_filter_set_page(f, 10, -1), AIPALQ_EINVAL);
    ck_assert_int_eq(aipalq_filter_set_page(f, 1, 0), AIPALQ_OK);
    ck_assert_int_eq(aipalq_filter_set_page(f, 1000, INT64_MAX), AIPALQ_OK);
    ck_assert_int_eq(aipalq_filter_set_type(f, "t"), AIPALQ_OK);
    ck_assert_int_eq(aipalq_filter_set_type(f, NULL), AIPALQ_OK);
    ck_assert_int_eq(aipalq_filter_set_queue(f, "q"), AIPALQ_OK);
    char user[256];
    memset(user, 'u', 201);
    user[201] = '\0';
    ck_assert_int_eq(aipalq_filter_set_user_id(f, user), AIPALQ_EINVAL);
    ck_assert_int_eq(aipalq_filter_set_user_id(f, "u"), AIPALQ_OK);
    ck_assert_int_eq(aipalq_filter_set_oldest_first(f, 7), AIPALQ_OK);
    aipalq_filter_free(f);
}
END_TEST

START_TEST(test_free_does_not_connect)
{
    /* A "Redis" that accepts connections (the kernel completes them into the
     * backlog) but never answers: freeing a client that never used Redis must
     * not open a connection to it. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 8), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", ntohs(a.sin_port));
    aipalq_client *c = aipalq_client_new(url, UNREACHABLE_PG);
    ASSERT_OK(c, aipalq_client_set_timeouts(c, 1000, 1));
    ASSERT_OK(c, aipalq_type_define(c, "t", "q"));
    aipalq_client_free(c);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    int conn = accept(fd, NULL, NULL);
    ck_assert_msg(conn < 0 && (errno == EAGAIN || errno == EWOULDBLOCK),
                  "aipalq_client_free connected to Redis");
    close(fd);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("client");
    TCase *tc = tcase_create("handles");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_null_client);
    tcase_add_test(tc, test_wrong_handle);
    tcase_add_test(tc, test_freed_client);
    tcase_add_test(tc, test_null_objects);
    tcase_add_test(tc, test_client_settings);
    tcase_add_test(tc, test_bad_redis_url_reported);
    tcase_add_test(tc, test_bad_database_url_reported);
    tcase_add_test(tc, test_enqueue_checks_before_any_server);
    tcase_add_test(tc, test_batch_object);
    tcase_add_test(tc, test_filter_object);
    tcase_add_test(tc, test_free_does_not_connect);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
