/* Runs one /bin/sh -c command for exec_runner and task_runner; see proc_run.h. */
#define _GNU_SOURCE /* pipe2, posix_spawn_file_actions_addclosefrom_np */

#include "proc_run.h"

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

void proc_message(char *buf, size_t buflen, const char *fmt, ...)
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

void proc_tail_append(char *tail, size_t cap, size_t *len, const char *data, size_t n)
{
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

void proc_last_line(const char *tail, size_t len, char *buf, size_t buflen)
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

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_seconds(double seconds)
{
    struct timespec ts = { (time_t)seconds, (long)((seconds - floor(seconds)) * 1e9) };
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

int proc_run(const char *command, double timeout, double kill_grace, proc_sink sink, void *ctx,
             proc_result *r)
{
    r->exit_code = -1;
    r->signal = r->timed_out = r->failed = 0;
    r->elapsed = 0.0;
    r->reason[0] = '\0';
    const double started = now_seconds();
    int out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 };
    if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0 ||
        move_above_stdio(&out_pipe[1]) < 0 || move_above_stdio(&err_pipe[1]) < 0) {
        proc_message(r->reason, sizeof r->reason, "cannot create pipes: %s", strerror(errno));
        for (int i = 0; i < 2; i++) {
            close_fd(&out_pipe[i]);
            close_fd(&err_pipe[i]);
        }
        return -1;
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
        proc_message(r->reason, sizeof r->reason, "cannot start /bin/sh: %s", strerror(rc));
        return -1;
    }

    const double deadline = timeout > 0 ? started + timeout : 0.0;
    int timed_out = 0;
    struct pollfd fds[2] = { { out_pipe[0], POLLIN, 0 }, { err_pipe[0], POLLIN, 0 } };
    char chunk[8192];
    while ((fds[0].fd >= 0 || fds[1].fd >= 0) && !r->failed) {
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
            r->failed = 1;
            proc_message(r->reason, sizeof r->reason, "poll failed: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < 2 && !r->failed; i++) {
            if (fds[i].fd < 0 || fds[i].revents == 0)
                continue;
            ssize_t n = read(fds[i].fd, chunk, sizeof chunk);
            if (n < 0) {
                if (errno == EINTR || errno == EAGAIN)
                    continue;
                r->failed = 1;
                proc_message(r->reason, sizeof r->reason, "reading output failed: %s",
                             strerror(errno));
            } else if (n == 0) {
                close_fd(i == 0 ? &out_pipe[0] : &err_pipe[0]);
                fds[i].fd = -1;
            } else if (sink(i + 1, chunk, (size_t)n, ctx, r->reason, sizeof r->reason) != 0) {
                r->failed = 1;
            }
        }
    }
    close_fd(&out_pipe[0]);
    close_fd(&err_pipe[0]);

    if (r->failed) {
        /* Nothing more will be read: stop the command now. */
        kill(-pid, SIGKILL);
    } else if (!timed_out && wait_exited(pid, deadline) == 0) {
        /* Output closed; the command may still run (it can close stdout). */
        timed_out = 1;
    }
    if (timed_out) {
        kill(-pid, SIGTERM);
        if (wait_exited(pid, now_seconds() + kill_grace) != 1)
            kill(-pid, SIGKILL);
    }
    /* Every path above has seen the child exit or sent it SIGKILL, so this
     * blocking wait ends. */
    wait_exited(pid, 0.0);
    /* Whatever the command left behind in its group goes with it. */
    kill(-pid, SIGKILL);
    int status = 0;
    int reaped = reap(pid, &status);
    r->elapsed = now_seconds() - started;
    if (reaped != 0) {
        proc_message(r->reason, sizeof r->reason, "lost the command's exit status: %s",
                     strerror(errno));
        return -1;
    }
    if (WIFEXITED(status))
        r->exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        r->signal = WTERMSIG(status);
    r->timed_out = timed_out;
    return 0;
}
