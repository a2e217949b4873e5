/* aipal-api: the REST API of the AI-Pal job queue.
 *
 * Start-up: configuration, refusal to run as root, keys, schema migrations,
 * the OpenAPI document, the events thread, the HTTP server. Then it waits
 * for SIGTERM or SIGINT, drains open requests and exits 0. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <aipal/aipalq.h>

#include "auth.h"
#include "config.h"
#include "cors.h"
#include "deadline.h"
#include "events.h"
#include "handlers.h"
#include "log.h"
#include "metrics.h"
#include "openapi.h"
#include "ratelimit.h"
#include "server.h"
#include "sse.h"
#include "tlclient.h"

static int fail(const char *msg)
{
    log_json("error", msg, NULL);
    return 1;
}

static int setup_security(const api_config *cfg)
{
    char err[256];
    if (auth_load(cfg->keys_file, err, sizeof err) != 0)
        return fail(err);
    if (auth_key_count() == 0)
        log_msg("warning", "no API keys configured (--keys-file, AIPALQ_API_KEYS_RW, "
                           "AIPALQ_API_KEYS_RO): authentication is OFF");
    if (cors_init(cfg->cors_origins) != 0)
        return fail("out of memory reading --cors-origins");
    ratelimit_init(cfg->rate_limit, cfg->rate_burst);
    return 0;
}

/* Applies the schema migrations, or refuses to start. */
static int migrate(void)
{
    aipalq_client *c = tlclient_new();
    if (!c)
        return fail("cannot create a queue client (bad --namespace?)");
    aipalq_status st = aipalq_migrate(c);
    int version = 0;
    if (st == AIPALQ_OK)
        st = aipalq_schema_version(c, &version);
    if (st != AIPALQ_OK) {
        log_msg("error",
                "refusing to start: cannot apply the schema migrations to PostgreSQL "
                "(%s): %s",
                aipalq_status_name(st), aipalq_client_errmsg(c));
        aipalq_client_free(c);
        return 1;
    }
    int redis_ok = 0;
    aipalq_ping(c, &redis_ok, NULL);
    if (!redis_ok)
        log_msg("warning", "Redis does not answer yet; submissions fail until it does");
    aipalq_client_free(c);
    log_msg("info", "database schema at version %d", version);
    return 0;
}

static void log_listening(const api_config *cfg)
{
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "host", cfg->listen_host);
    cJSON_AddNumberToObject(f, "port", server_port());
    cJSON_AddNumberToObject(f, "threads", cfg->threads);
    cJSON_AddBoolToObject(f, "auth", auth_key_count() > 0);
    cJSON_AddNumberToObject(f, "rate_limit", cfg->rate_limit);
    cJSON_AddStringToObject(f, "version", aipalq_version_string());
    log_json("info", "listening", f);
}

/* Waits for open requests to finish, up to the drain timeout. */
static void drain(const api_config *cfg)
{
    server_quiesce();
    sse_shutdown();
    struct timespec step = {0, 20 * 1000 * 1000};
    long waited_ms = 0;
    while (metrics_inflight() > 0 && waited_ms < (long)cfg->drain_timeout_s * 1000) {
        nanosleep(&step, NULL);
        waited_ms += 20;
    }
    if (metrics_inflight() > 0)
        log_msg("warning", "drain timeout: %ld request(s) still open are cut", metrics_inflight());
}

static int wait_for_signal(const sigset_t *set)
{
    int sig = 0;
    while (sigwait(set, &sig) != 0)
        ;
    return sig;
}

static int run(const api_config *cfg)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    /* Every thread started from here on inherits the mask: only sigwait sees them. */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    sse_init(cfg->max_sse_clients);
    if (openapi_build(cfg) != 0)
        return fail("cannot build the OpenAPI document");
    if (events_start(cfg) != 0)
        return fail("cannot start the events thread");
    if (h_status_start(cfg) != 0 || h_submit_start(cfg) != 0) {
        h_status_free();
        h_submit_free();
        events_stop();
        return fail("cannot start the coalescing threads");
    }
    if (deadline_start(cfg->request_timeout_s) != 0) {
        h_status_free();
        h_submit_free();
        events_stop();
        return fail("cannot start the request deadline thread");
    }
    char err[256];
    if (server_start(cfg, err, sizeof err) != 0) {
        deadline_stop();
        h_status_free();
        h_submit_free();
        events_stop();
        return fail(err);
    }
    log_listening(cfg);
    int sig = wait_for_signal(&set);
    log_msg("info", "%s received: draining open requests", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    drain(cfg);
    /* Suspended requests are answered before the server may stop. */
    h_status_stop();
    h_submit_stop();
    server_stop();
    deadline_stop();
    h_status_free();
    h_submit_free();
    events_stop();
    sse_free();
    log_msg("info", "stopped");
    return 0;
}

/* glibc gives threads arenas of their own (up to 8 per core) and keeps what
 * a request freed in its thread's arena: with a dozen threads that is most
 * of the daemon's resident memory after a burst. Requests allocate little
 * and briefly, so two arenas cost no measurable contention here. An
 * explicit MALLOC_ARENA_MAX in the environment wins. */
static void limit_malloc_arenas(void)
{
#ifdef __GLIBC__
    if (!getenv("MALLOC_ARENA_MAX"))
        mallopt(M_ARENA_MAX, 2);
#endif
}

int main(int argc, char **argv)
{
    limit_malloc_arenas();
    api_config cfg;
    int rc = config_parse(&cfg, argc, argv);
    if (rc != CONFIG_OK)
        return rc == CONFIG_EXIT ? 0 : 2;
    if (geteuid() == 0 && !cfg.allow_root) {
        fprintf(stderr, "aipal-api: refusing to run as root; run as an unprivileged user "
                        "or pass --allow-root\n");
        return 2;
    }
    if (setup_security(&cfg) != 0 || tlclient_init(&cfg) != 0 || migrate() != 0)
        return 1;
    rc = run(&cfg);
    openapi_free();
    ratelimit_free();
    cors_free();
    auth_free();
    return rc;
}
