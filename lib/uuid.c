/* UUIDv7 task ids: 48 bits of Unix milliseconds, then a per-thread sequence
 * and random bits, so ids sort by creation time (PostgreSQL partitions and
 * orders tasks by id) and never collide across processes. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "internal.h"

static _Thread_local uint64_t rng_state;
static _Thread_local int64_t last_ms;
static _Thread_local unsigned seq12;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* A forked child continues the forking thread with a copy of its state:
 * without a new seed, children forked by a process that had made ids (a
 * pre-forking server, a test runner) make the same ids as each other in the
 * same millisecond. The child's only thread is the one that forked. */
static void reseed_in_child(void)
{
    rng_state = 0;
    last_ms = 0;
    seq12 = 0;
}

static void watch_forks(void)
{
    (void)pthread_atfork(NULL, NULL, reseed_in_child);
}

static uint64_t next_random(void)
{
    if (rng_state == 0) {
        pthread_once(&atfork_once, watch_forks);
        if (getrandom(&rng_state, sizeof rng_state, 0) != (ssize_t)sizeof rng_state)
            rng_state = (uint64_t)aipalq__monotonic_ms() ^ (uint64_t)(uintptr_t)&rng_state;
        rng_state |= 1;
    }
    /* xorshift64*: fast, and seeded per thread from the kernel. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

void aipalq__uuid7(char *out)
{
    int64_t ms = aipalq__now_ms();
    if (ms <= last_ms) {
        /* Same millisecond (or the clock stepped back): count up so that ids
         * made by one thread stay in order. */
        ms = last_ms;
        if (++seq12 > 0xfff) {
            seq12 = 0;
            ms++;
        }
    } else {
        seq12 = (unsigned)(next_random() & 0x3ff); /* leave room to count up */
    }
    last_ms = ms;
    uint64_t rb = next_random();
    unsigned char b[16];
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)((uint64_t)ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | ((seq12 >> 8) & 0x0f));
    b[7] = (unsigned char)(seq12 & 0xff);
    for (int i = 8; i < 16; i++)
        b[i] = (unsigned char)(rb >> (8 * (i - 8)));
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

bool aipalq__uuid_valid(const char *s)
{
    if (!s || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        char ch = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (ch != '-')
                return false;
        } else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                     (ch >= 'A' && ch <= 'F'))) {
            return false;
        }
    }
    return true;
}
