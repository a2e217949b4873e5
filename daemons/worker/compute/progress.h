/* FFE goal progress from its atomic blocks: completion, velocity and the
 * projected finish. Pure.
 *
 *   completion_percent  completed minutes / planned minutes * 100 (blocks
 *                       without an estimate count 0 minutes);
 *   blocks_percent      completed blocks / blocks * 100;
 *   velocity            completed minutes per day since the goal started
 *                       (its creation), measured up to now - or up to the
 *                       last completion once everything is done; at least
 *                       one hour of elapsed time is assumed;
 *   projected finish    now + remaining minutes / velocity (none while the
 *                       velocity is 0; the last completion when done);
 *   on_track            projected finish <= deadline (-1: no deadline or no
 *                       projection). */
#ifndef AIPAL_WORKER_PROGRESS_H
#define AIPAL_WORKER_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

typedef struct ffe_block_state {
    int minutes;
    int completed;
    int64_t completed_ms; /* 0 when unknown */
} ffe_block_state;

typedef struct ffe_progress {
    int total_blocks, completed_blocks;
    int total_minutes, completed_minutes, remaining_minutes;
    double completion_percent, blocks_percent;
    double elapsed_days;
    double velocity_minutes_per_day;
    int64_t projected_finish_ms; /* 0: none */
    int64_t finished_ms;         /* when every block is done: the last completion */
    int on_track;                /* 1, 0, or -1 unknown */
    double days_to_deadline;     /* negative when past; 0 when no deadline */
} ffe_progress;

void ffe_compute_progress(const ffe_block_state *b, size_t n, int64_t start_ms, int64_t deadline_ms,
                          int64_t now_ms, ffe_progress *out);

#endif
