/* Known-false claim patterns: a catalogue of POSIX extended regular
 * expressions (matched case-insensitively), each with the false claim it
 * catches, the evidence against it and a confidence. The catalogue is data
 * (the edm_misinfo_patterns table, editable by operators); this file only
 * compiles and matches. Pure. */
#ifndef AIPAL_WORKER_MISINFO_H
#define AIPAL_WORKER_MISINFO_H

#include <regex.h>
#include <stddef.h>

typedef struct misinfo_pattern {
    char *id, *pattern, *claim, *evidence, *category;
    double confidence; /* 0..1 */
    regex_t re;
    int compiled;
} misinfo_pattern;

typedef struct misinfo_catalogue {
    misinfo_pattern *p;
    size_t n, cap;
} misinfo_catalogue;

/* Adds and compiles a pattern (strings copied; NULL evidence/category ok).
 * Returns 0, or -1 with a reason in err: a bad regular expression, a
 * confidence outside 0..1, or no memory. */
int misinfo_add(misinfo_catalogue *c, const char *id, const char *pattern, const char *claim,
                const char *evidence, const char *category, double confidence, char *err,
                size_t errlen);
void misinfo_free(misinfo_catalogue *c);

typedef struct misinfo_finding {
    size_t pattern; /* index into the catalogue */
    size_t start, end;
} misinfo_finding;

/* Every non-overlapping match of every pattern in text, by pattern then
 * position. *out is malloc'd (free it); returns the count, or -1 when memory
 * runs out. */
long misinfo_match(const misinfo_catalogue *c, const char *text, misinfo_finding **out);

/* "high" (>= 0.8), "medium" (>= 0.5) or "low". */
const char *misinfo_band(double confidence);

#endif
