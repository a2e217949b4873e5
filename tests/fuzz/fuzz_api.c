/* Fuzz target: the API daemon's request handling, from the request line to
 * the response, without a network or servers. It links the daemon's real
 * units — request.c (admission: route, auth, body limits and media type,
 * body accumulation and JSON parsing), router.c + routes.c, auth.c, cors.c,
 * ratelimit.c, respond.c, fields.c, submit.c, metrics.c, and the handlers
 * of h_tasks.c (query parsing: status, type, queue, user_id, paging, order)
 * and h_submit.c (single, seed and batch submission) — and replaces only:
 *   - libmicrohttpd's connection and response calls (a fake connection that
 *     holds the decoded headers and query arguments, as MHD hands them over);
 *   - the library calls that reach Redis/PostgreSQL (stubs below that check
 *     what the API hands them, as the real library would);
 *   - the remaining handlers (weak stubs generated from handlers.h by run.sh);
 *   - the logger (a stub that checks no log line holds an API key).
 *
 * The input is an HTTP-like text: "METHOD /path?query", header lines
 * "Name: value", a blank line, then the body (fed in two chunks).
 *
 * Checks, beyond memory safety: exactly one response per request; no 500
 * (the stubs never fail); JSON bodies that parse; no API key in a response or
 * a log line; writes refused without the read-write key (the read-only key is
 * fuzzed too); whatever the API enqueues passes the library's params check;
 * a filter the library refuses is never silently dropped (that would list
 * every user's tasks); a 400 always says why. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>

#include "auth.h"
#include "catalog.h"
#include "config.h"
#include "internal.h"
#include "log.h"
#include "request.h"
#include "server.h"
#include "coalesce.h"
#include "deadline.h"
#include "tlclient.h"

#define RW_KEY "fuzz-rw-key-Zq7Xv2Lm9Tt4"
#define RO_KEY "fuzz-ro-key-Hk3Wp8Nc5Ry1"

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_api: " __VA_ARGS__);                                                 \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

/* ------------------------------------------------ fake libmicrohttpd */

#define MAX_KV 32

struct MHD_Connection {
    int nheaders, nargs;
    char *hname[MAX_KV], *hvalue[MAX_KV];
    char *aname[MAX_KV], *avalue[MAX_KV];
    int responses;
    unsigned status;
};

struct MHD_Response {
    char *body;
    size_t len;
    int must_free;
    char content_type[128];
};

static struct MHD_Connection conn;
static int enqueued, listed, filter_refused;
/* A key the client itself put where it is echoed (the path, another header,
 * the body) may come back; one sent as a credential (Authorization, or the
 * event stream's access_token) never may. */
static bool key_echo_allowed;

static bool leaks_key(const char *s)
{
    return !key_echo_allowed && s && (strstr(s, RW_KEY) || strstr(s, RO_KEY));
}

/* The strings of a JSON document, decoded (printed JSON escapes characters,
 * and "\u000f" + "uzz..." must not read as a key). */
static bool json_leaks_key(const cJSON *j)
{
    for (; j; j = j->next) {
        if ((j->string && leaks_key(j->string)) || (cJSON_IsString(j) && leaks_key(j->valuestring)))
            return true;
        if (json_leaks_key(j->child))
            return true;
    }
    return false;
}

const char *MHD_lookup_connection_value(struct MHD_Connection *c, enum MHD_ValueKind kind,
                                        const char *key)
{
    if (kind == MHD_HEADER_KIND) {
        for (int i = 0; i < c->nheaders; i++)
            if (strcasecmp(c->hname[i], key) == 0)
                return c->hvalue[i];
    } else if (kind == MHD_GET_ARGUMENT_KIND) {
        for (int i = 0; i < c->nargs; i++)
            if (strcmp(c->aname[i], key) == 0)
                return c->avalue[i];
    }
    return NULL;
}

const union MHD_ConnectionInfo *MHD_get_connection_info(struct MHD_Connection *c,
                                                        enum MHD_ConnectionInfoType type, ...)
{
    (void)c;
    static struct sockaddr_in sin;
    static union MHD_ConnectionInfo info;
    if (type != MHD_CONNECTION_INFO_CLIENT_ADDRESS)
        return NULL;
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(0x7f000001);
    info.client_addr = (struct sockaddr *)&sin;
    return &info;
}

