/* An independent, deliberately simple RFC 8259 validator used as the fuzz
 * oracle for the library's JSON text checks (lib/params.c). It also encodes
 * the limits of PostgreSQL's jsonb (numeric range, no \u0000, no byte-order
 * mark), so that "the check passes" can be compared with "PostgreSQL stores
 * it". Header-only: each fuzz target that needs it includes it once. */
#ifndef AIPALQ_FUZZ_JSON_ORACLE_H
#define AIPALQ_FUZZ_JSON_ORACLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct oracle {
    const unsigned char *s;
    size_t n, i;
    int depth, max_depth;
    bool nul_escape;   /* a \u0000 somewhere */
    bool long_number;  /* a number token longer than cJSON reads (63 chars) */
    bool pg_numeric_bad; /* a number PostgreSQL's numeric cannot hold */
    bool top_object;
} oracle;

/* Well-formed UTF-8 (no overlongs, surrogates or code points above U+10FFFF),
 * written from the Unicode table 3-7 of well-formed byte sequences. */
static bool oracle_utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c <= 0x7f) {
            i++;
            continue;
        }
        unsigned char lo = 0x80, hi = 0xbf;
        size_t len;
        if (c >= 0xc2 && c <= 0xdf)
            len = 2;
        else if (c == 0xe0)
            len = 3, lo = 0xa0;
        else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef)
            len = 3;
        else if (c == 0xed)
            len = 3, hi = 0x9f;
        else if (c == 0xf0)
            len = 4, lo = 0x90;
        else if (c >= 0xf1 && c <= 0xf3)
            len = 4;
        else if (c == 0xf4)
            len = 4, hi = 0x8f;
        else
            return false;
        if (i + len > n)
            return false;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                return false;
        i += len;
    }
    return true;
}

static void oracle_ws(oracle *o)
{
    while (o->i < o->n && (o->s[o->i] == ' ' || o->s[o->i] == '\t' || o->s[o->i] == '\n' ||
                           o->s[o->i] == '\r'))
        o->i++;
}

static int oracle_hex4(oracle *o, size_t at)
{
    if (at + 4 > o->n)
        return -1;
    int v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = o->s[at + k];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static bool oracle_string(oracle *o)
{
    if (o->i >= o->n || o->s[o->i] != '"')
        return false;
    o->i++;
    while (o->i < o->n) {
        unsigned char c = o->s[o->i];
        if (c == '"') {
            o->i++;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c != '\\') {
            o->i++;
            continue;
        }
        if (++o->i >= o->n)
            return false;
        c = o->s[o->i];
        if (c == 'u') {
            int v = oracle_hex4(o, o->i + 1);
            if (v < 0)
                return false;
            o->i += 5;
            if (v == 0)
                o->nul_escape = true;
            /* cJSON (and jsonb) want surrogates in proper pairs. */
            if (v >= 0xdc00 && v <= 0xdfff)
                return false;
            if (v >= 0xd800 && v <= 0xdbff) {
                if (o->i + 1 >= o->n || o->s[o->i] != '\\' || o->s[o->i + 1] != 'u')
                    return false;
                int w = oracle_hex4(o, o->i + 2);
                if (w < 0xdc00 || w > 0xdfff)
                    return false;
                o->i += 6;
            }
            continue;
        }
        if (!strchr("\"\\/bfnrt", c) || c == 0)
            return false;
        o->i++;
    }
    return false;
}

/* PostgreSQL numeric (numeric_in, make_result): the first significant digit
 * at most 131071 places left of the point (weight <= 32767 in base 10000),
 * at most 16383 digits after it (dscale, which counts trailing zeros), an
 * exponent below INT_MAX/2 in magnitude. */
static bool oracle_pg_numeric(const unsigned char *s, size_t n)
{
    size_t i = 0;
    if (s[i] == '-')
        i++;
    long long int_digits = 0, frac_digits = 0, first_nonzero = -1, k = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, k++, int_digits++)
        if (first_nonzero < 0 && s[i] != '0')
            first_nonzero = k;
    if (i < n && s[i] == '.')
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, k++, frac_digits++)
            if (first_nonzero < 0 && s[i] != '0')
                first_nonzero = k;
    long long e = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool neg = false;
        if (s[i] == '+' || s[i] == '-')
            neg = s[i++] == '-';
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            if (e < 4000000000LL)
                e = e * 10 + (s[i] - '0');
        e = neg ? -e : e;
    }
    if (e >= 1073741823LL || e <= -1073741823LL)
        return false;
    long long dscale = frac_digits - e;
    if (dscale > 16383)
        return false;
    if (first_nonzero >= 0 && (int_digits - 1 - first_nonzero) + e > 131071)
        return false;
    return true;
}

