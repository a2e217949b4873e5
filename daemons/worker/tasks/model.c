/* Model tasks: finetune_model, evaluate_model and benchmark_model. The
 * classifier is compute/textclf.{h,c} (its artifact format is documented
 * there); an operator may configure an external trainer or benchmark command
 * instead (command.h). Artifacts live under --artifacts-dir:
 *   users/<user>/<model>/model.json             the user's latest fine-tuned model
 *   users/<user>/<model>/versions/<task>.json   every model a task saved
 *   base/<model>/model.json                     operator-provided starting points
 * with user and model names percent-encoded outside [A-Za-z0-9_-]. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "command.h"
#include "handlers.h"
#include "stats.h"
#include "task.h"
#include "textclf.h"

#define PATH_SIZE 4096

/* Percent-encodes a path component: only [A-Za-z0-9_-] stay as they are, so
 * "." and ".." and "/" can never appear. */
static void encode_component(const char *s, char *out, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s && o + 4 < len; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '_' || c == '-') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

static void user_model_dir(const task_env *env, const char *user, const char *model, char *out,
                           size_t len)
{
    char u[512], m[512];
    encode_component(user, u, sizeof u);
    encode_component(model, m, sizeof m);
    snprintf(out, len, "%s/users/%s/%s", env->cfg->artifacts_dir, u, m);
}

static void base_model_path(const task_env *env, const char *model, char *out, size_t len)
{
    char m[512];
    encode_component(model, m, sizeof m);
    snprintf(out, len, "%s/base/%s/model.json", env->cfg->artifacts_dir, m);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Labelled samples of a user's split, in id order. */
static PGresult *load_samples(task_ctx *ctx, const char *user, const char *split, long limit)
{
    char lim[32];
    snprintf(lim, sizeof lim, "%ld", limit);
    const char *p[] = {user, split, lim};
    return task_sql(ctx,
                    "SELECT text, label FROM ml_samples WHERE user_id = $1 AND split = $2"
                    " ORDER BY sample_id LIMIT $3::bigint",
                    3, p);
}

static textclf_sample *samples_of(PGresult *r)
{
    int n = PQntuples(r);
    textclf_sample *s = calloc((size_t)(n ? n : 1), sizeof *s);
    for (int i = 0; s && i < n; i++) {
        s[i].text = PQgetvalue(r, i, 0);
        s[i].label = PQgetvalue(r, i, 1);
    }
    return s;
}

/* ------------------------------------------------------------ fine-tune */

typedef struct train_state {
    task_ctx *ctx;
    cJSON *history;
} train_state;

static int on_epoch(const textclf_epoch *e, void *ud)
{
    train_state *ts = ud;
    cJSON *h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "epoch", e->epoch);
    cJSON_AddNumberToObject(h, "loss", e->loss);
    cJSON_AddNumberToObject(h, "accuracy", e->accuracy);
    cJSON_AddItemToArray(ts->history, h);
    task_progress(ts->ctx, 10 + 80 * e->epoch / e->epochs, "epoch %d/%d: loss %.4f, accuracy %.3f",
                  e->epoch, e->epochs, e->loss, e->accuracy);
    return task_should_stop(ts->ctx);
}

static int record_model(task_ctx *ctx, const char *model, const char *user, const char *path,
                        const char *trainer, const cJSON *metrics)
{
    char *m = metrics ? cJSON_PrintUnformatted(metrics) : NULL;
    const char *p[] = {model, user, aipalq_job_id(ctx->job), path, trainer, m};
    int rc =
        task_exec(ctx,
                  "INSERT INTO ml_models (model_name, user_id, task_id, path, trainer, metrics)"
                  " VALUES ($1, $2, $3::uuid, $4, $5, $6::jsonb) ON CONFLICT (task_id) DO"
                  " UPDATE SET path = EXCLUDED.path, metrics = EXCLUDED.metrics,"
                  " created_at = now()",
                  6, p);
    free(m);
    return rc;
}

typedef struct trainer_state {
    task_ctx *ctx;
    cJSON *result; /* from a RESULT line */
    int lines;
} trainer_state;

