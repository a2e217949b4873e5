/* Responses: JSON bodies, the error shapes, and the mapping of library
 * status codes to HTTP. Every response carries X-Request-Id and, for an
 * allowed origin, the CORS headers. A 500 never shows the client anything
 * but the request id; the details go to the log. */
#ifndef AIPAL_API_RESPOND_H
#define AIPAL_API_RESPOND_H

#include <stddef.h>

#include <aipal/aipalq.h>
#include <cjson/cJSON.h>

#include "request.h"

struct MHD_Response;

/* Adds the common headers and queues `r` (which is then destroyed). */
void respond_queue(api_request *rq, unsigned status, struct MHD_Response *r);

/* Sends `body` as JSON (takes ownership; NULL sends a 500). */
void respond_json(api_request *rq, unsigned status, cJSON *body);

/* Sends bytes that outlive the request (embedded assets, cached docs). */
void respond_static(api_request *rq, unsigned status, const char *content_type, const void *data,
                    size_t len);

/* Sends `data` (malloc'd; taken over and freed). */
void respond_take(api_request *rq, unsigned status, const char *content_type, char *data,
                  size_t len);

/* {"error": code, "detail": detail, "request_id": ...} */
void respond_error(api_request *rq, unsigned status, const char *code, const char *detail);

/* 400 {"error": "validation_error", "detail": [{"field", "error"}...]};
 * takes ownership of `errors`. */
void respond_validation(api_request *rq, cJSON *errors);

/* A single-field validation error. */
void respond_field_error(api_request *rq, const char *field, const char *error);

/* 500: logs `what` (never sent) and answers with the request id only. */
void respond_internal(api_request *rq, const char *what);

/* Maps a failed library call: not found / bad id -> 404, illegal transition
 * -> 409 (with the library's explanation), a server down -> 503, anything
 * else -> 500. */
void respond_lib_error(api_request *rq, aipalq_client *client, aipalq_status st, const char *doing);
/* The same with the library's message given (a request answered after its
 * client moved on: see coalesce.h). */
void respond_lib_failure(api_request *rq, aipalq_status st, const char *errmsg, const char *doing);

#endif
