/* Server-Sent Events: the subscribers of GET /api/tasks/events and the
 * fan-out to them. A subscriber's connection is suspended while it has
 * nothing to send and resumed when the events thread hands it data, so an
 * idle stream costs no thread and no polling. The hub's lock is taken only
 * by event streams (subscribe, unsubscribe, broadcast), never by other
 * requests. */
#ifndef AIPAL_API_SSE_H
#define AIPAL_API_SSE_H

#include <stddef.h>
#include <stdint.h>

void sse_init(unsigned max_clients);

/* Subscribers now. */
size_t sse_client_count(void);

/* When the current run of subscriptions began (the first subscriber after
 * none): events from then on are delivered. Unix ms. */
int64_t sse_since_ms(void);

/* Sends a frame ("event: ...\ndata: ...\n\n") to every subscriber whose
 * filters match the task's id, type and queue (NULL matches only
 * unfiltered subscribers). */
void sse_broadcast(const char *task_id, const char *type, const char *queue, const char *frame,
                   size_t len);

/* Sends a comment line to every subscriber: keeps proxies from closing idle
 * streams and finds subscribers that went away. */
void sse_heartbeat(void);

/* Ends every stream and refuses new ones (shutdown). */
void sse_shutdown(void);

/* Frees what is left, once the server has stopped. */
void sse_free(void);

#endif