static void trainer_line(const char *line, void *ud)
{
    trainer_state *ts = ud;
    ts->lines++;
    if (strncmp(line, "PROGRESS ", 9) == 0) {
        char *end;
        long pct = strtol(line + 9, &end, 10);
        while (*end == ' ')
            end++;
        task_progress(ts->ctx,
                      (int)(pct < 0     ? 0
                            : pct > 100 ? 100
                                        : pct),
                      "%s", *end ? end : "training");
    } else if (strncmp(line, "RESULT ", 7) == 0) {
        cJSON *r = cJSON_Parse(line + 7);
        if (cJSON_IsObject(r)) {
            cJSON_Delete(ts->result);
            ts->result = r;
        } else {
            cJSON_Delete(r);
        }
    }
}

static int trainer_should_stop(void *ud)
{
    return task_should_stop(((trainer_state *)ud)->ctx);
}

/* finetune_model with --trainer-command: the protocol is in the README. */
static void finetune_external(task_ctx *ctx, const char *user, const char *model, long samples,
                              double lr)
{
    const worker_config *cfg = ctx->env->cfg;
    char dir[PATH_SIZE], out_path[PATH_SIZE + 32];
    user_model_dir(ctx->env, user, model, dir, sizeof dir);
    snprintf(out_path, sizeof out_path, "%s/model.json", dir);
    if (textclf_mkdirs(dir) != 0) {
        task_fail(ctx, NULL, 1, "cannot create %s: %s", dir, strerror(errno));
        return;
    }
    char *params = cJSON_PrintUnformatted(ctx->params);
    cJSON *in = cJSON_Duplicate(ctx->params, 1);
    cJSON_AddStringToObject(in, "task_id", aipalq_job_id(ctx->job));
    cJSON_AddStringToObject(in, "output_path", out_path);
    cJSON_AddStringToObject(in, "artifacts_dir", cfg->artifacts_dir);
    char *stdin_text = cJSON_PrintUnformatted(in);
    cJSON_Delete(in);
    size_t sl = stdin_text ? strlen(stdin_text) : 0;
    char *stdin_line = malloc(sl + 2);
    if (stdin_line && stdin_text) {
        memcpy(stdin_line, stdin_text, sl);
        stdin_line[sl] = '\n';
        stdin_line[sl + 1] = '\0';
    }
    char e_task[128], e_model[256], e_user[256], e_dir[PATH_SIZE + 32], e_out[PATH_SIZE + 64],
        e_n[64], e_lr[64];
    char *e_params = malloc((params ? strlen(params) : 0) + 32);
    char *e_db = malloc((cfg->database_url ? strlen(cfg->database_url) : 0) + 32);
    snprintf(e_task, sizeof e_task, "AIPAL_TASK_ID=%s", aipalq_job_id(ctx->job));
    snprintf(e_model, sizeof e_model, "AIPAL_MODEL_NAME=%s", model);
    snprintf(e_user, sizeof e_user, "AIPAL_USER_ID=%s", user);
    snprintf(e_dir, sizeof e_dir, "AIPAL_ARTIFACTS_DIR=%s", cfg->artifacts_dir);
    snprintf(e_out, sizeof e_out, "AIPAL_OUTPUT_PATH=%s", out_path);
    snprintf(e_n, sizeof e_n, "AIPAL_TRAINING_SAMPLES=%ld", samples);
    snprintf(e_lr, sizeof e_lr, "AIPAL_LEARNING_RATE=%.17g", lr);
    if (e_params)
        sprintf(e_params, "AIPAL_PARAMS=%s", params ? params : "{}");
    if (e_db)
        sprintf(e_db, "AIPAL_DATABASE_URL=%s", cfg->database_url ? cfg->database_url : "");
    const char *env[] = {e_task,
                         e_model,
                         e_user,
                         e_dir,
                         e_out,
                         e_n,
                         e_lr,
                         e_params ? e_params : "AIPAL_PARAMS={}",
                         cfg->database_url && e_db ? e_db : NULL,
                         NULL};
    int64_t timeout = cfg->trainer_timeout_ms    ? cfg->trainer_timeout_ms
                      : ctx->type->soft_limit_ms ? ctx->type->soft_limit_ms
                                                 : 3300000;
    trainer_state ts = {ctx, NULL, 0};
    command_spec spec = {cfg->trainer_command, env, stdin_line, timeout, trainer_line,
                         trainer_should_stop,  &ts};
    command_result res;
    task_progress(ctx, 1, "starting the external trainer");
    int rc = command_run(&spec, &res);
    free(params);
    free(stdin_text);
    free(stdin_line);
    free(e_params);
    free(e_db);
    if (rc != 0) {
        task_fail(ctx, NULL, 1, "the external trainer could not start: %s", res.error);
    } else if (res.stopped) {
        task_stopped(ctx, "external trainer stopped");
    } else if (res.timed_out) {
        task_fail(ctx, NULL, 0, "the external trainer exceeded its time limit of %lld s",
                  (long long)(timeout / 1000));
    } else if (res.exited && res.exit_code == 0) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "model_name", model);
        cJSON_AddStringToObject(r, "user_id", user);
        cJSON_AddStringToObject(r, "trainer", "external");
        cJSON_AddNumberToObject(r, "exit_code", 0);
        cJSON_AddNumberToObject(r, "trainer_duration_ms", (double)res.duration_ms);
        if (file_exists(out_path))
            cJSON_AddStringToObject(r, "artifact", out_path);
        else
            cJSON_AddNullToObject(r, "artifact");
        if (ts.result)
            cJSON_AddItemToObject(r, "metrics", cJSON_Duplicate(ts.result, 1));
        else
            cJSON_AddNullToObject(r, "metrics");
        if (record_model(ctx, model, user, out_path, "external", ts.result) != 0) {
            cJSON_Delete(r);
        } else {
            cJSON *counts = cJSON_CreateObject();
            cJSON_AddNumberToObject(counts, "output_lines", ts.lines);
            task_succeed(ctx, r, counts);
        }
    } else if (res.exited) {
        /* 75 (EX_TEMPFAIL) asks for a retry; any other status is final. */
        task_fail(ctx, NULL, res.exit_code == 75, "the external trainer exited with status %d: %s",
                  res.exit_code, res.tail);
    } else {
        task_fail(ctx, NULL, 1, "the external trainer was killed by signal %d: %s", res.signal,
                  res.tail);
    }
    cJSON_Delete(ts.result);
}

