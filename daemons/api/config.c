/* Flags and environment. */
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aipal/aipalq.h>

#include "config.h"
#include "util.h"

#define DEFAULT_MAX_BODY (1024 * 1024 + 64 * 1024)

static const char usage[] =
    "Usage: aipal-api [OPTION]...\n"
    "The REST API of the AI-Pal job queue (libaipalq).\n"
    "\n"
    "  --listen HOST:PORT        address to listen on (default 127.0.0.1:8000; port 0: any)\n"
    "                            [AIPAL_API_LISTEN]\n"
    "  --redis-url URL           Redis of the queue [AIPALQ_REDIS_URL]\n"
    "  --database-url URL        PostgreSQL of the queue [AIPALQ_DATABASE_URL]\n"
    "  --namespace NS            Redis key namespace (default aipalq) [AIPALQ_NAMESPACE]\n"
    "  --keys-file FILE          API keys, one 'ro:KEY' or 'rw:KEY' per line\n"
    "                            [AIPAL_API_KEYS_FILE]; also AIPALQ_API_KEYS_RW and\n"
    "                            AIPALQ_API_KEYS_RO (comma-separated). No keys: auth off\n"
    "  --open-metrics=BOOL       health and metrics need no key (default true)\n"
    "  --cors-origins LIST       origins allowed by CORS, comma-separated, or '*'\n"
    "                            [AIPAL_API_CORS_ORIGINS]\n"
    "  --rate-limit N            requests per second per client (API key or IP); 0 = off\n"
    "                            (default 0) [AIPAL_API_RATE_LIMIT]\n"
    "  --rate-burst N            bucket size (default 2 x rate, at least 1)\n"
    "  --threads N               HTTP worker threads (default 2 x cores, at least 4)\n"
    "  --max-body-bytes N        largest request body (default 1114112)\n"
    "  --timeout S               idle connection timeout in seconds (default 30)\n"
    "  --request-timeout S       a connection must send a whole request (headers and body)\n"
    "                            within S seconds of opening or of its previous answer\n"
    "                            (default: the --timeout)\n"
    "  --max-connections N       open connections in all (default 1024)\n"
    "  --max-connections-per-ip N  open connections per client IP (default 64)\n"
    "  --max-sse-clients N       event stream subscribers (default 256)\n"
    "  --events-poll-ms N        how often the event stream polls PostgreSQL (default 250)\n"
    "  --drain-timeout S         on SIGTERM, wait this long for open requests (default 30)\n"
    "  --coalesce-max N          status lookups and submissions that arrive together are\n"
    "                            served by one query (one commit), up to N each (default\n"
    "                            128); 0: one round trip per request\n"
    "  --coalesce-threads N      threads serving each kind's batches (default 1)\n"
    "  --list-total-max-age-ms N a list's total count may be reused this long for the\n"
    "                            same filter (default 1000); 0: counted on every request\n"
    "  --allow-root              run even as root\n"
    "  --help, --version\n";

enum {
    OPT_LISTEN = 256,
    OPT_REDIS,
    OPT_DATABASE,
    OPT_NAMESPACE,
    OPT_KEYS,
    OPT_OPEN_METRICS,
    OPT_CORS,
    OPT_RATE,
    OPT_BURST,
    OPT_THREADS,
    OPT_BODY,
    OPT_TIMEOUT,
    OPT_REQUEST_TIMEOUT,
    OPT_CONNS,
    OPT_CONNS_IP,
    OPT_SSE,
    OPT_POLL,
    OPT_DRAIN,
    OPT_COALESCE,
    OPT_COALESCE_THREADS,
    OPT_LIST_TOTAL,
    OPT_ROOT,
    OPT_HELP,
    OPT_VERSION,
};

