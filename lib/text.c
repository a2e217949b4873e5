/* A growable text buffer, always NUL-terminated: JSON of tasks and of the
 * recorder's batches, COPY data.
 * A failed allocation is remembered (`failed`) and makes every later append
 * a no-op, so a writer checks once at the end. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

bool aipalq__text_reserve(aipalq__text *t, size_t more)
{
    if (t->failed)
        return false;
    if (t->len + more + 1 <= t->cap)
        return true;
    size_t cap = t->cap ? t->cap : 512;
    while (cap < t->len + more + 1)
        cap *= 2;
    char *s = realloc(t->s, cap);
    if (!s) {
        t->failed = true;
        return false;
    }
    t->s = s;
    t->cap = cap;
    return true;
}

void aipalq__text_add(aipalq__text *t, const char *s, size_t n)
{
    if (!aipalq__text_reserve(t, n))
        return;
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = '\0';
}

void aipalq__text_str(aipalq__text *t, const char *s)
{
    aipalq__text_add(t, s, strlen(s));
}

void aipalq__text_printf(aipalq__text *t, const char *fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        aipalq__text_add(t, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

char *aipalq__text_finish(aipalq__text *t)
{
    if (!t->failed)
        return t->s;
    free(t->s);
    t->s = NULL;
    return NULL;
}

/* Copies runs of bytes that need no escape in one append each. */
void aipalq__text_json_string(aipalq__text *t, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    aipalq__text_add(t, "\"", 1);
    const char *run = s;
    for (const char *p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        aipalq__text_add(t, run, (size_t)(p - run));
        run = p + 1;
        char esc[7] = {'\\', 0};
        size_t n = 2;
        switch (ch) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            n = 6;
        }
        aipalq__text_add(t, esc, n);
    }
    aipalq__text_str(t, run);
    aipalq__text_add(t, "\"", 1);
}

void aipalq__text_json_key(aipalq__text *t, const char *name)
{
    aipalq__text_add(t, ",\"", 2);
    aipalq__text_str(t, name);
    aipalq__text_add(t, "\":", 2);
}

void aipalq__text_json_field(aipalq__text *t, const char *name, const char *value)
{
    aipalq__text_json_key(t, name);
    if (value)
        aipalq__text_json_string(t, value);
    else
        aipalq__text_add(t, "null", 4);
}
