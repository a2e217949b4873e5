/* Thread-local libaipalq clients. */
#include <pthread.h>

#include "catalog.h"
#include "log.h"
#include "tlclient.h"

/* Short timeouts: a request should fail fast when a server is down. */
#define CONNECT_TIMEOUT_MS 2000
#define COMMAND_TIMEOUT_MS 5000

static pthread_key_t key;
static const api_config *config;

static void destroy(void *client)
{
    aipalq_client_free(client);
}

int tlclient_init(const api_config *cfg)
{
    config = cfg;
    return pthread_key_create(&key, destroy) == 0 ? 0 : -1;
}

aipalq_client *tlclient_new(void)
{
    aipalq_client *c = aipalq_client_new(config->redis_url, config->database_url);
    if (!c)
        return NULL;
    aipalq_status st =
        config->namespace_ ? aipalq_client_set_namespace(c, config->namespace_) : AIPALQ_OK;
    if (st == AIPALQ_OK)
        st = aipalq_client_set_timeouts(c, CONNECT_TIMEOUT_MS, COMMAND_TIMEOUT_MS);
    if (st == AIPALQ_OK)
        st = aipalq_client_set_list_total_max_age(c, config->list_total_max_age_ms);
    if (st == AIPALQ_OK)
        st = catalog_define_all(c);
    if (st != AIPALQ_OK) {
        log_msg("error", "cannot configure a queue client: %s", aipalq_client_errmsg(c));
        aipalq_client_free(c);
        return NULL;
    }
    return c;
}

aipalq_client *tlclient_get(void)
{
    aipalq_client *c = pthread_getspecific(key);
    if (c)
        return c;
    c = tlclient_new();
    if (c && pthread_setspecific(key, c) != 0) {
        aipalq_client_free(c);
        return NULL;
    }
    return c;
}