struct MHD_Response *MHD_create_response_from_buffer(size_t size, void *buffer,
                                                     enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->body = malloc(size + 1);
    memcpy(r->body, buffer, size);
    r->body[size] = '\0';
    r->len = size;
    if (mode == MHD_RESPMEM_MUST_FREE)
        free(buffer);
    return r;
}

enum MHD_Result MHD_add_response_header(struct MHD_Response *r, const char *header,
                                        const char *content)
{
    if (strcasecmp(header, MHD_HTTP_HEADER_CONTENT_TYPE) == 0)
        snprintf(r->content_type, sizeof r->content_type, "%s", content);
    if (leaks_key(content))
        FAIL("an API key in response header %s", header);
    return MHD_YES;
}

void MHD_destroy_response(struct MHD_Response *r)
{
    if (!r)
        return;
    free(r->body);
    free(r);
}

enum MHD_Result MHD_queue_response(struct MHD_Connection *c, unsigned int status,
                                   struct MHD_Response *r)
{
    c->responses++;
    c->status = status;
    if (c->responses > 1)
        FAIL("two responses for one request");
    if (status >= 500)
        FAIL("status %u: %s", status, r->body);
    bool json = strncmp(r->content_type, "application/json", 16) == 0;
    if (!json && leaks_key(r->body))
        FAIL("an API key in a response body: %s", r->body);
    if (json) {
        cJSON *doc = cJSON_Parse(r->body);
        if (!doc)
            FAIL("status %u: JSON response that does not parse: %s", status, r->body);
        if (json_leaks_key(doc))
            FAIL("an API key in a response body: %s", r->body);
        if (status == 400) {
            const cJSON *d = cJSON_GetObjectItemCaseSensitive(doc, "detail");
            if (!d || (cJSON_IsArray(d) && cJSON_GetArraySize(d) == 0) ||
                (cJSON_IsString(d) && !d->valuestring[0]))
                FAIL("a 400 that does not say why: %s", r->body);
        }
        cJSON_Delete(doc);
    }
    return MHD_YES;
}

/* ------------------------------------------------ the daemon's other parts */

bool server_draining(void)
{
    return false;
}

void log_json(const char *level, const char *msg, cJSON *fields)
{
    (void)level, (void)msg;
    if (fields && json_leaks_key(fields)) {
        char *text = cJSON_PrintUnformatted(fields);
        FAIL("an API key in a log line: %s", text);
    }
    cJSON_Delete(fields);
}

void log_msg(const char *level, const char *fmt, ...)
{
    (void)level;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (leaks_key(buf))
        FAIL("an API key in a log line: %s", buf);
}

void log_request_line(const char *method, const char *path, unsigned status, double ms,
                      const char *request_id, const char *remote, const char *outcome)
{
    (void)status, (void)ms;
    const char *fields[] = {method, path, request_id, remote, outcome};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (fields[i] && leaks_key(fields[i]))
            FAIL("an API key in an access-log line: %s", fields[i]);
}

/* No coalescing here: every request is served on the calling thread, the
 * path a stopping or --coalesce-max 0 daemon takes (the batch path renders
 * the same answers). No request deadline either: there are no sockets. */
coalescer *coalescer_start(const char *name, size_t max_batch, unsigned threads,
                           coalesce_run_fn run)
{
    (void)name, (void)max_batch, (void)threads, (void)run;
    return NULL;
}
bool coalescer_submit(coalescer *co, api_request *rq, void (*finish)(api_request *rq), void *work,
                      void (*work_free)(void *work))
{
    (void)co, (void)rq, (void)finish, (void)work, (void)work_free;
    return false;
}
void coalescer_stop(coalescer *co)
{
    (void)co;
}
void coalescer_free(coalescer *co)
{
    (void)co;
}
void deadline_disarm(struct MHD_Connection *c)
{
    (void)c;
}
void deadline_rearm(struct MHD_Connection *c)
{
    (void)c;
}

static int dummy_client;
aipalq_client *tlclient_get(void)
{
    return (aipalq_client *)&dummy_client;
}

