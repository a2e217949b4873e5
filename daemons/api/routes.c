/* The route table: what the daemon serves, who may call it, and how it is
 * documented. Dispatch and the OpenAPI document are both built from it. */
#include "handlers.h"
#include "router.h"

static const char *const list_query[] = {"limit", "offset",  "status", "task_type", "type",
                                         "queue", "user_id", "order",  NULL};
static const char *const view_query[] = {"limit_short", "offset", NULL};
static const char *const workers_query[] = {"dead_after_ms", NULL};
static const char *const events_query[] = {"event_task_id", "event_type", "event_queue",
                                           "access_token", NULL};
static const char *const submit_query[] = {"idempotency_key", NULL};

#define JSON "application/json"

#define SEED_SUBMIT(fn, id, what, type)                                                            \
    {                                                                                              \
        .method = "POST", .handler = (fn), .access = ACCESS_WRITE, .json_body = true,              \
        .operation_id = (id), .tag = "seed", .summary = "Submit " what " (" type ")",              \
        .description = "The original endpoint: a TaskSubmitRequest whose parameters are checked "  \
                       "against the " type " schema. A user_id given beside the parameters is "    \
                       "used when the parameters do not name one.",                                \
        .request_schema = "TaskSubmitRequest_" type, .status = 200,                                \
        .response_schema = "TaskSubmitResponse", .content_type = JSON, .errors = DOC_503           \
    }

/* One embedded file of the dashboard. */
#define DASHBOARD_FILE(path, id, what, type)                                                       \
    {                                                                                              \
        (path), {                                                                                  \
            {.method = "GET", .handler = h_asset, .access = ACCESS_OPEN, .operation_id = (id),     \
             .tag = "docs", .summary = (what), .status = 200, .content_type = (type)}              \
        }                                                                                          \
    }

