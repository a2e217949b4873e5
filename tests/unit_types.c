/* Unit tests of task type definitions (lib/types.c): no server needed.
 * Public API only, checked through aipalq_types_json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "testutil.h"

static aipalq_client *client(void)
{
    /* Nothing connects: type definitions are local to the client. */
    aipalq_client *c = aipalq_client_new("redis://127.0.0.1:1/0", "postgresql://127.0.0.1:1/x");
    ck_assert_ptr_nonnull(c);
    return c;
}

/* The definition of `name` from aipalq_types_json (a cJSON object the caller
 * frees with cJSON_Delete on the returned array), or NULL. */
static cJSON *find_type(aipalq_client *c, const char *name, cJSON **all)
{
    char *json = aipalq_types_json(c);
    ck_assert_ptr_nonnull(json);
    *all = cJSON_Parse(json);
    aipalq_free(json);
    ck_assert(cJSON_IsArray(*all));
    cJSON *t;
    cJSON_ArrayForEach(t, *all)
    {
        cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
            return t;
    }
    return NULL;
}

static double num(const cJSON *t, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(t, key);
    ck_assert_msg(cJSON_IsNumber(v), "%s missing", key);
    return v->valuedouble;
}

static const char *str(const cJSON *t, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(t, key);
    ck_assert_msg(cJSON_IsString(v), "%s missing", key);
    return v->valuestring;
}

static int type_count(aipalq_client *c)
{
    char *json = aipalq_types_json(c);
    cJSON *a = cJSON_Parse(json);
    aipalq_free(json);
    int n = cJSON_GetArraySize(a);
    cJSON_Delete(a);
    return n;
}

