/* CORS allowlist. */
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "cors.h"

static char **origins;
static size_t norigins;
static bool any_origin;

int cors_init(const char *list)
{
    while (list && *list) {
        const char *comma = strchr(list, ',');
        size_t len = comma ? (size_t)(comma - list) : strlen(list);
        while (len && *list == ' ')
            list++, len--;
        while (len && list[len - 1] == ' ')
            len--;
        if (len == 1 && list[0] == '*') {
            any_origin = true;
        } else if (len) {
            char **grown = realloc(origins, (norigins + 1) * sizeof *origins);
            if (!grown)
                return -1;
            origins = grown;
            origins[norigins] = strndup(list, len);
            if (!origins[norigins])
                return -1;
            /* a trailing slash never appears in an Origin header */
            if (len > 1 && origins[norigins][len - 1] == '/')
                origins[norigins][len - 1] = '\0';
            norigins++;
        }
        list = comma ? comma + 1 : NULL;
    }
    return 0;
}

bool cors_enabled(void)
{
    return any_origin || norigins > 0;
}

bool cors_origin_allowed(const char *origin)
{
    if (!origin || !*origin)
        return false;
    if (any_origin)
        return true;
    for (size_t i = 0; i < norigins; i++)
        if (strcmp(origins[i], origin) == 0)
            return true;
    return false;
}

void cors_add_headers(struct MHD_Response *r, const char *origin)
{
    if (!cors_origin_allowed(origin))
        return;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
    MHD_add_response_header(r, "Vary", "Origin");
    MHD_add_response_header(r, "Access-Control-Expose-Headers",
                            "X-Request-Id, Retry-After, Location");
}

void cors_add_preflight_headers(struct MHD_Response *r, const char *allow)
{
    MHD_add_response_header(r, "Access-Control-Allow-Methods", allow);
    MHD_add_response_header(r, "Access-Control-Allow-Headers",
                            "Authorization, Content-Type, Idempotency-Key, X-Request-Id, "
                            "Last-Event-ID");
    MHD_add_response_header(r, "Access-Control-Max-Age", "600");
}

void cors_free(void)
{
    for (size_t i = 0; i < norigins; i++)
        free(origins[i]);
    free(origins);
    origins = NULL;
    norigins = 0;
    any_origin = false;
}
