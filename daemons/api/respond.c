/* Responses and error shapes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "cors.h"
#include "deadline.h"
#include "log.h"
#include "respond.h"
#include "server.h"

void respond_queue(api_request *rq, unsigned status, struct MHD_Response *r)
{
    if (!r || rq->responded) {
        if (r)
            MHD_destroy_response(r);
        return;
    }
    MHD_add_response_header(r, "X-Request-Id", rq->request_id);
    if (rq->origin[0])
        cors_add_headers(r, rq->origin);
    if (server_draining())
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    deadline_disarm(rq->conn); /* answered: sending is not reading a request */
    if (MHD_queue_response(rq->conn, status, r) == MHD_YES) {
        rq->status = status;
        rq->responded = true;
    }
    MHD_destroy_response(r);
}

static void send_text(api_request *rq, unsigned status, const char *content_type, char *text,
                      size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    respond_queue(rq, status, r);
}

void respond_json(api_request *rq, unsigned status, cJSON *body)
{
    char *text = body ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    if (!text) {
        static const char fallback[] = "{\"error\":\"internal_error\"}";
        log_msg("error", "out of memory rendering a response (request %s)", rq->request_id);
        respond_static(rq, 500, "application/json", fallback, sizeof fallback - 1);
        return;
    }
    send_text(rq, status, "application/json", text, strlen(text));
}

void respond_static(api_request *rq, unsigned status, const char *content_type, const void *data,
                    size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    respond_queue(rq, status, r);
}

void respond_take(api_request *rq, unsigned status, const char *content_type, char *data,
                  size_t len)
{
    send_text(rq, status, content_type, data, len);
}

static cJSON *error_body(const char *code)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", code);
    return o;
}

void respond_error(api_request *rq, unsigned status, const char *code, const char *detail)
{
    cJSON *o = error_body(code);
    cJSON_AddStringToObject(o, "detail", detail);
    cJSON_AddStringToObject(o, "request_id", rq->request_id);
    respond_json(rq, status, o);
}

void respond_validation(api_request *rq, cJSON *errors)
{
    cJSON *o = error_body("validation_error");
    cJSON_AddItemToObject(o, "detail", errors);
    cJSON_AddStringToObject(o, "request_id", rq->request_id);
    respond_json(rq, 400, o);
}

void respond_field_error(api_request *rq, const char *field, const char *error)
{
    cJSON *errors = cJSON_CreateArray();
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "field", field);
    cJSON_AddStringToObject(e, "error", error);
    cJSON_AddItemToArray(errors, e);
    respond_validation(rq, errors);
}

void respond_internal(api_request *rq, const char *what)
{
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "request_id", rq->request_id);
    cJSON_AddStringToObject(f, "path", rq->path);
    cJSON_AddStringToObject(f, "error", what ? what : "");
    log_json("error", "internal error", f);
    respond_error(rq, 500, "internal_error",
                  "the server failed to handle the request; quote the request id when "
                  "reporting it");
}

static void respond_unavailable(api_request *rq, const char *errmsg, aipalq_status st,
                                const char *doing)
{
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "request_id", rq->request_id);
    cJSON_AddStringToObject(f, "doing", doing);
    cJSON_AddStringToObject(f, "status", aipalq_status_name(st));
    cJSON_AddStringToObject(f, "error", errmsg);
    log_json("error", "backend unavailable", f);
    const char *which = st == AIPALQ_EREDIS ? "Redis"
                        : st == AIPALQ_EPG  ? "PostgreSQL"
                                            : "a backend";
    char detail[160];
    snprintf(detail, sizeof detail, "%s is unavailable; try again shortly", which);
    respond_error(rq, 503, "service_unavailable", detail);
}

void respond_lib_failure(api_request *rq, aipalq_status st, const char *errmsg, const char *doing)
{
    switch (st) {
    case AIPALQ_ENOTFOUND:
    case AIPALQ_EBADID:
        respond_error(rq, 404, "not_found", "no task with that id");
        return;
    case AIPALQ_EILLEGAL:
        respond_error(rq, 409, "illegal_transition", errmsg);
        return;
    case AIPALQ_EPG:
    case AIPALQ_EREDIS:
    case AIPALQ_ETIMEOUT:
        respond_unavailable(rq, errmsg, st, doing);
        return;
    default: {
        char what[600];
        snprintf(what, sizeof what, "%s: %s: %s", doing, aipalq_status_name(st), errmsg);
        respond_internal(rq, what);
    }
    }
}

void respond_lib_error(api_request *rq, aipalq_client *c, aipalq_status st, const char *doing)
{
    respond_lib_failure(rq, st, aipalq_client_errmsg(c), doing);
}
