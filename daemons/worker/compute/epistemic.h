/* Epistemic-debt markers in a text: claims an AI made that a reader cannot
 * check. Four kinds, each found by phrase lists at word boundaries (case
 * insensitive) or by number patterns, reported with byte spans:
 *
 *   absolute_claim        "always", "everyone knows", "without a doubt", ...
 *                         debt type unfalsifiable, severity medium
 *   unsupported_statistic "studies show", "research suggests", "40%",
 *                         "3 out of 4", "1 in 5" ...
 *                         debt type missing_citation, severity high
 *   vague_quantifier      "many people", "experts say", "a lot of", ...
 *                         debt type vague_claim, severity low
 *   hedging               "might", "perhaps", "I think", ...
 *                         debt type hedging, severity low
 *
 * Absolute claims and statistics count only in a sentence that cites no
 * source (a URL, "doi", "et al.", "[3]", "(Smith, 2020)", "according to"
 * followed by a capitalised name, "source:", "published in"). The score of a
 * text is the sum of its markers' weights (low 1, medium 2, high 3,
 * critical 4); the density is the score per 100 words. Pure. */
#ifndef AIPAL_WORKER_EPISTEMIC_H
#define AIPAL_WORKER_EPISTEMIC_H

#include <stddef.h>

typedef enum edm_severity { EDM_LOW = 0, EDM_MEDIUM, EDM_HIGH, EDM_CRITICAL } edm_severity;

const char *edm_severity_name(edm_severity s);
/* Returns 0 and sets *out, or -1 for an unknown name. */
int edm_severity_parse(const char *name, edm_severity *out);
int edm_severity_weight(edm_severity s);

typedef struct edm_marker {
    const char *category;  /* absolute_claim, unsupported_statistic, ... */
    const char *debt_type; /* unfalsifiable, missing_citation, vague_claim, hedging */
    edm_severity severity;
    size_t start, end;                   /* the match: text[start, end) */
    size_t sentence_start, sentence_end; /* its sentence */
} edm_marker;

typedef struct edm_scan {
    edm_marker *markers; /* in text order */
    size_t n, cap;
    size_t words, sentences, sourced_sentences;
    int score;
    double density; /* score per 100 words */
    edm_severity max_severity;
} edm_scan;

/* Scans a NUL-terminated text. Returns 0, or -1 when memory runs out. Free
 * the markers with edm_scan_free. */
int edm_scan_text(const char *text, edm_scan *out);
void edm_scan_free(edm_scan *scan);

#endif
