/*
 * mpmap: parallel "map" over MPI.
 *
 * A job is N independent tasks, numbered 0..N-1. The caller's map function
 * computes a chunk [begin, end) of them and writes one fixed-size record per
 * task. Rank 0 of the caller's communicator is the manager: it hands out
 * chunks (guided by default), computes chunks itself between hand-outs, and
 * receives every record. Records reach rank 0's sink in ascending task order,
 * exactly once per task, and can be folded into a reduction in that same
 * order, so results are bitwise identical for any rank count and schedule.
 *
 * The library never calls MPI_Init/MPI_Finalize and keeps no global state:
 * everything a run needs is in mpmap_config, mpmap_job and the communicator.
 *
 * Minimal use:
 *
 *     static int square(int64_t begin, int64_t end, void *records,
 *                       mpmap_task_error *err, void *context)
 *     {
 *         double *out = records;
 *         for (int64_t t = begin; t < end; t++)
 *             out[t - begin] = (double)t * (double)t;
 *         return 0;
 *     }
 *
 *     mpmap_config config;
 *     mpmap_config_init(&config);
 *     mpmap_job job = { .ntasks = 1000, .record_size = sizeof(double),
 *                       .map = square, .results = buffer_on_rank0 };
 *     mpmap_report report;
 *     int rc = mpmap_run(MPI_COMM_WORLD, &config, &job, &report);
 *     if (rc != 0) fprintf(stderr, "%s\n", report.message);
 */
#ifndef MPMAP_H
#define MPMAP_H

#include <mpi.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MPMAP_VERSION_MAJOR 0
#define MPMAP_VERSION_MINOR 1
#define MPMAP_VERSION_PATCH 0
#define MPMAP_VERSION_STRING "0.1.0"

/* Longest message a failing task can report, including the terminating NUL. */
#define MPMAP_MESSAGE_MAX 256

/* Error codes: 0 is success, failures are negative. */
enum {
    MPMAP_OK = 0,
    MPMAP_EINVAL = -1,       /* invalid argument or configuration */
    MPMAP_ENOMEM = -2,       /* out of memory */
    MPMAP_EMPI = -3,         /* an MPI call failed */
    MPMAP_ETASK = -4,        /* a map function reported a failed task */
    MPMAP_EINTERRUPTED = -5, /* stopped by the interrupt flag (SIGTERM/SIGINT) */
    MPMAP_EIO = -6,          /* reading or writing a file failed */
    MPMAP_EHDF5 = -7,        /* an HDF5 call failed */
    MPMAP_ERESUME = -8,      /* checkpoint missing, damaged or of another job */
    MPMAP_ECALLBACK = -9     /* a sink, reduce, trace or store callback returned an error */
};

/* Text for an error code; never NULL. */
const char *mpmap_strerror(int code);

/* How chunks of task indices are handed out. */
typedef enum mpmap_schedule {
    MPMAP_SCHEDULE_GUIDED = 0, /* chunk = max(C, ceil(remaining / P)) (default) */
    MPMAP_SCHEDULE_STATIC,     /* one contiguous block per rank, sizes differ by <= 1 */
    MPMAP_SCHEDULE_DYNAMIC,    /* fixed chunks of C tasks, first come first served */
    MPMAP_SCHEDULE_FACTORING,  /* FAC2: batches of P chunks, each batch half of what remains */
    MPMAP_SCHEDULE_AWF_B,      /* adaptive weighted factoring, weights per batch */
    MPMAP_SCHEDULE_AWF_C,      /* adaptive weighted factoring, weights per chunk */
    MPMAP_SCHEDULE_AWF_D,      /* awf-b on whole chunk times (overhead included) */
    MPMAP_SCHEDULE_AWF_E,      /* awf-c on whole chunk times (overhead included) */
    MPMAP_SCHEDULE_AF,         /* adaptive factoring: per-rank mean and variance of task time */
    MPMAP_SCHEDULE_AUTO        /* picks one of the above at the start of the run */
} mpmap_schedule;

/* Parses a schedule's name (see mpmap_schedule_names: "guided", "static",
 * "dynamic", "factoring", "awf-b", "awf-c", "awf-d", "awf-e", "af",
 * "auto"); returns 0 or MPMAP_EINVAL. */
int mpmap_schedule_from_name(const char *name, mpmap_schedule *out);
const char *mpmap_schedule_name(mpmap_schedule schedule);
/* Every schedule's name, in mpmap_schedule order, NULL-terminated (for
 * flag parsers and help texts). */
