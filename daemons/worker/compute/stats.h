/* Descriptive statistics and trends over time series, for the ARI tasks and
 * the benchmark. Pure functions: no I/O, no allocation unless stated. */
#ifndef AIPAL_WORKER_STATS_H
#define AIPAL_WORKER_STATS_H

#include <stddef.h>
#include <stdint.h>

typedef struct stats_summary {
    size_t count;
    double mean, min, max;
    /* Sample standard deviation (divisor n - 1); 0 when count < 2. */
    double stddev;
    /* The value with the greatest time (on ties, the later one in the input). */
    double latest;
    int64_t latest_ms;
} stats_summary;

/* Summarizes n values observed at t_ms[i] (t_ms may be NULL: the last value
 * is then the latest). count 0 leaves every other field 0. */
void stats_summarize(const double *v, const int64_t *t_ms, size_t n, stats_summary *out);

/* Least-squares line y = slope * x + intercept. Returns 0 and sets slope = 0,
 * intercept = mean(y) when n < 2 or all x are equal; else 1. */
int stats_linear_fit(const double *x, const double *y, size_t n, double *slope, double *intercept);

/* (value - mean) / stddev; 0 when stddev is 0. */
double stats_zscore(double value, double mean, double stddev);

/* The change from first to last in percent of |first|. Returns 0 (and leaves
 * *out alone) when first is 0. */
int stats_change_percent(double first, double last, double *out);

typedef enum stats_severity {
    STATS_SEVERITY_NONE = 0,
    STATS_SEVERITY_WARNING,
    STATS_SEVERITY_CRITICAL
} stats_severity;

/* The original's alert rule: a decline larger than threshold_percent raises
 * an alert; critical when the change is at or below -20 %, else warning. */
stats_severity stats_decline_severity(double change_percent, double threshold_percent);
const char *stats_severity_name(stats_severity s);

/* A metric's trend over a window, values in time order (oldest first). */
typedef struct stats_trend {
    stats_summary summary;
    double first;            /* the oldest value */
    int has_change;          /* 0 when the oldest value is 0 */
    double change_percent;   /* first -> latest */
    double slope_per_day;    /* least-squares slope, units per day */
    double z_score;          /* of the latest value against the window */
    stats_severity severity; /* of the decline, per stats_decline_severity */
} stats_trend;

void stats_trend_compute(const double *v, const int64_t *t_ms, size_t n, double threshold_percent,
                         stats_trend *out);

/* The p-th percentile (0..100) of sorted[0..n) with linear interpolation
 * between closest ranks; 0 for n = 0. */
double stats_percentile(const double *sorted, size_t n, double p);

/* Sorts v[0..n) ascending in place. */
void stats_sort(double *v, size_t n);

#endif
