/* EDM tasks: edm_batch_analysis, edm_track_resolutions and
 * edm_detect_misinformation. Detection is in compute/epistemic.c and
 * compute/misinfo.c, the statistics in compute/resolution.c; this is the glue
 * to edm_debts, edm_interactions and the misinformation catalogue. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epistemic.h"
#include "handlers.h"
#include "misinfo.h"
#include "resolution.h"
#include "task.h"

#define UNRESOLVED_ALERT 50

/* How much a detector's hit is worth as evidence of debt. */
static double marker_confidence(const char *category)
{
    if (strcmp(category, "unsupported_statistic") == 0)
        return 0.8;
    if (strcmp(category, "absolute_claim") == 0)
        return 0.7;
    if (strcmp(category, "vague_quantifier") == 0)
        return 0.6;
    return 0.5;
}

static cJSON *span_text(const char *text, size_t start, size_t end)
{
    char *s = strndup(text + start, end - start);
    cJSON *o = cJSON_CreateString(s ? s : "");
    free(s);
    return o;
}

/* The SQL list of severities at or above min: 'high','critical'. */
static void severities_from(edm_severity min, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int s = min; s <= EDM_CRITICAL; s++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? "," : "",
                              edm_severity_name((edm_severity)s));
}

static void add_recommendation(cJSON *recs, const char *fmt, long n, const char *what)
{
    char msg[256];
    snprintf(msg, sizeof msg, fmt, n, what);
    cJSON_AddItemToArray(recs, cJSON_CreateString(msg));
}

