/* Event stream subscribers. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "catalog.h"
#include "fields.h"
#include "handlers.h"
#include "respond.h"
#include "sse.h"
#include "util.h"

/* A subscriber that falls this far behind is dropped. */
#define MAX_PENDING_BYTES (1024 * 1024)
/* Idle timeout of a stream's connection: longer than the heartbeat period,
 * so only a client that stopped reading times out. */
#define STREAM_TIMEOUT_S 60

typedef struct sse_client {
    struct MHD_Connection *conn;
    pthread_mutex_t lock;
    char *buf;
    size_t len, off, cap;
    bool suspended, closed;
    /* Set when MHD is done with the stream; the hub frees it later. */
    atomic_bool dead;
    char task_id[AIPALQ_ID_SIZE];
    char type[65], queue[65];
    struct sse_client *next;
} sse_client;

static pthread_mutex_t hub_lock = PTHREAD_MUTEX_INITIALIZER;
static sse_client *clients;
static atomic_size_t nclients;
static atomic_llong since_ms;
static unsigned max_clients;
static atomic_bool closing;

void sse_init(unsigned max)
{
    max_clients = max;
}

size_t sse_client_count(void)
{
    return atomic_load(&nclients);
}

/* Appends to a client's buffer; caller holds its lock. False: dropped. */
static bool append(sse_client *c, const char *data, size_t len)
{
    if (c->closed)
        return false;
    if (c->len - c->off + len > MAX_PENDING_BYTES) {
        c->closed = true;
        return false;
    }
    if (c->off > 0 && c->off == c->len)
        c->off = c->len = 0;
    if (c->len + len > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + len)
            cap *= 2;
        char *grown = realloc(c->buf, cap);
        if (!grown) {
            c->closed = true;
            return false;
        }
        c->buf = grown;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, data, len);
    c->len += len;
    return true;
}

/* Wakes a suspended stream; caller holds its lock. */
static void wake(sse_client *c)
{
    if (c->suspended) {
        c->suspended = false;
        MHD_resume_connection(c->conn);
    }
}

static ssize_t on_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    sse_client *c = cls;
    pthread_mutex_lock(&c->lock);
    ssize_t n;
    if (c->len > c->off) {
        size_t take = c->len - c->off < max ? c->len - c->off : max;
        memcpy(buf, c->buf + c->off, take);
        c->off += take;
        n = (ssize_t)take;
    } else if (c->closed) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        /* Nothing to send: park the connection until wake(). */
        c->suspended = true;
        MHD_suspend_connection(c->conn);
        n = 0;
    }
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* MHD is done with the stream. No lock here: MHD may call this while
 * holding its own locks, which the hub takes after its own (wake). */
static void on_free(void *cls)
{
    sse_client *c = cls;
    atomic_fetch_sub(&nclients, 1);
    atomic_store(&c->dead, true);
}

static void destroy(sse_client *c)
{
    pthread_mutex_destroy(&c->lock);
    free(c->buf);
    free(c);
}

/* Unlinks and frees the streams that ended; caller holds hub_lock. A
 * suspended stream cannot end, so wake() never meets a freed one. */
static void sweep(void)
{
    sse_client **pp = &clients;
    while (*pp) {
        sse_client *c = *pp;
        if (atomic_load(&c->dead)) {
            *pp = c->next;
            destroy(c);
        } else {
            pp = &c->next;
        }
    }
}

static bool matches(const sse_client *c, const char *task_id, const char *type, const char *queue)
{
    return (!c->task_id[0] || (task_id && strcmp(c->task_id, task_id) == 0)) &&
           (!c->type[0] || (type && strcmp(c->type, type) == 0)) &&
           (!c->queue[0] || (queue && strcmp(c->queue, queue) == 0));
}

