/*
 * proc_run: runs one `/bin/sh -c COMMAND` and hands its output to a
 * callback; the process part shared by exec_runner (param_sweep --exec,
 * which parses stdout into numbers) and task_runner (task_list, which keeps
 * the tails of stdout and stderr).
 *
 * The shell is started with posix_spawn (no fork of the possibly large MPI
 * process) in a new process group, with stdin from /dev/null, default signal
 * dispositions, an empty signal mask and no inherited descriptors besides
 * 0-2. Both streams are read until EOF (or until the sink stops the
 * reading). With a timeout, the whole process group gets SIGTERM when it
 * expires and SIGKILL kill_grace seconds later. When the command exits,
 * anything it left running in its process group is killed. The child is
 * always reaped and every descriptor closed; EINTR is retried.
 *
 * No global state; safe to call from several threads at once.
 */
#ifndef PROC_RUN_H
#define PROC_RUN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PROC_REASON_MAX 256

/*
 * Gets each piece of output as it is read: stream 1 stdout, 2 stderr.
 * Returns 0 to go on; anything else stops the reading (the command gets
 * SIGKILL) and proc_run reports failed with the reason the sink wrote.
 */
typedef int (*proc_sink)(int stream, const char *data, size_t n, void *ctx, char *reason,
                         size_t reasonlen);

typedef struct proc_result {
    int exit_code;                /* exit status when the shell exited, else -1 */
    int signal;                   /* signal that ended it, else 0 */
    int timed_out;                /* 1 when the timeout expired */
    int failed;                   /* the reading stopped: poll/read failed, or the sink said so */
    double elapsed;               /* seconds from the start to reaping */
    char reason[PROC_REASON_MAX]; /* why failed, or why proc_run returned -1 */
} proc_result;

/*
 * Runs the command; timeout <= 0: none. Returns 0 when it ran and was
 * reaped (see *r), -1 when it could not be started (elapsed 0) or its exit
 * status was lost; r->reason says which.
 */
int proc_run(const char *command, double timeout, double kill_grace, proc_sink sink, void *ctx,
             proc_result *r);

/* Keeps the last cap bytes of a stream in tail (cap + 1 bytes, NUL-terminated). */
void proc_tail_append(char *tail, size_t cap, size_t *len, const char *data, size_t n);

/* The last non-blank line of tail[0..len) into buf (NUL bytes become '?'). */
void proc_last_line(const char *tail, size_t len, char *buf, size_t buflen);

/* snprintf into buf (may be NULL), with newlines and tabs made spaces. */
void proc_message(char *buf, size_t buflen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif

#endif /* PROC_RUN_H */