void handle_edm_batch_analysis(aipalq_job *job, void *userdata)
{
    task_ctx ctx;
    PGresult *agg = NULL, *open = NULL;
    cJSON *record = NULL;
    if (task_begin(&ctx, job, userdata) != 0)
        goto out;
    const char *user = task_str(&ctx, "user_id", NULL);
    int days = (int)task_num(&ctx, "time_window_days", 7);
    edm_severity min = EDM_LOW;
    edm_severity_parse(task_str(&ctx, "min_severity", "low"), &min);
    const cJSON *texts = task_param(&ctx, "texts");
    int ntexts = texts ? cJSON_GetArraySize(texts) : 0;

    cJSON *r = cJSON_CreateObject();
    record = cJSON_CreateArray();
    if (user)
        cJSON_AddStringToObject(r, "user_id", user);
    else
        cJSON_AddNullToObject(r, "user_id");
    cJSON_AddNumberToObject(r, "time_window_days", days);
    cJSON_AddStringToObject(r, "min_severity", edm_severity_name(min));

    /* 1. The texts of this batch, scanned. */
    long markers_total = 0;
    if (texts) {
        cJSON *scanned = cJSON_AddArrayToObject(r, "texts");
        int i = 0;
        for (const cJSON *t = texts->child; t; t = t->next, i++) {
            if (task_should_stop(&ctx)) {
                cJSON_Delete(r);
                char where[64];
                snprintf(where, sizeof where, "after %d of %d texts", i, ntexts);
                task_stopped(&ctx, where);
                goto out;
            }
            const char *text = t->valuestring;
            edm_scan sc;
            if (edm_scan_text(text, &sc) != 0) {
                cJSON_Delete(r);
                task_fail(&ctx, NULL, 1, "out of memory");
                goto out;
            }
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "index", i);
            cJSON_AddNumberToObject(o, "words", (double)sc.words);
            cJSON_AddNumberToObject(o, "sentences", (double)sc.sentences);
            cJSON *ms = cJSON_AddArrayToObject(o, "markers");
            int score = 0, kept = 0;
            edm_severity max = EDM_LOW;
            for (size_t k = 0; k < sc.n; k++) {
                const edm_marker *m = &sc.markers[k];
                if (m->severity < min)
                    continue;
                score += edm_severity_weight(m->severity);
                if (kept == 0 || m->severity > max)
                    max = m->severity;
                cJSON *mj = cJSON_CreateObject();
                cJSON_AddStringToObject(mj, "category", m->category);
                cJSON_AddStringToObject(mj, "debt_type", m->debt_type);
                cJSON_AddStringToObject(mj, "severity", edm_severity_name(m->severity));
                cJSON_AddNumberToObject(mj, "start", (double)m->start);
                cJSON_AddNumberToObject(mj, "end", (double)m->end);
                cJSON_AddItemToObject(mj, "match", span_text(text, m->start, m->end));
                cJSON_AddItemToArray(ms, mj);
                if (user) {
                    char id[128];
                    snprintf(id, sizeof id, "%s:%d:%d", aipalq_job_id(job), i, kept);
                    cJSON *d = cJSON_CreateObject();
                    cJSON_AddStringToObject(d, "debt_id", id);
                    cJSON_AddItemToObject(d, "claim",
                                          span_text(text, m->sentence_start, m->sentence_end));
                    cJSON_AddStringToObject(d, "debt_type", m->debt_type);
                    cJSON_AddStringToObject(d, "severity", edm_severity_name(m->severity));
                    cJSON_AddNumberToObject(d, "confidence", marker_confidence(m->category));
                    cJSON_AddStringToObject(d, "source", text);
                    cJSON_AddItemToArray(record, d);
                }
                kept++;
            }
            cJSON_AddNumberToObject(o, "score", score);
            cJSON_AddNumberToObject(o, "density_per_100_words",
                                    sc.words ? 100.0 * score / (double)sc.words : 0);
            if (kept)
                cJSON_AddStringToObject(o, "max_severity", edm_severity_name(max));
            else
                cJSON_AddNullToObject(o, "max_severity");
            cJSON_AddItemToArray(scanned, o);
            markers_total += kept;
            edm_scan_free(&sc);
            if ((i + 1) % 20 == 0)
                task_progress(&ctx, 60 * (i + 1) / ntexts, "scanned %d of %d texts", i + 1, ntexts);
        }
    }
    int recorded = 0;
    if (cJSON_GetArraySize(record) > 0) {
        char *json = cJSON_PrintUnformatted(record);
        const char *p[] = {user, json ? json : "[]"};
        PGresult *ins = task_sql(&ctx,
                                 "INSERT INTO edm_debts (debt_id, user_id, claim, debt_type,"
                                 " severity, confidence_score, source_response, task_context)"
                                 " SELECT x.debt_id, $1, x.claim, x.debt_type, x.severity,"
                                 " x.confidence, x.source, 'edm_batch_analysis'"
                                 " FROM jsonb_to_recordset($2::jsonb) AS x(debt_id text,"
                                 " claim text, debt_type text, severity text, confidence float8,"
                                 " source text) ON CONFLICT (debt_id) DO NOTHING",
                                 2, p);
        free(json);
        if (!ins) {
            cJSON_Delete(r);
            goto out;
        }
        recorded = atoi(PQcmdTuples(ins));
        PQclear(ins);
    }
    cJSON_AddNumberToObject(r, "recorded_debts", recorded);

    /* 2. The recorded debts of the window. */
    char sevs[64], days_s[16];
    severities_from(min, sevs, sizeof sevs);
    snprintf(days_s, sizeof days_s, "%d", days);
    const char *ap[] = {days_s, sevs, user};
    agg = task_sql(&ctx,
                   "SELECT severity, debt_type, resolved, count(*) FROM edm_debts"
                   " WHERE \"timestamp\" > now() - make_interval(days => $1::int)"
                   " AND severity = ANY(string_to_array($2, ','))"
                   " AND ($3::text IS NULL OR user_id = $3)"
                   " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
                   3, ap);
    if (!agg) {
        cJSON_Delete(r);
        goto out;
    }
    const char *op[] = {user};
    open = task_sql(&ctx,
                    "SELECT count(*), count(*) FILTER (WHERE severity IN ('high', 'critical'))"
                    " FROM edm_debts WHERE NOT resolved AND ($1::text IS NULL OR user_id = $1)",
                    1, op);
    if (!open) {
        cJSON_Delete(r);
        goto out;
    }
    long total = 0, resolved = 0;
    long by_sev[4] = {0};
    cJSON *by_type = cJSON_CreateObject();
    for (int i = 0; i < PQntuples(agg); i++) {
        edm_severity s = EDM_LOW;
        edm_severity_parse(PQgetvalue(agg, i, 0), &s);
        const char *type = PQgetvalue(agg, i, 1);
        long n = atol(PQgetvalue(agg, i, 3));
        total += n;
        by_sev[s] += n;
        if (PQgetvalue(agg, i, 2)[0] == 't')
            resolved += n;
        cJSON *tn = cJSON_GetObjectItemCaseSensitive(by_type, type);
        if (tn)
            cJSON_SetNumberValue(tn, tn->valuedouble + (double)n);
        else
            cJSON_AddNumberToObject(by_type, type, (double)n);
    }
    long unresolved_all = atol(PQgetvalue(open, 0, 0));
    long severe_open = atol(PQgetvalue(open, 0, 1));
    cJSON *debts = cJSON_AddObjectToObject(r, "debts");
    cJSON_AddNumberToObject(debts, "total", (double)total);
    cJSON_AddNumberToObject(debts, "resolved", (double)resolved);
    cJSON_AddNumberToObject(debts, "unresolved", (double)(total - resolved));
    cJSON *bs = cJSON_AddObjectToObject(debts, "by_severity");
    for (int s = EDM_LOW; s <= EDM_CRITICAL; s++)
        if (s >= (int)min)
            cJSON_AddNumberToObject(bs, edm_severity_name((edm_severity)s), (double)by_sev[s]);
    cJSON_AddItemToObject(debts, "by_type", by_type);
    cJSON_AddNumberToObject(r, "unresolved_total", (double)unresolved_all);
    if (unresolved_all > UNRESOLVED_ALERT) {
        cJSON *al = cJSON_AddObjectToObject(r, "alert");
        cJSON_AddNumberToObject(al, "unresolved", (double)unresolved_all);
        cJSON_AddNumberToObject(al, "threshold", UNRESOLVED_ALERT);
        cJSON_AddStringToObject(al, "message", "unresolved epistemic debt exceeds the threshold");
    } else {
        cJSON_AddNullToObject(r, "alert");
    }

    /* 3. Recommendations, from the counts (window and batch together). */
    cJSON *recs = cJSON_AddArrayToObject(r, "recommendations");
    static const struct {
        const char *type, *fmt;
    } advice[] = {
        {"missing_citation", "Add sources for %ld statistical or research claims (%s)."},
        {"unfalsifiable", "Qualify or make testable %ld absolute claims (%s)."},
        {"vague_claim", "Replace %ld vague quantifiers with figures or sources (%s)."},
        {"hedging", "Verify %ld hedged statements or state their uncertainty plainly (%s)."},
        {"misinformation", "Correct %ld claims that match known misinformation (%s)."},
    };
    for (size_t k = 0; k < sizeof advice / sizeof advice[0]; k++) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(by_type, advice[k].type);
        if (n && n->valuedouble > 0)
            add_recommendation(recs, advice[k].fmt, (long)n->valuedouble, advice[k].type);
    }
    if (severe_open > 0)
        add_recommendation(recs, "Resolve the %ld unresolved high or critical debts first%s.",
                           severe_open, "");
    if (unresolved_all > UNRESOLVED_ALERT)
        add_recommendation(recs,
                           "Unresolved debt is %ld, above the alert threshold%s: schedule "
                           "a review.",
                           unresolved_all, "");
    if (cJSON_GetArraySize(recs) == 0)
        cJSON_AddItemToArray(recs, cJSON_CreateString("No epistemic debt found: nothing to do."));

    cJSON *counts = cJSON_CreateObject();
    cJSON_AddNumberToObject(counts, "texts", ntexts);
    cJSON_AddNumberToObject(counts, "markers", (double)markers_total);
    cJSON_AddNumberToObject(counts, "recorded_debts", recorded);
    cJSON_AddNumberToObject(counts, "debts_in_window", (double)total);
    task_succeed(&ctx, r, counts);
