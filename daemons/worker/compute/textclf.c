/* The hashed-feature softmax classifier; see textclf.h. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "textclf.h"

textclf *textclf_new(int hash_bits, int ngram)
{
    if (hash_bits < 8 || hash_bits > 22 || ngram < 1 || ngram > 2)
        return NULL;
    textclf *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->hash_bits = hash_bits;
    m->ngram = ngram;
    m->dim = (size_t)1 << hash_bits;
    return m;
}

void textclf_free(textclf *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->nlabels; i++)
        free(m->labels[i]);
    free(m->w);
    free(m);
}

int textclf_label(textclf *m, const char *label, int add)
{
    for (int i = 0; i < m->nlabels; i++)
        if (strcmp(m->labels[i], label) == 0)
            return i;
    if (!add || m->nlabels == TEXTCLF_MAX_LABELS)
        return -1;
    float *w = realloc(m->w, (size_t)(m->nlabels + 1) * m->dim * sizeof *w);
    if (!w)
        return -1;
    m->w = w;
    char *copy = strdup(label);
    if (!copy)
        return -1;
    memset(m->w + (size_t)m->nlabels * m->dim, 0, m->dim * sizeof *w);
    m->labels[m->nlabels] = copy;
    m->b[m->nlabels] = 0;
    return m->nlabels++;
}

/* ------------------------------------------------------------ features */

#define FNV_OFFSET 2166136261u
#define FNV_PRIME  16777619u

static uint32_t fnv(uint32_t h, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= FNV_PRIME;
    }
    return h;
}

static bool tok_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

