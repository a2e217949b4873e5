/* A batch of new tasks inserted with COPY ... FROM STDIN.
 *
 * A batch without idempotency keys needs no decision per row: every task is
 * created. COPY's text format is the cheapest way for the server to take
 * rows: there is no statement to plan and no JSON to unpack, as in the
 * general path (the SQL function aipalq_enqueue), which remains for batches
 * with keys and for enqueues inside a caller's transaction. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static const char copy_sql[] =
    "COPY aipalq_tasks (id, type, queue, status, priority, params, max_retries, run_at,"
    " user_id, namespace) FROM STDIN";

/* A text field, with the characters COPY's text format gives a meaning
 * (backslash, and the tab, newline and carriage return that end fields and
 * rows) escaped; NULL is COPY's \N. */
static void put_field(aipalq__text *t, const char *s)
{
    if (!s) {
        aipalq__text_add(t, "\\N", 2);
        return;
    }
    size_t n = strlen(s);
    if (!aipalq__text_reserve(t, 2 * n))
        return;
    char *at = t->s + t->len;
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
    t->len = (size_t)(at - t->s);
    t->s[t->len] = '\0';
}

/* A timestamptz in UTC with milliseconds, as the server reads it. */
static void put_time_ms(aipalq__text *t, int64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    aipalq__text_printf(t, "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", tm.tm_year + 1900,
                        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                        (int)(ms % 1000));
}

static void put_row(aipalq__text *t, const aipalq__dispatch_item *it, const char *ns)
{
    put_field(t, it->id);
    aipalq__text_str(t, "\t");
    put_field(t, it->type);
    aipalq__text_str(t, "\t");
    put_field(t, it->queue);
    aipalq__text_printf(t, "\t%s\t%d\t", it->run_at_ms ? "scheduled" : "pending", it->priority);
    put_field(t, it->params ? it->params : "{}");
    aipalq__text_printf(t, "\t%d\t", it->max_retries);
    if (it->run_at_ms)
        put_time_ms(t, it->run_at_ms);
    else
        put_field(t, NULL);
    aipalq__text_str(t, "\t");
    put_field(t, it->user_id);
    aipalq__text_str(t, "\t");
    put_field(t, ns);
    aipalq__text_str(t, "\n");
}

aipalq_status aipalq__insert_by_copy(aipalq_client *c, const aipalq__dispatch_item *items, size_t n)
{
    aipalq__text t = {0};
    for (size_t i = 0; i < n && !t.failed; i++)
        put_row(&t, &items[i], c->ns);
    aipalq_status st = t.failed ? aipalq__fail(c, AIPALQ_ENOMEM, "out of memory enqueueing")
                                : aipalq__pg_copy_in(c, copy_sql, t.s, t.len);
    free(t.s);
    return st;
}