START_TEST(test_define_defaults)
{
    aipalq_client *c = client();
    ck_assert_int_eq(type_count(c), 0);
    ASSERT_OK(c, aipalq_type_define(c, "email.send", "mail"));
    ck_assert_str_eq(aipalq_client_errmsg(c), "");
    ck_assert_int_eq(aipalq_client_errcode(c), AIPALQ_OK);
    cJSON *all;
    cJSON *t = find_type(c, "email.send", &all);
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(str(t, "queue"), "mail");
    ck_assert_int_eq((int)num(t, "priority"), 5);
    ck_assert_int_eq((int)num(t, "max_retries"), 3);
    ck_assert_int_eq((int64_t)num(t, "backoff_base_ms"), 60000);
    ck_assert_int_eq((int64_t)num(t, "backoff_cap_ms"), 3600000);
    ck_assert_int_eq((int)num(t, "backoff_jitter_percent"), 10);
    ck_assert_int_eq((int64_t)num(t, "soft_time_limit_ms"), 25 * 60000);
    ck_assert_int_eq((int64_t)num(t, "hard_time_limit_ms"), 30 * 60000);
    ck_assert_int_eq((int64_t)num(t, "result_ttl_ms"), 0);
    cJSON_Delete(all);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_define_bad_names)
{
    aipalq_client *c = client();
    char long_name[80];
    memset(long_name, 'n', 65);
    long_name[65] = '\0';
    const char *bad[] = {
        NULL, "", "a b", "tab\t", "slash/x", "colon:x", "brace{x}", "\xc3\xa9t\xc3\xa9", long_name};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ASSERT_ST(c, aipalq_type_define(c, bad[i], "q"), AIPALQ_EINVAL);
        ck_assert_str_ne(aipalq_client_errmsg(c), "");
        ASSERT_ST(c, aipalq_type_define(c, "ok", bad[i]), AIPALQ_EQUEUE);
    }
    long_name[64] = '\0'; /* 64 characters is the limit, inclusive */
    ASSERT_OK(c, aipalq_type_define(c, long_name, long_name));
    ASSERT_OK(c, aipalq_type_define(c, "A-z_0.9", "Q-1_x.y"));
    ck_assert_int_eq(type_count(c), 2);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_setters)
{
    aipalq_client *c = client();
    ASSERT_OK(c, aipalq_type_define(c, "t", "q"));
    ASSERT_OK(c, aipalq_type_set_priority(c, "t", 10));
    ASSERT_OK(c, aipalq_type_set_max_retries(c, "t", 1000));
    ASSERT_OK(c, aipalq_type_set_backoff(c, "t", 500, 8000, 100));
    ASSERT_OK(c, aipalq_type_set_time_limits(c, "t", 1000, 2000));
    ASSERT_OK(c, aipalq_type_set_result_ttl(c, "t", 1000));
    cJSON *all;
    cJSON *t = find_type(c, "t", &all);
    ck_assert_int_eq((int)num(t, "priority"), 10);
    ck_assert_int_eq((int)num(t, "max_retries"), 1000);
    ck_assert_int_eq((int64_t)num(t, "backoff_base_ms"), 500);
    ck_assert_int_eq((int64_t)num(t, "backoff_cap_ms"), 8000);
    ck_assert_int_eq((int)num(t, "backoff_jitter_percent"), 100);
    ck_assert_int_eq((int64_t)num(t, "soft_time_limit_ms"), 1000);
    ck_assert_int_eq((int64_t)num(t, "hard_time_limit_ms"), 2000);
    ck_assert_int_eq((int64_t)num(t, "result_ttl_ms"), 1000);
    cJSON_Delete(all);
    /* Limits of 0 disable; a soft limit with no hard one is fine. */
    ASSERT_OK(c, aipalq_type_set_time_limits(c, "t", 0, 0));
    ASSERT_OK(c, aipalq_type_set_time_limits(c, "t", 5000, 0));
    ASSERT_OK(c, aipalq_type_set_max_retries(c, "t", 0));
    ASSERT_OK(c, aipalq_type_set_backoff(c, "t", 0, 0, 0));
    /* A result TTL of 0 keeps no copy of outcomes in Redis. */
    ASSERT_OK(c, aipalq_type_set_result_ttl(c, "t", 0));
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_setters_refuse_bad_values)
{
    aipalq_client *c = client();
    ASSERT_OK(c, aipalq_type_define(c, "t", "q"));
    char *before = aipalq_types_json(c);
    ASSERT_ST(c, aipalq_type_set_priority(c, "t", 0), AIPALQ_EPRIORITY);
    ASSERT_ST(c, aipalq_type_set_priority(c, "t", 11), AIPALQ_EPRIORITY);
    ASSERT_ST(c, aipalq_type_set_priority(c, "t", -5), AIPALQ_EPRIORITY);
    ASSERT_ST(c, aipalq_type_set_max_retries(c, "t", -1), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_type_set_max_retries(c, "t", 1001), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_type_set_backoff(c, "t", 2000, 1000, 10), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_type_set_backoff(c, "t", -1, 1000, 10), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_type_set_backoff(c, "t", 1000, 2000, 101), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_type_set_backoff(c, "t", 1000, 2000, -1), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_type_set_time_limits(c, "t", 3000, 2000), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_type_set_time_limits(c, "t", -1, 2000), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_type_set_time_limits(c, "t", 0, -1), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_type_set_result_ttl(c, "t", 999), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_type_set_result_ttl(c, "t", 1), AIPALQ_EINVAL);
    ASSERT_ST(c, aipalq_type_set_result_ttl(c, "t", -1), AIPALQ_EINVAL);
    ck_assert_str_ne(aipalq_client_errmsg(c), "");
    /* Nothing changed. */
    char *after = aipalq_types_json(c);
    ck_assert_str_eq(before, after);
    aipalq_free(before);
    aipalq_free(after);
    /* Unknown types. */
    ASSERT_ST(c, aipalq_type_set_priority(c, "nope", 5), AIPALQ_EUNKNOWNTYPE);
    ASSERT_ST(c, aipalq_type_set_max_retries(c, "nope", 1), AIPALQ_EUNKNOWNTYPE);
    ASSERT_ST(c, aipalq_type_set_backoff(c, "nope", 1, 2, 3), AIPALQ_EUNKNOWNTYPE);
    ASSERT_ST(c, aipalq_type_set_time_limits(c, "nope", 1, 2), AIPALQ_EUNKNOWNTYPE);
    ASSERT_ST(c, aipalq_type_set_result_ttl(c, "nope", 5000), AIPALQ_EUNKNOWNTYPE);
    ASSERT_ST(c, aipalq_type_set_result_ttl(c, NULL, 5000), AIPALQ_EUNKNOWNTYPE);
    ck_assert(tu_contains(aipalq_client_errmsg(c), "unknown task type"));
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_redefine_moves_queue_keeps_settings)
{
    aipalq_client *c = client();
    ASSERT_OK(c, aipalq_type_define(c, "t", "q1"));
    ASSERT_OK(c, aipalq_type_set_priority(c, "t", 8));
    ASSERT_OK(c, aipalq_type_define(c, "t", "q2"));
    cJSON *all;
    cJSON *t = find_type(c, "t", &all);
    ck_assert_str_eq(str(t, "queue"), "q2");
    ck_assert_int_eq((int)num(t, "priority"), 8);
    cJSON_Delete(all);
    ck_assert_int_eq(type_count(c), 1);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_define_json)
{
    aipalq_client *c = client();
    ASSERT_OK(c, aipalq_types_define_json(
                     c, "[{\"name\":\"a\",\"queue\":\"qa\"},"
                        "{\"name\":\"b\",\"queue\":\"qb\",\"priority\":9,\"max_retries\":0,"
                        "\"backoff_base_ms\":100,\"backoff_cap_ms\":400,"
                        "\"backoff_jitter_percent\":0,\"soft_time_limit_ms\":10,"
                        "\"hard_time_limit_ms\":20,\"result_ttl_ms\":5000}]"));
    ck_assert_int_eq(type_count(c), 2);
    cJSON *all;
    cJSON *t = find_type(c, "b", &all);
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(str(t, "queue"), "qb");
    ck_assert_int_eq((int)num(t, "priority"), 9);
    ck_assert_int_eq((int)num(t, "max_retries"), 0);
    ck_assert_int_eq((int64_t)num(t, "backoff_base_ms"), 100);
    ck_assert_int_eq((int64_t)num(t, "backoff_cap_ms"), 400);
    ck_assert_int_eq((int)num(t, "backoff_jitter_percent"), 0);
    ck_assert_int_eq((int64_t)num(t, "soft_time_limit_ms"), 10);
    ck_assert_int_eq((int64_t)num(t, "hard_time_limit_ms"), 20);
    ck_assert_int_eq((int64_t)num(t, "result_ttl_ms"), 5000);
    cJSON_Delete(all);
    t = find_type(c, "a", &all);
    ck_assert_int_eq((int)num(t, "priority"), 5); /* defaults for what is not given */
    cJSON_Delete(all);
    /* An empty array changes nothing and succeeds. */
    ASSERT_OK(c, aipalq_types_define_json(c, "[]"));
    ck_assert_int_eq(type_count(c), 2);
    aipalq_client_free(c);
}
END_TEST

