/* Unit checks of the daemon's pure parts: routing, UTF-8, id sets, rate
 * limiting, API keys, CORS and the OpenAPI document's consistency with the
 * route table. No servers needed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "auth.h"
#include "cors.h"
#include "idset.h"
#include "openapi.h"
#include "ratelimit.h"
#include "router.h"
#include "util.h"

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

static const char *route_of(const char *path, char params[API_MAX_PARAMS][API_PARAM_SIZE])
{
    int i = router_match(path, params);
    return i < 0 ? "none" : routes_at((size_t)i)->pattern;
}

static void check_router(void)
{
    char p[API_MAX_PARAMS][API_PARAM_SIZE];
    CHECK(!strcmp(route_of("/", p), "/"), "root");
    CHECK(!strcmp(route_of("/api/tasks/list", p), "/api/tasks/list"), "literal wins");
    CHECK(!strcmp(route_of("/api/tasks/list/", p), "/api/tasks/list"), "trailing slash");
    CHECK(!strcmp(route_of("/api/tasks/abc", p), "/api/tasks/{task_id}") && !strcmp(p[0], "abc"),
          "placeholder");
    CHECK(!strcmp(route_of("/api/tasks/abc/retry", p), "/api/tasks/{task_id}/retry") &&
              !strcmp(p[0], "abc"),
          "placeholder then literal");
    CHECK(!strcmp(route_of("/api/tasks/status/x", p), "/api/tasks/status/{task_id}"), "status");
    CHECK(!strcmp(route_of("/api/tasks//retry", p), "none"), "empty segment");
    CHECK(!strcmp(route_of("//api/tasks", p), "none"), "double slash");
    CHECK(!strcmp(route_of("/api/tasks/a/b/c", p), "none"), "too deep");
    CHECK(!strcmp(route_of("/apix", p), "none"), "prefix only");
    const api_route *r = routes_at((size_t)router_match("/api/tasks", p));
    CHECK(router_op(r, "HEAD") && !strcmp(router_op(r, "HEAD")->method, "GET"), "HEAD is GET");
    CHECK(router_op(r, "PUT") == NULL, "no PUT");
    char allow[128];
    router_allow(r, allow, sizeof allow);
    CHECK(!strcmp(allow, "GET, HEAD, POST, OPTIONS"), "allow: %s", allow);
    for (size_t i = 0; i < routes_count(); i++)
        for (int j = 0; j < API_MAX_OPS && routes_at(i)->ops[j].method; j++) {
            const api_op *op = &routes_at(i)->ops[j];
            CHECK(op->handler && op->operation_id && op->summary && op->content_type && op->status,
                  "route %s %s incomplete", op->method, routes_at(i)->pattern);
        }
}

static void check_utf8(void)
{
    CHECK(util_utf8_valid("plain é ✓ 😀", strlen("plain é ✓ 😀")), "valid");
    CHECK(!util_utf8_valid("\xff", 1), "0xff");
    CHECK(!util_utf8_valid("\xc0\xaf", 2), "overlong");
    CHECK(!util_utf8_valid("\xed\xa0\x80", 3), "surrogate");
    CHECK(!util_utf8_valid("\xe2\x9c", 2), "truncated");
    CHECK(!util_utf8_valid("\xf4\x90\x80\x80", 4), "beyond U+10FFFF");
}

static void check_idset(void)
{
    idset s = {0};
    char id[40];
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof id, "id-%d", i);
        CHECK(idset_add(&s, id, i), "add %d", i);
    }
    CHECK(!idset_add(&s, "id-42", 42), "duplicate");
    idset_prune(&s, 4000);
    CHECK(s.count == 1000, "pruned to %zu", s.count);
    CHECK(idset_add(&s, "id-42", 42), "forgotten after prune");
    CHECK(!idset_add(&s, "id-4500", 4500), "kept after prune");
    idset_clear(&s);
}

static void check_ratelimit(void)
{
    ratelimit_init(2, 3);
    int retry = 0, ok = 0;
    for (int i = 0; i < 10; i++)
        ok += ratelimit_take(7, 1000, &retry);
    CHECK(ok == 3 && retry == 1, "burst: %d, retry %d", ok, retry);
    CHECK(ratelimit_take(8, 1000, &retry), "another client");
    CHECK(!ratelimit_take(7, 1400, &retry), "not refilled yet");
    CHECK(ratelimit_take(7, 1600, &retry), "refilled after 0.5 s at 2/s");
    ratelimit_free();
}

static void check_auth(void)
{
    setenv("AIPALQ_API_KEYS_RW", "rw-key-one, rw-key-two", 1);
    setenv("AIPALQ_API_KEYS_RO", "ro-key", 1);
    char err[256];
    CHECK(auth_load(NULL, err, sizeof err) == 0, "load: %s", err);
    CHECK(auth_key_count() == 3, "keys: %zu", auth_key_count());
    uint64_t id1 = 0, id2 = 0;
    CHECK(auth_check_token("rw-key-two", &id1) == AUTH_RW && id1, "rw");
    CHECK(auth_check_token("ro-key", &id2) == AUTH_RO && id2 && id2 != id1, "ro");
    CHECK(auth_check_token("ro-ke", &id2) == AUTH_NONE && !id2, "prefix");
    CHECK(auth_check_token("ro-keyy", &id2) == AUTH_NONE, "longer");
    CHECK(auth_check_token(NULL, &id2) == AUTH_NONE, "none");
    CHECK(!strcmp(auth_bearer("Bearer abc"), "abc") && !strcmp(auth_bearer("bearer  abc"), "abc"),
          "bearer");
    CHECK(auth_bearer("Basic abc") == NULL && auth_bearer("Bearer ") == NULL, "not bearer");
    auth_free();
    unsetenv("AIPALQ_API_KEYS_RW");
    unsetenv("AIPALQ_API_KEYS_RO");
}

static void check_cors(void)
{
    CHECK(cors_init("https://a.example, https://b.example/") == 0, "init");
    CHECK(cors_origin_allowed("https://a.example"), "a");
    CHECK(cors_origin_allowed("https://b.example"), "b without slash");
    CHECK(!cors_origin_allowed("https://c.example") && !cors_origin_allowed(NULL), "c");
    cors_free();
}

/* Every operation of the table is in the document, and nothing else. */
static void check_openapi(void)
{
    api_config cfg = {.open_metrics = true};
    CHECK(openapi_build(&cfg) == 0, "build");
    size_t len;
    const char *text = openapi_text(&len);
    cJSON *doc = cJSON_ParseWithLength(text, len);
    cJSON *paths = cJSON_GetObjectItem(doc, "paths");
    int ops = 0, documented = 0;
    for (size_t i = 0; i < routes_count(); i++)
        for (int j = 0; j < API_MAX_OPS && routes_at(i)->ops[j].method; j++, ops++) {
            char m[16];
            snprintf(m, sizeof m, "%s", routes_at(i)->ops[j].method);
            for (char *c = m; *c; c++)
                *c = (char)(*c | 0x20);
            CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(paths, routes_at(i)->pattern), m),
                  "%s %s undocumented", m, routes_at(i)->pattern);
        }
    for (cJSON *p = paths ? paths->child : NULL; p; p = p->next)
        documented += cJSON_GetArraySize(p);
    CHECK(ops == documented, "%d operations, %d documented", ops, documented);
    cJSON_Delete(doc);
    openapi_free();
}

int main(void)
{
    check_router();
    check_utf8();
    check_idset();
    check_ratelimit();
    check_auth();
    check_cors();
    check_openapi();
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("api units: all checks passed\n");
    return 0;
}
