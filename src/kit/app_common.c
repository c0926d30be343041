/* Shared plumbing of the mpmap apps; see app_common.h. */
#define _POSIX_C_SOURCE 200809L
#include "app_common.h"
#include "legs.h"
#include "mpi_launch.h"
#include "progress.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The one piece of process-wide state: a signal handler can only reach a
 * static flag. The library never touches it; the app passes its address
 * in mpmap_config.interrupt. */
static volatile sig_atomic_t app_interrupted;

static void on_signal(int signo)
{
    (void)signo;
    app_interrupted = 1;
}

/*
 * Whether progress should be a bar (someone watches a terminal) or plain
 * lines (a log file). Open MPI's mpirun relays rank output through pipes, so
 * a rank's stderr is never a terminal there; what counts is where mpirun's
 * own stderr goes, which on Linux /proc shows for the parent process.
 * MPMAP_PROGRESS=bar|lines overrides the guess.
 */
static bool progress_on_terminal(void)
{
    const char *forced = getenv("MPMAP_PROGRESS");
    if (forced && strcmp(forced, "bar") == 0)
        return true;
    if (forced && strcmp(forced, "lines") == 0)
        return false;
    if (isatty(STDERR_FILENO))
        return true;
    char link[64], target[256];
    snprintf(link, sizeof link, "/proc/%ld/fd/2", (long)getppid());
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0)
        return false;
    target[n] = '\0';
    return strncmp(target, "/dev/pts/", 9) == 0 || strncmp(target, "/dev/tty", 8) == 0;
}

static void install_signal_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

void app_init(app *a, const char *name, int *argc, char ***argv)
{
    memset(a, 0, sizeof *a);
    /* Before MPI_Init too: a SIGTERM that lands while MPI starts up must
     * not kill the rank without a word. Again after it, in case the MPI
     * library installed handlers of its own. */
    install_signal_handlers();
    mpi_launch_prepare();
    MPI_Init(argc, argv);
    install_signal_handlers();
    a->name = name;
    a->argc = *argc;
    a->argv = *argv;
    a->comm = MPI_COMM_WORLD;
    MPI_Comm_rank(a->comm, &a->rank);
    MPI_Comm_size(a->comm, &a->size);
    mpmap_cli_common_init(&a->common);
    mpmap_config_init(&a->config);
    a->stderr_is_tty = progress_on_terminal();
    a->progress.out = stderr;
}

void app_add_option(app *a, mpmap_option option)
{
    if (a->noptions + MPMAP_CLI_COMMON_COUNT < APP_MAX_OPTIONS)
        a->options[a->noptions++] = option;
}

void app_error(const app *a, const char *fmt, ...)
{
    if (a->rank != 0)
        return;
    va_list args;
    va_start(args, fmt);
    fprintf(stderr, "%s: ", a->name);
    vfprintf(stderr, fmt, args);
    fputc('\n', stderr);
    va_end(args);
    fflush(stderr);
}

int app_parse(app *a, const char *default_output, const char *summary)
{
    a->common.output = default_output;
    int n = mpmap_cli_common_options(&a->common, a->options + a->noptions,
                                     APP_MAX_OPTIONS - a->noptions);
    for (int i = 0; i < n; i++)
        if (strcmp(a->options[a->noptions + i].name, "--progress-interval") == 0)
            a->options[a->noptions + i].seen = &a->progress_interval_seen;
    a->noptions += (size_t)n;
    /* The apps pick the interval by where stderr goes (see below). */
    snprintf(a->common.interval_default, sizeof a->common.interval_default,
             "0.25 on a tty, 10 otherwise");

    char err[APP_MESSAGE_MAX];
    int rc = mpmap_cli_parse(a->name, a->options, a->noptions, a->argc, a->argv, err, sizeof err);
    if (rc == MPMAP_CLI_HELP) {
        if (a->rank == 0)
            mpmap_cli_help(stdout, a->name, summary, a->options, a->noptions);
        return APP_EXIT_OK;
    }
    if (rc == MPMAP_CLI_VERSION) {
        if (a->rank == 0)
            mpmap_cli_version(stdout, a->name);
        return APP_EXIT_OK;
    }
    if (rc == MPMAP_OK)
        rc = mpmap_cli_common_apply(a->name, &a->common, &a->config, err, sizeof err);
    if (rc != MPMAP_OK) {
        if (a->rank == 0) {
            fprintf(stderr, "%s\n", err);
            fflush(stderr);
        }
        return APP_EXIT_USAGE;
    }
    /* Batch logs get a line every 10 s unless asked otherwise; a terminal
     * gets a bar refreshed a few times a second. */
    if (!a->progress_interval_seen)
        a->config.progress_interval = a->stderr_is_tty ? 0.25 : 10.0;
    /* From here on: an app whose setup runs jobs of its own (word_count's
     * counting) stops on SIGTERM as promptly as the main run does. */
    a->config.interrupt = &app_interrupted;
    return -1;
}

