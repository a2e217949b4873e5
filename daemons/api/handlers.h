/* The endpoint handlers, one group of resources per file. Each takes an
 * admitted request (route, auth and body checked) and queues exactly one
 * response. */
#ifndef AIPAL_API_HANDLERS_H
#define AIPAL_API_HANDLERS_H

#include "request.h"

/* h_submit.c */
void h_submit_ari(api_request *rq);
void h_submit_ffe(api_request *rq);
void h_submit_edm(api_request *rq);
void h_submit_task(api_request *rq);
void h_submit_batch(api_request *rq);

/* h_tasks.c */
void h_task_status(api_request *rq);
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
