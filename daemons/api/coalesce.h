/* Coalescing: requests of one kind that arrive together are served by one
 * library call (aipalq_get_many, aipalq_enqueue_batch) instead of one round
 * trip each.
 *
 * A handler hands its request to a coalescer and returns at once; the
 * request's connection is suspended. A coalescer's thread takes every
 * request waiting (up to its batch size), runs them as one batch, then
 * resumes their connections; each request's `finish` then answers it on an
 * HTTP thread. While one batch runs the next one gathers, so batches grow
 * with the load and a lone request waits for nobody: the same idea as
 * PostgreSQL's group commit. */
#ifndef AIPAL_API_COALESCE_H
#define AIPAL_API_COALESCE_H

#include <stdbool.h>
#include <stddef.h>

#include "request.h"

typedef struct coalescer coalescer;

/* Runs a batch on the coalescer's thread: fills each request's `work` with
 * the outcome. Must not respond. */
typedef void (*coalesce_run_fn)(api_request **rqs, size_t n);

/* Starts a coalescer and its threads (each serves a batch at a time: two
 * overlap one batch's round trips with the next one's work); NULL when that
 * fails. `name` (a static string) labels its metrics. Main thread, before
 * the server starts. */
coalescer *coalescer_start(const char *name, size_t max_batch, unsigned threads,
                           coalesce_run_fn run);

/* From a handler: suspends the request and queues it with its `work` (owned
 * by the request from now on: `work_free` frees it when the request ends).
 * `finish` is called once the batch ran, on an HTTP thread, and must queue
 * the response. Returns false, leaving the request as it was, when the
 * coalescer is stopping or memory runs out: the handler then serves it
 * itself. */
bool coalescer_submit(coalescer *co, api_request *rq, void (*finish)(api_request *rq), void *work,
                      void (*work_free)(void *work));

/* Serves every request still queued and stops the thread; submits are
 * refused from now on. Before the HTTP server stops: it cannot stop with
 * suspended connections. Main thread; NULL is a no-op. */
void coalescer_stop(coalescer *co);

/* Stops it if needed and frees it, once no HTTP thread can submit (after the
 * server stopped). NULL is a no-op. */
void coalescer_free(coalescer *co);

#endif
