/* Enqueues N tasks of one type in one batch and prints their ids, one a line.
 *
 *   AIPALQ_REDIS_URL=... AIPALQ_DATABASE_URL=... \
 *   ./producer [-n NAMESPACE] [-q QUEUE] [-p PARAMS_JSON] TYPE N
 *
 * The type is defined on queue QUEUE (default "default"). Every task gets the
 * params {"n": i} (i = 0..N-1), or PARAMS_JSON when given. Used by the Python
 * bindings' tests to feed a Python worker from C. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aipal/aipalq.h>

static int usage(void)
{
    fprintf(stderr, "usage: producer [-n NAMESPACE] [-q QUEUE] [-p PARAMS_JSON] TYPE N\n");
    return 2;
}

static int fail(aipalq_client *c, const char *what)
{
    fprintf(stderr, "producer: %s: %s (%s)\n", what, aipalq_client_errmsg(c),
            aipalq_status_name(aipalq_client_errcode(c)));
    aipalq_client_free(c);
    return 1;
}

int main(int argc, char **argv)
{
    const char *ns = NULL, *queue = "default", *params = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "n:q:p:")) != -1) {
        switch (opt) {
        case 'n':
            ns = optarg;
            break;
        case 'q':
            queue = optarg;
            break;
        case 'p':
            params = optarg;
            break;
        default:
            return usage();
        }
    }
    if (argc - optind != 2)
        return usage();
    const char *type = argv[optind];
    char *end = NULL;
    long n = strtol(argv[optind + 1], &end, 10);
    if (!end || *end || n < 0 || n > 1000000)
        return usage();

    aipalq_client *c = aipalq_client_new(NULL, NULL);
    if (!c)
        return 1;
    if (ns && aipalq_client_set_namespace(c, ns) != AIPALQ_OK)
        return fail(c, "namespace");
    if (aipalq_migrate(c) != AIPALQ_OK)
        return fail(c, "migrate");
    if (aipalq_type_define(c, type, queue) != AIPALQ_OK)
        return fail(c, "define type");

    aipalq_batch *b = aipalq_batch_new();
    if (!b)
        return fail(c, "out of memory");
    for (long i = 0; i < n; i++) {
        char buf[48];
        snprintf(buf, sizeof buf, "{\"n\":%ld}", i);
        if (aipalq_batch_add(b, type, params ? params : buf, NULL) != AIPALQ_OK) {
            aipalq_batch_free(b);
            return fail(c, "batch add");
        }
    }
    if (n > 0 && aipalq_enqueue_batch(c, b) != AIPALQ_OK) {
        aipalq_batch_free(b);
        return fail(c, "enqueue");
    }
    for (long i = 0; i < n; i++)
        printf("%s\n", aipalq_batch_id(b, (size_t)i));
    aipalq_batch_free(b);
    aipalq_client_free(c);
    return fflush(stdout) == 0 ? 0 : 1;
}
