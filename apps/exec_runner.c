/*
 * exec_runner: template expansion and the child-process runner behind
 * param_sweep --exec. See exec_runner.h for the contract.
 */
#define _GNU_SOURCE /* pipe2, posix_spawn_file_actions_addclosefrom_np, sigabbrev_np */

#include "exec_runner.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Longest piece of output or template quoted back in a message. */
#define QUOTE_MAX 40

static void set_message(char *buf, size_t buflen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_message(char *buf, size_t buflen, const char *fmt, ...)
{
    if (!buf || buflen == 0)
        return;
    va_list args;
    va_start(args, fmt);
    vsnprintf(buf, buflen, fmt, args);
    va_end(args);
    /* Reasons are logged on one line. */
    for (char *c = buf; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t')
            *c = ' ';
}

/* ---- templates ------------------------------------------------------- */

static int is_name_start(char c)
{
    return isalpha((unsigned char)c) || c == '_';
}

static int is_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/*
 * If text points at "{NAME}", returns the length of NAME (text + 1 is its
 * start); else 0. "{{" is handled by the callers before this.
 */
static size_t placeholder_length(const char *text)
{
    if (text[0] != '{' || !is_name_start(text[1]))
        return 0;
    size_t n = 1;
    while (is_name_char(text[1 + n]))
        n++;
    return text[1 + n] == '}' ? n : 0;
}

static int lookup(const char *name, size_t len, const char *const *names, int nnames)
{
    for (int i = 0; i < nnames; i++)
        if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
            return i;
    return -1;
}

static void unknown_placeholder(const char *name, size_t len, const char *const *names,
                                int nnames, char *err, size_t errlen)
{
    char known[256] = "";
    size_t used = 0;
    for (int i = 0; i < nnames && used < sizeof known; i++) {
        int n = snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", names[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    set_message(err, errlen, "--exec: unknown parameter '{%.*s}' in the command (parameters: %s)",
                (int)(len > 64 ? 64 : len), name, nnames > 0 ? known : "none");
}

int exec_template_validate(const char *template_text, const char *const *names, int nnames,
                           char *err, size_t errlen)
{
    if (err && errlen > 0)
        err[0] = '\0';
    if (!template_text || template_text[0] == '\0') {
        set_message(err, errlen, "--exec: empty command");
        return EXEC_EINVAL;
    }
    for (const char *p = template_text; *p;) {
        if (p[0] == '{' && p[1] == '{') {
            p += 2;
            continue;
        }
        size_t len = placeholder_length(p);
        if (len == 0) {
            p++;
            continue;
        }
        if (lookup(p + 1, len, names, nnames) < 0) {
            unknown_placeholder(p + 1, len, names, nnames, err, errlen);
            return EXEC_EINVAL;
        }
        p += len + 2;
    }
    return EXEC_OK;
}

void exec_format_double(double value, char *buf, size_t buflen)
{
    /* Shortest of the three that reads back exactly: %.17g always does. */
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, buflen, "%.*g", digits, value);
        if (digits == 17 || strtod(buf, NULL) == value)
            return;
    }
}

typedef struct text_buffer {
    char *data;
    size_t len;
    size_t cap;
} text_buffer;

static int buffer_append(text_buffer *b, const char *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown)
            return EXEC_ENOMEM;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return EXEC_OK;
}

char *exec_template_expand(const char *template_text, const char *const *names,
                           const double *values, int nnames, char *err, size_t errlen)
{
    if (exec_template_validate(template_text, names, nnames, err, errlen) != EXEC_OK)
        return NULL;
    text_buffer out = {NULL, 0, 0};
    int rc = EXEC_OK;
    for (const char *p = template_text; *p && rc == EXEC_OK;) {
        if (p[0] == '{' && p[1] == '{') {
            rc = buffer_append(&out, "{", 1);
            p += 2;
            continue;
        }
        size_t len = placeholder_length(p);
        if (len == 0) {
            rc = buffer_append(&out, p, 1);
            p++;
            continue;
        }
        char number[40];
        exec_format_double(values[lookup(p + 1, len, names, nnames)], number, sizeof number);
        rc = buffer_append(&out, number, strlen(number));
        p += len + 2;
    }
    if (rc != EXEC_OK) {
        free(out.data);
        set_message(err, errlen, "--exec: out of memory expanding the command");
        return NULL;
    }
    return out.data;
}

