/* The reconciler: PostgreSQL is the record, so every unfinished task it holds
 * must be known to Redis. Tasks Redis lost (a crash between commit and
 * dispatch, an emptied or restored Redis, a cancelled dispatch) are
 * dispatched again with a new epoch, which makes every token of an earlier
 * delivery stale; outcomes Redis reached but PostgreSQL missed (a worker died
 * between the two) are recorded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "internal.h"

#define PAGE 500
/* The bytes "aipalqrc". */
#define RECONCILE_LOCK "7019893431471006563"

/* One page of the unfinished tasks of one state, in id order. By state, not
 * with "status IN (...)": equality on (namespace, status) lets the index
 * aipalq_tasks_status_idx return the page in id order, reading ~PAGE entries;
 * with the IN list no index gives that order, and each page became a scan and
 * sort of every unfinished row (a million waiting made a pass quadratic).
 * "ORDER BY t.id", not "ORDER BY id": the bare name is the output column
 * id::text, and a sort by text is a sort of the whole range, index or not. */
static const char page_sql[] =
    "SELECT t.id::text, t.queue, t.status FROM aipalq_tasks t"
    " WHERE t.namespace = $3 AND t.status = $4 AND t.id > $1::uuid"
    " AND t.updated_at < now() - make_interval(secs => $2::double precision / 1000)"
    " ORDER BY t.id LIMIT "
    "500";

static const char *const active_states[] = {"pending", "scheduled", "running", "retrying"};

/* Re-dispatch from PostgreSQL: only rows still unfinished and still quiet
 * (a worker that touched the row meanwhile wins). A running task that Redis
 * lost has used its attempt; with none left it fails here. */
static const char redispatch_sql[] =
    "WITH u AS (UPDATE aipalq_tasks SET prev_status = status, epoch = epoch + 1,"
    "   updated_at = now(), worker_id = NULL,"
    "   status = CASE WHEN status <> 'running' THEN status"
    "                 WHEN attempts > max_retries THEN 'failed' ELSE 'pending' END,"
    "   error_message = CASE WHEN status = 'running' AND attempts > max_retries"
    "     THEN 'lost: Redis no longer held the running task and no attempts remain'"
    "     ELSE error_message END,"
    "   completed_at = CASE WHEN status = 'running' AND attempts > max_retries THEN now()"
    "     ELSE completed_at END"
    " WHERE id = ANY($1::uuid[]) AND status IN " AIPALQ__ACTIVE_STATES_SQL
    " AND updated_at < now() - make_interval(secs => $2::double precision / 1000)"
    " RETURNING " AIPALQ__DISPATCH_COLUMNS(
        "") ", status),"
            " ev AS (INSERT INTO aipalq_events (task_id, to_status, message)"
            "   SELECT id::uuid, status, 'dispatched again by the reconciler' FROM u)"
            " SELECT * FROM u";

/* Records an outcome that Redis holds (its done entry) on an unfinished row. */
static const char record_outcome_sql[] =
    "WITH u AS (UPDATE aipalq_tasks SET prev_status = status, status = $2,"
    "   error_message = coalesce($3, error_message),"
    "   completed_at = now(), updated_at = now()"
    " WHERE id = $1::uuid AND status IN " AIPALQ__ACTIVE_STATES_SQL " RETURNING id)"
    " INSERT INTO aipalq_events (task_id, to_status, message)"
    " SELECT id, $2, 'outcome recovered from Redis by the reconciler' FROM u";

/* Running in PostgreSQL, waiting again in Redis (its lease was reclaimed and
 * the reclaimer died before recording it). */
static const char record_requeue_sql[] =
    "UPDATE aipalq_tasks SET prev_status = status, status = 'pending', worker_id = NULL,"
    " updated_at = now()"
    " WHERE id = $1::uuid AND status = 'running'"
    " AND updated_at < now() - make_interval(secs => $2::double precision / 1000)";

typedef struct page_row {
    char id[AIPALQ_ID_SIZE];
    char queue[AIPALQ_MAX_NAME_LEN + 1];
    char status[16];
} page_row;

typedef struct tally {
    int64_t redispatched, repaired;
} tally;

