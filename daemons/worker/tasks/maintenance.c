/* Maintenance tasks: archive_audit_logs, maintain_database, cleanup_cache and
 * enforce_retention_policy. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "handlers.h"
#include "redis_url.h"
#include "task.h"
#include "textclf.h"

/* --------------------------------------------------- audit-log archival */

/* One batch: rows older than the cutoff move from audit_logs to
 * audit_logs_archive in a single statement, so a row is deleted only
 * together with its archived copy. Returns the moved rows as JSON lines
 * (id, created_at, ...), or NULL after failing the task. */
static PGresult *archive_batch(task_ctx *ctx, const char *cutoff_ms, const char *location,
                               int batch)
{
    char n[16];
    snprintf(n, sizeof n, "%d", batch);
    const char *p[] = {cutoff_ms, n, aipalq_job_id(ctx->job), location};
    return task_sql(
        ctx,
        "WITH moved AS ("
        " DELETE FROM audit_logs WHERE id IN ("
        "  SELECT id FROM audit_logs WHERE created_at < to_timestamp($1::bigint / 1000.0)"
        "  ORDER BY id LIMIT $2::int FOR UPDATE SKIP LOCKED)"
        " RETURNING *)"
        " INSERT INTO audit_logs_archive (id, created_at, actor, action, entity, entity_id,"
        " details, archive_task_id, archive_location)"
        " SELECT id, created_at, actor, action, entity, entity_id, details, $3::uuid, $4"
        " FROM moved ON CONFLICT (id) DO NOTHING"
        " RETURNING json_build_object('id', id, 'created_at', created_at, 'actor', actor,"
        " 'action', action, 'entity', entity, 'entity_id', entity_id, 'details', details)::text,"
        " (extract(epoch FROM created_at) * 1000)::bigint",
        4, p);
}

/* Appends lines to a gzip file (a new gzip member per batch: a valid
 * multi-member .gz) and syncs it to disk. */
static int append_gz(const char *path, PGresult *rows, char *err, size_t errlen)
{
    gzFile gz = gzopen(path, "ab");
    if (!gz) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    for (int i = 0; i < PQntuples(rows); i++) {
        const char *line = PQgetvalue(rows, i, 0);
        if (gzputs(gz, line) < 0 || gzputc(gz, '\n') < 0) {
            gzclose(gz);
            snprintf(err, errlen, "cannot write %s", path);
            return -1;
        }
    }
    if (gzclose(gz) != Z_OK) {
        snprintf(err, errlen, "cannot write %s", path);
        return -1;
    }
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    return 0;
}

/* A local directory named by the location ("/dir" or "file:///dir"), else
 * NULL (remote locations are recorded on the archived rows only). */
static const char *local_dir(const char *location)
{
    if (strncmp(location, "file://", 7) == 0)
        return location + 7;
    return location[0] == '/' ? location : NULL;
}

typedef struct archive_stats {
    long archived, batches;
    int64_t oldest_ms, newest_ms;
} archive_stats;

/* Moves every row older than cutoff_ms in batches; progress from lo to hi
 * percent. Returns 0, 1 when stopped early (the task is ended), -1 on error
 * (the task is ended). */
static int archive_older_than(task_ctx *ctx, const char *cutoff_ms, const char *location,
                              const char *file, archive_stats *st, int lo, int hi)
{
    const char *cp[] = {cutoff_ms};
    PGresult *c = task_sql(ctx,
                           "SELECT count(*) FROM audit_logs"
                           " WHERE created_at < to_timestamp($1::bigint / 1000.0)",
                           1, cp);
    if (!c)
        return -1;
    long total = atol(PQgetvalue(c, 0, 0));
    PQclear(c);
    int batch = ctx->env->cfg->archive_batch_size > 0 ? ctx->env->cfg->archive_batch_size : 1000;
    for (;;) {
        if (task_should_stop(ctx)) {
            char where[96];
            snprintf(where, sizeof where, "after archiving %ld rows; the next run continues",
                     st->archived);
            task_stopped(ctx, where);
            return 1;
        }
        if (task_exec(ctx, "BEGIN", 0, NULL) != 0)
            return -1;
        PGresult *rows = archive_batch(ctx, cutoff_ms, location, batch);
        if (!rows)
            return -1;
        int n = PQntuples(rows);
        char err[512];
        if (n > 0 && file && append_gz(file, rows, err, sizeof err) != 0) {
            PQclear(rows);
            task_fail(ctx, "archive_location", 1, "%s", err);
            return -1;
        }
        for (int i = 0; i < n; i++) {
            int64_t t = strtoll(PQgetvalue(rows, i, 1), NULL, 10);
            if (!st->oldest_ms || t < st->oldest_ms)
                st->oldest_ms = t;
            if (t > st->newest_ms)
                st->newest_ms = t;
        }
        PQclear(rows);
        if (task_exec(ctx, "COMMIT", 0, NULL) != 0)
            return -1;
        if (n == 0)
            break;
        st->archived += n;
        st->batches++;
        task_progress(ctx, lo + (int)((hi - lo) * (total ? st->archived : 0) / (total ? total : 1)),
                      "archived %ld of %ld rows", st->archived, total);
    }
    return 0;
}

