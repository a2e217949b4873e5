/* Flags and environment; see config.h. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aipal/aipalq.h>

#include "config.h"
#include "log.h"

typedef enum opt_kind {
    OPT_STRING,  /* char * */
    OPT_INT,     /* int */
    OPT_SECONDS, /* int64_t ms, given in (fractional) seconds */
    OPT_KB,      /* int64_t */
    OPT_FLAG,    /* int set to 1 */
    OPT_NOFLAG,  /* int set to 0 */
    OPT_POOL,    /* prefork | threads -> int */
    OPT_LEVEL,   /* log level -> int */
} opt_kind;

typedef struct opt {
    const char *name;
    opt_kind kind;
    size_t off;
    long min, max; /* for OPT_INT */
    const char *arg;
    const char *help;
} opt;

#define F(field) offsetof(worker_config, field)

static const opt opts[] = {
    {"queues", OPT_STRING, F(queues), 0, 0, "CSV",
     "queues to consume, most important first (default: all six)"},
    {"concurrency", OPT_INT, F(concurrency), 1, 1024, "N", "tasks at once (default: cores)"},
    {"pool", OPT_POOL, F(prefork), 0, 0, "prefork|threads",
     "run tasks in child processes or threads (default prefork)"},
    {"redis-url", OPT_STRING, F(redis_url), 0, 0, "URL", "Redis (default: $AIPALQ_REDIS_URL)"},
    {"database-url", OPT_STRING, F(database_url), 0, 0, "URL",
     "PostgreSQL (default: $AIPALQ_DATABASE_URL)"},
    {"namespace", OPT_STRING, F(ns), 0, 0, "NAME",
     "Redis key namespace (default: $AIPALQ_NAMESPACE or aipalq)"},
    {"soft-time-limit", OPT_SECONDS, F(soft_limit_ms), 0, 0, "SECONDS",
     "soft time limit of every type (default: each type's, 1500 for most)"},
    {"hard-time-limit", OPT_SECONDS, F(hard_limit_ms), 0, 0, "SECONDS",
     "hard time limit of every type (default: each type's, 1800 for most)"},
    {"result-ttl", OPT_SECONDS, F(result_ttl_ms), 0, 0, "SECONDS",
     "how long Redis keeps a finished task for fast lookups (default: each type's, 3600)"},
    {"retry-backoff", OPT_SECONDS, F(retry_backoff_ms), 0, 0, "SECONDS",
     "first retry's delay for every type, doubling per retry (default: each type's, 60 for most)"},
    {"lease", OPT_SECONDS, F(lease_ms), 0, 0, "SECONDS", "task lease (default 30)"},
    {"maintenance-interval", OPT_SECONDS, F(maintenance_ms), 0, 0, "SECONDS",
     "how often to offer to run the reconciler and outbox relay (default 30; 0 never)"},
    {"shutdown-timeout", OPT_SECONDS, F(shutdown_timeout_ms), 0, 0, "SECONDS",
     "graceful stop: how long running tasks may finish (default 30)"},
    {"prefetch", OPT_INT, F(prefetch), 0, 1024, "N", "tasks taken beyond free slots (default 0)"},
    {"fair-every", OPT_INT, F(fair_every), 0, 1000000, "N",
     "start from the next queue every N takes (default 0: strict order)"},
    {"max-tasks-per-child", OPT_INT, F(max_tasks_per_child), 0, 100000000, "N",
     "prefork: replace a child after N tasks (default 1000; 0 never)"},
    {"max-memory-per-child", OPT_KB, F(max_memory_per_child_kb), 0, 0, "KB",
     "prefork: replace a child above this resident size (default 0: no limit)"},
    {"log-level", OPT_LEVEL, F(log_level), 0, 0, "LEVEL",
     "debug, info, warn or error (default info)"},
    {"worker-id", OPT_STRING, F(worker_id), 0, 0, "ID", "worker id (default host:pid:random)"},
    {"no-migrate", OPT_NOFLAG, F(migrate), 0, 0, NULL,
     "do not apply the queue's and the domain's migrations at start"},
    {"allow-root", OPT_FLAG, F(allow_root), 0, 0, NULL, "run even as root"},
    {"health-port", OPT_INT, F(health_port), 0, 65535, "PORT",
     "HTTP port for /healthz, /readyz, /metrics (default 8081; 0 none)"},
    {"health-addr", OPT_STRING, F(health_addr), 0, 0, "ADDR",
     "address of that port (default: all interfaces)"},
    {"ready-idle", OPT_SECONDS, F(ready_idle_ms), 0, 0, "SECONDS",
     "not ready when the loop made no progress for this long (default 60)"},
    {"schedule", OPT_STRING, F(schedule), 0, 0, "FILE|builtin",
     "periodic tasks (default: $AIPAL_SCHEDULE, the schedule itself, else none)"},
    {"no-scheduler", OPT_NOFLAG, F(scheduler), 0, 0, NULL, "never act as the scheduler leader"},
    {"scheduler-lease", OPT_SECONDS, F(scheduler_lease_ms), 0, 0, "SECONDS",
     "scheduler leader lease (default 15)"},
    {"schedule-catchup", OPT_SECONDS, F(schedule_catchup_ms), 0, 0, "SECONDS",
     "firings missed while no leader ran are made up if this recent (default 3600)"},
    {"artifacts-dir", OPT_STRING, F(artifacts_dir), 0, 0, "DIR",
     "model artifacts (default ./data/artifacts)"},
    {"temp-dir", OPT_STRING, F(temp_dir), 0, 0, "DIR",
     "temporary files that the retention policy prunes (default ./data/tmp)"},
    {"trainer-command", OPT_STRING, F(trainer_command), 0, 0, "CMD",
     "external trainer run by finetune_model instead of the built-in one"},
    {"trainer-timeout", OPT_SECONDS, F(trainer_timeout_ms), 0, 0, "SECONDS",
     "time limit of the external trainer (default: the task's soft limit)"},
    {"benchmark-command", OPT_STRING, F(benchmark_command), 0, 0, "CMD",
     "command benchmark_model times per scenario instead of the saved model"},
    {"train-epochs", OPT_INT, F(train_epochs), 1, 10000, "N",
     "epochs of the built-in trainer (default 10)"},
    {"benchmark-iterations", OPT_INT, F(benchmark_iterations), 1, 1000000, "N",
     "requests per benchmark scenario (default 200; 5 with a command)"},
    {"archive-batch-size", OPT_INT, F(archive_batch_size), 1, 100000, "N",
     "rows per archival / retention batch (default 1000)"},
};

