/* Open-addressing set of id hashes. */
#include <stdlib.h>
#include <string.h>

#include "idset.h"
#include "util.h"

static bool insert(idset_entry *slots, size_t cap, uint64_t h, int64_t ms)
{
    size_t i = (size_t)(h & (cap - 1));
    while (slots[i].hash) {
        if (slots[i].hash == h)
            return false;
        i = (i + 1) & (cap - 1);
    }
    slots[i] = (idset_entry){h, ms};
    return true;
}

/* Rebuilds into `cap` slots keeping entries from `keep_from_ms` on. */
static bool rebuild(idset *s, size_t cap, int64_t keep_from_ms)
{
    idset_entry *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return false;
    size_t count = 0;
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i].hash && s->slots[i].ms >= keep_from_ms)
            count += insert(slots, cap, s->slots[i].hash, s->slots[i].ms);
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    s->count = count;
    return true;
}

bool idset_add(idset *s, const char *id, int64_t ms)
{
    if ((s->count + 1) * 2 > s->cap && !rebuild(s, s->cap ? s->cap * 2 : 1024, INT64_MIN))
        return false;
    uint64_t h = util_hash64(id, strlen(id), 0) | 1;
    if (!insert(s->slots, s->cap, h, ms))
        return false;
    s->count++;
    return true;
}

void idset_prune(idset *s, int64_t before_ms)
{
    if (s->cap)
        rebuild(s, s->count * 4 > 1024 ? s->cap : (s->cap > 1024 ? s->cap / 2 : s->cap), before_ms);
}

void idset_clear(idset *s)
{
    free(s->slots);
    memset(s, 0, sizeof *s);
}
