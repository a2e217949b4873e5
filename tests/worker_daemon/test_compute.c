/* aipal-worker's pure computations, on small fixtures with the numbers
 * asserted: statistics and trends (ARI), planning and progress (FFE), debt
 * markers, misinformation patterns and resolution statistics (EDM), the
 * text classifier (models), and schedule expressions. No servers. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cron.h"
#include "epistemic.h"
#include "misinfo.h"
#include "planner.h"
#include "progress.h"
#include "resolution.h"
#include "schedule.h"
#include "stats.h"
#include "textclf.h"

#define DAY 86400000LL
#define EPS 1e-9

/* ------------------------------------------------------------- stats */

START_TEST(summary_counts_moments_and_latest)
{
    double v[] = {2, 4, 4, 4, 5, 5, 7, 9};
    int64_t t[] = {10, 20, 30, 40, 50, 60, 100, 70}; /* 7 is the newest */
    stats_summary s;
    stats_summarize(v, t, 8, &s);
    ck_assert_uint_eq(s.count, 8);
    ck_assert_double_eq_tol(s.mean, 5.0, EPS);
    ck_assert_double_eq_tol(s.min, 2.0, EPS);
    ck_assert_double_eq_tol(s.max, 9.0, EPS);
    ck_assert_double_eq_tol(s.stddev, 2.138089935299395, 1e-12);
    ck_assert_double_eq_tol(s.latest, 7.0, EPS);
    ck_assert_int_eq(s.latest_ms, 100);
    stats_summarize(v, t, 1, &s);
    ck_assert_double_eq_tol(s.stddev, 0.0, EPS);
    stats_summarize(v, t, 0, &s);
    ck_assert_uint_eq(s.count, 0);
}
END_TEST

START_TEST(linear_fit_and_percentiles)
{
    double x[] = {0, 1, 2, 3}, y[] = {1, 3, 5, 7}, slope, icpt;
    ck_assert_int_eq(stats_linear_fit(x, y, 4, &slope, &icpt), 1);
    ck_assert_double_eq_tol(slope, 2.0, EPS);
    ck_assert_double_eq_tol(icpt, 1.0, EPS);
    ck_assert_int_eq(stats_linear_fit(x, y, 1, &slope, &icpt), 0);
    ck_assert_double_eq_tol(slope, 0.0, EPS);
    double s[] = {1, 2, 3, 4, 5};
    ck_assert_double_eq_tol(stats_percentile(s, 5, 50), 3.0, EPS);
    ck_assert_double_eq_tol(stats_percentile(s, 5, 90), 4.6, EPS);
    ck_assert_double_eq_tol(stats_percentile(s, 5, 0), 1.0, EPS);
    ck_assert_double_eq_tol(stats_percentile(s, 5, 100), 5.0, EPS);
    ck_assert_double_eq_tol(stats_percentile(s, 0, 50), 0.0, EPS);
}
END_TEST

START_TEST(trend_slope_zscore_and_alert_severity)
{
    double v[] = {10, 9, 8, 7};
    int64_t t[] = {0, DAY, 2 * DAY, 3 * DAY};
    stats_trend tr;
    stats_trend_compute(v, t, 4, 10.0, &tr);
    ck_assert_int_eq(tr.has_change, 1);
    ck_assert_double_eq_tol(tr.change_percent, -30.0, EPS);
    ck_assert_double_eq_tol(tr.slope_per_day, -1.0, EPS);
    ck_assert_double_eq_tol(tr.z_score, -1.161895003862225, 1e-12);
    ck_assert_int_eq(tr.severity, STATS_SEVERITY_CRITICAL);
    double w[] = {100, 95, 88};
    stats_trend_compute(w, t, 3, 10.0, &tr);
    ck_assert_double_eq_tol(tr.change_percent, -12.0, EPS);
    ck_assert_int_eq(tr.severity, STATS_SEVERITY_WARNING);
    stats_trend_compute(w, t, 3, 15.0, &tr);
    ck_assert_int_eq(tr.severity, STATS_SEVERITY_NONE);
    double z[] = {0, 5};
    stats_trend_compute(z, t, 2, 10.0, &tr);
    ck_assert_int_eq(tr.has_change, 0);
    ck_assert_int_eq(stats_decline_severity(-20.0, 10), STATS_SEVERITY_CRITICAL);
    ck_assert_int_eq(stats_decline_severity(-19.9, 10), STATS_SEVERITY_WARNING);
    ck_assert_int_eq(stats_decline_severity(-10.0, 10), STATS_SEVERITY_NONE);
    ck_assert_int_eq(stats_decline_severity(25.0, 10), STATS_SEVERITY_NONE);
}
END_TEST

