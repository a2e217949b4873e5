/* A set of recently seen ids (64-bit hashes with a time), for the event
 * poller's overlap window: an id seen once is not announced twice. Used by
 * one thread only. */
#ifndef AIPAL_API_IDSET_H
#define AIPAL_API_IDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct idset_entry {
    uint64_t hash; /* 0: empty slot */
    int64_t ms;
} idset_entry;

typedef struct idset {
    idset_entry *slots;
    size_t cap, count;
} idset;

/* Adds an id; returns false when it was already there (or memory ran out). */
bool idset_add(idset *s, const char *id, int64_t ms);

/* Forgets ids older than `before_ms`. */
void idset_prune(idset *s, int64_t before_ms);

void idset_clear(idset *s);

#endif
