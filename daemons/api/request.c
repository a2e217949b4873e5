/* The life of a request: admission, body, dispatch, completion. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>

#include "cors.h"
#include "deadline.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit.h"
#include "request.h"
#include "respond.h"
#include "util.h"

/* A body this far past the limit is not worth reading: drop the connection. */
#define BODY_DROP_FACTOR 4

const char *rq_header(const api_request *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

const char *rq_query(const api_request *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

static void client_address(api_request *rq)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(rq->remote, sizeof rq->remote, "unknown");
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, rq->remote,
                  sizeof rq->remote);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, rq->remote,
                  sizeof rq->remote);
}

/* Keeps a caller's X-Request-Id when it is short and plain, else makes one. */
static void request_id(api_request *rq)
{
    const char *given = rq_header(rq, "X-Request-Id");
    size_t len = given ? strlen(given) : 0;
    bool ok = len > 0 && len <= 64;
    for (size_t i = 0; ok && i < len; i++)
        ok = isalnum((unsigned char)given[i]) || strchr("-_.:", given[i]);
    if (ok)
        memcpy(rq->request_id, given, len + 1);
    else
        util_random_hex(rq->request_id, 32);
}

api_request *request_new(struct MHD_Connection *conn, const api_config *cfg, const char *url,
                         const char *method)
{
    api_request *rq = calloc(1, sizeof *rq);
    if (!rq)
        return NULL;
    rq->conn = conn;
    rq->cfg = cfg;
    rq->method = method;
    rq->start_us = util_mono_us();
    rq->route_index = -1;
    snprintf(rq->path, sizeof rq->path, "%s", url ? url : "/");
    request_id(rq);
    client_address(rq);
    const char *origin = rq_header(rq, "Origin");
    if (origin && strlen(origin) < sizeof rq->origin)
        memcpy(rq->origin, origin, strlen(origin) + 1);
    return rq;
}

static void respond_options(api_request *rq)
{
    char allow[128];
    router_allow(rq->route, allow, sizeof allow);
    bool preflight = rq->origin[0] && rq_header(rq, "Access-Control-Request-Method");
    if (preflight && !cors_origin_allowed(rq->origin)) {
        respond_error(rq, 403, "cors_origin_not_allowed", "this origin may not call the API");
        return;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (!r)
        return;
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    if (preflight)
        cors_add_preflight_headers(r, allow);
    respond_queue(rq, 204, r);
}

static void respond_method_not_allowed(api_request *rq)
{
    char allow[128], detail[256];
    router_allow(rq->route, allow, sizeof allow);
    snprintf(detail, sizeof detail, "%s is not allowed here; allowed: %s", rq->method, allow);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", "method_not_allowed");
    cJSON_AddStringToObject(o, "detail", detail);
    cJSON_AddStringToObject(o, "request_id", rq->request_id);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    struct MHD_Response *r =
        text ? MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!r) {
        free(text);
        return;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    respond_queue(rq, 405, r);
}

/* The access an operation needs under this configuration. */
static api_access effective_access(const api_request *rq)
{
    if (rq->op->access == ACCESS_PROBE)
        return rq->cfg->open_metrics ? ACCESS_OPEN : ACCESS_READ;
    return rq->op->access;
}

static const char *presented_token(const api_request *rq)
{
    const char *token = auth_bearer(rq_header(rq, MHD_HTTP_HEADER_AUTHORIZATION));
    /* EventSource cannot send headers: the event stream also takes the key
     * as a query parameter (never logged: logs carry the path only). */
    if (!token && strcmp(rq->route->pattern, "/api/tasks/events") == 0)
        token = rq_query(rq, "access_token");
    return token;
}

static void respond_rate_limited(api_request *rq, int retry_after)
{
    char secs[16], detail[128];
    snprintf(secs, sizeof secs, "%d", retry_after);
    snprintf(detail, sizeof detail, "rate limit exceeded; retry in %d s", retry_after);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", "rate_limited");
    cJSON_AddStringToObject(o, "detail", detail);
    cJSON_AddStringToObject(o, "request_id", rq->request_id);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    struct MHD_Response *r =
        text ? MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!r) {
        free(text);
        return;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, secs);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    respond_queue(rq, 429, r);
}

