/* The handlers of the catalog's task types, one module per area, and the
 * table that registers them on a worker. */
#ifndef AIPAL_WORKER_HANDLERS_H
#define AIPAL_WORKER_HANDLERS_H

#include <aipal/worker.h>

/* tasks/ari.c */
void handle_aggregate_ari_snapshots(aipalq_job *job, void *userdata);
void handle_analyze_ari_trends(aipalq_job *job, void *userdata);
/* tasks/ffe.c */
void handle_plan_ffe_goal(aipalq_job *job, void *userdata);
void handle_track_ffe_progress(aipalq_job *job, void *userdata);
/* tasks/edm.c */
void handle_edm_batch_analysis(aipalq_job *job, void *userdata);
void handle_edm_track_resolutions(aipalq_job *job, void *userdata);
void handle_edm_detect_misinformation(aipalq_job *job, void *userdata);
/* tasks/model.c */
void handle_finetune_model(aipalq_job *job, void *userdata);
void handle_evaluate_model(aipalq_job *job, void *userdata);
void handle_benchmark_model(aipalq_job *job, void *userdata);
/* tasks/maintenance.c */
void handle_archive_audit_logs(aipalq_job *job, void *userdata);
void handle_maintain_database(aipalq_job *job, void *userdata);
void handle_cleanup_cache(aipalq_job *job, void *userdata);
void handle_enforce_retention_policy(aipalq_job *job, void *userdata);
/* tasks/diagnostics.c */
void handle_echo(aipalq_job *job, void *userdata);
void handle_sleep(aipalq_job *job, void *userdata);
void handle_fail(aipalq_job *job, void *userdata);

typedef struct handler_entry {
    const char *type;
    aipalq_handler_fn fn;
} handler_entry;

/* The handler of a type, or NULL. */
aipalq_handler_fn handlers_find(const char *type);
/* Every handler, NULL-terminated. */
const handler_entry *handlers_all(void);

/* Registers the handler of every catalog type routed to one of the worker's
 * queues (queues_csv; NULL: all), with `env` as userdata. Returns how many
 * were registered, or -1 with the library's message in err. */
int handlers_register(aipalq_worker *w, const char *queues_csv, void *env, char *err,
                      size_t errlen);

#endif
