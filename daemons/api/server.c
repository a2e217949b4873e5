/* libmicrohttpd setup and its callbacks. */
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "deadline.h"
#include "log.h"
#include "metrics.h"
#include "request.h"
#include "server.h"

/* Per-connection memory for headers and buffers (libmicrohttpd's default):
 * it is cleared for every request on a connection and resident for every
 * open one. */
#define CONNECTION_MEMORY (32 * 1024)

static struct MHD_Daemon *daemon_;
static const api_config *config;
static atomic_bool draining;
static MHD_socket quiesced_fd = MHD_INVALID_SOCKET;

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    (void)version;
    api_request *rq = *con_cls;
    if (!rq) {
        rq = request_new(conn, config, url, method);
        if (!rq)
            return MHD_NO;
        *con_cls = rq;
        metrics_inflight_add(1);
        /* A request with a body is admitted now, so that a refused one is
         * answered without reading its body (MHD then closes the
         * connection); one without is admitted with its final call, which
         * keeps the connection alive whatever the answer. */
        if (request_has_body(rq))
            request_admit(rq);
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        bool keep = request_take_body(rq, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return keep ? MHD_YES : MHD_NO;
    }
    if (!rq->admitted && request_admit(rq))
        return MHD_YES;
    request_dispatch(rq);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)toe;
    api_request *rq = *con_cls;
    if (!rq)
        return;
    *con_cls = NULL;
    deadline_rearm(conn);
    request_complete(rq);
    metrics_inflight_add(-1);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        deadline_opened(conn, socket_context);
    else
        deadline_closed(socket_context);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t len = strlen(msg);
    while (len && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
        msg[--len] = '\0';
    log_msg("info", "libmicrohttpd: %s", msg);
}

static int resolve(const api_config *cfg, struct sockaddr_storage *addr, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", cfg->listen_port);
    int rc = getaddrinfo(cfg->listen_host, port, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "cannot resolve listen address %s: %s", cfg->listen_host,
                 gai_strerror(rc));
        return -1;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

int server_start(const api_config *cfg, char *err, size_t errlen)
{
    static struct sockaddr_storage addr;
    config = cfg;
    if (resolve(cfg, &addr, err, errlen) != 0)
        return -1;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    daemon_ = MHD_start_daemon(
        flags, (uint16_t)cfg->listen_port, NULL, NULL, on_access, NULL, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads, MHD_OPTION_CONNECTION_TIMEOUT,
        cfg->conn_timeout_s, MHD_OPTION_CONNECTION_LIMIT, cfg->conn_limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->per_ip_limit, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)CONNECTION_MEMORY, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL, MHD_OPTION_END);
    if (!daemon_) {
        snprintf(err, errlen, "cannot listen on %s:%u (in use, or not permitted)", cfg->listen_host,
                 cfg->listen_port);
        return -1;
    }
    return 0;
}

unsigned server_port(void)
{
    const union MHD_DaemonInfo *info =
        daemon_ ? MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    return info ? info->port : 0;
}

void server_quiesce(void)
{
    atomic_store(&draining, true);
    if (daemon_ && quiesced_fd == MHD_INVALID_SOCKET)
        quiesced_fd = MHD_quiesce_daemon(daemon_);
}

bool server_draining(void)
{
    return atomic_load(&draining);
}

void server_stop(void)
{
    if (daemon_)
        MHD_stop_daemon(daemon_);
    daemon_ = NULL;
    if (quiesced_fd != MHD_INVALID_SOCKET)
        close(quiesced_fd);
    quiesced_fd = MHD_INVALID_SOCKET;
}
