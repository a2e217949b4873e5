/* Redis connections from URLs; see redis_url.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "redis_url.h"

static int ok_reply(redisContext *c, redisReply *r, char *err, size_t errlen, const char *what)
{
    if (!r) {
        snprintf(err, errlen, "%s: %s", what, c->errstr);
        return -1;
    }
    int bad = r->type == REDIS_REPLY_ERROR;
    if (bad)
        snprintf(err, errlen, "%s: %s", what, r->str);
    freeReplyObject(r);
    return bad ? -1 : 0;
}

redisContext *redis_connect_url(const char *url, int timeout_ms, char *err, size_t errlen)
{
    if (!url)
        url = getenv("AIPALQ_REDIS_URL");
    if (!url || !*url)
        url = "redis://127.0.0.1:6379/0";
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "Redis URL must start with redis://");
        return NULL;
    }
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", url + 8);
    char *host = buf, *user = NULL, *pass = NULL;
    char *at = strrchr(buf, '@');
    if (at) {
        *at = '\0';
        host = at + 1;
        char *colon = strchr(buf, ':');
        if (colon) {
            *colon = '\0';
            user = buf[0] ? buf : NULL;
            pass = colon + 1;
        } else {
            pass = buf;
        }
    }
    int db = 0;
    char *slash = strchr(host, '/');
    if (slash) {
        *slash = '\0';
        if (slash[1])
            db = atoi(slash + 1);
    }
    int port = 6379;
    char *portp = NULL;
    if (host[0] == '[') {
        char *close = strchr(host, ']');
        if (!close) {
            snprintf(err, errlen, "malformed Redis URL host");
            return NULL;
        }
        *close = '\0';
        host++;
        if (close[1] == ':')
            portp = close + 2;
    } else {
        char *colon = strrchr(host, ':');
        if (colon) {
            *colon = '\0';
            portp = colon + 1;
        }
    }
    if (portp && *portp)
        port = atoi(portp);
    if (!*host)
        host = "127.0.0.1";
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (!c || c->err) {
        snprintf(err, errlen, "Redis %s:%d: %s", host, port, c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (pass && *pass) {
        redisReply *r =
            user ? redisCommand(c, "AUTH %s %s", user, pass) : redisCommand(c, "AUTH %s", pass);
        if (ok_reply(c, r, err, errlen, "AUTH") != 0) {
            redisFree(c);
            return NULL;
        }
    }
    if (db != 0 && ok_reply(c, redisCommand(c, "SELECT %d", db), err, errlen, "SELECT") != 0) {
        redisFree(c);
        return NULL;
    }
    return c;
}