/* ----------------------------------------------------------- planner */

START_TEST(plan_with_hours_shares_minutes_by_weight)
{
    plan_result p;
    char err[128];
    ck_assert_int_eq(plan_goal(NULL, "Write the project report, review it and send it to the team",
                               "simple", 2.0, &p, err, sizeof err),
                     0);
    ck_assert_int_eq(p.clauses, 3);
    ck_assert_int_eq(p.nblocks, 3);
    ck_assert_str_eq(p.blocks[0].description, "Write the project report");
    ck_assert_str_eq(p.blocks[1].description, "Review it");
    ck_assert_str_eq(p.blocks[2].description, "Send it to the team");
    ck_assert_int_eq(p.blocks[0].minutes, 70);
    ck_assert_int_eq(p.blocks[1].minutes, 30);
    ck_assert_int_eq(p.blocks[2].minutes, 20);
    ck_assert_int_eq(p.planned_minutes, 120);
    ck_assert_int_eq(p.available_minutes, 120);
    ck_assert_int_eq(p.fits, 1);
}
END_TEST

START_TEST(plan_without_hours_estimates_and_adds_review)
{
    plan_result p, q;
    char err[128];
    const char *d = "Write the project report, review it and send it to the team";
    ck_assert_int_eq(plan_goal(NULL, d, "medium", 0, &p, err, sizeof err), 0);
    ck_assert_int_eq(p.nblocks, 4);
    ck_assert_int_eq(p.blocks[0].minutes, 100);
    ck_assert_int_eq(p.blocks[1].minutes, 40);
    ck_assert_int_eq(p.blocks[2].minutes, 30);
    ck_assert_int_eq(p.blocks[3].minutes, 20);
    ck_assert_str_eq(p.blocks[3].kind, "review");
    ck_assert_str_eq(p.blocks[3].description,
                     "Review the result and wrap up \"Write the project report\"");
    ck_assert_int_eq(p.planned_minutes, 190);
    /* Deterministic. */
    ck_assert_int_eq(plan_goal(NULL, d, "medium", 0, &q, err, sizeof err), 0);
    ck_assert_int_eq(memcmp(&p, &q, sizeof p), 0);
}
END_TEST

START_TEST(plan_small_goal_gets_prepare_and_review)
{
    plan_result p;
    char err[128];
    ck_assert_int_eq(plan_goal("Tidy up", "Clean the garage", "simple", 1.0, &p, err, sizeof err),
                     0);
    ck_assert_int_eq(p.nblocks, 3);
    ck_assert_str_eq(p.blocks[0].kind, "prepare");
    ck_assert_str_eq(p.blocks[1].description, "Clean the garage");
    ck_assert_str_eq(p.blocks[2].kind, "review");
    ck_assert_ptr_nonnull(strstr(p.blocks[0].description, "\"Tidy up\""));
    ck_assert_int_eq(p.blocks[0].minutes, 15);
    ck_assert_int_eq(p.blocks[1].minutes, 30);
    ck_assert_int_eq(p.blocks[2].minutes, 15);
}
END_TEST

