/*
 * task_list: runs the commands of a file, one task per line, on every rank
 * ("run these 10 000 commands", as disBatch, GNU parallel or the TACC
 * launcher do), and records what each did in one HDF5 file.
 *
 * Tasks: --tasks FILE, every line that is neither empty (or blank) nor
 * starts with '#' (after leading blanks) is one task, numbered from 0 in
 * file order. Without --template the line is the command; with --template
 * 'CMD {}' it is the argument (task_runner.h: {} {.} {/} {//} {/.} {#}).
 * Commands run under /bin/sh -c (task_runner.h).
 *
 * What is stored where:
 *   OUT (HDF5), one row per task: /status (int32, codes in its 'codes'
 *     attribute), /exit_code, /signal, /attempts, /rank, /host (int32; an
 *     index into the string coordinate /hosts), /start, /end (seconds since
 *     the attribute time_origin, the Unix time the first run of this output
 *     started: a resumed run keeps the origin), /stdout_tail and
 *     /stderr_tail (variable-length strings: the last TASK_TAIL_MAX - 1
 *     bytes; bytes that are not UTF-8 become '?').
 *   /status is a field of the record, not the kit's problem.status: the
 *     kit zeroes the record of a task its map reports as failed, which
 *     would lose the exit code, signal, times and rank of exactly the
 *     tasks one wants to look at. Same name, type, long_name and 'codes'
 *     attribute as the kit's. Under --on-error stop the map does report the
 *     failure to the kit, which stops the run.
 *   JOBLOG (--joblog, default OUT.joblog), plain text, tab-separated like
 *     GNU parallel's --joblog: one line per finished task, written as it
 *     finishes by the rank that ran it (O_APPEND, one write per line: atomic
 *     on local file systems and Lustre/GPFS; on NFS lines from different
 *     nodes may interleave). Appended to by --resume and --resume-failed.
 *   OUT.tails: the run's own side file (the time origin, the host list, and
 *     every finished task's tails, checksummed records appended like the
 *     joblog). finish reads it into /stdout_tail and /stderr_tail; it is
 *     removed once the output is committed, and kept across an
 *     interruption so --resume has the tails of the restored tasks.
 *
 * --retries N re-runs a failed task up to N more times at once, on the same
 * rank, inside the map function; /attempts says how many runs it took,
 * /start is the first run's start and /end the last run's end.
 * Interruption: SIGTERM/SIGINT to the ranks lets the commands in flight
 * finish (their results are kept), then the run stops with exit 3 and
 * --resume continues it. A batch system at the time limit also signals the
 * commands themselves: a command ended by a signal while (or within 0.2 s
 * before) its rank was told to stop gets /status -3 instead of 128+N and
 * no retry; the kit counts it as done, so after the --resume run finishes,
 * --resume-failed runs those again.
 * Balance: commands of very different lengths want --schedule dynamic. Rank
 * 0 hands out the work between its own tasks, and cannot while it runs a
 * command, so the others can run dry while it runs a long one: from 4 ranks
 * up (--rank0 auto) it only serves; --rank0 tasks|serve chooses.
 * Exit code: the kit's; 0 once every task has run, whatever the commands
 * returned (the summary line and the failed_tasks attribute count them).
 * --resume-failed reads /status (and the other records) of the finished
 * OUT, keeps the tasks that succeeded and runs the others again, then
 * replaces OUT (it implies --force for OUT, which stays until the commit).
 */
#define _GNU_SOURCE
#include "mpmap_app.h"
#include "task_runner.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <hdf5_hl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#define TL_STATUS_DOC                                                                             \
    "0 ok; 1..255 exit code of the command; 128+N killed by signal N (see /signal); -1 command " \
    "could not be run; -2 timed out (--timeout); -3 killed by a signal while the run was being "  \
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
    char *hosts_text;  /* names, '\n' after each */
    char **hosts;
    int nhosts, my_host, rank;
    double origin;     /* Unix time */
    /* files */
    char output[TL_PATH_MAX], joblog[TL_PATH_MAX], tails[TL_PATH_MAX];
    int joblog_fd, tails_fd;
    bool stop_on_error, finished;
    /* --resume-failed: the previous records (every rank), NULL otherwise */
    tl_rec *previous;
    int64_t kept, previous_failed;
} tl_list;

static double unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int write_all(int fd, const char *buf, size_t n)
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

/* ---- the record ------------------------------------------------------------------ */

static void put_rec(const tl_list *s, char *dst, const tl_rec *r)
{
    const size_t *o = s->problem.offset;
    memcpy(dst + o[F_STATUS], &r->status, 4);
    memcpy(dst + o[F_EXIT], &r->exit_code, 4);
    memcpy(dst + o[F_SIGNAL], &r->signal, 4);
    memcpy(dst + o[F_ATTEMPTS], &r->attempts, 4);
    memcpy(dst + o[F_RANK], &r->rank, 4);
    memcpy(dst + o[F_HOST], &r->host, 4);
    memcpy(dst + o[F_START], &r->start, 8);
    memcpy(dst + o[F_END], &r->end, 8);
}

/* A tails record of OUT.tails: "T task outlen errlen hash\n" out err "\n". */
static uint64_t tails_hash(int64_t task, const char *out, size_t out_len, const char *err,
                           size_t err_len)
{
    uint64_t h = mpmap_app_hash(&task, sizeof task);
    h ^= mpmap_app_hash(out, out_len) * 31u;
    h ^= mpmap_app_hash(err, err_len) * 131u;
    return h;
}

