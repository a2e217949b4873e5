/* Reading tasks by id: one, or many in one round trip. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define GET_MANY_MAX 1000

aipalq_status aipalq_get(aipalq_client *c, const char *id, aipalq_task **out)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    if (!out)
        return aipalq__fail(c, AIPALQ_EINVAL, "out must not be NULL");
    *out = NULL;
    if (!aipalq__uuid_valid(id))
        return aipalq__fail(c, AIPALQ_EBADID, "'%.40s' is not a task id (a UUID)", id ? id : "");
    PGresult *res;
    const char *params[] = {id};
    aipalq_status st = aipalq__pg_exec_prepared(c, AIPALQ__STMT_GET_TASK, 1, params, &res);
    if (st != AIPALQ_OK)
        return st;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return aipalq__fail(c, AIPALQ_ENOTFOUND, "no task with id %s", id);
    }
    aipalq_task *t = malloc(sizeof *t);
    if (!t || !aipalq__task_from_row(t, res, 0, 0)) {
        free(t);
        PQclear(res);
        return aipalq__fail(c, AIPALQ_ENOMEM, "out of memory reading task %s", id);
    }
    PQclear(res);
    *out = t;
    return aipalq__ok(c);
}

/* An input id, lower-cased as PostgreSQL prints a uuid, and where it was. */
typedef struct wanted {
    char id[AIPALQ_ID_SIZE];
    size_t at;
} wanted;

static int wanted_cmp(const void *a, const void *b)
{
    return strcmp(((const wanted *)a)->id, ((const wanted *)b)->id);
}

/* The ids as one SQL array literal; they are checked UUIDs, so they need no
 * quoting. NULL when memory runs out. */
static char *ids_literal(const wanted *w, size_t n)
{
    char *s = malloc(n * AIPALQ_ID_SIZE + 3);
    if (!s)
        return NULL;
    size_t len = 0;
    s[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            s[len++] = ',';
        size_t l = strlen(w[i].id);
        memcpy(s + len, w[i].id, l);
        len += l;
    }
    s[len++] = '}';
    s[len] = '\0';
    return s;
}

/* Gives every position that asked for this row's id its own snapshot. */
static bool place_row(const PGresult *res, int row, const wanted *w, size_t n, aipalq_task **out)
{
    wanted key;
    snprintf(key.id, sizeof key.id, "%s", PQgetvalue(res, row, 0));
    const wanted *hit = bsearch(&key, w, n, sizeof *w, wanted_cmp);
    if (!hit)
        return true;
    while (hit > w && strcmp(hit[-1].id, key.id) == 0)
        hit--;
    for (; hit < w + n && strcmp(hit->id, key.id) == 0; hit++) {
        aipalq_task *t = malloc(sizeof *t);
        if (!t || !aipalq__task_from_row(t, res, row, 0)) {
            free(t);
            return false;
        }
        out[hit->at] = t;
    }
    return true;
}

aipalq_status aipalq_get_many(aipalq_client *c, const char *const *ids, size_t n, aipalq_task **out)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    if (!ids || !out || n == 0 || n > GET_MANY_MAX)
        return aipalq__fail(c, AIPALQ_EINVAL, "ids and out must not be NULL, n must be 1..%d",
                            GET_MANY_MAX);
    memset(out, 0, n * sizeof *out);
    for (size_t i = 0; i < n; i++)
        if (!aipalq__uuid_valid(ids[i]))
            return aipalq__fail(c, AIPALQ_EBADID, "ids[%zu] '%.40s' is not a task id (a UUID)", i,
                                ids[i] ? ids[i] : "");
    wanted *w = malloc(n * sizeof *w);
    char *literal = NULL;
    if (w) {
        for (size_t i = 0; i < n; i++) {
            size_t j = 0;
            for (; ids[i][j] && j + 1 < sizeof w[i].id; j++)
                w[i].id[j] = (char)tolower((unsigned char)ids[i][j]);
            w[i].id[j] = '\0';
            w[i].at = i;
        }
        qsort(w, n, sizeof *w, wanted_cmp);
        literal = ids_literal(w, n);
    }
    if (!literal) {
        free(w);
        return aipalq__fail(c, AIPALQ_ENOMEM, "out of memory reading %zu tasks", n);
    }
    PGresult *res;
    /* Sorted lowercase canonical text sorts as the UUIDs do: the ends are
     * the bounds. */
    const char *params[] = {literal, w[0].id, w[n - 1].id};
    aipalq_status st = aipalq__pg_exec_prepared(c, AIPALQ__STMT_GET_TASKS, 3, params, &res);
    free(literal);
    if (st != AIPALQ_OK) {
        free(w);
        return st;
    }
    bool ok = true;
    for (int r = 0; ok && r < PQntuples(res); r++)
        ok = place_row(res, r, w, n, out);
    PQclear(res);
    free(w);
    if (!ok) {
        for (size_t i = 0; i < n; i++) {
            aipalq_task_free(out[i]);
            out[i] = NULL;
        }
        return aipalq__fail(c, AIPALQ_ENOMEM, "out of memory reading %zu tasks", n);
    }
    return aipalq__ok(c);
}