int app_agree(app *a, int code, const char *message)
{
    struct {
        int code;
        char message[APP_MESSAGE_MAX];
    } verdict = { code, "" };
    if (a->rank == 0 && message)
        snprintf(verdict.message, sizeof verdict.message, "%s", message);
    MPI_Bcast(&verdict, (int)sizeof verdict, MPI_BYTE, 0, a->comm);
    if (verdict.code != 0 && a->rank == 0 && verdict.message[0]) {
        fprintf(stderr, "%s: %s\n", a->name, verdict.message);
        fflush(stderr);
    }
    return verdict.code;
}

static void build_paths(app *a, const char *extra)
{
    snprintf(a->checkpoint_path, sizeof a->checkpoint_path, "%s.ckpt", a->common.output);
    char flags[sizeof a->fingerprint - 256];
    if (mpmap_cli_fingerprint(a->options, a->noptions, a->argc, a->argv, flags, sizeof flags) != 0)
        snprintf(flags, sizeof flags, "?");
    /* Results written in place leave a checkpoint of ranges only: another
     * --write cannot resume it, and the fingerprint says so. */
    bool ranks = a->common.write && strcmp(a->common.write, "ranks") == 0;
    snprintf(a->fingerprint, sizeof a->fingerprint, "%s %s%s%s%s", a->name,
             ranks ? "--write=ranks " : "", flags, extra && *extra ? " " : "", extra ? extra : "");
}

int app_check_output(app *a, const char *extra, char *msg, size_t msglen)
{
    build_paths(a, extra);
    char err[APP_MESSAGE_MAX - 16]; /* room for a "--output: " prefix */
    /* The lock comes first: until it is held, nothing beside the output
     * (OUT.partial, OUT.ckpt) may be looked at, let alone truncated. */
    if (!a->out && mpmap_output_open(a->common.output, &a->out, err, sizeof err) != 0) {
        snprintf(msg, msglen, "--output: %s", err);
        return APP_EXIT_USAGE;
    }
    /* Early, on the flags alone: the parts of the fingerprint that need the
     * data (its hash) are checked again in app_configure. */
    mpmap_output_state state;
    if (mpmap_output_decide(a->out, a->common.force, a->common.resume, a->fingerprint, 0, &state,
                            err, sizeof err) != 0) {
        snprintf(msg, msglen, "%s%s", strncmp(err, "--", 2) == 0 ? "" : "--output: ", err);
        return APP_EXIT_USAGE;
    }
    return 0;
}

void app_configure(app *a, const char *extra)
{
    build_paths(a, extra);
    a->config.checkpoint_path = a->checkpoint_path;
    a->config.fingerprint = a->fingerprint;
    /* Rank 0's is the one read: --resume of a run stopped before OUT.ckpt
     * began (word_count's count, OUT.kckpt) starts it afresh. */
    struct stat st;
    a->config.resume = a->common.resume && (a->rank != 0 || stat(a->checkpoint_path, &st) == 0);
    a->config.interrupt = &app_interrupted;

    /* Rank 0 decides with the whole fingerprint; every rank needs the
     * verdict for its exit code. */
    int verdict = 0;
    if (a->rank == 0 && a->out) {
        char err[APP_MESSAGE_MAX - 16]; /* room for a "--output: " prefix */
        mpmap_output_state state;
        if (mpmap_output_decide(a->out, a->common.force, a->common.resume, a->fingerprint, 1,
                                &state, err, sizeof err) != 0) {
            snprintf(a->output_message, sizeof a->output_message, "%s%s",
                     strncmp(err, "--", 2) == 0 ? "" : "--output: ", err);
            verdict = APP_EXIT_USAGE;
        } else if (state == MPMAP_OUTPUT_COMPLETE) {
            snprintf(a->output_message, sizeof a->output_message,
                     "output '%s' is already complete (same arguments); nothing to do",
                     a->common.output);
            verdict = APP_OUTPUT_COMPLETE;
        }
    }
    MPI_Bcast(&verdict, 1, MPI_INT, 0, a->comm);
    a->output_verdict = verdict;
}

