/* The HTTP server: libmicrohttpd with a pool of threads, each running its
 * own epoll loop; handlers run on those threads. Start, drain and stop. */
#ifndef AIPAL_API_SERVER_H
#define AIPAL_API_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* Starts listening. Returns 0, or -1 with a message in err. */
int server_start(const api_config *cfg, char *err, size_t errlen);

/* The port actually bound (useful with --listen HOST:0). */
unsigned server_port(void);

/* Stops accepting connections; responses from now on close their
 * connection. */
void server_quiesce(void);
bool server_draining(void);

/* Stops the threads and closes every connection. */
void server_stop(void);

#endif
