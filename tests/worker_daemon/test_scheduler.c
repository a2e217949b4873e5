/* The scheduler's guarantees, with two (and more) schedulers on one
 * database and clocks given explicitly: one leader at a time, each firing
 * enqueued once, takeover when the leader stops renewing its lease, catch-up
 * of missed firings after a takeover or restart, no firing by a deposed
 * leader; and, with real clocks, two schedulers racing for a few seconds
 * without a doubled firing. Needs Redis and PostgreSQL (wtest.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "scheduler.h"
#include "wtest.h"

static char ns[64];

static scheduler *make(const char *holder, const char *text, int64_t catchup_ms)
{
    schedule s;
    char err[256];
    ck_assert_msg(schedule_parse(text, &s, err, sizeof err) == 0, "%s", err);
    scheduler_config cfg = {NULL, NULL, ns, holder, 15000, catchup_ms, NULL};
    scheduler *sc = scheduler_new(&cfg, &s, NULL, err, sizeof err);
    schedule_free(&s);
    ck_assert_msg(sc != NULL, "%s", err);
    return sc;
}

/* Tasks enqueued by entry `name`, and how many distinct firings they are. */
static long fired_tasks(const char *name)
{
    return wt_sql_int("SELECT count(*) FROM aipalq_tasks WHERE idempotency_key LIKE 'cron:%s:%%'",
                      name);
}

static long has_firing(const char *name, int64_t at)
{
    return wt_sql_int("SELECT count(*) FROM aipalq_tasks WHERE idempotency_key = 'cron:%s:%lld'",
                      name, (long long)at);
}

START_TEST(one_leader_fires_once_and_takeover_catches_up)
{
    const char *text = "tick @every 10s echo {\"message\":\"tick\"}";
    scheduler *a = make("A", text, 3600000), *b = make("B", text, 3600000);
    int64_t base = wt_now_ms() / 10000 * 10000 + 5000; /* 5 s past a firing instant */
    ck_assert_int_eq(scheduler_tick(a, base), 0);      /* first sighting: no firing */
    ck_assert_int_eq(scheduler_is_leader(a), 1);
    ck_assert_int_eq(scheduler_tick(b, base), 0);
    ck_assert_int_eq(scheduler_is_leader(b), 0);
    ck_assert_int_eq(scheduler_tick(a, base + 10000), 1);
    ck_assert_int_eq(scheduler_tick(b, base + 10000), 0);
    ck_assert_int_eq(scheduler_tick(a, base + 10000), 0); /* the same instant again: nothing */
    ck_assert_int_eq(scheduler_tick(a, base + 20000), 1);
    ck_assert_int_eq(scheduler_tick(b, base + 20000), 0);
    ck_assert_int_eq(has_firing("tick", base + 5000), 1);
    ck_assert_int_eq(has_firing("tick", base + 15000), 1);
    /* A dies: its lease runs until base + 35000. */
    ck_assert_int_eq(scheduler_tick(b, base + 30000), 0);
    ck_assert_int_eq(scheduler_is_leader(b), 0);
    ck_assert_int_eq(scheduler_tick(b, base + 36000), 2); /* takes over, makes up two */
    ck_assert_int_eq(scheduler_is_leader(b), 1);
    ck_assert_int_eq(has_firing("tick", base + 25000), 1);
    ck_assert_int_eq(has_firing("tick", base + 35000), 1);
    /* A comes back: the lease is B's; A fires nothing. */
    ck_assert_int_eq(scheduler_tick(a, base + 47000), 0);
    ck_assert_int_eq(scheduler_is_leader(a), 0);
    ck_assert_int_eq(fired_tasks("tick"), 4);
    /* B restarts (same holder): continues from the recorded firing. */
    scheduler_free(b);
    b = make("B", text, 3600000);
    ck_assert_int_eq(scheduler_tick(b, base + 47000), 1);
    ck_assert_int_eq(has_firing("tick", base + 45000), 1);
    ck_assert_int_eq(fired_tasks("tick"), 5);
    ck_assert_int_eq(wt_sql_int("SELECT fired_count FROM aipal_schedule_state WHERE name = "
                                "'tick'"),
                     5);
    /* A graceful stop hands the lease over at once. */
    scheduler_release(b);
    ck_assert_int_eq(scheduler_is_leader(b), 0);
    ck_assert_int_eq(scheduler_tick(a, base + 48000), 0);
    ck_assert_int_eq(scheduler_is_leader(a), 1);
    ck_assert_int_eq(wt_sql_int("SELECT fence FROM aipal_scheduler_lease"), 3);
    scheduler_release(a);
    scheduler_free(a);
    scheduler_free(b);
}
END_TEST