int app_create_output(app *a, char *msg, size_t msglen)
{
    if (a->output_verdict != 0) {
        snprintf(msg, msglen, "%s", a->output_message);
        return a->output_verdict == APP_EXIT_USAGE ? APP_EXIT_USAGE : APP_EXIT_FAILED;
    }
    if (!a->out) {
        /* An app that skipped app_check_output still gets the lock. */
        int code = app_check_output(a, NULL, msg, msglen);
        if (code != 0)
            return code;
    }
    char err[APP_MESSAGE_MAX];
    if (mpmap_output_create(a->out, a->fingerprint, &a->h5, err, sizeof err) != 0) {
        snprintf(msg, msglen, "%s", err);
        return APP_EXIT_FAILED;
    }
    /* A run that starts over has no earlier legs. */
    if (!a->common.resume)
        kit_legs_forget(a->common.output);
    return 0;
}

/* This leg of the run, for provenance (legs.c). */
static kit_leg this_leg(const app *a, const mpmap_report *report)
{
    /* clang-format off */
    return (kit_leg){ .start_time = report->start_time, .wall_time = report->wall_time,
                      .ranks = a->size, .tasks = report->tasks_done - report->tasks_restored };
    /* clang-format on */
}

int app_write_provenance(app *a, const mpmap_report *report, int nextra, const char *const *keys,
                         const char *const *values)
{
    mpmap_h5_provenance p = { .app = a->name,
                              .app_version = MPMAP_VERSION_STRING,
                              .argc = a->argc,
                              .argv = a->argv,
                              .ranks = a->size,
                              .schedule = app_schedule_ran(a, report),
                              .chunk = a->config.chunk,
                              .wall_time = report->wall_time,
                              .start_time = report->start_time,
                              .nextra = nextra,
                              .extra_keys = keys,
                              .extra_values = values };
    int rc = mpmap_h5_write_provenance(a->h5, &p);
    if (rc == 0) {
        kit_leg leg = this_leg(a, report);
        rc = kit_legs_write(a->h5, a->common.output, &leg);
    }
    return rc;
}

int app_trace(const mpmap_trace_entry *entry, void *app_ptr)
{
    app *a = app_ptr;
    return a->h5 ? mpmap_h5_trace_append(a->h5, entry) : 0;
}

void app_job_progress(const mpmap_progress_info *info, void *context)
{
    app_progress(*(app **)context, info);
}

int app_job_trace(const mpmap_trace_entry *entry, void *context)
{
    return app_trace(entry, *(app **)context);
}