void handle_finetune_model(aipalq_job *job, void *userdata)
{
    task_ctx ctx;
    PGresult *rows = NULL;
    textclf_sample *samples = NULL;
    textclf *m = NULL;
    cJSON *history = NULL, *base_meta = NULL;
    if (task_begin(&ctx, job, userdata) != 0)
        goto out;
    const char *user = task_str(&ctx, "user_id", "");
    const char *model = task_str(&ctx, "model_name", "");
    long nsamples = (long)task_num(&ctx, "training_samples", 100);
    double lr = task_num(&ctx, "learning_rate", 1e-4);
    if (ctx.env->cfg->trainer_command) {
        finetune_external(&ctx, user, model, nsamples, lr);
        goto out;
    }
    rows = load_samples(&ctx, user, "train", nsamples);
    if (!rows)
        goto out;
    int n = PQntuples(rows);
    if (n == 0) {
        task_fail(&ctx, "user_id", 0, "user %s has no labelled training samples", user);
        goto out;
    }
    samples = samples_of(rows);
    char dir[PATH_SIZE], path[PATH_SIZE + 32], base[PATH_SIZE + 32], why[512];
    user_model_dir(ctx.env, user, model, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.json", dir);
    base_model_path(ctx.env, model, base, sizeof base);
    const char *from = "scratch";
    if (file_exists(path)) {
        m = textclf_load(path, &base_meta, why, sizeof why);
        from = "user";
    } else if (file_exists(base)) {
        m = textclf_load(base, &base_meta, why, sizeof why);
        from = "base";
    } else {
        m = textclf_new(TEXTCLF_DEFAULT_BITS, 2);
        snprintf(why, sizeof why, "out of memory");
    }
    if (!m) {
        task_fail(&ctx, "model_name", 0, "cannot load the saved model: %s", why);
        goto out;
    }
    /* Two labels at least (counting those the model already knows). */
    int labels = m->nlabels;
    for (int i = 0; i < n; i++)
        if (textclf_label(m, samples[i].label, 0) < 0) {
            labels++;
            if (labels > TEXTCLF_MAX_LABELS) {
                task_fail(&ctx, "user_id", 0, "the samples have more than %d labels",
                          TEXTCLF_MAX_LABELS);
                goto out;
            }
            if (textclf_label(m, samples[i].label, 1) < 0) {
                task_fail(&ctx, NULL, 1, "out of memory");
                goto out;
            }
        }
    if (m->nlabels < 2) {
        task_fail(&ctx, "user_id", 0,
                  "the training samples of user %s have a single label; a classifier needs two",
                  user);
        goto out;
    }
    int epochs = ctx.env->cfg->train_epochs > 0 ? ctx.env->cfg->train_epochs : 10;
    const double l2 = 1e-6;
    const uint64_t seed = 42;
    history = cJSON_CreateArray();
    train_state ts = {&ctx, history};
    textclf_epoch last = {0};
    task_progress(&ctx, 5, "training on %d samples", n);
    int ran = textclf_train(m, samples, (size_t)n, epochs, lr, l2, seed, on_epoch, &ts, &last);
    if (ran < 0) {
        task_fail(&ctx, NULL, 1, "out of memory while training");
        goto out;
    }
    if (ran < epochs) {
        char where[64];
        snprintf(where, sizeof where, "after epoch %d of %d; nothing saved", ran, epochs);
        task_stopped(&ctx, where);
        goto out;
    }
    textclf_eval ev;
    if (textclf_evaluate(m, samples, (size_t)n, &ev) != 0) {
        task_fail(&ctx, NULL, 1, "out of memory");
        goto out;
    }
    cJSON *metrics = cJSON_CreateObject();
    cJSON_AddNumberToObject(metrics, "train_accuracy", ev.accuracy);
    cJSON_AddNumberToObject(metrics, "train_macro_f1", ev.macro_f1);
    cJSON_AddNumberToObject(metrics, "final_loss", last.loss);
    textclf_eval_free(&ev);
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "model_name", model);
    cJSON_AddStringToObject(meta, "user_id", user);
    cJSON_AddStringToObject(meta, "task_id", aipalq_job_id(job));
    task_add_time(meta, "trained_at", task_wall_ms());
    cJSON_AddNumberToObject(meta, "samples", n);
    cJSON_AddNumberToObject(meta, "epochs", epochs);
    cJSON_AddNumberToObject(meta, "learning_rate", lr);
    cJSON_AddNumberToObject(meta, "l2", l2);
    cJSON_AddNumberToObject(meta, "seed", (double)seed);
    cJSON_AddStringToObject(meta, "started_from", from);
    cJSON_AddItemToObject(meta, "metrics", cJSON_Duplicate(metrics, 1));
    task_progress(&ctx, 92, "saving the model");
    char version[PATH_SIZE + 96];
    snprintf(version, sizeof version, "%s/versions/%s.json", dir, aipalq_job_id(job));
    if (textclf_save(m, meta, version, why, sizeof why) != 0 ||
        textclf_save(m, meta, path, why, sizeof why) != 0) {
        cJSON_Delete(meta);
        cJSON_Delete(metrics);
        task_fail(&ctx, NULL, 1, "%s", why);
        goto out;
    }
    cJSON_Delete(meta);
    if (record_model(&ctx, model, user, path, "builtin", metrics) != 0) {
        cJSON_Delete(metrics);
        goto out;
    }
    size_t nonzero = 0;
    for (int l = 0; l < m->nlabels; l++)
        for (size_t f = 0; f < m->dim; f++)
            nonzero += m->w[(size_t)l * m->dim + f] != 0;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "model_name", model);
    cJSON_AddStringToObject(r, "user_id", user);
    cJSON_AddStringToObject(r, "trainer", "builtin");
    cJSON_AddStringToObject(r, "model", "softmax regression over hashed unigrams and bigrams");
    cJSON_AddStringToObject(r, "started_from", from);
    cJSON_AddStringToObject(r, "artifact", path);
    cJSON_AddStringToObject(r, "artifact_version", version);
    cJSON *lab = cJSON_AddArrayToObject(r, "labels");
    for (int l = 0; l < m->nlabels; l++)
        cJSON_AddItemToArray(lab, cJSON_CreateString(m->labels[l]));
    cJSON_AddNumberToObject(r, "samples", n);
    cJSON_AddNumberToObject(r, "epochs", epochs);
    cJSON_AddNumberToObject(r, "learning_rate", lr);
    cJSON_AddItemToObject(r, "metrics", metrics);
    cJSON_AddItemToObject(r, "history", history);
    history = NULL;
    cJSON *counts = cJSON_CreateObject();
    cJSON_AddNumberToObject(counts, "samples", n);
    cJSON_AddNumberToObject(counts, "epochs", epochs);
    cJSON_AddNumberToObject(counts, "labels", m->nlabels);
    cJSON_AddNumberToObject(counts, "nonzero_weights", (double)nonzero);
    task_succeed(&ctx, r, counts);