START_TEST(plan_merges_lists_and_keeps_verb_pairs)
{
    plan_result p;
    char err[128];
    ck_assert_int_eq(plan_goal(NULL,
                               "- research competitors\n- draft the outline\n- write the first "
                               "chapter\n- review and edit the draft\n- design the cover\n- "
                               "publish on the website\n- email subscribers\n- call the printer\n"
                               "- order copies",
                               "medium", 10, &p, err, sizeof err),
                     0);
    ck_assert_int_eq(p.clauses, 9);
    ck_assert_int_eq(p.nblocks, 6);
    ck_assert_str_eq(p.blocks[3].description, "Review and edit the draft");
    ck_assert_int_eq(p.planned_minutes, 600);
    ck_assert_int_eq(p.fits, 1);
}
END_TEST

START_TEST(plan_bounds_hold_for_any_text)
{
    const char *texts[] = {"x", "Learn Spanish. Practice daily, then book the exam",
                           "a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p",
                           "Build the shed; paint it; then invite the neighbours and celebrate"};
    const char *cx[] = {"simple", "medium", "complex"};
    double hours[] = {0, 0.25, 1, 3, 8, 16, 24, 100};
    for (size_t i = 0; i < 4; i++)
        for (size_t c = 0; c < 3; c++)
            for (size_t h = 0; h < 8; h++) {
                plan_result p;
                char err[128];
                ck_assert_int_eq(plan_goal(NULL, texts[i], cx[c], hours[h], &p, err, sizeof err),
                                 0);
                ck_assert_int_ge(p.nblocks, 3);
                ck_assert_int_le(p.nblocks, 7);
                for (int b = 0; b < p.nblocks; b++) {
                    ck_assert_int_ge(p.blocks[b].minutes, 15);
                    ck_assert_int_le(p.blocks[b].minutes, 120);
                    ck_assert_int_eq(p.blocks[b].minutes % 5, 0);
                }
            }
    plan_result p;
    char err[128];
    ck_assert_int_eq(plan_goal(NULL, "Write a novel", "complex", 24, &p, err, sizeof err), 0);
    ck_assert_int_eq(p.nblocks, 7);
    ck_assert_int_eq(p.planned_minutes, 840);
    ck_assert_int_eq(p.fits, 0);
    ck_assert_int_eq(plan_goal(NULL, " ... ", "simple", 0, &p, err, sizeof err), -1);
    ck_assert_int_eq(plan_goal(NULL, "Do it", "huge", 0, &p, err, sizeof err), -1);
}
END_TEST

/* ---------------------------------------------------------- progress */

START_TEST(progress_velocity_projection)
{
    ffe_block_state b[] = {{60, 1, 1 * DAY}, {30, 1, 2 * DAY}, {30, 0, 0}, {60, 0, 0}};
    ffe_progress p;
    ffe_compute_progress(b, 4, 0, 10 * DAY, 3 * DAY, &p);
    ck_assert_int_eq(p.total_minutes, 180);
    ck_assert_int_eq(p.completed_minutes, 90);
    ck_assert_double_eq_tol(p.completion_percent, 50.0, EPS);
    ck_assert_double_eq_tol(p.blocks_percent, 50.0, EPS);
    ck_assert_double_eq_tol(p.velocity_minutes_per_day, 30.0, EPS);
    ck_assert_int_eq(p.projected_finish_ms, 6 * DAY);
    ck_assert_int_eq(p.on_track, 1);
    ck_assert_double_eq_tol(p.days_to_deadline, 7.0, EPS);
    ffe_compute_progress(b, 4, 0, 5 * DAY, 3 * DAY, &p);
    ck_assert_int_eq(p.on_track, 0);
    ffe_block_state none[] = {{60, 0, 0}};
    ffe_compute_progress(none, 1, 0, 0, DAY, &p);
    ck_assert_int_eq(p.projected_finish_ms, 0);
    ck_assert_int_eq(p.on_track, -1);
    ffe_block_state all[] = {{60, 1, DAY}, {60, 1, 2 * DAY}};
    ffe_compute_progress(all, 2, 0, 0, 5 * DAY, &p);
    ck_assert_int_eq(p.finished_ms, 2 * DAY);
    ck_assert_double_eq_tol(p.velocity_minutes_per_day, 60.0, EPS);
}
END_TEST