#define NOPTS (sizeof opts / sizeof opts[0])

void config_defaults(worker_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->prefork = 1;
    cfg->lease_ms = 30000;
    cfg->maintenance_ms = 30000;
    cfg->shutdown_timeout_ms = 30000;
    cfg->max_tasks_per_child = 1000;
    cfg->log_level = LOG_INFO;
    cfg->migrate = 1;
    cfg->health_port = 8081;
    cfg->ready_idle_ms = 60000;
    cfg->scheduler = 1;
    cfg->scheduler_lease_ms = 15000;
    cfg->schedule_catchup_ms = 3600000;
    cfg->train_epochs = 10;
    cfg->archive_batch_size = 1000;
    cfg->trainer_timeout_ms = 0;
}

void config_free(worker_config *cfg)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].kind == OPT_STRING) {
            char **p = (char **)((char *)cfg + opts[i].off);
            free(*p);
            *p = NULL;
        }
}

static int set_value(worker_config *cfg, const opt *o, const char *v, const char *source, char *err,
                     size_t errlen)
{
    char *base = (char *)cfg;
    char *end;
    switch (o->kind) {
    case OPT_STRING: {
        char **p = (char **)(base + o->off);
        free(*p);
        *p = strdup(v);
        return *p ? 0 : -1;
    }
    case OPT_INT: {
        errno = 0;
        long n = strtol(v, &end, 10);
        if (errno || end == v || *end || n < o->min || n > o->max) {
            snprintf(err, errlen, "%s: must be an integer between %ld and %ld", source, o->min,
                     o->max);
            return -1;
        }
        *(int *)(base + o->off) = (int)n;
        return 0;
    }
    case OPT_SECONDS: {
        double s = strtod(v, &end);
        if (end == v || *end || !isfinite(s) || s < 0 || s > 31536000) {
            snprintf(err, errlen, "%s: must be a number of seconds", source);
            return -1;
        }
        *(int64_t *)(base + o->off) = (int64_t)llround(s * 1000);
        return 0;
    }
    case OPT_KB: {
        long long n = strtoll(v, &end, 10);
        if (end == v || *end || n < 0) {
            snprintf(err, errlen, "%s: must be a number of kilobytes", source);
            return -1;
        }
        *(int64_t *)(base + o->off) = n;
        return 0;
    }
    case OPT_FLAG:
    case OPT_NOFLAG: {
        int on = strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0;
        int off = strcmp(v, "0") == 0 || strcmp(v, "false") == 0 || strcmp(v, "no") == 0;
        if (!on && !off) {
            snprintf(err, errlen, "%s: must be 1/true/yes or 0/false/no", source);
            return -1;
        }
        *(int *)(base + o->off) = o->kind == OPT_FLAG ? on : !on;
        return 0;
    }
    case OPT_POOL:
        if (strcmp(v, "prefork") != 0 && strcmp(v, "threads") != 0) {
            snprintf(err, errlen, "%s: must be prefork or threads", source);
            return -1;
        }
        *(int *)(base + o->off) = strcmp(v, "prefork") == 0;
        return 0;
    case OPT_LEVEL: {
        log_level l;
        if (log_parse_level(v, &l) != 0) {
            snprintf(err, errlen, "%s: must be debug, info, warn or error", source);
            return -1;
        }
        *(int *)(base + o->off) = (int)l;
        return 0;
    }
    }
    return -1;
}

