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
#include "task_list.h"

#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int tl_map(int64_t begin, int64_t end, void *records, mpmap_task_error *err, void *ctx)
{
    tl_list *s = ctx;
    task_outcome *o = malloc(sizeof *o);
    if (!o)
        return mpmap_task_fail(err, begin, TL_STATUS_SYSTEM, "out of memory");
    for (int64_t t = begin; t < end; t++) {
        char *dst = (char *)records + (size_t)(t - begin) * s->problem.record_size;
        if (s->previous && s->previous[t].status == 0) {
            tl_put_rec(s, dst, &s->previous[t]); /* kept by --resume-failed */
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
        tl_joblog_line(s, t, &r, cmd);
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
            tl_append_tails(s->tails_fd, t, o->out_tail, o->out_len, o->err_tail, o->err_len);
        if (r.status != 0) {
            fprintf(stderr, "task_list: task %lld failed: %s (rank %d on %s, %d attempt%s)\n",
                    (long long)t, o->reason, s->rank, s->hosts[s->my_host], r.attempts,
                    r.attempts == 1 ? "" : "s");
            fflush(stderr);
        }
        tl_put_rec(s, dst, &r);
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

/* ---- check, setup ------------------------------------------------------------------ */

static int tl_check(mpmap_app *app, void *ctx)
{
    tl_list *s = ctx;
    const mpmap_cli_common *c = mpmap_app_common(app);
    /* Refused here, before the setup makes OUT.joblog and OUT.tails: the
     * kit would refuse it too, but only once those files exist. */
    if (strcmp(c->write, "ranks") == 0)
        return mpmap_app_usage(app, "--write ranks: this run's summary needs every result on "
                                    "rank 0 (the commands' output tails); use --write rank0");
    if (s->resume_failed && c->force)
        return mpmap_app_usage(app, "--resume-failed: give it without --force (--force starts "
                                    "over and runs every task)");
    /* --resume-failed replaces the finished output on purpose (the old one
     * stays until the new one is committed). With --resume as well (the
     * batch scripts add it when the output exists) it continues an
     * interrupted --resume-failed run if there is one, else it means
     * nothing more than --resume-failed. */
    if (s->resume_failed) {
        char ckpt[TL_PATH_MAX + 8];
        snprintf(ckpt, sizeof ckpt, "%s.ckpt", c->output);
        bool resume = c->resume && exists(ckpt);
        mpmap_app_set_output_policy(app, resume, !resume);
    }
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
    const mpmap_cli_common *c = mpmap_app_common(app);
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
    int loaded = tl_load_tasks(s, msg, sizeof msg);
    if (loaded != 0)
        return loaded == 1 ? mpmap_app_usage(app, "%s", msg) : mpmap_app_failure(app, "%s", msg);
    /* Hosts: rank 0 gathers the names, keeps the list in OUT.tails (so a
     * resumed run's indices mean the same hosts) and says which is whose;
     * it also makes the joblog. */
    if (tl_setup_files(s, msg, sizeof msg) != 0)
        return mpmap_app_usage(app, "%s", msg[0] ? msg : "out of memory");

    tl_describe_record(s);
    return 0;
}

/* ---- finish ------------------------------------------------------------------------ */

static int tl_finish(mpmap_app *app, const mpmap_report *report, void *ctx)
{
    (void)report;
    tl_list *s = ctx;
    int64_t failed, retried;
    tl_counts(app, s->ntasks, &failed, &retried);
    char hash[32];
    snprintf(hash, sizeof hash, "%016" PRIx64, s->hash);
    int rc = tl_write_tails(s, app);
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
    tl_counts(app, s->ntasks, &failed, &retried);
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

/* Most flags of the app's own (tl_flags). */
#define TL_MAX_FLAGS 7

static const char *const rank0_names[] = { "auto", "tasks", "serve", NULL };

/* --help's summary. */
static const char tl_summary[] =
    "Runs the commands of a task file (one per line) on every rank, with "
    "/bin/sh -c.\n"
    "Tasks of very different lengths: use --schedule dynamic (chunks of --chunk "
    "tasks, first come first served).\n"
    "Results: /status /exit_code /signal /attempts /rank /host (into /hosts) "
    "/start /end /stdout_tail /stderr_tail, one row per task; a joblog.\n"
    "/status codes: " TL_STATUS_DOC ".\n"
    "A failed task is recorded and the run goes on (--on-error stop to stop); "
    "after the run, --resume-failed runs the failed ones again.";

/* The app's own flags, with their targets in s. */
static size_t tl_flags(tl_list *s, mpmap_option *out)
{
    /* clang-format off */
    const mpmap_option flags[] = {
        { .name = "--tasks", .kind = MPMAP_OPT_STRING, .target = &s->tasks_path,
          .metavar = "FILE",
          .help = "one task per line: a shell command, or with --template its argument; empty "
                  "lines and lines starting with # are skipped",
          .flags = MPMAP_OPT_REQUIRED | MPMAP_OPT_NO_FINGERPRINT },
        { .name = "--template", .kind = MPMAP_OPT_STRING, .target = &s->template_text,
          .metavar = "'CMD {}'",
          .help = "command run for each line: {} the line (shell-quoted), {.} without "
                  "extension, {/} basename, {//} dirname, {/.} basename without extension, {#} "
                  "task index; {{ is a literal {" },
        { .name = "--joblog", .kind = MPMAP_OPT_STRING, .target = &s->joblog_flag,
          .metavar = "FILE", .default_text = "OUTPUT.joblog",
          .help = "one tab-separated line per finished task, written as it finishes",
          .flags = MPMAP_OPT_NO_FINGERPRINT },
        { .name = "--retries", .kind = MPMAP_OPT_INT64, .target = &s->retries, .metavar = "N",
          .help = "run a failed task up to N more times (at once, on the same rank)",
          .default_text = "0", .min = 0, .max = 1000 },
        { .name = "--timeout", .kind = MPMAP_OPT_DOUBLE, .target = &s->timeout, .metavar = "S",
          .help = "seconds one run of a command may take before it is killed (status -2)",
          .default_text = "none", .min = 0, .max = INFINITY, .flags = MPMAP_OPT_EXCLUSIVE_MIN,
          .seen = &s->timeout_seen },
        { .name = "--resume-failed", .kind = MPMAP_OPT_FLAG, .target = &s->resume_failed,
          .help = "run again only the tasks whose /status is not 0 in the finished OUTPUT, "
                  "then replace it" },
        { .name = "--rank0", .kind = MPMAP_OPT_CHOICE, .target = &s->rank0,
          .help = "rank 0 runs commands too (tasks) or only hands out work (serve: no rank waits "
                  "for work while rank 0 runs a long command); auto: serve from 4 ranks up",
          .default_text = "auto", .choices = rank0_names, .flags = MPMAP_OPT_NO_FINGERPRINT },
    };
    _Static_assert(sizeof flags / sizeof flags[0] <= TL_MAX_FLAGS, "raise TL_MAX_FLAGS");
    memcpy(out, flags, sizeof flags);
    return sizeof flags / sizeof flags[0];
}

int main(int argc, char **argv)
{
    tl_list s = { .joblog_fd = -1, .tails_fd = -1 };
    mpmap_option options[TL_MAX_FLAGS];
    size_t noptions = tl_flags(&s, options);
    mpmap_app_def def = {
        .name = "task_list", .default_output = "task_list.h5", .summary = tl_summary,
        .options = options, .noptions = noptions, .context = &s, .problem = &s.problem,
        .check = tl_check, .setup = tl_setup, .map = tl_map, .task_name = tl_task_name,
        .finish = tl_finish, .print = tl_print, .cleanup = tl_cleanup,
        .on_error_default = "continue"
    };
    return mpmap_app_main(argc, argv, &def);
}
/* clang-format on */
