/* A growable text buffer, always NUL-terminated: JSON of tasks, COPY data.
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
