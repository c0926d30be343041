/*
 * task_list's joblog (--joblog, default OUT.joblog): plain text,
 * tab-separated like GNU parallel's --joblog, one line per finished task,
 * written as it finishes by the rank that ran it (O_APPEND, one write per
 * line). See task_list.h.
 */
#define _GNU_SOURCE
#include "task_list.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tl_joblog_create(const tl_list *s, bool fresh, char *msg, size_t msglen)
{
    /* The joblog: new with a header, or appended to. */
    int fd =
        open(s->joblog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (fresh ? O_TRUNC : 0), 0644);
    if (fd < 0) {
        snprintf(msg, msglen, "--joblog: cannot write '%s': %s", s->joblog, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size == 0) {
        const char *h = "Seq\tHost\tRank\tStarttime\tJobRuntime\tExitval\tSignal\tAttempts\tStatus"
                        "\tCommand\n";
        write_all(fd, h, strlen(h));
    }
    close(fd);
    return 0;
}

void tl_joblog_line(const tl_list *s, int64_t t, const tl_rec *r, const char *cmd)
{
    if (s->joblog_fd < 0)
        return;
    size_t n = strlen(cmd) + 256 + TL_HOST_MAX;
    char *line = malloc(n);
    if (!line)
        return;
    int len = snprintf(line, n, "%lld\t%s\t%d\t%.3f\t%.3f\t%d\t%d\t%d\t%d\t%s\n", (long long)t,
                       s->hosts[s->my_host], r->rank, s->origin + r->start, r->end - r->start,
                       r->exit_code, r->signal, r->attempts, r->status, cmd);
    if (len > 0)
        write_all(s->joblog_fd, line, (size_t)len < n ? (size_t)len : n - 1);
    free(line);
}
