/* Runs an operator-configured command (the external trainer, the benchmark
 * command) for a task: `/bin/sh -c COMMAND` in its own process group, the
 * task's settings in its environment and on its standard input, its output
 * (stdout and stderr together) read line by line, its time limit enforced
 * (SIGTERM to the whole group, SIGKILL 5 s later), and stopped the same way
 * when the task must stop. The command dies with its parent (PDEATHSIG), so
 * a killed prefork child leaves no trainer behind. Task params never become
 * part of the command line: they reach it only as data. */
#ifndef AIPAL_WORKER_COMMAND_H
#define AIPAL_WORKER_COMMAND_H

#include <stddef.h>
#include <stdint.h>

typedef struct command_spec {
    const char *command;
    const char *const *env; /* extra "NAME=value" entries, NULL-terminated; may be NULL */
    const char *stdin_text; /* may be NULL */
    int64_t timeout_ms;     /* 0: none */
    /* Each output line, without its newline. */
    void (*on_line)(const char *line, void *userdata);
    /* Polled about every 100 ms; non-zero stops the command. */
    int (*should_stop)(void *userdata);
    void *userdata;
} command_spec;

typedef struct command_result {
    int exited, exit_code;  /* exited normally, with this status */
    int signaled, signal;   /* killed by this signal */
    int timed_out, stopped; /* we killed it: time limit, or should_stop */
    int64_t duration_ms;
    char tail[2048]; /* the last lines of output */
    char error[256]; /* why it could not run ("" when it ran) */
} command_result;

/* Returns 0 when the command ran (whatever its outcome: see *out), -1 when it
 * could not be started (out->error says why). */
int command_run(const command_spec *spec, command_result *out);

#endif
