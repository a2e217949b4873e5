/* The task state machine: the one table of legal transitions. Every state
 * change the library makes, in SQL or in C, is checked against it (SQL
 * statements receive the legal source states from aipalq__states_into_sql). */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static const char *const state_names[AIPALQ_STATE_COUNT] = {
#define AIPALQ__STATE_TEXT(name, num, text) [num] = text,
    AIPALQ_STATE_LIST(AIPALQ__STATE_TEXT)
#undef AIPALQ__STATE_TEXT
};

enum {
    P = AIPALQ_STATE_PENDING,
    S = AIPALQ_STATE_SCHEDULED,
    R = AIPALQ_STATE_RUNNING,
    T = AIPALQ_STATE_RETRYING,
    C = AIPALQ_STATE_COMPLETED,
    F = AIPALQ_STATE_FAILED,
    X = AIPALQ_STATE_CANCELLED
};

/* allowed[from][to]. Why each row is what it is:
 * - pending/scheduled/retrying wait for a worker; they may start, be cancelled,
 *   or (scheduled, retrying) become pending when due.
 * - running ends in completed, failed, retrying or cancelled, or goes back to
 *   pending when its worker hands it back or loses its lease.
 * - failed and cancelled are final until an explicit retry makes them pending.
 * - completed is final for good: a result once recorded is never replaced. */
static const unsigned char allowed[AIPALQ_STATE_COUNT][AIPALQ_STATE_COUNT] = {
    [P] = {[R] = 1, [X] = 1, [S] = 1},
    [S] = {[P] = 1, [R] = 1, [X] = 1},
    [R] = {[C] = 1, [F] = 1, [T] = 1, [X] = 1, [P] = 1},
    [T] = {[P] = 1, [R] = 1, [X] = 1},
    [C] = {0},
    [F] = {[P] = 1},
    [X] = {[P] = 1},
};

static bool state_valid(aipalq_state s)
{
    return (int)s >= 0 && (int)s < AIPALQ_STATE_COUNT;
}

const char *aipalq_state_name(aipalq_state state)
{
    return state_valid(state) ? state_names[state] : "unknown";
}

aipalq_status aipalq_state_parse(const char *name, aipalq_state *out)
{
    if (!name || !out)
        return AIPALQ_EINVAL;
    for (int i = 0; i < AIPALQ_STATE_COUNT; i++) {
        if (strcmp(name, state_names[i]) == 0) {
            *out = (aipalq_state)i;
            return AIPALQ_OK;
        }
    }
    return AIPALQ_EINVAL;
}

int aipalq_state_is_final(aipalq_state state)
{
    return state_valid(state) && (AIPALQ__FINAL_STATES & AIPALQ__STATE_BIT(state)) != 0;
}

int aipalq_state_transition_allowed(aipalq_state from, aipalq_state to)
{
    if (!state_valid(from) || !state_valid(to))
        return 0;
    return allowed[from][to];
}

void aipalq__states_into_sql(aipalq_state to, unsigned candidates, char *out, size_t outlen)
{
    size_t used = 0;
    int n = snprintf(out, outlen, "{");
    used = n > 0 ? (size_t)n : 0;
    bool first = true;
    for (int from = 0; from < AIPALQ_STATE_COUNT && used < outlen; from++) {
        if (!allowed[from][to] || !(candidates & AIPALQ__STATE_BIT(from)))
            continue;
        n = snprintf(out + used, outlen - used, "%s%s", first ? "" : ",", state_names[from]);
        used += n > 0 ? (size_t)n : 0;
        first = false;
    }
    if (used < outlen)
        snprintf(out + used, outlen - used, "}");
}