static aipalq_status record_outcome(aipalq_client *c, const char *id, const char *done_json,
                                    tally *n)
{
    cJSON *d = cJSON_Parse(done_json);
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(d, "status");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(d, "error");
    aipalq_state state;
    aipalq_status st = AIPALQ_OK;
    if (cJSON_IsString(status) && aipalq_state_parse(status->valuestring, &state) == AIPALQ_OK &&
        aipalq_state_is_final(state) && state != AIPALQ_STATE_COMPLETED) {
        /* A completion is always written to PostgreSQL before Redis, so only
         * failures and cancellations can be missing. */
        const char *params[] = {id, status->valuestring,
                                cJSON_IsString(error) ? error->valuestring : NULL};
        st = aipalq__pg_exec(c, record_outcome_sql, 3, params, NULL);
        if (st == AIPALQ_OK)
            n->repaired++;
    }
    cJSON_Delete(d);
    return st;
}

/* Asks Redis what it knows of the rows of one queue and sorts them into
 * lost (appended to `lost`, a SQL array literal being built) or repaired. */
static aipalq_status probe_queue(aipalq_client *c, const page_row *rows, const size_t *idx,
                                 size_t n, const char *grace, char *lost, size_t lost_len, tally *t)
{
    aipalq__argv args;
    aipalq__argv_init(&args);
    bool ok = aipalq__push_queue_keys(c, rows[idx[0]].queue, &args);
    for (size_t i = 0; ok && i < n; i++)
        ok = aipalq__argv_push_str(&args, rows[idx[i]].id);
    redisReply *r = NULL;
    aipalq_status st = ok ? aipalq__script_call(c, AIPALQ__SCRIPT_PROBE, AIPALQ__NQKEYS, &args, &r)
                          : aipalq__fail(c, AIPALQ_ENOMEM, "out of memory reconciling");
    aipalq__argv_free(&args);
    if (st != AIPALQ_OK)
        return st;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
        freeReplyObject(r);
        return aipalq__fail(c, AIPALQ_EREDIS, "unexpected reply from the probe script");
    }
    for (size_t i = 0; i < n && st == AIPALQ_OK; i++) {
        const page_row *row = &rows[idx[i]];
        redisReply *e = r->element[i];
        const char *meta = e->element[0]->str, *done = e->element[2]->str;
        if (meta[0] == '\0' && done[0] != '\0') {
            st = record_outcome(c, row->id, done, t);
        } else if (meta[0] == '\0') {
            size_t used = strlen(lost);
            snprintf(lost + used, lost_len - used, "%s%s", used > 1 ? "," : "", row->id);
        } else if (meta[0] != 'r' && strcmp(row->status, "running") == 0) {
            const char *params[] = {row->id, grace};
            PGresult *res;
            st = aipalq__pg_exec(c, record_requeue_sql, 2, params, &res);
            if (st == AIPALQ_OK && atoi(PQcmdTuples(res)) > 0)
                t->repaired++;
            PQclear(res);
        }
    }
    freeReplyObject(r);
    return st;
}

static aipalq_status redispatch(aipalq_client *c, const char *lost, const char *grace, tally *t)
{
    const char *params[] = {lost, grace};
    PGresult *res;
    aipalq_status st = aipalq__pg_exec(c, redispatch_sql, 2, params, &res);
    if (st != AIPALQ_OK)
        return st;
    int rows = PQntuples(res);
    aipalq__dispatch_item *items = calloc((size_t)rows + 1, sizeof *items);
    if (!items) {
        PQclear(res);
        return aipalq__fail(c, AIPALQ_ENOMEM, "out of memory reconciling");
    }
    size_t n = 0;
    for (int i = 0; i < rows; i++) {
        if (strcmp(PQgetvalue(res, i, 10), "failed") == 0) {
            t->repaired++;
            continue;
        }
        items[n++] = aipalq__dispatch_item_from_row(res, i);
    }
    st = aipalq__dispatch(c, items, n, false);
    if (st == AIPALQ_OK)
        t->redispatched += (int64_t)n;
    free(items);
    PQclear(res);
    return st;
}

static aipalq_status reconcile_page(aipalq_client *c, const page_row *rows, size_t n,
                                    const char *grace, tally *t)
{
    size_t *idx = malloc(n * sizeof *idx);
    bool *seen = calloc(n, sizeof *seen);
    char *lost = malloc(n * (AIPALQ_ID_SIZE + 1) + 4);
    aipalq_status st =
        idx && seen && lost ? AIPALQ_OK : aipalq__fail(c, AIPALQ_ENOMEM, "out of memory");
    if (lost)
        strcpy(lost, "{");
    for (size_t i = 0; i < n && st == AIPALQ_OK; i++) {
        if (seen[i])
            continue;
        size_t m = 0;
        for (size_t j = i; j < n; j++)
            if (!seen[j] && strcmp(rows[j].queue, rows[i].queue) == 0) {
                seen[j] = true;
                idx[m++] = j;
            }
        st = probe_queue(c, rows, idx, m, grace, lost, n * (AIPALQ_ID_SIZE + 1) + 4, t);
    }
    if (st == AIPALQ_OK && strlen(lost) > 1) {
        strcat(lost, "}");
        st = redispatch(c, lost, grace, t);
    }
    free(idx);
    free(seen);
    free(lost);
    return st;
}

