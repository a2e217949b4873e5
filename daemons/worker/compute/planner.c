/* FFE goal planning; the method is described in planner.h. */
#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "planner.h"

#define MAX_CLAUSES 64
#define MAX_TOKENS  512

typedef struct clause {
    char text[PLAN_DESC_SIZE];
    const char *kind;
    double weight;
    int origin; /* the clause a part was split from, for numbering parts */
    int parts;  /* > 1 when this is one part of a split clause */
} clause;

typedef struct clause_list {
    clause c[MAX_CLAUSES];
    int n;
} clause_list;

static const char *const heavy_verbs[] = {
    "write",    "build", "implement", "develop", "design",    "create",      "refactor", "migrate",
    "research", "study", "learn",     "train",   "prototype", "analyze",     "analyse",  "draft",
    "program",  "code",  "construct", "compose", "rewrite",   "investigate", NULL};
static const char *const light_verbs[] = {
    "send",  "email",  "call",  "book",     "buy",     "pay",      "order", "submit",
    "share", "upload", "check", "schedule", "contact", "register", "list",  "print",
    "post",  "reply",  "text",  "notify",   "confirm", "sign",     "file",  NULL};
static const char *const other_verbs[] = {
    "review",    "edit",      "read",       "practice",  "practise",  "test",      "fix",
    "deploy",    "plan",      "prepare",    "organize",  "organise",  "clean",     "update",
    "install",   "configure", "collect",    "gather",    "outline",   "publish",   "present",
    "finish",    "complete",  "set",        "make",      "find",      "meet",      "discuss",
    "record",    "measure",   "compare",    "document",  "translate", "run",       "cook",
    "pack",      "apply",     "sort",       "download",  "backup",    "summarize", "summarise",
    "interview", "sketch",    "polish",     "proofread", "rehearse",  "exercise",  "walk",
    "memorize",  "memorise",  "revise",     "identify",  "define",    "choose",    "select",
    "decide",    "evaluate",  "assess",     "improve",   "clarify",   "estimate",  "verify",
    "validate",  "integrate", "launch",     "ship",      "release",   "publish",   "visit",
    "ask",       "explore",   "brainstorm", "map",       "draw",      "paint",     "fill",
    "complete",  "assemble",  "repair",     "replace",   "move",      "archive",   "label",
    "tidy",      "renew",     "cancel",     "arrange",   "host",      "attend",    "finalize",
    "finalise",  "give",      "get",        "start",     "begin",     "go",        "take",
    "open",      "close",     "write",      NULL};

/* Fillers dropped from the start of a clause, longest first. */
static const char *const fillers[] = {"first of all ",
                                      "after that ",
                                      "i would like to ",
                                      "i'd like to ",
                                      "i need to ",
                                      "i want to ",
                                      "i have to ",
                                      "we need to ",
                                      "we want to ",
                                      "we have to ",
                                      "i must ",
                                      "we must ",
                                      "i will ",
                                      "we will ",
                                      "i should ",
                                      "we should ",
                                      "need to ",
                                      "want to ",
                                      "have to ",
                                      "firstly ",
                                      "first ",
                                      "also ",
                                      "next ",
                                      "then ",
                                      "finally ",
                                      "lastly ",
                                      "afterwards ",
                                      "and ",
                                      "to ",
                                      "please ",
                                      NULL};

static bool in_list(const char *const *list, const char *w)
{
    for (; *list; list++)
        if (strcmp(*list, w) == 0)
            return true;
    return false;
}

static bool is_verb(const char *w)
{
    return in_list(heavy_verbs, w) || in_list(light_verbs, w) || in_list(other_verbs, w);
}

static double verb_factor(const char *w)
{
    if (in_list(heavy_verbs, w))
        return 2.0;
    if (in_list(light_verbs, w))
        return 0.6;
    return 1.0;
}

static bool word_char(unsigned char ch)
{
    return isalnum(ch) || ch == '\'' || ch == '-' || ch >= 0x80;
}

