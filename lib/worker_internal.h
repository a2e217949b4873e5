/* The worker engine's internal types, shared by worker.c, job.c, take.c,
 * recorder.c, heartbeat.c, prefork.c and registry.c. */
#ifndef AIPALQ_WORKER_INTERNAL_H
#define AIPALQ_WORKER_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "aipal/worker.h"
#include "internal.h"

#define AIPALQ__WORKER_MAGIC 0x4149574bu /* "AIWK" */
#define AIPALQ__JOB_MAGIC    0x41494a42u /* "AIJB" */
#define AIPALQ__MAX_QUEUES   64
/* Records waiting for the recorder beyond which the dispatcher stops taking
 * work (PostgreSQL is slow or down: do not run what cannot be recorded). */
#define AIPALQ__RECORDER_BACKLOG 4000
/* How long the recorder may hold a delivery's start record back, waiting for
 * its outcome: a task that ends within it costs one row update and one event
 * row (start and outcome folded), not two of each. At most a tenth of the
 * lease, so a start is always written long before its lease could expire. */
#define AIPALQ__START_HOLD_MS 10
/* How long a prefork handler may ignore a cancel before it is killed. */
#define AIPALQ__CANCEL_GRACE_MS 5000

typedef enum job_outcome {
    JOB_NO_OUTCOME,
    JOB_COMPLETED,
    JOB_FAILED,
} job_outcome;

struct aipalq_job {
    uint32_t magic;
    aipalq_worker *w;
    char id[AIPALQ_ID_SIZE];
    char *type, *queue, *params, *user_id;
    int priority, attempt, max_retries;
    int64_t token;
    aipalq__type settings; /* the type's backoff, limits and TTL */
    int64_t started_mono;  /* when the handler started; 0 before */
    int64_t taken_mono;
    atomic_int cancel;      /* a cancel was requested */
    atomic_int soft_passed; /* the soft limit has passed */
    atomic_int lease_lost;  /* a heartbeat found the lease gone */
    atomic_int abandoned;   /* ended without the handler (hard limit, shutdown) */
    atomic_int running;     /* the handler is running */
    bool soft_notified;
    /* What the handler set. */
    job_outcome outcome;
    char *result, *err_msg, *err_detail;
    int retryable;
    /* Prefork: in a child, the socket to the parent (-1 elsewhere). */
    int child_fd;
    /* Step API: the job was taken by aipalq_worker_next and not yet ended. */
    bool step;
    bool ended;
    char errmsg[256];
    struct aipalq_job *next; /* in the worker's in-flight list */
    struct aipalq_job *prev;
    struct aipalq_job *next_ready; /* in the ready queue */
};

/* One transition for the recorder to write (PostgreSQL, then Redis). */
typedef struct aipalq__record {
    char kind[12]; /* running, completed, failed, retrying, cancelled, requeued, released, progress
                    */
    char id[AIPALQ_ID_SIZE];
    char queue[AIPALQ_MAX_NAME_LEN + 1];
    int64_t token;
    int attempt;
    char *result, *err, *detail, *msg;
    int64_t run_at_ms; /* retrying: when due */
    int pct;
    int64_t ttl_ms;      /* how long Redis keeps a copy of the outcome; 0: none */
    bool redis_done;     /* Redis already settled (reclaims made by the take script) */
    bool started;        /* an outcome that also carries its delivery's start */
    int64_t started_ms;  /* running, or an outcome carrying its start: Unix ms of the start */
    int64_t pushed_mono; /* when it was pushed (monotonic ms) */
    bool may_hold;       /* a start the recorder may hold back (counted in rec_starts) */
    /* Step API: the caller waits for this record to be written. */
    struct aipalq__sync *sync;
    struct aipalq__record *next;
} aipalq__record;

typedef struct aipalq__sync {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    bool applied;
    aipalq_status status;
    char message[256];
} aipalq__sync;

/* A slot thread waiting for a job: the dispatcher hands a job to the most
 * recently idle one directly and wakes only that thread. */