START_TEST(old_firings_are_skipped_beyond_the_catchup_window)
{
    const char *text = "lag @every 10s echo {}";
    scheduler *d = make("D", text, 20000);
    int64_t base = wt_now_ms() / 10000 * 10000;
    wt_sql("UPDATE aipal_scheduler_lease SET expires_at = to_timestamp(0)");
    ck_assert_int_eq(scheduler_tick(d, base), 0);
    ck_assert_int_eq(scheduler_is_leader(d), 1);
    /* 100 s later: ten instants missed, the last three within 20 s. */
    ck_assert_int_eq(scheduler_tick(d, base + 100000), 3);
    ck_assert_int_eq(has_firing("lag", base + 70000), 0);
    ck_assert_int_eq(has_firing("lag", base + 80000), 1);
    ck_assert_int_eq(has_firing("lag", base + 90000), 1);
    ck_assert_int_eq(has_firing("lag", base + 100000), 1);
    ck_assert_int_eq(fired_tasks("lag"), 3);
    scheduler_release(d);
    scheduler_free(d);
}
END_TEST

START_TEST(entries_are_checked_against_the_catalog)
{
    const struct {
        const char *text, *want;
    } bad[] = {
        {"x @hourly no_such_type", "schedule entry \"x\": type: unknown task type no_such_type"},
        {"y @hourly sleep {\"ms\":-5}", "schedule entry \"y\": params.ms: must be an integer"},
        {"z @hourly cleanup_cache {\"bogus\":1}", "schedule entry \"z\": params.bogus: unknown "
                                                  "field"},
        {"[{\"name\":\"p\",\"schedule\":\"@daily\",\"type\":\"maintain_database\","
         "\"priority\":9}]",
         "schedule entry \"p\": priority: at most 5 for maintain_database"},
        {"[{\"name\":\"q\",\"schedule\":\"@daily\",\"type\":\"echo\",\"queue\":\"nowhere\"}]",
         "schedule entry \"q\": queue: unknown queue nowhere"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        schedule s;
        char err[256];
        ck_assert_int_eq(schedule_parse(bad[i].text, &s, err, sizeof err), 0);
        scheduler_config cfg = {NULL, NULL, ns, "V", 15000, 3600000, NULL};
        ck_assert_ptr_null(scheduler_new(&cfg, &s, NULL, err, sizeof err));
        ck_assert_msg(strncmp(err, bad[i].want, strlen(bad[i].want)) == 0, "got \"%s\"", err);
        schedule_free(&s);
    }
    schedule s;
    char err[256];
    ck_assert_int_eq(schedule_parse(schedule_builtin(), &s, err, sizeof err), 0);
    scheduler_config cfg = {NULL, NULL, ns, "V", 15000, 3600000, NULL};
    scheduler *ok = scheduler_new(&cfg, &s, NULL, err, sizeof err);
    ck_assert_msg(ok != NULL, "%s", err);
    scheduler_free(ok);
    schedule_free(&s);
}
END_TEST

typedef struct racer {
    scheduler *s;
    int64_t until;
    int fired, led;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    while (wt_now_ms() < r->until) {
        int n = scheduler_tick(r->s, 0);
        r->fired += n > 0 ? n : 0;
        r->led |= scheduler_is_leader(r->s);
        wt_sleep_ms(20);
    }
    return NULL;
}

START_TEST(two_schedulers_racing_never_fire_twice)
{
    const char *text = "race @every 1s echo {}";
    wt_sql("UPDATE aipal_scheduler_lease SET expires_at = to_timestamp(0)");
    racer r[2] = {{make("R1", text, 3600000), 0, 0, 0}, {make("R2", text, 3600000), 0, 0, 0}};
    int64_t until = wt_now_ms() + 4000;
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        r[i].until = until;
        pthread_create(&t[i], NULL, race, &r[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    /* One of them led; together they fired each second once. */
    ck_assert_int_eq(r[0].led + r[1].led, 1);
    long tasks = fired_tasks("race");
    ck_assert_int_ge(tasks, 3);
    ck_assert_int_eq(r[0].fired + r[1].fired, tasks);
    ck_assert_int_eq(wt_sql_int("SELECT count(DISTINCT idempotency_key) FROM aipalq_tasks WHERE "
                                "idempotency_key LIKE 'cron:race:%%'"),
                     tasks);
    /* Consecutive: the instants span exactly `tasks` seconds. */
    ck_assert_int_eq(wt_sql_int("SELECT (max(split_part(idempotency_key, ':', 3)::bigint) - "
                                "min(split_part(idempotency_key, ':', 3)::bigint)) / 1000 + 1 "
                                "FROM aipalq_tasks WHERE idempotency_key LIKE 'cron:race:%%'"),
                     tasks);
    for (int i = 0; i < 2; i++) {
        scheduler_release(r[i].s);
        scheduler_free(r[i].s);
    }
}
END_TEST

int main(void)
{
    wt_require_services();
    if (getenv("AIPAL_TEST_DEBUG"))
        log_set_level(LOG_DEBUG);
    else
        log_set_level(LOG_WARN);
    wt_scratch_db_begin("sched");
    wt_unique("wt_sched_", ns, sizeof ns);
    Suite *s = suite_create("worker_scheduler");
    TCase *tc = tcase_create("scheduler");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, one_leader_fires_once_and_takeover_catches_up);
    tcase_add_test(tc, old_firings_are_skipped_beyond_the_catchup_window);
    tcase_add_test(tc, entries_are_checked_against_the_catalog);
    tcase_add_test(tc, two_schedulers_racing_never_fire_twice);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    wt_scratch_db_end();
    return failed ? 1 : 0;
}
