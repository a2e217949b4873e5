/* Request metrics: counters by route, method and status, and a latency
 * histogram per route. Lock-free (atomic counters), so counting costs no
 * request a lock. */
#ifndef AIPAL_API_METRICS_H
#define AIPAL_API_METRICS_H

#include <stddef.h>

/* route_index: the route table's index, or -1 for unmatched paths. */
void metrics_observe_request(int route_index, const char *method, unsigned status, double seconds);

/* Requests being handled now (including open event streams). */
void metrics_inflight_add(int delta);
long metrics_inflight(void);

/* Coalescers (coalesce.h): a kind is registered once at start, from the
 * main thread ("status", "submit"); each batch counts itself and its
 * requests. Returns the kind's index, or -1 when the table is full. */
int metrics_coalescer_register(const char *kind);
void metrics_coalesced(int kind_index, size_t requests);

/* Appends the request metrics in the Prometheus text format to a buffer
 * grown with realloc; returns 0, or -1 when memory runs out. */
typedef struct metrics_buf {
    char *data;
    size_t len, cap;
} metrics_buf;

int metrics_printf(metrics_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int metrics_render_requests(metrics_buf *b);

#endif
