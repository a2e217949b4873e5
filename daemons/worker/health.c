/* The health and metrics port; see health.h. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "catalog.h"
#include "health.h"

struct health {
    struct MHD_Daemon *daemon;
    const worker_config *cfg;
    worker_metrics *metrics;
    _Atomic(aipalq_worker *) worker;
    aipalq_client *probe; /* used only on the server's one thread */
    char queues[512];
    int port;
    int last_ready;
};

static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned code, const char *type,
                                 const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

/* Pings both servers; fills the JSON body and returns 1 when ready. */
static int readiness(health *h, char *body, size_t len, int *redis_ok, int *pg_ok)
{
    *redis_ok = *pg_ok = 0;
    aipalq_ping(h->probe, redis_ok, pg_ok);
    aipalq_worker *w = atomic_load(&h->worker);
    int64_t idle = w ? aipalq_worker_idle_ms(w) : -1;
    int64_t running = 0;
    if (w)
        aipalq_worker_counts(w, NULL, NULL, NULL, NULL, NULL, &running);
    int busy = w && running >= (h->cfg->concurrency > 0 ? h->cfg->concurrency : 1);
    int loop_ok = w && idle >= 0 && (idle < h->cfg->ready_idle_ms || busy);
    int ready = *redis_ok && *pg_ok && loop_ok;
    snprintf(body, len,
             "{\"ready\":%s,\"redis\":%s,\"postgresql\":%s,\"loop\":{\"started\":%s,"
             "\"idle_ms\":%lld,\"threshold_ms\":%lld,\"running\":%lld,\"all_slots_busy\":%s}}\n",
             ready ? "true" : "false", *redis_ok ? "true" : "false", *pg_ok ? "true" : "false",
             w ? "true" : "false", (long long)idle, (long long)h->cfg->ready_idle_ms,
             (long long)running, busy ? "true" : "false");
    h->last_ready = ready;
    return ready;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    health *h = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "application/json",
                         "{\"error\":\"method not allowed\"}\n");
    if (strcmp(url, "/healthz") == 0 || strcmp(url, "/livez") == 0)
        return send_text(conn, MHD_HTTP_OK, "application/json", "{\"status\":\"ok\"}\n");
    if (strcmp(url, "/readyz") == 0) {
        char body[512];
        int r_ok, p_ok;
        int ready = readiness(h, body, sizeof body, &r_ok, &p_ok);
        return send_text(conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                         "application/json", body);
    }
    if (strcmp(url, "/metrics") == 0) {
        char body[512];
        int r_ok, p_ok;
        int ready = readiness(h, body, sizeof body, &r_ok, &p_ok);
        metrics_extra extra = {h->cfg->concurrency, h->cfg->prefork, ready, r_ok, p_ok, h->queues};
        char *text =
            metrics_render(h->metrics, atomic_load(&h->worker), r_ok ? h->probe : NULL, &extra);
        if (!text)
            return send_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", "out of memory\n");
        enum MHD_Result ret =
            send_text(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text);
        free(text);
        return ret;
    }
    return send_text(conn, MHD_HTTP_NOT_FOUND, "application/json", "{\"error\":\"not found\"}\n");
}

health *health_start(const worker_config *cfg, worker_metrics *metrics, char *err, size_t errlen)
{
    health *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->cfg = cfg;
    h->metrics = metrics;
    h->last_ready = -1;
    if (cfg->queues)
        snprintf(h->queues, sizeof h->queues, "%s", cfg->queues);
    else
        for (size_t i = 0; i < catalog_queue_count(); i++)
            snprintf(h->queues + strlen(h->queues), sizeof h->queues - strlen(h->queues), "%s%s",
                     i ? "," : "", catalog_queue_at(i));
    h->probe = aipalq_client_new(cfg->redis_url, cfg->database_url);
    if (!h->probe || aipalq_client_set_timeouts(h->probe, 2000, 2000) != AIPALQ_OK ||
        (cfg->ns && aipalq_client_set_namespace(h->probe, cfg->ns) != AIPALQ_OK)) {
        snprintf(err, errlen, "health probe client: %s", aipalq_client_errmsg(h->probe));
        aipalq_client_free(h->probe);
        free(h);
        return NULL;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)cfg->health_port);
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    if (cfg->health_addr && inet_pton(AF_INET, cfg->health_addr, &sa.sin_addr) != 1) {
        snprintf(err, errlen, "--health-addr: not an IPv4 address: %s", cfg->health_addr);
        aipalq_client_free(h->probe);
        free(h);
        return NULL;
    }
    h->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)cfg->health_port, NULL, NULL,
        on_request, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)10, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_END);
    if (!h->daemon) {
        snprintf(err, errlen, "cannot listen on port %d (in use?)", cfg->health_port);
        aipalq_client_free(h->probe);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : cfg->health_port;
    return h;
}

void health_set_worker(health *h, aipalq_worker *w)
{
    if (h)
        atomic_store(&h->worker, w);
}

int health_port(const health *h)
{
    return h ? h->port : 0;
}

void health_stop(health *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->daemon);
    aipalq_client_free(h->probe);
    free(h);
}