/* define_json with `json` must fail with `want`, name `where` in the message
 * and leave the defined types exactly as they were. */
static void define_json_fails(aipalq_client *c, const char *json, aipalq_status want,
                              const char *where)
{
    char *before = aipalq_types_json(c);
    ASSERT_ST(c, aipalq_types_define_json(c, json), want);
    ck_assert_msg(!where || tu_contains(aipalq_client_errmsg(c), where),
                  "message '%s' should name '%s'", aipalq_client_errmsg(c), where);
    char *after = aipalq_types_json(c);
    ck_assert_str_eq(before, after);
    aipalq_free(before);
    aipalq_free(after);
}

START_TEST(test_define_json_all_or_nothing)
{
    aipalq_client *c = client();
    ASSERT_OK(c, aipalq_type_define(c, "existing", "q0"));
    ASSERT_OK(c, aipalq_type_set_priority(c, "existing", 2));
    /* The first entries are valid (one even redefines "existing"); the bad one
     * makes the whole call change nothing. */
    define_json_fails(c,
                      "[{\"name\":\"new1\",\"queue\":\"q1\"},"
                      "{\"name\":\"existing\",\"queue\":\"moved\",\"priority\":9},"
                      "{\"name\":\"bad\",\"queue\":\"q2\",\"priority\":11}]",
                      AIPALQ_EPRIORITY, "types[2].priority");
    define_json_fails(c, "[{\"name\":\"x\",\"queue\":\"q\"},{\"queue\":\"q\"}]", AIPALQ_EINVAL,
                      "types[1].name");
    define_json_fails(c, "[{\"name\":\"x\",\"queue\":\"bad queue\"}]", AIPALQ_EQUEUE,
                      "types[0].queue");
    define_json_fails(c, "[{\"name\":\"x\"}]", AIPALQ_EQUEUE, "types[0].queue");
    define_json_fails(c, "[{\"name\":\"x\",\"queue\":\"q\",\"priority\":\"5\"}]", AIPALQ_EINVAL,
                      "types[0].priority");
    define_json_fails(c, "[{\"name\":\"x\",\"queue\":\"q\",\"max_retries\":1.5}]", AIPALQ_EINVAL,
                      "types[0].max_retries");
    define_json_fails(c, "[{\"name\":\"x\",\"queue\":\"q\",\"max_retries\":1001}]", AIPALQ_EINVAL,
                      "types[0]");
    define_json_fails(c,
                      "[{\"name\":\"x\",\"queue\":\"q\",\"backoff_base_ms\":5000,"
                      "\"backoff_cap_ms\":10}]",
                      AIPALQ_EINVAL, "types[0]");
    define_json_fails(c, "[{\"name\":\"x\",\"queue\":\"q\",\"result_ttl_ms\":1e300}]",
                      AIPALQ_EINVAL, "types[0].result_ttl_ms");
    define_json_fails(c, "[{\"name\":\"x\",\"queue\":\"q\",\"priority\":-1e300}]", AIPALQ_EINVAL,
                      "types[0].priority");
    define_json_fails(c, "[{\"name\":\"x\",\"queue\":\"q\"}, 3]", AIPALQ_EINVAL, "types[1]");
    define_json_fails(c, "[{\"name\":7,\"queue\":\"q\"}]", AIPALQ_EINVAL, "types[0].name");
    define_json_fails(c, "{\"name\":\"x\",\"queue\":\"q\"}", AIPALQ_EINVAL, "array");
    define_json_fails(c, "[{\"name\":\"x\",\"queue\":\"q\"}", AIPALQ_EBADJSON, NULL);
    define_json_fails(c, "", AIPALQ_EBADJSON, NULL);
    define_json_fails(c, NULL, AIPALQ_EBADJSON, NULL);
    /* After all that, the original definition is intact. */
    cJSON *all;
    cJSON *t = find_type(c, "existing", &all);
    ck_assert_str_eq(str(t, "queue"), "q0");
    ck_assert_int_eq((int)num(t, "priority"), 2);
    cJSON_Delete(all);
    ck_assert_int_eq(type_count(c), 1);
    aipalq_client_free(c);
}
END_TEST

