/* Integration tests of enqueue and get (lib/enqueue.c, task.c, dispatch.c,
 * queue_stats.c) on a real Redis and PostgreSQL. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "testutil.h"

static char ns[64], queue[64];

static void setup(void)
{
    tu_pg_truncate();
    tu_unique("en", ns, sizeof ns);
    tu_unique("q", queue, sizeof queue);
}

static void teardown(void)
{
    tu_redis_ns_del(ns);
}

static char *key(const char *suffix)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "%s:{%s}:%s", ns, queue, suffix);
    return buf;
}

static long long task_rows(void)
{
    return tu_pg_int("SELECT count(*) FROM aipalq_tasks");
}

static int json_equal(const char *a, const char *b)
{
    cJSON *x = cJSON_Parse(a), *y = cJSON_Parse(b);
    int eq = x && y && cJSON_Compare(x, y, 1);
    cJSON_Delete(x);
    cJSON_Delete(y);
    return eq;
}

START_TEST(test_enqueue_and_get_all_fields)
{
    aipalq_client *c = tu_client(ns, queue);
    aipalq_opts *o = aipalq_opts_new();
    ck_assert_int_eq(aipalq_opts_set_priority(o, 7), AIPALQ_OK);
    ck_assert_int_eq(aipalq_opts_set_user_id(o, "user-1"), AIPALQ_OK);
    ck_assert_int_eq(aipalq_opts_set_max_retries(o, 9), AIPALQ_OK);
    ck_assert_int_eq(aipalq_opts_set_idempotency_key(o, "key-all-fields"), AIPALQ_OK);
    const char *params = "{\"b\":1,\"a\":[true,null,\"x\\u00e9\"],\"n\":{\"f\":-1.5e3}}";
    char id[AIPALQ_ID_SIZE] = "";
    int created = -1;
    int64_t before = tu_pg_int("SELECT (extract(epoch FROM now()) * 1000)::bigint");
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", params, o, id, &created));
    int64_t after = tu_pg_int("SELECT (extract(epoch FROM now()) * 1000)::bigint");
    ck_assert_int_eq(created, 1);
    ck_assert_uint_eq(strlen(id), 36);
    ck_assert_int_eq(id[14], '7');
    aipalq_opts_free(o);

    aipalq_task *t = NULL;
    ASSERT_OK(c, aipalq_get(c, id, &t));
    ck_assert_str_eq(aipalq_task_id(t), id);
    ck_assert_str_eq(aipalq_task_type(t), "t.a");
    ck_assert_str_eq(aipalq_task_queue(t), queue);
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_PENDING);
    ck_assert_int_eq(aipalq_task_priority(t), 7);
    ck_assert_msg(json_equal(aipalq_task_params(t), params), "params came back as %s",
                  aipalq_task_params(t));
    ck_assert_ptr_null(aipalq_task_result(t));
    ck_assert_ptr_null(aipalq_task_error_message(t));
    ck_assert_ptr_null(aipalq_task_error_detail(t));
    ck_assert_int_eq(aipalq_task_attempts(t), 0);
    ck_assert_int_eq(aipalq_task_max_retries(t), 9);
    ck_assert_int_ge(aipalq_task_created_ms(t), before);
    ck_assert_int_le(aipalq_task_created_ms(t), after);
    ck_assert_int_eq(aipalq_task_started_ms(t), 0);
    ck_assert_int_eq(aipalq_task_completed_ms(t), 0);
    ck_assert_int_ge(aipalq_task_updated_ms(t), aipalq_task_created_ms(t));
    ck_assert_int_eq(aipalq_task_run_at_ms(t), 0);
    ck_assert_ptr_null(aipalq_task_worker_id(t));
    ck_assert_str_eq(aipalq_task_user_id(t), "user-1");
    ck_assert_str_eq(aipalq_task_idempotency_key(t), "key-all-fields");
    ck_assert_int_eq(aipalq_task_progress(t), 0);
    ck_assert_ptr_null(aipalq_task_progress_message(t));
    ck_assert_int_eq(aipalq_task_cancel_requested(t), 0);

    /* The JSON form carries the same record. */
    const char *json = aipalq_task_json(t);
    ck_assert_ptr_nonnull(json);
    ck_assert_ptr_eq(aipalq_task_json(t), json); /* built once, owned by the task */
    cJSON *j = cJSON_Parse(json);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "task_id")->valuestring, id);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "task_type")->valuestring, "t.a");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "queue")->valuestring, queue);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring, "pending");
    ck_assert_int_eq(cJSON_GetObjectItem(j, "priority")->valueint, 7);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "user_id")->valuestring, "user-1");
    char *pj = cJSON_PrintUnformatted(cJSON_GetObjectItem(j, "params"));
    ck_assert_msg(json_equal(pj, params), "params in JSON: %s", pj);
    free(pj);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "result")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "started_at")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "duration_seconds")));
    const char *created_at = cJSON_GetObjectItem(j, "created_at")->valuestring;
    ck_assert_uint_eq(strlen(created_at), 24); /* 2026-01-01T00:00:00.000Z */
    ck_assert_int_eq(created_at[23], 'Z');
    ck_assert_int_eq(cJSON_GetObjectItem(j, "attempts")->valueint, 0);
    ck_assert_int_eq(cJSON_GetObjectItem(j, "max_retries")->valueint, 9);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "idempotency_key")->valuestring, "key-all-fields");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "cancel_requested")));
    cJSON_Delete(j);
    aipalq_task_free(t);

    /* And Redis holds it, ready, with the payload a worker receives. */
    int64_t ready, scheduled, leased;
    tu_depth(c, queue, &ready, &scheduled, &leased);
    ck_assert_int_eq(ready, 1);
    ck_assert_int_eq(scheduled, 0);
    ck_assert_int_eq(leased, 0);
    char *payload = tu_redis_hget(key("job"), id);
    ck_assert_ptr_nonnull(payload);
    cJSON *p = cJSON_Parse(payload);
    ck_assert_msg(p != NULL, "payload is not JSON: %s", payload);
    ck_assert_str_eq(cJSON_GetObjectItem(p, "id")->valuestring, id);
    ck_assert_str_eq(cJSON_GetObjectItem(p, "type")->valuestring, "t.a");
    ck_assert_str_eq(cJSON_GetObjectItem(p, "queue")->valuestring, queue);
    ck_assert_int_eq(cJSON_GetObjectItem(p, "priority")->valueint, 7);
    ck_assert_int_eq(cJSON_GetObjectItem(p, "max_retries")->valueint, 9);
    ck_assert_str_eq(cJSON_GetObjectItem(p, "user_id")->valuestring, "user-1");
    char *pp = cJSON_PrintUnformatted(cJSON_GetObjectItem(p, "params"));
    ck_assert_msg(json_equal(pp, params), "params in the payload: %s", pp);
    free(pp);
    cJSON_Delete(p);
    free(payload);
    char *meta = tu_redis_hget(key("meta"), id);
    ck_assert_ptr_nonnull(meta);
    ck_assert_int_eq(meta[0], 'p');
    free(meta);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_type_defaults_apply)
{
    aipalq_client *c = tu_client(ns, queue);
    ASSERT_OK(c, aipalq_type_set_priority(c, "t.b", 3));
    ASSERT_OK(c, aipalq_type_set_max_retries(c, "t.b", 0));
    char id[AIPALQ_ID_SIZE];
    int created = -1;
    ASSERT_OK(c, aipalq_enqueue(c, "t.b", NULL, NULL, id, &created));
    ck_assert_int_eq(created, 1);
    aipalq_task *t = NULL;
    ASSERT_OK(c, aipalq_get(c, id, &t));
    ck_assert_int_eq(aipalq_task_priority(t), 3);
    ck_assert_int_eq(aipalq_task_max_retries(t), 0);
    ck_assert_str_eq(aipalq_task_params(t), "{}"); /* NULL params are {} */
    ck_assert_ptr_null(aipalq_task_user_id(t));
    ck_assert_ptr_null(aipalq_task_idempotency_key(t));
    aipalq_task_free(t);
    /* A queue given in the options overrides the type's. */
    char other[64];
    tu_unique("qo", other, sizeof other);
    aipalq_opts *o = aipalq_opts_new();
    aipalq_opts_set_queue(o, other);
    ASSERT_OK(c, aipalq_enqueue(c, "t.b", "{}", o, id, NULL));
    aipalq_opts_free(o);
    ASSERT_OK(c, aipalq_get(c, id, &t));
    ck_assert_str_eq(aipalq_task_queue(t), other);
    aipalq_task_free(t);
    int64_t ready;
    tu_depth(c, other, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_get_unknown_and_malformed)
{
    aipalq_client *c = tu_client(ns, queue);
    aipalq_task *t = (aipalq_task *)0x1;
    ASSERT_ST(c, aipalq_get(c, "00000000-0000-7000-8000-000000000000", &t), AIPALQ_ENOTFOUND);
    ck_assert_ptr_null(t);
    ck_assert(tu_contains(aipalq_client_errmsg(c), "00000000-0000-7000-8000-000000000000"));
    /* An id that was never enqueued, in the current partition's range. */
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", NULL, NULL, id, NULL));
    id[35] = id[35] == '0' ? '1' : '0';
    ASSERT_ST(c, aipalq_get(c, id, &t), AIPALQ_ENOTFOUND);
    const char *bad[] = {"", "nope", "0190a5b2-7c3e-7def-8123-456789abcde",
                         "0190a5b2-7c3e-7def-8123-456789abcdeg",
                         "0190a5b2-7c3e-7def-8123-456789abcdef'; DROP TABLE aipalq_tasks; --"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ASSERT_ST(c, aipalq_get(c, bad[i], &t), AIPALQ_EBADID);
    ASSERT_ST(c, aipalq_get(c, NULL, &t), AIPALQ_EBADID);
    /* Uppercase is the same UUID. */
    char upper[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", NULL, NULL, id, NULL));
    for (int i = 0; i < AIPALQ_ID_SIZE; i++)
        upper[i] = (char)(id[i] >= 'a' && id[i] <= 'f' ? id[i] - 32 : id[i]);
    ASSERT_OK(c, aipalq_get(c, upper, &t));
    ck_assert_str_eq(aipalq_task_id(t), id);
    aipalq_task_free(t);
    aipalq_client_free(c);
}
END_TEST

/* One bad input: its own status, and nothing written anywhere. */
static void refused(aipalq_client *c, const char *type, const char *params, const aipalq_opts *opts,
                    aipalq_status want, const char *what)
{
    char id[AIPALQ_ID_SIZE] = "untouched";
    ASSERT_ST(c, aipalq_enqueue(c, type, params, opts, id, NULL), want);
    ck_assert_msg(strcmp(aipalq_client_errmsg(c), "") != 0, "%s: no message", what);
    ck_assert_int_eq(aipalq_client_errcode(c), want);
    ck_assert_msg(task_rows() == 0, "%s left a row in aipalq_tasks", what);
    ck_assert_msg(tu_redis_ns_keys(ns) == 0, "%s left keys in Redis", what);
    ck_assert_msg(tu_pg_int("SELECT count(*) FROM aipalq_idempotency") == 0,
                  "%s claimed an idempotency key", what);
}

START_TEST(test_bad_input_leaves_nothing)
{
    aipalq_client *c = tu_client(ns, queue);
    aipalq_opts *o = aipalq_opts_new();
    aipalq_opts_set_idempotency_key(o, "never-claimed");
    char *big = malloc(AIPALQ_MAX_PARAMS_BYTES + 16);
    snprintf(big, 16, "{\"a\":\"");
    memset(big + 6, 'x', AIPALQ_MAX_PARAMS_BYTES);
    strcpy(big + 6 + AIPALQ_MAX_PARAMS_BYTES - 7, "\"}");
    ck_assert_uint_eq(strlen(big), AIPALQ_MAX_PARAMS_BYTES + 1);

    refused(c, "no.such.type", "{}", o, AIPALQ_EUNKNOWNTYPE, "unknown type");
    ck_assert(tu_contains(aipalq_client_errmsg(c), "no.such.type"));
    refused(c, "t.a", "{\"a\":", o, AIPALQ_EBADJSON, "invalid JSON");
    refused(c, "t.a", "[1]", o, AIPALQ_ENOTOBJECT, "array params");
    refused(c, "t.a", "\"x\"", o, AIPALQ_ENOTOBJECT, "string params");
    refused(c, "t.a", "3", o, AIPALQ_ENOTOBJECT, "number params");
    refused(c, "t.a", big, o, AIPALQ_ETOOBIG, "params over 1 MiB");
    refused(c, "t.a", "{\"a\":\"\\u0000\"}", o, AIPALQ_EBADJSON, "\\u0000");
    refused(c, "t.a", "{\"a\":\"\xff\"}", o, AIPALQ_EBADJSON, "invalid UTF-8");
    refused(c, "t.a", "{\"a\":01}", o, AIPALQ_EBADJSON, "a number PostgreSQL refuses");
    refused(c, "t.a", "{\"a\":\"\x01\"}", o, AIPALQ_EBADJSON, "a raw control character");
    refused(c, NULL, "{}", o, AIPALQ_EINVAL, "NULL type");
    char id[AIPALQ_ID_SIZE];
    ASSERT_ST(c, aipalq_enqueue(c, "t.a", "{}", NULL, NULL, NULL), AIPALQ_EINVAL);
    ck_assert_int_eq(task_rows(), 0);
    (void)id;
    free(big);
    aipalq_opts_free(o);

    /* Right after all that, a good one goes through: one row, in Redis. */
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    ck_assert_int_eq(task_rows(), 1);
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_bad_redis_url_commits_nothing)
{
    aipalq_client *c = aipalq_client_new("rediss://127.0.0.1:6379/0", NULL);
    ASSERT_OK(c, aipalq_type_define(c, "t.a", queue));
    char id[AIPALQ_ID_SIZE];
    ASSERT_ST(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL), AIPALQ_EBADURL);
    aipalq_batch *b = aipalq_batch_new();
    aipalq_batch_add(b, "t.a", "{}", NULL);
    ASSERT_ST(c, aipalq_enqueue_batch(c, b), AIPALQ_EBADURL);
    aipalq_batch_free(b);
    ck_assert_int_eq(task_rows(), 0);
    aipalq_client_free(c);
}
END_TEST

/* The library adds its own connection options (jit off); the URL's own
 * options must survive that: here they make every transaction read-only. */
START_TEST(test_url_options_are_kept)
{
    const char *base = tu_db_url();
    char url[1024];
    snprintf(url, sizeof url, "%s%soptions=-c%%20default_transaction_read_only%%3Don", base,
             strchr(base, '?') ? "&" : "?");
    aipalq_client *c = aipalq_client_new(NULL, url);
    ASSERT_OK(c, aipalq_client_set_namespace(c, ns));
    ASSERT_OK(c, aipalq_type_define(c, "t.a", queue));
    char id[AIPALQ_ID_SIZE];
    ASSERT_ST(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL), AIPALQ_EPG);
    ck_assert_msg(tu_contains(aipalq_client_errmsg(c), "read-only"), "%s", aipalq_client_errmsg(c));
    ck_assert_int_eq(task_rows(), 0);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_priority_order_in_redis)
{
    aipalq_client *c = tu_client(ns, queue);
    const int prios[] = {1, 5, 10, 5, 3, 10, 1};
    char ids[7][AIPALQ_ID_SIZE];
    for (int i = 0; i < 7; i++) {
        aipalq_opts *o = aipalq_opts_new();
        aipalq_opts_set_priority(o, prios[i]);
        ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", o, ids[i], NULL));
        aipalq_opts_free(o);
    }
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL); /* also waits for dispatches sent ahead */
    ck_assert_int_eq(ready, 7);
    /* Most urgent first; FIFO within a priority. */
    const int want[] = {2, 5, 1, 3, 4, 0, 6};
    size_t n = 0;
    char **got = tu_redis_zrange(key("ready"), &n);
    ck_assert_uint_eq(n, 7);
    for (int i = 0; i < 7; i++)
        ck_assert_msg(strcmp(got[i], ids[want[i]]) == 0, "rank %d: %s, want %s (priority %d)", i,
                      got[i], ids[want[i]], prios[want[i]]);
    tu_strv_free(got, n);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_many_single_enqueues_in_order)
{
    /* Single enqueues send their dispatch ahead without waiting; all of them
     * must land, in order. */
    aipalq_client *c = tu_client(ns, queue);
    char ids[200][AIPALQ_ID_SIZE];
    for (int i = 0; i < 200; i++)
        ASSERT_OK(c, aipalq_enqueue(c, i % 2 ? "t.a" : "t.b", "{}", NULL, ids[i], NULL));
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 200);
    size_t n = 0;
    char **got = tu_redis_zrange(key("ready"), &n);
    ck_assert_uint_eq(n, 200);
    for (int i = 0; i < 200; i++)
        ck_assert_str_eq(got[i], ids[i]);
    tu_strv_free(got, n);
    ck_assert_int_eq(task_rows(), 200);
    aipalq_client_free(c);
    /* A client freed right after sending: its last dispatch still lands. */
    c = tu_client(ns, queue);
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    aipalq_client_free(c);
    c = tu_client(ns, queue);
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 201);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_delayed_task_is_scheduled)
{
    aipalq_client *c = tu_client(ns, queue);
    aipalq_opts *o = aipalq_opts_new();
    ck_assert_int_eq(aipalq_opts_set_delay_ms(o, 3600000), AIPALQ_OK);
    char id[AIPALQ_ID_SIZE];
    int64_t before = tu_pg_int("SELECT (extract(epoch FROM now()) * 1000)::bigint");
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", o, id, NULL));
    aipalq_task *t = NULL;
    ASSERT_OK(c, aipalq_get(c, id, &t));
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_SCHEDULED);
    ck_assert_int_ge(aipalq_task_run_at_ms(t), before + 3600000 - 60000);
    ck_assert_int_le(aipalq_task_run_at_ms(t), before + 3600000 + 60000);
    aipalq_task_free(t);
    int64_t ready, scheduled, leased;
    tu_depth(c, queue, &ready, &scheduled, &leased);
    ck_assert_int_eq(ready, 0);
    ck_assert_int_eq(scheduled, 1);
    ck_assert_int_eq(leased, 0);
    /* A run-at time in the future: scheduled too; in the past: ready now. */
    ck_assert_int_eq(aipalq_opts_set_run_at_ms(o, 4102444800000LL), AIPALQ_OK); /* 2100 */
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", o, id, NULL));
    ASSERT_OK(c, aipalq_get(c, id, &t));
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_SCHEDULED);
    ck_assert_int_eq(aipalq_task_run_at_ms(t), 4102444800000LL);
    aipalq_task_free(t);
    ck_assert_int_eq(aipalq_opts_set_run_at_ms(o, 1000000000000LL), AIPALQ_OK); /* 2001 */
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", o, id, NULL));
    ASSERT_OK(c, aipalq_get(c, id, &t));
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_PENDING);
    ck_assert_int_eq(aipalq_task_run_at_ms(t), 0);
    aipalq_task_free(t);
    tu_depth(c, queue, &ready, &scheduled, &leased);
    ck_assert_int_eq(ready, 1);
    ck_assert_int_eq(scheduled, 2);
    aipalq_opts_free(o);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_idempotency_key)
{
    aipalq_client *c = tu_client(ns, queue);
    aipalq_opts *o = aipalq_opts_new();
    aipalq_opts_set_idempotency_key(o, "order-42");
    char id1[AIPALQ_ID_SIZE], id2[AIPALQ_ID_SIZE], id3[AIPALQ_ID_SIZE];
    int created = -1;
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{\"n\":1}", o, id1, &created));
    ck_assert_int_eq(created, 1);
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{\"n\":2}", o, id2, &created));
    ck_assert_int_eq(created, 0);
    ck_assert_str_eq(id1, id2);
    ck_assert_int_eq(task_rows(), 1);
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    /* The first task's params stand. */
    aipalq_task *t = NULL;
    ASSERT_OK(c, aipalq_get(c, id1, &t));
    ck_assert_msg(json_equal(aipalq_task_params(t), "{\"n\":1}"), "%s", aipalq_task_params(t));
    aipalq_task_free(t);
    /* Another key is another task. */
    aipalq_opts *o2 = aipalq_opts_new();
    aipalq_opts_set_idempotency_key(o2, "order-43");
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", o2, id3, &created));
    ck_assert_int_eq(created, 1);
    ck_assert_str_ne(id3, id1);
    aipalq_opts_free(o2);
    /* Once the task is final (cancelled), the key makes a new task. */
    aipalq_state st;
    ASSERT_OK(c, aipalq_cancel(c, id1, &st));
    ck_assert_int_eq(st, AIPALQ_STATE_CANCELLED);
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{\"n\":3}", o, id2, &created));
    ck_assert_int_eq(created, 1);
    ck_assert_str_ne(id2, id1);
    ASSERT_OK(c, aipalq_get(c, id2, &t));
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_PENDING);
    ck_assert_str_eq(aipalq_task_idempotency_key(t), "order-42");
    aipalq_task_free(t);
    /* ...and that new task holds the key now. */
    char id4[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", o, id4, &created));
    ck_assert_int_eq(created, 0);
    ck_assert_str_eq(id4, id2);
    ck_assert_int_eq(task_rows(), 3);
    aipalq_opts_free(o);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_state_counts_json)
{
    aipalq_client *c = tu_client(ns, queue);
    char id[AIPALQ_ID_SIZE];
    for (int i = 0; i < 3; i++)
        ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    aipalq_opts *o = aipalq_opts_new();
    aipalq_opts_set_delay_ms(o, 600000);
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", o, id, NULL));
    aipalq_opts_free(o);
    ASSERT_OK(c, aipalq_cancel(c, id, NULL));
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    char *json = NULL;
    ASSERT_OK(c, aipalq_state_counts_json(c, &json));
    ck_assert_ptr_nonnull(json);
    cJSON *j = cJSON_Parse(json);
    ck_assert_msg(cJSON_IsObject(j), "not an object: %s", json);
    cJSON *q = cJSON_GetObjectItem(j, queue);
    ck_assert_msg(cJSON_IsObject(q), "queue missing: %s", json);
    ck_assert_int_eq(cJSON_GetObjectItem(q, "pending")->valueint, 4);
    ck_assert_int_eq(cJSON_GetObjectItem(q, "cancelled_last_hour")->valueint, 1);
    ck_assert_ptr_null(cJSON_GetObjectItem(q, "scheduled"));
    ck_assert_ptr_null(cJSON_GetObjectItem(q, "running"));
    cJSON_Delete(j);
    aipalq_free(json);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_ping_and_connect)
{
    aipalq_client *c = tu_client(ns, queue);
    ASSERT_OK(c, aipalq_client_connect(c));
    int rok = -1, pok = -1;
    ASSERT_OK(c, aipalq_ping(c, &rok, &pok));
    ck_assert_int_eq(rok, 1);
    ck_assert_int_eq(pok, 1);
    ASSERT_OK(c, aipalq_ping(c, NULL, NULL));
    ck_assert_str_eq(aipalq_client_errmsg(c), "");
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_errmsg_cleared_by_success)
{
    aipalq_client *c = tu_client(ns, queue);
    char id[AIPALQ_ID_SIZE];
    ASSERT_ST(c, aipalq_enqueue(c, "nope", "{}", NULL, id, NULL), AIPALQ_EUNKNOWNTYPE);
    ck_assert_str_ne(aipalq_client_errmsg(c), "");
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    ck_assert_str_eq(aipalq_client_errmsg(c), "");
    ck_assert_int_eq(aipalq_client_errcode(c), AIPALQ_OK);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_concurrent_idempotent_enqueues)
{
    /* Many processes enqueue with one key at once: one task, one creator,
     * the same id for all. */
    enum { NPROC = 8 };
    int out[2], gate[2];
    ck_assert_int_eq(pipe(out), 0);
    ck_assert_int_eq(pipe(gate), 0);
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            close(gate[1]);
            char b;
            (void)!read(gate[0], &b, 1);
            aipalq_client *c = aipalq_client_new(NULL, NULL);
            /* Under valgrind eight processes start slowly: generous timeouts. */
            aipalq_client_set_timeouts(c, 60000, 60000);
            aipalq_client_set_namespace(c, ns);
            aipalq_type_define(c, "t.a", queue);
            aipalq_opts *o = aipalq_opts_new();
            aipalq_opts_set_idempotency_key(o, "race");
            char line[256] = "";
            int created = -1;
            char id[AIPALQ_ID_SIZE];
            aipalq_status st = aipalq_enqueue(c, "t.a", "{}", o, id, &created);
            if (st == AIPALQ_OK)
                snprintf(line, sizeof line, "%s %d\n", id, created);
            else
                snprintf(line, sizeof line, "ERR %s %.200s\n", aipalq_status_name(st),
                         aipalq_client_errmsg(c));
            (void)!write(out[1], line, strlen(line));
            aipalq_opts_free(o);
            aipalq_client_free(c);
            _exit(0);
        }
    }
    close(gate[0]);
    close(gate[1]);
    close(out[1]);
    for (int i = 0; i < NPROC; i++)
        waitpid(pids[i], NULL, 0);
    char buf[NPROC * 256 + 1];
    size_t n = 0;
    ssize_t r;
    while ((r = read(out[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    close(out[0]);
    char first[AIPALQ_ID_SIZE] = "";
    int creators = 0, lines = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        lines++;
        ck_assert_msg(strncmp(line, "ERR", 3) != 0, "an enqueue failed: %s", line);
        char id[AIPALQ_ID_SIZE];
        int created = -1;
        ck_assert_int_eq(sscanf(line, "%36s %d", id, &created), 2);
        if (!first[0])
            snprintf(first, sizeof first, "%s", id);
        ck_assert_str_eq(id, first);
        creators += created;
    }
    ck_assert_int_eq(lines, NPROC);
    ck_assert_int_eq(creators, 1);
    ck_assert_int_eq(task_rows(), 1);
    aipalq_client *c = tu_client(ns, queue);
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_redis_database_from_url)
{
    /* redis://host:port/5 works in database 5, not 0. */
    const char *env = getenv("AIPALQ_REDIS_URL");
    char url[256];
    snprintf(url, sizeof url, "%.*s/5", (int)(strrchr(env, '/') - env), env);
    aipalq_client *c = aipalq_client_new(url, NULL);
    ASSERT_OK(c, aipalq_client_set_namespace(c, ns));
    ASSERT_OK(c, aipalq_type_define(c, "t.a", queue));
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    ck_assert_int_eq(tu_redis_ns_keys(ns), 0); /* nothing in database 0 */
    const char *hp = env + 8;
    char host[128];
    int port = 6379;
    sscanf(hp, "%127[^:]:%d", host, &port);
    redisContext *r = redisConnect(host, port);
    ck_assert(r && !r->err);
    freeReplyObject(redisCommand(r, "SELECT 5"));
    redisReply *rep = redisCommand(r, "ZCARD %s", key("ready"));
    ck_assert_int_eq(rep->integer, 1);
    freeReplyObject(rep);
    rep = redisCommand(r, "KEYS %s:*", ns);
    for (size_t i = 0; i < rep->elements; i++)
        freeReplyObject(redisCommand(r, "DEL %s", rep->element[i]->str));
    freeReplyObject(rep);
    redisFree(r);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_largest_params_and_unicode)
{
    aipalq_client *c = tu_client(ns, queue);
    /* Exactly the limit: accepted, stored and dispatched whole. */
    char *big = malloc(AIPALQ_MAX_PARAMS_BYTES + 1);
    memcpy(big, "{\"a\":\"", 6);
    memset(big + 6, 'y', AIPALQ_MAX_PARAMS_BYTES - 8);
    memcpy(big + AIPALQ_MAX_PARAMS_BYTES - 2, "\"}", 3);
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", big, NULL, id, NULL));
    aipalq_task *t = NULL;
    ASSERT_OK(c, aipalq_get(c, id, &t));
    ck_assert_msg(json_equal(aipalq_task_params(t), big), "big params changed");
    aipalq_task_free(t);
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    char *payload = tu_redis_hget(key("job"), id);
    ck_assert_uint_gt(strlen(payload), AIPALQ_MAX_PARAMS_BYTES);
    free(payload);
    free(big);
    /* Text beyond ASCII, as it came. */
    aipalq_opts *o = aipalq_opts_new();
    ck_assert_int_eq(aipalq_opts_set_user_id(o, "us\xc3\xa9r \xe2\x9c\x93 \"quoted\""), AIPALQ_OK);
    const char *params = "{\"text\":\"na\xc3\xafve \xf0\x9f\x98\x80 \\\"q\\\" \\n\"}";
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", params, o, id, NULL));
    aipalq_opts_free(o);
    ASSERT_OK(c, aipalq_get(c, id, &t));
    ck_assert_str_eq(aipalq_task_user_id(t), "us\xc3\xa9r \xe2\x9c\x93 \"quoted\"");
    ck_assert_msg(json_equal(aipalq_task_params(t), params), "%s", aipalq_task_params(t));
    cJSON *j = cJSON_Parse(aipalq_task_json(t));
    ck_assert_str_eq(cJSON_GetObjectItem(j, "user_id")->valuestring,
                     "us\xc3\xa9r \xe2\x9c\x93 \"quoted\"");
    cJSON_Delete(j);
    aipalq_task_free(t);
    payload = tu_redis_hget(key("job"), id);
    cJSON *p = cJSON_Parse(payload);
    ck_assert_msg(p != NULL, "payload is not JSON: %s", payload);
    ck_assert_str_eq(cJSON_GetObjectItem(p, "user_id")->valuestring,
                     "us\xc3\xa9r \xe2\x9c\x93 \"quoted\"");
    cJSON_Delete(p);
    free(payload);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_task_json_of_a_finished_task)
{
    aipalq_client *c = tu_client(ns, queue);
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    tu_pg_exec("UPDATE aipalq_tasks SET status = 'completed', result = '{\"answer\":[42]}',"
               " attempts = 1, worker_id = 'w-1', progress = 100,"
               " started_at = '2026-01-02T03:04:05.250Z', completed_at = '2026-01-02T03:04:07.750Z'"
               " WHERE id = '%s'",
               id);
    aipalq_task *t = NULL;
    ASSERT_OK(c, aipalq_get(c, id, &t));
    ck_assert_int_eq(aipalq_task_state(t), AIPALQ_STATE_COMPLETED);
    ck_assert_msg(json_equal(aipalq_task_result(t), "{\"answer\":[42]}"), "%s",
                  aipalq_task_result(t));
    ck_assert_int_eq(aipalq_task_started_ms(t), 1767323045250LL);
    ck_assert_int_eq(aipalq_task_completed_ms(t), 1767323047750LL);
    ck_assert_str_eq(aipalq_task_worker_id(t), "w-1");
    cJSON *j = cJSON_Parse(aipalq_task_json(t));
    ck_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring, "completed");
    char *r = cJSON_PrintUnformatted(cJSON_GetObjectItem(j, "result"));
    ck_assert_str_eq(r, "{\"answer\":[42]}");
    free(r);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "started_at")->valuestring, "2026-01-02T03:04:05.250Z");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "completed_at")->valuestring,
                     "2026-01-02T03:04:07.750Z");
    ck_assert(cJSON_GetObjectItem(j, "duration_seconds")->valuedouble == 2.5);
    ck_assert_int_eq(cJSON_GetObjectItem(j, "progress")->valueint, 100);
    cJSON_Delete(j);
    aipalq_task_free(t);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_task_json_escapes_text)
{
    /* Free text (a handler's error) with every character JSON must escape:
     * the object parses and gives the text back unchanged. */
    aipalq_client *c = tu_client(ns, queue);
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{\"k\": \"v \\\"q\\\"\"}", NULL, id, NULL));
    tu_pg_exec("UPDATE aipalq_tasks SET status = 'failed', error_message ="
               " E'line\\n\\ttab \\\\ back \"quote\" \\x01\\x1f \\r\\b\\f end \xc3\xa9',"
               " started_at = '2026-01-02T03:04:05.000Z', completed_at = '2026-01-02T03:04:05.123Z'"
               " WHERE id = '%s'",
               id);
    aipalq_task *t = NULL;
    ASSERT_OK(c, aipalq_get(c, id, &t));
    const char *want = "line\n\ttab \\ back \"quote\" \x01\x1f \r\b\f end \xc3\xa9";
    ck_assert_str_eq(aipalq_task_error_message(t), want);
    cJSON *j = cJSON_Parse(aipalq_task_json(t));
    ck_assert_msg(j != NULL, "not JSON: %s", aipalq_task_json(t));
    ck_assert_str_eq(cJSON_GetObjectItem(j, "error_message")->valuestring, want);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "params"), "k")->valuestring,
                     "v \"q\"");
    ck_assert(cJSON_GetObjectItem(j, "duration_seconds")->valuedouble == 0.123);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "error_detail")));
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "cancel_requested")));
    cJSON_Delete(j);
    aipalq_task_free(t);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_get_many)
{
    aipalq_client *c = tu_client(ns, queue);
    char a[AIPALQ_ID_SIZE], b[AIPALQ_ID_SIZE], upper[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{\"n\": 1}", NULL, a, NULL));
    ASSERT_OK(c, aipalq_enqueue(c, "t.b", "{\"n\": 2}", NULL, b, NULL));
    for (size_t i = 0; i < sizeof upper; i++)
        upper[i] = (char)toupper((unsigned char)b[i]);
    const char *missing = "00000000-0000-7000-8000-000000000000";
    /* Order kept, unknown ids NULL, repeated ids (in any case) each a copy. */
    const char *ids[] = {b, missing, a, upper, b};
    aipalq_task *out[5];
    ASSERT_OK(c, aipalq_get_many(c, ids, 5, out));
    ck_assert_ptr_null(out[1]);
    ck_assert_str_eq(aipalq_task_id(out[0]), b);
    ck_assert_str_eq(aipalq_task_type(out[0]), "t.b");
    ck_assert_str_eq(aipalq_task_id(out[2]), a);
    ck_assert_str_eq(aipalq_task_type(out[2]), "t.a");
    ck_assert_msg(json_equal(aipalq_task_params(out[2]), "{\"n\": 1}"), "%s",
                  aipalq_task_params(out[2]));
    ck_assert_str_eq(aipalq_task_id(out[3]), b);
    ck_assert_str_eq(aipalq_task_id(out[4]), b);
    ck_assert_ptr_ne(out[0], out[4]);
    for (int i = 0; i < 5; i++)
        aipalq_task_free(out[i]);

    /* Ids of partitions far apart (a task of 2020 lands in the default
     * one): the bounds the lookup prunes by span them all. */
    const char *old_id = "016f7b9e-7c00-7000-8000-000000000001";
    tu_pg_exec("INSERT INTO aipalq_tasks (id, type, queue, namespace) VALUES ('%s', 't.old', '%s',"
               " '%s')",
               old_id, queue, ns);
    const char *spread[] = {upper, old_id, missing};
    ASSERT_OK(c, aipalq_get_many(c, spread, 3, out));
    ck_assert_str_eq(aipalq_task_id(out[0]), b);
    ck_assert_str_eq(aipalq_task_type(out[1]), "t.old");
    ck_assert_ptr_null(out[2]);
    for (int i = 0; i < 3; i++)
        aipalq_task_free(out[i]);

    /* A malformed id reads nothing and names its position. */
    const char *bad[] = {a, "not-a-uuid"};
    out[0] = (aipalq_task *)1;
    ck_assert_int_eq(aipalq_get_many(c, bad, 2, out), AIPALQ_EBADID);
    ck_assert_ptr_null(out[0]);
    ck_assert_msg(tu_contains(aipalq_client_errmsg(c), "ids[1]"), "%s", aipalq_client_errmsg(c));
    ck_assert_int_eq(aipalq_get_many(c, ids, 0, out), AIPALQ_EINVAL);
    ck_assert_int_eq(aipalq_get_many(c, ids, 1001, out), AIPALQ_EINVAL);
    ck_assert_int_eq(aipalq_get_many(c, NULL, 1, out), AIPALQ_EINVAL);
    ck_assert_int_eq(aipalq_get_many(NULL, ids, 1, out), AIPALQ_EMISUSE);

    /* The most ids one call takes: all found. */
    enum { MANY = 1000 };
    static char many_ids[MANY][AIPALQ_ID_SIZE];
    const char *many[MANY];
    aipalq_batch *batch = aipalq_batch_new();
    for (int i = 0; i < MANY; i++)
        ASSERT_OK(c, aipalq_batch_add(batch, "t.a", "{}", NULL));
    ASSERT_OK(c, aipalq_enqueue_batch(c, batch));
    for (int i = 0; i < MANY; i++) {
        snprintf(many_ids[i], sizeof many_ids[i], "%s", aipalq_batch_id(batch, (size_t)i));
        many[i] = many_ids[MANY - 1 - i];
    }
    aipalq_batch_free(batch);
    static aipalq_task *found[MANY];
    ASSERT_OK(c, aipalq_get_many(c, many, MANY, found));
    for (int i = 0; i < MANY; i++) {
        ck_assert_ptr_nonnull(found[i]);
        ck_assert_str_eq(aipalq_task_id(found[i]), many[i]);
        aipalq_task_free(found[i]);
    }
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_script_cache_flushed)
{
    /* Redis forgets its scripts under a live connection (SCRIPT FLUSH). The
     * dispatch of the single enqueue that finds out may be lost (it is
     * committed; the reconciler repairs it), but the client must not go on
     * losing every later dispatch. */
    aipalq_client *c = tu_client(ns, queue);
    char id[AIPALQ_ID_SIZE];
    ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    int64_t ready;
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 1);
    tu_redis_int("SCRIPT FLUSH");
    for (int i = 0; i < 5; i++)
        ASSERT_OK(c, aipalq_enqueue(c, "t.a", "{}", NULL, id, NULL));
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_msg(ready >= 5, "only %lld of 6 tasks reached Redis after SCRIPT FLUSH",
                  (long long)ready);
    /* Batches too. */
    aipalq_batch *b = aipalq_batch_new();
    for (int i = 0; i < 3; i++)
        aipalq_batch_add(b, "t.a", "{}", NULL);
    tu_redis_int("SCRIPT FLUSH");
    ASSERT_OK(c, aipalq_enqueue_batch(c, b));
    ASSERT_OK(c, aipalq_enqueue_batch(c, b));
    aipalq_batch_free(b);
    /* The reconciler brings back whatever was lost on the way. */
    ASSERT_OK(c, aipalq_reconcile(c, 0, NULL, NULL));
    tu_depth(c, queue, &ready, NULL, NULL);
    ck_assert_int_eq(ready, 12);
    aipalq_client_free(c);
}
END_TEST

