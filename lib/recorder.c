/* The recorder: group commit of worker transitions.
 *
 * Handlers and the dispatcher push records; one thread takes whatever has
 * accumulated, writes it to PostgreSQL in one statement (aipalq_record), and
 * only then settles the outcomes in Redis, pipelined per queue. So a result is
 * durable before its task is acknowledged, and PostgreSQL costs one round
 * trip per batch, not per task per transition. Records of one task keep their
 * order: a batch is cut wherever a task id repeats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "worker_internal.h"

#define MAX_BATCH 1000

static void append_locked(aipalq_worker *w, aipalq__record *r)
{
    r->pushed_mono = aipalq__monotonic_ms();
    if (w->rec_tail)
        w->rec_tail->next = r;
    else
        w->rec_head = r;
    w->rec_tail = r;
    w->rec_count++;
}

void aipalq__recorder_push(aipalq_worker *w, aipalq__record *r)
{
    pthread_mutex_lock(&w->rec_mu);
    r->may_hold = false;
    append_locked(w, r);
    pthread_cond_signal(&w->rec_cv);
    pthread_mutex_unlock(&w->rec_mu);
}

void aipalq__recorder_push_start(aipalq_worker *w, aipalq__record *r)
{
    pthread_mutex_lock(&w->rec_mu);
    r->may_hold = !r->sync && !r->redis_done;
    append_locked(w, r);
    if (r->may_hold)
        w->rec_starts++;
    else
        pthread_cond_signal(&w->rec_cv);
    pthread_mutex_unlock(&w->rec_mu);
}

void aipalq__recorder_kick(aipalq_worker *w)
{
    /* Only a recorder waiting without a deadline needs to learn of starts:
     * one already waiting for a start's hold to end, or busy, sees them. */
    pthread_mutex_lock(&w->rec_mu);
    if (w->rec_idle_wait && w->rec_head)
        pthread_cond_signal(&w->rec_cv);
    pthread_mutex_unlock(&w->rec_mu);
}

int aipalq__recorder_backlog(aipalq_worker *w)
{
    pthread_mutex_lock(&w->rec_mu);
    int n = w->rec_count;
    pthread_mutex_unlock(&w->rec_mu);
    return n;
}

static bool is_outcome(const aipalq__record *r)
{
    return strcmp(r->kind, "running") != 0 && strcmp(r->kind, "progress") != 0;
}

static void finish_sync(aipalq__record *r, bool applied, aipalq_status st, const char *msg)
{
    if (!r->sync)
        return;
    pthread_mutex_lock(&r->sync->mu);
    r->sync->applied = applied;
    r->sync->status = st;
    snprintf(r->sync->message, sizeof r->sync->message, "%s", msg ? msg : "");
    r->sync->done = true;
    pthread_cond_signal(&r->sync->cv);
    pthread_mutex_unlock(&r->sync->mu);
}

/* The segment as aipalq_record() reads it. Written as text, not built with
 * cJSON: cJSON prints every number with a printf and reads it back with a
 * scanf to check the round trip, which cost the worker more than the rest
 * of the record. Numbers here are integers, printed exactly. NULL when out
 * of memory; free() it. */
