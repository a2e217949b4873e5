/* GET /metrics: the Prometheus text format. */
#include <stdlib.h>

#include <aipal/worker.h>

#include "catalog.h"
#include "handlers.h"
#include "metrics.h"
#include "respond.h"
#include "sse.h"
#include "taskcounts.h"
#include "tlclient.h"
#include "util.h"

/* Queue depths from Redis, read at scrape time. */
static int render_depths(metrics_buf *b, aipalq_client *c)
{
    int rc = metrics_printf(b, "# HELP aipal_queue_depth Tasks in a queue's Redis structures, by "
                               "kind: ready, scheduled (delayed or backing off), leased.\n"
                               "# TYPE aipal_queue_depth gauge\n");
    int up = c != NULL;
    for (size_t i = 0; c && i < catalog_queue_count() && rc == 0 && up; i++) {
        int64_t ready, scheduled, leased;
        const char *q = catalog_queue_at(i);
        if (aipalq_queue_depth(c, q, &ready, &scheduled, &leased) != AIPALQ_OK) {
            up = 0;
            break;
        }
        rc = metrics_printf(b,
                            "aipal_queue_depth{queue=\"%s\",kind=\"ready\"} %lld\n"
                            "aipal_queue_depth{queue=\"%s\",kind=\"scheduled\"} %lld\n"
                            "aipal_queue_depth{queue=\"%s\",kind=\"leased\"} %lld\n",
                            q, (long long)ready, q, (long long)scheduled, q, (long long)leased);
    }
    if (rc == 0)
        rc = metrics_printf(b,
                            "# HELP aipal_redis_up Whether Redis answered this scrape.\n"
                            "# TYPE aipal_redis_up gauge\naipal_redis_up %d\n",
                            up);
    return rc;
}

static int render_workers(metrics_buf *b, aipalq_client *c)
{
    char *json = NULL;
    if (!c || aipalq_workers_json(c, 30000, &json) != AIPALQ_OK)
        return 0;
    cJSON *arr = cJSON_Parse(json);
    aipalq_free(json);
    int alive = 0, dead = 0;
    for (const cJSON *w = arr ? arr->child : NULL; w; w = w->next) {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(w, "alive")))
            alive++;
        else
            dead++;
    }
    cJSON_Delete(arr);
    return metrics_printf(b,
                          "# HELP aipal_workers Registered workers by liveness.\n"
                          "# TYPE aipal_workers gauge\n"
                          "aipal_workers{alive=\"true\"} %d\naipal_workers{alive=\"false\"} %d\n",
                          alive, dead);
}

void h_metrics(api_request *rq)
{
    int64_t now = util_now_ms();
    taskcounts_touch(now);
    metrics_buf b = {0};
    aipalq_client *c = tlclient_get();
    int rc = metrics_printf(&b,
                            "# HELP aipal_api_info The API daemon and its library version.\n"
                            "# TYPE aipal_api_info gauge\n"
                            "aipal_api_info{version=\"%s\"} 1\n"
                            "# HELP aipal_api_sse_clients Open event streams.\n"
                            "# TYPE aipal_api_sse_clients gauge\n"
                            "aipal_api_sse_clients %zu\n",
                            aipalq_version_string(), sse_client_count());
    if (rc == 0)
        rc = metrics_render_requests(&b);
    if (rc == 0)
        rc = render_depths(&b, c);
    if (rc == 0)
        rc = render_workers(&b, c);
    if (rc == 0)
        rc = taskcounts_render(&b, now);
    if (rc != 0 || !b.data) {
        free(b.data);
        respond_internal(rq, "out of memory rendering metrics");
        return;
    }
    respond_take(rq, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
}
