/*
 * mpmap_app: the app kit. An app is a definition — its options, a setup
 * step that builds the problem, the fields of one task's result, the map
 * function and a summary — and mpmap_app_main does everything else, the
 * same way for every app:
 *
 *   the shared flags (--schedule --chunk --output --force --resume
 *   --on-error --quiet --progress-interval --help --version), validation on
 *   rank 0 with one error line and exit 2 on every rank, the output's life
 *   (lock, OUT.partial, OUT.ckpt, commit or abort), one HDF5 dataset per
 *   field with dimension scales, streamed writes, provenance attributes,
 *   /trace, checkpoint and --resume fingerprints, progress, and exit codes:
 *
 *     0 success   1 the run failed   2 bad input   3 interrupted (--resume)
 *
 * A complete app:
 *
 *     typedef struct { mpmap_app_problem problem; double zeta; ... } sweep;
 *
 *     static int setup(mpmap_app *app, void *ctx) {
 *         sweep *s = ctx;
 *         s->problem.ntasks = 400;
 *         ... fields, coordinates ...
 *         return 0;
 *     }
 *     int main(int argc, char **argv) {
 *         sweep s = { .zeta = 0.1 };
 *         mpmap_option options[] = { { .name = "--zeta", ... .target = &s.zeta } };
 *         mpmap_app_def def = { .name = "damped", .summary = "...",
 *                               .options = options, .noptions = 1,
 *                               .problem = &s.problem, .setup = setup,
 *                               .map = peak, .context = &s };
 *         return mpmap_app_main(argc, argv, &def);
 *     }
 *
 * The kit calls MPI_Init and MPI_Finalize itself (mpmap_app_main is the
 * whole program); the core library (mpmap.h) never does.
 */
#ifndef MPMAP_APP_H
#define MPMAP_APP_H

#include "mpmap.h"
#include "mpmap_cli.h"
#include "mpmap_h5.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exit codes of every app, the same on every rank. */
enum {
    MPMAP_APP_OK = 0,
    MPMAP_APP_FAILED = 1,     /* a task failed, an I/O error */
    MPMAP_APP_USAGE = 2,      /* bad input; nothing written */
    MPMAP_APP_INTERRUPTED = 3 /* SIGTERM/SIGINT; completed work saved, rerun with --resume */
};

#define MPMAP_APP_MAX_DIMS 8 /* axes of a field or a task grid (a dataset: 8 in all) */
#define MPMAP_APP_MAX_FIELDS 16
#define MPMAP_APP_MAX_COORDS 16

/* The running app: rank, communicator, parsed shared flags, output. */
typedef struct mpmap_app mpmap_app;

/*
 * One field of a task's result, stored as the dataset /NAME with the task
 * axis first and the field's own axes after it. A task's record is its
 * fields one after the other, in the order given, each `count` elements of
 * `type` (count = the product of shape[0..rank-1], 1 for a scalar):
 * mpmap_app_problem.offset[i] says where field i starts in the record.
 */
typedef struct mpmap_app_field {
    const char *name;
    mpmap_datatype type;
    int rank; /* 0: one number per task */
    int64_t shape[MPMAP_APP_MAX_DIMS];
    const char *dims[MPMAP_APP_MAX_DIMS]; /* axis names; a coordinate of the same
                                             name is used, else 0..n-1 is written */
    const char *units;                    /* CF attributes, optional */
    const char *long_name;
    /* rank 0 keeps the whole field in memory for the summary:
     * mpmap_app_field_data */
    bool keep;
} mpmap_app_field;

/* A 1-D coordinate: the task axis (named problem.task_dim) or a field's axis. */
typedef struct mpmap_app_coord {
    const char *name;
    mpmap_datatype type; /* MPMAP_DOUBLE or MPMAP_INT64 */
    int64_t n;
    const void *values; /* n values, or NULL for 0..n-1 */
    const char *units;
    const char *long_name;
    const char *const *strings; /* instead of values: n labels (field names...) */
} mpmap_app_coord;

/*
 * What setup fills in (on every rank, identically except where noted).
 * The kit fills record_size and offset after setup returns.
 */