/* ---------------------------------------------------------- epistemic */

START_TEST(debt_markers_with_spans)
{
    const char *txt = "Studies show that 73% of users always prefer dark mode. Many people might "
                      "disagree, according to the Pew survey (Smith, 2020) 40% do. Experts say it "
                      "is perhaps true.";
    edm_scan sc;
    ck_assert_int_eq(edm_scan_text(txt, &sc), 0);
    ck_assert_uint_eq(sc.words, 29);
    ck_assert_uint_eq(sc.sentences, 3);
    ck_assert_uint_eq(sc.sourced_sentences, 1);
    ck_assert_uint_eq(sc.n, 7);
    struct {
        const char *cat, *match;
        size_t start;
    } want[] = {{"unsupported_statistic", "Studies show", 0},
                {"unsupported_statistic", "73%", 18},
                {"absolute_claim", "always", 31},
                {"vague_quantifier", "Many people", 56},
                {"hedging", "might", 68},
                {"vague_quantifier", "Experts say", 134},
                {"hedging", "perhaps", 152}};
    for (size_t i = 0; i < 7; i++) {
        ck_assert_str_eq(sc.markers[i].category, want[i].cat);
        ck_assert_uint_eq(sc.markers[i].start, want[i].start);
        ck_assert_int_eq(strncmp(txt + sc.markers[i].start, want[i].match,
                                 sc.markers[i].end - sc.markers[i].start),
                         0);
        ck_assert_uint_eq(sc.markers[i].end - sc.markers[i].start, strlen(want[i].match));
    }
    ck_assert_int_eq(sc.score, 12);
    ck_assert_int_eq(sc.max_severity, EDM_HIGH);
    ck_assert_str_eq(sc.markers[0].debt_type, "missing_citation");
    ck_assert_str_eq(sc.markers[2].debt_type, "unfalsifiable");
    edm_scan_free(&sc);
}
END_TEST

START_TEST(debt_markers_numbers_and_sources)
{
    edm_scan sc;
    ck_assert_int_eq(edm_scan_text("3 out of 4 doctors agree. 1 in 5 people do.", &sc), 0);
    ck_assert_uint_eq(sc.n, 2);
    ck_assert_str_eq(sc.markers[0].category, "unsupported_statistic");
    ck_assert_uint_eq(sc.markers[0].end, 10);
    ck_assert_uint_eq(sc.markers[1].start, 26);
    ck_assert_uint_eq(sc.markers[1].end, 32);
    edm_scan_free(&sc);
    ck_assert_int_eq(edm_scan_text("Research shows a 12% gain (Lee et al., 2021). See "
                                   "https://example.org: it always works.",
                                   &sc),
                     0);
    ck_assert_uint_eq(sc.n, 0);
    edm_scan_free(&sc);
    ck_assert_int_eq(edm_scan_text("The sky is blue.", &sc), 0);
    ck_assert_uint_eq(sc.n, 0);
    ck_assert_int_eq(sc.score, 0);
    edm_scan_free(&sc);
    edm_severity s;
    ck_assert_int_eq(edm_severity_parse("critical", &s), 0);
    ck_assert_int_eq(s, EDM_CRITICAL);
    ck_assert_int_eq(edm_severity_parse("urgent", &s), -1);
}
END_TEST

/* ------------------------------------------------------------ misinfo */