int main(void)
{
    tu_require_services();
    tu_scratch_db_begin("enqueue");
    Suite *s = suite_create("enqueue");
    TCase *tc = tcase_create("enqueue");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_enqueue_and_get_all_fields);
    tcase_add_test(tc, test_type_defaults_apply);
    tcase_add_test(tc, test_get_unknown_and_malformed);
    tcase_add_test(tc, test_url_options_are_kept);
    tcase_add_test(tc, test_bad_input_leaves_nothing);
    tcase_add_test(tc, test_bad_redis_url_commits_nothing);
    tcase_add_test(tc, test_priority_order_in_redis);
    tcase_add_test(tc, test_many_single_enqueues_in_order);
    tcase_add_test(tc, test_delayed_task_is_scheduled);
    tcase_add_test(tc, test_idempotency_key);
    tcase_add_test(tc, test_state_counts_json);
    tcase_add_test(tc, test_ping_and_connect);
    tcase_add_test(tc, test_errmsg_cleared_by_success);
    tcase_add_test(tc, test_concurrent_idempotent_enqueues);
    tcase_add_test(tc, test_redis_database_from_url);
    tcase_add_test(tc, test_largest_params_and_unicode);
    tcase_add_test(tc, test_task_json_of_a_finished_task);
    tcase_add_test(tc, test_task_json_escapes_text);
    tcase_add_test(tc, test_get_many);
    tcase_add_test(tc, test_script_cache_flushed);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    tu_scratch_db_end();
    return rc;
}