START_TEST(test_types_json_round_trip)
{
    aipalq_client *c = client();
    ASSERT_OK(c, aipalq_type_define(c, "a", "qa"));
    ASSERT_OK(c, aipalq_type_define(c, "b", "qb"));
    ASSERT_OK(c, aipalq_type_set_priority(c, "b", 1));
    ASSERT_OK(c, aipalq_type_set_max_retries(c, "b", 17));
    ASSERT_OK(c, aipalq_type_set_backoff(c, "b", 1500, 90000, 33));
    ASSERT_OK(c, aipalq_type_set_time_limits(c, "b", 7000, 9000));
    ASSERT_OK(c, aipalq_type_set_result_ttl(c, "b", 86400000));
    char *json = aipalq_types_json(c);
    ck_assert_ptr_nonnull(json);
    aipalq_client *d = client();
    ASSERT_OK(d, aipalq_types_define_json(d, json));
    char *again = aipalq_types_json(d);
    ck_assert_str_eq(json, again);
    /* Defining the same again changes nothing. */
    ASSERT_OK(d, aipalq_types_define_json(d, again));
    char *third = aipalq_types_json(d);
    ck_assert_str_eq(json, third);
    aipalq_free(json);
    aipalq_free(again);
    aipalq_free(third);
    aipalq_client_free(c);
    aipalq_client_free(d);
}
END_TEST

START_TEST(test_types_are_per_client)
{
    aipalq_client *c = client();
    aipalq_client *d = client();
    ASSERT_OK(c, aipalq_type_define(c, "only_c", "q"));
    ck_assert_int_eq(type_count(c), 1);
    ck_assert_int_eq(type_count(d), 0);
    ASSERT_ST(d, aipalq_type_set_priority(d, "only_c", 3), AIPALQ_EUNKNOWNTYPE);
    aipalq_client_free(c);
    aipalq_client_free(d);
}
END_TEST

START_TEST(test_many_types)
{
    aipalq_client *c = client();
    char name[32];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "type%d", i);
        ASSERT_OK(c, aipalq_type_define(c, name, "q"));
        ASSERT_OK(c, aipalq_type_set_priority(c, name, 1 + i % 10));
    }
    ck_assert_int_eq(type_count(c), 300);
    cJSON *all;
    cJSON *t = find_type(c, "type123", &all);
    ck_assert_int_eq((int)num(t, "priority"), 4);
    cJSON_Delete(all);
    aipalq_client_free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("types");
    TCase *tc = tcase_create("define");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_define_defaults);
    tcase_add_test(tc, test_define_bad_names);
    tcase_add_test(tc, test_setters);
    tcase_add_test(tc, test_setters_refuse_bad_values);
    tcase_add_test(tc, test_redefine_moves_queue_keeps_settings);
    tcase_add_test(tc, test_define_json);
    tcase_add_test(tc, test_define_json_all_or_nothing);
    tcase_add_test(tc, test_types_json_round_trip);
    tcase_add_test(tc, test_types_are_per_client);
    tcase_add_test(tc, test_many_types);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
