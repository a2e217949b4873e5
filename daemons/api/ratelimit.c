/* Sharded token buckets. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "ratelimit.h"

#define NSHARDS     64
#define SHARD_SLOTS 1024   /* buckets per shard before idle ones are swept */
#define IDLE_MS     600000 /* a bucket unused this long is forgotten */

typedef struct bucket {
    uint64_t client;
    double tokens;
    int64_t last_ms;
    struct bucket *next;
} bucket;

typedef struct shard {
    pthread_mutex_t lock;
    bucket *heads[SHARD_SLOTS];
    size_t count;
    int64_t last_sweep_ms;
} shard;

static shard *shards;
static double rate, burst;

void ratelimit_init(double r, double b)
{
    rate = r;
    burst = b < 1 ? 1 : b;
    if (rate <= 0)
        return;
    shards = calloc(NSHARDS, sizeof *shards);
    if (!shards) {
        rate = 0;
        return;
    }
    for (int i = 0; i < NSHARDS; i++)
        pthread_mutex_init(&shards[i].lock, NULL);
}

bool ratelimit_enabled(void)
{
    return rate > 0 && shards;
}

/* Drops buckets idle for IDLE_MS (they would be full again anyway). */
static void sweep(shard *s, int64_t now)
{
    s->last_sweep_ms = now;
    for (size_t i = 0; i < SHARD_SLOTS; i++) {
        bucket **pp = &s->heads[i];
        while (*pp) {
            bucket *b = *pp;
            if (now - b->last_ms > IDLE_MS) {
                *pp = b->next;
                free(b);
                s->count--;
            } else {
                pp = &b->next;
            }
        }
    }
}

static bucket *find_or_add(shard *s, uint64_t client, int64_t now)
{
    bucket **head = &s->heads[(client >> 6) % SHARD_SLOTS];
    for (bucket *b = *head; b; b = b->next)
        if (b->client == client)
            return b;
    if (s->count >= SHARD_SLOTS * 4 || now - s->last_sweep_ms > IDLE_MS)
        sweep(s, now);
    bucket *b = malloc(sizeof *b);
    if (!b)
        return NULL;
    *b = (bucket){client, burst, now, *head};
    *head = b;
    s->count++;
    return b;
}

bool ratelimit_take(uint64_t client, int64_t now, int *retry_after_s)
{
    if (!ratelimit_enabled())
        return true;
    shard *s = &shards[client % NSHARDS];
    pthread_mutex_lock(&s->lock);
    bucket *b = find_or_add(s, client, now);
    bool ok = true;
    if (b) {
        double refill = (double)(now - b->last_ms) / 1000.0 * rate;
        b->tokens = fmin(burst, b->tokens + (refill > 0 ? refill : 0));
        b->last_ms = now > b->last_ms ? now : b->last_ms;
        if (b->tokens >= 1) {
            b->tokens -= 1;
        } else {
            ok = false;
            double wait = (1 - b->tokens) / rate;
            *retry_after_s = (int)ceil(wait) < 1 ? 1 : (int)ceil(wait);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return ok;
}

void ratelimit_free(void)
{
    if (!shards)
        return;
    for (int i = 0; i < NSHARDS; i++) {
        for (size_t j = 0; j < SHARD_SLOTS; j++)
            for (bucket *b = shards[i].heads[j], *n; b; b = n) {
                n = b->next;
                free(b);
            }
        pthread_mutex_destroy(&shards[i].lock);
    }
    free(shards);
    shards = NULL;
}