static char *segment_json(aipalq__record **seg, int n)
{
    aipalq__text t = {0};
    aipalq__text_add(&t, "[", 1);
    for (int i = 0; i < n; i++) {
        aipalq__record *r = seg[i];
        /* Handlers' free text may hold any bytes; one that is not UTF-8
         * would make PostgreSQL refuse the whole segment, again and again. */
        aipalq__utf8_scrub(r->err);
        aipalq__utf8_scrub(r->detail);
        aipalq__utf8_scrub(r->msg);
        aipalq__text_add(&t, i ? ",{\"id\":" : "{\"id\":", i ? 7 : 6);
        aipalq__text_json_string(&t, r->id);
        aipalq__text_json_field(&t, "k", r->kind);
        aipalq__text_printf(&t, ",\"tok\":%lld,\"att\":%d,\"pct\":%d", (long long)r->token,
                            r->attempt, r->pct);
        if (r->started)
            aipalq__text_str(&t, ",\"started\":true");
        if (r->started_ms > 0)
            aipalq__text_printf(&t, ",\"st\":%lld", (long long)r->started_ms);
        if (r->run_at_ms)
            aipalq__text_printf(&t, ",\"run_at\":%lld", (long long)r->run_at_ms);
        if (r->result)
            aipalq__text_json_field(&t, "result", r->result);
        if (r->err)
            aipalq__text_json_field(&t, "err", r->err);
        if (r->detail)
            aipalq__text_json_field(&t, "detail", r->detail);
        if (r->msg)
            aipalq__text_json_field(&t, "msg", r->msg);
        aipalq__text_add(&t, "}", 1);
    }
    aipalq__text_add(&t, "]", 1);
    return aipalq__text_finish(&t);
}

/* The copy of a final record's outcome that Redis keeps for ttl_ms, when
 * its type asks for one. The result goes in as it is: it was checked to be
 * JSON when the handler set it, and PostgreSQL has just taken it as jsonb. */
static char *done_json(const aipalq__record *r, const char *status)
{
    aipalq__text t = {0};
    aipalq__text_str(&t, "{\"status\":");
    aipalq__text_json_string(&t, status);
    if (r->err)
        aipalq__text_json_field(&t, "error", r->err);
    if (r->result) {
        aipalq__text_json_key(&t, "result");
        aipalq__text_str(&t, r->result);
    }
    aipalq__text_add(&t, "}", 1);
    return aipalq__text_finish(&t);
}

typedef struct settle_item {
    aipalq__record *r;
    const char *outcome; /* settle script outcome, or NULL: nothing to do */
    const char *status;  /* the final status to cache */
} settle_item;

/* Settles the outcomes in Redis, one script call per queue, pipelined. */
static aipalq_status settle(aipalq_worker *w, aipalq_client *c, settle_item *items, int n)
{
    aipalq__argv *calls = calloc((size_t)n + 1, sizeof *calls);
    bool *grouped = calloc((size_t)n + 1, sizeof *grouped);
    int ncalls = 0;
    aipalq_status st = calls && grouped ? aipalq__redis_ensure(c) : AIPALQ_ENOMEM;
    int64_t now = aipalq__now_ms();
    for (int i = 0; i < n && st == AIPALQ_OK; i++) {
        if (grouped[i] || !items[i].outcome)
            continue;
        aipalq__argv *a = &calls[ncalls++];
        aipalq__argv_init(a);
        bool ok = aipalq__push_queue_keys(c, items[i].r->queue, a) && aipalq__argv_push_int(a, now);
        for (int j = i; ok && j < n; j++) {
            if (grouped[j] || !items[j].outcome || strcmp(items[j].r->queue, items[i].r->queue))
                continue;
            grouped[j] = true;
            aipalq__record *r = items[j].r;
            char *arg = NULL;
            if (strcmp(items[j].outcome, "retry") == 0) {
                arg = malloc(24);
                if (arg)
                    snprintf(arg, 24, "%lld", (long long)r->run_at_ms);
            } else if (strcmp(items[j].outcome, "release") != 0 && r->ttl_ms > 0) {
                arg = done_json(r, items[j].status);
            } else {
                arg = aipalq__strdup("");
            }
            ok = aipalq__argv_push_str(a, r->id) && aipalq__argv_push_int(a, r->token) &&
                 aipalq__argv_push_str(a, items[j].outcome) && aipalq__argv_push_owned(a, arg) &&
                 aipalq__argv_push_int(a, r->ttl_ms);
        }
        if (!ok)
            st = AIPALQ_ENOMEM;
    }
    int sent = 0;
    for (; st == AIPALQ_OK && sent < ncalls; sent++)
        st = aipalq__script_append(c, AIPALQ__SCRIPT_SETTLE, AIPALQ__NQKEYS, &calls[sent]);
    for (int k = 0; k < sent; k++) {
        redisReply *r = NULL;
        aipalq_status rs =
            aipalq__script_reply(c, AIPALQ__SCRIPT_SETTLE, AIPALQ__NQKEYS, &calls[k], &r);
        if (rs == AIPALQ_OK && r->type == REDIS_REPLY_ARRAY)
            for (size_t e = 0; e < r->elements; e++)
                if (r->element[e]->integer == 0)
                    atomic_fetch_add(&w->n_stale, 1);
        freeReplyObject(r);
        if (rs != AIPALQ_OK && st == AIPALQ_OK)
            st = rs;
        if (!c->redis)
            break;
    }
    for (int k = 0; k < ncalls; k++)
        aipalq__argv_free(&calls[k]);
    free(calls);
    free(grouped);
    return st;
}

