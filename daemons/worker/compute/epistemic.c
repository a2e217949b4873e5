/* Epistemic-debt markers; see epistemic.h. */
#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "epistemic.h"

static const char *const absolute_phrases[] = {"always",
                                               "never",
                                               "everyone knows",
                                               "everybody knows",
                                               "no one can deny",
                                               "nobody can deny",
                                               "undeniably",
                                               "undeniable",
                                               "without a doubt",
                                               "without question",
                                               "beyond any doubt",
                                               "beyond doubt",
                                               "it is certain",
                                               "definitely",
                                               "proven fact",
                                               "scientifically proven",
                                               "it is a fact",
                                               "the truth is",
                                               "guaranteed",
                                               "all experts agree",
                                               "absolutely",
                                               "obviously",
                                               "impossible",
                                               "unquestionably",
                                               NULL};

static const char *const statistic_phrases[] = {"studies show",
                                                "studies have shown",
                                                "study shows",
                                                "research shows",
                                                "research has shown",
                                                "research suggests",
                                                "research proves",
                                                "science says",
                                                "scientists say",
                                                "data shows",
                                                "the data shows",
                                                "statistics show",
                                                "surveys show",
                                                "a study found",
                                                "studies suggest",
                                                "studies prove",
                                                "research indicates",
                                                "evidence shows",
                                                NULL};

static const char *const vague_phrases[] = {"many people",
                                            "most people",
                                            "some people",
                                            "a lot of",
                                            "lots of",
                                            "numerous",
                                            "countless",
                                            "several",
                                            "various",
                                            "a number of",
                                            "plenty of",
                                            "some say",
                                            "it is said",
                                            "people say",
                                            "experts say",
                                            "they say",
                                            "many experts",
                                            "some experts",
                                            "the majority of",
                                            "a large number of",
                                            "many",
                                            NULL};

static const char *const hedging_phrases[] = {
    "might",      "may",        "could",      "possibly", "perhaps", "maybe",     "probably",
    "likely",     "it seems",   "seemingly",  "arguably", "i think", "i believe", "i guess",
    "it appears", "presumably", "supposedly", "sort of",  "kind of", NULL};

const char *edm_severity_name(edm_severity s)
{
    static const char *const names[] = {"low", "medium", "high", "critical"};
    return s >= EDM_LOW && s <= EDM_CRITICAL ? names[s] : "low";
}

int edm_severity_parse(const char *name, edm_severity *out)
{
    for (int s = EDM_LOW; s <= EDM_CRITICAL; s++)
        if (name && strcmp(name, edm_severity_name((edm_severity)s)) == 0) {
            *out = (edm_severity)s;
            return 0;
        }
    return -1;
}

int edm_severity_weight(edm_severity s)
{
    return (int)s + 1;
}

static bool is_word(unsigned char c)
{
    return isalnum(c) || c == '\'' || c >= 0x80;
}

/* Matches phrase at text[i] case-insensitively, a space in the phrase
 * matching any run of white space; returns the match length or 0. */
static size_t match_at(const char *text, size_t len, size_t i, const char *phrase)
{
    size_t j = i;
    for (const char *p = phrase; *p; p++) {
        if (*p == ' ') {
            if (j >= len || !isspace((unsigned char)text[j]))
                return 0;
            while (j < len && isspace((unsigned char)text[j]))
                j++;
            continue;
        }
        if (j >= len || tolower((unsigned char)text[j]) != *p)
            return 0;
        j++;
    }
    return j - i;
}

static bool boundary_before(const char *text, size_t i)
{
    return i == 0 || !is_word((unsigned char)text[i - 1]);
}

static bool boundary_after(const char *text, size_t len, size_t j)
{
    return j >= len || !is_word((unsigned char)text[j]);
}

static bool contains_ci(const char *s, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (match_at(s, len, i, needle) == n)
            return true;
    return false;
}

/* Whether a sentence cites a source. */
static bool has_source(const char *s, size_t len)
{
    static const char *const cues[] = {
        "http://", "https://", "www.",         "doi:",       "doi.org",     "et al",
        "source:", "sources:", "published in", "journal of", "reported by", NULL};
    for (const char *const *c = cues; *c; c++)
        if (contains_ci(s, len, *c))
            return true;
    for (size_t i = 0; i < len; i++) {
        /* [3] */
        if (s[i] == '[' && i + 2 < len && isdigit((unsigned char)s[i + 1])) {
            size_t j = i + 1;
            while (j < len && isdigit((unsigned char)s[j]))
                j++;
            if (j < len && s[j] == ']')
                return true;
        }
        /* (Smith, 2020) or (2020) */
        if (s[i] == '(') {
            size_t j = i + 1;
            while (j < len && s[j] != ')' && j - i < 80)
                j++;
            if (j < len && s[j] == ')' && j - i >= 5) {
                const char *y = s + j - 4;
                if (isdigit((unsigned char)y[0]) && isdigit((unsigned char)y[1]) &&
                    isdigit((unsigned char)y[2]) && isdigit((unsigned char)y[3]) &&
                    (y[0] == '1' || y[0] == '2'))
                    return true;
            }
        }
        /* according to <Capitalised name> (optionally after "the") */
        size_t m = match_at(s, len, i, "according to ");
        if (m > 0 && boundary_before(s, i)) {
            size_t j = i + m;
            size_t t = match_at(s, len, j, "the ");
            if (t > 0)
                j += t;
            if (j < len && isupper((unsigned char)s[j]))
                return true;
        }
    }
    return false;
}