static int append_tails(int fd, int64_t task, const char *out, size_t out_len, const char *err,
                        size_t err_len)
{
    char head[128];
    int n = snprintf(head, sizeof head, "T %lld %zu %zu %016" PRIx64 "\n", (long long)task,
                     out_len, err_len, tails_hash(task, out, out_len, err, err_len));
    size_t total = (size_t)n + out_len + err_len + 1;
    char *buf = malloc(total);
    if (!buf)
        return -1;
    memcpy(buf, head, (size_t)n);
    memcpy(buf + n, out, out_len);
    memcpy(buf + n + out_len, err, err_len);
    buf[total - 1] = '\n';
    int rc = write_all(fd, buf, total);
    free(buf);
    return rc;
}

/* ---- the map ------------------------------------------------------------------- */

static int status_of(const task_outcome *o)
{
    switch (o->status) {
    case TASK_RUN_OK: return TL_STATUS_OK;
    case TASK_RUN_FAILED: return o->signal ? TL_SIGNAL_BASE + o->signal : o->exit_code;
    case TASK_RUN_TIMEOUT: return TL_STATUS_TIMEOUT;
    default: return TL_STATUS_SYSTEM;
    }
}

static bool interrupted(const tl_list *s)
{
    return s->config && s->config->interrupt && *s->config->interrupt;
}

/*
 * Whether a command that a signal ended was caught by the run's own stop: a
 * batch system at the time limit signals every process of the job, the
 * commands and the ranks alike, in no particular order, so a command killed
 * by SIGTERM, SIGINT, SIGHUP or SIGKILL gets a moment for the rank's own
 * signal to arrive.
 */
static bool stopped_with_the_run(const tl_list *s, const task_outcome *o)
{
    if (o->status != TASK_RUN_FAILED || o->signal == 0)
        return false;
    if (interrupted(s))
        return true;
    if (o->signal != SIGTERM && o->signal != SIGINT && o->signal != SIGHUP && o->signal != SIGKILL)
        return false;
    struct timespec pause = { 0, 200000000 };
    nanosleep(&pause, NULL);
    return interrupted(s);
}

static void joblog_line(const tl_list *s, int64_t t, const tl_rec *r, const char *cmd)
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

static int tl_map(int64_t begin, int64_t end, void *records, mpmap_task_error *err, void *ctx)
{
    tl_list *s = ctx;
    task_outcome *o = malloc(sizeof *o);
    if (!o)
        return mpmap_task_fail(err, begin, TL_STATUS_SYSTEM, "out of memory");
    for (int64_t t = begin; t < end; t++) {
        char *dst = (char *)records + (size_t)(t - begin) * s->problem.record_size;
        if (s->previous && s->previous[t].status == 0) {
            put_rec(s, dst, &s->previous[t]); /* kept by --resume-failed */
            continue;
        }
        char *cmd = s->template_text ? task_template_expand(s->template_text, s->lines[t], t)
                                     : strdup(s->lines[t]);
        if (!cmd) {
            free(o);
            return mpmap_task_fail(err, t, TL_STATUS_SYSTEM, "out of memory");
        }
        tl_rec r = { .rank = s->rank, .host = s->my_host, .start = unix_now() - s->origin };
        for (;;) {
            r.attempts++;
            task_run(cmd, s->timeout_seen ? s->timeout : 0, o);
            r.status = status_of(o);
            if (r.status != 0 && stopped_with_the_run(s, o)) {
                r.status = TL_STATUS_INTERRUPTED; /* not the command's fault */
                break;
            }
            if (r.status == 0 || r.attempts > s->retries || interrupted(s))
                break;
        }
        r.end = unix_now() - s->origin;
        r.exit_code = o->exit_code;
        r.signal = o->signal;
        joblog_line(s, t, &r, cmd);
        free(cmd);
        /* (-3 is no reason to stop: the run is stopping already, and a task
         * failure would turn its exit code 3 into 1.) */
        if (r.status != 0 && r.status != TL_STATUS_INTERRUPTED && s->stop_on_error) {
            int code = r.status;
            char reason[TASK_REASON_MAX];
            snprintf(reason, sizeof reason, "%s", o->reason);
            free(o);
            return mpmap_task_fail(err, t, code, "%s", reason);
        }
        if (s->tails_fd >= 0)
            append_tails(s->tails_fd, t, o->out_tail, o->out_len, o->err_tail, o->err_len);
        if (r.status != 0) {
            fprintf(stderr, "task_list: task %lld failed: %s (rank %d on %s, %d attempt%s)\n",
                    (long long)t, o->reason, s->rank, s->hosts[s->my_host], r.attempts,
                    r.attempts == 1 ? "" : "s");
            fflush(stderr);
        }
        put_rec(s, dst, &r);
    }
    free(o);
    return 0;
}

static void tl_task_name(int64_t task, char *buf, size_t len, void *ctx)
{
    const tl_list *s = ctx;
    snprintf(buf, len, "task %lld (line '%.120s')", (long long)task,
             task >= 0 && task < s->ntasks ? s->lines[task] : "?");
}

/* ---- setup ------------------------------------------------------------------------ */

/* Rank 0: reads the task file into s->text (NUL-separated lines kept). */
static int read_tasks(tl_list *s, char *msg, size_t msglen, size_t *len)
{
    FILE *f = fopen(s->tasks_path, "rb");
    if (!f) {
        snprintf(msg, msglen, "--tasks: cannot read '%s': %s", s->tasks_path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            snprintf(msg, msglen, "--tasks: '%s' does not fit in memory", s->tasks_path);
            return -1;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n < cap - 1)
            break;
        char *grown = realloc(buf, cap * 2);
        if (!grown)
            free(buf);
        buf = grown;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        snprintf(msg, msglen, "--tasks: cannot read '%s'", s->tasks_path);
        return -1;
    }
    buf[n] = '\0';
    if (memchr(buf, '\0', n)) {
        free(buf);
        snprintf(msg, msglen, "--tasks: '%s' holds a NUL byte (not a text file?)", s->tasks_path);
        return -1;
    }
    s->text = buf;
    *len = n;
    return 0;
}