uint32_t *textclf_features(const textclf *m, const char *text, size_t *n)
{
    *n = 0;
    size_t len = strlen(text);
    size_t cap = 2 * (len / 2 + 1);
    uint32_t *f = malloc(cap * sizeof *f);
    unsigned char *low = malloc(len + 1);
    if (!f || !low) {
        free(f);
        free(low);
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        low[i] = (unsigned char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    uint32_t mask = (uint32_t)(m->dim - 1);
    size_t k = 0, prev_s = 0, prev_n = 0;
    bool have_prev = false;
    size_t i = 0;
    while (i < len) {
        while (i < len && !tok_char(low[i]))
            i++;
        size_t s = i;
        while (i < len && tok_char(low[i]))
            i++;
        if (i == s)
            break;
        f[k++] = fnv(FNV_OFFSET, low + s, i - s) & mask;
        if (m->ngram >= 2 && have_prev) {
            uint32_t h = fnv(FNV_OFFSET, low + prev_s, prev_n);
            h = fnv(h, (const unsigned char *)"\x01", 1);
            f[k++] = fnv(h, low + s, i - s) & mask;
        }
        prev_s = s;
        prev_n = i - s;
        have_prev = true;
    }
    free(low);
    if (k == 0) {
        free(f);
        return NULL;
    }
    qsort(f, k, sizeof *f, cmp_u32);
    size_t u = 1;
    for (size_t j = 1; j < k; j++)
        if (f[j] != f[u - 1])
            f[u++] = f[j];
    *n = u;
    return f;
}

/* Scores and softmax over the model's labels for a feature set. */
static void forward(const textclf *m, const uint32_t *f, size_t n, double *p)
{
    double v = n ? 1.0 / sqrt((double)n) : 0;
    double max = -INFINITY;
    for (int l = 0; l < m->nlabels; l++) {
        const float *wl = m->w + (size_t)l * m->dim;
        double s = m->b[l];
        for (size_t j = 0; j < n; j++)
            s += v * wl[f[j]];
        p[l] = s;
        if (s > max)
            max = s;
    }
    double z = 0;
    for (int l = 0; l < m->nlabels; l++) {
        p[l] = exp(p[l] - max);
        z += p[l];
    }
    for (int l = 0; l < m->nlabels; l++)
        p[l] /= z;
}

static int argmax(const double *p, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (p[i] > p[best])
            best = i;
    return best;
}

int textclf_predict(const textclf *m, const char *text, double *probs)
{
    if (m->nlabels == 0)
        return -1;
    double p[TEXTCLF_MAX_LABELS];
    size_t n = 0;
    uint32_t *f = textclf_features(m, text, &n);
    forward(m, f, n, p);
    free(f);
    if (probs)
        memcpy(probs, p, (size_t)m->nlabels * sizeof *p);
    return argmax(p, m->nlabels);
}

/* ------------------------------------------------------------ training */

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ull;
}

int textclf_train(textclf *m, const textclf_sample *s, size_t n, int epochs, double lr, double l2,
                  uint64_t seed, textclf_epoch_fn fn, void *userdata, textclf_epoch *last)
{
    uint32_t **feat = calloc(n ? n : 1, sizeof *feat);
    size_t *nf = calloc(n ? n : 1, sizeof *nf);
    int *y = calloc(n ? n : 1, sizeof *y);
    size_t *order = calloc(n ? n : 1, sizeof *order);
    int ran = -1;
    if (!feat || !nf || !y || !order)
        goto out;
    for (size_t i = 0; i < n; i++) {
        y[i] = textclf_label(m, s[i].label, 1);
        if (y[i] < 0)
            goto out;
        feat[i] = textclf_features(m, s[i].text, &nf[i]);
        order[i] = i;
    }
    uint64_t state = seed ? seed : 0x9E3779B97F4A7C15ull;
    ran = 0;
    for (int e = 1; e <= epochs; e++) {
        for (size_t i = n; i > 1; i--) {
            size_t j = (size_t)(xorshift(&state) % i);
            size_t t = order[i - 1];
            order[i - 1] = order[j];
            order[j] = t;
        }
        double loss = 0;
        size_t correct = 0;
        for (size_t k = 0; k < n; k++) {
            size_t i = order[k];
            double p[TEXTCLF_MAX_LABELS];
            forward(m, feat[i], nf[i], p);
            correct += argmax(p, m->nlabels) == y[i];
            loss += -log(p[y[i]] > 1e-300 ? p[y[i]] : 1e-300);
            double v = nf[i] ? 1.0 / sqrt((double)nf[i]) : 0;
            for (int l = 0; l < m->nlabels; l++) {
                double g = p[l] - (l == y[i] ? 1.0 : 0.0);
                float *wl = m->w + (size_t)l * m->dim;
                for (size_t j = 0; j < nf[i]; j++) {
                    float *w = &wl[feat[i][j]];
                    *w -= (float)(lr * (g * v + l2 * *w));
                }
                m->b[l] -= (float)(lr * g);
            }
        }
        ran = e;
        textclf_epoch ep = {e, epochs, n ? loss / (double)n : 0,
                            n ? (double)correct / (double)n : 0};
        if (last)
            *last = ep;
        if (fn && fn(&ep, userdata) != 0)
            break;
    }
out:
    for (size_t i = 0; feat && i < n; i++)
        free(feat[i]);
    free(feat);
    free(nf);
    free(y);
    free(order);
    return ran;
}

/* ---------------------------------------------------------- evaluation */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

int textclf_evaluate(const textclf *m, const textclf_sample *s, size_t n, textclf_eval *out)
{
    memset(out, 0, sizeof *out);
    int L = m->nlabels;
    out->nlabels = L;
    out->confusion = calloc((size_t)(L ? L * L : 1), sizeof *out->confusion);
    if (!out->confusion)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int truth = textclf_label((textclf *)m, s[i].label, 0);
        double t0 = now_ms();
        int pred = textclf_predict(m, s[i].text, NULL);
        out->total_ms += now_ms() - t0;
        out->n++;
        if (pred >= 0)
            out->predicted[pred]++;
        if (truth < 0) {
            out->unknown++;
            continue;
        }
        out->support[truth]++;
        if (pred >= 0)
            out->confusion[(size_t)truth * (size_t)L + (size_t)pred]++;
        out->correct += pred == truth;
    }
    out->accuracy = out->n ? (double)out->correct / (double)out->n : 0;
    int counted = 0;
    for (int l = 0; l < L; l++) {
        size_t tp = out->confusion[(size_t)l * (size_t)L + (size_t)l];
        out->precision[l] = out->predicted[l] ? (double)tp / (double)out->predicted[l] : 0;
        out->recall[l] = out->support[l] ? (double)tp / (double)out->support[l] : 0;
        double pr = out->precision[l] + out->recall[l];
        out->f1[l] = pr > 0 ? 2 * out->precision[l] * out->recall[l] / pr : 0;
        if (out->support[l] || out->predicted[l]) {
            out->macro_precision += out->precision[l];
            out->macro_recall += out->recall[l];
            out->macro_f1 += out->f1[l];
            counted++;
        }
    }
    if (counted) {
        out->macro_precision /= counted;
        out->macro_recall /= counted;
        out->macro_f1 /= counted;
    }
    return 0;
}

void textclf_eval_free(textclf_eval *e)
{
    free(e->confusion);
    e->confusion = NULL;
}

/* ----------------------------------------------------------- artifacts */

cJSON *textclf_to_json(const textclf *m, const cJSON *meta)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "format", TEXTCLF_FORMAT);
    cJSON_AddNumberToObject(o, "format_version", TEXTCLF_FORMAT_VERSION);
    cJSON *labels = cJSON_AddArrayToObject(o, "labels");
    cJSON *bias = cJSON_AddArrayToObject(o, "bias");
    for (int l = 0; l < m->nlabels; l++) {
        cJSON_AddItemToArray(labels, cJSON_CreateString(m->labels[l]));
        cJSON_AddItemToArray(bias, cJSON_CreateNumber(m->b[l]));
    }
    cJSON_AddNumberToObject(o, "hash_bits", m->hash_bits);
    cJSON_AddNumberToObject(o, "ngram", m->ngram);
    cJSON *weights = cJSON_AddObjectToObject(o, "weights");
    for (size_t f = 0; f < m->dim && weights; f++) {
        bool any = false;
        for (int l = 0; l < m->nlabels && !any; l++)
            any = m->w[(size_t)l * m->dim + f] != 0;
        if (!any)
            continue;
        char key[24];
        snprintf(key, sizeof key, "%zu", f);
        cJSON *row = cJSON_AddArrayToObject(weights, key);
        for (int l = 0; l < m->nlabels; l++)
            cJSON_AddItemToArray(row, cJSON_CreateNumber(m->w[(size_t)l * m->dim + f]));
    }
    if (meta)
        cJSON_AddItemToObject(o, "meta", cJSON_Duplicate(meta, 1));
    if (!labels || !bias || !weights) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

