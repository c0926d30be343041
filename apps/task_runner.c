/* One command of task_list and its template; see task_runner.h. */
#define _GNU_SOURCE /* pipe2, posix_spawn_file_actions_addclosefrom_np, sigabbrev_np */
#include "task_runner.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void set_message(char *buf, size_t buflen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_message(char *buf, size_t buflen, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(buf, buflen, fmt, args);
    va_end(args);
    for (char *c = buf; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t')
            *c = ' ';
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_seconds(double seconds)
{
    struct timespec ts = { (time_t)seconds, (long)((seconds - floor(seconds)) * 1e9) };
    nanosleep(&ts, NULL);
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

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

/* Waits for the child to exit without reaping it (so its process group id
 * stays reserved): 1 exited, 0 deadline (> 0) passed, -1 error. */
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

static void tail_append(char *tail, size_t *len, const char *data, size_t n)
{
    const size_t cap = TASK_TAIL_MAX - 1;
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

static void last_line(const char *tail, size_t len, char *buf, size_t buflen)
{
    size_t end = len;
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
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = '?';
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
        rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                 POSIX_SPAWN_SETSIGDEF);
    if (rc == 0) {
        char *argv[] = { "sh", "-c", (char *)command, NULL };
        rc = posix_spawn(pid, "/bin/sh", &actions, &attr, argv, environ);
    }
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}

int task_run(const char *command, double timeout, task_outcome *o)
{
    memset(o, 0, offsetof(task_outcome, out_tail));
    o->exit_code = -1;
    o->out_tail[0] = o->err_tail[0] = o->reason[0] = '\0';
    o->out_len = o->err_len = 0;
    const double started = now_seconds();
    int out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 };
    if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0 ||
        move_above_stdio(&out_pipe[1]) < 0 || move_above_stdio(&err_pipe[1]) < 0) {
        set_message(o->reason, sizeof o->reason, "cannot create pipes: %s", strerror(errno));
        for (int i = 0; i < 2; i++) {
            close_fd(&out_pipe[i]);
            close_fd(&err_pipe[i]);
        }
        return o->status = TASK_RUN_SYSTEM;
    }
    pid_t pid = -1;
    int rc = spawn_shell(command, out_pipe[1], err_pipe[1], &pid);
    close_fd(&out_pipe[1]);
    close_fd(&err_pipe[1]);
    if (rc != 0) {
        close_fd(&out_pipe[0]);
        close_fd(&err_pipe[0]);
        set_message(o->reason, sizeof o->reason, "cannot start /bin/sh: %s", strerror(rc));
        return o->status = TASK_RUN_SYSTEM;
    }
    const double deadline = timeout > 0 ? started + timeout : 0.0;
    int timed_out = 0, failed = 0;
    struct pollfd fds[2] = { { out_pipe[0], POLLIN, 0 }, { err_pipe[0], POLLIN, 0 } };
    char chunk[8192];
    while ((fds[0].fd >= 0 || fds[1].fd >= 0) && !failed) {
        int wait_ms = -1;
        if (deadline > 0) {
            double left = deadline - now_seconds();
            if (left <= 0) {
                timed_out = 1;
                break;
            }
            wait_ms = left > 1.0 ? 1000 : (int)ceil(left * 1000.0);
        }
        int ready = poll(fds, 2, wait_ms);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            failed = 1;
            set_message(o->reason, sizeof o->reason, "poll failed: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || fds[i].revents == 0)
                continue;
            ssize_t n = read(fds[i].fd, chunk, sizeof chunk);
            if (n < 0) {
                if (errno == EINTR || errno == EAGAIN)
                    continue;
                failed = 1;
                set_message(o->reason, sizeof o->reason, "reading output failed: %s",
                            strerror(errno));
            } else if (n == 0) {
                close_fd(i == 0 ? &out_pipe[0] : &err_pipe[0]);
                fds[i].fd = -1;
            } else if (i == 0) {
                tail_append(o->out_tail, &o->out_len, chunk, (size_t)n);
            } else {
                tail_append(o->err_tail, &o->err_len, chunk, (size_t)n);
            }
        }
    }
    close_fd(&out_pipe[0]);
    close_fd(&err_pipe[0]);
    if (failed) {
        kill(-pid, SIGKILL);
    } else if (!timed_out && wait_exited(pid, deadline) == 0) {
        timed_out = 1;
    }
    if (timed_out) {
        kill(-pid, SIGTERM);
        if (wait_exited(pid, now_seconds() + TASK_KILL_GRACE) != 1)
            kill(-pid, SIGKILL);
    }
    wait_exited(pid, 0.0);
    kill(-pid, SIGKILL); /* whatever it left running in its group */
    int status = 0;
    int reaped = -1;
    for (;;) {
        if (waitpid(pid, &status, 0) == pid) {
            reaped = 0;
            break;
        }
        if (errno != EINTR)
            break;
    }
    o->elapsed = now_seconds() - started;
    if (reaped != 0) {
        set_message(o->reason, sizeof o->reason, "lost the command's exit status: %s",
                    strerror(errno));
        return o->status = TASK_RUN_SYSTEM;
    }
    if (WIFEXITED(status))
        o->exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        o->signal = WTERMSIG(status);
    char line[120];
    last_line(o->err_tail, o->err_len, line, sizeof line);
    if (timed_out) {
        set_message(o->reason, sizeof o->reason, "timed out after %g s", timeout);
        return o->status = TASK_RUN_TIMEOUT;
    }
    if (failed)
        return o->status = TASK_RUN_SYSTEM;
    if (o->signal != 0) {
        const char *abbrev = sigabbrev_np(o->signal);
        set_message(o->reason, sizeof o->reason, "killed by signal %d (SIG%s)%s%s", o->signal,
                    abbrev ? abbrev : "?", line[0] ? ": " : "", line);
        return o->status = TASK_RUN_FAILED;
    }
    if (o->exit_code != 0) {
        set_message(o->reason, sizeof o->reason, "exit code %d%s%s", o->exit_code,
                    line[0] ? ": " : "", line);
        return o->status = TASK_RUN_FAILED;
    }
    return o->status = TASK_RUN_OK;
}

