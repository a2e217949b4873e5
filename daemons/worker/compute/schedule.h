/* The periodic schedule: named entries, each a schedule expression (cron.h),
 * a task type, its params and optional priority and queue.
 *
 * Two notations, told apart by the first non-blank character:
 *  - JSON: an array of {"name", "schedule", "type", "params" (object,
 *    optional), "priority" (1..10, optional), "queue" (optional)};
 *  - lines: "NAME SCHEDULE TYPE [PARAMS-JSON]", where SCHEDULE is five cron
 *    fields, a macro or "@every DURATION"; '#' starts a comment line.
 * Names are 1..64 of [A-Za-z0-9_.-] and unique: a name identifies the entry
 * across restarts (its last firing is recorded under it). Pure: types and
 * params are checked against the catalog by the scheduler, not here. */
#ifndef AIPAL_WORKER_SCHEDULE_H
#define AIPAL_WORKER_SCHEDULE_H

#include <stddef.h>

#include "cron.h"

#define SCHEDULE_NAME_SIZE 65

typedef struct schedule_entry {
    char name[SCHEDULE_NAME_SIZE];
    char expr_text[128];
    cron_expr expr;
    char type[SCHEDULE_NAME_SIZE];
    char *params_json;              /* a JSON object, "{}" when none */
    int priority;                   /* 0: the type's */
    char queue[SCHEDULE_NAME_SIZE]; /* "": the type's */
} schedule_entry;

typedef struct schedule {
    schedule_entry *entries;
    size_t n;
} schedule;

/* Parses a schedule. Returns 0, or -1 with a reason naming the line or entry
 * and the field in err. An empty text gives an empty schedule. */
int schedule_parse(const char *text, schedule *out, char *err, size_t errlen);
void schedule_free(schedule *s);

/* The built-in maintenance schedule (lines notation), used with
 * --schedule builtin. */
const char *schedule_builtin(void);

#endif
