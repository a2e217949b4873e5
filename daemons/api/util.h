/* Small helpers: clocks, time formatting, UTF-8 checks, ids, hashing. */
#ifndef AIPAL_API_UTIL_H
#define AIPAL_API_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Unix time in ms (wall clock). */
int64_t util_now_ms(void);
/* A monotonic clock in microseconds, for durations. */
int64_t util_mono_us(void);
/* ISO 8601 UTC with milliseconds: 2024-01-02T03:04:05.678Z. */
void util_iso8601(int64_t unix_ms, char *buf, size_t len);
/* 1 if the bytes are well-formed UTF-8 (no overlongs, no surrogates). */
bool util_utf8_valid(const char *s, size_t len);
/* A random id of 32 hex digits (from a per-thread generator seeded by the
 * kernel); buf holds at least 33 bytes. */
void util_random_hex(char *buf, size_t nhex);
/* FNV-1a, 64 bits. */
uint64_t util_hash64(const void *data, size_t len, uint64_t seed);
/* Parses a base-10 integer that fills the whole string; false otherwise. */
bool util_parse_i64(const char *s, int64_t *out);

#endif
