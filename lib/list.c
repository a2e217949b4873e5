/* Listing tasks: filters, pages in a stable order, and the total count. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct aipalq_filter {
    unsigned states; /* bit per aipalq_state; 0 = any */
    char *type, *queue, *user_id;
    int64_t limit, offset;
    bool oldest_first;
};

struct aipalq_list {
    aipalq_task *tasks;
    size_t count;
    int64_t total, total_ms;
};

aipalq_filter *aipalq_filter_new(void)
{
    aipalq_filter *f = calloc(1, sizeof *f);
    if (f)
        f->limit = 20;
    return f;
}

void aipalq_filter_free(aipalq_filter *f)
{
    if (!f)
        return;
    free(f->type);
    free(f->queue);
    free(f->user_id);
    free(f);
}

aipalq_status aipalq_filter_add_state(aipalq_filter *f, aipalq_state state)
{
    if (!f)
        return AIPALQ_EMISUSE;
    if ((int)state < 0 || (int)state >= AIPALQ_STATE_COUNT)
        return AIPALQ_EINVAL;
    f->states |= 1u << state;
    return AIPALQ_OK;
}

static aipalq_status set_filter_text(char **slot, const char *s)
{
    char *copy = NULL;
    if (s) {
        /* PostgreSQL refuses a text parameter that is not UTF-8: the
         * whole query would fail instead of matching nothing. */
        if (strlen(s) > AIPALQ__MAX_USER_LEN ||
            aipalq__utf8_invalid_at((const unsigned char *)s, strlen(s)) >= 0)
            return AIPALQ_EINVAL;
        if (!(copy = aipalq__strdup(s)))
            return AIPALQ_ENOMEM;
    }
    free(*slot);
    *slot = copy;
    return AIPALQ_OK;
}

aipalq_status aipalq_filter_set_type(aipalq_filter *f, const char *type)
{
    return f ? set_filter_text(&f->type, type) : AIPALQ_EMISUSE;
}

aipalq_status aipalq_filter_set_queue(aipalq_filter *f, const char *queue)
{
    return f ? set_filter_text(&f->queue, queue) : AIPALQ_EMISUSE;
}

aipalq_status aipalq_filter_set_user_id(aipalq_filter *f, const char *user_id)
{
    return f ? set_filter_text(&f->user_id, user_id) : AIPALQ_EMISUSE;
}

aipalq_status aipalq_filter_set_page(aipalq_filter *f, int64_t limit, int64_t offset)
{
    if (!f)
        return AIPALQ_EMISUSE;
    if (limit < 1 || limit > 1000 || offset < 0)
        return AIPALQ_EINVAL;
    f->limit = limit;
    f->offset = offset;
    return AIPALQ_OK;
}

aipalq_status aipalq_filter_set_oldest_first(aipalq_filter *f, int oldest_first)
{
    if (!f)
        return AIPALQ_EMISUSE;
    f->oldest_first = oldest_first != 0;
    return AIPALQ_OK;
}

/* Writes the states of the filter as a SQL array literal. */
static void states_literal(unsigned states, char *out, size_t len)
{
    size_t used = (size_t)snprintf(out, len, "{");
    for (int s = 0; s < AIPALQ_STATE_COUNT; s++)
        if (states & (1u << s))
            used += (size_t)snprintf(out + used, len - used, "%s%s", used > 1 ? "," : "",
                                     aipalq_state_name((aipalq_state)s));
    snprintf(out + used, len - used, "}");
}

/* One round trip returns the page and, on every row, the total; an empty
 * page still gives one row with the total (the LEFT JOIN). Each combination
 * of filters (a "shape") has its own statement with only the predicates it
 * needs, prepared once per connection: the planner sees plain equalities
 * (partitioned tables make planning the costly part of a small query), and
 * every value is a bound parameter, so no caller's text enters the SQL. The
 * id column is a UUIDv7: id order is creation order and ties cannot happen,
 * so pages are stable. */
enum {
    SHAPE_STATES = 1,
    SHAPE_TYPE = 2,
    SHAPE_QUEUE = 4,
    SHAPE_USER = 8,
    SHAPE_OLDEST = 16,
    SHAPE_PAGE_ONLY = 32 /* the total is known: no count, total NULL */
};

static void build_where(unsigned shape, char *out, size_t len, int *next)
{
    size_t used = (size_t)snprintf(out, len, " WHERE namespace = $1");
    static const struct {
        unsigned bit;
        const char *fmt;
    } preds[] = {{SHAPE_STATES, " AND status = ANY($%d::text[])"},
                 {SHAPE_TYPE, " AND type = $%d"},
                 {SHAPE_QUEUE, " AND queue = $%d"},
                 {SHAPE_USER, " AND user_id = $%d"}};
    *next = 2;
    for (size_t i = 0; i < sizeof preds / sizeof preds[0]; i++)
        if (shape & preds[i].bit)
            used += (size_t)snprintf(out + used, len - used, preds[i].fmt, (*next)++);
}

