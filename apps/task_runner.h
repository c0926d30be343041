/*
 * task_runner: runs one command of task_list (`/bin/sh -c COMMAND`) and
 * keeps the last bytes of its stdout and stderr.
 *
 * Run by proc_run.h, as param_sweep --exec is (posix_spawn, new process
 * group, stdin from /dev/null, default signals, empty mask, no inherited
 * descriptors besides 0-2; on timeout SIGTERM to the group, SIGKILL
 * TASK_KILL_GRACE s later; whatever the command leaves in its group is
 * killed when it exits), but stdout is not parsed: both streams are read to
 * the end and only their last TASK_TAIL_MAX - 1 bytes are kept.
 * No MPI, no HDF5. (--template is in task_file.c.)
 */
#ifndef TASK_RUNNER_H
#define TASK_RUNNER_H

#include <stddef.h>
#include <stdint.h>

#define TASK_TAIL_MAX 1025 /* bytes kept of stdout and of stderr, NUL included */
#define TASK_REASON_MAX 256
#define TASK_KILL_GRACE 1.0

typedef enum task_run_status {
    TASK_RUN_OK = 0,      /* exited 0 */
    TASK_RUN_FAILED = 1,  /* non-zero exit code or killed by a signal */
    TASK_RUN_TIMEOUT = 2, /* still running when the timeout expired (then killed) */
    TASK_RUN_SYSTEM = 3   /* could not be started or waited for */
} task_run_status;

typedef struct task_outcome {
    task_run_status status;
    int exit_code;  /* exit status when the shell exited, else -1 */
    int signal;     /* signal that ended it, else 0 */
    double elapsed; /* seconds */
    char out_tail[TASK_TAIL_MAX];
    char err_tail[TASK_TAIL_MAX];
    size_t out_len, err_len;      /* bytes in the tails (they may hold NUL bytes) */
    char reason[TASK_REASON_MAX]; /* "" on success, else one line */
} task_outcome;

/* Runs the command; timeout <= 0: none. Fills *o and returns o->status. */
int task_run(const char *command, double timeout, task_outcome *o);

#endif