/* ------------------------------------------------ library stubs */

const char *aipalq_client_errmsg(const aipalq_client *c)
{
    (void)c;
    return "stub: no such task";
}

static void check_params(const char *type, const char *params)
{
    char err[256];
    if (!catalog_find(type))
        FAIL("enqueue of unknown type %s", type);
    if (aipalq__params_check(params, err, sizeof err) != AIPALQ_OK)
        FAIL("the API enqueues params the library refuses (%s): %.300s", err, params);
    enqueued++;
}

aipalq_status aipalq_enqueue(aipalq_client *c, const char *type, const char *params,
                             const aipalq_opts *opts, char *id_out, int *created)
{
    (void)c, (void)opts;
    check_params(type, params);
    snprintf(id_out, AIPALQ_ID_SIZE, "0190a0b0-c0d0-7e00-8000-000000000001");
    if (created)
        *created = 1;
    return AIPALQ_OK;
}

struct aipalq_batch_stub {
    int n;
};
aipalq_batch *aipalq_batch_new(void)
{
    return calloc(1, sizeof(struct aipalq_batch_stub));
}
void aipalq_batch_free(aipalq_batch *b)
{
    free(b);
}
aipalq_status aipalq_batch_add(aipalq_batch *b, const char *type, const char *params,
                               const aipalq_opts *opts)
{
    (void)opts;
    check_params(type, params);
    ((struct aipalq_batch_stub *)b)->n++;
    return AIPALQ_OK;
}
aipalq_status aipalq_enqueue_batch(aipalq_client *c, aipalq_batch *b)
{
    (void)c, (void)b;
    return AIPALQ_OK;
}
const char *aipalq_batch_id(const aipalq_batch *b, size_t i)
{
    return i < (size_t)((const struct aipalq_batch_stub *)b)->n
               ? "0190a0b0-c0d0-7e00-8000-000000000002"
               : NULL;
}
int aipalq_batch_created(const aipalq_batch *b, size_t i)
{
    (void)b, (void)i;
    return 1;
}

aipalq_status aipalq_get(aipalq_client *c, const char *id, aipalq_task **out)
{
    (void)c, (void)id;
    *out = NULL;
    return AIPALQ_ENOTFOUND;
}
void aipalq_task_free(aipalq_task *t)
{
    (void)t;
}
const char *aipalq_task_json(const aipalq_task *t)
{
    (void)t;
    return "{}";
}
const char *aipalq_task_type(const aipalq_task *t)
{
    (void)t;
    return "echo";
}
aipalq_state aipalq_task_state(const aipalq_task *t)
{
    (void)t;
    return AIPALQ_STATE_PENDING;
}
int64_t aipalq_task_created_ms(const aipalq_task *t)
{
    (void)t;
    return 0;
}
aipalq_status aipalq_cancel(aipalq_client *c, const char *id, aipalq_state *state)
{
    (void)c, (void)id, (void)state;
    return AIPALQ_ENOTFOUND;
}
aipalq_status aipalq_retry(aipalq_client *c, const char *id)
{
    (void)c, (void)id;
    return AIPALQ_ENOTFOUND;
}

