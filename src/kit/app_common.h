/*
 * What every mpmap app does the same way: MPI start-up, signal handling,
 * flag parsing with the shared flags, validation on rank 0 with one verdict
 * for all ranks, the output file and its checkpoint, provenance, progress
 * lines, and exit codes.
 *
 * Exit codes (the same on every rank):
 *   0  success
 *   1  the run failed (a task failed, an I/O error)
 *   2  bad input: a flag, an input file, an existing output; nothing written
 *   3  interrupted (SIGTERM/SIGINT); completed work is saved, rerun with --resume
 */
#ifndef MPMAP_APP_COMMON_H
#define MPMAP_APP_COMMON_H

#include "mpmap.h"
#include "mpmap_cli.h"
#include "mpmap_h5.h"
#include "mpmap_output.h"
#include "progress.h"

#include <signal.h>
#include <stdbool.h>

enum { APP_EXIT_OK = 0, APP_EXIT_FAILED = 1, APP_EXIT_USAGE = 2, APP_EXIT_INTERRUPTED = 3 };

#define APP_MESSAGE_MAX 2048
/* Not an exit code: the output is already complete with these arguments
 * (app_configure); app_exit turns it into APP_EXIT_OK. */
#define APP_OUTPUT_COMPLETE (-1)
#define APP_MAX_OPTIONS 48

typedef struct app {
    const char *name;
    int argc;
    char **argv;
    int rank, size;
    MPI_Comm comm;

    /* flags */
    mpmap_option options[APP_MAX_OPTIONS];
    size_t noptions;
    mpmap_cli_common common;
    int progress_interval_seen;

    /* derived */
    mpmap_config config;
    char checkpoint_path[4096];
    char fingerprint[8192];

    /* What app_configure decided about the output, on every rank: 0 (go
     * on), APP_EXIT_USAGE (refused) or APP_OUTPUT_COMPLETE. */
    int output_verdict;

    /* rank 0 only */
    mpmap_output *out; /* lock and paths of the output, from app_check_output to app_exit */
    char output_message[APP_MESSAGE_MAX];
    mpmap_h5 *h5;
    bool stderr_is_tty;
    progress_stream progress; /* stderr, where the bar may hold a line open */
} app;

/* Initialises MPI and the app record, installs SIGTERM/SIGINT handlers. */
void app_init(app *a, const char *name, int *argc, char ***argv);

/* Adds one of the app's options to the table (before app_parse). */
void app_add_option(app *a, mpmap_option option);

/*
 * Parses the command line (all ranks, identically). Returns -1 when the app
 * should go on, else an exit code (after --help/--version: 0; bad flags: 2,
 * with the message printed once by rank 0).
 */
int app_parse(app *a, const char *default_output, const char *summary);

/*
 * Shares rank 0's verdict on whatever it validated (input files, values
 * that need data): every rank returns the same code, rank 0 prints the
 * message. ok_code is 0 when rank 0 found nothing wrong.
 */
int app_agree(app *a, int code, const char *message);

/*
 * Rank 0: takes the output's lock (OUT.lock, held until app_exit; a live run
 * on the same output is refused, whatever the flags) and checks the output
 * and the checkpoint beside it against --force/--resume (mpmap_output_decide;
 * only the flags part of the fingerprint when extra is NULL, the rest comes
 * with app_configure). Returns 0 or fills msg and returns APP_EXIT_USAGE.
 * Call on rank 0, then app_agree.
 */
int app_check_output(app *a, const char *extra, char *msg, size_t msglen);

/* Every rank, collective: configuration shared by the app's run (after
 * app_check_output and app_agree). Sets checkpoint path, fingerprint,
 * interrupt flag, and decides with the whole fingerprint whether the output
 * is to be written, refused, or already complete (--resume of a finished
 * run); app_create_output then reports that and app_exit returns its code. */
void app_configure(app *a, const char *extra);