typedef struct aipalq__slot_waiter {
    pthread_cond_t cv;
    aipalq_job *job;
    struct aipalq__slot_waiter *next;
} aipalq__slot_waiter;

typedef struct aipalq__handler {
    char type[AIPALQ_MAX_NAME_LEN + 1];
    aipalq_handler_fn fn;
    void *userdata;
} aipalq__handler;

typedef struct aipalq__child {
    pid_t pid;
    int fd; /* parent's end of the socket pair */
    int tasks_done;
} aipalq__child;

struct aipalq_worker {
    uint32_t magic;
    char id[129];
    char host[256];
    /* Configuration (the client carries URLs, namespace and types). */
    aipalq_client *cfg;
    aipalq__handler *handlers;
    size_t nhandlers;
    char *queues[AIPALQ__MAX_QUEUES];
    size_t nqueues;
    int fair_every;
    int concurrency, prefetch;
    aipalq_worker_mode mode;
    int64_t lease_ms, shutdown_ms, maintenance_ms;
    int recycle_tasks;
    int64_t recycle_rss_kb;
    aipalq_soft_limit_fn soft_fn;
    void *soft_ud;
    int64_t started_ms;
    /* Connections: one client per thread that talks to the servers. */
    aipalq_client *main; /* dispatcher / step caller */
    /* Shared state, guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t slot_cv;              /* a handler slot freed, or stop */
    aipalq__slot_waiter *idle_slots;     /* slot threads waiting for a job (a stack) */
    aipalq_job *inflight;                /* every leased job */
    aipalq_job *ready_head, *ready_tail; /* jobs no slot thread has taken yet */
    int nready, nrunning;
    bool slot_waking; /* an idle slot thread was handed a job and not yet run */
    /* 0 run, 1 graceful, 2 fast. Written by aipalq_worker_stop from any
     * thread or a signal handler, read by the slot, handler and heartbeat
     * threads without mu: an atomic (lock-free, hence also async-signal-safe),
     * not a volatile sig_atomic_t, which orders nothing between threads. */
    atomic_int stop;
    bool running_loop;
    bool runtime_started;
    pthread_t *slot_threads;
    int nslot_threads;
    int live_slots; /* slot threads not yet returned, guarded by mu */
    /* Set under mu when a run's slots are shut down, cleared only when the
     * next run starts its own: unlike stop (which a run clears on return so
     * the worker can run again), it still tells a handler thread that outlived
     * the shutdown deadline to exit once its handler returns. */
    bool slots_closing;
    pthread_t heartbeat_thread, recorder_thread, maintenance_thread;
    atomic_int heartbeat_stop;
    atomic_int maintenance_stop;
    bool maintenance_started;
    /* The recorder's queue, guarded by rec_mu. */
    pthread_mutex_t rec_mu;
    pthread_cond_t rec_cv;
    pthread_cond_t rec_idle_cv;
    aipalq__record *rec_head, *rec_tail;
    int rec_count;
    int rec_starts; /* start records among rec_count (which may wait) */
    bool rec_busy;
    bool rec_idle_wait; /* the recorder waits with nothing queued, no deadline */
    int64_t start_hold_ms;
    atomic_int recorder_stop;
    /* Counters. */
    atomic_llong n_completed, n_failed, n_retried, n_cancelled, n_stale, n_running;
    atomic_llong last_progress_mono;
    unsigned take_round;
    char errmsg[AIPALQ__ERRMSG_SIZE];
};

