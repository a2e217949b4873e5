/* Self-checks of the task catalog: every example validates, schemas and
 * definitions are well formed, and validation reports field-level errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* Validates `params` for `type`; returns the errors as text ("" when none)
 * and the normalized params as text in *normalized (may be NULL). */
static char *run(const char *type, const char *params, char **normalized)
{
    cJSON *in = params ? cJSON_Parse(params) : NULL;
    cJSON *errors = cJSON_CreateArray();
    cJSON *out = catalog_validate(catalog_find(type), in, "parameters.", errors);
    if (normalized)
        *normalized = out ? cJSON_PrintUnformatted(out) : NULL;
    char *text = cJSON_GetArraySize(errors) ? cJSON_PrintUnformatted(errors) : strdup("");
    cJSON_Delete(in);
    cJSON_Delete(out);
    cJSON_Delete(errors);
    return text;
}

static void expect_error(const char *type, const char *params, const char *field, const char *why)
{
    char *errors = run(type, params, NULL);
    char want[512];
    snprintf(want, sizeof want, "{\"field\":\"%s\",\"error\":\"%s\"}", field, why);
    CHECK(strstr(errors, want), "%s %s: want %s, got %s", type, params, want, errors);
    free(errors);
}

static void expect_normalized(const char *type, const char *params, const char *want)
{
    char *norm = NULL;
    char *errors = run(type, params, &norm);
    CHECK(norm && strcmp(norm, want) == 0, "%s %s: want %s, got %s (errors %s)", type, params, want,
          norm ? norm : "NULL", errors);
    free(norm);
    free(errors);
}

static void check_every_type(void)
{
    CHECK(catalog_count() == 17, "expected 17 types, have %zu", catalog_count());
    for (size_t i = 0; i < catalog_count(); i++) {
        const catalog_type *t = catalog_at(i);
        char *errors = run(t->name, t->example_json, NULL);
        CHECK(errors[0] == '\0', "example of %s is invalid: %s", t->name, errors);
        free(errors);
        CHECK(catalog_queue_known(t->queue), "%s routes to unknown queue %s", t->name, t->queue);
        CHECK(t->priority >= 1 && t->priority <= t->max_priority && t->max_priority <= 10,
              "%s priority", t->name);
        CHECK(t->soft_limit_ms <= t->hard_limit_ms, "%s limits", t->name);
        cJSON *schema = catalog_schema_json(t);
        CHECK(schema && cJSON_GetObjectItem(schema, "example"), "%s schema", t->name);
        cJSON_Delete(schema);
        cJSON *tj = catalog_type_json(t);
        CHECK(tj != NULL, "%s type json", t->name);
        cJSON_Delete(tj);
        CHECK(catalog_find(t->name) == t, "find %s", t->name);
    }
    CHECK(catalog_find("nope") == NULL, "unknown type found");
}

static void check_validation(void)
{
    expect_error("aggregate_ari_snapshots", "{\"time_window_hours\":\"x\"}",
                 "parameters.time_window_hours", "must be an integer between 1 and 8760");
    expect_error("aggregate_ari_snapshots", "{\"time_window_hours\":0}",
                 "parameters.time_window_hours", "must be an integer between 1 and 8760");
    expect_error("aggregate_ari_snapshots", "{\"time_window_hours\":2.5}",
                 "parameters.time_window_hours", "must be an integer between 1 and 8760");
    expect_error("aggregate_ari_snapshots", "{\"bogus\":1}", "parameters.bogus", "unknown field");
    expect_error("plan_ffe_goal", "{\"goal_id\":\"g\",\"user_id\":\"u\"}",
                 "parameters.goal_description", "is required");
    expect_error("plan_ffe_goal",
                 "{\"goal_id\":\"g\",\"user_id\":\"u\",\"goal_description\":\"d\","
                 "\"complexity_level\":\"huge\"}",
                 "parameters.complexity_level", "must be one of: simple, medium, complex");
    expect_error("edm_detect_misinformation", "{\"user_id\":\"u\",\"interaction_ids\":[\"a\",3]}",
                 "parameters.interaction_ids[1]", "must be a string of 1 to 128 characters");
    expect_error("enforce_retention_policy", "{\"policy\":{\"cats\":3}}", "parameters.policy.cats",
                 "unknown field");
    expect_error("enforce_retention_policy", "{\"policy\":{\"audit_logs\":0}}",
                 "parameters.policy.audit_logs", "must be an integer between 1 and 36500");
    expect_error("cleanup_cache", "{\"cleanup_expired_only\":\"yes\"}",
                 "parameters.cleanup_expired_only", "must be true or false");
    expect_error("sleep", "[]", "parameters", "must be an object");
    expect_error("sleep", "{\"ms\":3600001}", "parameters.ms",
                 "must be an integer between 0 and 3600000");
    expect_error("finetune_model", "{\"user_id\":\"u\",\"model_name\":\"m\",\"learning_rate\":2}",
                 "parameters.learning_rate", "must be a number between 1e-07 and 1");
    expect_error("cleanup_cache", "{\"max_age_hours\":null}", "parameters.max_age_hours",
                 "must not be null");
}

static void check_defaults(void)
{
    expect_normalized("aggregate_ari_snapshots", "{}", "{\"time_window_hours\":24}");
    expect_normalized("aggregate_ari_snapshots", "{\"user_id\":null}",
                      "{\"time_window_hours\":24}");
    expect_normalized("sleep", NULL, "{\"ms\":1000}");
    expect_normalized("fail", "{}", "{\"message\":\"requested failure\",\"retryable\":false}");
    expect_normalized("cleanup_cache", "{\"cleanup_expired_only\":false}",
                      "{\"max_age_hours\":24,\"cleanup_expired_only\":false}");
    expect_normalized("benchmark_model", "{\"model_name\":\"m\"}",
                      "{\"model_name\":\"m\",\"scenarios\":[\"reasoning\",\"coding\",\"writing\","
                      "\"analysis\"]}");
    expect_normalized("echo", "{\"data\":{\"a\":[1,2]}}", "{\"data\":{\"a\":[1,2]}}");
}

static void check_define(void)
{
    aipalq_client *c = aipalq_client_new("redis://127.0.0.1:1/0", "host=127.0.0.1 port=1");
    CHECK(c && catalog_define_all(c) == AIPALQ_OK, "define_all: %s", aipalq_client_errmsg(c));
    char *types = aipalq_types_json(c);
    cJSON *arr = types ? cJSON_Parse(types) : NULL;
    CHECK(cJSON_GetArraySize(arr) == (int)catalog_count(), "defined types: %s", types);
    cJSON_Delete(arr);
    aipalq_free(types);
    aipalq_client_free(c);
}

int main(void)
{
    check_every_type();
    check_validation();
    check_defaults();
    check_define();
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("catalog: all checks passed\n");
    return 0;
}