textclf *textclf_from_json(const cJSON *doc, char *err, size_t errlen)
{
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(doc, "format");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(doc, "format_version");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, TEXTCLF_FORMAT) != 0 ||
        !cJSON_IsNumber(ver) || ver->valueint != TEXTCLF_FORMAT_VERSION) {
        snprintf(err, errlen, "not an %s version %d artifact", TEXTCLF_FORMAT,
                 TEXTCLF_FORMAT_VERSION);
        return NULL;
    }
    const cJSON *bits = cJSON_GetObjectItemCaseSensitive(doc, "hash_bits");
    const cJSON *ngram = cJSON_GetObjectItemCaseSensitive(doc, "ngram");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(doc, "labels");
    const cJSON *bias = cJSON_GetObjectItemCaseSensitive(doc, "bias");
    const cJSON *weights = cJSON_GetObjectItemCaseSensitive(doc, "weights");
    if (!cJSON_IsNumber(bits) || !cJSON_IsNumber(ngram) || !cJSON_IsArray(labels) ||
        !cJSON_IsArray(bias) || !cJSON_IsObject(weights) ||
        cJSON_GetArraySize(labels) != cJSON_GetArraySize(bias) ||
        cJSON_GetArraySize(labels) > TEXTCLF_MAX_LABELS) {
        snprintf(err, errlen, "artifact is missing hash_bits, ngram, labels, bias or weights");
        return NULL;
    }
    textclf *m = textclf_new(bits->valueint, ngram->valueint);
    if (!m) {
        snprintf(err, errlen, "artifact has bad hash_bits or ngram (or no memory)");
        return NULL;
    }
    int i = 0;
    for (const cJSON *l = labels->child; l; l = l->next, i++) {
        if (!cJSON_IsString(l) || textclf_label(m, l->valuestring, 1) != i) {
            snprintf(err, errlen, "artifact label %d is not a distinct string", i);
            textclf_free(m);
            return NULL;
        }
        m->b[i] = (float)cJSON_GetArrayItem(bias, i)->valuedouble;
    }
    for (const cJSON *row = weights->child; row; row = row->next) {
        char *end;
        unsigned long f = strtoul(row->string, &end, 10);
        if (*end || f >= m->dim || !cJSON_IsArray(row) || cJSON_GetArraySize(row) != m->nlabels) {
            snprintf(err, errlen, "artifact weight row \"%s\" is malformed", row->string);
            textclf_free(m);
            return NULL;
        }
        int l = 0;
        for (const cJSON *v = row->child; v; v = v->next, l++)
            m->w[(size_t)l * m->dim + f] = (float)v->valuedouble;
    }
    return m;
}

int textclf_mkdirs(const char *dir)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

int textclf_save(const textclf *m, const cJSON *meta, const char *path, char *err, size_t errlen)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (textclf_mkdirs(dir) != 0) {
            snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
            return -1;
        }
    }
    cJSON *doc = textclf_to_json(m, meta);
    char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    size_t len = strlen(text);
    bool ok = f && fwrite(text, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int saved = errno;
    if (f && fclose(f) != 0)
        ok = false;
    free(text);
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(ok ? errno : saved));
        unlink(tmp);
        return -1;
    }
    return 0;
}

textclf *textclf_load(const char *path, cJSON **meta_out, char *err, size_t errlen)
{
    if (meta_out)
        *meta_out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 65536 + 1 > cap) {
            cap = cap ? cap * 2 : 131072;
            char *p = realloc(buf, cap);
            if (!p) {
                free(buf);
                fclose(f);
                snprintf(err, errlen, "out of memory");
                return NULL;
            }
            buf = p;
        }
        size_t k = fread(buf + len, 1, 65536, f);
        len += k;
        if (k == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    cJSON *doc = cJSON_Parse(buf);
    free(buf);
    if (!doc) {
        snprintf(err, errlen, "%s is not valid JSON", path);
        return NULL;
    }
    textclf *m = textclf_from_json(doc, err, errlen);
    if (m && meta_out) {
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(doc, "meta");
        *meta_out = meta ? cJSON_Duplicate(meta, 1) : NULL;
    }
    cJSON_Delete(doc);
    return m;
}
