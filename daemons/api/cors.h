/* CORS: an allowlist of origins (or "*"), set once at start. */
#ifndef AIPAL_API_CORS_H
#define AIPAL_API_CORS_H

#include <stdbool.h>

struct MHD_Response;

/* origins: comma-separated, or "*" for any; NULL or "": CORS off. */
int cors_init(const char *origins);
bool cors_enabled(void);
bool cors_origin_allowed(const char *origin);

/* Adds Access-Control-Allow-Origin (and friends) for an allowed origin. */
void cors_add_headers(struct MHD_Response *r, const char *origin);

/* Adds the preflight answer's headers: allowed methods (`allow`), headers
 * and max age. */
void cors_add_preflight_headers(struct MHD_Response *r, const char *allow);

void cors_free(void);

#endif
