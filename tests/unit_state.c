/* Unit tests of the task state machine (lib/state.c). */
#include <string.h>

#include "internal.h"
#include "testutil.h"

enum { P, S, R, T, C, F, X };

/* The legal transitions, written out independently of lib/state.c. */
static const int legal[7][7] = {
    /*            P  S  R  T  C  F  X */
    /* P */ {0, 1, 1, 0, 0, 0, 1},
    /* S */ {1, 0, 1, 0, 0, 0, 1},
    /* R */ {1, 0, 0, 1, 1, 1, 1},
    /* T */ {1, 0, 1, 0, 0, 0, 1},
    /* C */ {0, 0, 0, 0, 0, 0, 0},
    /* F */ {1, 0, 0, 0, 0, 0, 0},
    /* X */ {1, 0, 0, 0, 0, 0, 0},
};

START_TEST(test_enum_values)
{
    ck_assert_int_eq(AIPALQ_STATE_PENDING, P);
    ck_assert_int_eq(AIPALQ_STATE_SCHEDULED, S);
    ck_assert_int_eq(AIPALQ_STATE_RUNNING, R);
    ck_assert_int_eq(AIPALQ_STATE_RETRYING, T);
    ck_assert_int_eq(AIPALQ_STATE_COMPLETED, C);
    ck_assert_int_eq(AIPALQ_STATE_FAILED, F);
    ck_assert_int_eq(AIPALQ_STATE_CANCELLED, X);
    ck_assert_int_eq(AIPALQ_STATE_COUNT, 7);
}
END_TEST

START_TEST(test_transition_table)
{
    for (int from = 0; from < 7; from++)
        for (int to = 0; to < 7; to++)
            ck_assert_msg(aipalq_state_transition_allowed((aipalq_state)from, (aipalq_state)to) ==
                              legal[from][to],
                          "%s -> %s should be %s", aipalq_state_name((aipalq_state)from),
                          aipalq_state_name((aipalq_state)to),
                          legal[from][to] ? "allowed" : "illegal");
}
END_TEST

START_TEST(test_illegal_examples)
{
    ck_assert_int_eq(aipalq_state_transition_allowed(AIPALQ_STATE_COMPLETED, AIPALQ_STATE_PENDING),
                     0);
    ck_assert_int_eq(aipalq_state_transition_allowed(AIPALQ_STATE_COMPLETED, AIPALQ_STATE_FAILED),
                     0);
    ck_assert_int_eq(aipalq_state_transition_allowed(AIPALQ_STATE_PENDING, AIPALQ_STATE_COMPLETED),
                     0);
    ck_assert_int_eq(aipalq_state_transition_allowed(AIPALQ_STATE_PENDING, AIPALQ_STATE_FAILED), 0);
    ck_assert_int_eq(aipalq_state_transition_allowed(AIPALQ_STATE_CANCELLED, AIPALQ_STATE_RUNNING),
                     0);
    ck_assert_int_eq(aipalq_state_transition_allowed(AIPALQ_STATE_FAILED, AIPALQ_STATE_CANCELLED),
                     0);
    ck_assert_int_eq(aipalq_state_transition_allowed(AIPALQ_STATE_RUNNING, AIPALQ_STATE_SCHEDULED),
                     0);
    /* No state moves to itself. */
    for (int s = 0; s < 7; s++)
        ck_assert_int_eq(aipalq_state_transition_allowed((aipalq_state)s, (aipalq_state)s), 0);
    /* Out-of-range states are never allowed (and do not read outside the table). */
    ck_assert_int_eq(aipalq_state_transition_allowed((aipalq_state)-1, AIPALQ_STATE_PENDING), 0);
    ck_assert_int_eq(aipalq_state_transition_allowed(AIPALQ_STATE_PENDING, (aipalq_state)7), 0);
    ck_assert_int_eq(aipalq_state_transition_allowed((aipalq_state)1000, (aipalq_state)1000), 0);
}
END_TEST

START_TEST(test_final_states_have_no_way_out_but_retry)
{
    /* A final state leads only to pending (explicit retry), completed to nothing. */
    for (int s = 0; s < 7; s++) {
        if (!aipalq_state_is_final((aipalq_state)s))
            continue;
        for (int to = 0; to < 7; to++)
            if (to != P)
                ck_assert_int_eq(aipalq_state_transition_allowed((aipalq_state)s, (aipalq_state)to),
                                 0);
    }
}
END_TEST

START_TEST(test_names_round_trip)
{
    static const char *const names[] = {"pending",   "scheduled", "running",  "retrying",
                                        "completed", "failed",    "cancelled"};
    for (int s = 0; s < 7; s++) {
        ck_assert_str_eq(aipalq_state_name((aipalq_state)s), names[s]);
        aipalq_state out = (aipalq_state)99;
        ck_assert_int_eq(aipalq_state_parse(names[s], &out), AIPALQ_OK);
        ck_assert_int_eq(out, s);
        ck_assert_int_eq(aipalq_state_parse(aipalq_state_name(out), &out), AIPALQ_OK);
        ck_assert_int_eq(out, s);
    }
}
END_TEST

