/* Prefork mode: each slot thread drives one child process that runs
 * handlers, one task at a time. A child that crashes or passes the hard time
 * limit (it is killed) fails or retries only its own task and is replaced;
 * the parent's connections, leases and records are never in the child's
 * hands. Signals carry cancel (SIGUSR1) and soft limit (SIGUSR2) to the
 * child. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "prefork_proto.h"
#include "worker_internal.h"

#define POLL_MS 50

/* ------------------------------------------------------------- frames */

static bool write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

static bool read_all(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        ssize_t k = read(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

bool aipalq__frame_write(int fd, char type, const char *const *fields, int n)
{
    size_t total = 1;
    for (int i = 0; i < n; i++)
        total += 4 + strlen(fields[i] ? fields[i] : "");
    char *buf = malloc(total + 4);
    if (!buf || total > UINT32_MAX) {
        free(buf);
        return false;
    }
    uint32_t len = (uint32_t)total;
    memcpy(buf, &len, 4);
    buf[4] = type;
    size_t o = 5;
    for (int i = 0; i < n; i++) {
        const char *s = fields[i] ? fields[i] : "";
        uint32_t flen = (uint32_t)strlen(s);
        memcpy(buf + o, &flen, 4);
        memcpy(buf + o + 4, s, flen);
        o += 4 + flen;
    }
    bool ok = write_all(fd, buf, total + 4);
    free(buf);
    return ok;
}

bool aipalq__frame_read(int fd, aipalq__frame *f)
{
    memset(f, 0, sizeof *f);
    uint32_t len;
    if (!read_all(fd, &len, 4) || len < 1 || len > 64u * 1024 * 1024)
        return false;
    char *raw = malloc(len);
    if (!raw || !read_all(fd, raw, len)) {
        free(raw);
        return false;
    }
    f->type = raw[0];
    /* Each field is copied with a NUL after it into one buffer. */
    f->buf = malloc(len + AIPALQ__FRAME_MAX_FIELDS + 1);
    if (!f->buf) {
        free(raw);
        return false;
    }
    size_t o = 1, b = 0;
    while (o + 4 <= len && f->nfields < AIPALQ__FRAME_MAX_FIELDS) {
        uint32_t flen;
        memcpy(&flen, raw + o, 4);
        if (flen > len - o - 4)
            break;
        memcpy(f->buf + b, raw + o + 4, flen);
        f->buf[b + flen] = '\0';
        f->fields[f->nfields++] = f->buf + b;
        b += flen + 1;
        o += 4 + flen;
    }
    free(raw);
    return true;
}

void aipalq__frame_free(aipalq__frame *f)
{
    free(f->buf);
    memset(f, 0, sizeof *f);
}

static const char *field(const aipalq__frame *f, int i)
{
    return i < f->nfields ? f->fields[i] : "";
}

/* ------------------------------------------------------------- the child */

static volatile sig_atomic_t child_cancel, child_soft;

static void on_cancel(int sig)
{
    (void)sig;
    child_cancel = 1;
}

static void on_soft(int sig)
{
    (void)sig;
    child_soft = 1;
}

int aipalq__child_cancel_flag(void)
{
    return child_cancel;
}

int aipalq__child_soft_flag(void)
{
    return child_soft;
}

void aipalq__child_send_progress(int fd, int percent, const char *message)
{
    char pct[16];
    snprintf(pct, sizeof pct, "%d", percent);
    const char *fields[] = {pct, message ? message : ""};
    aipalq__frame_write(fd, AIPALQ__FRAME_PROGRESS, fields, 2);
}

static void child_setup_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_cancel;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_soft;
    sigaction(SIGUSR2, &sa, NULL);
    /* Terminal and service-manager signals are for the parent, which hands
     * the task back or kills the child itself. */
    sa.sa_handler = SIG_IGN;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
    sigset_t all;
    sigemptyset(&all);
    pthread_sigmask(SIG_SETMASK, &all, NULL);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the parent */
}

static void child_run_task(aipalq_worker *w, int fd, const aipalq__frame *t)
{
    aipalq_job job;
    memset(&job, 0, sizeof job);
    job.magic = AIPALQ__JOB_MAGIC;
    job.w = w;
    job.child_fd = fd;
    snprintf(job.id, sizeof job.id, "%s", field(t, 0));
    job.type = (char *)field(t, 1);
    job.queue = (char *)field(t, 2);
    job.params = (char *)field(t, 3);
    job.user_id = field(t, 4)[0] ? (char *)field(t, 4) : NULL;
    job.attempt = atoi(field(t, 5));
    job.max_retries = atoi(field(t, 6));
    job.token = strtoll(field(t, 7), NULL, 10);
    job.priority = atoi(field(t, 8));
    child_cancel = 0;
    child_soft = 0;
    const aipalq__handler *h = aipalq__worker_handler(w, job.type);
    if (h)
        h->fn(&job, h->userdata);
    else
        aipalq_job_set_error(&job, "no handler for this task type on this worker", job.type, 1);
    const char *outcome = job.outcome == JOB_FAILED      ? "failed"
                          : job.outcome == JOB_COMPLETED ? "completed"
                                                         : "none";
    const char *fields[] = {outcome, job.retryable ? "1" : "0", job.result, job.err_msg,
                            job.err_detail};
    if (!aipalq__frame_write(fd, AIPALQ__FRAME_RESULT, fields, 5))
        _exit(1);
    free(job.result);
    free(job.err_msg);
    free(job.err_detail);
}

static void child_main(aipalq_worker *w, int fd)
{
    child_setup_signals();
    for (;;) {
        aipalq__frame t;
        if (!aipalq__frame_read(fd, &t))
            _exit(0); /* the parent closed: done */
        if (t.type == AIPALQ__FRAME_TASK)
            child_run_task(w, fd, &t);
        aipalq__frame_free(&t);
    }
}

/* ------------------------------------------------------------ the parent */

/* Serialises socketpair + fork + closing the child's end in the parent across
 * the slot threads. Without it a slot forking at the same moment (they all
 * spawn at start, and respawn after crashes and recycling) hands its child a
 * copy of another child's end; when that other child then dies, its slot sees
 * no end of file until the copy's holder exits too, so the crashed task stays
 * running, unrecorded, for as long (the fault suite measured 10-18 s). */
static pthread_mutex_t spawn_lock = PTHREAD_MUTEX_INITIALIZER;

static bool spawn(aipalq_worker *w, aipalq__child *ch)
{
    int sv[2];
    pthread_mutex_lock(&spawn_lock);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        pthread_mutex_unlock(&spawn_lock);
        return false;
    }
    aipalq__fork_begin(); /* no connection set-up under way: see fork_guard.c */
    pid_t pid = fork();
    if (pid == 0)
        aipalq__fork_end_in_child();
    else
        aipalq__fork_end();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        pthread_mutex_unlock(&spawn_lock);
        return false;
    }
    if (pid == 0) {
        close(sv[0]);
        child_main(w, sv[1]);
        _exit(0);
    }
    close(sv[1]);
    pthread_mutex_unlock(&spawn_lock);
    ch->pid = pid;
    ch->fd = sv[0];
    ch->tasks_done = 0;
    return true;
}