/* ---- output parsing -------------------------------------------------- */

int exec_parse_numbers(const char *text, double *record, int record_capacity, int *record_count,
                       char *err, size_t errlen)
{
    if (err && errlen > 0)
        err[0] = '\0';
    int count = 0;
    const char *p = text;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        const char *token = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        size_t len = (size_t)(p - token);
        char copy[64];
        char *end = NULL;
        double value = NAN;
        if (len < sizeof copy) {
            memcpy(copy, token, len);
            copy[len] = '\0';
            value = strtod(copy, &end);
        }
        if (len >= sizeof copy || end != copy + len || !isfinite(value)) {
            if (record_count)
                *record_count = count;
            set_message(err, errlen, "unparsable output: '%.*s' (number %d)",
                        (int)(len > QUOTE_MAX ? QUOTE_MAX : len), token, count + 1);
            return EXEC_EOUTPUT;
        }
        if (record && count < record_capacity)
            record[count] = value;
        if (count == INT32_MAX) {
            set_message(err, errlen, "output has more than %d numbers", INT32_MAX);
            return EXEC_EOUTPUT;
        }
        count++;
    }
    if (record_count)
        *record_count = count;
    if (count == 0) {
        set_message(err, errlen, "empty output (expected whitespace-separated numbers)");
        return EXEC_EOUTPUT;
    }
    if (record && count > record_capacity) {
        set_message(err, errlen, "output has %d numbers, more than the %d expected", count,
                     record_capacity);
        return EXEC_EOUTPUT;
    }
    return EXEC_OK;
}

/* ---- running --------------------------------------------------------- */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_seconds(double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)((seconds - floor(seconds)) * 1e9)};
    /* An early wake-up only shortens one polling interval. */
    nanosleep(&ts, NULL);
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        /* Linux releases the descriptor even when close reports EINTR, so
         * it must not be retried. */
        close(*fd);
        *fd = -1;
    }
}

/* Moves fd above 2 so the child's dup2 onto 0-2 cannot clobber it. */
static int move_above_stdio(int *fd)
{
    if (*fd > 2)
        return 0;
    int high = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
    if (high < 0)
        return -1;
    close(*fd);
    *fd = high;
    return 0;
}

/*
 * Waits until the child has exited, without reaping it: while the zombie
 * exists its pid and process group id cannot be reused, so signalling the
 * group afterwards cannot hit an unrelated process. Returns 1 when it has
 * exited, 0 when deadline (> 0) passed first, -1 on error.
 */