/* Copies src into dst (size bytes), cutting at a UTF-8 boundary and marking
 * a cut with "...". */
static void copy_clipped(char *dst, size_t size, const char *src, size_t len)
{
    if (len < size) {
        memcpy(dst, src, len);
        dst[len] = '\0';
        return;
    }
    size_t keep = size - 4;
    while (keep > 0 && ((unsigned char)src[keep] & 0xC0) == 0x80)
        keep--;
    memcpy(dst, src, keep);
    memcpy(dst + keep, "...", 4);
}

/* Copies [s, s+len) with runs of white space squeezed to one space. */
static size_t squeeze(char *dst, size_t size, const char *s, size_t len)
{
    char tmp[4096];
    size_t o = 0;
    bool space = false;
    for (size_t i = 0; i < len && o + 1 < sizeof tmp; i++) {
        if (isspace((unsigned char)s[i])) {
            space = o > 0;
            continue;
        }
        if (space)
            tmp[o++] = ' ';
        space = false;
        if (o + 1 < sizeof tmp)
            tmp[o++] = s[i];
    }
    copy_clipped(dst, size, tmp, o);
    return strlen(dst);
}

typedef struct token {
    const char *s;
    size_t len;
    bool comma; /* a comma (s/len point at it) */
    char lower[24];
} token;

static int tokenize(const char *s, size_t len, token *tok, int max)
{
    int n = 0;
    size_t i = 0;
    while (i < len && n < max) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == ',') {
            tok[n++] = (token){.s = s + i, .len = 1, .comma = true};
            i++;
        } else if (word_char(ch)) {
            size_t j = i;
            while (j < len && word_char((unsigned char)s[j]))
                j++;
            token t = {.s = s + i, .len = j - i};
            size_t k = 0;
            for (; k < t.len && k < sizeof t.lower - 1; k++)
                t.lower[k] = (char)tolower((unsigned char)t.s[k]);
            t.lower[k] = '\0';
            tok[n++] = t;
            i = j;
        } else {
            i++;
        }
    }
    return n;
}

static bool is_sequencer(const char *w)
{
    return strcmp(w, "finally") == 0 || strcmp(w, "afterwards") == 0 || strcmp(w, "lastly") == 0;
}

static void add_clause(clause_list *cl, const char *s, size_t len)
{
    if (cl->n >= MAX_CLAUSES)
        return;
    char buf[PLAN_DESC_SIZE];
    size_t n = squeeze(buf, sizeof buf, s, len);
    /* Drop leading fillers (repeatedly) and trailing punctuation. */
    char *p = buf;
    for (bool again = true; again;) {
        again = false;
        for (const char *const *f = fillers; *f; f++) {
            size_t fl = strlen(*f);
            if (strncasecmp(p, *f, fl) == 0 && strlen(p) > fl) {
                p += fl;
                again = true;
                break;
            }
        }
    }
    n = strlen(p);
    while (n > 0 && (ispunct((unsigned char)p[n - 1]) || isspace((unsigned char)p[n - 1])) &&
           p[n - 1] != ')' && p[n - 1] != '"')
        p[--n] = '\0';
    bool letters = false;
    for (size_t i = 0; i < n; i++)
        letters |= isalpha((unsigned char)p[i]) || (unsigned char)p[i] >= 0x80;
    if (!letters)
        return;
    clause *c = &cl->c[cl->n];
    snprintf(c->text, sizeof c->text, "%s", p);
    c->text[0] = (char)toupper((unsigned char)c->text[0]);
    /* Weight: words and the verb. */
    token tok[MAX_TOKENS];
    int nt = tokenize(p, n, tok, MAX_TOKENS);
    int words = 0;
    for (int i = 0; i < nt; i++)
        words += !tok[i].comma;
    double factor = nt > 0 && !tok[0].comma ? verb_factor(tok[0].lower) : 1.0;
    c->weight = factor * (1.0 + (words < 30 ? words : 30) / 10.0);
    c->kind = "work";
    c->origin = cl->n;
    c->parts = 1;
    cl->n++;
}

