/* The events thread: one background thread with its own PostgreSQL
 * connection. While anyone subscribes to the event stream it polls
 * aipalq_events (transitions) and aipalq_tasks (new tasks) and fans what it
 * finds out through the SSE hub; it sends the heartbeats; and while metrics
 * are being scraped it refreshes the counts of tasks by type and state. */
#ifndef AIPAL_API_EVENTS_H
#define AIPAL_API_EVENTS_H

#include "config.h"

int events_start(const api_config *cfg);
void events_stop(void);

#endif