out:
    cJSON_Delete(record);
    PQclear(agg);
    PQclear(open);
    task_end(&ctx);
}

void handle_edm_track_resolutions(aipalq_job *job, void *userdata)
{
    task_ctx ctx;
    PGresult *rows = NULL;
    edm_debt_row *dr = NULL;
    edm_resolution_stats st = {0};
    if (task_begin(&ctx, job, userdata) != 0)
        goto out;
    const char *user = task_str(&ctx, "user_id", "");
    int days = (int)task_num(&ctx, "lookback_days", 30);
    char days_s[16];
    snprintf(days_s, sizeof days_s, "%d", days);
    const char *p[] = {user, days_s};
    rows = task_sql(&ctx,
                    "SELECT (extract(epoch FROM \"timestamp\") * 1000)::bigint, resolved,"
                    " coalesce((extract(epoch FROM resolution_date) * 1000)::bigint, 0),"
                    " resolution_method, severity, (extract(epoch FROM now()) * 1000)::bigint"
                    " FROM edm_debts WHERE user_id = $1"
                    " AND (\"timestamp\" > now() - make_interval(days => $2::int)"
                    "      OR resolution_date > now() - make_interval(days => $2::int))",
                    2, p);
    if (!rows)
        goto out;
    int n = PQntuples(rows);
    PGresult *nowr = NULL;
    int64_t now;
    if (n > 0) {
        now = strtoll(PQgetvalue(rows, 0, 5), NULL, 10);
    } else {
        nowr = task_sql(&ctx, "SELECT (extract(epoch FROM now()) * 1000)::bigint", 0, NULL);
        if (!nowr)
            goto out;
        now = strtoll(PQgetvalue(nowr, 0, 0), NULL, 10);
        PQclear(nowr);
    }
    dr = calloc((size_t)(n ? n : 1), sizeof *dr);
    if (!dr) {
        task_fail(&ctx, NULL, 1, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        dr[i].created_ms = strtoll(PQgetvalue(rows, i, 0), NULL, 10);
        dr[i].resolved = PQgetvalue(rows, i, 1)[0] == 't';
        dr[i].resolved_ms = strtoll(PQgetvalue(rows, i, 2), NULL, 10);
        dr[i].method = PQgetisnull(rows, i, 3) ? NULL : PQgetvalue(rows, i, 3);
        edm_severity_parse(PQgetvalue(rows, i, 4), &dr[i].severity);
    }
    if (edm_resolution_compute(dr, (size_t)n, now, days, &st) != 0) {
        task_fail(&ctx, NULL, 1, "out of memory");
        goto out;
    }
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "user_id", user);
    cJSON_AddNumberToObject(r, "lookback_days", days);
    cJSON_AddNumberToObject(r, "debts_recorded", (double)st.created);
    cJSON_AddNumberToObject(r, "debts_recorded_resolved", (double)st.created_resolved);
    cJSON_AddNumberToObject(r, "resolution_rate", st.resolution_rate);
    cJSON_AddNumberToObject(r, "total_resolutions", (double)st.resolutions);
    if (st.resolutions) {
        cJSON_AddNumberToObject(r, "mean_resolution_hours", st.mean_hours);
        cJSON_AddNumberToObject(r, "median_resolution_hours", st.median_hours);
    } else {
        cJSON_AddNullToObject(r, "mean_resolution_hours");
        cJSON_AddNullToObject(r, "median_resolution_hours");
    }
    if (st.most_common_count)
        cJSON_AddStringToObject(r, "most_common_method", st.most_common_method);
    else
        cJSON_AddNullToObject(r, "most_common_method");
    cJSON *bs = cJSON_AddObjectToObject(r, "by_severity");
    for (int s = EDM_LOW; s <= EDM_CRITICAL; s++) {
        cJSON *o = cJSON_AddObjectToObject(bs, edm_severity_name((edm_severity)s));
        cJSON_AddNumberToObject(o, "recorded", (double)st.sev_created[s]);
        cJSON_AddNumberToObject(o, "resolved", (double)st.sev_resolved[s]);
    }
    cJSON *tl = cJSON_AddArrayToObject(r, "timeline");
    for (int d = 0; d < st.days; d++) {
        if (!st.timeline_created[d] && !st.timeline_resolved[d])
            continue;
        cJSON *o = cJSON_CreateObject();
        task_add_time(o, "day_ending", now - (int64_t)(st.days - 1 - d) * 86400000LL);
        cJSON_AddNumberToObject(o, "recorded", (double)st.timeline_created[d]);
        cJSON_AddNumberToObject(o, "resolved", (double)st.timeline_resolved[d]);
        cJSON_AddItemToArray(tl, o);
    }
    cJSON *counts = cJSON_CreateObject();
    cJSON_AddNumberToObject(counts, "debts_read", n);
    cJSON_AddNumberToObject(counts, "resolutions", (double)st.resolutions);
    task_succeed(&ctx, r, counts);
out:
    edm_resolution_free(&st);
    free(dr);
    PQclear(rows);
    task_end(&ctx);
}