/* Rank 0: creates the temporary output file with the run's fingerprint.
 * Non-zero with msg filled when it cannot, or when app_configure found
 * nothing to write ("already complete") or a refusal; whatever the app then
 * passes to app_exit, app_exit returns the verdict's exit code. */
int app_create_output(app *a, char *msg, size_t msglen);

/* Rank 0, after a failed write to the output: puts "no space left on device
 * while writing 'OUTPUT'" or "cannot write 'OUTPUT': reason" in msg and
 * returns APP_EXIT_FAILED. */
int app_output_failed(const app *a, char *msg, size_t msglen);

/* Rank 0: the summary's last lines, "N ranks, SCHEDULE schedule, T s (R tasks
 * resumed from checkpoint)" and "wrote OUTPUT", on stdout. */
/* The schedule that ran (auto: the one it picked; before the run, the
 * configured one) and " (picked by auto)" or "" to say so in a summary. */
const char *app_schedule_ran(const app *a, const mpmap_report *report);
const char *app_schedule_note(const app *a);
void app_print_run_summary(const app *a, const mpmap_report *report);

/* Rank 0: writes provenance attributes (command line, ranks, schedule...). */
int app_write_provenance(app *a, const mpmap_report *report, int nextra, const char *const *keys,
                         const char *const *values);

/*
 * Finishes the run on every rank: on success (rank 0) commits the output and
 * removes the checkpoint; otherwise removes the partial output, keeps the
 * checkpoint and prints what happened. Returns the exit code.
 */
int app_finish(app *a, int run_status, const mpmap_report *report);

/* Releases the output's lock, finalizes MPI and returns code (or the
 * verdict of app_configure), for `return app_exit(&a, code);`. */
int app_exit(app *a, int code);

/* job.trace adapter: context must be the app. */
int app_trace(const mpmap_trace_entry *entry, void *app_ptr);

/* Progress line or bar on rank 0's stderr unless --quiet. */
void app_progress(app *a, const mpmap_progress_info *info);

/* job.progress and job.trace for an app whose job context is a struct that
 * starts with its `app *` (every app's problem struct does). */
void app_job_progress(const mpmap_progress_info *info, void *context);
int app_job_trace(const mpmap_trace_entry *entry, void *context);

/* 64-bit FNV-1a of a byte range: names input data in resume fingerprints. */
uint64_t app_hash_bytes(const void *data, size_t n);

/* Prints "NAME: message" on rank 0's stderr. */
void app_error(const app *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * A read-only array shared by the ranks of a node (an MPI-3 shared-memory
 * window): one copy per node instead of one per rank, so 8 ranks on a
 * workstation do not hold 8 copies of a large input.
 */
typedef struct app_shared {
    double *data;
    int64_t count;
    MPI_Win window;
    MPI_Comm node;    /* the ranks sharing this copy */
    MPI_Comm leaders; /* one rank per node; MPI_COMM_NULL elsewhere */
    bool node_leader;
} app_shared;

/* Whether count elements could fit in this machine's physical memory: huge
 * requests get a clear "does not fit" instead of an allocation attempt. */
bool app_fits_in_memory(int64_t count, size_t element_size);

/* Collective: allocates count doubles per node. 0 or APP_EXIT_FAILED everywhere. */
int app_shared_alloc(app *a, int64_t count, app_shared *s);
/* Collective: after the node leaders have written their copy (or rank 0
 * has written its copy and broadcast is requested), makes it visible to all.
 * With from_root, rank 0's contents are sent to every other node first. */
void app_shared_publish(app *a, app_shared *s, bool from_root);
void app_shared_free(app_shared *s);

/* Reads FILE.h5:/DATASET on rank 0 into a node-shared array. Returns 0 or
 * APP_EXIT_USAGE on every rank (rank 0 prints the reason). */
int app_load_matrix(app *a, const char *flag, const char *spec, app_shared *out, int64_t *rows,
                    int64_t *cols);

#endif