static int add_marker(edm_scan *sc, const edm_marker *m)
{
    if (sc->n == sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 16;
        edm_marker *p = realloc(sc->markers, cap * sizeof *p);
        if (!p)
            return -1;
        sc->markers = p;
        sc->cap = cap;
    }
    sc->markers[sc->n++] = *m;
    return 0;
}

typedef struct kind {
    const char *category, *debt_type;
    edm_severity severity;
    const char *const *phrases;
    bool needs_unsourced;
} kind;

static const kind kinds[] = {
    {"absolute_claim", "unfalsifiable", EDM_MEDIUM, absolute_phrases, true},
    {"unsupported_statistic", "missing_citation", EDM_HIGH, statistic_phrases, true},
    {"vague_quantifier", "vague_claim", EDM_LOW, vague_phrases, false},
    {"hedging", "hedging", EDM_LOW, hedging_phrases, false},
};

/* Overlaps with a marker already found (a longer phrase found first wins). */
static bool overlaps(const edm_scan *sc, size_t from, size_t start, size_t end)
{
    for (size_t k = from; k < sc->n; k++)
        if (start < sc->markers[k].end && sc->markers[k].start < end)
            return true;
    return false;
}

/* Number patterns of statistics in [s, e): "40%", "40 percent", "3 out of
 * 4", "1 in 5". Returns the match end or 0. */
static size_t number_stat(const char *text, size_t len, size_t i)
{
    if (!isdigit((unsigned char)text[i]) || !boundary_before(text, i))
        return 0;
    size_t j = i;
    while (j < len &&
           (isdigit((unsigned char)text[j]) || ((text[j] == '.' || text[j] == ',') && j + 1 < len &&
                                                isdigit((unsigned char)text[j + 1]))))
        j++;
    if (j < len && text[j] == '%')
        return j + 1;
    size_t k = j;
    while (k < len && text[k] == ' ')
        k++;
    size_t m;
    if ((m = match_at(text, len, k, "percent")) && boundary_after(text, len, k + m))
        return k + m;
    const char *joins[] = {"out of ", "in "};
    for (int q = 0; q < 2; q++) {
        if (k > j && (m = match_at(text, len, k, joins[q])) > 0) {
            size_t d = k + m;
            size_t e = d;
            while (e < len && isdigit((unsigned char)text[e]))
                e++;
            if (e > d && boundary_after(text, len, e))
                return e;
        }
    }
    return 0;
}

static int scan_sentence(const char *text, size_t s, size_t e, edm_scan *sc)
{
    bool sourced = has_source(text + s, e - s);
    sc->sourced_sentences += sourced;
    size_t first = sc->n;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        const kind *kd = &kinds[k];
        if (kd->needs_unsourced && sourced)
            continue;
        for (size_t i = s; i < e; i++) {
            if (!boundary_before(text, i))
                continue;
            size_t best = 0;
            for (const char *const *p = kd->phrases; *p; p++) {
                size_t m = match_at(text, e, i, *p);
                if (m > best && boundary_after(text, e, i + m))
                    best = m;
            }
            size_t end = i + best;
            if (best == 0 && k == 1) {
                end = number_stat(text, e, i);
                best = end > i ? end - i : 0;
            }
            if (best == 0 || overlaps(sc, first, i, end))
                continue;
            edm_marker m = {kd->category, kd->debt_type, kd->severity, i, end, s, e};
            if (add_marker(sc, &m) != 0)
                return -1;
            i = end - 1;
        }
    }
    return 0;
}

static int cmp_marker(const void *a, const void *b)
{
    const edm_marker *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

int edm_scan_text(const char *text, edm_scan *out)
{
    memset(out, 0, sizeof *out);
    size_t len = strlen(text);
    bool in_word = false;
    for (size_t i = 0; i < len; i++) {
        bool w = is_word((unsigned char)text[i]);
        out->words += w && !in_word;
        in_word = w;
    }
    size_t s = 0;
    while (s < len) {
        while (s < len && isspace((unsigned char)text[s]))
            s++;
        if (s >= len)
            break;
        size_t e = s;
        while (e < len) {
            char c = text[e];
            if (c == '\n')
                break;
            if ((c == '.' || c == '!' || c == '?') &&
                (e + 1 >= len || isspace((unsigned char)text[e + 1]))) {
                e++;
                break;
            }
            e++;
        }
        out->sentences++;
        if (scan_sentence(text, s, e, out) != 0) {
            edm_scan_free(out);
            return -1;
        }
        s = e;
    }
    if (out->n > 1)
        qsort(out->markers, out->n, sizeof *out->markers, cmp_marker);
    for (size_t i = 0; i < out->n; i++) {
        out->score += edm_severity_weight(out->markers[i].severity);
        if (out->markers[i].severity > out->max_severity)
            out->max_severity = out->markers[i].severity;
    }
    out->density = out->words ? 100.0 * out->score / (double)out->words : 0;
    return 0;
}

void edm_scan_free(edm_scan *scan)
{
    free(scan->markers);
    scan->markers = NULL;
    scan->n = scan->cap = 0;
}