static PGresult *cutoff_days(task_ctx *ctx, double days)
{
    char d[32];
    snprintf(d, sizeof d, "%.0f", days);
    const char *p[] = {d};
    return task_sql(ctx,
                    "SELECT (extract(epoch FROM now() - make_interval(days => $1::int)) * 1000)"
                    "::bigint",
                    1, p);
}

void handle_archive_audit_logs(aipalq_job *job, void *userdata)
{
    task_ctx ctx;
    PGresult *cut = NULL, *left = NULL;
    if (task_begin(&ctx, job, userdata) != 0)
        goto out;
    int days = (int)task_num(&ctx, "days_to_keep", 90);
    const char *location = task_str(&ctx, "archive_location", "s3://ai-pal-backups/audit-logs");
    const char *dir = local_dir(location);
    char file[4096] = "";
    if (dir) {
        if (textclf_mkdirs(dir) != 0) {
            task_fail(&ctx, "archive_location", 0, "cannot create directory %s: %s", dir,
                      strerror(errno));
            goto out;
        }
        snprintf(file, sizeof file, "%s/audit-logs-%s.jsonl.gz", dir, aipalq_job_id(job));
    }
    cut = cutoff_days(&ctx, days);
    if (!cut)
        goto out;
    const char *cutoff = PQgetvalue(cut, 0, 0);
    archive_stats st = {0};
    if (archive_older_than(&ctx, cutoff, location, dir ? file : NULL, &st, 0, 100) != 0)
        goto out;
    const char *lp[] = {cutoff};
    left = task_sql(&ctx,
                    "SELECT count(*) FROM audit_logs"
                    " WHERE created_at < to_timestamp($1::bigint / 1000.0)",
                    1, lp);
    if (!left)
        goto out;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "days_to_keep", days);
    task_add_time(r, "cutoff", strtoll(cutoff, NULL, 10));
    cJSON_AddStringToObject(r, "archive_location", location);
    cJSON_AddStringToObject(r, "archive_table", "audit_logs_archive");
    if (dir && st.archived > 0)
        cJSON_AddStringToObject(r, "archive_file", file);
    else
        cJSON_AddNullToObject(r, "archive_file");
    if (!dir)
        cJSON_AddStringToObject(r, "note",
                                "remote locations are not uploaded by the worker: the "
                                "rows are in audit_logs_archive, tagged with the "
                                "location");
    cJSON_AddNumberToObject(r, "archived", (double)st.archived);
    cJSON_AddNumberToObject(r, "batches", (double)st.batches);
    cJSON_AddNumberToObject(r, "remaining_older_than_cutoff", atof(PQgetvalue(left, 0, 0)));
    task_add_time(r, "oldest_archived", st.oldest_ms);
    task_add_time(r, "newest_archived", st.newest_ms);
    cJSON *counts = cJSON_CreateObject();
    cJSON_AddNumberToObject(counts, "archived", (double)st.archived);
    cJSON_AddNumberToObject(counts, "batches", (double)st.batches);
    task_succeed(&ctx, r, counts);
out:
    PQclear(cut);
    PQclear(left);
    task_end(&ctx);
}

/* ------------------------------------------------- database maintenance */

/* The queue's tables first (reindexed at the heavy level), then the
 * domain's. Tables that do not exist are skipped. */
static const char *const queue_tables[] = {"aipalq_tasks", "aipalq_events", "aipalq_idempotency",
                                           "aipalq_outbox", NULL};
static const char *const domain_tables[] = {
    "ari_snapshots", "ari_aggregates",     "ari_alerts",           "ffe_goals",
    "atomic_blocks", "edm_debts",          "edm_interactions",     "edm_misinfo_findings",
    "ml_samples",    "ml_models",          "ml_evaluations",       "ml_benchmarks",
    "audit_logs",    "audit_logs_archive", "aipal_schedule_state", NULL};

/* Size in bytes and dead tuples of a table with its partitions. */
static int table_stats(task_ctx *ctx, const char *table, double *bytes, double *dead)
{
    const char *p[] = {table};
    PGresult *r = task_sql(ctx,
                           "WITH t AS (SELECT $1::regclass AS oid UNION ALL"
                           " SELECT inhrelid FROM pg_inherits WHERE inhparent = $1::regclass)"
                           " SELECT coalesce(sum(pg_total_relation_size(t.oid)), 0),"
                           " coalesce(sum(s.n_dead_tup), 0)"
                           " FROM t LEFT JOIN pg_stat_user_tables s ON s.relid = t.oid",
                           1, p);
    if (!r)
        return -1;
    *bytes = atof(PQgetvalue(r, 0, 0));
    *dead = atof(PQgetvalue(r, 0, 1));
    PQclear(r);
    return 0;
}