/* Every rank: splits s->text into the task lines; the hash covers them. */
static int split_tasks(tl_list *s)
{
    int64_t cap = 0;
    for (char *c = s->text; *c; c++)
        cap += *c == '\n';
    s->lines = malloc((size_t)(cap + 1) * sizeof *s->lines);
    if (!s->lines)
        return -1;
    uint64_t h = 0xcbf29ce484222325ull;
    char *line = s->text;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        char *next = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] == '\r')
            line[--n] = '\0';
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p && *p != '#') {
            s->lines[s->ntasks++] = line;
            for (size_t i = 0; i <= n; i++) /* the NUL separates lines */
                h = (h ^ (unsigned char)line[i]) * 0x100000001b3ull;
        }
        line = next;
    }
    s->hash = h;
    return 0;
}

/* Rank 0: host list and origin from OUT.tails of an interrupted run; checks
 * that the task list is the same. */
static int read_state(tl_list *s, char ***hosts, int *nhosts, char *msg, size_t msglen)
{
    FILE *f = fopen(s->tails, "rb");
    if (!f)
        return 0; /* nothing kept: times and hosts start anew */
    char line[TL_HOST_MAX + 64];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == 'L') {
            long long n = 0;
            uint64_t h = 0;
            if (sscanf(line, "L %lld %" SCNx64, &n, &h) == 2 &&
                (n != s->ntasks || h != s->hash)) {
                snprintf(msg, msglen,
                         "--resume: the task list '%s' changed since the interrupted run (%lld "
                         "tasks, hash %016" PRIx64 "; it had %lld tasks, hash %016" PRIx64
                         "); use --force to start over",
                         s->tasks_path, (long long)s->ntasks, s->hash, n, h);
                fclose(f);
                return -1;
            }
        } else if (line[0] == 'O') {
            sscanf(line, "O %lf", &s->origin);
        } else if (line[0] == 'H' && line[1] == ' ') {
            char **grown = realloc(*hosts, (size_t)(*nhosts + 1) * sizeof **hosts);
            if (grown) {
                *hosts = grown;
                (*hosts)[(*nhosts)++] = strdup(line + 2);
            }
        } else if (line[0] == 'T') {
            /* skip the record's bytes */
            long long t;
            size_t a, b;
            if (sscanf(line, "T %lld %zu %zu", &t, &a, &b) == 3)
                fseek(f, (long)(a + b + 1), SEEK_CUR);
        }
    }
    fclose(f);
    return 0;
}

/* Rank 0, --resume-failed: the previous output's records, tails and hosts. */
typedef struct tl_previous {
    tl_rec *recs;
    char **out_tail, **err_tail; /* vlen strings read from the file */
    char **hosts;
    int nhosts;
    double origin;
} tl_previous;

static int read_strings(hid_t fid, const char *name, int64_t n, char ***out)
{
    hid_t ds = H5Dopen2(fid, name, H5P_DEFAULT);
    if (ds < 0)
        return -1;
    hid_t ftype = H5Dget_type(ds);
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5Tget_cset(ftype));
    H5Tclose(ftype);
    hid_t space = H5Dget_space(ds);
    hssize_t count = H5Sget_simple_extent_npoints(space);
    int rc = -1;
    if (count == n) {
        *out = calloc((size_t)n + 1, sizeof **out);
        if (*out && H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) >= 0)
            rc = 0;
    }
    H5Sclose(space);
    H5Tclose(type);
    H5Dclose(ds);
    return rc;
}

/* A root attribute holding text (variable-length or fixed), into buf. */
static int read_attr_string(hid_t fid, const char *name, char *buf, size_t len)
{
    hid_t attr = H5Aopen(fid, name, H5P_DEFAULT);
    if (attr < 0)
        return -1;
    hid_t ftype = H5Aget_type(attr);
    int rc = -1;
    if (ftype >= 0 && H5Tget_class(ftype) == H5T_STRING) {
        hid_t mtype = H5Tcopy(H5T_C_S1);
        if (H5Tis_variable_str(ftype) > 0) {
            char *value = NULL;
            H5Tset_size(mtype, H5T_VARIABLE);
            H5Tset_cset(mtype, H5Tget_cset(ftype));
            if (H5Aread(attr, mtype, &value) >= 0 && value) {
                snprintf(buf, len, "%s", value);
                H5free_memory(value);
                rc = 0;
            }
        } else {
            size_t size = H5Tget_size(ftype);
            char *value = calloc(1, size + 1);
            H5Tset_size(mtype, size + 1);
            if (value && H5Aread(attr, mtype, value) >= 0) {
                snprintf(buf, len, "%s", value);
                rc = 0;
            }
            free(value);
        }
        H5Tclose(mtype);
    }
    if (ftype >= 0)
        H5Tclose(ftype);
    H5Aclose(attr);
    return rc;
}

