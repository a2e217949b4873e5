/* Files embedded in the binary (tools/embed.py) and the paths they are
 * served at: the index page and the docs page now, the dashboard later. */
#ifndef AIPAL_API_ASSETS_H
#define AIPAL_API_ASSETS_H

#include <stddef.h>

typedef struct api_asset {
    const char *path;
    const char *content_type;
    const unsigned char *data;
    const size_t *len;
} api_asset;

/* The asset served at `path` (one trailing slash ignored), or NULL. */
const api_asset *assets_find(const char *path);

#endif