static int run_statement(task_ctx *ctx, const char *fmt, const char *quoted, cJSON *ops,
                         const char *op)
{
    char sql[512];
    snprintf(sql, sizeof sql, fmt, quoted);
    if (task_exec(ctx, sql, 0, NULL) != 0)
        return -1;
    cJSON_AddItemToArray(ops, cJSON_CreateString(op));
    return 0;
}

void handle_maintain_database(aipalq_job *job, void *userdata)
{
    task_ctx ctx;
    PGresult *exist = NULL;
    if (task_begin(&ctx, job, userdata) != 0)
        goto out;
    const char *level = task_str(&ctx, "optimization_level", "standard");
    int heavy = strcmp(level, "heavy") == 0, light = strcmp(level, "light") == 0;
    const char *all[64];
    int n = 0;
    for (const char *const *t = queue_tables; *t; t++)
        all[n++] = *t;
    int nqueue = n;
    for (const char *const *t = domain_tables; *t; t++)
        all[n++] = *t;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "optimization_level", level);
    cJSON_AddStringToObject(r, "operations",
                            light   ? "ANALYZE"
                            : heavy ? "VACUUM (ANALYZE); REINDEX TABLE "
                                      "CONCURRENTLY of the queue's tables"
                                    : "VACUUM (ANALYZE)");
    cJSON *tables = cJSON_AddArrayToObject(r, "tables");
    double freed = 0, dead_removed = 0;
    int done = 0, skipped = 0, reindexed = 0;
    for (int i = 0; i < n; i++) {
        if (task_should_stop(&ctx)) {
            cJSON_Delete(r);
            char where[96];
            snprintf(where, sizeof where, "after %d of %d tables", done, n);
            task_stopped(&ctx, where);
            goto out;
        }
        const char *p[] = {all[i]};
        exist = task_sql(&ctx, "SELECT to_regclass($1) IS NOT NULL", 1, p);
        if (!exist) {
            cJSON_Delete(r);
            goto out;
        }
        int exists = PQgetvalue(exist, 0, 0)[0] == 't';
        PQclear(exist);
        exist = NULL;
        if (!exists) {
            skipped++;
            continue;
        }
        PGconn *conn = task_db(&ctx);
        if (!conn) {
            cJSON_Delete(r);
            goto out;
        }
        char *q = PQescapeIdentifier(conn, all[i], strlen(all[i]));
        double bytes0, dead0, bytes1, dead1;
        int64_t t0 = task_mono_ms();
        cJSON *t = cJSON_CreateObject();
        cJSON *ops = cJSON_CreateArray();
        int rc = table_stats(&ctx, all[i], &bytes0, &dead0);
        if (rc == 0)
            rc = light ? run_statement(&ctx, "ANALYZE %s", q, ops, "analyze")
                       : run_statement(&ctx, "VACUUM (ANALYZE) %s", q, ops, "vacuum_analyze");
        if (rc == 0 && heavy && i < nqueue) {
            rc = run_statement(&ctx, "REINDEX TABLE CONCURRENTLY %s", q, ops, "reindex");
            reindexed += rc == 0;
        }
        if (rc == 0)
            rc = table_stats(&ctx, all[i], &bytes1, &dead1);
        PQfreemem(q);
        if (rc != 0) {
            cJSON_Delete(t);
            cJSON_Delete(ops);
            cJSON_Delete(r);
            goto out;
        }
        cJSON_AddStringToObject(t, "table", all[i]);
        cJSON_AddItemToObject(t, "operations", ops);
        cJSON_AddNumberToObject(t, "duration_ms", (double)(task_mono_ms() - t0));
        cJSON_AddNumberToObject(t, "bytes_before", bytes0);
        cJSON_AddNumberToObject(t, "bytes_after", bytes1);
        cJSON_AddNumberToObject(t, "dead_tuples_before", dead0);
        cJSON_AddNumberToObject(t, "dead_tuples_after", dead1);
        cJSON_AddItemToArray(tables, t);
        freed += bytes0 - bytes1;
        dead_removed += dead0 - dead1;
        done++;
        task_progress(&ctx, 100 * (i + 1) / n, "%s done (%d of %d)", all[i], i + 1, n);
    }
    cJSON_AddNumberToObject(r, "bytes_freed", freed);
    cJSON_AddNumberToObject(r, "dead_tuples_removed", dead_removed);
    cJSON *counts = cJSON_CreateObject();
    cJSON_AddNumberToObject(counts, "tables", done);
    cJSON_AddNumberToObject(counts, "tables_missing", skipped);
    cJSON_AddNumberToObject(counts, "reindexed", reindexed);
    task_succeed(&ctx, r, counts);
out:
    PQclear(exist);
    task_end(&ctx);
}

/* -------------------------------------------------------- cache cleanup */

/* Removes the members of hash KEYS[1] whose score in zset KEYS[2] is at most
 * ARGV[1], at most ARGV[2] of them, from the hash and from every zset
 * (KEYS[2..]); returns how many. All keys of one call share a hash tag. */