static const struct option options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"redis-url", required_argument, NULL, OPT_REDIS},
    {"database-url", required_argument, NULL, OPT_DATABASE},
    {"namespace", required_argument, NULL, OPT_NAMESPACE},
    {"keys-file", required_argument, NULL, OPT_KEYS},
    {"open-metrics", optional_argument, NULL, OPT_OPEN_METRICS},
    {"cors-origins", required_argument, NULL, OPT_CORS},
    {"rate-limit", required_argument, NULL, OPT_RATE},
    {"rate-burst", required_argument, NULL, OPT_BURST},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"max-body-bytes", required_argument, NULL, OPT_BODY},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT},
    {"max-connections", required_argument, NULL, OPT_CONNS},
    {"max-connections-per-ip", required_argument, NULL, OPT_CONNS_IP},
    {"max-sse-clients", required_argument, NULL, OPT_SSE},
    {"events-poll-ms", required_argument, NULL, OPT_POLL},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN},
    {"coalesce-max", required_argument, NULL, OPT_COALESCE},
    {"coalesce-threads", required_argument, NULL, OPT_COALESCE_THREADS},
    {"list-total-max-age-ms", required_argument, NULL, OPT_LIST_TOTAL},
    {"allow-root", no_argument, NULL, OPT_ROOT},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

/* HOST:PORT, [V6]:PORT or :PORT. */
static int parse_listen(api_config *c, const char *s)
{
    const char *colon = strrchr(s, ':');
    int64_t port;
    if (!colon || !util_parse_i64(colon + 1, &port) || port < 0 || port > 65535)
        return -1;
    const char *host = s;
    size_t len = (size_t)(colon - s);
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']')
        host++, len -= 2;
    if (len >= sizeof c->listen_host)
        return -1;
    memcpy(c->listen_host, host, len);
    c->listen_host[len] = '\0';
    if (!len)
        snprintf(c->listen_host, sizeof c->listen_host, "0.0.0.0");
    c->listen_port = (unsigned)port;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    if (!s || !strcmp(s, "true") || !strcmp(s, "1") || !strcmp(s, "yes"))
        *out = true;
    else if (!strcmp(s, "false") || !strcmp(s, "0") || !strcmp(s, "no"))
        *out = false;
    else
        return -1;
    return 0;
}

static int parse_rate(const char *s, double *out)
{
    char *end;
    double v = s ? strtod(s, &end) : -1;
    if (!s || *end || v < 0 || v > 1e6)
        return -1;
    *out = v;
    return 0;
}

static void set_defaults(api_config *c)
{
    memset(c, 0, sizeof *c);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    c->threads = cores > 2 ? (int)cores * 2 : 4;
    c->max_body_bytes = DEFAULT_MAX_BODY;
    c->conn_timeout_s = 30;
    c->conn_limit = 1024;
    c->per_ip_limit = 64;
    c->open_metrics = true;
    c->drain_timeout_s = 30;
    c->max_sse_clients = 256;
    c->events_poll_ms = 250;
    c->coalesce_max = 128;
    c->coalesce_threads = 1;
    c->list_total_max_age_ms = 1000;
    c->redis_url = env_or("AIPALQ_REDIS_URL", NULL);
    c->database_url = env_or("AIPALQ_DATABASE_URL", NULL);
    c->namespace_ = env_or("AIPALQ_NAMESPACE", NULL);
    c->keys_file = env_or("AIPAL_API_KEYS_FILE", NULL);
    c->cors_origins = env_or("AIPAL_API_CORS_ORIGINS", NULL);
    parse_listen(c, "127.0.0.1:8000");
}

/* The integer options: bounds and where they go. */
typedef struct int_option {
    int opt;
    int64_t lo, hi;
    size_t offset;
    size_t size; /* of the field: int/unsigned (4) or size_t (8) */
} int_option;

#define INT_OPTION(o, lo, hi, field)                                                               \
    {                                                                                              \
        (o), (lo), (hi), offsetof(api_config, field), sizeof(((api_config *)0)->field)             \
    }

static const int_option int_options[] = {
    INT_OPTION(OPT_THREADS, 1, 1024, threads),
    INT_OPTION(OPT_BODY, 1024, 256 << 20, max_body_bytes),
    INT_OPTION(OPT_TIMEOUT, 1, 3600, conn_timeout_s),
    INT_OPTION(OPT_REQUEST_TIMEOUT, 1, 3600, request_timeout_s),
    INT_OPTION(OPT_CONNS, 1, 1000000, conn_limit),
    INT_OPTION(OPT_CONNS_IP, 1, 1000000, per_ip_limit),
    INT_OPTION(OPT_SSE, 0, 100000, max_sse_clients),
    INT_OPTION(OPT_POLL, 10, 60000, events_poll_ms),
    INT_OPTION(OPT_DRAIN, 0, 3600, drain_timeout_s),
    INT_OPTION(OPT_COALESCE, 0, 500, coalesce_max),
    INT_OPTION(OPT_COALESCE_THREADS, 1, 64, coalesce_threads),
    INT_OPTION(OPT_LIST_TOTAL, 0, 3600000, list_total_max_age_ms),
};

