/* One libaipalq client per HTTP thread, created on first use and freed when
 * the thread ends: clients are not thread-safe, and sharing one would put a
 * lock on every request. */
#ifndef AIPAL_API_TLCLIENT_H
#define AIPAL_API_TLCLIENT_H

#include <aipal/aipalq.h>

#include "config.h"

/* Once, before any thread asks for a client. */
int tlclient_init(const api_config *cfg);

/* This thread's client, connected lazily, with the catalog's types defined;
 * NULL only when memory runs out. */
aipalq_client *tlclient_get(void);

/* A new client configured like the threads' ones (for the main thread);
 * free it with aipalq_client_free. */
aipalq_client *tlclient_new(void);

#endif
