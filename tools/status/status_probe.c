/*
 * Looking at a run from outside (see status_tool.h). Nothing here writes,
 * and the run's lock is only ever tried for an instant: a shared,
 * non-blocking flock on OUT.lock that is dropped at once. A run that holds
 * it refuses the attempt, which is the whole test; a run starting in that
 * instant would find the output busy, a window of microseconds.
 */
#define _GNU_SOURCE /* flock, gethostname */
#include "status_tool.h"

#include "checkpoint_inspect.h"
#include "keyed_internal.h"
#include "mpmap.h"

#include <hdf5.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The largest OUT.status read (three lines per rank: ample for 100k ranks). */
#define STATUS_FILE_MAX (32u << 20)
/* A live run without OUT.status is only ever between two moments (the lock
 * taken, the file written; the file removed, the lock released): looked at
 * again this often before calling it "starting". */
#define STATUS_RETRIES 10
#define STATUS_RETRY_NS 100000000L

typedef enum lock_state { LOCK_ABSENT, LOCK_FREE, LOCK_HELD, LOCK_UNSUPPORTED } lock_state;

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

static void path_with(char *buf, size_t len, const char *output, const char *suffix)
{
    snprintf(buf, len, "%s%s", output, suffix);
}

static lock_state probe_lock(const char *output, char *holder, size_t len)
{
    char path[4200];
    path_with(path, sizeof path, output, ".lock");
    holder[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return LOCK_ABSENT;
    ssize_t n = pread(fd, holder, len - 1, 0);
    holder[n > 0 ? n : 0] = '\0';
    holder[strcspn(holder, "\r\n")] = '\0';
    lock_state s = LOCK_FREE;
    if (flock(fd, LOCK_SH | LOCK_NB) == 0)
        (void)flock(fd, LOCK_UN);
    else if (errno == EWOULDBLOCK || errno == EAGAIN)
        s = LOCK_HELD;
    else
        s = LOCK_UNSUPPORTED;
    close(fd);
    return s;
}

/* The whole file as a string (malloc'd), or NULL. */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 4096) {
            cap = cap ? 2 * cap : 8192;
            char *grown = cap <= STATUS_FILE_MAX ? realloc(buf, cap) : NULL;
            if (!grown) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
        }
        size_t k = fread(buf + len, 1, cap - len - 1, f);
        len += k;
        if (k == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static void copy(char *dst, size_t len, const char *src) { snprintf(dst, len, "%s", src); }

/* One "rank.R.KEY = value" line. */
static void parse_rank_key(status_view *v, const char *key, const char *value)
{
    char *end;
    long r = strtol(key + 5, &end, 10);
    if (end == key + 5 || *end != '.' || !v->rank || r < 0 || r >= v->ranks)
        return;
    const char *field = end + 1;
    if (strcmp(field, "tasks") == 0)
        v->rank[r].tasks = strtoll(value, NULL, 10);
    else if (strcmp(field, "busy") == 0)
        v->rank[r].busy = strtod(value, NULL);
    else if (strcmp(field, "last_chunk") == 0)
        v->rank[r].last_chunk = strtod(value, NULL);
}

static void parse_line(status_view *v, const char *key, const char *value, bool *running)
{
    if (strncmp(key, "rank.", 5) == 0)
        parse_rank_key(v, key, value);
    else if (strcmp(key, "state") == 0)
        *running = strcmp(value, "running") == 0;
    else if (strcmp(key, "app") == 0)
        copy(v->app, sizeof v->app, value);
    else if (strcmp(key, "host") == 0)
        copy(v->host, sizeof v->host, value);
    else if (strcmp(key, "pid") == 0)
        v->pid = strtol(value, NULL, 10);
    else if (strcmp(key, "ranks") == 0 && !v->rank) {
        long n = strtol(value, NULL, 10);
        if (n > 0 && n <= (1 << 24) && (v->rank = calloc((size_t)n, sizeof *v->rank)))
            v->ranks = (int)n;
    } else if (strcmp(key, "manager_computes") == 0)
        v->manager_computes = strtol(value, NULL, 10) != 0;
    else if (strcmp(key, "interval") == 0)
        v->interval = strtod(value, NULL);
    else if (strcmp(key, "start_time") == 0)
        v->start_time = strtod(value, NULL);
    else if (strcmp(key, "tasks_start_time") == 0)
        v->tasks_start_time = strtod(value, NULL);
    else if (strcmp(key, "update_time") == 0)
        v->update_time = strtod(value, NULL);
    else if (strcmp(key, "tasks_total") == 0)
        v->total = strtoll(value, NULL, 10);
    else if (strcmp(key, "tasks_done") == 0)
        v->done = strtoll(value, NULL, 10);
    else if (strcmp(key, "tasks_restored") == 0)
        v->restored = strtoll(value, NULL, 10);
    else if (strcmp(key, "tasks_failed") == 0)
        v->failed = strtoll(value, NULL, 10);
    else if (strcmp(key, "rate") == 0)
        v->rate = strtod(value, NULL);
    else if (strcmp(key, "eta") == 0)
        v->eta = strtod(value, NULL);
}

int status_parse(const char *text, status_view *v)
{
    bool format = false, running = false;
    const char *line = text;
    while (line && *line) {
        const char *next = strchr(line, '\n');
        size_t n = next ? (size_t)(next - line) : strlen(line);
        char buf[4400];
        if (n < sizeof buf && line[0] != '#') {
            memcpy(buf, line, n);
            buf[n] = '\0';
            char *eq = strstr(buf, " = ");
            if (eq) {
                *eq = '\0';
                const char *value = eq + 3;
                if (strcmp(buf, "format") == 0)
                    format = true;
                else
                    parse_line(v, buf, value, &running);
            }
        }
        line = next ? next + 1 : NULL;
    }
    if (!format)
        return -1;
    v->state = running ? STATUS_RUNNING : STATUS_SETUP;
    return 0;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The computing ranks' median wait since their last chunk, at the update. */
static double median_wait(const status_view *v, double *waits, int *n)
{
    *n = 0;
    for (int r = 0; r < v->ranks; r++) {
        if (r == 0 && !v->manager_computes)
            continue;
        double since = v->rank[r].last_chunk > 0 ? v->rank[r].last_chunk : v->tasks_start_time;
        waits[(*n)++] = v->update_time - since;
    }
    qsort(waits, (size_t)*n, sizeof *waits, compare_double);
    /* The lower median: of two ranks, the one heard from last. */
    return *n > 0 ? waits[(*n - 1) / 2] : 0;
}

void status_flag_silent(status_view *v)
{
    if (!v->rank || v->ranks < 2 || v->state != STATUS_RUNNING || v->done >= v->total)
        return;
    double *waits = malloc((size_t)v->ranks * sizeof *waits);
    if (!waits)
        return;
    int n;
    double median = median_wait(v, waits, &n);
    free(waits);
    double limit = 4 * median + v->interval;
    if (limit < 10)
        limit = 10;
    for (int r = 0; r < v->ranks; r++) {
        if (r == 0 && !v->manager_computes)
            continue;
        double since = v->rank[r].last_chunk > 0 ? v->rank[r].last_chunk : v->tasks_start_time;
        v->rank[r].silent = v->update_time - since > limit;
    }
}

/* ---- a complete output ------------------------------------------------------- */

static bool attr_int64(hid_t file, const char *name, int64_t *value)
{
    if (H5Aexists(file, name) <= 0)
        return false;
    hid_t a = H5Aopen(file, name, H5P_DEFAULT);
    bool ok = a >= 0 && H5Aread(a, H5T_NATIVE_INT64, value) >= 0;
    if (a >= 0)
        H5Aclose(a);
    return ok;
}

static bool attr_double(hid_t file, const char *name, double *value)
{
    if (H5Aexists(file, name) <= 0)
        return false;
    hid_t a = H5Aopen(file, name, H5P_DEFAULT);
    bool ok = a >= 0 && H5Aread(a, H5T_NATIVE_DOUBLE, value) >= 0;
    if (a >= 0)
        H5Aclose(a);
    return ok;
}

/* A string attribute, variable- or fixed-length. */
static bool attr_string(hid_t file, const char *name, char *buf, size_t len)
{
    if (H5Aexists(file, name) <= 0)
        return false;
    hid_t a = H5Aopen(file, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID;
    bool ok = false;
    if (t >= 0 && H5Tget_class(t) == H5T_STRING) {
        if (H5Tis_variable_str(t) > 0) {
            char *text = NULL;
            if (H5Aread(a, t, &text) >= 0 && text) {
                snprintf(buf, len, "%s", text);
                H5free_memory(text);
                ok = true;
            }
        } else {
            size_t size = H5Tget_size(t);
            char *text = size > 0 ? calloc(1, size + 1) : NULL;
            if (text && H5Aread(a, t, text) >= 0) {
                snprintf(buf, len, "%s", text);
                ok = true;
            }
            free(text);
        }
    }
    if (t >= 0)
        H5Tclose(t);
    if (a >= 0)
        H5Aclose(a);
    return ok;
}

static void probe_complete(const char *output, status_view *v)
{
    H5E_auto2_t func;
    void *data;
    (void)H5Eget_auto2(H5E_DEFAULT, &func, &data);
    (void)H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t file = H5Fopen(output, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        snprintf(v->message, sizeof v->message, "'%s' is not an HDF5 file", output);
    } else if (!attr_string(file, "mpmap_app", v->app, sizeof v->app)) {
        snprintf(v->message, sizeof v->message, "'%s' was not written by an mpmap app", output);
    } else {
        v->state = STATUS_COMPLETE;
        int64_t ranks = 0;
        if (attr_int64(file, "mpmap_ranks", &ranks))
            v->ranks = (int)ranks;
        if (attr_int64(file, "mpmap_tasks", &v->total))
            v->done = v->total;
        (void)attr_int64(file, "mpmap_tasks_failed", &v->failed);
        (void)attr_int64(file, "mpmap_legs", &v->legs);
        if (!attr_double(file, "mpmap_total_wall_time", &v->wall_time))
            (void)attr_double(file, "mpmap_wall_time", &v->wall_time);
        (void)attr_double(file, "mpmap_start_time", &v->start_time);
    }
    if (file >= 0)
        H5Fclose(file);
    (void)H5Eset_auto2(H5E_DEFAULT, func, data);
}

/* ---- an interrupted run --------------------------------------------------------- */

static void probe_checkpoint(const char *output, const char *ckpt, status_view *v)
{
    mpmap__ckpt_summary sum;
    char err[1024];
    if (mpmap__ckpt_inspect(ckpt, &sum, err, sizeof err) != 0) {
        snprintf(v->message, sizeof v->message, "%s", err);
        return;
    }
    v->state = STATUS_INTERRUPTED;
    v->total = sum.ntasks;
    v->done = sum.done;
    v->failed = sum.failed;
    v->discarded = sum.discarded;
    v->result_too = exists(output);
}

/* A keyed stage's manifest (mpmap_keyed.h): its completed tasks of all. */
static void probe_keyed(const char *output, const char *kckpt, status_view *v)
{
    int leg;
    if (mpmap__kckpt_inspect(kckpt, &v->total, &v->done, &leg, v->message, sizeof v->message) != 0)
        return;
    v->state = STATUS_INTERRUPTED;
    v->keyed = true;
    v->failed = 0;
    v->result_too = exists(output);
}

/* ---- a live run ------------------------------------------------------------------ */

/* Where flock is not supported (some parallel file systems) the lock says
 * nothing; the status file's pid then does, on its own host. A status file
 * from another host is believed. */
static bool pid_alive(const status_view *v)
{
    char host[256] = "";
    if (gethostname(host, sizeof host) != 0 || strcmp(host, v->host) != 0)
        return true;
    return v->pid > 0 && (kill((pid_t)v->pid, 0) == 0 || errno == EPERM);
}

/* Reads OUT.status into v: true when there is one. */
static bool read_status(const char *output, status_view *v)
{
    char path[4200];
    path_with(path, sizeof path, output, ".status");
    char *text = read_text(path);
    if (!text)
        return false;
    free(v->rank);
    v->rank = NULL;
    v->ranks = 0;
    bool ok = status_parse(text, v) == 0;
    free(text);
    return ok;
}

/* An empty view: nothing known. */
static void reset(status_view *v, const char *output)
{
    free(v->rank);
    memset(v, 0, sizeof *v);
    v->output = output;
    v->total = v->done = v->restored = v->failed = -1;
    v->wall_time = -1;
    v->legs = -1;
    v->eta = -1;
    v->now = unix_now();
}

void status_probe(const char *output, status_view *v)
{
    v->rank = NULL;
    reset(v, output);
    for (int attempt = 0;; attempt++) {
        v->now = unix_now();
        lock_state lock = probe_lock(output, v->holder, sizeof v->holder);
        bool have_status =
            (lock == LOCK_HELD || lock == LOCK_UNSUPPORTED) && read_status(output, v);
        if (have_status && (lock == LOCK_HELD || pid_alive(v))) {
            status_flag_silent(v);
            return;
        }
        if (lock != LOCK_HELD)
            break;
        if (attempt == STATUS_RETRIES) {
            v->state = STATUS_STARTING;
            return;
        }
        nanosleep(&(struct timespec){ 0, STATUS_RETRY_NS }, NULL);
    }
    reset(v, output); /* what a stale OUT.status said does not count */
    char ckpt[4200];
    path_with(ckpt, sizeof ckpt, output, ".ckpt");
    char kckpt[4200];
    path_with(kckpt, sizeof kckpt, output, ".kckpt");
    if (exists(ckpt))
        probe_checkpoint(output, ckpt, v);
    else if (exists(kckpt))
        probe_keyed(output, kckpt, v);
    else if (exists(output))
        probe_complete(output, v);
    else
        snprintf(v->message, sizeof v->message,
                 "no run at '%s' (no live run, no checkpoint, no output)", output);
}

void status_view_free(status_view *v)
{
    free(v->rank);
    v->rank = NULL;
}
