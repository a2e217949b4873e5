/* A small text classifier trained in C: multinomial logistic regression
 * (softmax) over hashed unigram and bigram features.
 *
 * Features. Text is lowercased and cut into tokens of letters and digits
 * (bytes >= 0x80 count as letters, so UTF-8 words stay whole); each token
 * and each pair of adjacent tokens is hashed (FNV-1a, 32 bit) into one of
 * 2^hash_bits buckets; a text's vector has 1/sqrt(k) at each of its k
 * distinct buckets (binary, L2-normalised).
 *
 * Training. Plain stochastic gradient descent on the cross-entropy loss
 * with L2 regularisation, one sample at a time, in an order shuffled per
 * epoch by a seeded xorshift generator: the same data, seed and settings
 * give the same weights. Training may start from a saved model (fine-tuning):
 * its weights are the starting point and new labels are appended.
 *
 * Artifact. One JSON document (format "aipal-textclf", format_version 1):
 *   {"format": "aipal-textclf", "format_version": 1,
 *    "labels": ["neg", "pos"], "hash_bits": 16, "ngram": 2,
 *    "bias": [b0, b1],
 *    "weights": {"<bucket>": [w0, w1], ...},   only buckets with a non-zero weight
 *    "meta": {...}}                            free-form: metrics, provenance
 * written to a temporary file and renamed into place, so a reader never sees
 * a partial model. */
#ifndef AIPAL_WORKER_TEXTCLF_H
#define AIPAL_WORKER_TEXTCLF_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define TEXTCLF_MAX_LABELS     64
#define TEXTCLF_DEFAULT_BITS   16
#define TEXTCLF_FORMAT         "aipal-textclf"
#define TEXTCLF_FORMAT_VERSION 1

typedef struct textclf {
    int nlabels;
    char *labels[TEXTCLF_MAX_LABELS];
    int hash_bits; /* 8..22 */
    int ngram;     /* 1 or 2 */
    size_t dim;    /* 1 << hash_bits */
    float *w;      /* nlabels * dim, label-major: w[label * dim + bucket] */
    float b[TEXTCLF_MAX_LABELS];
} textclf;

typedef struct textclf_sample {
    const char *text;
    const char *label;
} textclf_sample;

/* A new empty model; NULL when memory runs out or the settings are bad. */
textclf *textclf_new(int hash_bits, int ngram);
void textclf_free(textclf *m);

/* The index of a label, adding it when `add` (-1: unknown, or full). */
int textclf_label(textclf *m, const char *label, int add);

/* A text's feature buckets (distinct, sorted); *n gets the count; the value
 * of each is 1/sqrt(n). malloc'd; NULL for a text without tokens or no
 * memory. */
uint32_t *textclf_features(const textclf *m, const char *text, size_t *n);

/* The most probable label's index, or -1 when the model has no labels;
 * probs (nlabels, may be NULL) gets the distribution. */
int textclf_predict(const textclf *m, const char *text, double *probs);

typedef struct textclf_epoch {
    int epoch, epochs;
    double loss;     /* mean cross-entropy of the epoch's updates */
    double accuracy; /* on the training samples, before each update */
} textclf_epoch;

/* Called after each epoch; a non-zero return stops training early. */
typedef int (*textclf_epoch_fn)(const textclf_epoch *e, void *userdata);

/* Trains on n samples (labels are added as met). Returns the number of
 * epochs run (less than `epochs` when the callback stopped it), or -1 when
 * memory runs out or a label does not fit. */
int textclf_train(textclf *m, const textclf_sample *s, size_t n, int epochs, double lr, double l2,
                  uint64_t seed, textclf_epoch_fn fn, void *userdata, textclf_epoch *last);

typedef struct textclf_eval {
    size_t n; /* samples evaluated */
    size_t correct;
    size_t unknown; /* samples whose label the model does not know (counted wrong) */
    double accuracy;
    /* Per label of the model, and their unweighted means (macro) over the
     * labels that occur in the data or the predictions. */
    int nlabels;
    double precision[TEXTCLF_MAX_LABELS], recall[TEXTCLF_MAX_LABELS], f1[TEXTCLF_MAX_LABELS];
    size_t support[TEXTCLF_MAX_LABELS], predicted[TEXTCLF_MAX_LABELS];
    double macro_precision, macro_recall, macro_f1;
    /* confusion[true * nlabels + predicted]; malloc'd, free with textclf_eval_free */
    size_t *confusion;
    double total_ms; /* time spent predicting */
} textclf_eval;

int textclf_evaluate(const textclf *m, const textclf_sample *s, size_t n, textclf_eval *out);
void textclf_eval_free(textclf_eval *e);

/* The model as the artifact document; `meta` (may be NULL) is copied in.
 * Caller deletes. */
cJSON *textclf_to_json(const textclf *m, const cJSON *meta);
/* A model from an artifact document; NULL with a reason in err. */
textclf *textclf_from_json(const cJSON *doc, char *err, size_t errlen);

/* Writes the artifact to path atomically (path.tmp, fsync, rename),
 * creating missing directories. Returns 0, or -1 with a reason in err. */
int textclf_save(const textclf *m, const cJSON *meta, const char *path, char *err, size_t errlen);
/* Loads an artifact; NULL with a reason in err. *meta_out (may be NULL)
 * gets a copy of its meta (caller deletes). */
textclf *textclf_load(const char *path, cJSON **meta_out, char *err, size_t errlen);

/* mkdir -p. Returns 0 or -1 (errno set). */
int textclf_mkdirs(const char *dir);

#endif
