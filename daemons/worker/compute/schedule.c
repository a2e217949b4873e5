/* The periodic schedule's notations; see schedule.h. */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "schedule.h"

static const char builtin[] =
    "# The built-in maintenance schedule (UTC).\n"
    "# name                   schedule     type                      params\n"
    "cleanup-cache            @hourly      cleanup_cache             "
    "{\"max_age_hours\":24,\"cleanup_expired_only\":true}\n"
    "archive-audit-logs       30 2 * * *   archive_audit_logs        {\"days_to_keep\":90}\n"
    "maintain-database        0 3 * * *    maintain_database         "
    "{\"optimization_level\":\"light\"}\n"
    "maintain-database-weekly 0 4 * * 0    maintain_database         "
    "{\"optimization_level\":\"standard\"}\n"
    "enforce-retention        30 4 * * *   enforce_retention_policy  {}\n";

const char *schedule_builtin(void)
{
    return builtin;
}

static bool valid_name(const char *s, size_t n)
{
    if (n == 0 || n >= SCHEDULE_NAME_SIZE)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
            return false;
    return true;
}

void schedule_free(schedule *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->entries[i].params_json);
    free(s->entries);
    s->entries = NULL;
    s->n = 0;
}

static schedule_entry *append(schedule *s)
{
    schedule_entry *e = realloc(s->entries, (s->n + 1) * sizeof *e);
    if (!e)
        return NULL;
    s->entries = e;
    memset(&e[s->n], 0, sizeof e[s->n]);
    return &e[s->n++];
}

static int check_unique(const schedule *s, char *err, size_t errlen, const char *where)
{
    const schedule_entry *last = &s->entries[s->n - 1];
    for (size_t i = 0; i + 1 < s->n; i++)
        if (strcmp(s->entries[i].name, last->name) == 0) {
            snprintf(err, errlen, "%s: name: \"%s\" is used twice", where, last->name);
            return -1;
        }
    return 0;
}