/* Filters: the real setters' rules (lib/list.c), and a note of any refusal. */
struct aipalq_filter_stub {
    int states;
};
aipalq_filter *aipalq_filter_new(void)
{
    return calloc(1, sizeof(struct aipalq_filter_stub));
}
void aipalq_filter_free(aipalq_filter *f)
{
    free(f);
}
aipalq_status aipalq_filter_add_state(aipalq_filter *f, aipalq_state s)
{
    if (!f || (int)s < 0 || s >= AIPALQ_STATE_COUNT) {
        filter_refused++;
        return AIPALQ_EINVAL;
    }
    return AIPALQ_OK;
}
static aipalq_status filter_text(const char *s)
{
    if (s && (strlen(s) > 200 || aipalq__utf8_invalid_at((const unsigned char *)s, strlen(s)) >= 0)) {
        filter_refused++;
        return AIPALQ_EINVAL;
    }
    return AIPALQ_OK;
}
aipalq_status aipalq_filter_set_type(aipalq_filter *f, const char *v)
{
    (void)f;
    return filter_text(v);
}
aipalq_status aipalq_filter_set_queue(aipalq_filter *f, const char *v)
{
    (void)f;
    return filter_text(v);
}
aipalq_status aipalq_filter_set_user_id(aipalq_filter *f, const char *v)
{
    (void)f;
    return filter_text(v);
}
aipalq_status aipalq_filter_set_page(aipalq_filter *f, int64_t limit, int64_t offset)
{
    (void)f;
    if (limit < 1 || limit > 1000 || offset < 0) {
        filter_refused++;
        return AIPALQ_EINVAL;
    }
    return AIPALQ_OK;
}
aipalq_status aipalq_filter_set_oldest_first(aipalq_filter *f, int oldest)
{
    (void)f, (void)oldest;
    return AIPALQ_OK;
}
static aipalq_status list_common(aipalq_list **out)
{
    if (filter_refused)
        FAIL("the API lists tasks after the library refused one of its filters: the list "
             "would not be filtered as asked");
    listed++;
    *out = (aipalq_list *)calloc(1, 8);
    return AIPALQ_OK;
}
aipalq_status aipalq_list_tasks(aipalq_client *c, const aipalq_filter *f, aipalq_list **out)
{
    (void)c, (void)f;
    return list_common(out);
}
aipalq_status aipalq_list_pending(aipalq_client *c, int64_t limit, int64_t offset,
                                  aipalq_list **out)
{
    (void)c;
    if (limit < 1 || limit > 1000 || offset < 0)
        FAIL("pending view with limit %lld offset %lld", (long long)limit, (long long)offset);
    return list_common(out);
}
aipalq_status aipalq_list_failed(aipalq_client *c, int64_t limit, int64_t offset,
                                 aipalq_list **out)
{
    return aipalq_list_pending(c, limit, offset, out);
}
void aipalq_list_free(aipalq_list *l)
{
    free(l);
}
size_t aipalq_list_count(const aipalq_list *l)
{
    (void)l;
    return 0;
}
const aipalq_task *aipalq_list_at(const aipalq_list *l, size_t i)
{
    (void)l, (void)i;
    return NULL;
}
int64_t aipalq_list_total(const aipalq_list *l)
{
    (void)l;
    return 0;
}
int64_t aipalq_list_total_ms(const aipalq_list *l)
{
    (void)l;
    return 0;
}
aipalq_status aipalq_ping(aipalq_client *c, int *redis_ok, int *pg_ok)
{
    (void)c;
    if (redis_ok)
        *redis_ok = 1;
    if (pg_ok)
        *pg_ok = 1;
    return AIPALQ_OK;
}

/* ------------------------------------------------ the request */

/* %XX and '+' as libmicrohttpd decodes query arguments (and %XX in the path). */
static void unescape(char *s, bool plus)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (*p == '%' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])) {
            char hex[3] = {p[1], p[2], 0};
            *o++ = (char)strtol(hex, NULL, 16);
            p += 2;
        } else {
            *o++ = plus && *p == '+' ? ' ' : *p;
        }
    }
    *o = '\0';
}

static void reset_conn(void)
{
    for (int i = 0; i < conn.nheaders; i++)
        free(conn.hname[i]), free(conn.hvalue[i]);
    for (int i = 0; i < conn.nargs; i++)
        free(conn.aname[i]), free(conn.avalue[i]);
    memset(&conn, 0, sizeof conn);
}

static void parse_query(char *q)
{
    for (char *save = NULL, *kv = strtok_r(q, "&", &save); kv && conn.nargs < MAX_KV;
         kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (eq)
            *eq = '\0';
        char *k = strdup(kv), *v = strdup(eq ? eq + 1 : "");
        unescape(k, true);
        unescape(v, true);
        conn.aname[conn.nargs] = k;
        conn.avalue[conn.nargs++] = v;
    }
}