/* Splits one sentence into clauses at sequencing words, and at commas and
 * "and" before an action verb. */
static void split_sentence(clause_list *cl, const char *s, size_t len)
{
    token tok[MAX_TOKENS];
    int nt = tokenize(s, len, tok, MAX_TOKENS);
    const char *start = s;
    int i = 0, words = 0; /* words in the clause so far */
    while (i < nt) {
        int skip = 0; /* tokens that end the clause and are dropped */
        const token *t = &tok[i];
        bool after_break = i == 0 || tok[i - 1].comma || strcmp(tok[i - 1].lower, "and") == 0;
        const token *next = i + 1 < nt ? &tok[i + 1] : NULL;
        if (!t->comma && strcmp(t->lower, "then") == 0) {
            skip = 1;
        } else if (!t->comma && after_break && is_sequencer(t->lower)) {
            skip = 1;
        } else if (!t->comma && after_break && strcmp(t->lower, "after") == 0 && next &&
                   strcmp(next->lower, "that") == 0) {
            skip = 2;
        } else if (!t->comma && strcmp(t->lower, "and") == 0 && next && !next->comma &&
                   (strcmp(next->lower, "then") == 0 || is_sequencer(next->lower) ||
                    (words >= 2 && is_verb(next->lower)))) {
            skip = 1;
        } else if (t->comma && next && !next->comma &&
                   (strcmp(next->lower, "then") == 0 || is_sequencer(next->lower) ||
                    (words >= 2 && (is_verb(next->lower) || strcmp(next->lower, "and") == 0)))) {
            skip = 1;
        }
        if (skip == 0) {
            words += !t->comma;
            i++;
            continue;
        }
        words = 0;
        if (t->s > start)
            add_clause(cl, start, (size_t)(t->s - start));
        int last = i + skip - 1;
        start = tok[last].s + tok[last].len;
        i += skip;
    }
    if (s + len > start)
        add_clause(cl, start, (size_t)(s + len - start));
}

/* Strips a list bullet ("- ", "* ", "1. ", "2) ", "• ") from a line. */
static const char *skip_bullet(const char *s, const char *end)
{
    while (s < end && isspace((unsigned char)*s))
        s++;
    if (end - s >= 2 && (*s == '-' || *s == '*') && isspace((unsigned char)s[1]))
        return s + 2;
    if (end - s >= 4 && memcmp(s, "\xe2\x80\xa2", 3) == 0)
        return s + 3;
    const char *p = s;
    while (p < end && isdigit((unsigned char)*p))
        p++;
    if (p > s && p + 1 < end && (*p == '.' || *p == ')') && isspace((unsigned char)p[1]))
        return p + 2;
    return s;
}

static void extract_clauses(const char *text, clause_list *cl)
{
    const char *line = text;
    while (*line) {
        const char *eol = strchr(line, '\n');
        if (!eol)
            eol = line + strlen(line);
        const char *s = skip_bullet(line, eol);
        const char *sent = s;
        for (const char *p = s; p < eol; p++) {
            bool end = (*p == '.' || *p == '!' || *p == '?' || *p == ';') &&
                       (p + 1 == eol || isspace((unsigned char)p[1]));
            if (end) {
                split_sentence(cl, sent, (size_t)(p - sent));
                sent = p + 1;
            }
        }
        if (eol > sent)
            split_sentence(cl, sent, (size_t)(eol - sent));
        line = *eol ? eol + 1 : eol;
    }
}