START_TEST(misinfo_patterns_match_with_spans)
{
    misinfo_catalogue c = {0};
    char err[256];
    ck_assert_int_eq(misinfo_add(&c, "brain",
                                 "(we|humans|people)( only)? use (only )?(10|ten) ?(%|percent) of "
                                 "(our|their) brains?",
                                 "10% of the brain", "imaging", "science", 0.95, err, sizeof err),
                     0);
    ck_assert_int_eq(misinfo_add(&c, "wall",
                                 "great wall( of china)? (is|can be) visible from space", "wall",
                                 "astronauts", NULL, 0.6, err, sizeof err),
                     0);
    ck_assert_int_eq(misinfo_add(&c, "bad", "(unclosed", "x", "y", NULL, 0.5, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "bad"));
    ck_assert_int_eq(misinfo_add(&c, "conf", "x", "x", "y", NULL, 1.5, err, sizeof err), -1);
    const char *t = "Did you know WE ONLY USE 10% OF OUR BRAINS? Also the Great Wall of China is "
                    "visible from space, and people use ten percent of their brain.";
    misinfo_finding *f;
    long n = misinfo_match(&c, t, &f);
    ck_assert_int_eq(n, 3);
    ck_assert_uint_eq(f[0].pattern, 0);
    ck_assert_uint_eq(f[0].start, 13);
    ck_assert_uint_eq(f[0].end, 42);
    ck_assert_uint_eq(f[1].pattern, 0);
    ck_assert_int_eq(strncmp(t + f[1].start, "people use ten percent of their brain", 37), 0);
    ck_assert_uint_eq(f[2].pattern, 1);
    ck_assert_int_eq(
        strncmp(t + f[2].start, "Great Wall of China is visible from space", f[2].end - f[2].start),
        0);
    free(f);
    ck_assert_str_eq(misinfo_band(0.95), "high");
    ck_assert_str_eq(misinfo_band(0.6), "medium");
    ck_assert_str_eq(misinfo_band(0.3), "low");
    misinfo_free(&c);
}
END_TEST

/* --------------------------------------------------------- resolution */

START_TEST(resolution_statistics)
{
    int64_t now = 10 * DAY;
    edm_debt_row r[] = {
        {4 * DAY + 1000, 1, 5 * DAY + 1000, "verified", EDM_HIGH}, /* 24 h */
        {5 * DAY + 1000, 1, 9 * DAY + 1000, "corrected", EDM_LOW}, /* 96 h */
        {6 * DAY + 1000, 0, 0, NULL, EDM_MEDIUM},                  /* open */
        {1 * DAY + 1000, 1, 6 * DAY + 1000, "verified", EDM_HIGH}, /* before; 120 h */
        {2 * DAY, 0, 0, NULL, EDM_LOW},                            /* before, open */
    };
    edm_resolution_stats s;
    ck_assert_int_eq(edm_resolution_compute(r, 5, now, 7, &s), 0);
    ck_assert_uint_eq(s.created, 3);
    ck_assert_uint_eq(s.created_resolved, 2);
    ck_assert_double_eq_tol(s.resolution_rate, 2.0 / 3.0, EPS);
    ck_assert_uint_eq(s.resolutions, 3);
    ck_assert_double_eq_tol(s.mean_hours, 80.0, EPS);
    ck_assert_double_eq_tol(s.median_hours, 96.0, EPS);
    ck_assert_str_eq(s.most_common_method, "verified");
    ck_assert_uint_eq(s.most_common_count, 2);
    ck_assert_uint_eq(s.sev_created[EDM_HIGH], 1);
    ck_assert_uint_eq(s.sev_resolved[EDM_LOW], 1);
    ck_assert_uint_eq(s.sev_created[EDM_MEDIUM], 1);
    ck_assert_uint_eq(s.timeline_created[1], 1); /* day 4..5 */
    ck_assert_uint_eq(s.timeline_created[3], 1); /* day 6..7 */
    ck_assert_uint_eq(s.timeline_resolved[2], 1);
    ck_assert_uint_eq(s.timeline_resolved[6], 1);
    edm_resolution_free(&s);
    ck_assert_int_eq(edm_resolution_compute(NULL, 0, now, 30, &s), 0);
    ck_assert_double_eq_tol(s.resolution_rate, 0.0, EPS);
    ck_assert_str_eq(s.most_common_method, "");
    edm_resolution_free(&s);
}
END_TEST

/* ------------------------------------------------------------ textclf */

