/* One HTTP request as the handlers see it, and the steps of its life:
 * admission (route, CORS preflight, rate limit, auth, body limits) when its
 * headers arrive, body accumulation, dispatch to the handler, and the log
 * line and metrics when it completes. */
#ifndef AIPAL_API_REQUEST_H
#define AIPAL_API_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "auth.h"
#include "config.h"
#include "router.h"

struct MHD_Connection;

struct api_request {
    struct MHD_Connection *conn;
    const api_config *cfg;
    const char *method; /* MHD's string; valid for the request's life */
    char path[512];
    int route_index; /* -1: no route */
    const api_route *route;
    const api_op *op;
    char params[API_MAX_PARAMS][API_PARAM_SIZE];
    char request_id[68];
    char origin[256];
    char remote[64];
    int64_t start_us;
    auth_role role;
    char *body;
    size_t body_len, body_cap, body_seen;
    bool body_too_large;
    cJSON *json;     /* the parsed body of a json_body operation (NULL when empty) */
    unsigned status; /* of the response; of a coalesced request, the status its batch
                       decided, logged even when the client left before the answer */
    bool responded;
    bool admitted; /* request_admit ran */
    bool stream;   /* an event stream: logged when it ends */
    /* A request handed to a coalescer (coalesce.h) until its batch ran:
     * `finish` then answers it; `work` is the handler's state meanwhile. */
    void (*finish)(api_request *rq);
    void *work;
    void (*work_free)(void *work);
};

/* A request header or query parameter; NULL when absent. */
const char *rq_header(const api_request *rq, const char *name);
const char *rq_query(const api_request *rq, const char *name);

/* Creates the state of a request whose headers have arrived; NULL when
 * memory runs out. */
api_request *request_new(struct MHD_Connection *conn, const api_config *cfg, const char *url,
                         const char *method);

/* Whether the request announces a body (Content-Length > 0 or chunked). */
bool request_has_body(const api_request *rq);

/* Admission: returns true when a response (an error, or a preflight answer)
 * was queued and the request is finished. */
bool request_admit(api_request *rq);

/* Takes a chunk of the body. Returns false when the client sent so much
 * beyond the limit that the connection should be dropped. */
bool request_take_body(api_request *rq, const char *data, size_t size);

/* The body is complete: checks it and calls the handler. */
void request_dispatch(api_request *rq);

/* The request is over (response sent, or the client went away): logs it,
 * counts it and frees it. */
void request_complete(api_request *rq);

#endif