static void count_outcome(aipalq_worker *w, const char *kind)
{
    if (strcmp(kind, "completed") == 0)
        atomic_fetch_add(&w->n_completed, 1);
    else if (strcmp(kind, "failed") == 0)
        atomic_fetch_add(&w->n_failed, 1);
    else if (strcmp(kind, "retrying") == 0)
        atomic_fetch_add(&w->n_retried, 1);
    else if (strcmp(kind, "cancelled") == 0)
        atomic_fetch_add(&w->n_cancelled, 1);
}

/* A running record that PostgreSQL refused: the task ended meanwhile (a
 * cancel won the race) or a newer delivery owns it. Tell the handler. */
static void flag_refused_start(aipalq_worker *w, const aipalq__record *r)
{
    pthread_mutex_lock(&w->mu);
    for (aipalq_job *j = w->inflight; j; j = j->next)
        if (strcmp(j->id, r->id) == 0 && j->token == r->token)
            atomic_store(&j->cancel, 1);
    pthread_mutex_unlock(&w->mu);
}

/* Decides what Redis must do for each record after PostgreSQL answered. */
static void plan_settle(aipalq_worker *w, aipalq__record *r, bool applied, const char *old_status,
                        settle_item *item)
{
    item->r = r;
    item->outcome = NULL;
    item->status = r->kind;
    if (r->redis_done || !is_outcome(r)) {
        if (!applied && strcmp(r->kind, "running") == 0)
            flag_refused_start(w, r);
        return;
    }
    if (applied) {
        count_outcome(w, r->kind);
        if (strcmp(r->kind, "retrying") == 0)
            item->outcome = "retry";
        else if (strcmp(r->kind, "released") == 0)
            item->outcome = "release";
        else
            item->outcome = r->kind;
        return;
    }
    aipalq_state old;
    if (old_status && aipalq_state_parse(old_status, &old) == AIPALQ_OK &&
        aipalq_state_is_final(old)) {
        /* The row ended without this delivery (cancelled meanwhile): end the
         * delivery in Redis the same way, if it still holds the lease. */
        item->outcome = "cancelled";
        item->status = old_status;
        return;
    }
    atomic_fetch_add(&w->n_stale, 1);
}

/* Writes one segment (unique ids). Returns false when PostgreSQL failed and
 * the segment must be tried again. */
static bool write_segment(aipalq_worker *w, aipalq_client *c, aipalq__record **seg, int n)
{
    char *json = segment_json(seg, n);
    if (!json)
        return false;
    const char *params[] = {json, w->id};
    PGresult *res = NULL;
    aipalq_status st = aipalq__pg_exec_prepared(c, AIPALQ__STMT_RECORD, 2, params, &res);
    free(json);
    if (st != AIPALQ_OK)
        return false;
    settle_item *items = calloc((size_t)n, sizeof *items);
    if (!items) {
        PQclear(res);
        return false;
    }
    int rows = PQntuples(res);
    for (int i = 0; i < n; i++) {
        /* Rows come in batch order, one per record. */
        bool applied = i < rows && PQgetvalue(res, i, 1)[0] == 't';
        const char *old = i < rows && !PQgetisnull(res, i, 2) ? PQgetvalue(res, i, 2) : NULL;
        plan_settle(w, seg[i], applied, old, &items[i]);
        if (seg[i]->sync)
            seg[i]->sync->applied = applied;
    }
    /* Redis failures are not fatal: PostgreSQL holds the outcome; a lease
     * left behind expires, and the next delivery is refused and cleaned up. */
    for (int attempt = 0; attempt < 3; attempt++) {
        if (settle(w, c, items, n) == AIPALQ_OK)
            break;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < n; i++) {
        bool applied = seg[i]->sync ? seg[i]->sync->applied : false;
        finish_sync(seg[i], applied, AIPALQ_OK, NULL);
    }
    PQclear(res);
    free(items);
    atomic_store(&w->last_progress_mono, aipalq__monotonic_ms());
    return true;
}