/* Sets params_json from a parsed object (NULL: {}). */
static int set_params(schedule_entry *e, const cJSON *params, char *err, size_t errlen,
                      const char *where)
{
    if (params && !cJSON_IsObject(params)) {
        snprintf(err, errlen, "%s: params: must be a JSON object", where);
        return -1;
    }
    e->params_json = params ? cJSON_PrintUnformatted(params) : strdup("{}");
    if (!e->params_json) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int parse_json(const char *text, schedule *out, char *err, size_t errlen)
{
    cJSON *doc = cJSON_Parse(text);
    if (!cJSON_IsArray(doc)) {
        cJSON_Delete(doc);
        snprintf(err, errlen, "schedule: not a valid JSON array");
        return -1;
    }
    int i = 0;
    for (const cJSON *it = doc->child; it; it = it->next, i++) {
        char where[96];
        snprintf(where, sizeof where, "schedule entry %d", i);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
        const cJSON *sched = cJSON_GetObjectItemCaseSensitive(it, "schedule");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(it, "type");
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(it, "params");
        const cJSON *prio = cJSON_GetObjectItemCaseSensitive(it, "priority");
        const cJSON *queue = cJSON_GetObjectItemCaseSensitive(it, "queue");
        const char *bad = NULL, *why = NULL;
        if (!cJSON_IsObject(it))
            bad = "", why = "must be an object";
        else if (!cJSON_IsString(name) || !valid_name(name->valuestring, strlen(name->valuestring)))
            bad = "name", why = "must be 1 to 64 characters of A-Z a-z 0-9 _ . -";
        else if (!cJSON_IsString(sched) || strlen(sched->valuestring) >= 128)
            bad = "schedule", why = "must be a schedule expression";
        else if (!cJSON_IsString(type) || !valid_name(type->valuestring, strlen(type->valuestring)))
            bad = "type", why = "must be a task type name";
        else if (prio && (!cJSON_IsNumber(prio) || prio->valuedouble < 1 ||
                          prio->valuedouble > 10 || prio->valuedouble != (int)prio->valuedouble))
            bad = "priority", why = "must be an integer between 1 and 10";
        else if (queue && (!cJSON_IsString(queue) ||
                           !valid_name(queue->valuestring, strlen(queue->valuestring))))
            bad = "queue", why = "must be a queue name";
        if (bad) {
            snprintf(err, errlen, "%s: %s%s%s", where, bad, *bad ? ": " : "", why);
            cJSON_Delete(doc);
            return -1;
        }
        schedule_entry *e = append(out);
        if (!e) {
            cJSON_Delete(doc);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        snprintf(where, sizeof where, "schedule entry \"%s\"", name->valuestring);
        snprintf(e->name, sizeof e->name, "%s", name->valuestring);
        snprintf(e->expr_text, sizeof e->expr_text, "%s", sched->valuestring);
        snprintf(e->type, sizeof e->type, "%s", type->valuestring);
        e->priority = prio ? prio->valueint : 0;
        if (queue)
            snprintf(e->queue, sizeof e->queue, "%s", queue->valuestring);
        char why2[160];
        if (cron_parse(e->expr_text, &e->expr, why2, sizeof why2) != 0) {
            snprintf(err, errlen, "%s: schedule: %s", where, why2);
            cJSON_Delete(doc);
            return -1;
        }
        if (set_params(e, params, err, errlen, where) != 0 ||
            check_unique(out, err, errlen, where) != 0) {
            cJSON_Delete(doc);
            return -1;
        }
    }
    cJSON_Delete(doc);
    return 0;
}

/* The next blank-separated word of *p: its start and length. */
static size_t next_word(const char **p, const char **start)
{
    while (**p == ' ' || **p == '\t')
        (*p)++;
    *start = *p;
    while (**p && **p != ' ' && **p != '\t')
        (*p)++;
    return (size_t)(*p - *start);
}

static int parse_line(const char *line, int lineno, schedule *out, char *err, size_t errlen)
{
    char where[96];
    snprintf(where, sizeof where, "schedule line %d", lineno);
    const char *p = line, *w;
    size_t n = next_word(&p, &w);
    if (!valid_name(w, n)) {
        snprintf(err, errlen, "%s: name: must be 1 to 64 characters of A-Z a-z 0-9 _ . -", where);
        return -1;
    }
    schedule_entry *e = append(out);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(e->name, w, n);
    /* The schedule: a macro (one word, two for @every) or five fields. */
    const char *sched_start;
    while (*p == ' ' || *p == '\t')
        p++;
    sched_start = p;
    int words = 5;
    if (*p == '@')
        words = strncmp(p, "@every", 6) == 0 && (p[6] == ' ' || p[6] == '\t') ? 2 : 1;
    for (int i = 0; i < words; i++)
        if (next_word(&p, &w) == 0) {
            snprintf(err, errlen, "%s: schedule: incomplete", where);
            return -1;
        }
    size_t slen = (size_t)(p - sched_start);
    if (slen >= sizeof e->expr_text) {
        snprintf(err, errlen, "%s: schedule: too long", where);
        return -1;
    }
    memcpy(e->expr_text, sched_start, slen);
    char why[160];
    if (cron_parse(e->expr_text, &e->expr, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: schedule: %s", where, why);
        return -1;
    }
    n = next_word(&p, &w);
    if (!valid_name(w, n)) {
        snprintf(err, errlen, "%s: type: missing or not a task type name", where);
        return -1;
    }
    memcpy(e->type, w, n);
    while (*p == ' ' || *p == '\t')
        p++;
    cJSON *params = NULL;
    if (*p) {
        params = cJSON_Parse(p);
        if (!params) {
            snprintf(err, errlen, "%s: params: not valid JSON", where);
            return -1;
        }
    }
    snprintf(where, sizeof where, "schedule entry \"%s\"", e->name);
    int rc = set_params(e, params, err, errlen, where);
    cJSON_Delete(params);
    if (rc != 0)
        return -1;
    return check_unique(out, err, errlen, where);
}

int schedule_parse(const char *text, schedule *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *p = text ? text : "";
    while (isspace((unsigned char)*p))
        p++;
    int rc = 0;
    if (*p == '[') {
        rc = parse_json(p, out, err, errlen);
    } else {
        int lineno = 0;
        const char *line = text ? text : "";
        while (*line && rc == 0) {
            lineno++;
            const char *eol = strchr(line, '\n');
            size_t len = eol ? (size_t)(eol - line) : strlen(line);
            char *copy = strndup(line, len);
            if (!copy) {
                snprintf(err, errlen, "out of memory");
                rc = -1;
                break;
            }
            char *c = copy;
            while (isspace((unsigned char)*c))
                c++;
            size_t cl = strlen(c);
            while (cl > 0 && isspace((unsigned char)c[cl - 1]))
                c[--cl] = '\0';
            if (*c && *c != '#')
                rc = parse_line(c, lineno, out, err, errlen);
            free(copy);
            line = eol ? eol + 1 : line + len;
        }
    }
    if (rc != 0)
        schedule_free(out);
    return rc;
}
