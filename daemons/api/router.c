/* Matching paths against the route table. */
#include <stdio.h>
#include <string.h>

#include "router.h"

/* Compares one segment of a pattern; captures a {placeholder}. */
static bool match_segment(const char *pat, size_t plen, const char *seg, size_t slen,
                          char params[API_MAX_PARAMS][API_PARAM_SIZE], int *nparams)
{
    if (plen >= 2 && pat[0] == '{' && pat[plen - 1] == '}') {
        if (slen == 0 || slen >= API_PARAM_SIZE || *nparams >= API_MAX_PARAMS)
            return false;
        memcpy(params[*nparams], seg, slen);
        params[*nparams][slen] = '\0';
        (*nparams)++;
        return true;
    }
    return plen == slen && memcmp(pat, seg, slen) == 0;
}

static bool match(const char *pat, const char *path, size_t path_len,
                  char params[API_MAX_PARAMS][API_PARAM_SIZE])
{
    int nparams = 0;
    const char *pend = path + path_len;
    while (*pat && path < pend) {
        if (*pat != '/' || *path != '/')
            return false;
        pat++, path++;
        const char *pe = strchr(pat, '/');
        size_t plen = pe ? (size_t)(pe - pat) : strlen(pat);
        const char *se = memchr(path, '/', (size_t)(pend - path));
        size_t slen = se ? (size_t)(se - path) : (size_t)(pend - path);
        if (!match_segment(pat, plen, path, slen, params, &nparams))
            return false;
        pat += plen;
        path += slen;
    }
    return !*pat && path == pend;
}

int router_match(const char *path, char params[API_MAX_PARAMS][API_PARAM_SIZE])
{
    size_t len = strlen(path);
    if (len > 1 && path[len - 1] == '/')
        len--;
    for (size_t i = 0; i < routes_count(); i++)
        if (match(routes_at(i)->pattern, path, len, params))
            return (int)i;
    return -1;
}

const api_op *router_op(const api_route *r, const char *method)
{
    if (strcmp(method, "HEAD") == 0)
        method = "GET";
    for (int i = 0; i < API_MAX_OPS && r->ops[i].method; i++)
        if (strcmp(r->ops[i].method, method) == 0)
            return &r->ops[i];
    return NULL;
}

void router_allow(const api_route *r, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < API_MAX_OPS && r->ops[i].method && used < len; i++) {
        bool get = strcmp(r->ops[i].method, "GET") == 0;
        used += (size_t)snprintf(buf + used, len - used, "%s%s", r->ops[i].method,
                                 get ? ", HEAD, " : ", ");
    }
    if (used < len)
        snprintf(buf + used, len - used, "OPTIONS");
}