/* Ends a child and reaps it; returns its wait status. */
static int reap(aipalq__child *ch, bool kill_it)
{
    int status = 0;
    if (ch->pid <= 0)
        return 0;
    if (kill_it)
        kill(ch->pid, SIGKILL);
    if (ch->fd >= 0)
        close(ch->fd);
    ch->fd = -1;
    while (waitpid(ch->pid, &status, 0) < 0 && errno == EINTR) {
    }
    ch->pid = 0;
    return status;
}

static int64_t child_rss_kb(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    FILE *f = fopen(path, "r");
    long size = 0, resident = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (int64_t)resident * (sysconf(_SC_PAGESIZE) / 1024);
}

typedef enum end_reason {
    END_RESULT,    /* the child sent an outcome */
    END_CRASH,     /* the child died */
    END_HARD,      /* killed at the hard limit */
    END_CANCELLED, /* killed after ignoring a cancel */
    END_ABANDONED, /* handed back or ended elsewhere */
} end_reason;

static bool send_task(aipalq__child *ch, const aipalq_job *job)
{
    char attempt[16], maxr[16], token[24], prio[16];
    snprintf(attempt, sizeof attempt, "%d", job->attempt);
    snprintf(maxr, sizeof maxr, "%d", job->max_retries);
    snprintf(token, sizeof token, "%lld", (long long)job->token);
    snprintf(prio, sizeof prio, "%d", job->priority);
    const char *fields[] = {job->id, job->type, job->queue, job->params, job->user_id,
                            attempt, maxr,      token,      prio};
    return aipalq__frame_write(ch->fd, AIPALQ__FRAME_TASK, fields, 9);
}

static void take_result(aipalq_job *job, const aipalq__frame *f)
{
    const char *outcome = field(f, 0);
    if (strcmp(outcome, "completed") == 0) {
        job->outcome = JOB_COMPLETED;
        job->result = field(f, 2)[0] ? aipalq__strdup(field(f, 2)) : NULL;
    } else if (strcmp(outcome, "failed") == 0) {
        aipalq_job_set_error(job, field(f, 3), field(f, 4)[0] ? field(f, 4) : NULL,
                             field(f, 1)[0] == '1');
    }
}

