/* Embedded pages and the OpenAPI document. */
#include <microhttpd.h>

#include "assets.h"
#include "handlers.h"
#include "openapi.h"
#include "respond.h"

void h_asset(api_request *rq)
{
    const api_asset *a = assets_find(rq->path);
    if (!a) {
        respond_error(rq, 404, "not_found", "no such page");
        return;
    }
    respond_static(rq, 200, a->content_type, a->data, *a->len);
}

void h_openapi(api_request *rq)
{
    size_t len;
    const char *text = openapi_text(&len);
    respond_static(rq, 200, "application/json", text, len);
}
