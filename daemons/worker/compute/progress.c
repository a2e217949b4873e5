/* FFE progress; definitions in progress.h. */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "progress.h"

#define DAY_MS 86400000.0

void ffe_compute_progress(const ffe_block_state *b, size_t n, int64_t start_ms, int64_t deadline_ms,
                          int64_t now_ms, ffe_progress *out)
{
    ffe_progress p;
    memset(&p, 0, sizeof p);
    int64_t last_done = 0;
    for (size_t i = 0; i < n; i++) {
        int m = b[i].minutes > 0 ? b[i].minutes : 0;
        p.total_blocks++;
        p.total_minutes += m;
        if (b[i].completed) {
            p.completed_blocks++;
            p.completed_minutes += m;
            if (b[i].completed_ms > last_done)
                last_done = b[i].completed_ms;
        }
    }
    p.remaining_minutes = p.total_minutes - p.completed_minutes;
    p.completion_percent =
        p.total_minutes > 0
            ? 100.0 * p.completed_minutes / p.total_minutes
            : (p.total_blocks > 0 ? 100.0 * p.completed_blocks / p.total_blocks : 0);
    p.blocks_percent = p.total_blocks > 0 ? 100.0 * p.completed_blocks / p.total_blocks : 0;
    bool done = p.total_blocks > 0 && p.completed_blocks == p.total_blocks;
    int64_t until = done && last_done > 0 ? last_done : now_ms;
    double elapsed = (double)(until - start_ms) / DAY_MS;
    if (elapsed < 1.0 / 24)
        elapsed = 1.0 / 24;
    p.elapsed_days = elapsed;
    p.velocity_minutes_per_day = p.completed_minutes / elapsed;
    if (done)
        p.finished_ms = last_done > 0 ? last_done : now_ms;
    if (done)
        p.projected_finish_ms = p.finished_ms;
    else if (p.velocity_minutes_per_day > 0)
        p.projected_finish_ms =
            now_ms + (int64_t)llround(p.remaining_minutes / p.velocity_minutes_per_day * DAY_MS);
    p.on_track = -1;
    if (deadline_ms > 0) {
        p.days_to_deadline = (double)(deadline_ms - now_ms) / DAY_MS;
        if (p.projected_finish_ms > 0)
            p.on_track = p.projected_finish_ms <= deadline_ms;
    }
    *out = p;
}