static char *list_sql(unsigned shape, int *nparams)
{
    char where[256];
    int next;
    build_where(shape, where, sizeof where, &next);
    const char *dir = shape & SHAPE_OLDEST ? "ASC" : "DESC";
    size_t len = 2 * strlen(where) + strlen(AIPALQ__TASK_COLUMNS) + 400;
    char *sql = malloc(len);
    if (!sql)
        return NULL;
    if (shape & SHAPE_PAGE_ONLY)
        snprintf(sql, len,
                 "SELECT NULL::bigint AS total, " AIPALQ__TASK_COLUMNS " FROM aipalq_tasks%s"
                 " ORDER BY aipalq_tasks.id %s LIMIT $%d OFFSET $%d",
                 where, dir, next, next + 1);
    else
        snprintf(sql, len,
                 "SELECT n.total, p.* FROM (SELECT count(*) AS total FROM aipalq_tasks%s) n"
                 " LEFT JOIN LATERAL (SELECT " AIPALQ__TASK_COLUMNS " FROM aipalq_tasks%s"
                 " ORDER BY aipalq_tasks.id %s LIMIT $%d OFFSET $%d) p ON true ORDER BY p.id %s",
                 where, where, dir, next, next + 1, dir);
    *nparams = next + 1;
    return sql;
}

void aipalq__list_totals_clear(aipalq_client *c)
{
    for (int i = 0; i < AIPALQ__LIST_TOTALS; i++) {
        free(c->list_totals[i].filter_key);
        c->list_totals[i] = (aipalq__list_total){0};
    }
}

/* The filter as text: the shape's predicates and their values (not the
 * page, nor the order, which leave the total as it is). NULL when memory
 * runs out. */
static char *filter_key(unsigned shape, const char *const *params, int nvalues)
{
    size_t len = 16;
    for (int i = 0; i < nvalues; i++)
        len += strlen(params[i]) + 1;
    char *key = malloc(len);
    if (!key)
        return NULL;
    size_t used = (size_t)snprintf(key, len, "%u",
                                   shape & (SHAPE_STATES | SHAPE_TYPE | SHAPE_QUEUE | SHAPE_USER));
    for (int i = 0; i < nvalues; i++)
        used += (size_t)snprintf(key + used, len - used, "\x1f%s", params[i]);
    return key;
}

/* A total counted for this filter within the client's max age, or NULL. */
static aipalq__list_total *fresh_total(aipalq_client *c, const char *key, int64_t now)
{
    for (int i = 0; i < AIPALQ__LIST_TOTALS; i++) {
        aipalq__list_total *t = &c->list_totals[i];
        if (t->filter_key && strcmp(t->filter_key, key) == 0 &&
            now - t->counted_ms < c->list_total_max_age_ms)
            return t;
    }
    return NULL;
}

/* Keeps a count, in the slot of the same filter or else the oldest slot;
 * takes ownership of key. */
static void keep_total(aipalq_client *c, char *key, int64_t total, int64_t now)
{
    aipalq__list_total *slot = &c->list_totals[0];
    for (int i = 0; i < AIPALQ__LIST_TOTALS; i++) {
        aipalq__list_total *t = &c->list_totals[i];
        if (t->filter_key && strcmp(t->filter_key, key) == 0) {
            slot = t;
            break;
        }
        if (!t->filter_key || t->counted_ms < slot->counted_ms)
            slot = t;
    }
    free(slot->filter_key);
    *slot = (aipalq__list_total){.filter_key = key, .total = total, .counted_ms = now};
}

/* Runs the statement of a shape, preparing it on first use per connection. */
static aipalq_status run_list(aipalq_client *c, unsigned shape, const char *const *params,
                              PGresult **res)
{
    aipalq_status st = aipalq__pg_ensure(c);
    if (st != AIPALQ_OK)
        return st;
    char name[32];
    snprintf(name, sizeof name, "aipalq_list_%u", shape);
    int nparams = 0;
    if (!(c->pg_list_prepared & ((uint64_t)1 << shape))) {
        char *sql = list_sql(shape, &nparams);
        if (!sql)
            return aipalq__fail(c, AIPALQ_ENOMEM, "out of memory listing tasks");
        PGresult *prep = PQprepare(c->pg, name, sql, nparams, NULL);
        free(sql);
        bool ok = prep && PQresultStatus(prep) == PGRES_COMMAND_OK;
        if (!ok) {
            st = aipalq__fail(c, AIPALQ_EPG, "PostgreSQL: %s",
                              prep ? PQresultErrorMessage(prep) : PQerrorMessage(c->pg));
            PQclear(prep);
            return st;
        }
        PQclear(prep);
        c->pg_list_prepared |= (uint64_t)1 << shape;
    }
    int n = 3; /* namespace, limit, offset, and one per filter */
    for (unsigned b = SHAPE_STATES; b <= SHAPE_USER; b <<= 1)
        n += (shape & b) != 0;
    return aipalq__pg_exec_named(c, name, n, params, res);
}