static const char expire_lua[] =
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])\n"
    "if #ids == 0 then return 0 end\n"
    "redis.call('HDEL', KEYS[1], unpack(ids))\n"
    "for i = 2, #KEYS do redis.call('ZREM', KEYS[i], unpack(ids)) end\n"
    "return #ids\n";

/* Removes the given members (ARGV) from hash KEYS[1] and zset KEYS[2]. */
static const char remove_lua[] = "local n = redis.call('HDEL', KEYS[1], unpack(ARGV))\n"
                                 "redis.call('ZREM', KEYS[2], unpack(ARGV))\n"
                                 "return n\n";

#define DOMAIN_CACHE_DATA   "aipal:{cache}:data"
#define DOMAIN_CACHE_EXPIRY "aipal:{cache}:expiry"
#define DOMAIN_CACHE_STORED "aipal:{cache}:stored"

/* Runs expire_lua until nothing is left; returns the count or -1. */
static long expire_all(redisContext *rc, const char *const *keys, int nkeys, long long max_score,
                       char *err, size_t errlen)
{
    long total = 0;
    for (;;) {
        const char *argv[8];
        size_t lens[8];
        char score[32], nk[8];
        snprintf(score, sizeof score, "%lld", max_score);
        snprintf(nk, sizeof nk, "%d", nkeys);
        int a = 0;
        argv[a++] = "EVAL";
        argv[a++] = expire_lua;
        argv[a++] = nk;
        for (int i = 0; i < nkeys; i++)
            argv[a++] = keys[i];
        argv[a++] = score;
        argv[a++] = "500";
        for (int i = 0; i < a; i++)
            lens[i] = strlen(argv[i]);
        redisReply *r = redisCommandArgv(rc, a, argv, lens);
        if (!r || r->type != REDIS_REPLY_INTEGER) {
            snprintf(err, errlen, "%s", r && r->str ? r->str : rc->errstr);
            if (r)
                freeReplyObject(r);
            return -1;
        }
        long n = (long)r->integer;
        freeReplyObject(r);
        total += n;
        if (n < 500)
            return total;
    }
}

/* The ids among `ids` whose task finished before the cutoff or no longer
 * exists in PostgreSQL. Returns a result of one column, or NULL (task
 * failed). */
static PGresult *old_outcomes(task_ctx *ctx, cJSON *ids, const char *cutoff_ms)
{
    char *json = cJSON_PrintUnformatted(ids);
    const char *p[] = {json ? json : "[]", cutoff_ms};
    PGresult *r =
        task_sql(ctx,
                 "SELECT x.id FROM jsonb_array_elements_text($1::jsonb) AS x(id)"
                 " LEFT JOIN aipalq_tasks t ON t.id = x.id::uuid"
                 " WHERE t.id IS NULL OR t.completed_at < to_timestamp($2::bigint / 1000.0)",
                 2, p);
    free(json);
    return r;
}

static long remove_members(redisContext *rc, const char *hash, const char *zset, PGresult *ids,
                           char *err, size_t errlen)
{
    int n = PQntuples(ids);
    if (n == 0)
        return 0;
    const char **argv = calloc((size_t)n + 5, sizeof *argv);
    size_t *lens = calloc((size_t)n + 5, sizeof *lens);
    if (!argv || !lens) {
        free(argv);
        free(lens);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int a = 0;
    argv[a++] = "EVAL";
    argv[a++] = remove_lua;
    argv[a++] = "2";
    argv[a++] = hash;
    argv[a++] = zset;
    for (int i = 0; i < n; i++)
        argv[a++] = PQgetvalue(ids, i, 0);
    for (int i = 0; i < a; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = redisCommandArgv(rc, a, argv, lens);
    free(argv);
    free(lens);
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        snprintf(err, errlen, "%s", r && r->str ? r->str : rc->errstr);
        if (r)
            freeReplyObject(r);
        return -1;
    }
    long k = (long)r->integer;
    freeReplyObject(r);
    return k;
}

/* Result-cache entries (in queue `q`'s done hash) whose task finished before
 * the cutoff: scanned in pages, checked against PostgreSQL. */
static long cleanup_old_results(task_ctx *ctx, redisContext *rc, const char *hash, const char *zset,
                                const char *cutoff_ms, char *err, size_t errlen)
{
    long removed = 0;
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(rc, "HSCAN %s %s COUNT 500", hash, cursor);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            snprintf(err, errlen, "HSCAN: %s", r && r->str ? r->str : rc->errstr);
            if (r)
                freeReplyObject(r);
            return -1;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        cJSON *ids = cJSON_CreateArray();
        redisReply *items = r->element[1];
        for (size_t i = 0; i + 1 < items->elements; i += 2)
            cJSON_AddItemToArray(ids, cJSON_CreateString(items->element[i]->str));
        freeReplyObject(r);
        if (cJSON_GetArraySize(ids) > 0) {
            PGresult *old = old_outcomes(ctx, ids, cutoff_ms);
            cJSON_Delete(ids);
            if (!old)
                return -2;
            long k = remove_members(rc, hash, zset, old, err, errlen);
            PQclear(old);
            if (k < 0)
                return -1;
            removed += k;
        } else {
            cJSON_Delete(ids);
        }
    } while (strcmp(cursor, "0") != 0);
    return removed;
}

