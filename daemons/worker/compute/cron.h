/* Schedule expressions, in UTC:
 *   five cron fields   "minute hour day-of-month month day-of-week"
 *                      each "*", "N", "A-B", lists "A,B-C" and steps "* /N",
 *                      "A-B/N"; months jan..dec and weekdays sun..sat by name;
 *                      weekday 0 and 7 are Sunday; when both day fields are
 *                      restricted a day matching either fires (as in Vixie cron)
 *   macros             @yearly (@annually), @monthly, @weekly, @daily
 *                      (@midnight), @hourly
 *   intervals          "@every 30s", "@every 5m", "@every 1h30m" (units ms, s,
 *                      m, h, d; at least 1 s), firing at the multiples of the
 *                      interval since the Unix epoch, so that every replica
 *                      computes the same instants.
 * Pure. */
#ifndef AIPAL_WORKER_CRON_H
#define AIPAL_WORKER_CRON_H

#include <stddef.h>
#include <stdint.h>

typedef struct cron_expr {
    uint64_t minutes; /* bit m: minute m */
    uint32_t hours;
    uint32_t days;    /* bit d: day of month d (1..31) */
    uint16_t months;  /* bit m: month m (1..12) */
    uint8_t weekdays; /* bit d: weekday d (0 = Sunday) */
    int days_restricted, weekdays_restricted;
    int64_t every_ms; /* > 0 for "@every" */
} cron_expr;

/* Returns 0, or -1 with a reason in err. */
int cron_parse(const char *text, cron_expr *out, char *err, size_t errlen);

/* The first firing strictly after `after_ms` (Unix ms), or -1 when there is
 * none within ten years (e.g. "0 0 31 2 *"). */
int64_t cron_next(const cron_expr *e, int64_t after_ms);

#endif
