/*
 * task_runner: runs one command of task_list (`/bin/sh -c COMMAND`) and
 * keeps the last bytes of its stdout and stderr.
 *
 * Same process rules as exec_runner.h (posix_spawn, new process group,
 * stdin from /dev/null, default signals, empty mask, no inherited
 * descriptors besides 0-2; on timeout SIGTERM to the group, SIGKILL
 * TASK_KILL_GRACE s later; whatever the command leaves in its group is
 * killed when it exits), but stdout is not parsed: both streams are read to
 * the end and only their last TASK_TAIL_MAX - 1 bytes are kept.
 *
 * Also: the {} template of --template (task_template_*), and the shell
 * quoting it uses. No MPI, no HDF5.
 */
#ifndef TASK_RUNNER_H
#define TASK_RUNNER_H

#include <stddef.h>
#include <stdint.h>

#define TASK_TAIL_MAX 1025        /* bytes kept of stdout and of stderr, NUL included */
#define TASK_REASON_MAX 256
#define TASK_KILL_GRACE 1.0

typedef enum task_run_status {
    TASK_RUN_OK = 0,        /* exited 0 */
    TASK_RUN_FAILED = 1,    /* non-zero exit code or killed by a signal */
    TASK_RUN_TIMEOUT = 2,   /* still running when the timeout expired (then killed) */
    TASK_RUN_SYSTEM = 3     /* could not be started or waited for */
} task_run_status;

typedef struct task_outcome {
    task_run_status status;
    int exit_code;          /* exit status when the shell exited, else -1 */
    int signal;             /* signal that ended it, else 0 */
    double elapsed;         /* seconds */
    char out_tail[TASK_TAIL_MAX];
    char err_tail[TASK_TAIL_MAX];
    size_t out_len, err_len; /* bytes in the tails (they may hold NUL bytes) */
    char reason[TASK_REASON_MAX]; /* "" on success, else one line */
} task_outcome;

/* Runs the command; timeout <= 0: none. Fills *o and returns o->status. */
int task_run(const char *command, double timeout, task_outcome *o);

/*
 * --template: `{}` the line (shell-quoted when it holds anything but
 * [A-Za-z0-9_./:=@%+,-]), `{.}` the line without its extension, `{/}` its
 * basename, `{//}` its dirname, `{/.}` the basename without extension (all
 * quoted the same way), `{#}` the task index (0-based, the row in the HDF5
 * output). `{{` is a literal `{`; `${...}` is shell text, never a
 * placeholder; a `{` followed by anything else than a placeholder name and
 * `}` is copied as is (so `awk '{print $1}'` works).
 */
/* 0, or -1 with "--template: ..." in err (unknown placeholder, none at all). */
int task_template_validate(const char *tmpl, char *err, size_t errlen);
/* The command for one line (malloc'd), or NULL when out of memory. */
char *task_template_expand(const char *tmpl, const char *line, int64_t index);

#endif
