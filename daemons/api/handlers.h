/* The endpoint handlers, one group of resources per file. Each takes an
 * admitted request (route, auth and body checked) and queues exactly one
 * response. */
#ifndef AIPAL_API_HANDLERS_H
#define AIPAL_API_HANDLERS_H

#include "config.h"
#include "request.h"

/* h_submit.c */
void h_submit_ari(api_request *rq);
void h_submit_ffe(api_request *rq);
void h_submit_edm(api_request *rq);
void h_submit_task(api_request *rq);
void h_submit_batch(api_request *rq);
/* The submissions' coalescer (coalesce.h): started before the server,
 * stopped before it stops (every suspended submission answered), freed
 * after. Nothing is coalesced when cfg->coalesce_max is 0. */
int h_submit_start(const api_config *cfg);
void h_submit_stop(void);
void h_submit_free(void);

/* h_status.c: status lookups by id, with a coalescer of their own, started,
 * stopped and freed as the submissions' one. */
void h_task_status(api_request *rq);
int h_status_start(const api_config *cfg);
void h_status_stop(void);
void h_status_free(void);

/* h_tasks.c */
void h_task_list(api_request *rq);
void h_task_pending(api_request *rq);
void h_task_failed(api_request *rq);
void h_task_cancel(api_request *rq);
void h_task_retry(api_request *rq);
void h_task_types(api_request *rq);

/* h_system.c */
void h_health(api_request *rq);
void h_workers(api_request *rq);
void h_queues(api_request *rq);

/* h_metrics.c */
void h_metrics(api_request *rq);

/* h_docs.c */
void h_asset(api_request *rq);
void h_openapi(api_request *rq);

/* sse.c */
void h_events(api_request *rq);

#endif