/* A small open-addressing table of task ids within one batch. */
#define SLOTS 4096 /* > 2 * MAX_BATCH, a power of two */

typedef struct id_table {
    int slot[SLOTS]; /* index into the batch + 1; 0 = empty */
} id_table;

static unsigned id_hash(const char *id)
{
    unsigned h = 2166136261u;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h & (SLOTS - 1);
}

/* Finds the slot of `id` (holding it, or empty where it would go). */
static int *id_slot(id_table *t, aipalq__record **batch, const char *id)
{
    unsigned h = id_hash(id);
    while (t->slot[h] && strcmp(batch[t->slot[h] - 1]->id, id) != 0)
        h = (h + 1) & (SLOTS - 1);
    return &t->slot[h];
}

/* The end of the segment that starts at `start`: records up to the first
 * repeated task id. */
static int segment_end(aipalq__record **batch, int start, int n, id_table *t)
{
    memset(t, 0, sizeof *t);
    for (int i = start; i < n; i++) {
        int *slot = id_slot(t, batch, batch[i]->id);
        if (*slot)
            return i;
        *slot = i + 1;
    }
    return n;
}

/* Folds each delivery's start into its outcome when both are in the batch,
 * and folds progress into the record before it (or drops it before an
 * outcome): a fast task then costs one row update, not two, and segments
 * stay long. The order of records of one task is kept. */
static int merge_batch(aipalq__record **batch, int n, id_table *t)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < n; i++) {
        aipalq__record *r = batch[i];
        unsigned h = id_hash(r->id);
        while (t->slot[h] &&
               strcmp(batch[t->slot[h] - 1] ? batch[t->slot[h] - 1]->id : "", r->id) != 0)
            h = (h + 1) & (SLOTS - 1);
        aipalq__record *prev = t->slot[h] ? batch[t->slot[h] - 1] : NULL;
        bool same = prev && prev->token == r->token && !prev->sync && !prev->redis_done;
        bool prev_start = same && (strcmp(prev->kind, "running") == 0);
        bool prev_progress = same && strcmp(prev->kind, "progress") == 0;
        bool r_progress = strcmp(r->kind, "progress") == 0;
        if ((prev_start || prev_progress) && r_progress) {
            prev->pct = r->pct; /* newer progress rides on the earlier record */
            free(prev->msg);
            prev->msg = r->msg;
            r->msg = NULL;
            aipalq__record_free(r);
            batch[i] = NULL;
            continue;
        }
        /* A hand-back cannot carry its delivery's start: aipalq_record
         * requeues only a running row. Both stay, in order. */
        bool start_then_release = prev_start && strcmp(r->kind, "released") == 0;
        if ((prev_start || prev_progress) && is_outcome(r) && !r->redis_done &&
            !start_then_release) {
            if (!r->started && (prev_start || prev->started))
                r->started_ms = prev->started_ms;
            r->started = r->started || prev_start || prev->started;
            batch[t->slot[h] - 1] = NULL;
            aipalq__record_free(prev);
        }
        t->slot[h] = i + 1;
    }
    int kept = 0;
    for (int i = 0; i < n; i++)
        if (batch[i])
            batch[kept++] = batch[i];
    return kept;
}