void handle_cleanup_cache(aipalq_job *job, void *userdata)
{
    task_ctx ctx;
    redisContext *rc = NULL;
    PGresult *now = NULL;
    cJSON *r = NULL;
    if (task_begin(&ctx, job, userdata) != 0)
        goto out;
    int max_age = (int)task_num(&ctx, "max_age_hours", 24);
    int expired_only = task_bool(&ctx, "cleanup_expired_only", 1);
    const worker_config *cfg = ctx.env->cfg;
    const char *ns = cfg->ns ? cfg->ns : "aipalq";
    char err[512];
    rc = redis_connect_url(cfg->redis_url, 5000, err, sizeof err);
    if (!rc) {
        task_fail(&ctx, NULL, 1, "%s", err);
        goto out;
    }
    char hours[16];
    snprintf(hours, sizeof hours, "%d", max_age);
    const char *hp[] = {hours};
    now = task_sql(&ctx,
                   "SELECT (extract(epoch FROM now()) * 1000)::bigint,"
                   " (extract(epoch FROM now() - make_interval(hours => $1::int)) * 1000)::bigint",
                   1, hp);
    if (!now)
        goto out;
    long long now_ms = strtoll(PQgetvalue(now, 0, 0), NULL, 10);
    const char *cutoff = PQgetvalue(now, 0, 1);
    r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "max_age_hours", max_age);
    cJSON_AddBoolToObject(r, "cleanup_expired_only", expired_only);
    cJSON *queues = cJSON_AddObjectToObject(r, "result_cache");
    long expired_total = 0, old_total = 0;
    /* 1. The library's result cache, per queue: <ns>:{queue}:done (hash) and
     * <ns>:{queue}:done_exp (zset of expiry times). */
    char pattern[160], cursor[32] = "0";
    snprintf(pattern, sizeof pattern, "%s:{*}:done_exp", ns);
    int nq = 0;
    do {
        redisReply *sc = redisCommand(rc, "SCAN %s MATCH %s COUNT 200", cursor, pattern);
        if (!sc || sc->type != REDIS_REPLY_ARRAY || sc->elements != 2) {
            task_fail(&ctx, NULL, 1, "Redis SCAN: %s", sc && sc->str ? sc->str : rc->errstr);
            if (sc)
                freeReplyObject(sc);
            goto out;
        }
        snprintf(cursor, sizeof cursor, "%s", sc->element[0]->str);
        for (size_t i = 0; i < sc->element[1]->elements; i++) {
            const char *zkey = sc->element[1]->element[i]->str;
            if (!zkey)
                continue;
            size_t zl = strlen(zkey);
            char hash[256], queue[128];
            snprintf(hash, sizeof hash, "%s", zkey);
            if (zl >= 4 && zl < sizeof hash)
                hash[zl - 4] = '\0'; /* drop "_exp" */
            const char *open = strchr(zkey, '{'), *close = strchr(zkey, '}');
            snprintf(queue, sizeof queue, "%.*s", open && close ? (int)(close - open - 1) : 0,
                     open ? open + 1 : "");
            const char *keys[] = {hash, zkey};
            long exp = expire_all(rc, keys, 2, now_ms, err, sizeof err);
            long old = 0;
            if (exp >= 0 && !expired_only)
                old = cleanup_old_results(&ctx, rc, hash, zkey, cutoff, err, sizeof err);
            if (exp < 0 || old == -1) {
                freeReplyObject(sc);
                task_fail(&ctx, NULL, 1, "Redis: %s", err);
                goto out;
            }
            if (old == -2) {
                freeReplyObject(sc);
                goto out;
            }
            cJSON *q = cJSON_AddObjectToObject(queues, queue);
            cJSON_AddNumberToObject(q, "expired_removed", (double)exp);
            cJSON_AddNumberToObject(q, "old_removed", (double)old);
            expired_total += exp;
            old_total += old;
            nq++;
        }
        freeReplyObject(sc);
    } while (strcmp(cursor, "0") != 0);
    /* 2. The application's cache: values in the hash aipal:{cache}:data,
     * expiry and store times in the zsets aipal:{cache}:expiry and
     * aipal:{cache}:stored (Unix ms). */
    const char *dkeys[] = {DOMAIN_CACHE_DATA, DOMAIN_CACHE_EXPIRY, DOMAIN_CACHE_STORED};
    long dexp = expire_all(rc, dkeys, 3, now_ms, err, sizeof err);
    long dold = 0;
    if (dexp >= 0 && !expired_only) {
        const char *okeys[] = {DOMAIN_CACHE_DATA, DOMAIN_CACHE_STORED, DOMAIN_CACHE_EXPIRY};
        dold = expire_all(rc, okeys, 3, strtoll(cutoff, NULL, 10), err, sizeof err);
    }
    if (dexp < 0 || dold < 0) {
        task_fail(&ctx, NULL, 1, "Redis: %s", err);
        goto out;
    }
    cJSON *d = cJSON_AddObjectToObject(r, "app_cache");
    cJSON_AddStringToObject(d, "hash", DOMAIN_CACHE_DATA);
    cJSON_AddNumberToObject(d, "expired_removed", (double)dexp);
    cJSON_AddNumberToObject(d, "old_removed", (double)dold);
    cJSON_AddNumberToObject(r, "expired_removed", (double)(expired_total + dexp));
    cJSON_AddNumberToObject(r, "old_removed", (double)(old_total + dold));
    cJSON_AddNumberToObject(r, "total_removed", (double)(expired_total + dexp + old_total + dold));
    cJSON *counts = cJSON_CreateObject();
    cJSON_AddNumberToObject(counts, "queues", nq);
    cJSON_AddNumberToObject(counts, "removed", (double)(expired_total + dexp + old_total + dold));
    task_succeed(&ctx, r, counts);
    r = NULL;
