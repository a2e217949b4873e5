/* Routes: every path pattern the daemon serves, its methods, handlers,
 * access levels and documentation. The one table that both dispatching and
 * the OpenAPI document are built from, so the two cannot disagree. */
#ifndef AIPAL_API_ROUTER_H
#define AIPAL_API_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

typedef struct api_request api_request;
typedef void (*api_handler)(api_request *rq);

typedef enum api_access {
    ACCESS_OPEN,  /* no key needed (docs, index) */
    ACCESS_PROBE, /* health and metrics: open unless --open-metrics=false */
    ACCESS_READ,  /* a read-only or read-write key */
    ACCESS_WRITE, /* a read-write key */
} api_access;

/* Documented error statuses beyond the ones derived from an operation's
 * access level and body (401, 403, 400, 413, 415, 429, 500). */
enum {
    DOC_400 = 1 << 0, /* bad query parameters */
    DOC_404 = 1 << 1,
    DOC_409 = 1 << 2,
    DOC_503 = 1 << 3,
};

typedef struct api_op {
    const char *method;
    api_handler handler;
    api_access access;
    bool json_body; /* takes a JSON body: 400 (bad JSON), 413, 415 apply */
    const char *operation_id;
    const char *tag;
    const char *summary;
    const char *description;
    const char *request_schema;  /* a components/schemas name, or NULL */
    int status;                  /* the success status */
    const char *response_schema; /* a components/schemas name, or NULL */
    const char *content_type;    /* of the success response */
    const char *const *query;    /* NULL-terminated components/parameters names */
    unsigned errors;             /* DOC_* flags */
} api_op;

#define API_MAX_OPS 3

typedef struct api_route {
    const char *pattern; /* "/api/tasks/status/{task_id}" */
    api_op ops[API_MAX_OPS];
} api_route;

#define API_MAX_PARAMS 2
#define API_PARAM_SIZE 128

size_t routes_count(void);
const api_route *routes_at(size_t i);

/* Finds the first route whose pattern matches `path` (one trailing slash is
 * ignored); fills params with the {placeholders}' values in order. Returns
 * its index, or -1. */
int router_match(const char *path, char params[API_MAX_PARAMS][API_PARAM_SIZE]);

/* The operation of a route for a method (HEAD is served as GET), or NULL. */
const api_op *router_op(const api_route *r, const char *method);

/* "GET, HEAD, OPTIONS" for the Allow header. */
void router_allow(const api_route *r, char *buf, size_t len);

#endif
