/* Descriptive statistics and trends: Welford's algorithm for the moments,
 * ordinary least squares for the slope. */
#include <math.h>
#include <stdlib.h>

#include "stats.h"

void stats_summarize(const double *v, const int64_t *t_ms, size_t n, stats_summary *out)
{
    stats_summary s = {0};
    double m2 = 0;
    for (size_t i = 0; i < n; i++) {
        double x = v[i];
        if (s.count == 0 || x < s.min)
            s.min = x;
        if (s.count == 0 || x > s.max)
            s.max = x;
        s.count++;
        double d = x - s.mean;
        s.mean += d / (double)s.count;
        m2 += d * (x - s.mean);
        int64_t t = t_ms ? t_ms[i] : (int64_t)i;
        if (i == 0 || t >= s.latest_ms) {
            s.latest_ms = t;
            s.latest = x;
        }
    }
    if (!t_ms)
        s.latest_ms = 0;
    s.stddev = s.count > 1 ? sqrt(m2 / (double)(s.count - 1)) : 0;
    *out = s;
}

int stats_linear_fit(const double *x, const double *y, size_t n, double *slope, double *intercept)
{
    double mx = 0, my = 0;
    for (size_t i = 0; i < n; i++) {
        mx += x[i];
        my += y[i];
    }
    if (n > 0) {
        mx /= (double)n;
        my /= (double)n;
    }
    double sxx = 0, sxy = 0;
    for (size_t i = 0; i < n; i++) {
        sxx += (x[i] - mx) * (x[i] - mx);
        sxy += (x[i] - mx) * (y[i] - my);
    }
    if (n < 2 || sxx == 0) {
        *slope = 0;
        *intercept = my;
        return 0;
    }
    *slope = sxy / sxx;
    *intercept = my - *slope * mx;
    return 1;
}

double stats_zscore(double value, double mean, double stddev)
{
    return stddev > 0 ? (value - mean) / stddev : 0;
}

int stats_change_percent(double first, double last, double *out)
{
    if (first == 0)
        return 0;
    *out = (last - first) / fabs(first) * 100.0;
    return 1;
}

stats_severity stats_decline_severity(double change_percent, double threshold_percent)
{
    if (!(change_percent < -threshold_percent))
        return STATS_SEVERITY_NONE;
    return change_percent <= -20.0 ? STATS_SEVERITY_CRITICAL : STATS_SEVERITY_WARNING;
}

const char *stats_severity_name(stats_severity s)
{
    switch (s) {
    case STATS_SEVERITY_WARNING:
        return "warning";
    case STATS_SEVERITY_CRITICAL:
        return "critical";
    default:
        return "none";
    }
}

void stats_trend_compute(const double *v, const int64_t *t_ms, size_t n, double threshold_percent,
                         stats_trend *out)
{
    stats_trend t = {0};
    stats_summarize(v, t_ms, n, &t.summary);
    if (n > 0) {
        t.first = v[0];
        t.has_change = stats_change_percent(t.first, t.summary.latest, &t.change_percent);
        t.z_score = stats_zscore(t.summary.latest, t.summary.mean, t.summary.stddev);
    }
    double *days = n ? malloc(n * sizeof *days) : NULL;
    if (days) {
        for (size_t i = 0; i < n; i++)
            days[i] = t_ms ? (double)(t_ms[i] - t_ms[0]) / 86400000.0 : (double)i;
        double intercept;
        stats_linear_fit(days, v, n, &t.slope_per_day, &intercept);
        free(days);
    }
    if (t.has_change)
        t.severity = stats_decline_severity(t.change_percent, threshold_percent);
    *out = t;
}

double stats_percentile(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    if (p <= 0)
        return sorted[0];
    if (p >= 100)
        return sorted[n - 1];
    double rank = p / 100.0 * (double)(n - 1);
    size_t lo = (size_t)floor(rank);
    double frac = rank - (double)lo;
    if (lo + 1 >= n)
        return sorted[n - 1];
    return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void stats_sort(double *v, size_t n)
{
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_double);
}
