/* Known-false claim patterns; see misinfo.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "misinfo.h"

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

int misinfo_add(misinfo_catalogue *c, const char *id, const char *pattern, const char *claim,
                const char *evidence, const char *category, double confidence, char *err,
                size_t errlen)
{
    if (!pattern || !*pattern) {
        snprintf(err, errlen, "pattern %s is empty", id ? id : "?");
        return -1;
    }
    if (!(confidence >= 0 && confidence <= 1)) {
        snprintf(err, errlen, "pattern %s: confidence must be between 0 and 1", id ? id : "?");
        return -1;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        misinfo_pattern *p = realloc(c->p, cap * sizeof *p);
        if (!p) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        c->p = p;
        c->cap = cap;
    }
    misinfo_pattern *p = &c->p[c->n];
    memset(p, 0, sizeof *p);
    int rc = regcomp(&p->re, pattern, REG_EXTENDED | REG_ICASE);
    if (rc != 0) {
        char why[128];
        regerror(rc, &p->re, why, sizeof why);
        snprintf(err, errlen, "pattern %s: %s", id ? id : "?", why);
        return -1;
    }
    p->compiled = 1;
    p->id = dup_or_empty(id);
    p->pattern = dup_or_empty(pattern);
    p->claim = dup_or_empty(claim);
    p->evidence = dup_or_empty(evidence);
    p->category = dup_or_empty(category);
    p->confidence = confidence;
    if (!p->id || !p->pattern || !p->claim || !p->evidence || !p->category) {
        c->n++;
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->n++;
    return 0;
}

void misinfo_free(misinfo_catalogue *c)
{
    for (size_t i = 0; i < c->n; i++) {
        misinfo_pattern *p = &c->p[i];
        if (p->compiled)
            regfree(&p->re);
        free(p->id);
        free(p->pattern);
        free(p->claim);
        free(p->evidence);
        free(p->category);
    }
    free(c->p);
    memset(c, 0, sizeof *c);
}

long misinfo_match(const misinfo_catalogue *c, const char *text, misinfo_finding **out)
{
    misinfo_finding *f = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < c->n; i++) {
        size_t off = 0;
        regmatch_t m;
        while (text[off] && regexec(&c->p[i].re, text + off, 1, &m, off ? REG_NOTBOL : 0) == 0) {
            if (m.rm_eo <= m.rm_so) { /* an empty match: step over one byte */
                off += (size_t)m.rm_so + 1;
                continue;
            }
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                misinfo_finding *g = realloc(f, cap * sizeof *g);
                if (!g) {
                    free(f);
                    return -1;
                }
                f = g;
            }
            f[n++] = (misinfo_finding){i, off + (size_t)m.rm_so, off + (size_t)m.rm_eo};
            off += (size_t)m.rm_eo;
        }
    }
    *out = f;
    return (long)n;
}

const char *misinfo_band(double confidence)
{
    return confidence >= 0.8 ? "high" : confidence >= 0.5 ? "medium" : "low";
}
