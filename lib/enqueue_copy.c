/* A batch of new tasks inserted with COPY ... FROM STDIN.
 *
 * A batch without idempotency keys needs no decision per row: every task is
 * created. COPY's text format is the cheapest way for the server to take
 * rows: there is no statement to plan and no JSON to unpack, as in the
 * general path (the SQL function aipalq_enqueue), which remains for batches
 * with keys and for enqueues inside a caller's transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static const char copy_sql[] =
    "COPY aipalq_tasks (id, type, queue, status, priority, params, max_retries, run_at,"
    " user_id, namespace) FROM STDIN";

typedef struct copy_text {
    char *buf;
    size_t len, cap;
    bool oom;
} copy_text;

static char *reserve(copy_text *t, size_t n)
{
    if (t->oom)
        return NULL;
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n)
            cap *= 2;
        char *grown = realloc(t->buf, cap);
        if (!grown) {
            t->oom = true;
            return NULL;
        }
        t->buf = grown;
        t->cap = cap;
    }
    return t->buf + t->len;
}

static void put_raw(copy_text *t, const char *s, size_t n)
{
    char *at = reserve(t, n);
    if (at) {
        memcpy(at, s, n);
        t->len += n;
    }
}

/* A text field, with the characters COPY's text format gives a meaning
 * (backslash, and the tab, newline and carriage return that end fields and
 * rows) escaped; NULL is COPY's \N. */
static void put_field(copy_text *t, const char *s)
{
    if (!s) {
        put_raw(t, "\\N", 2);
        return;
    }
    size_t n = strlen(s);
    char *at = reserve(t, 2 * n);
    if (!at)
        return;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        const char *esc = ch == '\\'   ? "\\\\"
                          : ch == '\t' ? "\\t"
                          : ch == '\n' ? "\\n"
                          : ch == '\r' ? "\\r"
                                       : NULL;
        if (esc) {
            *at++ = esc[0];
            *at++ = esc[1];
        } else {
            *at++ = ch;
        }
    }
    t->len = (size_t)(at - t->buf);
}

/* A timestamptz in UTC with milliseconds, as the server reads it. */
static void put_time_ms(copy_text *t, int64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    char out[48];
    gmtime_r(&secs, &tm);
    int n = snprintf(out, sizeof out, "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    put_raw(t, out, (size_t)n);
}

static void put_row(copy_text *t, const aipalq__dispatch_item *it, const char *ns)
{
    char num[32];
    put_field(t, it->id);
    put_raw(t, "\t", 1);
    put_field(t, it->type);
    put_raw(t, "\t", 1);
    put_field(t, it->queue);
    put_raw(t, it->run_at_ms ? "\tscheduled\t" : "\tpending\t", it->run_at_ms ? 11 : 9);
    int n = snprintf(num, sizeof num, "%d\t", it->priority);
    put_raw(t, num, (size_t)n);
    put_field(t, it->params ? it->params : "{}");
    n = snprintf(num, sizeof num, "\t%d\t", it->max_retries);
    put_raw(t, num, (size_t)n);
    if (it->run_at_ms)
        put_time_ms(t, it->run_at_ms);
    else
        put_raw(t, "\\N", 2);
    put_raw(t, "\t", 1);
    put_field(t, it->user_id);
    put_raw(t, "\t", 1);
    put_field(t, ns);
    put_raw(t, "\n", 1);
}

aipalq_status aipalq__insert_by_copy(aipalq_client *c, const aipalq__dispatch_item *items, size_t n)
{
    copy_text t = {0};
    for (size_t i = 0; i < n && !t.oom; i++)
        put_row(&t, &items[i], c->ns);
    aipalq_status st = t.oom ? aipalq__fail(c, AIPALQ_ENOMEM, "out of memory enqueueing")
                             : aipalq__pg_copy_in(c, copy_sql, t.buf, t.len);
    free(t.buf);
    return st;
}