typedef struct mpmap_app_problem {
    int64_t ntasks;
    const char *task_dim; /* name of the task axis; default "task" */
    /* A grid of tasks instead of one axis: task_rank > 1 axes, the first
     * slowest (task t is row-major position t), product = ntasks. Every
     * field's dataset then has these axes first. */
    int task_rank;
    int64_t task_shape[MPMAP_APP_MAX_DIMS];
    const char *task_dims[MPMAP_APP_MAX_DIMS];
    /* Write /status (int32, the task axes): 0 for a task that succeeded,
     * else the code its map reported (--on-error continue); the floating
     * fields of a failed task hold NaN. status_codes documents the codes
     * (the dataset's 'codes' attribute). */
    bool status;
    const char *status_codes;
    mpmap_app_field fields[MPMAP_APP_MAX_FIELDS];
    int nfields;
    mpmap_app_coord coords[MPMAP_APP_MAX_COORDS];
    int ncoords;
    /* What else names the job for --resume besides the options' values:
     * the input data's shape and hash, effective defaults. Optional. */
    char fingerprint[512];
    int64_t max_chunk; /* cap on a chunk (0: the library's own) */
    /* Element-wise reduction over whole records, in task order (mpmap.h);
     * the result lands in `reduction` on every rank. */
    mpmap_reduce_op reduce_op;
    mpmap_datatype reduce_type;
    mpmap_reduce_fn reduce_fn;
    void *reduction;
    /* filled by the kit */
    size_t record_size;
    size_t offset[MPMAP_APP_MAX_FIELDS];
} mpmap_app_problem;

/* The app itself. Everything but name, problem, setup and map is optional. */
typedef struct mpmap_app_def {
    const char *name;           /* program name, in messages and provenance */
    const char *summary;        /* one line for --help */
    const char *default_output; /* default NAME.h5 */
    mpmap_option *options;      /* the app's own flags; targets point into context */
    size_t noptions;
    void *context;              /* the app's state, passed to every callback */
    mpmap_app_problem *problem; /* inside context, usually */

    /* Rank 0, after parsing: checks that need no data ("--tasks exceeds
     * --samples"). Returns 0 or mpmap_app_usage(...). */
    int (*check)(mpmap_app *app, void *context);
    /* Every rank, collective: reads inputs, fills *problem. Returns 0 or an
     * exit code set through mpmap_app_usage / mpmap_app_failure (on any
     * rank: the first failing rank's message is printed once). */
    int (*setup)(mpmap_app *app, void *context);
    mpmap_map_fn map;
    /* Rank 0, optional: told of each failed task under --on-error continue. */
    void (*task_failed)(mpmap_app *app, const mpmap_task_error *err, void *context);
    /* --help's text for the default of --on-error, when setup chooses it
     * by mode (mpmap_app_on_error_given); default "stop". */
    const char *on_error_default;
    /* What a task is in the run summary ("queries"); default "tasks". */
    const char *task_noun;
    /* Optional: names task t in messages ("point 7 (a=1, b=0.5)") instead
     * of "task 7", e.g. when a failing task stops the run. */
    void (*task_name)(int64_t task, char *buf, size_t len, void *context);
    /* Rank 0, after a successful run, before the output is committed:
     * writes summary attributes (mpmap_app_h5). Returns 0 or non-zero when
     * writing failed. */
    int (*finish)(mpmap_app *app, const mpmap_report *report, void *context);
    /* Rank 0, after the commit, unless --quiet: the summary lines on stdout
     * (the kit adds the ranks/schedule/time line and "wrote OUT"). */
    void (*print)(mpmap_app *app, const mpmap_report *report, void *context);
    /* Every rank, last: frees what setup allocated. */
    void (*cleanup)(void *context);
} mpmap_app_def;

/* The whole program: returns the exit code for main. */
int mpmap_app_main(int argc, char **argv, const mpmap_app_def *def);

/* Sets the error of check/setup: "NAME: message" is printed once by the
 * kit. Return their value from check or setup. */