const char *const *mpmap_schedule_names(void);
/* One line saying how the schedule sizes its chunks; "" for an unknown one. */
const char *mpmap_schedule_help(mpmap_schedule schedule);

/* With max_chunk 0 a chunk holds at most about this many bytes of records. */
#define MPMAP_MAX_CHUNK_AUTO_BYTES ((size_t)4 << 20)

/*
 * The rules for mpmap_config.chunk and .max_chunk, checked in one place:
 * chunk >= 1 (0 is taken as 1), max_chunk >= 0 (0 = automatic, about
 * MPMAP_MAX_CHUNK_AUTO_BYTES of records). A max_chunk below chunk is not an
 * error: chunk wins. Returns 0, or MPMAP_EINVAL with a one-line reason
 * naming the setting in msg (len bytes; msg may be NULL). mpmap_run applies
 * the same check.
 */
int mpmap_chunk_validate(int64_t chunk, int64_t max_chunk, char *msg, size_t len);

/* What happens when a task fails. */
typedef enum mpmap_on_error {
    MPMAP_ON_ERROR_STOP = 0, /* stop handing out work; every rank returns MPMAP_ETASK */
    MPMAP_ON_ERROR_CONTINUE  /* record the failure in the task's status and go on */
} mpmap_on_error;

/* Filled by a map function that fails; see mpmap_task_fail. */
typedef struct mpmap_task_error {
    int64_t task;                    /* index of the failing task */
    int code;                        /* non-zero status stored for the task */
    char message[MPMAP_MESSAGE_MAX]; /* one line, no trailing newline */
} mpmap_task_error;

/*
 * Records that `task` failed with a printf-style message and returns
 * MPMAP_ETASK, so a map function can `return mpmap_task_fail(err, t, ...)`.
 * Tasks before `task` in the chunk must have their records written: they
 * count as done. Tasks after it are not done (they are re-run under
 * MPMAP_ON_ERROR_CONTINUE, and left for --resume under MPMAP_ON_ERROR_STOP).
 */
