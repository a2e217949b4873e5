/* Parsing of Redis connection URLs. PostgreSQL URLs are libpq's business. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static aipalq_status url_error(char *err, size_t errlen, const char *why)
{
    snprintf(err, errlen, "bad Redis URL: %s", why);
    return AIPALQ_EBADURL;
}

/* Decodes %XX escapes of a URL component into out (outlen bytes). */
static bool percent_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (o + 1 >= outlen)
            return false;
        if (s[i] == '%') {
            if (i + 2 >= n)
                return false;
            /* Exactly two hex digits: strtol alone would also take a sign or
             * leading blanks ("%+1", "% 1"). */
            if (!isxdigit((unsigned char)s[i + 1]) || !isxdigit((unsigned char)s[i + 2]))
                return false;
            char hex[3] = {s[i + 1], s[i + 2], 0};
            long v = strtol(hex, NULL, 16);
            if (v <= 0)
                return false;
            out[o++] = (char)v;
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return true;
}

static bool parse_int(const char *s, size_t n, long lo, long hi, int *out)
{
    if (n == 0 || n > 10)
        return false;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

static aipalq_status parse_unix(const char *rest, aipalq__redis_target *out, char *err,
                                size_t errlen)
{
    const char *q = strchr(rest, '?');
    size_t plen = q ? (size_t)(q - rest) : strlen(rest);
    if (plen == 0 || rest[0] != '/' || plen >= sizeof out->host)
        return url_error(err, errlen, "unix socket path must be absolute");
    memcpy(out->host, rest, plen);
    out->host[plen] = '\0';
    out->unix_socket = true;
    if (q) {
        if (strncmp(q + 1, "db=", 3) != 0 || !parse_int(q + 4, strlen(q + 4), 0, 100000, &out->db))
            return url_error(err, errlen, "the only query parameter is db=N");
    }
    return AIPALQ_OK;
}

aipalq_status aipalq__redis_url_parse(const char *url, aipalq__redis_target *out, char *err,
                                      size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (!url || !*url)
        return url_error(err, errlen, "empty");
    if (strncmp(url, "rediss://", 9) == 0)
        return url_error(err, errlen, "rediss:// (TLS) is not supported by this build");
    if (strncmp(url, "unix://", 7) == 0)
        return parse_unix(url + 7, out, err, errlen);
    if (strncmp(url, "redis+unix://", 13) == 0)
        return parse_unix(url + 13, out, err, errlen);
    if (strncmp(url, "redis://", 8) != 0)
        return url_error(err, errlen, "scheme must be redis:// or unix://");
    const char *p = url + 8;
    const char *end = p + strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *s = p; s < end; s++)
        if (*s == '@')
            at = s; /* the last @: passwords may contain '@' if not escaped */
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (!percent_decode(p, (size_t)(colon - p), out->user, sizeof out->user))
                return url_error(err, errlen, "bad user name");
            if (!percent_decode(colon + 1, (size_t)(at - colon - 1), out->password,
                                sizeof out->password))
                return url_error(err, errlen, "bad password");
        } else if (!percent_decode(p, (size_t)(at - p), out->password, sizeof out->password)) {
            return url_error(err, errlen, "bad password");
        }
        p = at + 1;
    }
    const char *host_end;
    const char *port_start = NULL;
    if (*p == '[') { /* [IPv6]:port */
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb)
            return url_error(err, errlen, "unterminated [IPv6] address");
        if ((size_t)(rb - p - 1) >= sizeof out->host || rb == p + 1)
            return url_error(err, errlen, "bad IPv6 address");
        memcpy(out->host, p + 1, (size_t)(rb - p - 1));
        out->host[rb - p - 1] = '\0';
        host_end = rb + 1;
        if (host_end < end && *host_end == ':')
            port_start = host_end + 1;
        else if (host_end != end)
            return url_error(err, errlen, "junk after IPv6 address");
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        host_end = colon ? colon : end;
        if (host_end == p)
            return url_error(err, errlen, "missing host");
        if ((size_t)(host_end - p) >= sizeof out->host)
            return url_error(err, errlen, "host name too long");
        memcpy(out->host, p, (size_t)(host_end - p));
        out->host[host_end - p] = '\0';
        if (colon)
            port_start = colon + 1;
    }
    if (port_start && !parse_int(port_start, (size_t)(end - port_start), 1, 65535, &out->port))
        return url_error(err, errlen, "port must be a number from 1 to 65535");
    if (*end == '/') {
        const char *db = end + 1;
        size_t n = strcspn(db, "?#");
        if (n > 0 && !parse_int(db, n, 0, 100000, &out->db))
            return url_error(err, errlen, "database must be a number");
        end = db + n;
    }
    if (*end != '\0')
        return url_error(err, errlen, "query strings and fragments are not supported");
    return AIPALQ_OK;
}