out:
    cJSON_Delete(r);
    if (rc)
        redisFree(rc);
    PQclear(now);
    task_end(&ctx);
}

/* ----------------------------------------------------- retention policy */

static const struct {
    const char *kind;
    int days;
} default_policy[] = {{"ari_snapshots", 365},
                      {"audit_logs", 90},
                      {"failed_tasks", 30},
                      {"completed_tasks", 14},
                      {"temp_files", 7}};

/* Deletes in batches with `sql` ($1 the cutoff in Unix ms, $2 the batch
 * size; returns one row: rows deleted). Returns the total, or -1 (task
 * failed) / -2 (stopped). */
static long delete_batches(task_ctx *ctx, const char *sql, const char *cutoff_ms, long *batches)
{
    char n[16];
    snprintf(n, sizeof n, "%d",
             ctx->env->cfg->archive_batch_size > 0 ? ctx->env->cfg->archive_batch_size : 1000);
    const char *p[] = {cutoff_ms, n};
    long total = 0;
    for (;;) {
        if (task_should_stop(ctx)) {
            task_stopped(ctx, "between retention batches; the next run continues");
            return -2;
        }
        PGresult *r = task_sql(ctx, sql, 2, p);
        if (!r)
            return -1;
        long k = atol(PQgetvalue(r, 0, 0));
        PQclear(r);
        total += k;
        if (k == 0)
            return total;
        (*batches)++;
    }
}

/* nftw() has no user pointer: per-thread state for prune_file. */
static _Thread_local long old_files_removed, old_bytes_removed, old_files_failed;
static _Thread_local time_t files_cutoff;

static int prune_file(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag == FTW_F && st->st_mtime < files_cutoff) {
        if (unlink(path) == 0) {
            old_files_removed++;
            old_bytes_removed += st->st_size;
        } else {
            old_files_failed++;
        }
    }
    return 0;
}

/* Finished tasks past their retention. Rows are deleted in the worker's own
 * namespace only; whole weekly partitions (which hold every namespace) are
 * dropped only when no task in them, of any namespace, is still within the
 * policy's retention. */
