/* Schedule expressions; see cron.h. */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cron.h"

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

/* A number or (for months and weekdays) a name; advances *p. */
static bool parse_value(const char **p, int which, int *out)
{
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end - s > 4)
            return false;
        *out = (int)v;
        *p = end;
        return true;
    }
    const char *const *names = which == 3 ? month_names : which == 4 ? day_names : NULL;
    int n = which == 3 ? 12 : 7;
    for (int i = 0; names && i < n; i++)
        if (strncasecmp(s, names[i], 3) == 0) {
            *out = which == 3 ? i + 1 : i;
            *p = s + 3;
            return true;
        }
    return false;
}

static const char *const field_names[] = {"minute", "hour", "day of month", "month", "day of week"};

/* Parses one field (text of length len) into a bit set. */
static int parse_field(const char *text, size_t len, int which, uint64_t *bits, int *restricted,
                       char *err, size_t errlen)
{
    static const int lo[] = {0, 0, 1, 1, 0}, hi[] = {59, 23, 31, 12, 7};
    char buf[128];
    if (len >= sizeof buf) {
        snprintf(err, errlen, "%s field is too long", field_names[which]);
        return -1;
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    *bits = 0;
    *restricted = buf[0] != '*';
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        int a = lo[which], b = hi[which], step = 1;
        const char *p = item;
        if (*p == '*') {
            p++;
        } else {
            if (!parse_value(&p, which, &a))
                goto bad;
            b = a;
            if (*p == '-') {
                p++;
                if (!parse_value(&p, which, &b))
                    goto bad;
            } else if (*p == '/') {
                b = hi[which];
            }
        }
        if (*p == '/') {
            p++;
            char *end;
            long s = strtol(p, &end, 10);
            if (end == p || s < 1 || s > 60)
                goto bad;
            step = (int)s;
            p = end;
        }
        if (*p != '\0' || a < lo[which] || b > hi[which] || a > b)
            goto bad;
        for (int v = a; v <= b; v += step)
            *bits |= (uint64_t)1 << (which == 4 && v == 7 ? 0 : v);
    }
    if (*bits == 0)
        goto bad;
    return 0;
bad:
    snprintf(err, errlen, "bad %s field \"%.*s\"", field_names[which], (int)len, text);
    return -1;
}

static int parse_every(const char *s, cron_expr *out, char *err, size_t errlen)
{
    int64_t total = 0;
    const char *p = s;
    while (isspace((unsigned char)*p))
        p++;
    if (!*p)
        goto bad;
    while (*p && !isspace((unsigned char)*p)) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || v > 1000000000)
            goto bad;
        int64_t unit;
        if (strncmp(end, "ms", 2) == 0) {
            unit = 1;
            end += 2;
        } else if (*end == 's') {
            unit = 1000;
            end++;
        } else if (*end == 'm') {
            unit = 60000;
            end++;
        } else if (*end == 'h') {
            unit = 3600000;
            end++;
        } else if (*end == 'd') {
            unit = 86400000;
            end++;
        } else {
            goto bad;
        }
        total += v * unit;
        p = end;
    }
    while (isspace((unsigned char)*p))
        p++;
    if (*p || total < 1000 || total > (int64_t)3650 * 86400000)
        goto bad;
    memset(out, 0, sizeof *out);
    out->every_ms = total;
    return 0;
bad:
    snprintf(err, errlen,
             "bad interval \"%s\" (e.g. \"@every 30s\", \"@every 1h30m\"; at least 1s)", s);
    return -1;
}

int cron_parse(const char *text, cron_expr *out, char *err, size_t errlen)
{
    static const struct {
        const char *name, *expr;
    } macros[] = {{"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
                  {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
                  {"@hourly", "0 * * * *"}};
    while (isspace((unsigned char)*text))
        text++;
    if (strncmp(text, "@every", 6) == 0 && (text[6] == ' ' || text[6] == '\t'))
        return parse_every(text + 6, out, err, errlen);
    if (*text == '@') {
        size_t n = strcspn(text, " \t");
        for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
            if (strlen(macros[i].name) == n && strncmp(text, macros[i].name, n) == 0 &&
                text[n + strspn(text + n, " \t")] == '\0')
                return cron_parse(macros[i].expr, out, err, errlen);
        snprintf(err, errlen, "unknown schedule \"%s\"", text);
        return -1;
    }
    memset(out, 0, sizeof *out);
    const char *p = text;
    for (int f = 0; f < 5; f++) {
        while (isspace((unsigned char)*p))
            p++;
        size_t n = strcspn(p, " \t");
        if (n == 0) {
            snprintf(err, errlen,
                     "schedule \"%s\" needs five fields (minute hour day month "
                     "weekday) or a macro",
                     text);
            return -1;
        }
        uint64_t bits;
        int restricted;
        if (parse_field(p, n, f, &bits, &restricted, err, errlen) != 0)
            return -1;
        switch (f) {
        case 0:
            out->minutes = bits;
            break;
        case 1:
            out->hours = (uint32_t)bits;
            break;
        case 2:
            out->days = (uint32_t)bits;
            out->days_restricted = restricted;
            break;
        case 3:
            out->months = (uint16_t)bits;
            break;
        case 4:
            out->weekdays = (uint8_t)bits;
            out->weekdays_restricted = restricted;
            break;
        }
        p += n;
    }
    while (isspace((unsigned char)*p))
        p++;
    if (*p) {
        snprintf(err, errlen, "schedule \"%s\" has more than five fields", text);
        return -1;
    }
    return 0;
}

static bool day_matches(const cron_expr *e, const struct tm *tm)
{
    bool dom = (e->days >> tm->tm_mday) & 1;
    bool dow = (e->weekdays >> tm->tm_wday) & 1;
    if (e->days_restricted && e->weekdays_restricted)
        return dom || dow;
    return dom && dow;
}

int64_t cron_next(const cron_expr *e, int64_t after_ms)
{
    if (e->every_ms > 0) {
        int64_t k =
            after_ms >= 0 ? after_ms / e->every_ms : -((-after_ms + e->every_ms - 1) / e->every_ms);
        return (k + 1) * e->every_ms;
    }
    time_t t = (time_t)((after_ms >= 0 ? after_ms / 60000 : (after_ms - 59999) / 60000) + 1) * 60;
    time_t limit = t + (time_t)3660 * 86400;
    while (t < limit) {
        struct tm tm;
        gmtime_r(&t, &tm);
        if (!((e->months >> (tm.tm_mon + 1)) & 1)) {
            tm.tm_mon++;
            tm.tm_mday = 1;
            tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
            t = timegm(&tm);
            continue;
        }
        if (!day_matches(e, &tm)) {
            tm.tm_mday++;
            tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
            t = timegm(&tm);
            continue;
        }
        if (!((e->hours >> tm.tm_hour) & 1)) {
            tm.tm_hour++;
            tm.tm_min = tm.tm_sec = 0;
            t = timegm(&tm);
            continue;
        }
        if (!((e->minutes >> tm.tm_min) & 1)) {
            t += 60;
            continue;
        }
        return (int64_t)t * 1000;
    }
    return -1;
}