static void env_name(const opt *o, char *buf, size_t len)
{
    int n = snprintf(buf, len, "AIPAL_WORKER_");
    for (const char *p = o->name; *p && (size_t)n + 1 < len; p++)
        buf[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    buf[n] = '\0';
}

static void usage(void)
{
    printf("usage: aipal-worker [OPTIONS]\n\n"
           "Runs the AI-Pal task types of libaipalq. SIGTERM or SIGINT stops gracefully\n"
           "(running tasks finish or are handed back), a second signal stops fast (every\n"
           "running task is handed back at once); no task is lost either way.\n\n");
    for (size_t i = 0; i < NOPTS; i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s%s%s", opts[i].name, opts[i].arg ? " " : "",
                 opts[i].arg ? opts[i].arg : "");
        printf("  %-36s %s\n", flag, opts[i].help);
    }
    printf("  %-36s %s\n  %-36s %s\n", "--help", "this text", "--version", "the version");
    printf("\nEvery flag can also be set as AIPAL_WORKER_<FLAG> in the environment\n"
           "(e.g. AIPAL_WORKER_CONCURRENCY=4, AIPAL_WORKER_POOL=threads); flags win.\n"
           "AIPALQ_REDIS_URL, AIPALQ_DATABASE_URL and AIPALQ_NAMESPACE are read as well.\n");
}

static const opt *find_opt(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
            return &opts[i];
    return NULL;
}

int config_parse(int argc, char **argv, worker_config *cfg, char *err, size_t errlen)
{
    config_defaults(cfg);
    /* The environment first, then flags over it. */
    for (size_t i = 0; i < NOPTS; i++) {
        char name[96];
        env_name(&opts[i], name, sizeof name);
        const char *v = getenv(name);
        if (v && *v && set_value(cfg, &opts[i], v, name, err, errlen) != 0)
            return -1;
    }
    const char *ns = getenv("AIPALQ_NAMESPACE");
    if (!cfg->ns && ns && *ns && !(cfg->ns = strdup(ns)))
        return -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage();
            return 1;
        }
        if (strcmp(a, "--version") == 0) {
            printf("aipal-worker %s (libaipalq %s)\n", AIPALQ_VERSION_STRING,
                   aipalq_version_string());
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument \"%s\" (see --help)", a);
            return -1;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const opt *o = find_opt(name, len);
        if (!o) {
            snprintf(err, errlen, "unknown option --%.*s (see --help)", (int)len, name);
            return -1;
        }
        char source[80];
        snprintf(source, sizeof source, "--%s", o->name);
        const char *v;
        if (o->kind == OPT_FLAG || o->kind == OPT_NOFLAG) {
            v = eq ? eq + 1 : "1";
        } else if (eq) {
            v = eq + 1;
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            snprintf(err, errlen, "%s needs a value", source);
            return -1;
        }
        if (set_value(cfg, o, v, source, err, errlen) != 0)
            return -1;
    }
    if (cfg->soft_limit_ms && cfg->hard_limit_ms && cfg->soft_limit_ms > cfg->hard_limit_ms) {
        snprintf(err, errlen, "--soft-time-limit must not exceed --hard-time-limit");
        return -1;
    }
    if (cfg->result_ttl_ms && cfg->result_ttl_ms < 1000) {
        snprintf(err, errlen, "--result-ttl: must be at least 1 second");
        return -1;
    }
    if (cfg->lease_ms < 1000 || cfg->lease_ms > 3600000) {
        snprintf(err, errlen, "--lease: must be between 1 and 3600 seconds");
        return -1;
    }
    if (cfg->scheduler_lease_ms < 1000) {
        snprintf(err, errlen, "--scheduler-lease: must be at least 1 second");
        return -1;
    }
    if ((!cfg->artifacts_dir && !(cfg->artifacts_dir = strdup("./data/artifacts"))) ||
        (!cfg->temp_dir && !(cfg->temp_dir = strdup("./data/tmp")))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}
