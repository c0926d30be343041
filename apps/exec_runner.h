/*
 * exec_runner: runs `--exec 'COMMAND {a} {b}'` for one grid point of
 * param_sweep and turns its standard output into a record of doubles.
 *
 * Template: `{NAME}` (NAME = [A-Za-z_][A-Za-z0-9_]*) is replaced by the
 * value of parameter NAME in the shortest of %.15g, %.16g, %.17g that reads
 * back to the same double. `{{` stands for a literal `{`; any other brace is
 * copied as is, so `awk '{print $1}'` needs no escaping but `${HOME}` must be
 * written `${{HOME}`. An unknown `{NAME}` is an error found by
 * exec_template_validate before any command runs.
 *
 * Running (proc_run.h, shared with task_list): `/bin/sh -c COMMAND` is
 * started with posix_spawn (no fork of the possibly large MPI process; Open MPI tolerates children that do not use
 * MPI) in a new process group, with stdin from /dev/null, default signal
 * dispositions, an empty signal mask and no inherited descriptors besides
 * 0-2. stdout is read whole (up to EXEC_STDOUT_MAX bytes), stderr keeps its
 * last EXEC_STDERR_TAIL - 1 bytes. With a timeout, the whole process group
 * gets SIGTERM when it expires and SIGKILL EXEC_KILL_GRACE seconds later.
 * When the command exits, anything it left running in its process group is
 * killed, so no process outlives its grid point. The child is always reaped
 * and every descriptor closed; EINTR is retried.
 *
 * Output: whitespace-separated finite numbers ("1.5 2 3e-4"); anything else
 * ("abc", "nan", "1,5") makes the point fail as unparsable.
 *
 * No global state; safe to call from several threads at once (the
 * descriptors are created close-on-exec).
 */
#ifndef EXEC_RUNNER_H
#define EXEC_RUNNER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EXEC_STDERR_TAIL 2048      /* bytes kept of stderr, NUL included */
#define EXEC_REASON_MAX 256        /* one-line reason, NUL included */
#define EXEC_STDOUT_MAX (16 << 20) /* larger output fails the point */
#define EXEC_KILL_GRACE 1.0        /* seconds between SIGTERM and SIGKILL */

/* Result of exec_run; also stored in exec_outcome.status. */
typedef enum exec_status {
    EXEC_OK = 0,
    EXEC_ESYSTEM = -1,  /* pipe, posix_spawn, poll or wait failed */
    EXEC_EFAILED = -2,  /* exited with a non-zero code or was killed by a signal */
    EXEC_ETIMEOUT = -3, /* still running when the timeout expired */
    EXEC_EOUTPUT = -4,  /* stdout unparsable, too long, or more numbers than capacity */
    EXEC_ENOMEM = -5,
    EXEC_EINVAL = -6 /* bad template or argument */
} exec_status;

typedef struct exec_outcome {
    exec_status status;
    int exit_code;                      /* exit status when the shell exited, else -1 */
    int signal;                         /* signal that ended it, else 0 */
    int timed_out;                      /* 1 when the timeout expired */
    double elapsed;                     /* seconds from spawn to reaping */
    char stderr_tail[EXEC_STDERR_TAIL]; /* last bytes of stderr, NUL-terminated */
    char reason[EXEC_REASON_MAX];       /* "" on success, else one line, e.g.
                                           "exit code 3", "timed out after 0.3 s",
                                           "unparsable output: 'abc'" */
} exec_outcome;

/*
 * Checks that every {NAME} in template is one of names[0..nnames-1]. Returns
 * EXEC_OK or EXEC_EINVAL with a one-line message naming --exec and the
 * placeholder.
 */
int exec_template_validate(const char *template_text, const char *const *names, int nnames,
                           char *err, size_t errlen);

/*
 * The command for one point: {NAME} replaced by values[i] where
 * names[i] == NAME. Returns a malloc'ed string (free it), or NULL with a
 * message in err (unknown name, out of memory).
 */
char *exec_template_expand(const char *template_text, const char *const *names,
                           const double *values, int nnames, char *err, size_t errlen);

/* Writes the shortest of %.15g/%.16g/%.17g that round-trips value into buf
 * (at least 32 bytes). */
void exec_format_double(double value, char *buf, size_t buflen);

/*
 * Runs `/bin/sh -c command` and parses its stdout into record. timeout <= 0
 * means no limit. record == NULL counts the numbers only (record_capacity is
 * ignored); otherwise more than record_capacity numbers is EXEC_EOUTPUT.
 * *record_count (may be NULL) receives the number of numbers in the output
 * whenever it was parsed, even when there were too many. outcome (may be
 * NULL) receives the details. Returns an exec_status.
 */
int exec_run(const char *command, double timeout, double *record, int record_capacity,
             int *record_count, exec_outcome *outcome);

/*
 * Parses whitespace-separated finite numbers, as exec_run does with stdout.
 * Same record/record_capacity/record_count contract; returns EXEC_OK or
 * EXEC_EOUTPUT with a reason in err.
 */
int exec_parse_numbers(const char *text, double *record, int record_capacity, int *record_count,
                       char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* EXEC_RUNNER_H */
