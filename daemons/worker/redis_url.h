/* A Redis connection from a URL of the form the library takes:
 * redis://[[user]:password@]host[:port][/db] (default
 * redis://127.0.0.1:6379/0; NULL takes AIPALQ_REDIS_URL). For the tasks
 * that work on Redis keys themselves (cleanup_cache). */
#ifndef AIPAL_WORKER_REDIS_URL_H
#define AIPAL_WORKER_REDIS_URL_H

#include <stddef.h>

#include <hiredis/hiredis.h>

/* Connects, authenticates and selects the database. NULL with a reason in
 * err on failure. Free with redisFree. */
redisContext *redis_connect_url(const char *url, int timeout_ms, char *err, size_t errlen);

#endif
