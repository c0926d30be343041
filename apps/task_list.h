/*
 * task_list's internals, shared by its files (not an API):
 *   task_list.c      the app: options, check, setup, map, finish, print
 *   task_record.c    the record's layout (fields, /hosts), rows and counts
 *   task_file.c      the task file (read, split, hashed) and --template
 *   task_tails.c     OUT.tails (time origin, hosts, tails) and the host list;
 *                    /stdout_tail and /stderr_tail in finish
 *   task_previous.c  --resume-failed: the records of the previous output
 *   task_joblog.c    the joblog
 *   task_runner.c    one command (proc_run.c runs it, as for param_sweep)
 */
#ifndef TASK_LIST_H
#define TASK_LIST_H

#include "mpmap_app.h"
#include "task_runner.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum {
    TL_STATUS_OK = 0,
    TL_STATUS_SYSTEM = -1,
    TL_STATUS_TIMEOUT = -2,
    TL_STATUS_INTERRUPTED = -3
};
#define TL_SIGNAL_BASE 128
#define TL_STATUS_DOC                                                                              \
    "0 ok; 1..255 exit code of the command; 128+N killed by signal N (see /signal); -1 command "   \
    "could not be run; -2 timed out (--timeout); -3 killed by a signal while the run was being "   \
    "interrupted (rerun with --resume-failed)"
enum { TL_RANK0_AUTO, TL_RANK0_TASKS, TL_RANK0_SERVE };
#define TL_HOST_MAX 256
#define TL_PATH_MAX 4200

/* One task's record, as the fields below lay it out. */
enum { F_STATUS, F_EXIT, F_SIGNAL, F_ATTEMPTS, F_RANK, F_HOST, F_START, F_END, F_COUNT };
typedef struct tl_rec {
    int32_t status, exit_code, signal, attempts, rank, host;
    double start, end;
} tl_rec;

typedef struct tl_list {
    mpmap_app_problem problem;
    mpmap_app *app;
    const mpmap_config *config;
    /* flags */
    const char *tasks_path, *template_text, *joblog_flag;
    int64_t retries;
    double timeout;
    int timeout_seen, resume_failed, rank0;
    /* the tasks */
    char *text;
    char **lines;
    int64_t ntasks;
    uint64_t hash;
    /* hosts, time */
    char *hosts_text; /* names, '\n' after each */
    char **hosts;
    int nhosts, my_host, rank;
    double origin; /* Unix time */
    /* files */
    char output[TL_PATH_MAX], joblog[TL_PATH_MAX], tails[TL_PATH_MAX];
    int joblog_fd, tails_fd;
    bool stop_on_error, finished;
    /* --resume-failed: the previous records (every rank), NULL otherwise */
    tl_rec *previous;
    int64_t kept, previous_failed;
} tl_list;

static inline double unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static inline int write_all(int fd, const char *buf, size_t n)
{
    /* One write: O_APPEND places it whole at the end of the file. */
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- task_record.c ---- */
/* Every rank, at the end of setup: the fields, /hosts and the fingerprint. */
void tl_describe_record(tl_list *s);
/* One task's row of the records the map hands back. */
void tl_put_rec(const tl_list *s, char *dst, const tl_rec *r);
/* Tasks whose /status is not 0, and tasks run more than once. */
void tl_counts(const mpmap_app *app, int64_t n, int64_t *failed, int64_t *retried);

/* ---- task_file.c ---- */
/* Every rank (collective): rank 0 reads --tasks, all get s->text, s->lines,
 * s->ntasks and s->hash. 0; 1 a usage error, 2 a failure (msg says). */
int tl_load_tasks(tl_list *s, char *msg, size_t msglen);

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

/* ---- task_tails.c ---- */
/* Appends one task's tails record to OUT.tails (fd). */
int tl_append_tails(int fd, int64_t task, const char *out, size_t out_len, const char *err,
                    size_t err_len);
/* Every rank (collective): rank 0 prepares OUT.tails, the joblog and the
 * host list; all get the hosts, s->my_host, s->origin and for
 * --resume-failed s->previous. 0, or -1 with msg (empty: out of memory). */
int tl_setup_files(tl_list *s, char *msg, size_t msglen);
/* finish: /stdout_tail and /stderr_tail from OUT.tails. */
int tl_write_tails(tl_list *s, mpmap_app *app);

/* ---- task_previous.c ---- */
/* Rank 0, --resume-failed: the previous output's records, tails and hosts. */
typedef struct tl_previous {
    tl_rec *recs;
    char **out_tail, **err_tail; /* vlen strings read from the file */
    char **hosts;
    int nhosts;
    double origin;
} tl_previous;
int tl_read_previous(tl_list *s, tl_previous *p, char *msg, size_t msglen);
void tl_free_previous(tl_previous *p, int64_t n);

/* ---- task_joblog.c ---- */
/* Rank 0: creates the joblog (fresh: truncated) with its header line when empty. */
int tl_joblog_create(const tl_list *s, bool fresh, char *msg, size_t msglen);
/* The line of one finished task (no-op without s->joblog_fd). */
void tl_joblog_line(const tl_list *s, int64_t t, const tl_rec *r, const char *cmd);

#endif
