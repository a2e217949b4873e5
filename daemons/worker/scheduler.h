/* The periodic scheduler: enqueues the entries of a schedule (compute/
 * schedule.h) when they fall due. Every replica runs one; exactly one of
 * them - the holder of an unexpired lease row in aipal_scheduler_lease -
 * fires, and another takes over once the leader's lease expires (it renews it
 * every tick, about once a second; a stopping leader gives it up at once).
 *
 * Each firing is enqueued once: in one transaction on the scheduler's own
 * connection it locks the lease row (and checks it still holds it), locks
 * the entry's row in aipal_schedule_state and checks that the firing is newer
 * than the last one recorded there, enqueues the task with aipalq_enqueue_tx
 * and the idempotency key "cron:<name>:<fire time in Unix ms>", and records
 * the firing - all or nothing. A restart or a new leader continues from the
 * recorded firing: firings missed while no leader ran are made up in order
 * if they are at most --schedule-catchup old (older ones are skipped and
 * logged); an entry seen for the first time fires from its next instant on.
 * Times come from PostgreSQL's clock, so replicas need not agree on theirs. */
#ifndef AIPAL_WORKER_SCHEDULER_H
#define AIPAL_WORKER_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "schedule.h"

typedef struct scheduler_config {
    const char *redis_url;    /* NULL: the library's default */
    const char *database_url; /* NULL: AIPALQ_DATABASE_URL */
    const char *ns;           /* NULL: "aipalq" */
    const char *holder;       /* this replica's name in the lease */
    int64_t lease_ms;
    int64_t catchup_ms;
    /* When it becomes non-zero the thread stops at its next wake-up (set
     * from a signal handler); may be NULL. */
    const volatile int *stop_flag;
} scheduler_config;

typedef struct scheduler scheduler;

/* Checks every entry against the catalog (type known, params valid, priority
 * and queue allowed) and prepares the scheduler (nothing is connected yet).
 * The schedule is copied. NULL with the first problem in err, naming the
 * entry and the field. */
scheduler *scheduler_new(const scheduler_config *cfg, const schedule *sched,
                         worker_metrics *metrics, char *err, size_t errlen);
void scheduler_free(scheduler *s);

/* One pass at time now_ms (Unix ms; 0: PostgreSQL's clock): takes or renews
 * the lease, then, as leader, enqueues every due firing. Returns the number
 * of firings enqueued, or -1 on an error (logged; the next pass retries). */
int scheduler_tick(scheduler *s, int64_t now_ms);

/* 1 while this scheduler holds the lease (as of its last pass). */
int scheduler_is_leader(const scheduler *s);

/* Gives the lease up (a graceful stop), so another replica takes over at its
 * next pass. */
void scheduler_release(scheduler *s);

/* Sets this replica's name in the lease (before the first pass). */
void scheduler_set_holder(scheduler *s, const char *holder);

/* Runs passes on a thread of its own, about once a second. */
int scheduler_start(scheduler *s);
/* Stops the thread and releases the lease. */
void scheduler_stop(scheduler *s);

#endif
