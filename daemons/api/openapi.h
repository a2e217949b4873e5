/* The OpenAPI 3 document, built once at start from the route table, the
 * task catalog and the configuration (auth, rate limit), so that it
 * describes exactly what is served. */
#ifndef AIPAL_API_OPENAPI_H
#define AIPAL_API_OPENAPI_H

#include <stddef.h>

#include "config.h"

/* Builds the document; 0, or -1 when memory runs out or the embedded base
 * is malformed. */
int openapi_build(const api_config *cfg);

/* The document's JSON text (valid after openapi_build). */
const char *openapi_text(size_t *len);

void openapi_free(void);

#endif
