/* Files embedded in the binary (tools/embed.py) and the paths they are
 * served at: the dashboard (index page at /, its scripts and styles under
 * /dashboard/) and the docs page. */
#ifndef AIPAL_API_ASSETS_H
#define AIPAL_API_ASSETS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct api_asset {
    const char *path;
    const char *content_type;
    const unsigned char *data;
    const size_t *len;
    bool strict; /* the dashboard's files: a strict Content-Security-Policy */
} api_asset;

/* The asset served at `path` (one trailing slash ignored), or NULL. */
const api_asset *assets_find(const char *path);

/* A strong ETag of the asset's bytes ("\"<16 hex digits>\""); buf of at
 * least 24 bytes. */
void assets_etag(const api_asset *a, char *buf, size_t len);

/* Headers of the dashboard's files: no inline script or style, nothing
 * from other origins, no framing. */
#define ASSETS_CSP                                                                                 \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

#endif