/* PostgreSQL refused a segment while the connection stayed up: a statement
 * error, so some record of it can never be written as it is (a value the
 * server rejects). Writes the records one by one; a record refused alone
 * becomes a failure saying why (for an outcome), or is given up (a start or
 * progress), so one bad record cannot stall every later outcome. */
static void write_one_by_one(aipalq_worker *w, aipalq_client *c, aipalq__record **seg, int n)
{
    for (int i = 0; i < n; i++) {
        aipalq__record *r = seg[i];
        if (write_segment(w, c, &seg[i], 1))
            continue;
        if (!c->pg)
            return; /* the connection went: the caller retries what is left */
        char why[200];
        snprintf(why, sizeof why, "outcome could not be recorded: %.150s", aipalq_client_errmsg(c));
        if (is_outcome(r) && strcmp(r->kind, "released") != 0) {
            snprintf(r->kind, sizeof r->kind, "failed");
            free(r->result);
            free(r->detail);
            free(r->msg);
            free(r->err);
            r->result = r->detail = r->msg = NULL;
            r->err = aipalq__strdup(why);
            if (write_segment(w, c, &seg[i], 1))
                continue;
        }
        finish_sync(r, false, AIPALQ_EPG, why);
        atomic_fetch_add(&w->n_stale, 1);
    }
}

static void write_batch(aipalq_worker *w, aipalq_client *c, aipalq__record **batch, int n,
                        id_table *t)
{
    n = merge_batch(batch, n, t);
    int64_t backoff = 50;
    for (int start = 0; start < n;) {
        int end = segment_end(batch, start, n, t);
        if (write_segment(w, c, batch + start, end - start)) {
            start = end;
            backoff = 50;
            continue;
        }
        if (c->pg) {
            write_one_by_one(w, c, batch + start, end - start);
            if (c->pg) {
                start = end;
                continue;
            }
        }
        /* PostgreSQL is down: keep the records and try again; nothing is
         * dropped. Give up only when stopping and out of time. */
        if (atomic_load(&w->recorder_stop) == 2) {
            for (int i = start; i < n; i++)
                finish_sync(batch[i], false, AIPALQ_EPG, aipalq_client_errmsg(c));
            break;
        }
        struct timespec ts = {(time_t)(backoff / 1000), (long)(backoff % 1000) * 1000000};
        nanosleep(&ts, NULL);
        backoff = backoff < 2000 ? backoff * 2 : 2000;
    }
    for (int i = 0; i < n; i++)
        aipalq__record_free(batch[i]);
}

/* Under rec_mu: waits until there is something to write now: any record but
 * a start, a start whose hold has ended, or a stop. Returns false when
 * stopping with nothing left. */
static bool wait_for_records(aipalq_worker *w)
{
    for (;;) {
        bool stopping = atomic_load(&w->recorder_stop) != 0;
        if (!w->rec_head) {
            if (stopping)
                return false;
            w->rec_idle_wait = true;
            pthread_cond_wait(&w->rec_cv, &w->rec_mu);
            w->rec_idle_wait = false;
            continue;
        }
        if (stopping || w->rec_count > w->rec_starts || w->start_hold_ms <= 0)
            return true;
        /* Only starts wait: until an outcome comes, or the oldest's hold ends
         * (starts are queued in the order they were pushed). */
        int64_t left = w->rec_head->pushed_mono + w->start_hold_ms - aipalq__monotonic_ms();
        if (left <= 0)
            return true;
        aipalq__cond_wait_ms(&w->rec_cv, &w->rec_mu, left);
    }
}

/* Splits a batch into the records to write now (kept in batch, in order;
 * returns how many) and the starts to hold back a while longer (in *held,
 * in order): those still within their hold whose task has no later record
 * in the batch. When nothing would be written, nothing is held. */
