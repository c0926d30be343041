/* Printing a status_view: text for people, one JSON object for scripts. */
#include "status_tool.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *state_name(status_state s)
{
    switch (s) {
    case STATUS_STARTING: return "starting";
    case STATUS_SETUP: return "setup";
    case STATUS_RUNNING: return "running";
    case STATUS_INTERRUPTED: return "interrupted";
    case STATUS_COMPLETE: return "complete";
    default: return "none";
    }
}

/* "4.2 s", "12m05s", "3h07m"; "unknown" for a negative time. */
static const char *duration(double s, char *buf, size_t len)
{
    if (!(s >= 0) || !isfinite(s))
        snprintf(buf, len, "unknown");
    else if (s < 60)
        snprintf(buf, len, "%.1f s", s);
    else if (s < 3600)
        snprintf(buf, len, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(buf, len, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    return buf;
}

static double percent(int64_t done, int64_t total)
{
    return total > 0 ? 100.0 * (double)done / (double)total : 100.0;
}

static void print_ranks(FILE *f, const status_view *v)
{
    double compute = v->update_time - v->tasks_start_time;
    fprintf(f, "  %5s %10s %7s  %s\n", "rank", "tasks", "busy", "last chunk");
    for (int r = 0; r < v->ranks; r++) {
        const status_rank *k = &v->rank[r];
        char busy[16], last[32], ago[24];
        if (r == 0 && !v->manager_computes)
            snprintf(busy, sizeof busy, "-");
        else
            snprintf(busy, sizeof busy, "%.1f%%", compute > 0 ? 100 * k->busy / compute : 0.0);
        if (k->last_chunk > 0)
            snprintf(last, sizeof last, "%s ago",
                     duration(v->now - k->last_chunk, ago, sizeof ago));
        else
            snprintf(last, sizeof last, "%s",
                     r == 0 && !v->manager_computes ? "(hands out work)" : "none yet");
        fprintf(f, "  %5d %10lld %7s  %s%s\n", r, (long long)k->tasks, busy, last,
                k->silent ? "  <- silent far longer than the others" : "");
    }
}

void status_print_text(FILE *f, const status_view *v)
{
    char a[24], b[24], c[24];
    switch (v->state) {
    case STATUS_RUNNING:
        fprintf(f, "%s: running %s (pid %ld on %s, %d rank%s)\n", v->output, v->app, v->pid,
                v->host, v->ranks, v->ranks == 1 ? "" : "s");
        fprintf(f, "  done     %lld/%lld tasks (%.1f%%), %lld restored, %lld failed\n",
                (long long)v->done, (long long)v->total, percent(v->done, v->total),
                (long long)v->restored, (long long)v->failed);
        fprintf(f, "  rate     %.3g tasks/s, ETA %s, elapsed %s (updated %s ago)\n", v->rate,
                duration(v->eta, a, sizeof a),
                duration(v->update_time - v->start_time, b, sizeof b),
                duration(v->now - v->update_time, c, sizeof c));
        if (v->rank)
            print_ranks(f, v);
        break;
    case STATUS_SETUP:
        fprintf(f,
                "%s: setting up %s (pid %ld on %s, %d rank%s), elapsed %s; no task started yet\n",
                v->output, v->app, v->pid, v->host, v->ranks, v->ranks == 1 ? "" : "s",
                duration(v->now - v->start_time, a, sizeof a));
        break;
    case STATUS_STARTING:
        fprintf(f, "%s: starting (%s); no progress written yet\n", v->output,
                v->holder[0] ? v->holder : "live run");
        break;
    case STATUS_INTERRUPTED:
        if (v->total < 0)
            fprintf(f, "%s: interrupted before any task was saved; rerun with --resume\n",
                    v->output);
        else if (v->keyed)
            fprintf(f,
                    "%s: interrupted in its keyed stage (before the output's tasks): %lld/%lld "
                    "tasks done (%.1f%%); rerun with --resume\n",
                    v->output, (long long)v->done, (long long)v->total, percent(v->done, v->total));
        else
            fprintf(f,
                    "%s: interrupted: %lld/%lld tasks done (%.1f%%), %lld failed; rerun with "
                    "--resume\n",
                    v->output, (long long)v->done, (long long)v->total, percent(v->done, v->total),
                    (long long)v->failed);
        if (v->discarded > 0)
            fprintf(f,
                    "  the checkpoint's last %lld bytes are damaged; a resume recomputes "
                    "their tasks\n",
                    (long long)v->discarded);
        if (v->result_too)
            fprintf(f, "  an older complete '%s' stays until the resumed run replaces it\n",
                    v->output);
        break;
    case STATUS_COMPLETE:
        if (v->total >= 0)
            fprintf(f, "%s: complete: %lld tasks (%lld failed), %s", v->output, (long long)v->total,
                    (long long)(v->failed > 0 ? v->failed : 0), v->app);
        else
            fprintf(f, "%s: complete (%s; no task count recorded)", v->output, v->app);
        if (v->ranks > 0)
            fprintf(f, " on %d rank%s", v->ranks, v->ranks == 1 ? "" : "s");
        if (v->wall_time >= 0)
            fprintf(f, ", %s", duration(v->wall_time, a, sizeof a));
        if (v->legs > 1)
            fprintf(f, " in %lld legs", (long long)v->legs);
        fprintf(f, "\n");
        break;
    default: fprintf(f, "%s\n", v->message); break;
    }
}

/* ---- JSON ----------------------------------------------------------------------- */

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void json_count(FILE *f, const char *key, int64_t n)
{
    if (n < 0)
        fprintf(f, ",\"%s\":null", key);
    else
        fprintf(f, ",\"%s\":%lld", key, (long long)n);
}

static void json_number(FILE *f, const char *key, double x)
{
    if (!isfinite(x) || x < 0)
        fprintf(f, ",\"%s\":null", key);
    else
        fprintf(f, ",\"%s\":%.6g", key, x);
}

static void json_ranks(FILE *f, const status_view *v)
{
    double compute = v->update_time - v->tasks_start_time;
    fprintf(f, ",\"per_rank\":[");
    for (int r = 0; r < v->ranks; r++) {
        const status_rank *k = &v->rank[r];
        fprintf(f, "%s{\"rank\":%d,\"tasks\":%lld,\"busy\":%.3f", r ? "," : "", r,
                (long long)k->tasks, k->busy);
        json_number(f, "busy_percent", compute > 0 ? 100 * k->busy / compute : -1);
        json_number(f, "since_last_chunk", k->last_chunk > 0 ? v->now - k->last_chunk : -1);
        fprintf(f, ",\"silent\":%s}", k->silent ? "true" : "false");
    }
    fprintf(f, "]");
}

void status_print_json(FILE *f, const status_view *v)
{
    fprintf(f, "{\"output\":");
    json_string(f, v->output);
    fprintf(f, ",\"state\":\"%s\"", state_name(v->state));
    if (v->state == STATUS_NONE) {
        fprintf(f, ",\"message\":");
        json_string(f, v->message);
        fprintf(f, "}\n");
        return;
    }
    bool live = v->state == STATUS_RUNNING || v->state == STATUS_SETUP;
    if (live || v->state == STATUS_COMPLETE) {
        fprintf(f, ",\"app\":");
        json_string(f, v->app);
        fprintf(f, ",\"ranks\":%d", v->ranks);
    }
    if (live) {
        fprintf(f, ",\"pid\":%ld,\"host\":", v->pid);
        json_string(f, v->host);
    }
    json_count(f, "tasks_total", v->total);
    json_count(f, "tasks_done", v->done);
    json_count(f, "tasks_restored", v->restored);
    json_count(f, "tasks_failed", v->failed);
    json_number(f, "percent", v->total >= 0 && v->done >= 0 ? percent(v->done, v->total) : -1);
    if (live) {
        json_number(f, "rate", v->rate);
        json_number(f, "eta", v->eta);
        json_number(f, "elapsed", v->update_time - v->start_time);
        json_number(f, "updated_ago", v->now - v->update_time);
        json_number(f, "interval", v->interval);
        fprintf(f, ",\"start_time\":%.3f", v->start_time);
        if (v->rank)
            json_ranks(f, v);
    }
    if (v->state == STATUS_INTERRUPTED) {
        fprintf(f, ",\"damaged_bytes\":%lld,\"older_result_kept\":%s", (long long)v->discarded,
                v->result_too ? "true" : "false");
        fprintf(f, ",\"stage\":\"%s\"", v->keyed ? "keyed" : "tasks");
    }
    if (v->state == STATUS_COMPLETE) {
        json_number(f, "wall_time", v->wall_time);
        json_count(f, "legs", v->legs);
    }
    fprintf(f, "}\n");
}