int mpmap_app_usage(mpmap_app *app, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int mpmap_app_failure(mpmap_app *app, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int mpmap_app_rank(const mpmap_app *app);
int mpmap_app_size(const mpmap_app *app);
MPI_Comm mpmap_app_comm(const mpmap_app *app);
/* The parsed shared flags (output path, schedule, --quiet, ...). */
const mpmap_cli_common *mpmap_app_common(const mpmap_app *app);
/* From check (rank 0, before the output is looked at): how to treat an
 * existing output, in place of what --resume and --force said; every rank
 * sees the result in mpmap_app_common after check. For an app
 * whose own flag implies one of them, e.g. a rerun of the failed tasks
 * that rebuilds a finished output (the old file stays until the new one is
 * committed). */
void mpmap_app_set_output_policy(mpmap_app *app, bool resume, bool force);
/* The run's configuration; setup may change max_chunk-style tuning. */
mpmap_config *mpmap_app_config(mpmap_app *app);
/* Whether --on-error was given, for apps whose default depends on the mode
 * (setup then sets mpmap_app_config(app)->on_error). */
bool mpmap_app_on_error_given(const mpmap_app *app);
/* Rank 0, in finish: the open output file, for attributes. */
mpmap_h5 *mpmap_app_h5(mpmap_app *app);
/* Rank 0, in finish and print: a field declared with keep (ntasks x count
 * elements in task order), or NULL. */
const void *mpmap_app_field_data(const mpmap_app *app, const char *name);

/* Rank 0, in finish and print: tasks that failed (--on-error continue). */
int64_t mpmap_app_failed_tasks(const mpmap_app *app);

/* Rank 0, in finish: root attributes as numbers or text (0 or an error). */
int mpmap_app_attr_double(mpmap_app *app, const char *name, double value);
int mpmap_app_attr_int64(mpmap_app *app, const char *name, int64_t value);
int mpmap_app_attr_string(mpmap_app *app, const char *name, const char *value);

/*
 * A read-only array of doubles shared by the ranks of a node (MPI-3 shared
 * memory): one copy per node instead of one per rank. Collective. The node's
 * first rank fills it (node_leader), then mpmap_app_shared_publish makes it
 * visible to the node; from_root copies rank 0's contents to every node.
 */
typedef struct mpmap_app_shared mpmap_app_shared;
int mpmap_app_shared_alloc(mpmap_app *app, int64_t count, mpmap_app_shared **out);
double *mpmap_app_shared_data(mpmap_app_shared *s);
bool mpmap_app_shared_leader(const mpmap_app_shared *s);
void mpmap_app_shared_publish(mpmap_app *app, mpmap_app_shared *s, bool from_root);
void mpmap_app_shared_free(mpmap_app_shared *s);
/* Collective: reads FILE.h5:/DATASET (n x d, float; 1-D is n x 1) on rank 0
 * into a node-shared array. 0 or MPMAP_APP_USAGE with the message set. */
int mpmap_app_load_matrix(mpmap_app *app, const char *flag, const char *spec,
                          mpmap_app_shared **out, int64_t *rows, int64_t *cols);

/*
 * Collective: an app's input matrix, one copy per node: FILE.h5:/DATASET
 * read by rank 0 when spec is given, else rows x cols values drawn by each
 * node's first rank with fill(seed, 0, rows, cols, data) — e.g.
 * mpmap_rng_rows_normal, whose row i is random stream i, so the data never
 * depends on the rank count. 0, or an exit code with the message set
 * ("FLAG: ... do not fit in memory", or the file's problem).
 */
typedef void (*mpmap_app_fill_fn)(uint64_t seed, uint64_t first_row, size_t rows, size_t cols,
                                  double *data);
int mpmap_app_input_matrix(mpmap_app *app, const char *flag, const char *spec,
                           mpmap_app_fill_fn fill, uint64_t seed, int64_t rows, int64_t cols,
                           mpmap_app_shared **out, int64_t *out_rows, int64_t *out_cols);

/* Whether count elements of size bytes could fit in this machine's memory. */
bool mpmap_app_fits_in_memory(int64_t count, size_t size);
/* 64-bit FNV-1a of a byte range: names input data in fingerprints. */
uint64_t mpmap_app_hash(const void *data, size_t n);

/*
 * Setup, collective: names an input matrix in problem->fingerprint,
 * appending "LABEL=ROWSxCOLS:HASH" (after a space when it holds text
 * already), so --resume refuses other data behind the same flags. Rank 0
 * hashes its copy and sends the hash, so the other ranks need not read the
 * data once more. 0, or -1 when the fingerprint is full.
 */
int mpmap_app_fingerprint_matrix(mpmap_app *app, mpmap_app_problem *problem, const char *label,
                                 const double *data, int64_t rows, int64_t cols);

/*
 * Setup: the points given by a repeatable flag of comma-separated numbers
 * ("--point 1,2.5"), as an m x cols matrix (malloc'd, *out; the caller
 * frees it); no value given is one point, the origin. 0, or
 * MPMAP_APP_USAGE with "FLAG: expected ..." naming the bad value
 * (MPMAP_APP_FAILED when out of memory).
 */
int mpmap_app_points(mpmap_app *app, const char *flag, const mpmap_cli_strings *specs, int64_t cols,
                     double **out, int64_t *m);

/* The count values of a range flag (--widths A:B:K), malloc'd for a
 * coordinate; NULL when out of memory. */
double *mpmap_app_range_values(const mpmap_cli_range *range);

/*
 * Setup: appends one axis to the task grid, the first added varying
 * slowest, with its coordinate (coord->name names the axis), and sets
 * problem->ntasks to the grid's size. One axis is the task axis; more make a
 * grid (task_rank). 0, or MPMAP_APP_USAGE with the message set beyond
 * MPMAP_APP_MAX_DIMS axes or MPMAP_APP_MAX_COORDS coordinates.
 */
int mpmap_app_task_axis(mpmap_app *app, mpmap_app_problem *problem, const mpmap_app_coord *coord);

/*
 * Setup, for many cheap tasks: caps problem->max_chunk so that every rank
 * gets about chunks_per_rank chunks — results then reach rank 0, the output
 * and the checkpoint in short pieces, and the last chunks are small enough
 * to even the finish (guided's first chunk is otherwise half the tasks at
 * -n 2) — and never above the runtime's own cap of
 * MPMAP_MAX_CHUNK_AUTO_BYTES of records of record_bytes each. Results do not
 * depend on chunking, so this only changes the balance.
 */
void mpmap_app_spread_chunks(const mpmap_app *app, mpmap_app_problem *problem,
                             int64_t chunks_per_rank, size_t record_bytes);

/*
 * Rank 0, in finish: root attributes from a table, written in order; the
 * first failure stops and is returned. An entry without a name is skipped,
 * so a table can hold attributes only some runs have:
 *
 *     const mpmap_app_attr attrs[] = {
 *         MPMAP_APP_INT64("k", s->k),
 *         s->model ? MPMAP_APP_STRING("model", s->model) : MPMAP_APP_NO_ATTR,
 *     };
 *     return mpmap_app_attrs(app, attrs, sizeof attrs / sizeof attrs[0]);
 */
typedef enum mpmap_app_attr_kind {
    MPMAP_APP_ATTR_INT64 = 0,
    MPMAP_APP_ATTR_DOUBLE,
    MPMAP_APP_ATTR_STRING
} mpmap_app_attr_kind;
typedef struct mpmap_app_attr {
    const char *name; /* NULL: skipped */
    mpmap_app_attr_kind kind;
    int64_t int64_value;
    double double_value;
    const char *string_value;
} mpmap_app_attr;
#define MPMAP_APP_INT64(n, v)                                                                      \
    ((mpmap_app_attr){ .name = (n), .kind = MPMAP_APP_ATTR_INT64, .int64_value = (v) })
#define MPMAP_APP_DOUBLE(n, v)                                                                     \
    ((mpmap_app_attr){ .name = (n), .kind = MPMAP_APP_ATTR_DOUBLE, .double_value = (v) })
#define MPMAP_APP_STRING(n, v)                                                                     \
    ((mpmap_app_attr){ .name = (n), .kind = MPMAP_APP_ATTR_STRING, .string_value = (v) })
#define MPMAP_APP_NO_ATTR ((mpmap_app_attr){ .name = NULL })
int mpmap_app_attrs(mpmap_app *app, const mpmap_app_attr *attrs, size_t n);

/*
 * Rank 0, in finish: a whole dataset beside the fields (query points, a
 * reference), described like a field but with all of its axes: /NAME of
 * `rank` axes of sizes shape[k] named dims[k] (a coordinate of that name, or
 * an index 0..n-1), with units and long_name when set; `keep` is ignored.
 * 0 or non-zero (the output's error says why).
 */
int mpmap_app_write_array(mpmap_app *app, const mpmap_app_field *array, const void *data);

#ifdef __cplusplus
}
#endif

#endif /* MPMAP_APP_H */
