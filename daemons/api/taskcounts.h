/* Counts of tasks by type and state, for /metrics: refreshed by the events
 * thread while metrics are being scraped, read by any HTTP thread. */
#ifndef AIPAL_API_TASKCOUNTS_H
#define AIPAL_API_TASKCOUNTS_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "metrics.h"

/* A scrape happened: keep the counts fresh for a while. */
void taskcounts_touch(int64_t now_ms);
/* Whether the events thread should refresh now. */
bool taskcounts_due(int64_t now_ms);
/* Runs the counting query on `conn` (events thread). */
void taskcounts_refresh(PGconn *conn, int64_t now_ms);
/* Appends the latest counts in the Prometheus format. */
int taskcounts_render(metrics_buf *b, int64_t now_ms);

#endif