static edm_severity severity_of_confidence(double c)
{
    return c >= 0.9 ? EDM_CRITICAL : c >= 0.8 ? EDM_HIGH : c >= 0.5 ? EDM_MEDIUM : EDM_LOW;
}

void handle_edm_detect_misinformation(aipalq_job *job, void *userdata)
{
    task_ctx ctx;
    PGresult *pats = NULL, *rows = NULL;
    misinfo_catalogue cat = {0};
    cJSON *store = NULL;
    if (task_begin(&ctx, job, userdata) != 0)
        goto out;
    const char *user = task_str(&ctx, "user_id", "");
    const cJSON *ids = task_param(&ctx, "interaction_ids");
    pats = task_sql(&ctx,
                    "SELECT pattern_id, pattern, claim, evidence, category, confidence"
                    " FROM edm_misinfo_patterns WHERE enabled ORDER BY pattern_id",
                    0, NULL);
    if (!pats)
        goto out;
    cJSON *r = cJSON_CreateObject();
    cJSON *invalid = cJSON_CreateArray();
    for (int i = 0; i < PQntuples(pats); i++) {
        char why[256];
        if (misinfo_add(&cat, PQgetvalue(pats, i, 0), PQgetvalue(pats, i, 1),
                        PQgetvalue(pats, i, 2), PQgetvalue(pats, i, 3), PQgetvalue(pats, i, 4),
                        strtod(PQgetvalue(pats, i, 5), NULL), why, sizeof why) != 0)
            cJSON_AddItemToArray(invalid, cJSON_CreateString(why));
    }
    char *ids_json = ids ? cJSON_PrintUnformatted(ids) : NULL;
    const char *p[] = {user, ids_json};
    rows = task_sql(&ctx,
                    ids ? "SELECT interaction_id, response FROM edm_interactions"
                          " WHERE user_id = $1 AND interaction_id IN"
                          " (SELECT jsonb_array_elements_text($2::jsonb)) ORDER BY interaction_id"
                        : "SELECT interaction_id, response FROM edm_interactions"
                          " WHERE user_id = $1 AND created_at > now() - interval '30 days'"
                          " ORDER BY created_at DESC, interaction_id LIMIT 1000",
                    ids ? 2 : 1, p);
    free(ids_json);
    if (!rows) {
        cJSON_Delete(r);
        cJSON_Delete(invalid);
        goto out;
    }
    int n = PQntuples(rows);
    cJSON_AddStringToObject(r, "user_id", user);
    cJSON_AddNumberToObject(r, "patterns", (double)cat.n);
    cJSON_AddItemToObject(r, "invalid_patterns", invalid);
    cJSON_AddNumberToObject(r, "checked", n);
    cJSON *missing = cJSON_AddArrayToObject(r, "not_found");
    for (const cJSON *id = ids ? ids->child : NULL; id; id = id->next) {
        int found = 0;
        for (int i = 0; i < n && !found; i++)
            found = strcmp(PQgetvalue(rows, i, 0), id->valuestring) == 0;
        if (!found)
            cJSON_AddItemToArray(missing, cJSON_CreateString(id->valuestring));
    }
    cJSON *findings = cJSON_AddArrayToObject(r, "findings");
    store = cJSON_CreateArray();
    long bands[3] = {0};
    int flagged = 0;
    for (int i = 0; i < n; i++) {
        if (task_should_stop(&ctx)) {
            cJSON_Delete(r);
            char where[64];
            snprintf(where, sizeof where, "after %d of %d interactions", i, n);
            task_stopped(&ctx, where);
            goto out;
        }
        const char *iid = PQgetvalue(rows, i, 0), *text = PQgetvalue(rows, i, 1);
        misinfo_finding *f = NULL;
        long nf = misinfo_match(&cat, text, &f);
        if (nf < 0) {
            cJSON_Delete(r);
            task_fail(&ctx, NULL, 1, "out of memory");
            goto out;
        }
        flagged += nf > 0;
        for (long k = 0; k < nf; k++) {
            const misinfo_pattern *mp = &cat.p[f[k].pattern];
            const char *band = misinfo_band(mp->confidence);
            bands[band[0] == 'h' ? 0 : band[0] == 'm' ? 1 : 2]++;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "interaction_id", iid);
            cJSON_AddStringToObject(o, "pattern_id", mp->id);
            cJSON_AddStringToObject(o, "claim", mp->claim);
            cJSON_AddStringToObject(o, "evidence", mp->evidence);
            cJSON_AddStringToObject(o, "category", mp->category);
            cJSON_AddNumberToObject(o, "confidence", mp->confidence);
            cJSON_AddStringToObject(o, "band", band);
            cJSON_AddNumberToObject(o, "start", (double)f[k].start);
            cJSON_AddNumberToObject(o, "end", (double)f[k].end);
            cJSON_AddItemToObject(o, "matched", span_text(text, f[k].start, f[k].end));
            cJSON_AddItemToArray(findings, o);
            cJSON *s = cJSON_Duplicate(o, 1);
            cJSON_AddStringToObject(s, "severity",
                                    edm_severity_name(severity_of_confidence(mp->confidence)));
            cJSON_AddStringToObject(s, "source", text);
            cJSON_AddItemToArray(store, s);
        }
        free(f);
    }
    cJSON *bc = cJSON_AddObjectToObject(r, "by_confidence");
    cJSON_AddNumberToObject(bc, "high", (double)bands[0]);
    cJSON_AddNumberToObject(bc, "medium", (double)bands[1]);
    cJSON_AddNumberToObject(bc, "low", (double)bands[2]);
    cJSON_AddNumberToObject(r, "flagged_interactions", flagged);
    if (cJSON_GetArraySize(store) > 0) {
        char *json = cJSON_PrintUnformatted(store);
        const char *sp[] = {aipalq_job_id(job), user, json ? json : "[]"};
        int ok = json && task_exec(&ctx, "BEGIN", 0, NULL) == 0 &&
                 task_exec(&ctx,
                           "INSERT INTO edm_misinfo_findings (task_id, interaction_id, pattern_id,"
                           " span_start, span_end, matched, confidence, user_id)"
                           " SELECT $1::uuid, x.interaction_id, x.pattern_id, x.start, x.\"end\","
                           " x.matched, x.confidence, $2 FROM jsonb_to_recordset($3::jsonb) AS"
                           " x(interaction_id text, pattern_id text, start int, \"end\" int,"
                           " matched text, confidence float8) ON CONFLICT DO NOTHING",
                           3, sp) == 0 &&
                 task_exec(&ctx,
                           "INSERT INTO edm_debts (debt_id, user_id, claim, debt_type, severity,"
                           " confidence_score, source_response, task_context, interaction_id)"
                           " SELECT 'misinfo:' || x.interaction_id || ':' || x.pattern_id || ':'"
                           " || x.start, $1, x.matched, 'misinformation', x.severity,"
                           " x.confidence, x.source, 'edm_detect_misinformation',"
                           " x.interaction_id FROM jsonb_to_recordset($2::jsonb) AS"
                           " x(interaction_id text, pattern_id text, start int, matched text,"
                           " confidence float8, severity text, source text)"
                           " ON CONFLICT (debt_id) DO NOTHING",
                           2, sp + 1) == 0 &&
                 task_exec(&ctx, "COMMIT", 0, NULL) == 0;
        free(json);
        if (!ok) {
            cJSON_Delete(r);
            task_fail(&ctx, NULL, 1, "out of memory");
            goto out;
        }
    }
    cJSON *counts = cJSON_CreateObject();
    cJSON_AddNumberToObject(counts, "interactions", n);
    cJSON_AddNumberToObject(counts, "patterns", (double)cat.n);
    cJSON_AddNumberToObject(counts, "findings", (double)cJSON_GetArraySize(findings));
    task_succeed(&ctx, r, counts);
out:
    cJSON_Delete(store);
    misinfo_free(&cat);
    PQclear(pats);
    PQclear(rows);
    task_end(&ctx);
}