static api_config cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    setenv("AIPALQ_API_KEYS_RW", RW_KEY, 1);
    setenv("AIPALQ_API_KEYS_RO", RO_KEY, 1);
    char err[256];
    if (auth_load(NULL, err, sizeof err) != 0)
        FAIL("auth_load: %s", err);
    snprintf(cfg.listen_host, sizeof cfg.listen_host, "127.0.0.1");
    cfg.max_body_bytes = 2048; /* small, so that the fuzzer reaches the limits */
    cfg.open_metrics = true;
    cfg.threads = 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    reset_conn();
    enqueued = listed = filter_refused = 0;
    key_echo_allowed = false;

    /* Request line and headers (up to a blank line), then the body (raw bytes). */
    char *head_end = strstr(text, "\n\n");
    const char *body = head_end ? head_end + 2 : "";
    size_t body_len = head_end ? size - (size_t)(body - text) : 0;
    if (head_end)
        *head_end = '\0';
    char *save = NULL;
    char *line = strtok_r(text, "\n", &save);
    if (!line) {
        free(text);
        return 0;
    }
    char *sp = strchr(line, ' ');
    const char *method = "GET";
    char *target = line;
    if (sp) {
        *sp = '\0';
        method = line;
        target = sp + 1;
    }
    static const char *const methods[] = {"GET", "HEAD", "POST", "DELETE", "PUT", "PATCH",
                                          "OPTIONS"};
    bool known_method = false;
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
        if (strcmp(method, methods[i]) == 0)
            method = methods[i], known_method = true;
    if (!known_method || !*target) {
        free(text);
        return 0; /* libmicrohttpd answers those itself */
    }
    char *q = strchr(target, '?');
    if (q) {
        *q++ = '\0';
        parse_query(q);
    }
    unescape(target, false);
    bool has_write_key = false, has_ro_key = false;
    for (char *h = strtok_r(NULL, "\n", &save); h && conn.nheaders < MAX_KV;
         h = strtok_r(NULL, "\n", &save)) {
        char *colon = strchr(h, ':');
        if (!colon || colon == h)
            continue;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ')
            v++;
        conn.hname[conn.nheaders] = strdup(h);
        conn.hvalue[conn.nheaders++] = strdup(v);
        if (strcasecmp(h, "Authorization") == 0) {
            has_write_key |= strstr(v, RW_KEY) != NULL;
            has_ro_key |= strstr(v, RO_KEY) != NULL;
        }
    }

    {
        bool elsewhere = strstr(target, RW_KEY) || strstr(target, RO_KEY) ||
                         (body_len && (memmem(body, body_len, RW_KEY, strlen(RW_KEY)) ||
                                       memmem(body, body_len, RO_KEY, strlen(RO_KEY))));
        for (int i = 0; i < conn.nheaders; i++)
            if (strcasecmp(conn.hname[i], "Authorization") != 0)
                elsewhere |= strstr(conn.hname[i], RW_KEY) || strstr(conn.hname[i], RO_KEY) ||
                             strstr(conn.hvalue[i], RW_KEY) || strstr(conn.hvalue[i], RO_KEY);
        for (int i = 0; i < conn.nargs; i++)
            if (strcmp(conn.aname[i], "access_token") != 0)
                elsewhere |= strstr(conn.aname[i], RW_KEY) || strstr(conn.aname[i], RO_KEY) ||
                             strstr(conn.avalue[i], RW_KEY) || strstr(conn.avalue[i], RO_KEY);
        key_echo_allowed = elsewhere;
    }
    api_request *rq = request_new(&conn, &cfg, target, method);
    if (!rq) {
        free(text);
        return 0;
    }
    if (!request_admit(rq)) {
        /* The body in two chunks, as the network might deliver it. */
        size_t half = body_len / 2;
        bool keep = request_take_body(rq, body, half) &&
                    request_take_body(rq, body + half, body_len - half);
        if (keep)
            request_dispatch(rq);
    }
    bool write_op = rq->op && rq->op->access == ACCESS_WRITE;
    bool responded = rq->responded;
    unsigned status = rq->status;
    request_complete(rq);

    if (!responded && conn.responses == 0 && body_len <= cfg.max_body_bytes * 4)
        FAIL("no response to %s %s", method, target);
    if (write_op && !has_write_key && (enqueued || (status >= 200 && status < 300)))
        FAIL("a write (%s %s) succeeded without the read-write key (status %u)", method, target,
             status);
    (void)has_ro_key;
    free(text);
    return 0;
}
