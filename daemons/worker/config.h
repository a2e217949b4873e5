/* The worker's settings: command-line flags, each also readable from the
 * environment as AIPAL_WORKER_<FLAG> (upper case, dashes as underscores; a
 * flag wins over its variable), and the library's own AIPALQ_REDIS_URL /
 * AIPALQ_DATABASE_URL / AIPALQ_NAMESPACE. `aipal-worker --help` lists them. */
#ifndef AIPAL_WORKER_CONFIG_H
#define AIPAL_WORKER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef struct worker_config {
    char *redis_url;    /* NULL: the library's default (AIPALQ_REDIS_URL, ...) */
    char *database_url; /* NULL: AIPALQ_DATABASE_URL, else libpq's defaults */
    char *ns;           /* Redis key namespace; NULL: "aipalq" */
    char *queues;       /* comma-separated; NULL: all six */
    int concurrency;    /* 0: number of cores */
    int prefork;        /* 1: prefork pool, 0: threads */
    int prefetch;
    int fair_every;
    int64_t soft_limit_ms, hard_limit_ms; /* 0: each type's own */
    int64_t result_ttl_ms;                /* 0: each type's own */
    int64_t retry_backoff_ms;             /* 0: each type's own backoff base */
    int64_t lease_ms;
    int64_t maintenance_ms; /* reconciler and outbox relay interval; 0: never */
    int64_t shutdown_timeout_ms;
    int max_tasks_per_child;
    int64_t max_memory_per_child_kb;
    int log_level; /* log_level */
    char *worker_id;
    int migrate; /* apply the queue's and the domain's migrations at start */
    int allow_root;

    char *health_addr; /* NULL: all interfaces */
    int health_port;   /* 0: no HTTP port */
    int64_t ready_idle_ms;

    char *schedule; /* a file, "builtin", or NULL (then AIPAL_SCHEDULE, the text itself) */
    int scheduler;  /* take part in the leader election */
    int64_t scheduler_lease_ms;
    int64_t schedule_catchup_ms;

    char *artifacts_dir;
    char *temp_dir;
    char *trainer_command;
    int64_t trainer_timeout_ms; /* 0: the task's soft limit */
    char *benchmark_command;
    int train_epochs;
    int benchmark_iterations; /* 0: 200, or 5 with a command */
    int archive_batch_size;
} worker_config;

/* Parses argv and the environment into *cfg (defaults first). Returns 0 to
 * run, 1 when --help or --version was printed (exit 0), -1 on an error
 * described in err (exit 2). */
int config_parse(int argc, char **argv, worker_config *cfg, char *err, size_t errlen);
void config_free(worker_config *cfg);

/* Default settings, for tests that build a configuration by hand. */
void config_defaults(worker_config *cfg);

#endif
