/* Resolution statistics; see resolution.h. */
#include <stdlib.h>
#include <string.h>

#include "resolution.h"
#include "stats.h"

#define DAY_MS 86400000LL

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int edm_resolution_compute(const edm_debt_row *rows, size_t n, int64_t now_ms, int days,
                           edm_resolution_stats *out)
{
    memset(out, 0, sizeof *out);
    if (days < 1)
        days = 1;
    if (days > EDM_MAX_TIMELINE_DAYS)
        days = EDM_MAX_TIMELINE_DAYS;
    out->days = days;
    int64_t start = now_ms - (int64_t)days * DAY_MS;
    out->timeline_created = calloc((size_t)days, sizeof(size_t));
    out->timeline_resolved = calloc((size_t)days, sizeof(size_t));
    double *hours = malloc((n ? n : 1) * sizeof *hours);
    const char **methods = malloc((n ? n : 1) * sizeof *methods);
    if (!out->timeline_created || !out->timeline_resolved || !hours || !methods) {
        free(hours);
        free(methods);
        edm_resolution_free(out);
        return -1;
    }
    size_t nm = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        const edm_debt_row *r = &rows[i];
        int sev = r->severity >= EDM_LOW && r->severity <= EDM_CRITICAL ? (int)r->severity : 0;
        if (r->created_ms > start && r->created_ms <= now_ms) {
            out->created++;
            out->sev_created[sev]++;
            out->timeline_created[(r->created_ms - start - 1) / DAY_MS]++;
            if (r->resolved) {
                out->created_resolved++;
                out->sev_resolved[sev]++;
            }
        }
        if (r->resolved && r->resolved_ms > start && r->resolved_ms <= now_ms) {
            double h = (double)(r->resolved_ms - r->created_ms) / 3600000.0;
            hours[out->resolutions++] = h;
            sum += h;
            out->timeline_resolved[(r->resolved_ms - start - 1) / DAY_MS]++;
            if (r->method && *r->method)
                methods[nm++] = r->method;
        }
    }
    out->resolution_rate = out->created ? (double)out->created_resolved / (double)out->created : 0;
    if (out->resolutions) {
        out->mean_hours = sum / (double)out->resolutions;
        stats_sort(hours, out->resolutions);
        out->median_hours = stats_percentile(hours, out->resolutions, 50);
    }
    qsort(methods, nm, sizeof *methods, cmp_str);
    for (size_t i = 0; i < nm;) {
        size_t j = i;
        while (j < nm && strcmp(methods[j], methods[i]) == 0)
            j++;
        if (j - i > out->most_common_count) {
            out->most_common_count = j - i;
            strncpy(out->most_common_method, methods[i], sizeof out->most_common_method - 1);
        }
        i = j;
    }
    free(hours);
    free(methods);
    return 0;
}

void edm_resolution_free(edm_resolution_stats *s)
{
    free(s->timeline_created);
    free(s->timeline_resolved);
    s->timeline_created = s->timeline_resolved = NULL;
}
