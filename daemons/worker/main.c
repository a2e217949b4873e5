/* aipal-worker: runs the AI-Pal task types over libaipalq.
 *
 *   aipal-worker --queues ari_analysis,default --concurrency 4 --pool prefork
 *
 * At start it applies the queue's migrations (aipalq_migrate) and the
 * domain's (domain_migrate.h), defines the catalog's types, registers a
 * handler for each type routed to its queues, opens the health port and
 * joins the scheduler election, then runs the worker loop until SIGTERM or
 * SIGINT (graceful; a second signal: fast, still losing no task). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include <aipal/worker.h>

#include "catalog.h"
#include "config.h"
#include "domain_migrate.h"
#include "handlers.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "schedule.h"
#include "scheduler.h"
#include "task.h"

static aipalq_worker *volatile the_worker;
static volatile int stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    int fast = stop_requested > 0;
    stop_requested++;
    if (the_worker)
        aipalq_worker_stop(the_worker, fast);
}

static void on_soft_limit(aipalq_job *job, void *userdata)
{
    (void)userdata;
    cJSON *f = cJSON_CreateObject();
    if (f) {
        cJSON_AddStringToObject(f, "task_id", aipalq_job_id(job));
        cJSON_AddStringToObject(f, "type", aipalq_job_type(job));
    }
    log_json(LOG_WARN, "task.soft_limit", f);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Reads a whole file (malloc'd) or NULL. */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *p = realloc(buf, cap);
            if (!p) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = p;
        }
        size_t k = fread(buf + len, 1, 4096, f);
        len += k;
        if (k == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* The schedule from --schedule (a file or "builtin") or $AIPAL_SCHEDULE. */
static int load_schedule(const worker_config *cfg, schedule *out, char *err, size_t errlen)
{
    char *text = NULL;
    const char *src = NULL;
    if (cfg->schedule && strcmp(cfg->schedule, "builtin") == 0) {
        src = schedule_builtin();
    } else if (cfg->schedule) {
        text = read_file(cfg->schedule);
        if (!text) {
            snprintf(err, errlen, "--schedule: cannot read %s: %s", cfg->schedule, strerror(errno));
            return -1;
        }
        src = text;
    } else {
        src = getenv("AIPAL_SCHEDULE");
    }
    int rc = schedule_parse(src ? src : "", out, err, errlen);
    free(text);
    return rc;
}

/* Checks --queues against the catalog's; fills csv with the queues to
 * consume. */
static int resolve_queues(const worker_config *cfg, char *csv, size_t len, char *err, size_t errlen)
{
    csv[0] = '\0';
    if (!cfg->queues) {
        for (size_t i = 0; i < catalog_queue_count(); i++)
            snprintf(csv + strlen(csv), len - strlen(csv), "%s%s", i ? "," : "",
                     catalog_queue_at(i));
        return 0;
    }
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", cfg->queues);
    char *save = NULL;
    for (char *q = strtok_r(buf, ", ", &save); q; q = strtok_r(NULL, ", ", &save)) {
        if (!catalog_queue_known(q)) {
            snprintf(err, errlen, "--queues: unknown queue \"%s\" (the queues are:", q);
            for (size_t i = 0; i < catalog_queue_count(); i++)
                snprintf(err + strlen(err), errlen - strlen(err), " %s", catalog_queue_at(i));
            snprintf(err + strlen(err), errlen - strlen(err), ")");
            return -1;
        }
        snprintf(csv + strlen(csv), len - strlen(csv), "%s%s", csv[0] ? "," : "", q);
    }
    if (!csv[0]) {
        snprintf(err, errlen, "--queues: no queue given");
        return -1;
    }
    return 0;
}

/* The queue's and the domain's migrations, retried while the database is
 * not reachable yet (up to a minute: a container may start before it). */
static int migrate_all(aipalq_client *c, const worker_config *cfg)
{
    char err[1024];
    for (int attempt = 1;; attempt++) {
        aipalq_status st = aipalq_migrate(c);
        int v = -1;
        if (st == AIPALQ_OK) {
            const char *url = cfg->database_url ? cfg->database_url : getenv("AIPALQ_DATABASE_URL");
            const char *keys[] = {"dbname", "application_name", NULL};
            const char *vals[] = {url ? url : "", "aipal-worker-migrate", NULL};
            PGconn *conn = PQconnectdbParams(keys, vals, 1);
            if (PQstatus(conn) == CONNECTION_OK)
                v = domain_migrate(conn, err, sizeof err);
            else
                snprintf(err, sizeof err, "%s", PQerrorMessage(conn));
            PQfinish(conn);
            if (v >= 0) {
                log_msg(LOG_INFO, "worker.migrated", "queue schema up to date, domain schema %d",
                        v);
                return 0;
            }
            if (strstr(err, "knows up to") || strstr(err, "failed:")) {
                log_msg(LOG_ERROR, "worker.migrate_failed", "%s", err);
                return -1;
            }
        } else {
            snprintf(err, sizeof err, "%s", aipalq_client_errmsg(c));
            if (st != AIPALQ_EPG && st != AIPALQ_EREDIS) {
                log_msg(LOG_ERROR, "worker.migrate_failed", "%s", err);
                return -1;
            }
        }
        if (attempt >= 30 || stop_requested) {
            log_msg(LOG_ERROR, "worker.migrate_failed", "%s", err);
            return -1;
        }
        log_msg(LOG_WARN, "worker.waiting_for_database", "attempt %d: %s", attempt, err);
        sleep_ms(2000);
    }
}

/* Applies --soft-time-limit / --hard-time-limit / --result-ttl / --retry-backoff to every
 * type. */
static int apply_limits(aipalq_client *c, const worker_config *cfg)
{
    for (size_t i = 0; cfg->retry_backoff_ms && i < catalog_count(); i++) {
        const catalog_type *t = catalog_at(i);
        int64_t cap =
            t->backoff_cap_ms > cfg->retry_backoff_ms ? t->backoff_cap_ms : cfg->retry_backoff_ms;
        if (aipalq_type_set_backoff(c, t->name, cfg->retry_backoff_ms, cap,
                                    t->backoff_jitter_percent) != AIPALQ_OK) {
            log_msg(LOG_ERROR, "worker.config_error", "retry backoff of %s: %s", t->name,
                    aipalq_client_errmsg(c));
            return -1;
        }
    }
    for (size_t i = 0; cfg->result_ttl_ms && i < catalog_count(); i++) {
        if (aipalq_type_set_result_ttl(c, catalog_at(i)->name, cfg->result_ttl_ms) != AIPALQ_OK) {
            log_msg(LOG_ERROR, "worker.config_error", "result TTL of %s: %s", catalog_at(i)->name,
                    aipalq_client_errmsg(c));
            return -1;
        }
    }
    if (!cfg->soft_limit_ms && !cfg->hard_limit_ms)
        return 0;
    for (size_t i = 0; i < catalog_count(); i++) {
        const catalog_type *t = catalog_at(i);
        int64_t soft = cfg->soft_limit_ms ? cfg->soft_limit_ms : t->soft_limit_ms;
        int64_t hard = cfg->hard_limit_ms ? cfg->hard_limit_ms : t->hard_limit_ms;
        if (soft > hard && hard)
            soft = hard;
        if (aipalq_type_set_time_limits(c, t->name, soft, hard) != AIPALQ_OK) {
            log_msg(LOG_ERROR, "worker.config_error", "time limits of %s: %s", t->name,
                    aipalq_client_errmsg(c));
            return -1;
        }
    }
    return 0;
}

static int configure_worker(aipalq_worker *w, const worker_config *cfg, const char *queues,
                            char *err, size_t errlen)
{
    aipalq_status st = aipalq_worker_set_queues(w, queues, cfg->fair_every);
    if (st == AIPALQ_OK)
        st = aipalq_worker_set_concurrency(w, cfg->concurrency);
    if (st == AIPALQ_OK)
        st = aipalq_worker_set_mode(w, cfg->prefork ? AIPALQ_MODE_PREFORK : AIPALQ_MODE_THREADS);
    if (st == AIPALQ_OK && cfg->prefetch)
        st = aipalq_worker_set_prefetch(w, cfg->prefetch);
    if (st == AIPALQ_OK)
        st = aipalq_worker_set_lease_ms(w, cfg->lease_ms);
    if (st == AIPALQ_OK)
        st = aipalq_worker_set_shutdown_timeout_ms(w, cfg->shutdown_timeout_ms);
    if (st == AIPALQ_OK)
        st = aipalq_worker_set_maintenance_ms(w, cfg->maintenance_ms);
    if (st == AIPALQ_OK && cfg->prefork)
        st = aipalq_worker_set_recycle(w, cfg->max_tasks_per_child, cfg->max_memory_per_child_kb);
    if (st == AIPALQ_OK && cfg->worker_id)
        st = aipalq_worker_set_id(w, cfg->worker_id);
    if (st == AIPALQ_OK)
        st = aipalq_worker_on_soft_limit(w, on_soft_limit, NULL);
    if (st != AIPALQ_OK) {
        snprintf(err, errlen, "%s", aipalq_worker_errmsg(w));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    worker_config cfg;
    char err[1024];
    int rc = config_parse(argc, argv, &cfg, err, sizeof err);
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "aipal-worker: %s\n", err);
        config_free(&cfg);
        return rc < 0 ? 2 : 0;
    }
    log_set_level((log_level)cfg.log_level);
    if (geteuid() == 0 && !cfg.allow_root) {
        log_msg(LOG_ERROR, "worker.refused",
                "refusing to run as root: run as an unprivileged user, or pass --allow-root");
        config_free(&cfg);
        return 2;
    }
    if (cfg.concurrency <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg.concurrency = n > 0 ? (int)(n > 1024 ? 1024 : n) : 1;
    }
    char queues[1024];
    schedule sched = {0};
    if (resolve_queues(&cfg, queues, sizeof queues, err, sizeof err) != 0 ||
        load_schedule(&cfg, &sched, err, sizeof err) != 0) {
        log_msg(LOG_ERROR, "worker.config_error", "%s", err);
        config_free(&cfg);
        return 2;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    int exit_code = 1;
    aipalq_worker *w = NULL;
    health *hp = NULL;
    scheduler *sch = NULL;
    worker_metrics *metrics = NULL;
    aipalq_client *c = NULL;
    metrics = metrics_create();
    if (!metrics) {
        log_msg(LOG_ERROR, "worker.error", "cannot map the shared metrics");
        goto out;
    }
    /* The schedule's entries are checked against the catalog before
     * anything connects: a bad entry is a configuration error. */
    if (sched.n > 0 && cfg.scheduler) {
        scheduler_config sc = {cfg.redis_url,  cfg.database_url,       cfg.ns,
                               NULL,           cfg.scheduler_lease_ms, cfg.schedule_catchup_ms,
                               &stop_requested};
        sch = scheduler_new(&sc, &sched, metrics, err, sizeof err);
        if (!sch) {
            log_msg(LOG_ERROR, "worker.config_error", "%s", err);
            exit_code = 2;
            goto out;
        }
    }
    c = aipalq_client_new(cfg.redis_url, cfg.database_url);
    if (!c || (cfg.ns && aipalq_client_set_namespace(c, cfg.ns) != AIPALQ_OK)) {
        log_msg(LOG_ERROR, "worker.config_error", "client: %s", aipalq_client_errmsg(c));
        goto out;
    }
    if (cfg.migrate && migrate_all(c, &cfg) != 0)
        goto out;
    if (catalog_define_all(c) != AIPALQ_OK || apply_limits(c, &cfg) != 0) {
        log_msg(LOG_ERROR, "worker.config_error", "task types: %s", aipalq_client_errmsg(c));
        goto out;
    }
    static task_env env;
    env.cfg = &cfg;
    env.metrics = metrics;
    w = aipalq_worker_new(c);
    if (!w) {
        log_msg(LOG_ERROR, "worker.error", "out of memory");
        goto out;
    }
    int nhandlers;
    if (configure_worker(w, &cfg, queues, err, sizeof err) != 0 ||
        (nhandlers = handlers_register(w, queues, &env, err, sizeof err)) < 0) {
        log_msg(LOG_ERROR, "worker.config_error", "%s", err);
        goto out;
    }
    char wid[160];
    aipalq_worker_id(w, wid, sizeof wid);
    log_set_worker(wid);
    if (cfg.health_port > 0) {
        hp = health_start(&cfg, metrics, err, sizeof err);
        if (!hp) {
            log_msg(LOG_ERROR, "worker.error", "health port: %s", err);
            goto out;
        }
        health_set_worker(hp, w);
    }
    if (sch) {
        scheduler_set_holder(sch, wid);
        if (scheduler_start(sch) != 0) {
            log_msg(LOG_ERROR, "worker.error", "cannot start the scheduler");
            goto out;
        }
    }
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "version", AIPAL_WORKER_VERSION);
    cJSON_AddStringToObject(f, "libaipalq", aipalq_version_string());
    cJSON_AddStringToObject(f, "queues", queues);
    cJSON_AddNumberToObject(f, "concurrency", cfg.concurrency);
    cJSON_AddStringToObject(f, "pool", cfg.prefork ? "prefork" : "threads");
    cJSON_AddNumberToObject(f, "handlers", nhandlers);
    cJSON_AddNumberToObject(f, "health_port", health_port(hp));
    cJSON_AddNumberToObject(f, "schedule_entries", (double)sched.n);
    cJSON_AddBoolToObject(f, "scheduler", sch != NULL);
    log_json(LOG_INFO, "worker.started", f);

    the_worker = w;
    if (stop_requested)
        aipalq_worker_stop(w, stop_requested > 1);
    aipalq_status st = aipalq_worker_run(w);
    the_worker = NULL;
    if (st != AIPALQ_OK) {
        log_msg(LOG_ERROR, "worker.error", "worker loop: %s: %s", aipalq_status_name(st),
                aipalq_worker_errmsg(w));
    } else {
        exit_code = 0;
    }
    scheduler_stop(sch);
    int64_t done = 0, failed = 0, retried = 0, cancelled = 0, stale = 0;
    aipalq_worker_counts(w, &done, &failed, &retried, &cancelled, &stale, NULL);
    cJSON *g = cJSON_CreateObject();
    cJSON_AddNumberToObject(g, "completed", (double)done);
    cJSON_AddNumberToObject(g, "failed", (double)failed);
    cJSON_AddNumberToObject(g, "retried", (double)retried);
    cJSON_AddNumberToObject(g, "cancelled", (double)cancelled);
    cJSON_AddNumberToObject(g, "stale", (double)stale);
    cJSON_AddBoolToObject(g, "fast", stop_requested > 1);
    log_json(LOG_INFO, "worker.stopped", g);
out:
    scheduler_free(sch);
    health_stop(hp);
    aipalq_worker_free(w);
    aipalq_client_free(c);
    metrics_destroy(metrics);
    schedule_free(&sched);
    config_free(&cfg);
    return exit_code;
}