static int read_previous(tl_list *s, tl_previous *p, char *msg, size_t msglen)
{
    if (!exists(s->output)) {
        snprintf(msg, msglen, "--resume-failed: no finished output '%s' to take the failed tasks "
                              "from", s->output);
        return -1;
    }
    hid_t fid;
    H5E_BEGIN_TRY { fid = H5Fopen(s->output, H5F_ACC_RDONLY, H5P_DEFAULT); } H5E_END_TRY;
    if (fid < 0) {
        snprintf(msg, msglen, "--resume-failed: cannot open '%s' as HDF5", s->output);
        return -1;
    }
    char hash[64] = "";
    char mine[32];
    snprintf(mine, sizeof mine, "%016" PRIx64, s->hash);
    int rc = -1;
    herr_t e;
    H5E_BEGIN_TRY {
        e = read_attr_string(fid, "tasks_hash", hash, sizeof hash);
    } H5E_END_TRY;
    if (e < 0 || strcmp(hash, mine) != 0) {
        snprintf(msg, msglen,
                 "--resume-failed: '%s' was not made from this task list (its tasks_hash %s, "
                 "'%s' has %s); use --force to start over",
                 s->output, e < 0 ? "is missing" : hash, s->tasks_path, mine);
        H5Fclose(fid);
        return -1;
    }
    int64_t n = s->ntasks;
    p->recs = calloc((size_t)n + 1, sizeof *p->recs);
    int32_t *i32 = malloc((size_t)n * 4 + 4);
    double *f64 = malloc((size_t)n * 8 + 8);
    const char *ints[] = { "/status", "/exit_code", "/signal", "/attempts", "/rank", "/host" };
    H5E_BEGIN_TRY {
        rc = p->recs && i32 && f64 ? 0 : -1;
        for (int k = 0; rc == 0 && k < 6; k++) {
            rc = H5LTread_dataset_int(fid, ints[k], i32) < 0 ? -1 : 0;
            for (int64_t t = 0; rc == 0 && t < n; t++) {
                int32_t *dst = &p->recs[t].status + k;
                *dst = i32[t];
            }
        }
        for (int k = 0; rc == 0 && k < 2; k++) {
            rc = H5LTread_dataset_double(fid, k ? "/end" : "/start", f64) < 0 ? -1 : 0;
            for (int64_t t = 0; rc == 0 && t < n; t++)
                *(k ? &p->recs[t].end : &p->recs[t].start) = f64[t];
        }
        if (rc == 0 && H5LTget_attribute_double(fid, "/", "time_origin", &p->origin) < 0)
            rc = -1;
        if (rc == 0)
            rc = read_strings(fid, "/stdout_tail", n, &p->out_tail);
        if (rc == 0)
            rc = read_strings(fid, "/stderr_tail", n, &p->err_tail);
        hsize_t nh = 0;
        if (rc == 0) {
            hid_t ds = H5Dopen2(fid, "/hosts", H5P_DEFAULT);
            hid_t sp = ds >= 0 ? H5Dget_space(ds) : -1;
            nh = sp >= 0 ? (hsize_t)H5Sget_simple_extent_npoints(sp) : 0;
            if (sp >= 0)
                H5Sclose(sp);
            if (ds >= 0)
                H5Dclose(ds);
            p->nhosts = (int)nh;
            rc = ds >= 0 ? read_strings(fid, "/hosts", (int64_t)nh, &p->hosts) : -1;
        }
    } H5E_END_TRY;
    free(i32);
    free(f64);
    H5Fclose(fid);
    if (rc != 0)
        snprintf(msg, msglen, "--resume-failed: '%s' is not a complete task_list output", s->output);
    return rc;
}

static void free_previous(tl_previous *p, int64_t n)
{
    for (int64_t t = 0; p->out_tail && t < n; t++)
        H5free_memory(p->out_tail[t]);
    for (int64_t t = 0; p->err_tail && t < n; t++)
        H5free_memory(p->err_tail[t]);
    for (int i = 0; p->hosts && i < p->nhosts; i++)
        H5free_memory(p->hosts[i]);
    free(p->out_tail);
    free(p->err_tail);
    free(p->hosts);
    free(p->recs);
}

static int find_host(char **hosts, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(hosts[i], name) == 0)
            return i;
    return -1;
}

/* Rank 0: prepares the joblog and OUT.tails and the host list; fills
 * *hosts_text, *origin, the host index of every rank, and for
 * --resume-failed the previous records. */