static int clamp_int(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static void merge_smallest_pair(clause_list *cl)
{
    int best = 0;
    for (int i = 1; i + 1 < cl->n; i++)
        if (cl->c[i].weight + cl->c[i + 1].weight < cl->c[best].weight + cl->c[best + 1].weight)
            best = i;
    clause *a = &cl->c[best], *b = &cl->c[best + 1];
    char merged[2 * PLAN_DESC_SIZE + 16];
    char second[PLAN_DESC_SIZE];
    snprintf(second, sizeof second, "%s", b->text);
    if (isupper((unsigned char)second[0]) && !isupper((unsigned char)second[1]))
        second[0] = (char)tolower((unsigned char)second[0]);
    snprintf(merged, sizeof merged, "%s, then %s", a->text, second);
    copy_clipped(a->text, sizeof a->text, merged, strlen(merged));
    a->weight += b->weight;
    memmove(b, b + 1, (size_t)(cl->n - best - 2) * sizeof *b);
    cl->n--;
}

static void insert_at(clause_list *cl, int at, const clause *c)
{
    memmove(&cl->c[at + 1], &cl->c[at], (size_t)(cl->n - at) * sizeof *c);
    cl->c[at] = *c;
    cl->n++;
}

/* Splits the work clause whose parts are heaviest into one more part; the
 * parts of a clause share its weight equally. */
static void split_heaviest(clause_list *cl)
{
    int h = -1;
    for (int i = 0; i < cl->n; i++)
        if (strcmp(cl->c[i].kind, "work") == 0 && (h < 0 || cl->c[i].weight > cl->c[h].weight))
            h = i;
    if (h < 0)
        h = 0;
    int origin = cl->c[h].origin, last = h;
    double total = 0;
    for (int i = 0; i < cl->n; i++)
        if (cl->c[i].origin == origin) {
            total += cl->c[i].weight;
            last = i;
        }
    clause part = cl->c[last];
    insert_at(cl, last + 1, &part);
    int parts = part.parts + 1;
    for (int i = 0; i < cl->n; i++)
        if (cl->c[i].origin == origin) {
            cl->c[i].parts = parts;
            cl->c[i].weight = total / parts;
        }
}

/* Shares `total` minutes in proportion to weight, each within [lo, hi], then
 * in 5-minute units. */
static void share_minutes(plan_result *r, int total)
{
    int n = r->nblocks;
    double share[PLAN_MAX_BLOCKS];
    bool fixed[PLAN_MAX_BLOCKS] = {false};
    double left = total;
    for (int round = 0; round < n + 1; round++) {
        double wsum = 0;
        for (int i = 0; i < n; i++)
            if (!fixed[i])
                wsum += r->blocks[i].weight;
        bool changed = false;
        for (int i = 0; i < n; i++)
            if (!fixed[i])
                share[i] = wsum > 0 ? left * r->blocks[i].weight / wsum : 0;
        for (int i = 0; i < n; i++) {
            if (fixed[i])
                continue;
            double b = share[i] < PLAN_MIN_MINUTES   ? PLAN_MIN_MINUTES
                       : share[i] > PLAN_MAX_MINUTES ? PLAN_MAX_MINUTES
                                                     : share[i];
            if (b != share[i]) {
                share[i] = b;
                fixed[i] = true;
                left -= b;
                changed = true;
            }
        }
        if (!changed)
            break;
    }
    int units = total / 5, used = 0;
    double rem[PLAN_MAX_BLOCKS];
    for (int i = 0; i < n; i++) {
        int u = (int)floor(share[i] / 5.0 + 1e-9);
        u = clamp_int(u, PLAN_MIN_MINUTES / 5, PLAN_MAX_MINUTES / 5);
        r->blocks[i].minutes = u * 5;
        rem[i] = share[i] / 5.0 - u;
        used += u;
    }
    while (used < units) {
        int best = -1;
        for (int i = 0; i < n; i++)
            if (r->blocks[i].minutes < PLAN_MAX_MINUTES && (best < 0 || rem[i] > rem[best] + 1e-12))
                best = i;
        if (best < 0)
            break;
        r->blocks[best].minutes += 5;
        rem[best] -= 1;
        used++;
    }
}

/* Minutes per unit of weight when no hours are given. */
static double minutes_per_weight(const char *complexity)
{
    return strcmp(complexity, "simple") == 0 ? 25 : strcmp(complexity, "complex") == 0 ? 45 : 35;
}

int plan_goal(const char *title, const char *description, const char *complexity,
              double available_hours, plan_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!complexity)
        complexity = "medium";
    int lo, hi;
    if (strcmp(complexity, "simple") == 0) {
        lo = 3, hi = 4;
    } else if (strcmp(complexity, "medium") == 0) {
        lo = 4, hi = 6;
    } else if (strcmp(complexity, "complex") == 0) {
        lo = 5, hi = 7;
    } else {
        snprintf(err, errlen, "must be one of: simple, medium, complex");
        return -1;
    }
    clause_list list; /* about 22 KB: fine on a handler's stack */
    clause_list *cl = &list;
    cl->n = 0;
    extract_clauses(description ? description : "", cl);
    if (cl->n == 0) {
        snprintf(err, errlen, "must contain at least one word");
        return -1;
    }
    out->clauses = cl->n;
    int avail = available_hours > 0 ? (int)lround(available_hours * 60.0) : 0;
    out->available_minutes = avail;

    int n = clamp_int(cl->n, lo, hi);
    if (avail > 0) {
        int hours_lo = clamp_int((avail + PLAN_MAX_MINUTES - 1) / PLAN_MAX_MINUTES, PLAN_MIN_BLOCKS,
                                 PLAN_MAX_BLOCKS);
        int hours_hi = clamp_int(avail / PLAN_MIN_MINUTES, PLAN_MIN_BLOCKS, PLAN_MAX_BLOCKS);
        n = clamp_int(n, hours_lo, hours_hi);
    }

    /* The goal's name for the structural blocks. */
    char label[72];
    const char *name = title && *title ? title : cl->c[0].text;
    copy_clipped(label, 61, name, strlen(name));

    while (cl->n > n)
        merge_smallest_pair(cl);
    if (cl->n < n) {
        clause c = {.kind = "review", .weight = 0.5, .origin = -1, .parts = 1};
        snprintf(c.text, sizeof c.text, "Review the result and wrap up \"%s\"", label);
        insert_at(cl, cl->n, &c);
    }
    if (cl->n < n) {
        clause c = {.kind = "prepare", .weight = 0.5, .origin = -2, .parts = 1};
        snprintf(c.text, sizeof c.text,
                 "Prepare \"%s\": clarify the scope, what done means and what is needed", label);
        insert_at(cl, 0, &c);
    }
    while (cl->n < n)
        split_heaviest(cl);

    out->nblocks = cl->n;
    for (int i = 0; i < cl->n; i++) {
        plan_block *b = &out->blocks[i];
        b->kind = cl->c[i].kind;
        b->weight = cl->c[i].weight;
        if (cl->c[i].parts > 1) {
            int k = 1;
            for (int j = 0; j < i; j++)
                k += cl->c[j].origin == cl->c[i].origin;
            char suffix[40];
            snprintf(suffix, sizeof suffix, " (part %d of %d)", k, cl->c[i].parts);
            char text[PLAN_DESC_SIZE];
            size_t room = sizeof text - strlen(suffix) - 1;
            copy_clipped(text, room + 1, cl->c[i].text, strlen(cl->c[i].text));
            snprintf(b->description, sizeof b->description, "%.*s%s",
                     (int)(sizeof b->description - 1 - strlen(suffix)), text, suffix);
        } else {
            snprintf(b->description, sizeof b->description, "%s", cl->c[i].text);
        }
    }
    if (avail > 0) {
        share_minutes(out, clamp_int(avail, n * PLAN_MIN_MINUTES, n * PLAN_MAX_MINUTES));
    } else {
        double per = minutes_per_weight(complexity);
        for (int i = 0; i < n; i++)
            out->blocks[i].minutes = clamp_int((int)lround(per * out->blocks[i].weight / 5.0) * 5,
                                               PLAN_MIN_MINUTES, PLAN_MAX_MINUTES);
    }
    for (int i = 0; i < n; i++)
        out->planned_minutes += out->blocks[i].minutes;
    out->fits = avail == 0 || (out->planned_minutes >= avail - 4 && out->planned_minutes <= avail);
    return 0;
}
