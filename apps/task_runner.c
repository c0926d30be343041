/* One command of task_list; see task_runner.h. The process part is proc_run.c. */
#define _GNU_SOURCE /* sigabbrev_np */
#include "task_runner.h"
#include "proc_run.h"

#include <stdio.h>
#include <string.h>

/* Both streams: only their last TASK_TAIL_MAX - 1 bytes are kept. */
static int task_sink(int stream, const char *data, size_t n, void *ctx, char *reason,
                     size_t reasonlen)
{
    (void)reason;
    (void)reasonlen;
    task_outcome *o = ctx;
    if (stream == 1)
        proc_tail_append(o->out_tail, TASK_TAIL_MAX - 1, &o->out_len, data, n);
    else
        proc_tail_append(o->err_tail, TASK_TAIL_MAX - 1, &o->err_len, data, n);
    return 0;
}

int task_run(const char *command, double timeout, task_outcome *o)
{
    memset(o, 0, offsetof(task_outcome, out_tail));
    o->exit_code = -1;
    o->out_tail[0] = o->err_tail[0] = o->reason[0] = '\0';
    o->out_len = o->err_len = 0;
    proc_result r;
    int ran = proc_run(command, timeout, TASK_KILL_GRACE, task_sink, o, &r);
    o->elapsed = r.elapsed;
    if (ran != 0) {
        proc_message(o->reason, sizeof o->reason, "%s", r.reason);
        return o->status = TASK_RUN_SYSTEM;
    }
    o->exit_code = r.exit_code;
    o->signal = r.signal;
    char line[120];
    proc_last_line(o->err_tail, o->err_len, line, sizeof line);
    if (r.timed_out) {
        proc_message(o->reason, sizeof o->reason, "timed out after %g s", timeout);
        return o->status = TASK_RUN_TIMEOUT;
    }
    if (r.failed) {
        proc_message(o->reason, sizeof o->reason, "%s", r.reason);
        return o->status = TASK_RUN_SYSTEM;
    }
    if (o->signal != 0) {
        const char *abbrev = sigabbrev_np(o->signal);
        proc_message(o->reason, sizeof o->reason, "killed by signal %d (SIG%s)%s%s", o->signal,
                     abbrev ? abbrev : "?", line[0] ? ": " : "", line);
        return o->status = TASK_RUN_FAILED;
    }
    if (o->exit_code != 0) {
        proc_message(o->reason, sizeof o->reason, "exit code %d%s%s", o->exit_code,
                     line[0] ? ": " : "", line);
        return o->status = TASK_RUN_FAILED;
    }
    return o->status = TASK_RUN_OK;
}