out:
    cJSON_Delete(history);
    cJSON_Delete(base_meta);
    textclf_free(m);
    free(samples);
    PQclear(rows);
    task_end(&ctx);
}

/* ------------------------------------------------------------ evaluate */

/* The user's model, else the base model of that name. */
static textclf *load_model_for(task_ctx *ctx, const char *user, const char *model, char *path,
                               size_t len)
{
    char dir[PATH_SIZE], why[512];
    user_model_dir(ctx->env, user, model, dir, sizeof dir);
    snprintf(path, len, "%s/model.json", dir);
    if (!file_exists(path))
        base_model_path(ctx->env, model, path, len);
    if (!file_exists(path)) {
        task_fail(ctx, "model_name", 0, "no saved model %s for user %s (train it first)", model,
                  user);
        return NULL;
    }
    textclf *m = textclf_load(path, NULL, why, sizeof why);
    if (!m)
        task_fail(ctx, "model_name", 0, "cannot load the saved model: %s", why);
    return m;
}

void handle_evaluate_model(aipalq_job *job, void *userdata)
{
    task_ctx ctx;
    PGresult *rows = NULL;
    textclf_sample *samples = NULL;
    textclf *m = NULL;
    textclf_eval ev = {0};
    if (task_begin(&ctx, job, userdata) != 0)
        goto out;
    const char *user = task_str(&ctx, "user_id", "");
    const char *model = task_str(&ctx, "model_name", "");
    long want = (long)task_num(&ctx, "test_samples", 50);
    char path[PATH_SIZE + 32];
    m = load_model_for(&ctx, user, model, path, sizeof path);
    if (!m)
        goto out;
    rows = load_samples(&ctx, user, "test", want);
    if (!rows)
        goto out;
    int n = PQntuples(rows);
    if (n == 0) {
        task_fail(&ctx, "user_id", 0, "user %s has no labelled test samples", user);
        goto out;
    }
    samples = samples_of(rows);
    task_progress(&ctx, 10, "evaluating on %d samples", n);
    if (textclf_evaluate(m, samples, (size_t)n, &ev) != 0) {
        task_fail(&ctx, NULL, 1, "out of memory");
        goto out;
    }
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "model_name", model);
    cJSON_AddStringToObject(r, "user_id", user);
    cJSON_AddStringToObject(r, "artifact", path);
    cJSON_AddNumberToObject(r, "samples", (double)ev.n);
    cJSON_AddNumberToObject(r, "accuracy", ev.accuracy);
    cJSON_AddNumberToObject(r, "precision", ev.macro_precision);
    cJSON_AddNumberToObject(r, "recall", ev.macro_recall);
    cJSON_AddNumberToObject(r, "f1", ev.macro_f1);
    cJSON_AddStringToObject(r, "averaging", "macro");
    cJSON_AddNumberToObject(r, "unknown_labels", (double)ev.unknown);
    cJSON *per = cJSON_AddObjectToObject(r, "per_label");
    cJSON *labels = cJSON_CreateArray();
    cJSON *matrix = cJSON_CreateArray();
    for (int l = 0; l < ev.nlabels; l++) {
        cJSON *o = cJSON_AddObjectToObject(per, m->labels[l]);
        cJSON_AddNumberToObject(o, "precision", ev.precision[l]);
        cJSON_AddNumberToObject(o, "recall", ev.recall[l]);
        cJSON_AddNumberToObject(o, "f1", ev.f1[l]);
        cJSON_AddNumberToObject(o, "support", (double)ev.support[l]);
        cJSON_AddItemToArray(labels, cJSON_CreateString(m->labels[l]));
        cJSON *row = cJSON_CreateArray();
        for (int p = 0; p < ev.nlabels; p++)
            cJSON_AddItemToArray(
                row, cJSON_CreateNumber(
                         (double)ev.confusion[(size_t)l * (size_t)ev.nlabels + (size_t)p]));
        cJSON_AddItemToArray(matrix, row);
    }
    cJSON *cm = cJSON_AddObjectToObject(r, "confusion_matrix");
    cJSON_AddItemToObject(cm, "labels", labels);
    cJSON_AddItemToObject(cm, "rows_true_columns_predicted", matrix);
    cJSON_AddNumberToObject(r, "inference_ms_total", ev.total_ms);
    cJSON_AddNumberToObject(r, "inference_ms_mean", ev.n ? ev.total_ms / (double)ev.n : 0);
    char *json = cJSON_PrintUnformatted(r);
    const char *p[] = {aipalq_job_id(job), model, user, json ? json : "{}"};
    int ok = task_exec(&ctx,
                       "INSERT INTO ml_evaluations (task_id, model_name, user_id, metrics)"
                       " VALUES ($1::uuid, $2, $3, $4::jsonb) ON CONFLICT (task_id) DO UPDATE"
                       " SET metrics = EXCLUDED.metrics, created_at = now()",
                       4, p) == 0;
    free(json);
    if (!ok) {
        cJSON_Delete(r);
        goto out;
    }
    cJSON *counts = cJSON_CreateObject();
    cJSON_AddNumberToObject(counts, "samples", (double)ev.n);
    cJSON_AddNumberToObject(counts, "correct", (double)ev.correct);
    cJSON_AddNumberToObject(counts, "labels", ev.nlabels);
    task_succeed(&ctx, r, counts);