static const textclf_sample train_set[] = {
    {"what a great and wonderful day", "pos"},  {"I love this, excellent work", "pos"},
    {"happy with the excellent result", "pos"}, {"great service, love it", "pos"},
    {"wonderful, happy, great", "pos"},         {"an excellent and lovely film", "pos"},
    {"this is terrible and awful", "neg"},      {"I hate it, horrible", "neg"},
    {"sad and awful experience", "neg"},        {"terrible service, hate it", "neg"},
    {"horrible, sad, terrible", "neg"},         {"an awful and dreadful film", "neg"},
};

static textclf *trained(void)
{
    textclf *m = textclf_new(12, 2);
    ck_assert_ptr_nonnull(m);
    textclf_epoch last;
    ck_assert_int_eq(textclf_train(m, train_set, 12, 30, 0.5, 1e-6, 42, NULL, NULL, &last), 30);
    ck_assert_double_lt(last.loss, 0.2);
    ck_assert_double_eq_tol(last.accuracy, 1.0, EPS);
    return m;
}

START_TEST(classifier_learns_and_evaluates)
{
    textclf *m = trained();
    ck_assert_int_eq(m->nlabels, 2);
    ck_assert_str_eq(m->labels[0], "pos");
    ck_assert_int_eq(textclf_predict(m, "a great and excellent day", NULL), 0);
    ck_assert_int_eq(textclf_predict(m, "an awful, horrible day", NULL), 1);
    textclf_sample test[] = {{"great, I love it", "pos"},
                             {"excellent and wonderful", "pos"},
                             {"terrible and sad", "neg"},
                             {"love this great excellent thing", "neg"}, /* mislabelled */
                             {"whatever", "meh"}};                       /* unknown label */
    textclf_eval ev;
    ck_assert_int_eq(textclf_evaluate(m, test, 4, &ev), 0);
    ck_assert_uint_eq(ev.n, 4);
    ck_assert_uint_eq(ev.correct, 3);
    ck_assert_double_eq_tol(ev.accuracy, 0.75, EPS);
    ck_assert_double_eq_tol(ev.precision[0], 2.0 / 3.0, EPS);
    ck_assert_double_eq_tol(ev.recall[0], 1.0, EPS);
    ck_assert_double_eq_tol(ev.f1[0], 0.8, EPS);
    ck_assert_double_eq_tol(ev.precision[1], 1.0, EPS);
    ck_assert_double_eq_tol(ev.recall[1], 0.5, EPS);
    ck_assert_double_eq_tol(ev.macro_precision, 5.0 / 6.0, EPS);
    ck_assert_double_eq_tol(ev.macro_recall, 0.75, EPS);
    ck_assert_double_eq_tol(ev.macro_f1, (0.8 + 2.0 / 3.0) / 2, EPS);
    ck_assert_uint_eq(ev.confusion[1 * 2 + 0], 1);
    textclf_eval_free(&ev);
    ck_assert_int_eq(textclf_evaluate(m, test, 5, &ev), 0);
    ck_assert_uint_eq(ev.unknown, 1);
    ck_assert_double_eq_tol(ev.accuracy, 0.6, EPS);
    textclf_eval_free(&ev);
    textclf_free(m);
}
END_TEST