static int prepare_files(tl_list *s, const char *names, int size, int *host_of, char *msg,
                         size_t msglen)
{
    const mpmap_cli_common *c = mpmap_app_common(s->app);
    char **hosts = NULL;
    int nhosts = 0;
    bool resume = c->resume;
    char ckpt[TL_PATH_MAX + 8];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", s->output);
    s->origin = unix_now();
    tl_previous prev = { 0 };
    if (resume && !exists(ckpt)) {
        /* The kit refuses, or finds the output complete: touch nothing. */
        for (int r = 0; r < size; r++)
            host_of[r] = 0;
        s->hosts_text = strdup("?\n");
        return s->hosts_text ? 0 : -1;
    }
    if (resume && read_state(s, &hosts, &nhosts, msg, msglen) != 0)
        return -1;
    /* --resume-failed (also when it resumes an interrupted --resume-failed
     * run: OUT is still the previous output until the commit). */
    if (s->resume_failed) {
        if (read_previous(s, &prev, msg, msglen) != 0) {
            free_previous(&prev, s->ntasks);
            return -1;
        }
        if (!resume) {
            s->origin = prev.origin;
            hosts = prev.hosts;
            nhosts = prev.nhosts;
            prev.hosts = NULL;
            prev.nhosts = 0;
        }
    }
    /* OUT.tails: fresh, or appended to by --resume. */
    int fd = open(s->tails, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (resume ? 0 : O_TRUNC),
                  0644);
    if (fd < 0) {
        snprintf(msg, msglen, "--output: cannot write '%s': %s", s->tails, strerror(errno));
        free_previous(&prev, s->ntasks);
        return -1;
    }
    char head[128];
    if (!resume) {
        int n = snprintf(head, sizeof head, "L %lld %016" PRIx64 "\nO %.17g\n",
                         (long long)s->ntasks, s->hash, s->origin);
        write_all(fd, head, (size_t)n);
        for (int i = 0; i < nhosts; i++) {
            char line[TL_HOST_MAX + 4];
            int m = snprintf(line, sizeof line, "H %s\n", hosts[i]);
            write_all(fd, line, (size_t)m);
        }
    }
    for (int r = 0; r < size; r++) {
        const char *name = names + (size_t)r * TL_HOST_MAX;
        int k = find_host(hosts, nhosts, name);
        if (k < 0) {
            char **grown = realloc(hosts, (size_t)(nhosts + 1) * sizeof *hosts);
            if (!grown || !(grown[nhosts] = strdup(name))) {
                snprintf(msg, msglen, "out of memory");
                return -1;
            }
            hosts = grown;
            k = nhosts++;
            char line[TL_HOST_MAX + 4];
            int m = snprintf(line, sizeof line, "H %s\n", name);
            write_all(fd, line, (size_t)m);
        }
        host_of[r] = k;
    }
    /* The tasks --resume-failed keeps: their tails go to the new output. */
    if (prev.recs) {
        s->previous = prev.recs;
        prev.recs = NULL;
        for (int64_t t = 0; t < s->ntasks; t++) {
            if (s->previous[t].status == 0) {
                const char *o = prev.out_tail[t] ? prev.out_tail[t] : "";
                const char *e = prev.err_tail[t] ? prev.err_tail[t] : "";
                if (!resume) /* else written by the interrupted run */
                    append_tails(fd, t, o, strlen(o), e, strlen(e));
                s->kept++;
            } else {
                s->previous_failed++;
            }
        }
    }
    free_previous(&prev, s->ntasks);
    close(fd);
    /* The joblog: new with a header, or appended to. */
    bool fresh = !resume && !s->resume_failed;
    fd = open(s->joblog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (fresh ? O_TRUNC : 0), 0644);
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
    size_t total = 1;
    for (int i = 0; i < nhosts; i++)
        total += strlen(hosts[i]) + 1;
    s->hosts_text = malloc(total);
    if (!s->hosts_text)
        return -1;
    s->hosts_text[0] = '\0';
    for (int i = 0; i < nhosts; i++) {
        strcat(s->hosts_text, hosts[i]);
        strcat(s->hosts_text, "\n");
        free(hosts[i]);
    }
    free(hosts);
    return 0;
}

static int tl_check(mpmap_app *app, void *ctx)
{
    tl_list *s = ctx;
    const mpmap_cli_common *c = mpmap_app_common(app);
    if (s->resume_failed && c->force)
        return mpmap_app_usage(app, "--resume-failed: give it without --force (--force starts "
                                    "over and runs every task)");
    /* --resume-failed replaces the finished output on purpose; the old one
     * stays until the new one is committed. The kit has no hook for that,
     * so the parsed --force is set here (check runs before the output is
     * checked). */
    mpmap_cli_common *flags = (mpmap_cli_common *)c;
    char ckpt[TL_PATH_MAX + 8];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", c->output);
    /* --resume as well (the batch scripts add it when the output exists):
     * continues an interrupted --resume-failed run if there is one, else
     * means nothing more than --resume-failed. */
    if (s->resume_failed && c->resume && !exists(ckpt))
        flags->resume = 0;
    if (s->resume_failed && !flags->resume)
        flags->force = 1;
    if (s->template_text) {
        char err[512];
        if (task_template_validate(s->template_text, err, sizeof err) != 0)
            return mpmap_app_usage(app, "%s", err);
    }
    return 0;
}