uint64_t app_hash_bytes(const void *data, size_t n)
{
    const unsigned char *b = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

void app_progress(app *a, const mpmap_progress_info *info)
{
    if (a->rank != 0 || a->common.quiet)
        return;
    progress_show(&a->progress, a->name, info, a->stderr_is_tty);
}

int app_output_failed(const app *a, char *msg, size_t msglen)
{
    mpmap_output_describe_failure(a->common.output, mpmap_h5_sys_errno(a->h5),
                                  mpmap_h5_error(a->h5), msg, msglen);
    return APP_EXIT_FAILED;
}

const char *app_schedule_ran(const app *a, const mpmap_report *report)
{
    return report && report->schedule[0] ? report->schedule
                                         : mpmap_schedule_name(a->config.schedule);
}

const char *app_schedule_note(const app *a)
{
    return a->config.schedule == MPMAP_SCHEDULE_AUTO ? " (picked by auto)" : "";
}

void app_print_run_summary(const app *a, const mpmap_report *report)
{
    printf("  %d ranks, %s schedule%s, %.3f s (%lld tasks resumed from checkpoint)\n", a->size,
           app_schedule_ran(a, report), app_schedule_note(a), report->wall_time,
           (long long)report->tasks_restored);
    printf("  wrote %s\n", a->common.output);
}

/* Whether the run stopped because the checkpoint itself could not be
 * written (the runtime's message names it): then only the tasks synced to
 * it before are kept, which the message must not overstate. */
static bool checkpoint_failed(const mpmap_report *report)
{
    return strstr(report->message, "checkpoint") != NULL;
}

int app_finish(app *a, int run_status, const mpmap_report *report)
{
    int code = APP_EXIT_OK;
    if (run_status == MPMAP_OK) {
        if (a->rank == 0) {
            char err[APP_MESSAGE_MAX] = "";
            if (mpmap_output_commit(a->out, a->h5, err, sizeof err) != 0) {
                fprintf(stderr, "%s: %s (completed tasks are kept in '%s'; rerun with --resume)\n",
                        a->name, err, a->checkpoint_path);
                fflush(stderr);
                code = APP_EXIT_FAILED;
            } else {
                kit_legs_forget(a->common.output);
            }
            a->h5 = NULL;
        }
    } else {
        /* The next leg continues from the checkpoint: this one is part of
         * the result's history. */
        struct stat st;
        if (a->rank == 0 && stat(a->checkpoint_path, &st) == 0) {
            kit_leg leg = this_leg(a, report);
            kit_legs_append(a->common.output, &leg);
        }
        /* A failed write to the output comes back from the runtime as a
         * failing sink; the output handle knows the real cause. */
        char why[APP_MESSAGE_MAX] = "";
        if (a->rank == 0 && a->h5 && mpmap_h5_error(a->h5)[0])
            app_output_failed(a, why, sizeof why);
        if (a->rank == 0 && a->h5) {
            mpmap_output_abort(a->out, a->h5);
            a->h5 = NULL;
        }
        switch (run_status) {
        case MPMAP_EINTERRUPTED:
            app_error(a, "interrupted: %lld/%lld tasks done; rerun with --resume",
                      (long long)report->tasks_done, (long long)report->tasks_total);
            code = APP_EXIT_INTERRUPTED;
            break;
        case MPMAP_ERESUME:
        case MPMAP_EINVAL:
            app_error(a, "%s", report->message);
            code = APP_EXIT_USAGE;
            break;
        default:
            if (!why[0] && checkpoint_failed(report))
                app_error(a,
                          "%s; the tasks synced to it before are kept, rerun with --resume "
                          "once that is fixed",
                          report->message);
            else
                app_error(a, "%s%s", why[0] ? why : report->message,
                          report->tasks_done > 0
                              ? "; completed tasks are kept in the checkpoint, rerun with --resume"
                              : "");
            code = APP_EXIT_FAILED;
            break;
        }
    }
    /* Every rank leaves with rank 0's verdict (a commit can fail on rank 0 only). */
    MPI_Bcast(&code, 1, MPI_INT, 0, a->comm);
    return code;
}

int app_exit(app *a, int code)
{
    if (a->rank == 0) {
        if (a->h5)
            mpmap_output_abort(a->out, a->h5);
        a->h5 = NULL;
        /* Last: the lock covers OUT.partial and OUT.ckpt until here. */
        mpmap_output_close(a->out);
        a->out = NULL;
    }
    /* The apps report app_create_output's refusal as a failure to create;
     * the verdict of app_configure says what it really was. */
    if (a->output_verdict == APP_OUTPUT_COMPLETE)
        code = APP_EXIT_OK;
    else if (a->output_verdict == APP_EXIT_USAGE && code == APP_EXIT_FAILED)
        code = APP_EXIT_USAGE;
    mpmap_cli_free(a->options, a->noptions);
    MPI_Finalize();
    return code;
}

bool app_fits_in_memory(int64_t count, size_t element_size)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (count < 0 || element_size == 0)
        return false;
    if (pages <= 0 || page <= 0)
        return true; /* unknown: let the allocation decide */
    double bytes = (double)pages * (double)page;
    return (double)count * (double)element_size <= bytes;
}

