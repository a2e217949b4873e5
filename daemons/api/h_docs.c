/* Embedded pages and the OpenAPI document. */
#include <string.h>

#include <microhttpd.h>

#include "assets.h"
#include "handlers.h"
#include "openapi.h"
#include "respond.h"

/* Embedded files. They change only with the binary, so they are revalidated
 * on every use (no-cache) and a matching If-None-Match gets a 304. */
void h_asset(api_request *rq)
{
    const api_asset *a = assets_find(rq->path);
    if (!a) {
        respond_error(rq, 404, "not_found", "no such page");
        return;
    }
    char etag[24];
    assets_etag(a, etag, sizeof etag);
    const char *inm = rq_header(rq, MHD_HTTP_HEADER_IF_NONE_MATCH);
    bool fresh = inm && strstr(inm, etag);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(fresh ? 0 : *a->len, (void *)a->data,
                                        MHD_RESPMEM_PERSISTENT);
    if (!r)
        return;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, a->content_type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (a->strict) {
        MHD_add_response_header(r, "Content-Security-Policy", ASSETS_CSP);
        MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
        MHD_add_response_header(r, "X-Frame-Options", "DENY");
    }
    respond_queue(rq, fresh ? 304 : 200, r);
}

void h_openapi(api_request *rq)
{
    size_t len;
    const char *text = openapi_text(&len);
    respond_static(rq, 200, "application/json", text, len);
}
