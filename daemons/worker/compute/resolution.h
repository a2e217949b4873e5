/* Epistemic-debt resolution statistics over a window of days ending now:
 *   created              debts recorded in the window
 *   created_resolved     of those, how many are resolved (at any time)
 *   resolution_rate      created_resolved / created (0 when none)
 *   resolutions          debts resolved in the window (whenever recorded)
 *   mean/median_hours    recording-to-resolution time of those resolutions
 *   most_common_method   the method of most of those resolutions (ties: the
 *                        alphabetically first; "" when none)
 *   per severity         created and created_resolved
 *   timeline             per day of the window (day 0 the oldest, the last
 *                        ending now): debts recorded and debts resolved
 * Pure. */
#ifndef AIPAL_WORKER_RESOLUTION_H
#define AIPAL_WORKER_RESOLUTION_H

#include <stddef.h>
#include <stdint.h>

#include "epistemic.h"

typedef struct edm_debt_row {
    int64_t created_ms;
    int resolved;
    int64_t resolved_ms; /* 0 when unknown */
    const char *method;  /* NULL when unknown */
    edm_severity severity;
} edm_debt_row;

#define EDM_MAX_TIMELINE_DAYS 3650

typedef struct edm_resolution_stats {
    size_t created, created_resolved;
    double resolution_rate;
    size_t resolutions;
    double mean_hours, median_hours;
    char most_common_method[128];
    size_t most_common_count;
    size_t sev_created[4], sev_resolved[4];
    int days;
    size_t *timeline_created, *timeline_resolved; /* days entries each; malloc'd */
} edm_resolution_stats;

/* Returns 0, or -1 when memory runs out. Free with edm_resolution_free. */
int edm_resolution_compute(const edm_debt_row *rows, size_t n, int64_t now_ms, int days,
                           edm_resolution_stats *out);
void edm_resolution_free(edm_resolution_stats *s);

#endif
