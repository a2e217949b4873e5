/* API keys. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "util.h"

#define MAX_KEY_LEN 256

typedef struct key {
    char *secret;
    size_t len;
    auth_role role;
    uint64_t id;
} key;

static key *keys;
static size_t nkeys;
static uint64_t id_seed;

size_t auth_key_count(void)
{
    return nkeys;
}

static int add_key(auth_role role, const char *secret, size_t len, char *err, size_t errlen,
                   const char *where)
{
    if (len == 0 || len > MAX_KEY_LEN) {
        snprintf(err, errlen, "%s: a key must have 1 to %d characters", where, MAX_KEY_LEN);
        return -1;
    }
    for (size_t i = 0; i < len; i++)
        if (!isgraph((unsigned char)secret[i])) {
            snprintf(err, errlen, "%s: a key may not contain spaces or control characters", where);
            return -1;
        }
    key *grown = realloc(keys, (nkeys + 1) * sizeof *keys);
    if (!grown)
        goto oom;
    keys = grown;
    char *copy = malloc(len + 1);
    if (!copy)
        goto oom;
    memcpy(copy, secret, len);
    copy[len] = '\0';
    /* The id identifies the key to the rate limiter; it is a hash, never the key. */
    keys[nkeys++] = (key){copy, len, role, util_hash64(copy, len, id_seed) | 1};
    return 0;
oom:
    snprintf(err, errlen, "out of memory loading keys");
    return -1;
}

static void trim(char **s, size_t *len)
{
    while (*len && isspace((unsigned char)**s))
        (*s)++, (*len)--;
    while (*len && isspace((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

/* One line of the keys file: "ro:KEY" or "rw:KEY"; blank lines and # comments skipped. */
static int parse_line(char *line, int lineno, char *err, size_t errlen)
{
    size_t len = strlen(line);
    trim(&line, &len);
    if (!len || line[0] == '#')
        return 0;
    char where[64];
    snprintf(where, sizeof where, "keys file line %d", lineno);
    auth_role role = AUTH_NONE;
    if (len > 3 && !strncasecmp(line, "ro:", 3))
        role = AUTH_RO;
    else if (len > 3 && !strncasecmp(line, "rw:", 3))
        role = AUTH_RW;
    if (role == AUTH_NONE) {
        snprintf(err, errlen, "%s: expected ro:KEY or rw:KEY", where);
        return -1;
    }
    char *secret = line + 3;
    size_t slen = len - 3;
    trim(&secret, &slen);
    return add_key(role, secret, slen, err, errlen, where);
}

static int load_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open keys file %s", path);
        return -1;
    }
    char line[MAX_KEY_LEN + 64];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        rc = parse_line(line, lineno, err, errlen);
    }
    fclose(f);
    return rc;
}

static int load_env(const char *name, auth_role role, char *err, size_t errlen)
{
    const char *v = getenv(name);
    while (v && *v) {
        const char *comma = strchr(v, ',');
        size_t len = comma ? (size_t)(comma - v) : strlen(v);
        char *item = (char *)v;
        size_t ilen = len;
        trim(&item, &ilen);
        if (ilen && add_key(role, item, ilen, err, errlen, name) != 0)
            return -1;
        v = comma ? comma + 1 : NULL;
    }
    return 0;
}

int auth_load(const char *keys_file, char *err, size_t errlen)
{
    util_random_hex(err, 16);
    id_seed = util_hash64(err, 16, 0);
    err[0] = '\0';
    if (keys_file && load_file(keys_file, err, errlen) != 0)
        return -1;
    if (load_env("AIPALQ_API_KEYS_RW", AUTH_RW, err, errlen) != 0 ||
        load_env("AIPALQ_API_KEYS_RO", AUTH_RO, err, errlen) != 0)
        return -1;
    return 0;
}

/* Compares in time that depends only on the lengths, never on the contents. */
static int ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned diff = (unsigned)(alen ^ blen);
    size_t n = alen > blen ? alen : blen;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < alen ? (unsigned char)a[i] : 0;
        unsigned char y = i < blen ? (unsigned char)b[i] : 0;
        diff |= (unsigned)(x ^ y);
    }
    return diff == 0;
}

auth_role auth_check_token(const char *token, uint64_t *key_id)
{
    *key_id = 0;
    if (!token)
        return AUTH_NONE;
    size_t tlen = strnlen(token, MAX_KEY_LEN + 1);
    auth_role role = AUTH_NONE;
    for (size_t i = 0; i < nkeys; i++) {
        int match = ct_equal(keys[i].secret, keys[i].len, token, tlen);
        /* no early exit: every key costs the same */
        if (match && role == AUTH_NONE) {
            role = keys[i].role;
            *key_id = keys[i].id;
        }
    }
    return role;
}

const char *auth_bearer(const char *header)
{
    if (!header)
        return NULL;
    while (*header == ' ')
        header++;
    if (strncasecmp(header, "Bearer ", 7) != 0)
        return NULL;
    header += 7;
    while (*header == ' ')
        header++;
    return *header ? header : NULL;
}

void auth_free(void)
{
    for (size_t i = 0; i < nkeys; i++) {
        explicit_bzero(keys[i].secret, keys[i].len);
        free(keys[i].secret);
    }
    free(keys);
    keys = NULL;
    nkeys = 0;
}
