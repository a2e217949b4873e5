/* The table of embedded files. */
#include <string.h>

#include "assets.h"

extern const unsigned char api_asset_index[], api_asset_docs[];
extern const size_t api_asset_index_len, api_asset_docs_len;

static const api_asset assets[] = {
    {"/", "text/html; charset=utf-8", api_asset_index, &api_asset_index_len},
    {"/docs", "text/html; charset=utf-8", api_asset_docs, &api_asset_docs_len},
};

const api_asset *assets_find(const char *path)
{
    size_t len = strlen(path);
    if (len > 1 && path[len - 1] == '/')
        len--;
    for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++)
        if (strlen(assets[i].path) == len && strncmp(assets[i].path, path, len) == 0)
            return &assets[i];
    return NULL;
}