static int tl_setup(mpmap_app *app, void *ctx)
{
    tl_list *s = ctx;
    s->app = app;
    s->rank = mpmap_app_rank(app);
    s->config = mpmap_app_config(app);
    s->joblog_fd = s->tails_fd = -1;
    int size = mpmap_app_size(app);
    MPI_Comm comm = mpmap_app_comm(app);
    const mpmap_cli_common *c = mpmap_app_common(app);
    /* What check (rank 0 only) made of --resume/--force with --resume-failed. */
    int flags[2] = { c->resume, c->force };
    MPI_Bcast(flags, 2, MPI_INT, 0, comm);
    ((mpmap_cli_common *)c)->resume = flags[0];
    ((mpmap_cli_common *)c)->force = flags[1];
    snprintf(s->output, sizeof s->output, "%s", c->output);
    snprintf(s->tails, sizeof s->tails, "%s.tails", c->output);
    snprintf(s->joblog, sizeof s->joblog, "%s", s->joblog_flag ? s->joblog_flag : "");
    if (!s->joblog_flag)
        snprintf(s->joblog, sizeof s->joblog, "%s.joblog", c->output);
    if (s->template_text) { /* the ranks but 0 did not run check */
        char err[512];
        if (task_template_validate(s->template_text, err, sizeof err) != 0)
            return mpmap_app_usage(app, "%s", err);
    }
    /* Rank 0 hands out the work between its own tasks, so while it runs a
     * long command the others may run out of work and wait for it. */
    if (size > 1 && (s->rank0 == TL_RANK0_SERVE || (s->rank0 == TL_RANK0_AUTO && size >= 4)))
        mpmap_app_config(app)->manager_computes = 0;
    if (!mpmap_app_on_error_given(app))
        mpmap_app_config(app)->on_error = MPMAP_ON_ERROR_CONTINUE;
    s->stop_on_error = s->config->on_error == MPMAP_ON_ERROR_STOP;

    /* The task file: read by rank 0, sent to all. */
    char msg[16384] = "";
    int64_t head[2] = { 0, 0 }; /* error, length */
    size_t len = 0;
    if (s->rank == 0) {
        if (read_tasks(s, msg, sizeof msg, &len) != 0)
            head[0] = 1;
        head[1] = (int64_t)len;
    }
    MPI_Bcast(head, 2, MPI_INT64_T, 0, comm);
    if (head[0])
        return mpmap_app_usage(app, "%s", msg);
    if (s->rank != 0) {
        s->text = malloc((size_t)head[1] + 1);
        if (!s->text)
            return mpmap_app_failure(app, "out of memory for the task list");
        s->text[head[1]] = '\0';
    }
    for (int64_t off = 0; off < head[1]; off += 1 << 30) {
        int n = (int)(head[1] - off < (1 << 30) ? head[1] - off : (1 << 30));
        MPI_Bcast(s->text + off, n, MPI_CHAR, 0, comm);
    }
    if (split_tasks(s) != 0)
        return mpmap_app_failure(app, "out of memory for the task list");
    if (s->ntasks == 0)
        return mpmap_app_usage(app, "--tasks: '%s' has no tasks (only empty lines and # comments)",
                               s->tasks_path);

    /* Hosts: rank 0 gathers the names, keeps the list in OUT.tails (so a
     * resumed run's indices mean the same hosts) and says which is whose. */
    char me[TL_HOST_MAX] = "";
    gethostname(me, sizeof me - 1);
    char *names = s->rank == 0 ? calloc((size_t)size, TL_HOST_MAX) : NULL;
    int *host_of = calloc((size_t)size, sizeof *host_of);
    MPI_Gather(me, TL_HOST_MAX, MPI_CHAR, names, TL_HOST_MAX, MPI_CHAR, 0, comm);
    int64_t verdict[3] = { 0, 0, 0 }; /* error, hosts_text length, previous */
    if (s->rank == 0) {
        if (!names || !host_of || prepare_files(s, names, size, host_of, msg, sizeof msg) != 0)
            verdict[0] = 1;
        else
            verdict[1] = (int64_t)strlen(s->hosts_text) + 1;
        verdict[2] = s->previous != NULL;
    }
    free(names);
    MPI_Bcast(verdict, 3, MPI_INT64_T, 0, comm);
    if (verdict[0]) {
        free(host_of);
        return mpmap_app_usage(app, "%s", msg[0] ? msg : "out of memory");
    }
    MPI_Scatter(host_of, 1, MPI_INT, &s->my_host, 1, MPI_INT, 0, comm);
    free(host_of);
    MPI_Bcast(&s->origin, 1, MPI_DOUBLE, 0, comm);
    if (s->rank != 0)
        s->hosts_text = malloc((size_t)verdict[1]);
    MPI_Bcast(s->hosts_text, (int)verdict[1], MPI_CHAR, 0, comm);
    for (char *h = s->hosts_text; *h; h = strchr(h, '\n') + 1)
        s->nhosts++;
    s->hosts = calloc((size_t)s->nhosts + 1, sizeof *s->hosts);
    char *h = s->hosts_text;
    for (int i = 0; i < s->nhosts; i++) {
        s->hosts[i] = h;
        h = strchr(h, '\n');
        *h++ = '\0';
    }
    if (verdict[2]) {
        if (s->rank != 0)
            s->previous = malloc((size_t)s->ntasks * sizeof *s->previous);
        MPI_Bcast(s->previous, (int)((size_t)s->ntasks * sizeof *s->previous), MPI_BYTE, 0, comm);
    }
    /* Every rank appends to the joblog and OUT.tails (rank 0 made them). */
    s->joblog_fd = open(s->joblog, O_WRONLY | O_APPEND | O_CLOEXEC);
    s->tails_fd = open(s->tails, O_WRONLY | O_APPEND | O_CLOEXEC);

    mpmap_app_problem *p = &s->problem;
    p->ntasks = s->ntasks;
    p->task_dim = "task";
    p->coords[p->ncoords++] = (mpmap_app_coord){ .name = "hosts", .n = s->nhosts,
                                                 .strings = (const char *const *)s->hosts,
                                                 .long_name = "host names (/host indexes them)" };
    static const struct {
        const char *name, *units, *long_name;
        mpmap_datatype type;
        bool keep;
    } fields[F_COUNT] = {
        { "status", NULL, "outcome of each task (0 = ok)", MPMAP_INT32, true },
        { "exit_code", NULL, "exit code of the command's last run (-1: ended by a signal)",
          MPMAP_INT32, false },
        { "signal", NULL, "signal that ended the command's last run (0: none)", MPMAP_INT32,
          false },
        { "attempts", NULL, "times the command was run (1 + retries used)", MPMAP_INT32, true },
        { "rank", NULL, "MPI rank that ran the task", MPMAP_INT32, false },
        { "host", NULL, "index into /hosts of the host that ran the task", MPMAP_INT32, false },
        { "start", "s", "start of the first run, seconds since time_origin", MPMAP_DOUBLE, false },
        { "end", "s", "end of the last run, seconds since time_origin", MPMAP_DOUBLE, false },
    };
    for (int i = 0; i < F_COUNT; i++)
        p->fields[p->nfields++] = (mpmap_app_field){ .name = fields[i].name,
                                                     .type = fields[i].type,
                                                     .units = fields[i].units,
                                                     .long_name = fields[i].long_name,
                                                     .keep = fields[i].keep };
    char prev[64] = "";
    if (s->previous) {
        uint64_t ph = mpmap_app_hash(s->previous, (size_t)s->ntasks * sizeof *s->previous);
        snprintf(prev, sizeof prev, " previous=%016" PRIx64, ph);
    }
    snprintf(p->fingerprint, sizeof p->fingerprint, "tasks=%lld:%016" PRIx64 "%s",
             (long long)s->ntasks, s->hash, prev);
    return 0;
}

/* ---- finish: tails into the output ------------------------------------------------ */

