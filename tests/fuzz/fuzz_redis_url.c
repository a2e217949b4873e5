/* Fuzz target: Redis URL parsing (aipalq__redis_url_parse in lib/url.c).
 * Checks, beyond memory safety: results within their documented ranges,
 * error messages that never echo the URL's credentials, any error buffer
 * size honoured, and a parse -> rebuild -> parse round trip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_redis_url: " __VA_ARGS__);                                           \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

static void check_target(const aipalq__redis_target *t, const char *url)
{
    if (strnlen(t->host, sizeof t->host) >= sizeof t->host ||
        strnlen(t->user, sizeof t->user) >= sizeof t->user ||
        strnlen(t->password, sizeof t->password) >= sizeof t->password)
        FAIL("unterminated field for %s", url);
    if (t->port < 1 || t->port > 65535)
        FAIL("port %d out of range for %s", t->port, url);
    if (t->db < 0 || t->db > 100000)
        FAIL("db %d out of range for %s", t->db, url);
    if (t->unix_socket ? t->host[0] != '/' : t->host[0] == '\0')
        FAIL("bad host '%s' for %s", t->host, url);
}

/* Appends s percent-encoded (every byte) to out. */
static size_t pct(char *out, const char *s)
{
    size_t o = 0;
    for (; *s; s++)
        o += (size_t)sprintf(out + o, "%%%02X", (unsigned char)*s);
    return o;
}

static void round_trip(const aipalq__redis_target *t, const char *url)
{
    char *buf = malloc(4096);
    if (!buf)
        return;
    size_t o = 0;
    if (t->unix_socket) {
        o += (size_t)sprintf(buf, "unix://%s?db=%d", t->host, t->db);
    } else {
        o += (size_t)sprintf(buf, "redis://");
        o += pct(buf + o, t->user);
        buf[o++] = ':';
        o += pct(buf + o, t->password);
        buf[o++] = '@';
        bool bracket = strchr(t->host, ':') || t->host[0] == '[';
        o += (size_t)sprintf(buf + o, bracket ? "[%s]:%d/%d" : "%s:%d/%d", t->host, t->port, t->db);
    }
    (void)o;
    aipalq__redis_target again;
    char err[128];
    /* A unix path holding '?' cannot be written back; skip those. */
    if (t->unix_socket && strchr(t->host, '?')) {
        free(buf);
        return;
    }
    if (aipalq__redis_url_parse(buf, &again, err, sizeof err) != AIPALQ_OK)
        FAIL("rebuilt URL %s of %s does not parse: %s", buf, url, err);
    if (memcmp(&again, t, sizeof again) != 0)
        FAIL("rebuilt URL %s of %s parses differently", buf, url);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = malloc(size + 1);
    if (!url)
        return 0;
    memcpy(url, data, size);
    url[size] = '\0';

    aipalq__redis_target t;
    char err[256];
    aipalq_status st = aipalq__redis_url_parse(url, &t, err, sizeof err);
    if (st != AIPALQ_OK && st != AIPALQ_EBADURL)
        FAIL("unexpected status %d", st);
    if (st == AIPALQ_EBADURL) {
        if (strncmp(err, "bad Redis URL: ", 15) != 0 || strlen(err) <= 15)
            FAIL("no reason for %s: '%s'", url, err);
        /* The reason is one of ours, never a piece of the URL (which may hold
         * a password). A new reason in lib/url.c belongs in this list. */
        static const char *const reasons[] = {
            "bad IPv6 address", "bad password", "bad user name", "database must be a number",
            "empty", "host name too long", "junk after IPv6 address", "missing host",
            "port must be a number from 1 to 65535",
            "query strings and fragments are not supported",
            "rediss:// (TLS) is not supported by this build",
            "scheme must be redis:// or unix://", "the only query parameter is db=N",
            "unix socket path must be absolute", "unterminated [IPv6] address"};
        bool known = false;
        for (size_t i = 0; i < sizeof reasons / sizeof *reasons && !known; i++)
            known = strcmp(err + 15, reasons[i]) == 0;
        if (!known)
            FAIL("unknown reason (does it echo the URL?): '%s'", err);
    } else {
        check_target(&t, url);
        round_trip(&t, url);
    }

    /* Small error buffers, exactly sized, must not be overrun. */
    for (size_t errlen = 0; errlen < 4; errlen++) {
        char *small = errlen ? malloc(errlen) : NULL;
        aipalq__redis_target t2;
        if (aipalq__redis_url_parse(url, &t2, small, errlen) != st)
            FAIL("status depends on the error buffer size");
        free(small);
    }
    free(url);
    return 0;
}