static cJSON *retain_tasks(task_ctx *ctx, int days_completed, int days_failed)
{
    const char *ns = ctx->env->cfg->ns ? ctx->env->cfg->ns : "aipalq";
    /* Whole weeks first: only when both final kinds are under the policy (a
     * dropped partition takes every task in it), and never past a task
     * created before the cutoff that is still within its own retention. */
    cJSON *o = cJSON_CreateObject();
    long partitions = 0, rows_dropped = 0;
    if (days_completed > 0 && days_failed > 0) {
        int days = days_completed > days_failed ? days_completed : days_failed;
        char d[16], dc[16], df[16];
        snprintf(d, sizeof d, "%d", days);
        snprintf(dc, sizeof dc, "%d", days_completed);
        snprintf(df, sizeof df, "%d", days_failed);
        const char *p[] = {d, dc, df};
        PGresult *b =
            task_sql(ctx,
                     "WITH c AS (SELECT now() - make_interval(days => $1::int) AS cut),"
                     " keep AS (SELECT min(t.created_at) AS at FROM aipalq_tasks t, c"
                     "  WHERE t.id < aipalq_uuid_floor(c.cut) AND ("
                     "   (t.status = 'completed' AND t.completed_at >= now() - make_interval(days "
                     "=> $2::int))"
                     "   OR (t.status IN ('failed', 'cancelled')"
                     "       AND t.completed_at >= now() - make_interval(days => $3::int))))"
                     " SELECT least(c.cut, coalesce(keep.at, c.cut)) FROM c, keep",
                     3, p);
        if (!b) {
            cJSON_Delete(o);
            return NULL;
        }
        char older[64];
        snprintf(older, sizeof older, "%s", PQgetvalue(b, 0, 0));
        PQclear(b);
        const char *op[] = {older};
        PGresult *before = task_sql(ctx,
                                    "SELECT count(*) FROM aipalq_tasks"
                                    " WHERE id < aipalq_uuid_floor($1::timestamptz)",
                                    1, op);
        PGresult *drop =
            before ? task_sql(ctx, "SELECT aipalq_drop_partitions($1::timestamptz)", 1, op) : NULL;
        PGresult *after = drop ? task_sql(ctx,
                                          "SELECT count(*) FROM aipalq_tasks"
                                          " WHERE id < aipalq_uuid_floor($1::timestamptz)",
                                          1, op)
                               : NULL;
        if (!after) {
            PQclear(before);
            PQclear(drop);
            cJSON_Delete(o);
            return NULL;
        }
        partitions = atol(PQgetvalue(drop, 0, 0));
        rows_dropped = atol(PQgetvalue(before, 0, 0)) - atol(PQgetvalue(after, 0, 0));
        PQclear(before);
        PQclear(drop);
        PQclear(after);
        cJSON_AddStringToObject(o, "partitions_older_than", older);
    }
    cJSON_AddNumberToObject(o, "partitions_dropped", (double)partitions);
    cJSON_AddNumberToObject(o, "rows_in_dropped_partitions", (double)rows_dropped);
    /* Then row by row, per status, with the rows' events and keys. */
    static const char del_sql[] =
        "WITH d AS (DELETE FROM aipalq_tasks WHERE id IN ("
        "  SELECT id FROM aipalq_tasks WHERE namespace = $4"
        "  AND status = ANY(string_to_array($3, ','))"
        "  AND completed_at < to_timestamp($1::bigint / 1000.0) LIMIT $2::int) RETURNING id),"
        " e AS (DELETE FROM aipalq_events ev USING d WHERE ev.task_id = d.id RETURNING 1),"
        " k AS (DELETE FROM aipalq_idempotency i USING d WHERE i.task_id = d.id RETURNING 1)"
        " SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM e)";
    const struct {
        const char *name, *statuses;
        int days;
    } kinds[] = {{"completed_tasks", "completed", days_completed},
                 {"failed_tasks", "failed,cancelled", days_failed}};
    char n[16];
    snprintf(n, sizeof n, "%d",
             ctx->env->cfg->archive_batch_size > 0 ? ctx->env->cfg->archive_batch_size : 1000);
    for (int k = 0; k < 2; k++) {
        if (kinds[k].days <= 0)
            continue;
        PGresult *cut = cutoff_days(ctx, kinds[k].days);
        if (!cut) {
            cJSON_Delete(o);
            return NULL;
        }
        char cutoff[32];
        snprintf(cutoff, sizeof cutoff, "%s", PQgetvalue(cut, 0, 0));
        PQclear(cut);
        long rows = 0, events = 0, batches = 0;
        for (;;) {
            if (task_should_stop(ctx)) {
                task_stopped(ctx, "between retention batches; the next run continues");
                cJSON_Delete(o);
                return NULL;
            }
            const char *p[] = {cutoff, n, kinds[k].statuses, ns};
            PGresult *r = task_sql(ctx, del_sql, 4, p);
            if (!r) {
                cJSON_Delete(o);
                return NULL;
            }
            long got = atol(PQgetvalue(r, 0, 0));
            events += atol(PQgetvalue(r, 0, 1));
            PQclear(r);
            if (got == 0)
                break;
            rows += got;
            batches++;
        }
        cJSON *ko = cJSON_AddObjectToObject(o, kinds[k].name);
        cJSON_AddNumberToObject(ko, "days", kinds[k].days);
        task_add_time(ko, "cutoff", strtoll(cutoff, NULL, 10));
        cJSON_AddStringToObject(ko, "statuses", kinds[k].statuses);
        cJSON_AddNumberToObject(ko, "deleted", (double)rows);
        cJSON_AddNumberToObject(ko, "events_deleted", (double)events);
        cJSON_AddNumberToObject(ko, "batches", (double)batches);
    }
    return o;
}

