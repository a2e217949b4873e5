/* A deadline for reading each request whole.
 *
 * libmicrohttpd's --timeout is an idle timeout: every byte resets it, so a
 * client sending one header byte a second would hold a connection (and one
 * of its address's slots) for ever. Here each connection must deliver a
 * whole request (headers and body) within the deadline of opening or of its
 * previous answer; one that does not is shut down. A connection waiting for
 * its answer (a handler, a coalesced batch, an event stream) is not timed. */
#ifndef AIPAL_API_DEADLINE_H
#define AIPAL_API_DEADLINE_H

struct MHD_Connection;

/* Starts the thread that enforces the deadline (seconds; 0: none). */
int deadline_start(unsigned seconds);
void deadline_stop(void);

/* From libmicrohttpd's connection notifications: a connection opened, with
 * its socket context slot, or closed. */
void deadline_opened(struct MHD_Connection *conn, void **socket_context);
void deadline_closed(void **socket_context);

/* The connection's request was read whole: no deadline while it is served. */
void deadline_disarm(struct MHD_Connection *conn);
/* Its answer is sent: the next request has the full deadline again. */
void deadline_rearm(struct MHD_Connection *conn);

#endif