int app_shared_alloc(app *a, int64_t count, app_shared *s)
{
    memset(s, 0, sizeof *s);
    s->count = count;
    s->window = MPI_WIN_NULL;
    s->node = MPI_COMM_NULL;
    s->leaders = MPI_COMM_NULL;
    /* Every rank computes the same count, so all of them refuse together,
     * before any collective call. */
    if (!app_fits_in_memory(count, sizeof(double)))
        return APP_EXIT_FAILED;
    MPI_Comm_split_type(a->comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &s->node);
    /* A window the node cannot hold must come back as an error, not abort. */
    MPI_Comm_set_errhandler(s->node, MPI_ERRORS_RETURN);
    int node_rank;
    MPI_Comm_rank(s->node, &node_rank);
    s->node_leader = node_rank == 0;
    MPI_Comm_split(a->comm, s->node_leader ? 0 : MPI_UNDEFINED, a->rank, &s->leaders);
    MPI_Aint bytes = s->node_leader ? (MPI_Aint)((size_t)count * sizeof(double)) : 0;
    void *base = NULL;
    int ok = MPI_Win_allocate_shared(bytes, sizeof(double), MPI_INFO_NULL, s->node, &base,
                                     &s->window) == MPI_SUCCESS;
    int all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, a->comm);
    if (!all_ok)
        return APP_EXIT_FAILED;
    MPI_Aint size;
    int unit;
    MPI_Win_shared_query(s->window, 0, &size, &unit, &s->data);
    return 0;
}

void app_shared_publish(app *a, app_shared *s, bool from_root)
{
    if (from_root && s->leaders != MPI_COMM_NULL) {
        /* Rank 0 leads its node and is rank 0 among the leaders. MPI counts are int. */
        const int64_t piece = (int64_t)1 << 26;
        for (int64_t off = 0; off < s->count; off += piece) {
            int64_t n = s->count - off < piece ? s->count - off : piece;
            MPI_Bcast(s->data + off, (int)n, MPI_DOUBLE, 0, s->leaders);
        }
    }
    (void)a;
    /* Writers are done once everyone passed the barrier; the window's
     * memory is coherent on a node after it (unified memory model). */
    MPI_Win_sync(s->window);
    MPI_Barrier(s->node);
    MPI_Win_sync(s->window);
}

void app_shared_free(app_shared *s)
{
    if (s->window != MPI_WIN_NULL)
        MPI_Win_free(&s->window);
    if (s->leaders != MPI_COMM_NULL)
        MPI_Comm_free(&s->leaders);
    if (s->node != MPI_COMM_NULL)
        MPI_Comm_free(&s->node);
    s->data = NULL;
}

int app_load_matrix(app *a, const char *flag, const char *spec, app_shared *out, int64_t *rows,
                    int64_t *cols)
{
    int64_t shape[2] = { 0, 0 };
    int code = 0;
    char err[APP_MESSAGE_MAX] = "";
    double *data = NULL;
    if (a->rank == 0) {
        char why[MPMAP_H5_ERROR_MAX];
        if (mpmap_h5_read_matrix(spec, &data, &shape[0], &shape[1], why, sizeof why) != 0) {
            snprintf(err, sizeof err, "%s: %s", flag, why);
            code = APP_EXIT_USAGE;
        }
    }
    code = app_agree(a, code, err);
    if (code != 0)
        return code;
    MPI_Bcast(shape, 2, MPI_INT64_T, 0, a->comm);
    if (app_shared_alloc(a, shape[0] * shape[1], out) != 0) {
        free(data);
        return app_agree(a, APP_EXIT_FAILED, "not enough shared memory for the input");
    }
    if (a->rank == 0)
        memcpy(out->data, data, (size_t)(shape[0] * shape[1]) * sizeof(double));
    free(data);
    app_shared_publish(a, out, true);
    *rows = shape[0];
    *cols = shape[1];
    return 0;
}