static void respond_unauthorized(api_request *rq, bool token_given)
{
    struct MHD_Response *r;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", "unauthorized");
    cJSON_AddStringToObject(o, "detail",
                            token_given ? "invalid API key"
                                        : "an API key is required "
                                          "(Authorization: Bearer KEY)");
    cJSON_AddStringToObject(o, "request_id", rq->request_id);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    r = text ? MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!r) {
        free(text);
        return;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"aipal\"");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    respond_queue(rq, 401, r);
}

/* Rate limit and auth; true when the request was answered. */
static bool check_client(api_request *rq)
{
    const char *token = presented_token(rq);
    uint64_t key_id = 0;
    rq->role = auth_check_token(token, &key_id);
    api_access access = effective_access(rq);
    uint64_t client = rq->role != AUTH_NONE
                          ? key_id
                          : util_hash64(rq->remote, strlen(rq->remote), 0x1f2e3d4c5b6a7988u);
    int retry_after = 1;
    if (rq->op->access != ACCESS_PROBE &&
        !ratelimit_take(client, util_mono_us() / 1000, &retry_after)) {
        respond_rate_limited(rq, retry_after);
        return true;
    }
    if (auth_key_count() == 0 || access == ACCESS_OPEN)
        return false;
    if (rq->role == AUTH_NONE) {
        respond_unauthorized(rq, token != NULL);
        return true;
    }
    if (access == ACCESS_WRITE && rq->role != AUTH_RW) {
        respond_error(rq, 403, "forbidden", "this API key is read-only");
        return true;
    }
    return false;
}

static bool is_json_media_type(const char *ct)
{
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    size_t len = strcspn(ct, ";");
    while (len && ct[len - 1] == ' ')
        len--;
    static const char json[] = "application/json";
    if (len == sizeof json - 1 && strncasecmp(ct, json, len) == 0)
        return true;
    /* application/problem+json and the like */
    return len > 5 && strncasecmp(ct, "application/", 12) == 0 &&
           strncasecmp(ct + len - 5, "+json", 5) == 0;
}

static void respond_too_large(api_request *rq)
{
    char detail[128];
    snprintf(detail, sizeof detail, "the body exceeds the limit of %zu bytes",
             rq->cfg->max_body_bytes);
    respond_error(rq, 413, "payload_too_large", detail);
}

/* Body size and media type, from the headers; true when answered. */
static bool check_body_headers(api_request *rq)
{
    const char *cl = rq_header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH);
    int64_t length = 0;
    if (cl && util_parse_i64(cl, &length) && length > (int64_t)rq->cfg->max_body_bytes) {
        /* A body somewhat over the limit is read and dropped, so that the
         * client sees the 413 instead of a reset connection; a huge one is
         * refused from the headers and the connection closed. */
        rq->body_too_large = true;
        if (length > (int64_t)rq->cfg->max_body_bytes * BODY_DROP_FACTOR) {
            respond_too_large(rq);
            return true;
        }
    }
    bool has_body = length > 0 || rq_header(rq, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (rq->op->json_body && has_body &&
        !is_json_media_type(rq_header(rq, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        respond_error(rq, 415, "unsupported_media_type",
                      "the body must be JSON, sent with Content-Type: application/json");
        return true;
    }
    return false;
}

bool request_has_body(const api_request *rq)
{
    int64_t length = 0;
    const char *cl = rq_header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return rq_header(rq, MHD_HTTP_HEADER_TRANSFER_ENCODING) ||
           (cl && util_parse_i64(cl, &length) && length > 0);
}

bool request_admit(api_request *rq)
{
    rq->admitted = true;
    rq->route_index = router_match(rq->path, rq->params);
    if (rq->route_index < 0) {
        respond_error(rq, 404, "not_found", "no such route");
        return true;
    }
    rq->route = routes_at((size_t)rq->route_index);
    if (strcmp(rq->method, "OPTIONS") == 0) {
        respond_options(rq);
        return true;
    }
    rq->op = router_op(rq->route, rq->method);
    if (!rq->op) {
        respond_method_not_allowed(rq);
        return true;
    }
    return check_client(rq) || check_body_headers(rq);
}

bool request_take_body(api_request *rq, const char *data, size_t size)
{
    rq->body_seen += size;
    if (rq->body_too_large || !rq->op || !rq->op->json_body)
        return rq->body_seen <= rq->cfg->max_body_bytes * BODY_DROP_FACTOR;
    if (rq->body_len + size > rq->cfg->max_body_bytes) {
        rq->body_too_large = true;
        free(rq->body);
        rq->body = NULL;
        rq->body_len = rq->body_cap = 0;
        return true;
    }
    if (rq->body_len + size + 1 > rq->body_cap) {
        size_t cap = rq->body_cap ? rq->body_cap : 4096;
        while (cap < rq->body_len + size + 1)
            cap *= 2;
        char *grown = realloc(rq->body, cap);
        if (!grown)
            return false;
        rq->body = grown;
        rq->body_cap = cap;
    }
    memcpy(rq->body + rq->body_len, data, size);
    rq->body_len += size;
    rq->body[rq->body_len] = '\0';
    return true;
}

/* Parses the body of a json_body operation; true when answered (bad JSON). */
/* The offset of a \u0000 escape in a JSON text, or -1. cJSON would end the
 * string there, silently dropping the rest, and PostgreSQL cannot store a
 * NUL character in a jsonb value: such a body is refused instead. */
static long nul_escape_at(const char *s, size_t len)
{
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"') {
            in_string = !in_string;
        } else if (in_string && s[i] == '\\' && i + 1 < len) {
            if (s[i + 1] == 'u' && i + 5 < len && memcmp(s + i + 2, "0000", 4) == 0)
                return (long)i;
            i++; /* the escaped character, a quote or a backslash among them */
        }
    }
    return -1;
}

