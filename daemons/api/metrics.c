/* Request counters and latency histograms. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "router.h"

#define MAX_ROUTES 48
#define NMETHODS   8

static const char *const methods[NMETHODS] = {"GET",    "HEAD",    "POST",  "PUT",
                                              "DELETE", "OPTIONS", "PATCH", "OTHER"};
static const unsigned statuses[] = {200, 201, 202, 204, 400, 401, 403, 404,
                                    405, 409, 413, 415, 429, 500, 503, 0};
#define NSTATUSES (sizeof statuses / sizeof statuses[0])
static const double buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                 0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

/* Slot MAX_ROUTES - 1 holds unmatched paths. */
static atomic_ullong counts[MAX_ROUTES][NMETHODS][NSTATUSES];
static atomic_ullong hist[MAX_ROUTES][NBUCKETS + 1];
static atomic_ullong hist_sum_us[MAX_ROUTES];
static atomic_long inflight;

#define MAX_COALESCERS 4
static const char *coalescer_kinds[MAX_COALESCERS];
static atomic_ullong coalesced_batches[MAX_COALESCERS], coalesced_requests[MAX_COALESCERS];

static int method_index(const char *m)
{
    for (int i = 0; i < NMETHODS - 1; i++)
        if (strcmp(methods[i], m) == 0)
            return i;
    return NMETHODS - 1;
}

static size_t status_index(unsigned status)
{
    for (size_t i = 0; i < NSTATUSES - 1; i++)
        if (statuses[i] == status)
            return i;
    return NSTATUSES - 1;
}

static int route_slot(int route_index)
{
    return route_index >= 0 && route_index < MAX_ROUTES - 1 ? route_index : MAX_ROUTES - 1;
}

void metrics_observe_request(int route_index, const char *method, unsigned status, double seconds)
{
    int r = route_slot(route_index);
    atomic_fetch_add_explicit(&counts[r][method_index(method)][status_index(status)], 1,
                              memory_order_relaxed);
    size_t b = 0;
    while (b < NBUCKETS && seconds > buckets[b])
        b++;
    atomic_fetch_add_explicit(&hist[r][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&hist_sum_us[r], (unsigned long long)(seconds * 1e6),
                              memory_order_relaxed);
}

void metrics_inflight_add(int delta)
{
    atomic_fetch_add(&inflight, delta);
}

long metrics_inflight(void)
{
    return atomic_load(&inflight);
}

int metrics_printf(metrics_buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -1;
        if (b->data && (size_t)n < room) {
            b->len += (size_t)n;
            return 0;
        }
        size_t cap = b->cap ? b->cap * 2 : 16384;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown)
            return -1;
        b->data = grown;
        b->cap = cap;
    }
}

static const char *route_label(int slot)
{
    return slot < MAX_ROUTES - 1 && (size_t)slot < routes_count() ? routes_at((size_t)slot)->pattern
                                                                  : "unmatched";
}

static int render_counts(metrics_buf *b)
{
    int rc = metrics_printf(b, "# HELP aipal_api_requests_total HTTP requests served, by route "
                               "pattern, method and status.\n"
                               "# TYPE aipal_api_requests_total counter\n");
    for (int r = 0; r < MAX_ROUTES && rc == 0; r++)
        for (int m = 0; m < NMETHODS; m++)
            for (size_t s = 0; s < NSTATUSES && rc == 0; s++) {
                unsigned long long n = atomic_load_explicit(&counts[r][m][s], memory_order_relaxed);
                if (!n)
                    continue;
                char status[8];
                snprintf(status, sizeof status, "%u", statuses[s]);
                rc = metrics_printf(b,
                                    "aipal_api_requests_total{route=\"%s\",method=\"%s\","
                                    "status=\"%s\"} %llu\n",
                                    route_label(r), methods[m], statuses[s] ? status : "other", n);
            }
    return rc;
}

static int render_histogram(metrics_buf *b, int r)
{
    unsigned long long cum = 0;
    int rc = 0;
    for (size_t i = 0; i <= NBUCKETS && rc == 0; i++) {
        cum += atomic_load_explicit(&hist[r][i], memory_order_relaxed);
        char le[16];
        if (i < NBUCKETS)
            snprintf(le, sizeof le, "%g", buckets[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        rc = metrics_printf(b,
                            "aipal_api_request_duration_seconds_bucket{route=\"%s\",le=\"%s\"} "
                            "%llu\n",
                            route_label(r), le, cum);
    }
    if (rc == 0)
        rc = metrics_printf(b,
                            "aipal_api_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                            "aipal_api_request_duration_seconds_count{route=\"%s\"} %llu\n",
                            route_label(r), (double)atomic_load(&hist_sum_us[r]) / 1e6,
                            route_label(r), cum);
    return rc;
}

int metrics_coalescer_register(const char *kind)
{
    for (int i = 0; i < MAX_COALESCERS; i++)
        if (!coalescer_kinds[i] || strcmp(coalescer_kinds[i], kind) == 0) {
            coalescer_kinds[i] = kind;
            return i;
        }
    return -1;
}

void metrics_coalesced(int kind_index, size_t requests)
{
    if (kind_index < 0 || kind_index >= MAX_COALESCERS)
        return;
    atomic_fetch_add_explicit(&coalesced_batches[kind_index], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&coalesced_requests[kind_index], requests, memory_order_relaxed);
}

static int render_coalesced(metrics_buf *b)
{
    int rc = metrics_printf(b, "# HELP aipal_api_coalesced_batches_total Batches run for requests "
                               "served together (one query or one commit each), by kind.\n"
                               "# TYPE aipal_api_coalesced_batches_total counter\n");
    for (int i = 0; i < MAX_COALESCERS && coalescer_kinds[i] && rc == 0; i++)
        rc = metrics_printf(b, "aipal_api_coalesced_batches_total{kind=\"%s\"} %llu\n",
                            coalescer_kinds[i], atomic_load(&coalesced_batches[i]));
    if (rc == 0)
        rc = metrics_printf(b, "# HELP aipal_api_coalesced_requests_total Requests those batches "
                               "served, by kind.\n"
                               "# TYPE aipal_api_coalesced_requests_total counter\n");
    for (int i = 0; i < MAX_COALESCERS && coalescer_kinds[i] && rc == 0; i++)
        rc = metrics_printf(b, "aipal_api_coalesced_requests_total{kind=\"%s\"} %llu\n",
                            coalescer_kinds[i], atomic_load(&coalesced_requests[i]));
    return rc;
}

int metrics_render_requests(metrics_buf *b)
{
    int rc = render_counts(b);
    if (rc == 0)
        rc = metrics_printf(b, "# HELP aipal_api_request_duration_seconds Time from a request's "
                               "headers to its response, by route pattern.\n"
                               "# TYPE aipal_api_request_duration_seconds histogram\n");
    for (int r = 0; r < MAX_ROUTES && rc == 0; r++) {
        unsigned long long total = 0;
        for (size_t i = 0; i <= NBUCKETS; i++)
            total += atomic_load_explicit(&hist[r][i], memory_order_relaxed);
        if (total)
            rc = render_histogram(b, r);
    }
    if (rc == 0)
        rc = metrics_printf(b,
                            "# HELP aipal_api_requests_in_flight Requests being handled, "
                            "event streams included.\n"
                            "# TYPE aipal_api_requests_in_flight gauge\n"
                            "aipal_api_requests_in_flight %ld\n",
                            metrics_inflight());
    if (rc == 0)
        rc = render_coalesced(b);
    return rc;
}