out:
    textclf_eval_free(&ev);
    textclf_free(m);
    free(samples);
    PQclear(rows);
    task_end(&ctx);
}

/* ------------------------------------------------------------ benchmark */

typedef struct scenario_vocab {
    const char *name;
    int min_words, max_words;
    const char *const *words;
} scenario_vocab;

static const char *const w_reasoning[] = {
    "if",    "then",    "therefore", "because",  "assume", "premise",  "conclusion",    "all",
    "some",  "implies", "logic",     "suppose",  "proof",  "case",     "contradiction", "follows",
    "given", "hence",   "valid",     "argument", "infer",  "evidence", "cause",         "effect",
    "why",   NULL};
static const char *const w_coding[] = {
    "function", "return", "int",   "loop",   "variable", "compile", "error",  "pointer", "array",
    "struct",   "class",  "test",  "bug",    "refactor", "null",    "memory", "thread",  "lock",
    "query",    "index",  "parse", "string", "buffer",   "api",     "module", NULL};
static const char *const w_writing[] = {
    "story",     "character", "chapter", "draft",  "paragraph", "tone",     "voice",
    "narrative", "edit",      "style",   "reader", "scene",     "dialogue", "theme",
    "plot",      "sentence",  "verse",   "essay",  "title",     "revise",   "metaphor",
    "outline",   "hook",      "ending",  "arc",    NULL};