/* Reconciles every unfinished task of one state, a page at a time, until
 * done or *stop is set. */
static aipalq_status reconcile_state(aipalq_client *c, const char *state, const char *grace,
                                     page_row *rows, const atomic_int *stop, tally *t)
{
    char cursor[AIPALQ_ID_SIZE] = "00000000-0000-0000-0000-000000000000";
    aipalq_status st = AIPALQ_OK;
    while (st == AIPALQ_OK && !(stop && atomic_load(stop))) {
        const char *params[] = {cursor, grace, c->ns, state};
        PGresult *res;
        st = aipalq__pg_exec(c, page_sql, 4, params, &res);
        if (st != AIPALQ_OK)
            break;
        size_t n = (size_t)PQntuples(res);
        for (size_t i = 0; i < n; i++) {
            snprintf(rows[i].id, sizeof rows[i].id, "%s", PQgetvalue(res, (int)i, 0));
            snprintf(rows[i].queue, sizeof rows[i].queue, "%s", PQgetvalue(res, (int)i, 1));
            snprintf(rows[i].status, sizeof rows[i].status, "%s", PQgetvalue(res, (int)i, 2));
        }
        PQclear(res);
        if (n == 0)
            break;
        memcpy(cursor, rows[n - 1].id, AIPALQ_ID_SIZE);
        st = reconcile_page(c, rows, n, grace, t);
        if (n < PAGE)
            break;
    }
    return st;
}

static aipalq_status reconcile_all(aipalq_client *c, const char *grace, const atomic_int *stop,
                                   tally *t)
{
    page_row *rows = malloc(PAGE * sizeof *rows);
    if (!rows)
        return aipalq__fail(c, AIPALQ_ENOMEM, "out of memory reconciling");
    aipalq_status st = aipalq__pg_exec(c, "SELECT aipalq_ensure_partitions()", 0, NULL, NULL);
    for (size_t i = 0; st == AIPALQ_OK && i < sizeof active_states / sizeof *active_states; i++)
        st = reconcile_state(c, active_states[i], grace, rows, stop, t);
    free(rows);
    return st;
}

aipalq_status aipalq_reconcile(aipalq_client *c, int64_t grace_ms, int64_t *redispatched_out,
                               int64_t *repaired_out)
{
    return aipalq__reconcile(c, grace_ms, NULL, redispatched_out, repaired_out);
}

aipalq_status aipalq__reconcile(aipalq_client *c, int64_t grace_ms, const atomic_int *stop,
                                int64_t *redispatched_out, int64_t *repaired_out)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    if (grace_ms < 0)
        return aipalq__fail(c, AIPALQ_EINVAL, "grace_ms must be >= 0");
    tally t = {0, 0};
    PGresult *res;
    aipalq_status st =
        aipalq__pg_exec(c, "SELECT pg_try_advisory_lock(" RECONCILE_LOCK ")", 0, NULL, &res);
    if (st != AIPALQ_OK)
        return st;
    bool locked = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (locked) {
        char grace[24];
        snprintf(grace, sizeof grace, "%lld", (long long)grace_ms);
        st = aipalq__redis_ensure(c);
        if (st == AIPALQ_OK)
            st = reconcile_all(c, grace, stop, &t);
        aipalq_status saved = c->last_status;
        char msg[AIPALQ__ERRMSG_SIZE];
        snprintf(msg, sizeof msg, "%s", c->errmsg);
        if (c->pg)
            aipalq__pg_exec(c, "SELECT pg_advisory_unlock(" RECONCILE_LOCK ")", 0, NULL, NULL);
        c->last_status = saved;
        snprintf(c->errmsg, sizeof c->errmsg, "%s", msg);
    }
    if (redispatched_out)
        *redispatched_out = t.redispatched;
    if (repaired_out)
        *repaired_out = t.repaired;
    return st == AIPALQ_OK ? aipalq__ok(c) : st;
}
