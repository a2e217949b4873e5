/* Checks of the params a task is enqueued with. The text is passed on as it
 * came (PostgreSQL stores it as jsonb), so it must be something PostgreSQL
 * accepts too: valid UTF-8 and no \u0000. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "internal.h"

long aipalq__utf8_invalid_at(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, min = 0x10000;
        } else {
            return (long)i;
        }
        if (i + len > n)
            return (long)i;
        unsigned cp = c & (0xff >> (len + 1));
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return (long)i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return (long)i;
        i += len;
    }
    return -1;
}

/* PostgreSQL keeps a JSON number as numeric, which holds at most 131072
 * digits before the decimal point (weight <= 32767 in base-10000 digits) and
 * 16383 after it (dscale, trailing zeros included); numeric_in refuses an
 * exponent of INT_MAX/2 or more outright. cJSON reads 1e999999 as infinity
 * and says nothing. s[0..n) is one number that passed RFC 8259's grammar. */
static bool pg_numeric_fits(const char *s, size_t n)
{
    size_t i = 0;
    long long before = 0, after = 0, first_sig = -1, k = 0, exp = 0;
    if (s[i] == '-')
        i++;
    for (; i < n && isdigit((unsigned char)s[i]); i++, k++, before++)
        if (first_sig < 0 && s[i] != '0')
            first_sig = k;
    if (i < n && s[i] == '.')
        for (i++; i < n && isdigit((unsigned char)s[i]); i++, k++, after++)
            if (first_sig < 0 && s[i] != '0')
                first_sig = k;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        bool neg = s[++i] == '-';
        if (s[i] == '+' || s[i] == '-')
            i++;
        for (; i < n && isdigit((unsigned char)s[i]); i++)
            if (exp < 10000000000LL) /* saturates; far past every limit */
                exp = exp * 10 + (s[i] - '0');
        exp = neg ? -exp : exp;
    }
    if (exp >= 1073741823LL || exp <= -1073741823LL)
        return false;
    if (after - exp > 16383) /* dscale */
        return false;
    /* the first significant digit's power of ten; zero has no weight */
    return first_sig < 0 || (before - 1 - first_sig) + exp <= 131071;
}

void aipalq__utf8_scrub(char *s)
{
    if (!s)
        return;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        long bad = aipalq__utf8_invalid_at((const unsigned char *)s + i, n - i);
        if (bad < 0)
            break;
        s[i + (size_t)bad] = '?';
        i += (size_t)bad + 1;
    }
}

/* cJSON is more lenient than JSON (and PostgreSQL's json grammar): it takes
 * numbers such as 01, -01 or 1., raw control characters inside strings and
 * as white space, \u escapes without four hex digits, and a byte-order mark
 * before the text. Text that cJSON has parsed is walked again here and held
 * to RFC 8259 and to jsonb's numeric range, so that what passes the check is
 * what jsonb stores (a result that jsonb refused would fail the recorder's
 * whole group commit). Returns the offset of the first offence or -1. */
static long strict_json_violation(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"') {
            for (i++; i < n && s[i] != '"'; i++) {
                if ((unsigned char)s[i] < 0x20)
                    return (long)i;
                if (s[i] != '\\')
                    continue;
                i++;
                if (i >= n || !strchr("\"\\/bfnrtu", s[i]))
                    return (long)i;
                if (s[i] == 'u') {
                    for (int k = 1; k <= 4; k++)
                        if (i + k >= n || !isxdigit((unsigned char)s[i + k]))
                            return (long)i;
                    i += 4;
                }
            }
            i++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t start = i;
            if (s[i] == '-')
                i++;
            if (i < n && s[i] == '0')
                i++;
            else if (i < n && s[i] >= '1' && s[i] <= '9')
                while (i < n && isdigit((unsigned char)s[i]))
                    i++;
            else
                return (long)start;
            if (i < n && s[i] == '.') {
                if (++i >= n || !isdigit((unsigned char)s[i]))
                    return (long)start;
                while (i < n && isdigit((unsigned char)s[i]))
                    i++;
            }
            if (i < n && (s[i] == 'e' || s[i] == 'E')) {
                i++;
                if (i < n && (s[i] == '+' || s[i] == '-'))
                    i++;
                if (i >= n || !isdigit((unsigned char)s[i]))
                    return (long)start;
                while (i < n && isdigit((unsigned char)s[i]))
                    i++;
            }
            /* A digit right after a complete number: 01, 1.5.3 and the like. */
            if (i < n && (isdigit((unsigned char)s[i]) || s[i] == '.'))
                return (long)start;
            if (!pg_numeric_fits(s + start, i - start))
                return (long)start;
        } else if ((c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r') || c >= 0x80) {
            /* outside strings: control characters, and non-ASCII (a BOM) */
            return (long)i;
        } else {
            i++;
        }
    }
    return -1;
}

static bool has_nul_escape(const char *s)
{
    for (const char *p = strstr(s, "\\u"); p; p = strstr(p + 2, "\\u")) {
        /* Count the backslashes before: an even run means this one escapes. */
        size_t run = 0;
        for (const char *b = p; b > s && b[-1] == '\\'; b--)
            run++;
        if (run % 2 == 0 && strncmp(p + 2, "0000", 4) == 0)
            return true;
    }
    return false;
}

aipalq_status aipalq__params_check(const char *params, char *err, size_t errlen)
{
    if (!params)
        return AIPALQ_OK;
    return aipalq__json_text_check(params, "params", AIPALQ_MAX_PARAMS_BYTES, true, err, errlen);
}

aipalq_status aipalq__json_text_check(const char *params, const char *what, size_t max,
                                      bool object_only, char *err, size_t errlen)
{
    size_t n = strlen(params);
    if (n > max) {
        snprintf(err, errlen, "%s are %zu bytes; the limit is %zu bytes", what, n, max);
        return AIPALQ_ETOOBIG;
    }
    long bad = aipalq__utf8_invalid_at((const unsigned char *)params, n);
    if (bad >= 0) {
        snprintf(err, errlen, "%s are not valid UTF-8 (byte %ld)", what, bad);
        return AIPALQ_EBADJSON;
    }
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(params, n + 1, &end, true); /* + the NUL it checks for */
    if (!doc) {
        long at = end ? (long)(end - params) : 0;
        snprintf(err, errlen, "%s are not valid JSON (near byte %ld)", what, at);
        return AIPALQ_EBADJSON;
    }
    bool object = cJSON_IsObject(doc);
    cJSON_Delete(doc);
    long strict = strict_json_violation(params, n);
    if (strict >= 0) {
        snprintf(err, errlen, "%s are not valid JSON (near byte %ld)", what, strict);
        return AIPALQ_EBADJSON;
    }
    if (object_only && !object) {
        snprintf(err, errlen, "%s must be a JSON object, not another JSON value", what);
        return AIPALQ_ENOTOBJECT;
    }
    if (has_nul_escape(params)) {
        snprintf(err, errlen, "%s contain \\u0000, which PostgreSQL cannot store", what);
        return AIPALQ_EBADJSON;
    }
    return AIPALQ_OK;
}
