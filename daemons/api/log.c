/* JSON log lines on stderr. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static void write_all(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, buf, len);
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

void log_json(const char *level, const char *msg, cJSON *fields)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        cJSON_Delete(fields);
        return;
    }
    char ts[40];
    util_iso8601(util_now_ms(), ts, sizeof ts);
    cJSON_AddStringToObject(o, "ts", ts);
    cJSON_AddStringToObject(o, "level", level);
    cJSON_AddStringToObject(o, "msg", msg);
    while (fields && fields->child) {
        cJSON *f = fields->child;
        cJSON_DetachItemViaPointer(fields, f);
        cJSON_AddItemToObject(o, f->string, f);
    }
    cJSON_Delete(fields);
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!line)
        return;
    size_t len = strlen(line);
    char *buf = realloc(line, len + 2);
    if (!buf) {
        free(line);
        return;
    }
    buf[len] = '\n';
    write_all(buf, len + 1);
    free(buf);
}

void log_msg(const char *level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_json(level, msg, NULL);
}

/* Appends s as a JSON string; false when it does not fit. */
static bool put_quoted(char *buf, size_t cap, size_t *len, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = *len;
    if (n + 2 > cap)
        return false;
    buf[n++] = '"';
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (n + 7 > cap)
            return false;
        if (ch == '"' || ch == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)ch;
        } else if (ch < 0x20) {
            memcpy(buf + n, "\\u00", 4);
            buf[n + 4] = hex[ch >> 4];
            buf[n + 5] = hex[ch & 15];
            n += 6;
        } else {
            buf[n++] = (char)ch;
        }
    }
    buf[n++] = '"';
    *len = n;
    return true;
}

static bool put_text(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t l = strlen(s);
    if (*len + l > cap)
        return false;
    memcpy(buf + *len, s, l);
    *len += l;
    return true;
}

void log_request_line(const char *method, const char *path, unsigned status, double ms,
                      const char *request_id, const char *remote, const char *outcome)
{
    char buf[4096], ts[40], num[64];
    size_t len = 0;
    util_iso8601(util_now_ms(), ts, sizeof ts);
    snprintf(num, sizeof num, ",\"status\":%u,\"duration_ms\":%.3f,\"request_id\":", status, ms);
    bool ok =
        put_text(buf, sizeof buf, &len, "{\"ts\":") && put_quoted(buf, sizeof buf, &len, ts) &&
        put_text(buf, sizeof buf, &len, ",\"level\":\"info\",\"msg\":\"request\",\"method\":") &&
        put_quoted(buf, sizeof buf, &len, method) &&
        put_text(buf, sizeof buf, &len, ",\"path\":") && put_quoted(buf, sizeof buf, &len, path) &&
        put_text(buf, sizeof buf, &len, num) && put_quoted(buf, sizeof buf, &len, request_id) &&
        put_text(buf, sizeof buf, &len, ",\"remote\":") &&
        put_quoted(buf, sizeof buf, &len, remote) &&
        (!outcome || (put_text(buf, sizeof buf, &len, ",\"outcome\":") &&
                      put_quoted(buf, sizeof buf, &len, outcome))) &&
        put_text(buf, sizeof buf, &len, "}\n");
    if (ok) {
        write_all(buf, len);
        return;
    }
    /* longer than the buffer (a long path): the general way */
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "method", method);
    cJSON_AddStringToObject(f, "path", path);
    cJSON_AddNumberToObject(f, "status", status);
    cJSON_AddNumberToObject(f, "duration_ms", (double)(int64_t)(ms * 1000) / 1000.0);
    cJSON_AddStringToObject(f, "request_id", request_id);
    cJSON_AddStringToObject(f, "remote", remote);
    if (outcome)
        cJSON_AddStringToObject(f, "outcome", outcome);
    log_json("info", "request", f);
}