static bool oracle_number(oracle *o)
{
    size_t start = o->i;
    const unsigned char *s = o->s;
    if (o->i < o->n && s[o->i] == '-')
        o->i++;
    if (o->i >= o->n)
        return false;
    if (s[o->i] == '0') {
        o->i++;
    } else if (s[o->i] >= '1' && s[o->i] <= '9') {
        while (o->i < o->n && s[o->i] >= '0' && s[o->i] <= '9')
            o->i++;
    } else {
        return false;
    }
    if (o->i < o->n && s[o->i] == '.') {
        o->i++;
        if (o->i >= o->n || s[o->i] < '0' || s[o->i] > '9')
            return false;
        while (o->i < o->n && s[o->i] >= '0' && s[o->i] <= '9')
            o->i++;
    }
    if (o->i < o->n && (s[o->i] == 'e' || s[o->i] == 'E')) {
        o->i++;
        if (o->i < o->n && (s[o->i] == '+' || s[o->i] == '-'))
            o->i++;
        if (o->i >= o->n || s[o->i] < '0' || s[o->i] > '9')
            return false;
        while (o->i < o->n && s[o->i] >= '0' && s[o->i] <= '9')
            o->i++;
    }
    if (o->i - start > 63)
        o->long_number = true;
    if (!oracle_pg_numeric(s + start, o->i - start))
        o->pg_numeric_bad = true;
    return true;
}

static bool oracle_literal(oracle *o, const char *lit)
{
    size_t len = strlen(lit);
    if (o->i + len > o->n || memcmp(o->s + o->i, lit, len) != 0)
        return false;
    o->i += len;
    return true;
}

static bool oracle_value(oracle *o);

static bool oracle_container(oracle *o, unsigned char open)
{
    unsigned char close = open == '{' ? '}' : ']';
    o->i++;
    if (++o->depth > o->max_depth)
        o->max_depth = o->depth;
    if (o->depth > 5000)
        return false;
    oracle_ws(o);
    if (o->i < o->n && o->s[o->i] == close) {
        o->i++;
        o->depth--;
        return true;
    }
    for (;;) {
        oracle_ws(o);
        if (open == '{') {
            if (!oracle_string(o))
                return false;
            oracle_ws(o);
            if (o->i >= o->n || o->s[o->i] != ':')
                return false;
            o->i++;
        }
        if (!oracle_value(o))
            return false;
        oracle_ws(o);
        if (o->i < o->n && o->s[o->i] == ',') {
            o->i++;
            continue;
        }
        if (o->i < o->n && o->s[o->i] == close) {
            o->i++;
            o->depth--;
            return true;
        }
        return false;
    }
}

static bool oracle_value(oracle *o)
{
    oracle_ws(o);
    if (o->i >= o->n)
        return false;
    unsigned char c = o->s[o->i];
    if (c == '{' || c == '[')
        return oracle_container(o, c);
    if (c == '"')
        return oracle_string(o);
    if (c == '-' || (c >= '0' && c <= '9'))
        return oracle_number(o);
    return oracle_literal(o, "true") || oracle_literal(o, "false") || oracle_literal(o, "null");
}

/* Fills o; true when s[0..n) is one JSON text (RFC 8259, UTF-8). */
static bool oracle_check(oracle *o, const unsigned char *s, size_t n)
{
    memset(o, 0, sizeof *o);
    o->s = s;
    o->n = n;
    if (!oracle_utf8_ok(s, n))
        return false;
    oracle_ws(o);
    o->top_object = o->i < n && s[o->i] == '{';
    if (!oracle_value(o))
        return false;
    oracle_ws(o);
    return o->i == n;
}

#endif