static const char *const w_analysis[] = {
    "data",       "trend",    "metric",  "mean",    "variance", "growth",   "quarter",
    "revenue",    "chart",    "compare", "segment", "cohort",   "forecast", "sample",
    "regression", "baseline", "outlier", "median",  "ratio",    "share",    "decline",
    "increase",   "signal",   "noise",   "report",  NULL};
static const char *const w_generic[] = {
    "the", "a",    "to", "and", "of",   "in",   "is", "it",  "you", "that", "for", "on",  "with",
    "as",  "this", "be", "at",  "have", "from", "or", "one", "by",  "what", "how", "can", NULL};

static const scenario_vocab vocabs[] = {
    {"reasoning", 20, 60, w_reasoning},
    {"coding", 30, 120, w_coding},
    {"writing", 40, 150, w_writing},
    {"analysis", 25, 80, w_analysis},
};

static uint64_t next_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ull;
}

/* A deterministic request text of the scenario (malloc'd). */
static char *scenario_text(const char *scenario, int i)
{
    const scenario_vocab *v = NULL;
    for (size_t k = 0; k < sizeof vocabs / sizeof vocabs[0]; k++)
        if (strcmp(vocabs[k].name, scenario) == 0)
            v = &vocabs[k];
    static const scenario_vocab generic = {"generic", 20, 80, w_generic};
    if (!v)
        v = &generic;
    uint64_t seed = 1469598103934665603ull;
    for (const char *p = scenario; *p; p++)
        seed = (seed ^ (unsigned char)*p) * 1099511628211ull;
    seed ^= (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull;
    if (!seed)
        seed = 1;
    int nw = 0;
    while (v->words[nw])
        nw++;
    int words =
        v->min_words + (int)(next_rand(&seed) % (uint64_t)(v->max_words - v->min_words + 1));
    char *out = malloc((size_t)words * 16 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (int w = 0; w < words; w++) {
        const char *word = v->words[next_rand(&seed) % (uint64_t)nw];
        if (w)
            out[o++] = ' ';
        size_t l = strlen(word);
        memcpy(out + o, word, l);
        o += l;
    }
    out[o] = '\0';
    return out;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Latency percentiles, and throughput as requests per second of time spent
 * serving them (one at a time). */
static void add_latency(cJSON *o, double *ms, int n)
{
    double busy_s = 0;
    for (int i = 0; i < n; i++)
        busy_s += ms[i] / 1000.0;
    stats_sort(ms, (size_t)n);
    stats_summary s;
    stats_summarize(ms, NULL, (size_t)n, &s);
    cJSON *l = cJSON_AddObjectToObject(o, "latency_ms");
    cJSON_AddNumberToObject(l, "mean", s.mean);
    cJSON_AddNumberToObject(l, "min", s.min);
    cJSON_AddNumberToObject(l, "p50", stats_percentile(ms, (size_t)n, 50));
    cJSON_AddNumberToObject(l, "p90", stats_percentile(ms, (size_t)n, 90));
    cJSON_AddNumberToObject(l, "p95", stats_percentile(ms, (size_t)n, 95));
    cJSON_AddNumberToObject(l, "p99", stats_percentile(ms, (size_t)n, 99));
    cJSON_AddNumberToObject(l, "max", s.max);
    cJSON_AddNumberToObject(o, "throughput_per_second", busy_s > 0 ? n / busy_s : 0);
}

static int bench_should_stop(void *ud)
{
    return task_should_stop(ud);
}

void handle_benchmark_model(aipalq_job *job, void *userdata)
{
    task_ctx ctx;
    PGresult *reg = NULL;
    textclf *m = NULL;
    double *ms = NULL;
    if (task_begin(&ctx, job, userdata) != 0)
        goto out;
    const char *model = task_str(&ctx, "model_name", "");
    const cJSON *scen = task_param(&ctx, "scenarios");
    int nscen = scen ? cJSON_GetArraySize(scen) : 0;
    const worker_config *cfg = ctx.env->cfg;
    const char *command = cfg->benchmark_command;
    int iters = cfg->benchmark_iterations > 0 ? cfg->benchmark_iterations : command ? 5 : 200;
    char path[PATH_SIZE + 32] = "";
    if (!command) {
        const char *p[] = {model};
        reg = task_sql(&ctx,
                       "SELECT path FROM ml_models WHERE model_name = $1 AND trainer = 'builtin'"
                       " ORDER BY created_at DESC, model_id DESC",
                       1, p);
        if (!reg)
            goto out;
        for (int i = 0; i < PQntuples(reg) && !path[0]; i++)
            if (file_exists(PQgetvalue(reg, i, 0)))
                snprintf(path, sizeof path, "%s", PQgetvalue(reg, i, 0));
        if (!path[0])
            base_model_path(ctx.env, model, path, sizeof path);
        char why[512];
        if (!file_exists(path)) {
            task_fail(&ctx, "model_name", 0, "no saved model %s (train it first)", model);
            goto out;
        }
        m = textclf_load(path, NULL, why, sizeof why);
        if (!m) {
            task_fail(&ctx, "model_name", 0, "cannot load the saved model: %s", why);
            goto out;
        }
    }
    ms = malloc(sizeof(double) * (size_t)iters);
    if (!ms) {
        task_fail(&ctx, NULL, 1, "out of memory");
        goto out;
    }
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "model_name", model);
    cJSON_AddStringToObject(r, "runner", command ? "command" : "builtin");
    if (command)
        cJSON_AddNullToObject(r, "artifact");
    else
        cJSON_AddStringToObject(r, "artifact", path);
    cJSON_AddNumberToObject(r, "iterations_per_scenario", iters);
    cJSON *results = cJSON_AddObjectToObject(r, "scenarios");
    long total_requests = 0, total_errors = 0;
    int si = 0;
    for (const cJSON *s = scen ? scen->child : NULL; s; s = s->next, si++) {
        const char *name = s->valuestring;
        cJSON *o = cJSON_AddObjectToObject(results, name);
        int64_t t0 = mono_ns();
        int done = 0, errors = 0;
        long words = 0;
        int label_counts[TEXTCLF_MAX_LABELS] = {0};
        for (int i = 0; i < iters; i++) {
            if (task_should_stop(&ctx)) {
                cJSON_Delete(r);
                char where[96];
                snprintf(where, sizeof where, "scenario %s, request %d of %d", name, i, iters);
                task_stopped(&ctx, where);
                goto out;
            }
            char *text = scenario_text(name, i);
            if (!text) {
                cJSON_Delete(r);
                task_fail(&ctx, NULL, 1, "out of memory");
                goto out;
            }
            double lat;
            if (command) {
                char e_s[128], e_m[256], e_i[64];
                snprintf(e_s, sizeof e_s, "AIPAL_SCENARIO=%s", name);
                snprintf(e_m, sizeof e_m, "AIPAL_MODEL_NAME=%s", model);
                snprintf(e_i, sizeof e_i, "AIPAL_ITERATION=%d", i);
                const char *env[] = {e_s, e_m, e_i, NULL};
                command_spec spec = {command,           env, text, ctx.type->soft_limit_ms, NULL,
                                     bench_should_stop, &ctx};
                command_result res;
                int64_t a = mono_ns();
                int rc = command_run(&spec, &res);
                lat = (double)(mono_ns() - a) / 1e6;
                errors += rc != 0 || !res.exited || res.exit_code != 0;
            } else {
                int64_t a = mono_ns();
                int label = textclf_predict(m, text, NULL);
                lat = (double)(mono_ns() - a) / 1e6;
                if (label >= 0)
                    label_counts[label]++;
                for (const char *p = text; *p; p++)
                    words += *p == ' ';
                words++;
            }
            free(text);
            ms[done++] = lat;
        }
        cJSON_AddNumberToObject(o, "wall_ms", (double)(mono_ns() - t0) / 1e6);
        cJSON_AddNumberToObject(o, "requests", done);
        cJSON_AddNumberToObject(o, "errors", errors);
        add_latency(o, ms, done);
        if (!command) {
            cJSON_AddNumberToObject(o, "mean_words", done ? (double)words / done : 0);
            cJSON *dist = cJSON_AddObjectToObject(o, "predicted_labels");
            for (int l = 0; l < m->nlabels; l++)
                cJSON_AddNumberToObject(dist, m->labels[l], label_counts[l]);
        }
        total_requests += done;
        total_errors += errors;
        task_progress(&ctx, 100 * (si + 1) / (nscen ? nscen : 1), "scenario %s done", name);
    }
    char *json = cJSON_PrintUnformatted(results);
    const char *p[] = {aipalq_job_id(job), model, json ? json : "{}"};
    int ok = task_exec(&ctx,
                       "INSERT INTO ml_benchmarks (task_id, model_name, results)"
                       " VALUES ($1::uuid, $2, $3::jsonb) ON CONFLICT (task_id) DO UPDATE"
                       " SET results = EXCLUDED.results, created_at = now()",
                       3, p) == 0;
    free(json);
    if (!ok) {
        cJSON_Delete(r);
        goto out;
    }
    cJSON *counts = cJSON_CreateObject();
    cJSON_AddNumberToObject(counts, "scenarios", nscen);
    cJSON_AddNumberToObject(counts, "requests", (double)total_requests);
    cJSON_AddNumberToObject(counts, "errors", (double)total_errors);
    task_succeed(&ctx, r, counts);
out:
    free(ms);
    textclf_free(m);
    PQclear(reg);
    task_end(&ctx);
}