void sse_broadcast(const char *task_id, const char *type, const char *queue, const char *frame,
                   size_t len)
{
    pthread_mutex_lock(&hub_lock);
    sweep();
    for (sse_client *c = clients; c; c = c->next) {
        if (!matches(c, task_id, type, queue))
            continue;
        pthread_mutex_lock(&c->lock);
        append(c, frame, len);
        wake(c);
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_unlock(&hub_lock);
}

int64_t sse_since_ms(void)
{
    return atomic_load(&since_ms);
}

void sse_heartbeat(void)
{
    char ts[40], line[64];
    util_iso8601(util_now_ms(), ts, sizeof ts);
    int n = snprintf(line, sizeof line, ": heartbeat %s\n\n", ts);
    pthread_mutex_lock(&hub_lock);
    sweep();
    for (sse_client *c = clients; c; c = c->next) {
        pthread_mutex_lock(&c->lock);
        append(c, line, (size_t)n);
        wake(c);
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_unlock(&hub_lock);
}

void sse_shutdown(void)
{
    pthread_mutex_lock(&hub_lock);
    closing = true;
    sweep();
    for (sse_client *c = clients; c; c = c->next) {
        pthread_mutex_lock(&c->lock);
        c->closed = true;
        wake(c);
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_unlock(&hub_lock);
}

void sse_free(void)
{
    pthread_mutex_lock(&hub_lock);
    while (clients) {
        sse_client *c = clients;
        clients = c->next;
        destroy(c);
    }
    pthread_mutex_unlock(&hub_lock);
}

/* Optional filters: task_id, type, queue. */
static bool read_filters(api_request *rq, sse_client *c, cJSON *errors)
{
    const char *task = rq_query(rq, "task_id");
    const char *type = rq_query(rq, "type");
    const char *queue = rq_query(rq, "queue");
    bool ok = true;
    if (task && strlen(task) != AIPALQ_ID_SIZE - 1) {
        catalog_add_error(errors, "task_id", "must be a task id (a UUID)");
        ok = false;
    } else if (task) {
        memcpy(c->task_id, task, AIPALQ_ID_SIZE);
    }
    if (type && !fields_valid_name(type)) {
        catalog_add_error(errors, "type", "must be 1 to 64 characters of A-Z a-z 0-9 _ . -");
        ok = false;
    } else if (type) {
        snprintf(c->type, sizeof c->type, "%s", type);
    }
    if (queue && !fields_valid_name(queue)) {
        catalog_add_error(errors, "queue", "must be 1 to 64 characters of A-Z a-z 0-9 _ . -");
        ok = false;
    } else if (queue) {
        snprintf(c->queue, sizeof c->queue, "%s", queue);
    }
    return ok;
}

/* Adds the client to the hub; false when shutting down or full. */
static bool subscribe(sse_client *c)
{
    pthread_mutex_lock(&hub_lock);
    sweep();
    bool ok = !closing && atomic_load(&nclients) < max_clients;
    if (ok) {
        if (atomic_load(&nclients) == 0)
            atomic_store(&since_ms, util_now_ms());
        c->next = clients;
        clients = c;
        atomic_fetch_add(&nclients, 1);
    }
    pthread_mutex_unlock(&hub_lock);
    return ok;
}

static struct MHD_Response *stream_response(sse_client *c)
{
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, on_read, c, on_free);
    if (!r)
        return NULL;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    return r;
}

/* GET /api/tasks/events */
void h_events(api_request *rq)
{
    cJSON *errors = cJSON_CreateArray();
    sse_client *c = calloc(1, sizeof *c);
    if (!c || !read_filters(rq, c, errors)) {
        free(c);
        respond_validation(rq, errors);
        return;
    }
    cJSON_Delete(errors);
    pthread_mutex_init(&c->lock, NULL);
    c->conn = rq->conn;
    static const char hello[] = "retry: 3000\n: connected\n\n";
    append(c, hello, sizeof hello - 1);
    if (!subscribe(c)) {
        pthread_mutex_destroy(&c->lock);
        free(c->buf);
        free(c);
        respond_error(rq, 503, "unavailable",
                      closing ? "the server is shutting down" : "too many event streams");
        return;
    }
    struct MHD_Response *r = stream_response(c);
    if (!r) {
        on_free(c);
        respond_internal(rq, "cannot create an event stream");
        return;
    }
    MHD_set_connection_option(rq->conn, MHD_CONNECTION_OPTION_TIMEOUT, STREAM_TIMEOUT_S);
    rq->stream = true;
    respond_queue(rq, 200, r);
}