START_TEST(test_parse_bad)
{
    aipalq_state out = AIPALQ_STATE_RETRYING;
    const char *bad[] = {"",     "PENDING",  "Pending", "pending ", " pending",
                         "pend", "pendingx", "unknown", "canceled", "done"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(aipalq_state_parse(bad[i], &out) == AIPALQ_EINVAL, "'%s' parsed", bad[i]);
        ck_assert_int_eq(out, AIPALQ_STATE_RETRYING); /* untouched */
    }
    ck_assert_int_eq(aipalq_state_parse(NULL, &out), AIPALQ_EINVAL);
    ck_assert_int_eq(aipalq_state_parse("pending", NULL), AIPALQ_EINVAL);
    ck_assert_str_eq(aipalq_state_name((aipalq_state)-1), "unknown");
    ck_assert_str_eq(aipalq_state_name((aipalq_state)7), "unknown");
    ck_assert_str_eq(aipalq_state_name((aipalq_state)12345), "unknown");
}
END_TEST

START_TEST(test_is_final)
{
    ck_assert_int_eq(aipalq_state_is_final(AIPALQ_STATE_PENDING), 0);
    ck_assert_int_eq(aipalq_state_is_final(AIPALQ_STATE_SCHEDULED), 0);
    ck_assert_int_eq(aipalq_state_is_final(AIPALQ_STATE_RUNNING), 0);
    ck_assert_int_eq(aipalq_state_is_final(AIPALQ_STATE_RETRYING), 0);
    ck_assert_int_eq(aipalq_state_is_final(AIPALQ_STATE_COMPLETED), 1);
    ck_assert_int_eq(aipalq_state_is_final(AIPALQ_STATE_FAILED), 1);
    ck_assert_int_eq(aipalq_state_is_final(AIPALQ_STATE_CANCELLED), 1);
    ck_assert_int_eq(aipalq_state_is_final((aipalq_state)-1), 0);
    ck_assert_int_eq(aipalq_state_is_final((aipalq_state)7), 0);
    ck_assert_int_eq(aipalq_state_is_final((aipalq_state)31), 0);
    ck_assert_int_eq(aipalq_state_is_final((aipalq_state)40), 0);
}
END_TEST

START_TEST(test_states_into_sql)
{
    char buf[128];
    aipalq__states_into_sql(AIPALQ_STATE_PENDING, AIPALQ__ALL_STATES, buf, sizeof buf);
    ck_assert_str_eq(buf, "{scheduled,running,retrying,failed,cancelled}");
    /* retry: only from the final states */
    aipalq__states_into_sql(AIPALQ_STATE_PENDING, AIPALQ__FINAL_STATES, buf, sizeof buf);
    ck_assert_str_eq(buf, "{failed,cancelled}");
    /* cancel of a waiting task */
    aipalq__states_into_sql(AIPALQ_STATE_CANCELLED,
                            AIPALQ__ALL_STATES & ~AIPALQ__STATE_BIT(AIPALQ_STATE_RUNNING), buf,
                            sizeof buf);
    ck_assert_str_eq(buf, "{pending,scheduled,retrying}");
    aipalq__states_into_sql(AIPALQ_STATE_COMPLETED, AIPALQ__ALL_STATES, buf, sizeof buf);
    ck_assert_str_eq(buf, "{running}");
    aipalq__states_into_sql(AIPALQ_STATE_RUNNING, AIPALQ__ALL_STATES, buf, sizeof buf);
    ck_assert_str_eq(buf, "{pending,scheduled,retrying}");
    /* Nothing leads there from the candidates: an empty array. */
    aipalq__states_into_sql(AIPALQ_STATE_COMPLETED, AIPALQ__FINAL_STATES, buf, sizeof buf);
    ck_assert_str_eq(buf, "{}");
    aipalq__states_into_sql(AIPALQ_STATE_PENDING, 0, buf, sizeof buf);
    ck_assert_str_eq(buf, "{}");
    /* Every listed state really may move to the target. */
    for (int to = 0; to < 7; to++) {
        aipalq__states_into_sql((aipalq_state)to, AIPALQ__ALL_STATES, buf, sizeof buf);
        for (int from = 0; from < 7; from++) {
            char item[32];
            const char *name = aipalq_state_name((aipalq_state)from);
            int listed = 0;
            snprintf(item, sizeof item, "{%s,", name);
            listed |= strstr(buf, item) != NULL;
            snprintf(item, sizeof item, ",%s,", name);
            listed |= strstr(buf, item) != NULL;
            snprintf(item, sizeof item, ",%s}", name);
            listed |= strstr(buf, item) != NULL;
            snprintf(item, sizeof item, "{%s}", name);
            listed |= strcmp(buf, item) == 0;
            ck_assert_msg(listed == legal[from][to], "%s in the sources of %s: %s", name,
                          aipalq_state_name((aipalq_state)to), buf);
        }
    }
}
END_TEST

START_TEST(test_states_into_sql_truncates)
{
    char buf[16];
    memset(buf, 'Z', sizeof buf);
    aipalq__states_into_sql(AIPALQ_STATE_PENDING, AIPALQ__ALL_STATES, buf, 10);
    ck_assert_uint_lt(strlen(buf), 10);
    for (size_t i = 10; i < sizeof buf; i++)
        ck_assert_int_eq(buf[i], 'Z');
}
END_TEST

int main(void)
{
    Suite *s = suite_create("state");
    TCase *tc = tcase_create("machine");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_enum_values);
    tcase_add_test(tc, test_transition_table);
    tcase_add_test(tc, test_illegal_examples);
    tcase_add_test(tc, test_final_states_have_no_way_out_but_retry);
    tcase_add_test(tc, test_names_round_trip);
    tcase_add_test(tc, test_parse_bad);
    tcase_add_test(tc, test_is_final);
    tcase_add_test(tc, test_states_into_sql);
    tcase_add_test(tc, test_states_into_sql_truncates);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
