/* JSON log lines; see log.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static log_level min_level = LOG_INFO;
static char worker_id[160];

int log_parse_level(const char *name, log_level *out)
{
    static const struct {
        const char *name;
        log_level level;
    } names[] = {{"debug", LOG_DEBUG},
                 {"info", LOG_INFO},
                 {"warn", LOG_WARN},
                 {"warning", LOG_WARN},
                 {"error", LOG_ERROR}};
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    return -1;
}

const char *log_level_name(log_level level)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    return level >= LOG_DEBUG && level <= LOG_ERROR ? names[level] : "info";
}

void log_set_level(log_level level)
{
    min_level = level;
}

void log_set_worker(const char *id)
{
    snprintf(worker_id, sizeof worker_id, "%s", id ? id : "");
}

int log_enabled(log_level level)
{
    return level >= min_level;
}

static void write_line(const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t k = write(STDERR_FILENO, s, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return;
        s += k;
        n -= (size_t)k;
    }
}

void log_json(log_level level, const char *event, cJSON *fields)
{
    if (!log_enabled(level)) {
        cJSON_Delete(fields);
        return;
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    time_t sec = tv.tv_sec;
    gmtime_r(&sec, &tm);
    char ts[96];
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)(tv.tv_usec / 1000));
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        cJSON_Delete(fields);
        return;
    }
    cJSON_AddStringToObject(o, "ts", ts);
    cJSON_AddStringToObject(o, "level", log_level_name(level));
    cJSON_AddStringToObject(o, "event", event);
    cJSON_AddNumberToObject(o, "pid", (double)getpid());
    if (worker_id[0])
        cJSON_AddStringToObject(o, "worker", worker_id);
    if (fields) {
        while (fields->child) {
            cJSON *it = cJSON_DetachItemViaPointer(fields, fields->child);
            cJSON_AddItemToObject(o, it->string, it);
        }
        cJSON_Delete(fields);
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text)
        return;
    size_t n = strlen(text);
    char *line = malloc(n + 2);
    if (line) {
        memcpy(line, text, n);
        line[n] = '\n';
        line[n + 1] = '\0';
        write_line(line);
        free(line);
    }
    free(text);
}

void log_msg(log_level level, const char *event, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *f = cJSON_CreateObject();
    if (f)
        cJSON_AddStringToObject(f, "msg", msg);
    log_json(level, event, f);
}