/* ---- --template ------------------------------------------------------------------ */

static const char *const placeholders[] = { "", ".", "/", "//", "/.", "#", NULL };

static int is_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '/' || c == '#' || c == '%';
}

/* At tmpl[i] == '{' (not "{{", not after '$'): the length of the candidate
 * "{...}" (its content only name characters), or 0 when it is shell text. */
static size_t candidate(const char *tmpl, size_t i)
{
    size_t j = i + 1;
    while (tmpl[j] && is_name_char(tmpl[j]))
        j++;
    return tmpl[j] == '}' ? j + 1 - i : 0;
}

static int known(const char *s, size_t n)
{
    for (int k = 0; placeholders[k]; k++)
        if (strlen(placeholders[k]) == n && strncmp(placeholders[k], s, n) == 0)
            return k;
    return -1;
}

int task_template_validate(const char *tmpl, char *err, size_t errlen)
{
    int found = 0;
    for (size_t i = 0; tmpl[i]; i++) {
        if (tmpl[i] != '{')
            continue;
        if (tmpl[i + 1] == '{') {
            i++;
            continue;
        }
        if (i > 0 && tmpl[i - 1] == '$')
            continue;
        size_t n = candidate(tmpl, i);
        if (n == 0)
            continue;
        if (known(tmpl + i + 1, n - 2) < 0) {
            snprintf(err, errlen,
                     "--template: unknown placeholder '%.*s' (known: {} {.} {/} {//} {/.} {#}; "
                     "write {{ for a literal {)",
                     (int)n, tmpl + i);
            return -1;
        }
        found = 1;
        i += n - 1;
    }
    if (!found) {
        snprintf(err, errlen, "--template: no placeholder such as {} in '%s': every task would "
                              "run the same command", tmpl);
        return -1;
    }
    return 0;
}

typedef struct sbuf {
    char *data;
    size_t len, cap;
    int failed;
} sbuf;

static void put(sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = 2 * b->cap + n + 64;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = 1;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static int plain_char(char c)
{
    return isalnum((unsigned char)c) || strchr("_./:=@%+,-", c) != NULL;
}

/* s[0..n) as one shell word. */
static void put_quoted(sbuf *b, const char *s, size_t n)
{
    int plain = n > 0;
    for (size_t i = 0; i < n; i++)
        plain &= plain_char(s[i]);
    if (plain) {
        put(b, s, n);
        return;
    }
    put(b, "'", 1);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\'')
            put(b, "'\\''", 4);
        else
            put(b, s + i, 1);
    }
    put(b, "'", 1);
}

static void put_part(sbuf *b, int which, const char *line)
{
    size_t n = strlen(line);
    const char *slash = strrchr(line, '/');
    const char *base = slash ? slash + 1 : line;
    size_t base_n = strlen(base);
    const char *dot = strrchr(base, '.');
    size_t base_noext = dot && dot != base ? (size_t)(dot - base) : base_n;
    switch (which) {
    case 0: put_quoted(b, line, n); break;                                   /* {} */
    case 1: put_quoted(b, line, (size_t)(base - line) + base_noext); break;   /* {.} */
    case 2: put_quoted(b, base, base_n); break;                              /* {/} */
    case 3:                                                                  /* {//} */
        if (!slash)
            put(b, ".", 1);
        else
            put_quoted(b, line, slash == line ? 1 : (size_t)(slash - line));
        break;
    case 4: put_quoted(b, base, base_noext); break;                          /* {/.} */
    default: break;
    }
}

char *task_template_expand(const char *tmpl, const char *line, int64_t index)
{
    sbuf b = { NULL, 0, 0, 0 };
    put(&b, "", 0);
    for (size_t i = 0; tmpl[i]; i++) {
        if (tmpl[i] == '{' && tmpl[i + 1] == '{') {
            put(&b, "{", 1);
            i++;
            continue;
        }
        size_t n = tmpl[i] == '{' && !(i > 0 && tmpl[i - 1] == '$') ? candidate(tmpl, i) : 0;
        int which = n ? known(tmpl + i + 1, n - 2) : -1;
        if (which < 0) {
            put(&b, tmpl + i, 1);
            continue;
        }
        if (which == 5) {
            char num[32];
            int len = snprintf(num, sizeof num, "%lld", (long long)index);
            put(&b, num, (size_t)len);
        } else {
            put_part(&b, which, line);
        }
        i += n - 1;
    }
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}
