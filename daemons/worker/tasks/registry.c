/* Type name -> handler, and registration on a worker. */
#include <stdio.h>
#include <string.h>

#include "catalog.h"
#include "handlers.h"

static const handler_entry table[] = {
    {"aggregate_ari_snapshots", handle_aggregate_ari_snapshots},
    {"analyze_ari_trends", handle_analyze_ari_trends},
    {"plan_ffe_goal", handle_plan_ffe_goal},
    {"track_ffe_progress", handle_track_ffe_progress},
    {"edm_batch_analysis", handle_edm_batch_analysis},
    {"edm_track_resolutions", handle_edm_track_resolutions},
    {"edm_detect_misinformation", handle_edm_detect_misinformation},
    {"finetune_model", handle_finetune_model},
    {"evaluate_model", handle_evaluate_model},
    {"benchmark_model", handle_benchmark_model},
    {"archive_audit_logs", handle_archive_audit_logs},
    {"maintain_database", handle_maintain_database},
    {"cleanup_cache", handle_cleanup_cache},
    {"enforce_retention_policy", handle_enforce_retention_policy},
    {"echo", handle_echo},
    {"sleep", handle_sleep},
    {"fail", handle_fail},
    {NULL, NULL},
};

aipalq_handler_fn handlers_find(const char *type)
{
    for (const handler_entry *e = table; type && e->type; e++)
        if (strcmp(e->type, type) == 0)
            return e->fn;
    return NULL;
}

const handler_entry *handlers_all(void)
{
    return table;
}

/* Whether `queue` is one of the comma-separated queues. */
static int in_csv(const char *csv, const char *queue)
{
    size_t n = strlen(queue);
    for (const char *p = csv; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && p[0] == ' ')
            p++, len--;
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (len == n && strncmp(p, queue, n) == 0)
            return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

int handlers_register(aipalq_worker *w, const char *queues_csv, void *env, char *err, size_t errlen)
{
    int n = 0;
    for (size_t i = 0; i < catalog_count(); i++) {
        const catalog_type *t = catalog_at(i);
        if (queues_csv && !in_csv(queues_csv, t->queue))
            continue;
        aipalq_handler_fn fn = handlers_find(t->name);
        if (!fn) {
            snprintf(err, errlen, "no handler for catalog type %s", t->name);
            return -1;
        }
        aipalq_status st = aipalq_worker_handle(w, t->name, fn, env);
        if (st != AIPALQ_OK) {
            snprintf(err, errlen, "registering %s: %s", t->name, aipalq_worker_errmsg(w));
            return -1;
        }
        n++;
    }
    return n;
}