static int hold_starts(aipalq_worker *w, aipalq__record **batch, int n, aipalq__record **held,
                       int *nheld, id_table *t)
{
    *nheld = 0;
    if (w->start_hold_ms <= 0 || atomic_load(&w->recorder_stop))
        return n;
    int64_t now = aipalq__monotonic_ms();
    memset(t, 0, sizeof *t);
    for (int i = 0; i < n; i++)
        *id_slot(t, batch, batch[i]->id) = i + 1; /* the task's last record */
    bool *hold = calloc((size_t)n, sizeof *hold);
    if (!hold)
        return n;
    int h = 0;
    for (int i = 0; i < n; i++) {
        aipalq__record *r = batch[i];
        hold[i] = r->may_hold && now - r->pushed_mono < w->start_hold_ms &&
                  *id_slot(t, batch, r->id) == i + 1;
        h += hold[i];
    }
    int kept = n;
    if (h > 0 && h < n) {
        kept = 0;
        for (int i = 0; i < n; i++) {
            if (hold[i])
                held[(*nheld)++] = batch[i];
            else
                batch[kept++] = batch[i];
        }
    }
    free(hold);
    return kept;
}

static void *recorder_main(void *arg)
{
    aipalq_worker *w = arg;
    aipalq_client *c = aipalq__worker_client(w);
    aipalq__record **batch = malloc(MAX_BATCH * sizeof *batch);
    aipalq__record **held = malloc(MAX_BATCH * sizeof *held);
    id_table *table = malloc(sizeof *table);
    for (;;) {
        pthread_mutex_lock(&w->rec_mu);
        if (!wait_for_records(w)) {
            pthread_mutex_unlock(&w->rec_mu);
            break;
        }
        int n = 0;
        while (w->rec_head && n < MAX_BATCH && batch && held && table) {
            aipalq__record *r = w->rec_head;
            w->rec_head = r->next;
            r->next = NULL;
            if (r->may_hold)
                w->rec_starts--;
            batch[n++] = r;
        }
        if (!w->rec_head)
            w->rec_tail = NULL;
        w->rec_count -= n;
        w->rec_busy = true;
        pthread_mutex_unlock(&w->rec_mu);
        int nheld = 0;
        if (n > 0)
            n = hold_starts(w, batch, n, held, &nheld, table);
        if (nheld > 0) {
            /* Back at the front, in order: nothing of their tasks follows them
             * in this batch, and whatever comes later comes after them. */
            pthread_mutex_lock(&w->rec_mu);
            held[nheld - 1]->next = w->rec_head;
            for (int i = nheld - 2; i >= 0; i--)
                held[i]->next = held[i + 1];
            if (!w->rec_head)
                w->rec_tail = held[nheld - 1];
            w->rec_head = held[0];
            w->rec_count += nheld;
            w->rec_starts += nheld;
            pthread_mutex_unlock(&w->rec_mu);
        }
        if (c && n > 0)
            write_batch(w, c, batch, n, table);
        pthread_mutex_lock(&w->rec_mu);
        w->rec_busy = false;
        pthread_cond_broadcast(&w->rec_idle_cv);
        pthread_mutex_unlock(&w->rec_mu);
    }
    free(batch);
    free(held);
    free(table);
    aipalq_client_free(c);
    return NULL;
}

aipalq_status aipalq__recorder_start(aipalq_worker *w)
{
    atomic_store(&w->recorder_stop, 0);
    if (pthread_create(&w->recorder_thread, NULL, recorder_main, w) != 0)
        return AIPALQ_ENOMEM;
    return AIPALQ_OK;
}

void aipalq__recorder_drain(aipalq_worker *w, int64_t deadline_mono)
{
    pthread_mutex_lock(&w->rec_mu);
    while ((w->rec_head || w->rec_busy) && aipalq__monotonic_ms() < deadline_mono) {
        aipalq__cond_wait_ms(&w->rec_idle_cv, &w->rec_mu, 50);
    }
    pthread_mutex_unlock(&w->rec_mu);
}

void aipalq__recorder_stop(aipalq_worker *w)
{
    pthread_mutex_lock(&w->rec_mu);
    atomic_store(&w->recorder_stop, 2);
    pthread_cond_broadcast(&w->rec_cv);
    pthread_mutex_unlock(&w->rec_mu);
    pthread_join(w->recorder_thread, NULL);
}
