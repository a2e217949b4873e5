/* The daemon's configuration: command-line flags, with environment
 * variables as fallbacks. Parsed once at start, read-only afterwards. */
#ifndef AIPAL_API_CONFIG_H
#define AIPAL_API_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct api_config {
    char listen_host[256];
    unsigned listen_port;
    const char *redis_url;    /* NULL: the library's default (AIPALQ_REDIS_URL, ...) */
    const char *database_url; /* NULL: the library's default */
    const char *namespace_;   /* Redis key namespace; NULL: the library's default */
    const char *keys_file;
    const char *cors_origins; /* comma-separated allowlist; NULL: CORS off */
    int threads;
    size_t max_body_bytes;
    unsigned conn_timeout_s;
    unsigned request_timeout_s; /* a whole request within this; 0 at parse: conn_timeout_s */
    unsigned conn_limit;
    unsigned per_ip_limit;
    double rate_limit; /* requests per second per client; 0: off */
    double rate_burst;
    bool open_metrics; /* health and metrics without a key */
    bool allow_root;
    unsigned drain_timeout_s;
    unsigned max_sse_clients;
    unsigned events_poll_ms;
    unsigned coalesce_max;          /* most requests served by one batch; 0: no coalescing */
    unsigned coalesce_threads;      /* threads serving each kind's batches */
    unsigned list_total_max_age_ms; /* a list's total may be reused this long */
} api_config;

/* Outcomes of config_parse. */
enum { CONFIG_OK = 0, CONFIG_EXIT = 1, CONFIG_ERROR = 2 };

/* Fills `c` from argv and the environment. Prints --help/--version and
 * returns CONFIG_EXIT; prints a message to stderr and returns CONFIG_ERROR
 * for a bad flag. */
int config_parse(api_config *c, int argc, char **argv);

#endif