static bool parse_body(api_request *rq)
{
    if (!rq->op->json_body || rq->body_len == 0)
        return false;
    if (!util_utf8_valid(rq->body, rq->body_len)) {
        respond_error(rq, 400, "invalid_json", "the body is not valid UTF-8");
        return true;
    }
    const char *end = NULL;
    /* cJSON sets end to the error position on failure as well (its global
     * error pointer is shared by all threads and not used here). */
    rq->json = cJSON_ParseWithOpts(rq->body, &end, 1);
    if (rq->json && end != rq->body + rq->body_len) { /* a NUL byte inside the body */
        cJSON_Delete(rq->json);
        rq->json = NULL;
    }
    if (!rq->json) {
        char detail[128];
        size_t at =
            end && end >= rq->body && end <= rq->body + rq->body_len ? (size_t)(end - rq->body) : 0;
        snprintf(detail, sizeof detail, "the body is not valid JSON (at byte %zu)", at);
        respond_error(rq, 400, "invalid_json", detail);
        return true;
    }
    long nul = nul_escape_at(rq->body, rq->body_len);
    if (nul >= 0) {
        char detail[128];
        snprintf(detail, sizeof detail,
                 "the body holds \\u0000 (at byte %ld): a NUL character cannot be stored", nul);
        respond_error(rq, 400, "invalid_json", detail);
        return true;
    }
    return false;
}

/* A coalesced request back from its batch. */
static void finish_deferred(api_request *rq)
{
    void (*finish)(api_request *) = rq->finish;
    rq->finish = NULL;
    finish(rq);
    if (!rq->responded)
        respond_internal(rq, "a coalesced request was not answered");
}

void request_dispatch(api_request *rq)
{
    deadline_disarm(rq->conn); /* read whole: served without a deadline */
    if (rq->finish) {
        finish_deferred(rq);
        return;
    }
    if (rq->responded)
        return;
    if (rq->body_too_large) {
        respond_too_large(rq);
        return;
    }
    if (parse_body(rq))
        return;
    rq->op->handler(rq);
    if (!rq->responded && !rq->finish)
        respond_internal(rq, "the handler queued no response");
}

static void log_request(const api_request *rq, double ms)
{
    const char *outcome = NULL;
    if (!rq->responded)
        outcome = rq->status ? "done; the client went away before the answer" : "client went away";
    log_request_line(rq->method, rq->path, rq->status, ms, rq->request_id, rq->remote, outcome);
}

void request_complete(api_request *rq)
{
    double ms = (double)(util_mono_us() - rq->start_us) / 1000.0;
    log_request(rq, ms);
    if (rq->responded)
        metrics_observe_request(rq->route_index, rq->method, rq->status, ms / 1000.0);
    if (rq->work_free)
        rq->work_free(rq->work);
    cJSON_Delete(rq->json);
    free(rq->body);
    free(rq);
}