static int wait_exited(pid_t pid, double deadline)
{
    double pause = 0.001;
    for (;;) {
        siginfo_t info;
        memset(&info, 0, sizeof info);
        int flags = WEXITED | WNOWAIT | (deadline > 0 ? WNOHANG : 0);
        if (waitid(P_PID, (id_t)pid, &info, flags) < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (info.si_pid == pid)
            return 1;
        double left = deadline - now_seconds();
        if (left <= 0)
            return 0;
        sleep_seconds(pause < left ? pause : left);
        pause = pause * 2 < 0.02 ? pause * 2 : 0.02;
    }
}

static int reap(pid_t pid, int *status)
{
    for (;;) {
        if (waitpid(pid, status, 0) == pid)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

/* Appends to the stderr tail, keeping only its last EXEC_STDERR_TAIL - 1 bytes. */
static void tail_append(char *tail, size_t *len, const char *data, size_t n)
{
    const size_t cap = EXEC_STDERR_TAIL - 1;
    if (n >= cap) {
        memcpy(tail, data + (n - cap), cap);
        *len = cap;
    } else {
        if (*len + n > cap) {
            size_t drop = *len + n - cap;
            memmove(tail, tail + drop, *len - drop);
            *len -= drop;
        }
        memcpy(tail + *len, data, n);
        *len += n;
    }
    tail[*len] = '\0';
}

/* The last non-empty line of the stderr tail, for the one-line reason. */
static void last_line(const char *tail, char *buf, size_t buflen)
{
    size_t end = strlen(tail);
    while (end > 0 && isspace((unsigned char)tail[end - 1]))
        end--;
    size_t start = end;
    while (start > 0 && tail[start - 1] != '\n')
        start--;
    size_t n = end - start;
    if (n >= buflen)
        n = buflen - 1;
    memcpy(buf, tail + start, n);
    buf[n] = '\0';
}

static void outcome_reset(exec_outcome *outcome)
{
    outcome->status = EXEC_OK;
    outcome->exit_code = -1;
    outcome->signal = 0;
    outcome->timed_out = 0;
    outcome->elapsed = 0.0;
    outcome->stderr_tail[0] = '\0';
    outcome->reason[0] = '\0';
}

static int spawn_shell(const char *command, int out_fd, int err_fd, pid_t *pid)
{
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0)
        return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return rc;
    }
    sigset_t empty, defaults;
    sigemptyset(&empty);
    sigfillset(&defaults);
    sigdelset(&defaults, SIGKILL);
    sigdelset(&defaults, SIGSTOP);
    /* A new process group so a timeout can kill the shell and everything it
     * started; default signals and an empty mask because MPI runtimes
     * ignore or block some (SIGPIPE, SIGCHLD) and children would inherit
     * that. Descriptors >= 3 (MPI sockets, other points' pipes) are closed. */
    if (rc == 0)
        rc = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
    if (rc == 0)
        rc = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    if (rc == 0)
        rc = posix_spawnattr_setpgroup(&attr, 0);
    if (rc == 0)
        rc = posix_spawnattr_setsigmask(&attr, &empty);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(&attr, &defaults);
    if (rc == 0)
        rc = posix_spawnattr_setflags(
            &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (rc == 0) {
        char *argv[] = {"sh", "-c", (char *)command, NULL};
        rc = posix_spawn(pid, "/bin/sh", &actions, &attr, argv, environ);
    }
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}

int exec_run(const char *command, double timeout, double *record, int record_capacity,
             int *record_count, exec_outcome *outcome)
{
    exec_outcome local;
    if (!outcome)
        outcome = &local;
    outcome_reset(outcome);
    if (record_count)
        *record_count = 0;
    if (!command || isnan(timeout) || (record && record_capacity < 0)) {
        set_message(outcome->reason, sizeof outcome->reason, "invalid arguments");
        return outcome->status = EXEC_EINVAL;
    }

    const double started = now_seconds();
    int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
    if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0 ||
        move_above_stdio(&out_pipe[1]) < 0 || move_above_stdio(&err_pipe[1]) < 0) {
        set_message(outcome->reason, sizeof outcome->reason, "cannot create pipes: %s",
                    strerror(errno));
        for (int i = 0; i < 2; i++) {
            close_fd(&out_pipe[i]);
            close_fd(&err_pipe[i]);
        }
        return outcome->status = EXEC_ESYSTEM;
    }
    pid_t pid = -1;
    int rc = spawn_shell(command, out_pipe[1], err_pipe[1], &pid);
    /* The parent keeps only the read ends, so EOF arrives when the command
     * and everything it started have closed theirs. */
    close_fd(&out_pipe[1]);
    close_fd(&err_pipe[1]);
    if (rc != 0) {
        close_fd(&out_pipe[0]);
        close_fd(&err_pipe[0]);
        set_message(outcome->reason, sizeof outcome->reason, "cannot start /bin/sh: %s",
                    strerror(rc));
        return outcome->status = EXEC_ESYSTEM;
    }

    const double deadline = timeout > 0 ? started + timeout : 0.0;
    text_buffer out = {NULL, 0, 0};
    size_t tail_len = 0;
    int failure = EXEC_OK; /* ESYSTEM / ENOMEM / EOUTPUT found while reading */
    char failure_reason[EXEC_REASON_MAX] = "";
    int timed_out = 0;
    struct pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    char chunk[8192];

    while ((fds[0].fd >= 0 || fds[1].fd >= 0) && failure == EXEC_OK) {
        int wait_ms = -1;
        if (deadline > 0) {
            double left = deadline - now_seconds();
            if (left <= 0) {
                timed_out = 1;
                break;
            }
            /* Sliced so the millisecond count cannot overflow an int. */
            wait_ms = left > 1.0 ? 1000 : (int)ceil(left * 1000.0);
        }
        int ready = poll(fds, 2, wait_ms);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            failure = EXEC_ESYSTEM;
            set_message(failure_reason, sizeof failure_reason, "poll failed: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < 2 && failure == EXEC_OK; i++) {
            if (fds[i].fd < 0 || fds[i].revents == 0)
                continue;
            ssize_t n = read(fds[i].fd, chunk, sizeof chunk);
            if (n < 0) {
                if (errno == EINTR || errno == EAGAIN)
                    continue;
                failure = EXEC_ESYSTEM;
                set_message(failure_reason, sizeof failure_reason, "reading output failed: %s",
                            strerror(errno));
            } else if (n == 0) {
                close_fd(i == 0 ? &out_pipe[0] : &err_pipe[0]);
                fds[i].fd = -1;
            } else if (i == 1) {
                tail_append(outcome->stderr_tail, &tail_len, chunk, (size_t)n);
            } else if (out.len + (size_t)n > EXEC_STDOUT_MAX) {
                failure = EXEC_EOUTPUT;
                set_message(failure_reason, sizeof failure_reason,
                            "output longer than %d bytes", EXEC_STDOUT_MAX);
            } else if (buffer_append(&out, chunk, (size_t)n) != EXEC_OK) {
                failure = EXEC_ENOMEM;
                set_message(failure_reason, sizeof failure_reason, "out of memory for output");
            }
        }
    }
    close_fd(&out_pipe[0]);
    close_fd(&err_pipe[0]);

    if (failure != EXEC_OK) {
        /* Nothing more will be read: stop the command now. */
        kill(-pid, SIGKILL);
    } else if (!timed_out) {
        /* Output closed; the command may still run (it can close stdout). */
        int exited = wait_exited(pid, deadline);
        if (exited == 0)
            timed_out = 1;
    }
    if (timed_out) {
        kill(-pid, SIGTERM);
        if (wait_exited(pid, now_seconds() + EXEC_KILL_GRACE) != 1)
            kill(-pid, SIGKILL);
    }
    /* Every path above has seen the child exit or sent it SIGKILL, so this
     * blocking wait ends. */
    wait_exited(pid, 0.0);
    /* Whatever the command left behind in its group goes with it. */
    kill(-pid, SIGKILL);
    int status = 0;
    int reaped = reap(pid, &status);
    outcome->elapsed = now_seconds() - started;

    char line[120];
    last_line(outcome->stderr_tail, line, sizeof line);
    if (reaped != 0) {
        free(out.data);
        set_message(outcome->reason, sizeof outcome->reason,
                    "lost the command's exit status: %s", strerror(errno));
        return outcome->status = EXEC_ESYSTEM;
    }
    if (WIFEXITED(status))
        outcome->exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        outcome->signal = WTERMSIG(status);
    outcome->timed_out = timed_out;

    if (timed_out) {
        rc = EXEC_ETIMEOUT;
        set_message(outcome->reason, sizeof outcome->reason, "timed out after %g s", timeout);
    } else if (failure != EXEC_OK) {
        rc = failure;
        set_message(outcome->reason, sizeof outcome->reason, "%s", failure_reason);
    } else if (outcome->signal != 0) {
        rc = EXEC_EFAILED;
        const char *abbrev = sigabbrev_np(outcome->signal);
        set_message(outcome->reason, sizeof outcome->reason, "killed by signal %d (SIG%s)%s%s",
                    outcome->signal, abbrev ? abbrev : "?", line[0] ? ": " : "", line);
    } else if (outcome->exit_code != 0) {
        rc = EXEC_EFAILED;
        set_message(outcome->reason, sizeof outcome->reason, "exit code %d%s%s",
                    outcome->exit_code, line[0] ? ": " : "", line);
    } else if (out.len != strlen(out.data ? out.data : "")) {
        rc = EXEC_EOUTPUT;
        set_message(outcome->reason, sizeof outcome->reason, "unparsable output: NUL byte");
    } else {
        rc = exec_parse_numbers(out.data ? out.data : "", record, record_capacity, record_count,
                                outcome->reason, sizeof outcome->reason);
    }
    free(out.data);
    return outcome->status = (exec_status)rc;
}