/* Text as valid UTF-8 without NUL: other bytes become '?'. In place. */
static void sanitize(char *t, size_t n)
{
    size_t i = 0;
    /* A tail may start inside a character. */
    while (i < n && ((unsigned char)t[i] & 0xC0) == 0x80)
        t[i++] = '?';
    while (i < n) {
        unsigned char c = (unsigned char)t[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = len > 0 && i + len <= n && c != 0;
        for (size_t k = 1; ok && k < len; k++)
            ok = ((unsigned char)t[i + k] & 0xC0) == 0x80;
        if (!ok) {
            t[i++] = '?';
            continue;
        }
        i += len;
    }
}

static int write_tails(tl_list *s, mpmap_app *app)
{
    int64_t n = s->ntasks;
    char **out = calloc((size_t)n, sizeof *out), **err = calloc((size_t)n, sizeof *err);
    char *data = NULL;
    size_t len = 0;
    FILE *f = fopen(s->tails, "rb");
    if (f) {
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, 0, SEEK_SET);
        data = size >= 0 ? malloc((size_t)size + 1) : NULL;
        if (data)
            len = fread(data, 1, (size_t)size, f);
        fclose(f);
    }
    int rc = out && err ? 0 : -1;
    /* Records in order; the last one of a task wins (a task re-run after
     * its first result was lost). A damaged record is skipped. */
    size_t i = 0;
    while (rc == 0 && data && i < len) {
        char *nl = memchr(data + i, '\n', len - i);
        if (!nl)
            break;
        *nl = '\0';
        long long t;
        size_t a, b;
        uint64_t h;
        size_t next = (size_t)(nl - data) + 1;
        if (data[i] == 'T' &&
            sscanf(data + i, "T %lld %zu %zu %" SCNx64, &t, &a, &b, &h) == 4 &&
            next + a + b + 1 <= len && t >= 0 && t < n &&
            tails_hash(t, data + next, a, data + next + a, b) == h) {
            const char *o = data + next, *e = data + next + a;
            next += a + b + 1;
            char *oc = malloc(a + 1), *ec = malloc(b + 1);
            if (!oc || !ec) {
                free(oc);
                free(ec);
                rc = -1;
                break;
            }
            memcpy(oc, o, a);
            oc[a] = '\0';
            memcpy(ec, e, b);
            ec[b] = '\0';
            sanitize(oc, a);
            sanitize(ec, b);
            free(out[t]);
            free(err[t]);
            out[t] = oc;
            err[t] = ec;
        }
        i = next;
    }
    free(data);
    const char *empty = "";
    for (int64_t t = 0; rc == 0 && t < n; t++) {
        if (!out[t])
            out[t] = (char *)empty;
        if (!err[t])
            err[t] = (char *)empty;
    }
    /* A second handle on the open output file: the kit writes numbers only. */
    hid_t fid = -1;
    if (rc == 0) {
        H5E_BEGIN_TRY {
            fid = H5Fopen(mpmap_h5_partial_path(mpmap_app_h5(app)), H5F_ACC_RDWR, H5P_DEFAULT);
        } H5E_END_TRY;
        rc = fid < 0 ? -1 : 0;
    }
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    for (int k = 0; rc == 0 && k < 2; k++) {
        hsize_t dim = (hsize_t)n;
        hid_t space = H5Screate_simple(1, &dim, NULL);
        const char *name = k ? "/stderr_tail" : "/stdout_tail";
        hid_t ds = H5Dcreate2(fid, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        hid_t scale = H5Dopen2(fid, "/task", H5P_DEFAULT);
        if (ds < 0 || H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, k ? err : out) < 0 ||
            (scale >= 0 && H5DSattach_scale(ds, scale, 0) < 0))
            rc = -1;
        if (scale >= 0)
            H5Dclose(scale);
        if (ds >= 0)
            H5Dclose(ds);
        H5Sclose(space);
    }
    H5Tclose(type);
    if (fid >= 0 && H5Fclose(fid) < 0)
        rc = -1;
    mpmap_h5 *h5 = mpmap_app_h5(app);
    if (rc == 0)
        rc = mpmap_h5_attr_string(h5, "/stdout_tail", "long_name",
                                  "last bytes of the command's stdout (its last run)");
    if (rc == 0)
        rc = mpmap_h5_attr_string(h5, "/stderr_tail", "long_name",
                                  "last bytes of the command's stderr (its last run)");
    for (int64_t t = 0; out && err && t < n; t++) {
        if (out[t] != empty)
            free(out[t]);
        if (err[t] != empty)
            free(err[t]);
    }
    free(out);
    free(err);
    return rc;
}

static void counts(const mpmap_app *app, int64_t n, int64_t *failed, int64_t *retried)
{
    const int32_t *status = mpmap_app_field_data(app, "status");
    const int32_t *attempts = mpmap_app_field_data(app, "attempts");
    *failed = *retried = 0;
    for (int64_t t = 0; status && attempts && t < n; t++) {
        int32_t a, st;
        memcpy(&st, status + t, 4);
        memcpy(&a, attempts + t, 4);
        *failed += st != 0;
        *retried += a > 1;
    }
}

static int tl_finish(mpmap_app *app, const mpmap_report *report, void *ctx)
{
    (void)report;
    tl_list *s = ctx;
    int64_t failed, retried;
    counts(app, s->ntasks, &failed, &retried);
    char hash[32];
    snprintf(hash, sizeof hash, "%016" PRIx64, s->hash);
    int rc = write_tails(s, app);
    if (rc == 0)
        rc = mpmap_h5_attr_string(mpmap_app_h5(app), "/status", "codes", TL_STATUS_DOC);
    if (rc == 0)
        rc = mpmap_app_attr_string(app, "tasks_file", s->tasks_path);
    if (rc == 0)
        rc = mpmap_app_attr_string(app, "tasks_hash", hash);
    if (rc == 0)
        rc = mpmap_app_attr_int64(app, "tasks", s->ntasks);
    if (rc == 0 && s->template_text)
        rc = mpmap_app_attr_string(app, "template", s->template_text);
    if (rc == 0 && s->timeout_seen)
        rc = mpmap_app_attr_double(app, "timeout", s->timeout);
    if (rc == 0)
        rc = mpmap_app_attr_int64(app, "retries", s->retries);
    if (rc == 0)
        rc = mpmap_app_attr_double(app, "time_origin", s->origin);
    if (rc == 0)
        rc = mpmap_app_attr_string(app, "joblog", s->joblog);
    if (rc == 0)
        rc = mpmap_app_attr_int64(app, "failed_tasks", failed);
    if (rc == 0)
        rc = mpmap_app_attr_int64(app, "retried_tasks", retried);
    if (rc == 0)
        s->finished = true;
    return rc;
}

