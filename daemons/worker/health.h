/* The worker's small HTTP port (libmicrohttpd, one internal thread):
 *   GET /healthz  200 while the process serves HTTP (liveness)
 *   GET /readyz   200 when Redis and PostgreSQL answer a ping (on a client
 *                 of its own, 2 s timeouts) and the worker's loop made
 *                 progress within --ready-idle (or every slot is busy, when
 *                 waiting is progress); else 503. The body says which.
 *   GET /metrics  Prometheus text (metrics.h)
 * Anything else is 404; methods other than GET and HEAD are 405. */
#ifndef AIPAL_WORKER_HEALTH_H
#define AIPAL_WORKER_HEALTH_H

#include <stddef.h>

#include <aipal/worker.h>

#include "config.h"
#include "metrics.h"

typedef struct health health;

/* Starts serving on cfg->health_addr:cfg->health_port. `worker` may be NULL
 * until set with health_set_worker. NULL with a reason in err. */
health *health_start(const worker_config *cfg, worker_metrics *metrics, char *err, size_t errlen);
void health_set_worker(health *h, aipalq_worker *w);
/* The port actually bound (useful with port 0 in tests). */
int health_port(const health *h);
void health_stop(health *h);

#endif
