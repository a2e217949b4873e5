/* API keys: Bearer tokens, read-only or read-write, loaded once at start
 * from a file and/or the environment, compared in constant time. The key
 * table is immutable after auth_load, so checks take no lock. */
#ifndef AIPAL_API_AUTH_H
#define AIPAL_API_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum auth_role { AUTH_NONE = 0, AUTH_RO = 1, AUTH_RW = 2 } auth_role;

/* Loads keys from `keys_file` (may be NULL) and from AIPALQ_API_KEYS_RW /
 * AIPALQ_API_KEYS_RO. Returns 0, or -1 with a message in err (which never
 * contains a key). */
int auth_load(const char *keys_file, char *err, size_t errlen);

/* Number of keys configured; 0 means authentication is off. */
size_t auth_key_count(void);

/* The role of a presented token (NULL or unknown: AUTH_NONE). Every key is
 * compared, in time independent of where the token differs. *key_id gets a
 * stable identifier of the matching key (for rate limiting), else 0. */
auth_role auth_check_token(const char *token, uint64_t *key_id);

/* Extracts the token of an "Authorization: Bearer TOKEN" header value;
 * NULL when absent or of another scheme. */
const char *auth_bearer(const char *header);

void auth_free(void);

#endif