static const api_route routes[] = {
    {"/",
     {{.method = "GET",
       .handler = h_asset,
       .access = ACCESS_OPEN,
       .operation_id = "index",
       .tag = "docs",
       .summary = "Dashboard",
       .description = "The dashboard: tasks (live), submission, workers, queues and "
                      "throughput. Its scripts and styles are the /dashboard/ files.",
       .status = 200,
       .content_type = "text/html"}}},
    DASHBOARD_FILE("/dashboard/app.js", "dashboardApp", "The dashboard's main module",
                   "text/javascript"),
    DASHBOARD_FILE("/dashboard/form.js", "dashboardForm",
                   "The dashboard's submission form (built from the type schemas)",
                   "text/javascript"),
    DASHBOARD_FILE("/dashboard/chart.js", "dashboardChart", "The dashboard's throughput chart",
                   "text/javascript"),
    DASHBOARD_FILE("/dashboard/style.css", "dashboardStyle", "The dashboard's styles", "text/css"),
    DASHBOARD_FILE("/dashboard/icon.svg", "dashboardIcon", "The dashboard's icon",
                   "image/svg+xml"),
    {"/docs",
     {{.method = "GET",
       .handler = h_asset,
       .access = ACCESS_OPEN,
       .operation_id = "docs",
       .tag = "docs",
       .summary = "API documentation",
       .description = "Renders this OpenAPI document (no external resources).",
       .status = 200,
       .content_type = "text/html"}}},
    {"/openapi.json",
     {{.method = "GET",
       .handler = h_openapi,
       .access = ACCESS_OPEN,
       .operation_id = "openapi",
       .tag = "docs",
       .summary = "This OpenAPI document",
       .status = 200,
       .content_type = JSON}}},
    {"/metrics",
     {{.method = "GET",
       .handler = h_metrics,
       .access = ACCESS_PROBE,
       .operation_id = "metrics",
       .tag = "system",
       .summary = "Prometheus metrics",
       .description = "Tasks by type and state, queue depths, workers, API requests by route "
                      "and status, request durations. Not rate limited.",
       .status = 200,
       .content_type = "text/plain"}}},
    {"/api/tasks/health",
     {{.method = "GET",
       .handler = h_health,
       .access = ACCESS_PROBE,
       .operation_id = "health",
       .tag = "seed",
       .summary = "Health of the task system",
       .description = "Pings Redis and PostgreSQL. 503 names the one that is down. Not rate "
                      "limited.",
       .status = 200,
       .response_schema = "HealthResponse",
       .content_type = JSON,
       .errors = DOC_503}}},
    {"/api/tasks/ari/aggregate-snapshots",
     {SEED_SUBMIT(h_submit_ari, "submitAriAggregateSnapshots", "an ARI snapshot aggregation",
                  "aggregate_ari_snapshots")}},
    {"/api/tasks/ffe/plan-goal",
     {SEED_SUBMIT(h_submit_ffe, "submitFfePlanGoal", "an FFE goal planning", "plan_ffe_goal")}},
    {"/api/tasks/edm/batch-analysis",
     {SEED_SUBMIT(h_submit_edm, "submitEdmBatchAnalysis", "an EDM batch analysis",
                  "edm_batch_analysis")}},
    {"/api/tasks/status/{task_id}",
     {{.method = "GET",
       .handler = h_task_status,
       .access = ACCESS_READ,
       .operation_id = "getTaskStatus",
       .tag = "seed",
       .summary = "Status of a task",
       .status = 200,
       .response_schema = "TaskStatusResponse",
       .content_type = JSON,
       .errors = DOC_404 | DOC_503}}},
    {"/api/tasks/list",
     {{.method = "GET",
       .handler = h_task_list,
       .access = ACCESS_READ,
       .operation_id = "listTasks",
       .tag = "seed",
       .summary = "List tasks (paginated)",
       .description = "Newest first unless order=oldest; filters combine.",
       .status = 200,
       .response_schema = "TaskListResponse",
       .content_type = JSON,
       .query = list_query,
       .errors = DOC_400 | DOC_503}}},
    {"/api/tasks/pending",
     {{.method = "GET",
       .handler = h_task_pending,
       .access = ACCESS_READ,
       .operation_id = "listPendingTasks",
       .tag = "seed",
       .summary = "Tasks waiting to run (pending, scheduled, retrying), oldest first",
       .status = 200,
       .response_schema = "TaskListResponse",
       .content_type = JSON,
       .query = view_query,
       .errors = DOC_400 | DOC_503}}},
    {"/api/tasks/failed",
     {{.method = "GET",
       .handler = h_task_failed,
       .access = ACCESS_READ,
       .operation_id = "listFailedTasks",
       .tag = "seed",
       .summary = "Failed tasks, newest first",
       .status = 200,
       .response_schema = "TaskListResponse",
       .content_type = JSON,
       .query = view_query,
       .errors = DOC_400 | DOC_503}}},
    {"/api/tasks/types",
     {{.method = "GET",
       .handler = h_task_types,
       .access = ACCESS_READ,
       .operation_id = "listTaskTypes",
       .tag = "tasks",
       .summary = "The task types, their settings and parameter schemas",
       .status = 200,
       .response_schema = "TaskTypesResponse",
       .content_type = JSON}}},
    {"/api/tasks/events",
     {{.method = "GET",
       .handler = h_events,
       .access = ACCESS_READ,
       .operation_id = "streamTaskEvents",
       .tag = "tasks",
       .summary = "Server-Sent Events of task state changes",
       .description = "A text/event-stream: every state change is an `event: task` whose data "
                      "is a TaskEvent (transitions carry `id:` = event_id; new tasks are "
                      "announced with kind `created`). A comment line is sent every 15 s. "
                      "Filters narrow the stream. Browsers' EventSource cannot send headers: "
                      "the key may be given as access_token.",
       .status = 200,
       .response_schema = "TaskEvent",
       .content_type = "text/event-stream",
       .query = events_query,
       .errors = DOC_400 | DOC_503}}},
    {"/api/tasks/batch",
     {{.method = "POST",
       .handler = h_submit_batch,
       .access = ACCESS_WRITE,
       .json_body = true,
       .operation_id = "submitTaskBatch",
       .tag = "tasks",
       .summary = "Submit many tasks at once",
       .description = "All or nothing: every item is checked first, and any invalid item fails "
                      "the whole batch with field errors named tasks[i].field; then all are "
                      "written in one transaction.",
       .request_schema = "BatchRequest",
       .status = 202,
       .response_schema = "BatchResponse",
       .content_type = JSON,
       .errors = DOC_503}}},
    {"/api/tasks",
     {{.method = "GET",
       .handler = h_task_list,
       .access = ACCESS_READ,
       .operation_id = "listTasksRest",
       .tag = "tasks",
       .summary = "List tasks (same as /api/tasks/list)",
       .status = 200,
       .response_schema = "TaskListResponse",
       .content_type = JSON,
       .query = list_query,
       .errors = DOC_400 | DOC_503},
      {.method = "POST",
       .handler = h_submit_task,
       .access = ACCESS_WRITE,
       .json_body = true,
       .operation_id = "submitTask",
       .tag = "tasks",
       .summary = "Submit a task of any type",
       .description = "202 when a task was created; 200 when an unfinished task already holds "
                      "the idempotency key (its id is returned). The Idempotency-Key header "
                      "is used when the body has no idempotency_key.",
       .request_schema = "SubmitTask",
       .status = 202,
       .response_schema = "SubmitTaskResponse",
       .content_type = JSON,
       .query = submit_query,
       .errors = DOC_503}}},
    {"/api/tasks/{task_id}",
     {{.method = "GET",
       .handler = h_task_status,
       .access = ACCESS_READ,
       .operation_id = "getTask",
       .tag = "tasks",
       .summary = "A task",
       .status = 200,
       .response_schema = "TaskStatusResponse",
       .content_type = JSON,
       .errors = DOC_404 | DOC_503},
      {.method = "DELETE",
       .handler = h_task_cancel,
       .access = ACCESS_WRITE,
       .operation_id = "cancelTask",
       .tag = "seed",
       .summary = "Cancel a task",
       .description = "A waiting task is cancelled at once; a running one gets a cancel "
                      "request its worker sees within a second (status stays running). 409 "
                      "for a task already completed, failed or cancelled.",
       .status = 200,
       .response_schema = "CancelResponse",
       .content_type = JSON,
       .errors = DOC_404 | DOC_409 | DOC_503}}},
    {"/api/tasks/{task_id}/retry",
     {{.method = "POST",
       .handler = h_task_retry,
       .access = ACCESS_WRITE,
       .operation_id = "retryTask",
       .tag = "seed",
       .summary = "Retry a failed or cancelled task",
       .description = "Queues the same task again with a fresh attempt budget. 409 for a task "
                      "that is pending, running or completed. No body.",
       .status = 200,
       .response_schema = "TaskSubmitResponse",
       .content_type = JSON,
       .errors = DOC_404 | DOC_409 | DOC_503}}},
    {"/api/workers",
     {{.method = "GET",
       .handler = h_workers,
       .access = ACCESS_READ,
       .operation_id = "listWorkers",
       .tag = "system",
       .summary = "Workers in the registry",
       .status = 200,
       .response_schema = "WorkersResponse",
       .content_type = JSON,
       .query = workers_query,
       .errors = DOC_400 | DOC_503}}},
    {"/api/queues",
     {{.method = "GET",
       .handler = h_queues,
       .access = ACCESS_READ,
       .operation_id = "listQueues",
       .tag = "system",
       .summary = "Depth of each queue (Redis) and its tasks by state (PostgreSQL)",
       .status = 200,
       .response_schema = "QueuesResponse",
       .content_type = JSON,
       .errors = DOC_503}}},
};

size_t routes_count(void)
{
    return sizeof routes / sizeof routes[0];
}

const api_route *routes_at(size_t i)
{
    return i < routes_count() ? &routes[i] : NULL;
}