/* worker.c */
bool aipalq__worker_ok(const aipalq_worker *w);
aipalq_client *aipalq__worker_client(aipalq_worker *w);
void aipalq__worker_set_err(aipalq_worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const aipalq__handler *aipalq__worker_handler(const aipalq_worker *w, const char *type);
/* A slot finished with a job: removes and frees it, frees the slot. */
void aipalq__slot_done(aipalq_worker *w, aipalq_job *job);
/* Under mu: the next job for a slot, or NULL when stopping. */
aipalq_job *aipalq__pop_ready(aipalq_worker *w);
/* Under mu: wakes every slot thread waiting for a job (to see a stop). */
void aipalq__wake_idle_slots(aipalq_worker *w);
/* The body of a slot thread: takes ready jobs until stopped, runs each with
 * run(w, job, ctx), hands back those that must not run, frees the slots. */
typedef void (*aipalq__run_fn)(aipalq_worker *w, aipalq_job *job, void *ctx);
void aipalq__slot_loop(aipalq_worker *w, aipalq__run_fn run, void *ctx);
/* A slot thread is returning. */
void aipalq__slot_exit(aipalq_worker *w);
/* Records a "released" end for a job that will not run here. */
void aipalq__release_job(aipalq_worker *w, aipalq_job *job);
/* Under mu: adds / removes a job of the in-flight list. */
void aipalq__inflight_add(aipalq_worker *w, aipalq_job *job);
void aipalq__inflight_remove(aipalq_worker *w, aipalq_job *job);

/* job.c */
aipalq_job *aipalq__job_new(aipalq_worker *w, const char *queue, const char *payload, int attempt,
                            int64_t token);
void aipalq__job_destroy(aipalq_job *job);
/* Builds the outcome record of a job from what its handler set (or from the
 * reason it ended without one). */
aipalq__record *aipalq__job_outcome_record(aipalq_job *job);
aipalq__record *aipalq__job_failure_record(aipalq_job *job, const char *msg, const char *detail,
                                           bool retryable);
aipalq__record *aipalq__record_new(const char *kind, const aipalq_job *job);
void aipalq__record_free(aipalq__record *r);

/* take.c */
/* Takes up to `max` tasks from the worker's queues, in order. Jobs go to
 * *jobs (a malloc'd array the caller frees), their running records and any
 * reclaimed leases to the recorder. *next_due_ms gets the earliest scheduled
 * time seen, or -1. */
aipalq_status aipalq__take(aipalq_worker *w, aipalq_client *c, int max, aipalq_job ***jobs,
                           int *njobs, int64_t *next_due_ms);
/* Blocks until a wake token arrives on one of the queues or timeout_ms
 * passes. With jobs (not NULL) and max > 0 it then takes up to max tasks
 * from the first queue, with no round trip in between, as aipalq__take
 * would: *jobs gets a malloc'd array the caller frees. */
aipalq_status aipalq__wait_for_work(aipalq_worker *w, aipalq_client *c, int64_t timeout_ms, int max,
                                    aipalq_job ***jobs, int *njobs, int64_t *next_due_ms);

/* recorder.c */
aipalq_status aipalq__recorder_start(aipalq_worker *w);
void aipalq__recorder_push(aipalq_worker *w, aipalq__record *r);
/* Pushes a delivery's start record without waking the recorder: it may wait
 * up to the worker's start hold for the outcome, to write both as one. The
 * caller calls aipalq__recorder_kick once it has handed the jobs on. */
void aipalq__recorder_push_start(aipalq_worker *w, aipalq__record *r);
void aipalq__recorder_kick(aipalq_worker *w);
/* Waits until every pushed record has been written (or gives up at
 * deadline_mono). */
void aipalq__recorder_drain(aipalq_worker *w, int64_t deadline_mono);
void aipalq__recorder_stop(aipalq_worker *w);
int aipalq__recorder_backlog(aipalq_worker *w);

/* heartbeat.c */
aipalq_status aipalq__heartbeat_start(aipalq_worker *w);
void aipalq__heartbeat_stop(aipalq_worker *w);

/* maintenance.c: the outbox relay and the reconciler on a thread of their own
 * (none when the maintenance interval is 0). */
aipalq_status aipalq__maintenance_start(aipalq_worker *w);
void aipalq__maintenance_stop(aipalq_worker *w);

/* prefork.c */
/* Runs jobs from the ready queue through one child process; the body of a
 * prefork slot thread. */
void *aipalq__prefork_slot(void *arg);

/* registry.c */
aipalq_status aipalq__registry_publish(aipalq_worker *w, aipalq_client *c, bool leaving);

#endif
