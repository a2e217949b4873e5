/* Per-client token buckets (a client is an API key or an IP address).
 * The table is split into shards with a lock each, so concurrent requests of
 * different clients rarely meet on a lock, and no lock is shared by all. */
#ifndef AIPAL_API_RATELIMIT_H
#define AIPAL_API_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* rate: tokens per second (0 disables limiting); burst: bucket size. */
void ratelimit_init(double rate, double burst);
bool ratelimit_enabled(void);

/* Takes a token from the client's bucket. Returns true if the request may
 * proceed; else false with *retry_after_s (>= 1) set. */
bool ratelimit_take(uint64_t client, int64_t now_ms, int *retry_after_s);

void ratelimit_free(void);

#endif