/* Drives one task through the child until it ends; returns why it ended. */
static end_reason supervise(aipalq_worker *w, aipalq__child *ch, aipalq_job *job)
{
    bool sent_cancel = false, sent_soft = false;
    int64_t cancel_at = 0;
    for (;;) {
        struct pollfd pfd = {.fd = ch->fd, .events = POLLIN};
        int ready = poll(&pfd, 1, POLL_MS);
        if (ready > 0) {
            aipalq__frame f;
            if (!aipalq__frame_read(ch->fd, &f))
                return END_CRASH;
            if (f.type == AIPALQ__FRAME_PROGRESS) {
                aipalq__record *r = aipalq__record_new("progress", job);
                if (r) {
                    r->pct = atoi(field(&f, 0));
                    r->msg = field(&f, 1)[0] ? aipalq__strdup(field(&f, 1)) : NULL;
                    aipalq__recorder_push(w, r);
                }
            } else if (f.type == AIPALQ__FRAME_RESULT) {
                take_result(job, &f);
                aipalq__frame_free(&f);
                return END_RESULT;
            }
            aipalq__frame_free(&f);
            continue;
        }
        int64_t now = aipalq__monotonic_ms();
        int64_t ran = now - job->started_mono;
        if (atomic_load(&job->abandoned) || w->stop == 2)
            return END_ABANDONED;
        if (job->settings.hard_limit_ms > 0 && ran >= job->settings.hard_limit_ms)
            return END_HARD;
        if (atomic_load(&job->cancel) && !sent_cancel) {
            kill(ch->pid, SIGUSR1);
            sent_cancel = true;
            cancel_at = now;
        } else if (sent_cancel && now - cancel_at >= AIPALQ__CANCEL_GRACE_MS) {
            return END_CANCELLED;
        }
        if (atomic_load(&job->soft_passed) && !sent_soft) {
            kill(ch->pid, SIGUSR2);
            sent_soft = true;
        }
    }
}

static char *describe_exit(int status)
{
    char buf[160];
    if (WIFSIGNALED(status))
        snprintf(buf, sizeof buf, "the handler's process was killed by signal %d (%s)",
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
    else if (WIFEXITED(status))
        snprintf(buf, sizeof buf, "the handler's process exited with status %d",
                 WEXITSTATUS(status));
    else
        snprintf(buf, sizeof buf, "the handler's process ended");
    return aipalq__strdup(buf);
}

static aipalq__record *end_record(aipalq_worker *w, aipalq_job *job, end_reason why, int status)
{
    switch (why) {
    case END_RESULT:
        return aipalq__job_outcome_record(job);
    case END_HARD:
        return aipalq__job_failure_record(job, "hard time limit exceeded",
                                          "the handler's process was killed at the hard limit",
                                          false);
    case END_CANCELLED: {
        aipalq__record *r = aipalq__record_new("cancelled", job);
        if (r)
            r->err = aipalq__strdup("cancelled; the handler was stopped after the grace period");
        return r;
    }
    case END_ABANDONED:
        return atomic_load(&job->abandoned) ? NULL : aipalq__record_new("released", job);
    case END_CRASH:
        break;
    }
    char *detail = describe_exit(status);
    aipalq__record *r = aipalq__job_failure_record(job, "handler crashed", detail, true);
    free(detail);
    (void)w;
    return r;
}

static bool should_recycle(const aipalq_worker *w, const aipalq__child *ch)
{
    if (w->recycle_tasks > 0 && ch->tasks_done >= w->recycle_tasks)
        return true;
    return w->recycle_rss_kb > 0 && child_rss_kb(ch->pid) > w->recycle_rss_kb;
}

static void run_in_child(aipalq_worker *w, aipalq_job *job, void *ctx)
{
    aipalq__child *ch = ctx;
    if (ch->pid <= 0 && !spawn(w, ch)) {
        aipalq__record *r =
            aipalq__job_failure_record(job, "cannot start a handler process", NULL, true);
        if (r)
            aipalq__recorder_push(w, r);
        return;
    }
    job->started_mono = aipalq__monotonic_ms();
    atomic_store(&job->running, 1);
    atomic_fetch_add(&w->n_running, 1);
    end_reason why = send_task(ch, job) ? supervise(w, ch, job) : END_CRASH;
    int status = 0;
    if (why != END_RESULT)
        status = reap(ch, true);
    atomic_store(&job->running, 0);
    atomic_fetch_sub(&w->n_running, 1);
    aipalq__record *r = end_record(w, job, why, status);
    if (r)
        aipalq__recorder_push(w, r);
    if (ch->pid > 0 && ++ch->tasks_done && should_recycle(w, ch))
        reap(ch, true);
}

void *aipalq__prefork_slot(void *arg)
{
    aipalq_worker *w = arg;
    aipalq__child ch = {.pid = 0, .fd = -1};
    spawn(w, &ch);
    aipalq__slot_loop(w, run_in_child, &ch);
    reap(&ch, true);
    aipalq__slot_exit(w);
    return NULL;
}
