/* The maintenance thread: the fleet's upkeep, run by whichever worker gets
 * its turn (the reconciler takes an advisory lock): the outbox relay, woken
 * by NOTIFY, and every maintenance period the relay and the reconciler.
 *
 * It has its own thread and connections because a pass can take long: the
 * reconciler reads every unfinished task, and with a million waiting that is
 * seconds of work. On the heartbeat thread, where it used to run, such a pass
 * held up the lease extensions of running tasks, which then expired and ran
 * again elsewhere. A long pass also paces the next one (at least
 * PACE_FACTOR times its own duration later), so that a deep backlog does not
 * turn the reconciler into a constant load. */
#include <time.h>

#include "worker_internal.h"

#define TICK_MS            250
#define RECONCILE_GRACE_MS 15000
#define PACE_FACTOR        10
#define RELAY_BATCH        1000

static bool stopping(aipalq_worker *w)
{
    return atomic_load(&w->maintenance_stop) != 0;
}

static void relay_all(aipalq_worker *w, aipalq_client *c)
{
    int64_t moved = 0;
    do {
        if (aipalq_relay_outbox(c, RELAY_BATCH, &moved) != AIPALQ_OK)
            break;
    } while (moved == RELAY_BATCH && !stopping(w));
}

/* True when a NOTIFY on the outbox channel came since the last look. */
static bool outbox_notified(aipalq_client *c, bool *listening)
{
    if (!*listening && aipalq__pg_exec(c, "LISTEN aipalq_outbox", 0, NULL, NULL) == AIPALQ_OK)
        *listening = true;
    if (!c->pg) {
        *listening = false;
        return false;
    }
    PQconsumeInput(c->pg);
    bool notified = false;
    PGnotify *note;
    while ((note = PQnotifies(c->pg)) != NULL) {
        notified = true;
        PQfreemem(note);
    }
    return notified;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void *maintenance_main(void *arg)
{
    aipalq_worker *w = arg;
    aipalq_client *c = aipalq__worker_client(w);
    if (!c)
        return NULL;
    int64_t grace = w->lease_ms > RECONCILE_GRACE_MS ? w->lease_ms : RECONCILE_GRACE_MS;
    int64_t next_pass = aipalq__monotonic_ms() + w->maintenance_ms;
    bool listening = false;
    while (!stopping(w)) {
        if (outbox_notified(c, &listening))
            relay_all(w, c);
        int64_t now = aipalq__monotonic_ms();
        if (now >= next_pass) {
            relay_all(w, c);
            aipalq__reconcile(c, grace, &w->maintenance_stop, NULL, NULL);
            int64_t took = aipalq__monotonic_ms() - now;
            int64_t pause =
                took * PACE_FACTOR > w->maintenance_ms ? took * PACE_FACTOR : w->maintenance_ms;
            next_pass = now + took + pause;
        }
        sleep_ms(TICK_MS);
    }
    aipalq_client_free(c);
    return NULL;
}

aipalq_status aipalq__maintenance_start(aipalq_worker *w)
{
    w->maintenance_started = false;
    if (w->maintenance_ms <= 0)
        return AIPALQ_OK;
    atomic_store(&w->maintenance_stop, 0);
    if (pthread_create(&w->maintenance_thread, NULL, maintenance_main, w) != 0)
        return AIPALQ_ENOMEM;
    w->maintenance_started = true;
    return AIPALQ_OK;
}

void aipalq__maintenance_stop(aipalq_worker *w)
{
    if (!w->maintenance_started)
        return;
    atomic_store(&w->maintenance_stop, 1);
    pthread_join(w->maintenance_thread, NULL);
    w->maintenance_started = false;
}
