/* Request deadlines: a list of open connections and a thread that shuts
 * down those past their deadline. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "deadline.h"
#include "log.h"
#include "util.h"

typedef struct watched {
    struct watched *prev, *next;
    MHD_socket fd;
    atomic_llong due_us; /* monotonic; 0: not timed */
} watched;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static watched *head;
static int64_t window_us;
static bool running, stopping;
static pthread_t thread;

static watched *of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        window_us ? MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT) : NULL;
    return info ? info->socket_context : NULL;
}

void deadline_opened(struct MHD_Connection *conn, void **socket_context)
{
    if (!window_us)
        return;
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    watched *w = info ? calloc(1, sizeof *w) : NULL;
    if (!w)
        return; /* not timed: the idle timeout still applies */
    w->fd = info->connect_fd;
    atomic_store(&w->due_us, util_mono_us() + window_us);
    pthread_mutex_lock(&mu);
    w->next = head;
    if (head)
        head->prev = w;
    head = w;
    pthread_mutex_unlock(&mu);
    *socket_context = w;
}

/* libmicrohttpd notifies the close before it closes the socket: once the
 * entry is gone (under the lock the reaper holds while it shuts sockets
 * down), the reaper can no longer touch a number the system may reuse. */
void deadline_closed(void **socket_context)
{
    watched *w = *socket_context;
    if (!w)
        return;
    pthread_mutex_lock(&mu);
    if (w->prev)
        w->prev->next = w->next;
    else
        head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    pthread_mutex_unlock(&mu);
    free(w);
    *socket_context = NULL;
}

void deadline_disarm(struct MHD_Connection *conn)
{
    watched *w = of(conn);
    if (w)
        atomic_store(&w->due_us, 0);
}

void deadline_rearm(struct MHD_Connection *conn)
{
    watched *w = of(conn);
    if (w)
        atomic_store(&w->due_us, util_mono_us() + window_us);
}

/* Shuts down the connections past their deadline; caller holds the lock.
 * libmicrohttpd then sees the socket end and closes the connection. */
static void reap(void)
{
    int64_t now = util_mono_us();
    int cut = 0;
    for (watched *w = head; w; w = w->next) {
        long long due = atomic_load(&w->due_us);
        if (due && now > due && atomic_compare_exchange_strong(&w->due_us, &due, 0)) {
            shutdown(w->fd, SHUT_RDWR);
            cut++;
        }
    }
    if (cut)
        log_msg("warning",
                "closed %d connection(s) that did not send a whole request within "
                "%lld s",
                cut, (long long)(window_us / 1000000));
}

static void *run(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    while (!stopping) {
        reap();
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 200 * 1000 * 1000; /* a deadline is kept to within 0.2 s */
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&wake, &mu, &until);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

int deadline_start(unsigned seconds)
{
    window_us = (int64_t)seconds * 1000000;
    if (!seconds)
        return 0;
    running = pthread_create(&thread, NULL, run, NULL) == 0;
    return running ? 0 : -1;
}

void deadline_stop(void)
{
    if (!running)
        return;
    pthread_mutex_lock(&mu);
    stopping = true;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&mu);
    pthread_join(thread, NULL);
    running = false;
}