int mpmap_task_fail(mpmap_task_error *err, int64_t task, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * The user's work: compute tasks [begin, end) and write the record of task t
 * at (char *)records + (t - begin) * record_size. Return 0, or the value of
 * mpmap_task_fail. Any rank may be given any chunk, and a chunk may be split
 * into smaller calls, so the record of a task must depend only on the task.
 */
typedef int (*mpmap_map_fn)(int64_t begin, int64_t end, void *records, mpmap_task_error *err,
                            void *context);

/*
 * Rank 0 only: receives records [begin, end) in ascending task order, each
 * task exactly once (tasks restored from a checkpoint included). status is
 * NULL when every task in the range succeeded, else one code per task (0 =
 * ok). records is NULL when job.store keeps them on the ranks. A non-zero
 * return stops the run with MPMAP_ECALLBACK.
 */
typedef int (*mpmap_sink_fn)(int64_t begin, int64_t end, const void *records, const int32_t *status,
                             void *context);

/* Element-wise reduction over the records of all successful tasks. */
typedef enum mpmap_reduce_op {
    MPMAP_REDUCE_NONE = 0,
    MPMAP_REDUCE_SUM,
    MPMAP_REDUCE_MIN,
    MPMAP_REDUCE_MAX,
    MPMAP_REDUCE_USER /* job.reduce_fn folds one record into the accumulator */
} mpmap_reduce_op;

typedef enum mpmap_datatype { MPMAP_DOUBLE = 0, MPMAP_INT64, MPMAP_INT32 } mpmap_datatype;

/* Folds one record into `accumulator` (record_size bytes). */
typedef void (*mpmap_reduce_fn)(const void *record, void *accumulator, void *context);

/* One handed-out chunk as it ran; times are seconds since the run started. */
typedef struct mpmap_trace_entry {
    int64_t begin;
    int64_t end;
    int32_t rank;
    double start;
    double finish;
} mpmap_trace_entry;

typedef int (*mpmap_trace_fn)(const mpmap_trace_entry *entry, void *context);

/* Progress reports from rank 0 while the run goes on. */
typedef struct mpmap_progress_info {
    int64_t done;     /* tasks done, restored ones included */
    int64_t total;    /* ntasks */
    int64_t restored; /* tasks taken from the checkpoint */
    double elapsed;   /* seconds since the run started */
    double rate;      /* tasks per second computed in this run */
    double eta;       /* seconds left at that rate, or -1 when unknown */
} mpmap_progress_info;

typedef void (*mpmap_progress_fn)(const mpmap_progress_info *info, void *context);

/* The work. Fields marked "rank 0" are only read on rank 0. */
typedef struct mpmap_job {
    int64_t ntasks;     /* number of tasks, >= 0 */
    size_t record_size; /* bytes per task record; 0 when tasks return nothing */
    mpmap_map_fn map;   /* required, on every rank */
    void *context;      /* passed to every callback */

    mpmap_sink_fn sink; /* rank 0, optional: streamed ordered records */
    void *results;      /* rank 0, optional: ntasks * record_size bytes, filled in order */
    int32_t *status;    /* rank 0, optional: ntasks codes (0 = ok), filled in order */

    mpmap_reduce_op reduce_op;  /* element-wise over records, in task order on rank 0 */
    mpmap_datatype reduce_type; /* element type for SUM/MIN/MAX */
    mpmap_reduce_fn reduce_fn;  /* for MPMAP_REDUCE_USER */
    void *reduction;            /* record_size bytes: in = initial value (USER only),
                                   out = result; filled on every rank */

    mpmap_trace_fn trace; /* rank 0, optional: one call per chunk */
    /* rank 0, optional: told of each failed task under MPMAP_ON_ERROR_CONTINUE */
    void (*task_failed)(const mpmap_task_error *err, void *context);
    mpmap_progress_fn progress; /* rank 0, optional: every config.progress_interval s */
    /* rank 0, optional: told once, before any work, of something the user
     * should know that is not an error: a resumed checkpoint damaged or torn
     * part-way ("checkpoint 'X' is damaged after 272 of 564 tasks (byte
     * 8123); the other 292 tasks will be recomputed"). message is one line
     * without a trailing newline, valid during the call. The library itself
     * never prints. */
    void (*notice)(const char *message, void *context);
    /* rank 0, optional: told once, the moment the run starts to stop early
     * (interrupted, a task failed under MPMAP_ON_ERROR_STOP, a callback or
     * the checkpoint failed), with the status mpmap_run will return. The
     * run then only collects what the ranks have in hand, which a dead rank
     * never sends: an output that will not be committed is best given up
     * here, while mpirun's grace time before SIGKILL still runs. Results
     * may still reach the sink after it. */
    void (*stopping)(int status, void *context);
    /* Every rank, optional: records stay on the rank that computed them.
     * That rank calls store with the records of tasks [begin, end), all of
     * which succeeded (a failed task's record is never stored), before it
     * reports the range to rank 0; only ranges and statuses travel. Rank
     * 0's sink then gets records == NULL (status as usual), results and
     * reductions are refused (MPMAP_EINVAL), and a checkpoint logs ranges
     * only. With store_sync, store need not make the records durable (see
     * there); without it a range counts as done in the checkpoint once
     * reported, so with a checkpoint store must have made the records
     * durable when it returns. A non-zero return stops the run with
     * MPMAP_ECALLBACK; message (size MPMAP_MESSAGE_MAX, "" on entry) may
     * say why, in one line. Set it on every rank or on none. */
    int (*store)(int64_t begin, int64_t end, const void *records, char *message, void *context);
    /* Every rank, optional with store: makes every record this rank has
     * stored so far durable (e.g. fdatasync). With a checkpoint, the
     * runtime calls it at most about every config.checkpoint_interval
     * seconds on each rank, when the rank stops early, and once more when
     * its part of the run ends; a stored range enters the checkpoint only
     * once a store_sync after it succeeded, so store itself need not sync
     * (one sync per interval instead of one per range). A run stopped hard
     * may lose from the checkpoint the ranges stored since the last sync:
     * they are recomputed on resume. Without a checkpoint it is never
     * called.
     * Non-zero stops the run with MPMAP_ECALLBACK (message as for store).
     * Set it on every rank or on none. */
    int (*store_sync)(char *message, void *context);
} mpmap_job;

/* How chunks travel from rank 0 to the ranks (mpmap_config.dispatch). */
typedef enum mpmap_dispatch {
    MPMAP_DISPATCH_AUTO = 0, /* the library picks (today: flat) */
    MPMAP_DISPATCH_FLAT,     /* rank 0 serves every rank directly */
    MPMAP_DISPATCH_NODES     /* one sub-manager per node (other than rank 0's) relays
                                chunks and results for the ranks of its node */
} mpmap_dispatch;

/* How to run it. Start from mpmap_config_init and change what you need. */
typedef struct mpmap_config {
    mpmap_schedule schedule; /* default MPMAP_SCHEDULE_GUIDED */
    int64_t chunk;           /* minimum (guided, factoring) or fixed (dynamic) chunk; default 1 */
    int64_t max_chunk;       /* upper bound on a chunk; 0 = auto (about 4 MiB of records) */
    int prefetch;            /* chunks a worker holds so it never waits; default 2 */
    int manager_computes;    /* rank 0 runs tasks between hand-outs; default 1 */
    mpmap_on_error on_error; /* default MPMAP_ON_ERROR_STOP */

    /* Checkpointing: completed chunks are appended to this file as they
     * arrive and synced at least every checkpoint_interval seconds. NULL =
     * no checkpoint. With resume != 0 the file is read first and only the
     * missing tasks are computed. The fingerprint names the job (e.g. the
     * app and its arguments); resuming with another fingerprint fails with
     * MPMAP_ERESUME. The file is left in place when the run ends, whatever
     * the outcome: remove it once the results are safely stored. */
    const char *checkpoint_path;
    const char *fingerprint;
    int resume;
    double checkpoint_interval; /* default 2 s; also how often a rank working on
                                   a long chunk sends back what it has done */

    /* Polled between tasks on every rank; when non-zero the run stops
     * handing out work, saves what is done and returns MPMAP_EINTERRUPTED.
     * Point it at a flag set by your SIGTERM/SIGINT handler. */
    const volatile sig_atomic_t *interrupt;

    double progress_interval; /* seconds between job.progress calls; default 1 */

    /* Default MPMAP_DISPATCH_AUTO. The environment variable
     * MPMAP_DISPATCH=flat|nodes on rank 0 overrides it. With NODES, the
     * lowest rank of each node other than rank 0's computes nothing and
     * serves its node; nodes are MPI's shared-memory groups, or, for tests
     * on one machine, MPMAP_NODE_SIZE=k groups consecutive ranks into fake
     * nodes of k. Results are the same bits either way. */
    mpmap_dispatch dispatch;
} mpmap_config;

void mpmap_config_init(mpmap_config *config);

/*
 * Why two job fingerprints (mpmap_config.fingerprint) differ, for a message
 * that refuses to resume another job. For fingerprints of the form "APP
 * --flag=value ... key=value ..." (the app kit's) `why` names the first
 * difference: "--samples: was 1000, now 2000", "--seed: given now (3), not
 * before", "--fast: given before (set), not now", "input data changed" (a
 * non-flag part such as data=NxD:HASH), "written by APP1, not APP2", else
 * "the arguments differ". Values longer than 60 characters are shown cut
 * with "...". was is was_len bytes (need not be NUL-terminated), now is a
 * C string; either may be NULL (""). With flags_only the parts after the
 * flags are ignored. Returns 0 when they are equal (why = ""), else 1.
 */
int mpmap_fingerprint_diff(const char *was, size_t was_len, const char *now, int flags_only,
                           char *why, size_t whylen);

/* What happened, on every rank. */
typedef struct mpmap_report {
    int status; /* same as mpmap_run's return */
    int64_t tasks_total;
    int64_t tasks_done;     /* restored + computed in this run */
    int64_t tasks_restored; /* taken from the checkpoint */
    int64_t tasks_failed;   /* status != 0 (MPMAP_ON_ERROR_CONTINUE) */
    int64_t chunks;         /* chunks handed out in this run */
    int64_t failed_task;    /* first failing task, or -1 */
    double wall_time;       /* seconds in mpmap_run */
    double start_time;      /* Unix time when the run started */
    int ranks;
    char schedule[16];                    /* the schedule that ran: for auto, the one
                                             it picked ("" if the run never started) */
    char message[MPMAP_MESSAGE_MAX + 64]; /* e.g. "task 17 failed: ..." or "" */
} mpmap_report;

/*
 * Runs the job on every rank of comm (collective). Returns the same status
 * on every rank. report may be NULL.
 */
int mpmap_run(MPI_Comm comm, const mpmap_config *config, const mpmap_job *job,
              mpmap_report *report);

#ifdef __cplusplus
}
#endif

#endif /* MPMAP_H */