START_TEST(classifier_is_deterministic_and_round_trips)
{
    textclf *a = trained(), *b = trained();
    cJSON *ja = textclf_to_json(a, NULL), *jb = textclf_to_json(b, NULL);
    char *sa = cJSON_PrintUnformatted(ja), *sb = cJSON_PrintUnformatted(jb);
    ck_assert_str_eq(sa, sb);
    free(sa);
    free(sb);
    cJSON_Delete(ja);
    cJSON_Delete(jb);
    char dir[] = "/tmp/aipal-textclf-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256], err[256];
    snprintf(path, sizeof path, "%s/sub/model.json", dir);
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "model_name", "demo");
    ck_assert_int_eq(textclf_save(a, meta, path, err, sizeof err), 0);
    cJSON_Delete(meta);
    cJSON *meta2 = NULL;
    textclf *c = textclf_load(path, &meta2, err, sizeof err);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(cJSON_GetObjectItem(meta2, "model_name")->valuestring, "demo");
    const char *probes[] = {"great day", "awful day", "a film", "nothing known here"};
    for (int i = 0; i < 4; i++) {
        double pa[2], pc[2];
        ck_assert_int_eq(textclf_predict(a, probes[i], pa), textclf_predict(c, probes[i], pc));
        ck_assert_double_eq_tol(pa[0], pc[0], 1e-6);
    }
    /* Fine-tuning from the saved model keeps its labels and adds new ones. */
    textclf_sample more[] = {{"so so, fine", "neutral"}, {"it is fine", "neutral"}};
    ck_assert_int_eq(textclf_train(c, more, 2, 5, 0.5, 0, 7, NULL, NULL, NULL), 5);
    ck_assert_int_eq(c->nlabels, 3);
    ck_assert_str_eq(c->labels[2], "neutral");
    ck_assert_ptr_null(textclf_load("/nonexistent/model.json", NULL, err, sizeof err));
    cJSON *bad = cJSON_Parse("{\"format\":\"other\"}");
    ck_assert_ptr_null(textclf_from_json(bad, err, sizeof err));
    cJSON_Delete(bad);
    unlink(path);
    char sub[256];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    rmdir(sub);
    rmdir(dir);
    cJSON_Delete(meta2);
    textclf_free(a);
    textclf_free(b);
    textclf_free(c);
}
END_TEST

/* --------------------------------------------------------------- cron */

