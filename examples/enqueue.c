/* Enqueues a few tasks and shows what PostgreSQL records of them.
 *
 *   AIPALQ_REDIS_URL=redis://127.0.0.1:6379/0 \
 *   AIPALQ_DATABASE_URL=postgresql://localhost/aipalq ./enqueue
 *
 * Build against an installed libaipalq:
 *   cc enqueue.c $(pkg-config --cflags --libs aipalq) -o enqueue
 * The same file compiles as C++. */
#include <stdio.h>
#include <stdlib.h>

#include <aipal/aipalq.h>

static int fail(aipalq_client *c, const char *what)
{
    fprintf(stderr, "%s: %s (%s)\n", what, aipalq_client_errmsg(c),
            aipalq_status_name(aipalq_client_errcode(c)));
    aipalq_client_free(c);
    return 1;
}

static void show(aipalq_client *c, const char *id)
{
    aipalq_task *t = NULL;
    if (aipalq_get(c, id, &t) != AIPALQ_OK) {
        fprintf(stderr, "get %s: %s\n", id, aipalq_client_errmsg(c));
        return;
    }
    printf("  %s  %-26s %-12s %-9s priority %d, attempts %d\n", aipalq_task_id(t),
           aipalq_task_type(t), aipalq_task_queue(t), aipalq_state_name(aipalq_task_state(t)),
           aipalq_task_priority(t), aipalq_task_attempts(t));
    aipalq_task_free(t);
}

int main(void)
{
    printf("libaipalq %s\n", aipalq_version_string());
    aipalq_client *c = aipalq_client_new(NULL, NULL); /* URLs from the environment */
    if (!c)
        return 1;
    if (aipalq_migrate(c) != AIPALQ_OK)
        return fail(c, "migrate");
    /* Routing is configuration: the application says which type goes where. */
    const char *types = "["
                        "{\"name\":\"aggregate_ari_snapshots\",\"queue\":\"ari_analysis\"},"
                        "{\"name\":\"plan_ffe_goal\",\"queue\":\"ffe_planning\",\"priority\":7},"
                        "{\"name\":\"echo\",\"queue\":\"default\",\"max_retries\":0}"
                        "]";
    if (aipalq_types_define_json(c, types) != AIPALQ_OK)
        return fail(c, "define types");

    char id1[AIPALQ_ID_SIZE], id2[AIPALQ_ID_SIZE], id3[AIPALQ_ID_SIZE];
    if (aipalq_enqueue(c, "aggregate_ari_snapshots", "{\"time_window_hours\":24}", NULL, id1,
                       NULL) != AIPALQ_OK)
        return fail(c, "enqueue");

    aipalq_opts *o = aipalq_opts_new();
    aipalq_opts_set_priority(o, 9);
    aipalq_opts_set_idempotency_key(o, "example-goal-42");
    int created = 0;
    if (aipalq_enqueue(c, "plan_ffe_goal",
                       "{\"goal_description\":\"Write the quarterly report and review it\"}", o,
                       id2, &created) != AIPALQ_OK)
        return fail(c, "enqueue");
    printf("plan_ffe_goal %s (%s)\n", id2, created ? "created" : "existing task, same key");

    aipalq_opts_set_delay_ms(o, 60000);
    aipalq_opts_set_idempotency_key(o, NULL);
    if (aipalq_enqueue(c, "echo", "{\"hello\":\"later\"}", o, id3, NULL) != AIPALQ_OK)
        return fail(c, "enqueue");
    aipalq_opts_free(o);

    aipalq_batch *b = aipalq_batch_new();
    for (int i = 0; i < 100; i++) {
        char params[64];
        snprintf(params, sizeof params, "{\"n\":%d}", i);
        aipalq_batch_add(b, "echo", params, NULL);
    }
    if (aipalq_enqueue_batch(c, b) != AIPALQ_OK)
        return fail(c, "enqueue batch");
    printf("batch of %zu enqueued, first %s\n", aipalq_batch_size(b), aipalq_batch_id(b, 0));
    aipalq_batch_free(b);

    printf("tasks:\n");
    show(c, id1);
    show(c, id2);
    show(c, id3);

    aipalq_list *l = NULL;
    if (aipalq_list_pending(c, 5, 0, &l) != AIPALQ_OK)
        return fail(c, "list");
    printf("pending view: %lld waiting, oldest first:\n", (long long)aipalq_list_total(l));
    for (size_t i = 0; i < aipalq_list_count(l); i++)
        printf("  %s\n", aipalq_task_json(aipalq_list_at(l, i)));
    aipalq_list_free(l);

    int64_t ready = 0, scheduled = 0, leased = 0;
    if (aipalq_queue_depth(c, "default", &ready, &scheduled, &leased) == AIPALQ_OK)
        printf("queue default in Redis: %lld ready, %lld scheduled, %lld leased\n",
               (long long)ready, (long long)scheduled, (long long)leased);
    aipalq_client_free(c);
    return 0;
}