static void tl_print(mpmap_app *app, const mpmap_report *report, void *ctx)
{
    (void)report;
    tl_list *s = ctx;
    int64_t failed, retried;
    counts(app, s->ntasks, &failed, &retried);
    printf("task_list: %lld task%s from %s: %lld succeeded, %lld failed, %lld retried\n",
           (long long)s->ntasks, s->ntasks == 1 ? "" : "s", s->tasks_path,
           (long long)(s->ntasks - failed), (long long)failed, (long long)retried);
    if (s->previous)
        printf("  --resume-failed: %lld kept from the previous output, %lld run again\n",
               (long long)s->kept, (long long)s->previous_failed);
    if (failed > 0)
        printf("  failed tasks: codes in /status, details in %s\n", s->joblog);
}

static void tl_cleanup(void *ctx)
{
    tl_list *s = ctx;
    if (s->joblog_fd >= 0)
        close(s->joblog_fd);
    if (s->tails_fd >= 0)
        close(s->tails_fd);
    /* Committed (the kit removed the checkpoint): the tails are in OUT. */
    char ckpt[TL_PATH_MAX + 8];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", s->output);
    if (s->rank == 0 && s->finished && exists(s->output) && !exists(ckpt))
        unlink(s->tails);
    free(s->text);
    free(s->lines);
    free(s->hosts);
    free(s->hosts_text);
    free(s->previous);
}

int main(int argc, char **argv)
{
    static const char *const rank0_names[] = { "auto", "tasks", "serve", NULL };
    tl_list s = { .joblog_fd = -1, .tails_fd = -1 };
    mpmap_option options[] = {
        { .name = "--tasks", .kind = MPMAP_OPT_STRING, .target = &s.tasks_path,
          .metavar = "FILE",
          .help = "one task per line: a shell command, or with --template its argument; empty "
                  "lines and lines starting with # are skipped",
          .flags = MPMAP_OPT_REQUIRED | MPMAP_OPT_NO_FINGERPRINT },
        { .name = "--template", .kind = MPMAP_OPT_STRING, .target = &s.template_text,
          .metavar = "'CMD {}'",
          .help = "command run for each line: {} the line (shell-quoted), {.} without "
                  "extension, {/} basename, {//} dirname, {/.} basename without extension, {#} "
                  "task index; {{ is a literal {" },
        { .name = "--joblog", .kind = MPMAP_OPT_STRING, .target = &s.joblog_flag,
          .metavar = "FILE", .default_text = "OUTPUT.joblog",
          .help = "one tab-separated line per finished task, written as it finishes",
          .flags = MPMAP_OPT_NO_FINGERPRINT },
        { .name = "--retries", .kind = MPMAP_OPT_INT64, .target = &s.retries, .metavar = "N",
          .help = "run a failed task up to N more times (at once, on the same rank)",
          .default_text = "0", .min = 0, .max = 1000 },
        { .name = "--timeout", .kind = MPMAP_OPT_DOUBLE, .target = &s.timeout, .metavar = "S",
          .help = "seconds one run of a command may take before it is killed (status -2)",
          .default_text = "none", .min = 0, .max = INFINITY, .flags = MPMAP_OPT_EXCLUSIVE_MIN,
          .seen = &s.timeout_seen },
        { .name = "--resume-failed", .kind = MPMAP_OPT_FLAG, .target = &s.resume_failed,
          .help = "run again only the tasks whose /status is not 0 in the finished OUTPUT, "
                  "then replace it" },
        { .name = "--rank0", .kind = MPMAP_OPT_CHOICE, .target = &s.rank0,
          .help = "rank 0 runs commands too (tasks) or only hands out work (serve: no rank waits "
                  "for work while rank 0 runs a long command); auto: serve from 4 ranks up",
          .default_text = "auto", .choices = rank0_names, .flags = MPMAP_OPT_NO_FINGERPRINT },
    };
    mpmap_app_def def = {
        .name = "task_list", .default_output = "task_list.h5",
        .summary = "Runs the commands of a task file (one per line) on every rank, with "
                   "/bin/sh -c.\n"
                   "Tasks of very different lengths: use --schedule dynamic (chunks of --chunk "
                   "tasks, first come first served).\n"
                   "Results: /status /exit_code /signal /attempts /rank /host (into /hosts) "
                   "/start /end /stdout_tail /stderr_tail, one row per task; a joblog.\n"
                   "/status codes: " TL_STATUS_DOC ".\n"
                   "A failed task is recorded and the run goes on (--on-error stop to stop); "
                   "after the run, --resume-failed runs the failed ones again.",
        .options = options, .noptions = sizeof options / sizeof options[0], .context = &s,
        .problem = &s.problem, .check = tl_check, .setup = tl_setup, .map = tl_map,
        .task_name = tl_task_name, .finish = tl_finish, .print = tl_print,
        .cleanup = tl_cleanup, .on_error_default = "continue"
    };
    return mpmap_app_main(argc, argv, &def);
}
