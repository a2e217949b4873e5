/* Running a command for a task; see command.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "command.h"

extern char **environ;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Keeps the last lines of output in out->tail. */
static void remember(command_result *out, const char *line)
{
    size_t have = strlen(out->tail), add = strlen(line) + 1;
    if (add >= sizeof out->tail) {
        line += add - sizeof out->tail + 1;
        add = strlen(line) + 1;
    }
    if (have + add >= sizeof out->tail) {
        size_t drop = have + add - sizeof out->tail + 1;
        char *nl = strchr(out->tail + drop, '\n');
        size_t cut = nl ? (size_t)(nl - out->tail) + 1 : have;
        memmove(out->tail, out->tail + cut, have - cut + 1);
        have -= cut;
    }
    memcpy(out->tail + have, line, add - 1);
    out->tail[have + add - 1] = '\n';
    out->tail[have + add] = '\0';
}

int command_run(const command_spec *spec, command_result *out)
{
    memset(out, 0, sizeof *out);
    /* Everything the child needs is prepared before fork(): after it, a
     * multi-threaded parent's child may only make async-signal-safe calls. */
    size_t nenv = 0, nextra = 0;
    while (environ[nenv])
        nenv++;
    while (spec->env && spec->env[nextra])
        nextra++;
    char **envp = calloc(nenv + nextra + 1, sizeof *envp);
    if (!envp) {
        snprintf(out->error, sizeof out->error, "out of memory");
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < nextra; i++)
        envp[k++] = (char *)spec->env[i];
    for (size_t i = 0; i < nenv; i++) {
        /* An extra entry overrides the inherited one of the same name. */
        const char *eq = strchr(environ[i], '=');
        size_t nl = eq ? (size_t)(eq - environ[i]) + 1 : strlen(environ[i]);
        int dup = 0;
        for (size_t j = 0; j < nextra && !dup; j++)
            dup = strncmp(spec->env[j], environ[i], nl) == 0;
        if (!dup)
            envp[k++] = environ[i];
    }
    char *argv[] = {"/bin/sh", "-c", (char *)spec->command, NULL};
    int in[2] = {-1, -1}, outp[2] = {-1, -1};
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(outp, O_CLOEXEC) != 0) {
        snprintf(out->error, sizeof out->error, "pipe: %s", strerror(errno));
        goto fail;
    }
    sigset_t none;
    sigemptyset(&none);
    pid_t parent = getpid();
    int64_t start = mono_ms();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(out->error, sizeof out->error, "fork: %s", strerror(errno));
        goto fail;
    }
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(in[0], 0);
        dup2(outp[1], 1);
        dup2(outp[1], 2);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        for (int s = 1; s < 32; s++)
            if (s != SIGKILL && s != SIGSTOP)
                sigaction(s, &sa, NULL);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    setpgid(pid, pid);
    close(in[0]);
    close(outp[1]);
    in[0] = outp[1] = -1;
    free(envp);
    envp = NULL;
    if (spec->stdin_text) {
        /* Small by design (one JSON line); a command that does not read it
         * gets EPIPE, which is not an error. */
        struct sigaction ign, old;
        memset(&ign, 0, sizeof ign);
        ign.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &ign, &old);
        const char *p = spec->stdin_text;
        size_t n = strlen(p);
        while (n > 0) {
            ssize_t w = write(in[1], p, n);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            p += w;
            n -= (size_t)w;
        }
        sigaction(SIGPIPE, &old, NULL);
    }
    close(in[1]);
    in[1] = -1;

    char buf[4096], line[4096];
    size_t ll = 0;
    int64_t kill_at = 0; /* when SIGKILL follows the SIGTERM */
    int open_out = 1, status = 0, reaped = 0;
    while (!reaped) {
        if (open_out) {
            struct pollfd pfd = {outp[0], POLLIN, 0};
            int pr = poll(&pfd, 1, 100);
            if (pr > 0) {
                ssize_t r = read(outp[0], buf, sizeof buf);
                if (r <= 0 && !(r < 0 && errno == EINTR)) {
                    open_out = 0;
                } else {
                    for (ssize_t i = 0; i < r; i++) {
                        if (buf[i] == '\n' || ll == sizeof line - 1) {
                            line[ll] = '\0';
                            remember(out, line);
                            if (spec->on_line)
                                spec->on_line(line, spec->userdata);
                            ll = 0;
                            if (buf[i] == '\n')
                                continue;
                        }
                        line[ll++] = buf[i];
                    }
                }
            }
        } else {
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid && !open_out)
            reaped = 1;
        else if (w == pid)
            reaped = 2; /* drain what is left, then stop */
        if (reaped == 2) {
            /* The process is gone; read the rest without blocking. */
            fcntl(outp[0], F_SETFL, O_NONBLOCK);
            for (;;) {
                ssize_t r = read(outp[0], buf, sizeof buf);
                if (r <= 0)
                    break;
                for (ssize_t i = 0; i < r; i++) {
                    if (buf[i] == '\n' || ll == sizeof line - 1) {
                        line[ll] = '\0';
                        remember(out, line);
                        if (spec->on_line)
                            spec->on_line(line, spec->userdata);
                        ll = 0;
                        if (buf[i] == '\n')
                            continue;
                    }
                    line[ll++] = buf[i];
                }
            }
            break;
        }
        int64_t now = mono_ms();
        if (!kill_at && spec->timeout_ms > 0 && now - start >= spec->timeout_ms) {
            out->timed_out = 1;
            kill(-pid, SIGTERM);
            kill_at = now + 5000;
        } else if (!kill_at && spec->should_stop && spec->should_stop(spec->userdata)) {
            out->stopped = 1;
            kill(-pid, SIGTERM);
            kill_at = now + 5000;
        } else if (kill_at && now >= kill_at) {
            kill(-pid, SIGKILL);
            kill_at = INT64_MAX;
        }
    }
    if (ll > 0) {
        line[ll] = '\0';
        remember(out, line);
        if (spec->on_line)
            spec->on_line(line, spec->userdata);
    }
    /* Whatever the shell left in its group goes with it. */
    kill(-pid, SIGKILL);
    close(outp[0]);
    out->duration_ms = mono_ms() - start;
    if (WIFEXITED(status)) {
        out->exited = 1;
        out->exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        out->signaled = 1;
        out->signal = WTERMSIG(status);
    }
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (outp[i] >= 0)
            close(outp[i]);
    }
    free(envp);
    return -1;
}
