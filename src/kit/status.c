/*
 * OUT.status, the live view of a run (see status.h): counters moved per
 * chunk, a small text file rewritten per progress report.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, gmtime_r, gethostname */
#include "status.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STATUS_FORMAT 1

static double unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void iso_time(double t, char *buf, size_t len)
{
    time_t whole = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&whole, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "?");
}

/* Non-negative seconds as whole milliseconds. */
static long long millis(double seconds)
{
    return seconds > 0 ? (long long)(seconds * 1000 + 0.5) : 0;
}

static char *with_suffix(const char *path, const char *suffix)
{
    size_t n = strlen(path), m = strlen(suffix);
    char *s = malloc(n + m + 1);
    if (s) {
        memcpy(s, path, n);
        memcpy(s + n, suffix, m + 1);
    }
    return s;
}

/*
 * Writes the whole file to OUT.status.tmp and renames it over OUT.status, so
 * a reader sees the old state or the new one, never half of one. Not
 * synced: the file lives no longer than the run and a crash makes it stale
 * anyway; an fsync would cost milliseconds on a busy disk for nothing.
 */
static void write_file(const kit_status *s)
{
    if (!s->path)
        return;
    /* Close-on-exec: a command the app starts at this moment must not keep it. */
    int fd = open(s->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        return; /* informs only: the run goes on without it */
    }
    double now = unix_now();
    char host[256] = "?", start_iso[32], now_iso[32];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "?");
    host[sizeof host - 1] = '\0';
    iso_time(s->start, start_iso, sizeof start_iso);
    iso_time(now, now_iso, sizeof now_iso);
    fprintf(f,
            "format = %d\nstate = %s\napp = %s\noutput = %s\npid = %ld\nhost = %s\n"
            "ranks = %d\nmanager_computes = %d\ninterval = %g\n"
            "start_time = %.3f\nstart_iso = %s\ntasks_start_time = %.3f\nupdate_time = "
            "%.3f\nupdate_iso = %s\n"
            "elapsed = %.3f\n"
            "tasks_total = %lld\ntasks_done = %lld\ntasks_restored = %lld\ntasks_failed = %lld\n"
            "rate = %.6g\neta = %.6g\n",
            STATUS_FORMAT, s->running ? "running" : "setup", s->app, s->output, (long)getpid(),
            host, s->ranks, s->manager_computes, s->interval, s->start, start_iso, s->tasks_start,
            now, now_iso, now - s->start, (long long)s->total, (long long)s->done,
            (long long)s->restored, (long long)s->failed, s->rate, s->eta);
    /* Milliseconds printed as integers: a third of the cost of %.3f, which
     * counts at thousands of ranks. */
    for (int r = 0; r < s->ranks; r++) {
        long long busy = millis(s->rank[r].busy), last = millis(s->rank[r].last_chunk);
        fprintf(
            f,
            "rank.%d.tasks = %lld\nrank.%d.busy = %lld.%03lld\nrank.%d.last_chunk = %lld.%03lld\n",
            r, (long long)s->rank[r].tasks, r, busy / 1000, busy % 1000, r, last / 1000,
            last % 1000);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(s->tmp, s->path) != 0)
        (void)unlink(s->tmp);
}

void kit_status_open(kit_status *s, const char *app, const char *output, int ranks, double interval)
{
    memset(s, 0, sizeof *s);
    s->app = app;
    s->output = output;
    s->ranks = ranks > 0 ? ranks : 1;
    s->manager_computes = 1;
    s->interval = interval;
    s->start = unix_now();
    s->eta = -1;
    s->path = with_suffix(output, ".status");
    s->tmp = with_suffix(output, ".status.tmp");
    s->rank = calloc((size_t)s->ranks, sizeof *s->rank);
    if (!s->path || !s->tmp || !s->rank) {
        kit_status_close(s);
        return;
    }
    write_file(s);
}

void kit_status_start(kit_status *s, int64_t ntasks, int manager_computes)
{
    if (!s->path)
        return;
    s->running = 1;
    s->tasks_start = unix_now();
    s->total = ntasks;
    s->manager_computes = manager_computes;
    write_file(s);
}

void kit_status_chunk(kit_status *s, const mpmap_trace_entry *entry)
{
    if (!s->path || entry->rank < 0 || entry->rank >= s->ranks)
        return;
    kit_status_rank *r = &s->rank[entry->rank];
    r->tasks += entry->end - entry->begin;
    if (entry->finish > entry->start)
        r->busy += entry->finish - entry->start;
    r->last_chunk = unix_now();
}

void kit_status_update(kit_status *s, const mpmap_progress_info *info, int64_t failed)
{
    if (!s->path)
        return;
    s->running = 1;
    s->total = info->total;
    s->done = info->done;
    s->restored = info->restored;
    s->failed = failed;
    s->rate = info->rate;
    s->eta = info->eta;
    write_file(s);
}

void kit_status_close(kit_status *s)
{
    if (s->path)
        (void)unlink(s->path);
    if (s->tmp)
        (void)unlink(s->tmp);
    free(s->path);
    free(s->tmp);
    free(s->rank);
    s->path = s->tmp = NULL;
    s->rank = NULL;
}