/* 1: not an integer option; 0: applied; -1: bad value. */
static int apply_int(api_config *c, int opt, const char *arg)
{
    for (size_t i = 0; i < sizeof int_options / sizeof int_options[0]; i++) {
        const int_option *o = &int_options[i];
        if (o->opt != opt)
            continue;
        int64_t n;
        if (!util_parse_i64(arg, &n) || n < o->lo || n > o->hi)
            return -1;
        char *field = (char *)c + o->offset;
        if (o->size == sizeof(size_t)) {
            size_t v = (size_t)n;
            memcpy(field, &v, sizeof v);
        } else {
            unsigned v = (unsigned)n; /* int and unsigned share a representation here */
            memcpy(field, &v, sizeof v);
        }
        return 0;
    }
    return 1;
}

/* The string options: where they go. */
static const char **string_option(api_config *c, int opt)
{
    switch (opt) {
    case OPT_REDIS:
        return &c->redis_url;
    case OPT_DATABASE:
        return &c->database_url;
    case OPT_NAMESPACE:
        return &c->namespace_;
    case OPT_KEYS:
        return &c->keys_file;
    case OPT_CORS:
        return &c->cors_origins;
    default:
        return NULL;
    }
}

/* Applies one option; -1 on a bad value. */
static int apply(api_config *c, int opt, const char *arg)
{
    const char **str = string_option(c, opt);
    if (str) {
        *str = arg;
        return 0;
    }
    int rc = apply_int(c, opt, arg);
    if (rc != 1)
        return rc;
    switch (opt) {
    case OPT_LISTEN:
        return parse_listen(c, arg);
    case OPT_OPEN_METRICS:
        return parse_bool(arg, &c->open_metrics);
    case OPT_RATE:
        return parse_rate(arg, &c->rate_limit);
    case OPT_BURST:
        return parse_rate(arg, &c->rate_burst);
    case OPT_ROOT:
        c->allow_root = true;
        return 0;
    default:
        return -1;
    }
}

static int apply_env(api_config *c)
{
    const char *listen = env_or("AIPAL_API_LISTEN", NULL);
    if (listen && parse_listen(c, listen) != 0) {
        fprintf(stderr, "aipal-api: AIPAL_API_LISTEN: expected HOST:PORT\n");
        return -1;
    }
    const char *rate = env_or("AIPAL_API_RATE_LIMIT", NULL);
    if (rate && parse_rate(rate, &c->rate_limit) != 0) {
        fprintf(stderr, "aipal-api: AIPAL_API_RATE_LIMIT: expected a number >= 0\n");
        return -1;
    }
    return 0;
}

/* "--name" of an option code, for messages. */
static const char *option_name(int opt, const char *fallback)
{
    static _Thread_local char buf[64];
    for (const struct option *o = options; o->name; o++)
        if (o->val == opt) {
            snprintf(buf, sizeof buf, "--%s", o->name);
            return buf;
        }
    return fallback;
}

int config_parse(api_config *c, int argc, char **argv)
{
    set_defaults(c);
    if (apply_env(c) != 0)
        return CONFIG_ERROR;
    int opt;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (opt == OPT_HELP || opt == 'h') {
            fputs(usage, stdout);
            return CONFIG_EXIT;
        }
        if (opt == OPT_VERSION) {
            printf("aipal-api (libaipalq %s)\n", aipalq_version_string());
            return CONFIG_EXIT;
        }
        if (opt == '?' || apply(c, opt, optarg) != 0) {
            fprintf(stderr, "aipal-api: bad option or value: %s%s%s (see --help)\n",
                    option_name(opt, argv[optind - 1]), optarg ? " " : "", optarg ? optarg : "");
            return CONFIG_ERROR;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "aipal-api: unexpected argument: %s\n", argv[optind]);
        return CONFIG_ERROR;
    }
    if (c->rate_limit > 0 && c->rate_burst <= 0)
        c->rate_burst = c->rate_limit * 2 < 1 ? 1 : c->rate_limit * 2;
    if (!c->request_timeout_s)
        c->request_timeout_s = c->conn_timeout_s;
    return CONFIG_OK;
}
