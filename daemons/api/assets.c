/* The table of embedded files. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "assets.h"

#define ASSET(sym)                                                                                 \
    extern const unsigned char api_asset_##sym[];                                                  \
    extern const size_t api_asset_##sym##_len;
ASSET(index)
ASSET(docs)
ASSET(dash_app)
ASSET(dash_form)
ASSET(dash_chart)
ASSET(dash_style)
ASSET(dash_icon)
#undef ASSET

#define HTML "text/html; charset=utf-8"
#define JS   "text/javascript; charset=utf-8"

static const api_asset assets[] = {
    {"/", HTML, api_asset_index, &api_asset_index_len, true},
    {"/docs", HTML, api_asset_docs, &api_asset_docs_len, false},
    {"/dashboard/app.js", JS, api_asset_dash_app, &api_asset_dash_app_len, true},
    {"/dashboard/form.js", JS, api_asset_dash_form, &api_asset_dash_form_len, true},
    {"/dashboard/chart.js", JS, api_asset_dash_chart, &api_asset_dash_chart_len, true},
    {"/dashboard/style.css", "text/css; charset=utf-8", api_asset_dash_style,
     &api_asset_dash_style_len, true},
    {"/dashboard/icon.svg", "image/svg+xml", api_asset_dash_icon, &api_asset_dash_icon_len, true},
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

void assets_etag(const api_asset *a, char *buf, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < *a->len; i++) {
        h ^= a->data[i];
        h *= 1099511628211ULL;
    }
    snprintf(buf, len, "\"%016llx\"", (unsigned long long)h);
}