void handle_enforce_retention_policy(aipalq_job *job, void *userdata)
{
    task_ctx ctx;
    cJSON *r = NULL;
    if (task_begin(&ctx, job, userdata) != 0)
        goto out;
    const cJSON *given = task_param(&ctx, "policy");
    cJSON *policy = cJSON_CreateObject();
    if (!given || !given->child) {
        for (size_t i = 0; i < sizeof default_policy / sizeof default_policy[0]; i++)
            cJSON_AddNumberToObject(policy, default_policy[i].kind, default_policy[i].days);
    } else {
        for (const cJSON *k = given->child; k; k = k->next)
            cJSON_AddNumberToObject(policy, k->string, k->valuedouble);
    }
    r = cJSON_CreateObject();
    cJSON_AddItemToObject(r, "policy", policy);
    cJSON *res = cJSON_AddObjectToObject(r, "results");
    long total = 0;
    int step = 0;
    const cJSON *v;
    /* ARI snapshots: deleted. */
    if ((v = cJSON_GetObjectItemCaseSensitive(policy, "ari_snapshots"))) {
        PGresult *cut = cutoff_days(&ctx, v->valuedouble);
        if (!cut)
            goto out;
        long batches = 0;
        long n = delete_batches(&ctx,
                                "WITH d AS (DELETE FROM ari_snapshots WHERE snapshot_id IN ("
                                " SELECT snapshot_id FROM ari_snapshots"
                                " WHERE \"timestamp\" < to_timestamp($1::bigint / 1000.0)"
                                " LIMIT $2::int) RETURNING 1) SELECT count(*) FROM d",
                                PQgetvalue(cut, 0, 0), &batches);
        cJSON *o = cJSON_AddObjectToObject(res, "ari_snapshots");
        cJSON_AddStringToObject(o, "action", "deleted");
        task_add_time(o, "cutoff", strtoll(PQgetvalue(cut, 0, 0), NULL, 10));
        PQclear(cut);
        if (n < 0)
            goto out;
        cJSON_AddNumberToObject(o, "rows", (double)n);
        cJSON_AddNumberToObject(o, "batches", (double)batches);
        total += n;
    }
    task_progress(&ctx, 20 * ++step, "ari_snapshots done");
    /* Audit logs: archived (moved to audit_logs_archive), never dropped. */
    if ((v = cJSON_GetObjectItemCaseSensitive(policy, "audit_logs"))) {
        PGresult *cut = cutoff_days(&ctx, v->valuedouble);
        if (!cut)
            goto out;
        archive_stats st = {0};
        int rc =
            archive_older_than(&ctx, PQgetvalue(cut, 0, 0), "retention-policy", NULL, &st, 20, 40);
        cJSON *o = cJSON_AddObjectToObject(res, "audit_logs");
        cJSON_AddStringToObject(o, "action", "archived");
        task_add_time(o, "cutoff", strtoll(PQgetvalue(cut, 0, 0), NULL, 10));
        PQclear(cut);
        if (rc != 0)
            goto out;
        cJSON_AddNumberToObject(o, "rows", (double)st.archived);
        cJSON_AddNumberToObject(o, "batches", (double)st.batches);
        total += st.archived;
    }
    task_progress(&ctx, 20 * ++step, "audit_logs done");
    /* Finished tasks: whole weekly partitions dropped, the rest deleted. */
    const cJSON *vc = cJSON_GetObjectItemCaseSensitive(policy, "completed_tasks");
    const cJSON *vf = cJSON_GetObjectItemCaseSensitive(policy, "failed_tasks");
    if (vc || vf) {
        cJSON *o = retain_tasks(&ctx, vc ? (int)vc->valuedouble : 0, vf ? (int)vf->valuedouble : 0);
        if (!o)
            goto out;
        cJSON_AddStringToObject(o, "action", "deleted");
        for (int k = 0; k < 2; k++) {
            const cJSON *ko =
                cJSON_GetObjectItemCaseSensitive(o, k ? "failed_tasks" : "completed_tasks");
            const cJSON *d = ko ? cJSON_GetObjectItemCaseSensitive(ko, "deleted") : NULL;
            total += d ? (long)d->valuedouble : 0;
        }
        total +=
            (long)cJSON_GetObjectItemCaseSensitive(o, "rows_in_dropped_partitions")->valuedouble;
        cJSON_AddItemToObject(res, "tasks", o);
    }
    task_progress(&ctx, 20 * ++step, "tasks done");
    /* Temporary files: deleted by modification time. */
    if ((v = cJSON_GetObjectItemCaseSensitive(policy, "temp_files"))) {
        const char *dir = ctx.env->cfg->temp_dir;
        old_files_removed = old_bytes_removed = old_files_failed = 0;
        files_cutoff = time(NULL) - (time_t)(v->valuedouble * 86400);
        struct stat st;
        int exists = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
        if (exists)
            nftw(dir, prune_file, 16, FTW_PHYS);
        cJSON *o = cJSON_AddObjectToObject(res, "temp_files");
        cJSON_AddStringToObject(o, "action", "deleted");
        cJSON_AddStringToObject(o, "directory", dir);
        cJSON_AddBoolToObject(o, "directory_exists", exists);
        cJSON_AddNumberToObject(o, "files", (double)old_files_removed);
        cJSON_AddNumberToObject(o, "bytes", (double)old_bytes_removed);
        cJSON_AddNumberToObject(o, "failed", (double)old_files_failed);
        total += old_files_removed;
    }
    task_progress(&ctx, 20 * ++step, "temp_files done");
    cJSON *counts = cJSON_CreateObject();
    cJSON_AddNumberToObject(counts, "kinds", cJSON_GetArraySize(policy));
    cJSON_AddNumberToObject(counts, "removed_or_archived", (double)total);
    task_succeed(&ctx, r, counts);
    r = NULL;
out:
    cJSON_Delete(r);
    task_end(&ctx);
}