START_TEST(cron_next_firings)
{
    cron_expr e;
    char err[160];
    const int64_t t0 = 1700000000000LL; /* 2023-11-14T22:13:20Z, a Tuesday */
    ck_assert_int_eq(cron_parse("*/15 * * * *", &e, err, sizeof err), 0);
    ck_assert_int_eq(cron_next(&e, t0), 1700000100000LL);
    ck_assert_int_eq(cron_next(&e, 1700000100000LL), 1700000100000LL + 900000);
    ck_assert_int_eq(cron_parse("0 3 * * 1-5", &e, err, sizeof err), 0);
    ck_assert_int_eq(cron_next(&e, t0), 1700017200000LL);
    ck_assert_int_eq(cron_parse("5 4 * * sun", &e, err, sizeof err), 0);
    ck_assert_int_eq(cron_next(&e, t0), 1700366700000LL);
    ck_assert_int_eq(cron_parse("@monthly", &e, err, sizeof err), 0);
    ck_assert_int_eq(cron_next(&e, t0), 1701388800000LL);
    ck_assert_int_eq(cron_parse("@yearly", &e, err, sizeof err), 0);
    ck_assert_int_eq(cron_next(&e, t0), 1704067200000LL);
    ck_assert_int_eq(cron_parse("@every 90s", &e, err, sizeof err), 0);
    ck_assert_int_eq(cron_next(&e, t0), 1700000010000LL);
    ck_assert_int_eq(cron_parse("@every 1h30m", &e, err, sizeof err), 0);
    ck_assert_int_eq(e.every_ms, 5400000);
    ck_assert_int_eq(cron_parse("0 0 31 2 *", &e, err, sizeof err), 0);
    ck_assert_int_eq(cron_next(&e, t0), -1);
    /* Both day fields restricted: either matches (the 15th, and Wednesdays). */
    ck_assert_int_eq(cron_parse("0 0 1,15 * wed", &e, err, sizeof err), 0);
    int64_t n1 = cron_next(&e, t0), n2 = cron_next(&e, n1);
    ck_assert_int_eq(n1, 1700006400000LL); /* Wed 15 Nov */
    ck_assert_int_eq(n2, n1 + 7 * DAY);    /* Wed 22 Nov */
    const char *bad[] = {"61 * * * *", "* * *",       "* * * * * *", "@every 0s", "@every 10x",
                         "@whenever",  "*/0 * * * *", "5-1 * * * *", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(cron_parse(bad[i], &e, err, sizeof err) == -1, "accepted \"%s\"", bad[i]);
}
END_TEST

START_TEST(schedule_notations)
{
    schedule s;
    char err[256];
    ck_assert_int_eq(schedule_parse("# comment\n\nhourly-cache @hourly cleanup_cache "
                                    "{\"max_age_hours\": 2}\n"
                                    "tick @every 2s echo\n"
                                    "nightly 30 2 * * * archive_audit_logs {}\n",
                                    &s, err, sizeof err),
                     0);
    ck_assert_uint_eq(s.n, 3);
    ck_assert_str_eq(s.entries[0].name, "hourly-cache");
    ck_assert_str_eq(s.entries[0].type, "cleanup_cache");
    ck_assert_str_eq(s.entries[0].params_json, "{\"max_age_hours\":2}");
    ck_assert_str_eq(s.entries[1].expr_text, "@every 2s");
    ck_assert_str_eq(s.entries[1].params_json, "{}");
    ck_assert_str_eq(s.entries[2].expr_text, "30 2 * * *");
    schedule_free(&s);
    ck_assert_int_eq(schedule_parse("[{\"name\":\"a\",\"schedule\":\"@daily\",\"type\":\"echo\","
                                    "\"params\":{\"message\":\"hi\"},\"priority\":7,"
                                    "\"queue\":\"default\"}]",
                                    &s, err, sizeof err),
                     0);
    ck_assert_uint_eq(s.n, 1);
    ck_assert_int_eq(s.entries[0].priority, 7);
    ck_assert_str_eq(s.entries[0].queue, "default");
    schedule_free(&s);
    ck_assert_int_eq(schedule_parse("a @hourly echo\na @daily echo\n", &s, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "name"));
    ck_assert_int_eq(schedule_parse("a @hourly echo {oops\n", &s, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "line 1: params"));
    ck_assert_int_eq(schedule_parse("a 99 * * * * echo\n", &s, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "schedule"));
    ck_assert_int_eq(schedule_parse("[{\"name\":\"a\",\"schedule\":\"@daily\",\"type\":\"echo\","
                                    "\"priority\":11}]",
                                    &s, err, sizeof err),
                     -1);
    ck_assert_ptr_nonnull(strstr(err, "priority"));
    ck_assert_int_eq(schedule_parse(schedule_builtin(), &s, err, sizeof err), 0);
    ck_assert_uint_eq(s.n, 5);
    schedule_free(&s);
    ck_assert_int_eq(schedule_parse("", &s, err, sizeof err), 0);
    ck_assert_uint_eq(s.n, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("worker_compute");
    TCase *tc = tcase_create("compute");
    tcase_add_test(tc, summary_counts_moments_and_latest);
    tcase_add_test(tc, linear_fit_and_percentiles);
    tcase_add_test(tc, trend_slope_zscore_and_alert_severity);
    tcase_add_test(tc, plan_with_hours_shares_minutes_by_weight);
    tcase_add_test(tc, plan_without_hours_estimates_and_adds_review);
    tcase_add_test(tc, plan_small_goal_gets_prepare_and_review);
    tcase_add_test(tc, plan_merges_lists_and_keeps_verb_pairs);
    tcase_add_test(tc, plan_bounds_hold_for_any_text);
    tcase_add_test(tc, progress_velocity_projection);
    tcase_add_test(tc, debt_markers_with_spans);
    tcase_add_test(tc, debt_markers_numbers_and_sources);
    tcase_add_test(tc, misinfo_patterns_match_with_spans);
    tcase_add_test(tc, resolution_statistics);
    tcase_add_test(tc, classifier_learns_and_evaluates);
    tcase_add_test(tc, classifier_is_deterministic_and_round_trips);
    tcase_add_test(tc, cron_next_firings);
    tcase_add_test(tc, schedule_notations);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