aipalq_status aipalq_list_tasks(aipalq_client *c, const aipalq_filter *f, aipalq_list **out)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    if (!f || !out)
        return aipalq__fail(c, AIPALQ_EINVAL, "filter and out must not be NULL");
    *out = NULL;
    char states[128], limit[24], offset[24];
    states_literal(f->states, states, sizeof states);
    snprintf(limit, sizeof limit, "%lld", (long long)f->limit);
    snprintf(offset, sizeof offset, "%lld", (long long)f->offset);
    unsigned shape = (f->states ? SHAPE_STATES : 0) | (f->type ? SHAPE_TYPE : 0) |
                     (f->queue ? SHAPE_QUEUE : 0) | (f->user_id ? SHAPE_USER : 0) |
                     (f->oldest_first ? SHAPE_OLDEST : 0);
    const char *params[8];
    int n = 0;
    params[n++] = c->ns;
    if (f->states)
        params[n++] = states;
    if (f->type)
        params[n++] = f->type;
    if (f->queue)
        params[n++] = f->queue;
    if (f->user_id)
        params[n++] = f->user_id;
    int nvalues = n;
    params[n++] = limit;
    params[n++] = offset;
    int64_t now = aipalq__now_ms();
    char *key = c->list_total_max_age_ms > 0 ? filter_key(shape, params, nvalues) : NULL;
    const aipalq__list_total *kept = key ? fresh_total(c, key, now) : NULL;
    int64_t kept_total = kept ? kept->total : 0, kept_ms = kept ? kept->counted_ms : 0;
    PGresult *res;
    aipalq_status st = run_list(c, shape | (kept ? SHAPE_PAGE_ONLY : 0), params, &res);
    if (st != AIPALQ_OK) {
        free(key);
        return st;
    }
    aipalq_list *l = calloc(1, sizeof *l);
    int rows = PQntuples(res);
    if (l && rows > 0)
        l->tasks = calloc((size_t)rows, sizeof *l->tasks);
    if (!l || (rows > 0 && !l->tasks)) {
        free(l);
        free(key);
        PQclear(res);
        return aipalq__fail(c, AIPALQ_ENOMEM, "out of memory listing tasks");
    }
    for (int r = 0; r < rows; r++) {
        if (!kept)
            l->total = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        if (PQgetisnull(res, r, 1))
            continue; /* the count-only row of an empty page */
        if (!aipalq__task_from_row(&l->tasks[l->count], res, r, 1)) {
            PQclear(res);
            aipalq_list_free(l);
            free(key);
            return aipalq__fail(c, AIPALQ_ENOMEM, "out of memory listing tasks");
        }
        l->count++;
    }
    PQclear(res);
    if (kept) {
        l->total = kept_total;
        l->total_ms = kept_ms;
        free(key);
    } else {
        l->total_ms = now;
        if (key)
            keep_total(c, key, l->total, now);
    }
    *out = l;
    return aipalq__ok(c);
}

static aipalq_status list_view(aipalq_client *c, unsigned states, bool oldest_first, int64_t limit,
                               int64_t offset, aipalq_list **out)
{
    aipalq_filter f = {
        .states = states, .limit = limit, .offset = offset, .oldest_first = oldest_first};
    if (limit < 1 || limit > 1000 || offset < 0)
        return aipalq__fail(c, AIPALQ_EINVAL, "limit must be 1..1000 and offset >= 0");
    return aipalq_list_tasks(c, &f, out);
}

aipalq_status aipalq_list_pending(aipalq_client *c, int64_t limit, int64_t offset,
                                  aipalq_list **out)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    unsigned waiting = (1u << AIPALQ_STATE_PENDING) | (1u << AIPALQ_STATE_SCHEDULED) |
                       (1u << AIPALQ_STATE_RETRYING);
    return list_view(c, waiting, true, limit, offset, out);
}

aipalq_status aipalq_list_failed(aipalq_client *c, int64_t limit, int64_t offset, aipalq_list **out)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    return list_view(c, 1u << AIPALQ_STATE_FAILED, false, limit, offset, out);
}

void aipalq_list_free(aipalq_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        aipalq__task_clear(&l->tasks[i]);
    free(l->tasks);
    free(l);
}

size_t aipalq_list_count(const aipalq_list *l)
{
    return l ? l->count : 0;
}

const aipalq_task *aipalq_list_at(const aipalq_list *l, size_t i)
{
    return l && i < l->count ? &l->tasks[i] : NULL;
}

int64_t aipalq_list_total(const aipalq_list *l)
{
    return l ? l->total : 0;
}

int64_t aipalq_list_total_ms(const aipalq_list *l)
{
    return l ? l->total_ms : 0;
}
