/*
 * mc_pi: Monte Carlo estimate of pi, in parallel.
 *
 * --samples N points are split over --tasks T tasks (shares differ by at
 * most one). Task t counts the points of stream (seed, t) that fall inside
 * the quarter circle (mc_pi_kernel.h). The library sums the per-task hit
 * counts in task order (MPMAP_REDUCE_SUM over int64), and rank 0 streams
 * them into /hits of mc_pi.h5 in blocks, so memory stays flat however many
 * tasks there are. Counts are integers decided exactly, so /hits and pi are
 * bitwise identical for any rank count, schedule and chunk size.
 */
#define _POSIX_C_SOURCE 200809L
#include "app_common.h"
#include "mc_pi_kernel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Hit counts gathered on rank 0 before one write to /hits (512 KiB): small
 * chunks (--schedule dynamic --chunk 1) must not turn into one HDF5 write
 * per task. */
#define MC_PI_SINK_BLOCK 65536

/*
 * Chunks per rank the schedule is capped to. Guided's first chunk is half
 * the sweep at -n 2; capped at T/(32 P), every chunk's results reach rank 0,
 * the output and the checkpoint in short pieces, and the last chunks are
 * small enough to even the finish.
 */
#define MC_PI_CHUNKS_PER_RANK 32
/* The runtime's own cap when max_chunk is 0: about 4 MiB of records. */
#define MC_PI_MAX_CHUNK_RECORDS ((int64_t)(4 << 20) / (int64_t)sizeof(int64_t))

/* pi to double precision; M_PI is not part of strict C17. */
#define MC_PI_TRUE 3.14159265358979323846

typedef struct mc_pi_run {
    app *a; /* first: the shared job callbacks (app_job_progress/trace) find it here */
    /* on every rank */
    int64_t samples;
    int64_t tasks;
    uint64_t seed;
    /* rank 0: output */
    mpmap_h5_dataset *hits_ds;
    int64_t *block;      /* MC_PI_SINK_BLOCK counts of tasks block_first.. */
    int64_t block_first; /* task of block[0] */
    int64_t block_count; /* counts held */
} mc_pi_run;

/* One int64 record per task: its hit count. */
static int mc_pi_map(int64_t begin, int64_t end, void *records, mpmap_task_error *err, void *ctx)
{
    const mc_pi_run *r = ctx;
    int64_t *out = records;
    for (int64_t t = begin; t < end; t++) {
        int64_t hits = mc_pi_hits(r->seed, t, mc_pi_task_samples(r->samples, r->tasks, t));
        if (hits < 0) /* only on arguments the validation has ruled out */
            return mpmap_task_fail(err, t, 1, "cannot count the hits of task %lld (%s)",
                                   (long long)t, mpmap_strerror((int)hits));
        out[t - begin] = hits;
    }
    return 0;
}

/* Rank 0: writes the held block to /hits and empties it. */
static int mc_pi_flush(mc_pi_run *r)
{
    if (r->block_count == 0)
        return 0;
    if (mpmap_h5_dataset_write_rows(r->hits_ds, r->block_first, r->block_count, r->block) != 0)
        return -1;
    r->block_first += r->block_count;
    r->block_count = 0;
    return 0;
}

/*
 * Rank 0: records arrive in ascending task order, each once, so the block
 * always holds one contiguous run of tasks. Large pieces bypass the block.
 */
static int mc_pi_sink(int64_t begin, int64_t end, const void *records, const int32_t *status,
                      void *ctx)
{
    (void)status; /* a failed task stops the run (--on-error stop), and its record is 0 otherwise */
    mc_pi_run *r = ctx;
    const int64_t *in = records;
    if (r->block_count > 0 && r->block_first + r->block_count != begin)
        return -1; /* out of order: the library's contract is broken */
    if (r->block_count == 0)
        r->block_first = begin;
    int64_t n = end - begin;
    if (r->block_count == 0 && n >= MC_PI_SINK_BLOCK) {
        if (mpmap_h5_dataset_write_rows(r->hits_ds, begin, n, in) != 0)
            return -1;
        r->block_first = end;
        return 0;
    }
    while (n > 0) {
        int64_t room = MC_PI_SINK_BLOCK - r->block_count;
        int64_t take = n < room ? n : room;
        memcpy(r->block + r->block_count, in, (size_t)take * sizeof *in);
        r->block_count += take;
        in += take;
        n -= take;
        if (r->block_count == MC_PI_SINK_BLOCK && mc_pi_flush(r) != 0)
            return -1;
    }
    return 0;
}

/* Rank 0: the output file and the /hits dataset that streams during the run. */
static int create_outputs(mc_pi_run *r, app *a, char *msg, size_t msglen)
{
    if (app_create_output(a, msg, msglen) != 0)
        return APP_EXIT_FAILED;
    r->block = malloc(MC_PI_SINK_BLOCK * sizeof *r->block);
    if (!r->block) {
        snprintf(msg, msglen, "out of memory");
        return APP_EXIT_FAILED;
    }
    /* The writer creates the int64 index coordinate /task (0..T-1). */
    const char *dims[] = { "task" };
    int rc = mpmap_h5_dataset_create(a->h5, "/hits", H5T_NATIVE_INT64, 1, &r->tasks, dims,
                                     &r->hits_ds);
    if (rc == 0)
        rc = mpmap_h5_attr_string(a->h5, "/hits", "long_name",
                                  "points of the task inside the quarter circle x^2 + y^2 < 1");
    if (rc == 0)
        rc = mpmap_h5_attr_string(a->h5, "/task", "long_name",
                                  "task index; task t draws samples/tasks points, plus one when "
                                  "t < samples % tasks, from random stream (seed, t)");
    return rc != 0 ? app_output_failed(a, msg, msglen) : 0;
}

/* Rank 0, after a successful run: the estimate and provenance as root attributes. */
static int write_summary(mc_pi_run *r, app *a, const mpmap_report *report, int64_t hits,
                         double pi, double std_error)
{
    mpmap_h5 *f = a->h5;
    int rc = mpmap_h5_attr_double(f, "/", "pi", pi);
    if (rc == 0)
        rc = mpmap_h5_attr_double(f, "/", "std_error", std_error);
    if (rc == 0)
        rc = mpmap_h5_attr_int64(f, "/", "samples", r->samples);
    if (rc == 0)
        rc = mpmap_h5_attr_int64(f, "/", "hits", hits);
    if (rc == 0)
        rc = mpmap_h5_attr_int64(f, "/", "tasks", r->tasks);
    if (rc == 0)
        rc = mpmap_h5_attr_int64(f, "/", "seed", (int64_t)r->seed);
    if (rc == 0)
        rc = mpmap_h5_attr_string(f, "/", "kernel_path", mc_pi_path_name(mc_pi_best_path()));
    if (rc == 0)
        rc = app_write_provenance(a, report, 0, NULL, NULL);
    return rc;
}

int main(int argc, char **argv)
{
    app a;
    app_init(&a, "mc_pi", &argc, &argv);

    int64_t samples = 1000000000, tasks = 1000, seed = 1;
    app_add_option(&a, (mpmap_option){ .name = "--samples", .kind = MPMAP_OPT_INT64,
                                       .target = &samples, .metavar = "N",
                                       .help = "random points in all (1e9 notation accepted)",
                                       .default_text = "1e9", .min = 1, .max = 1e18 });
    app_add_option(&a, (mpmap_option){ .name = "--tasks", .kind = MPMAP_OPT_INT64, .target = &tasks,
                                       .metavar = "T",
                                       .help = "tasks sharing the points (at most N), one hit count each",
                                       .default_text = "1000", .min = 1, .max = 1e18 });
    app_add_option(&a, (mpmap_option){ .name = "--seed", .kind = MPMAP_OPT_INT64, .target = &seed,
                                       .metavar = "S", .help = "seed of the random streams",
                                       .default_text = "1", .min = 0, .max = 9.2e18 });

    int code = app_parse(&a, "mc_pi.h5", "Monte Carlo estimate of pi, in parallel.");
    if (code >= 0)
        return app_exit(&a, code);

    /* Parsing is identical on every rank; rank 0 still decides for everyone. */
    char msg[APP_MESSAGE_MAX] = "";
    code = 0;
    if (tasks > samples) {
        snprintf(msg, sizeof msg,
                 "--tasks: %lld tasks but only %lld samples; every task needs at least one sample",
                 (long long)tasks, (long long)samples);
        code = APP_EXIT_USAGE;
    }
    /* The effective values, defaults included, name the job for --resume: the
     * flag text alone leaves out defaults, which a later version might change. */
    char extra[128];
    snprintf(extra, sizeof extra, "samples=%lld tasks=%lld seed=%lld", (long long)samples,
             (long long)tasks, (long long)seed);
    if (code == 0 && a.rank == 0)
        code = app_check_output(&a, extra, msg, sizeof msg);
    code = app_agree(&a, code, msg);
    if (code != 0)
        return app_exit(&a, code);
    app_configure(&a, extra);
    /* Results do not depend on chunking, so this only changes the balance. */
    int64_t cap = (tasks + (int64_t)a.size * MC_PI_CHUNKS_PER_RANK - 1) /
                  ((int64_t)a.size * MC_PI_CHUNKS_PER_RANK);
    a.config.max_chunk = cap < MC_PI_MAX_CHUNK_RECORDS ? cap : MC_PI_MAX_CHUNK_RECORDS;

    mc_pi_run r = { .samples = samples, .tasks = tasks, .seed = (uint64_t)seed, .a = &a };
    code = 0;
    if (a.rank == 0)
        code = create_outputs(&r, &a, msg, sizeof msg);
    code = app_agree(&a, code, msg);
    if (code != 0) {
        if (r.hits_ds)
            mpmap_h5_dataset_close(r.hits_ds);
        free(r.block);
        return app_exit(&a, code);
    }

    int64_t total_hits = 0;
    mpmap_job job = { .ntasks = tasks, .record_size = sizeof(int64_t), .map = mc_pi_map,
                      .context = &r, .sink = mc_pi_sink, .trace = app_job_trace,
                      .progress = app_job_progress, .reduce_op = MPMAP_REDUCE_SUM,
                      .reduce_type = MPMAP_INT64, .reduction = &total_hits };
    mpmap_report report;
    int status = mpmap_run(a.comm, &a.config, &job, &report);

    double pi = NAN, std_error = NAN;
    mc_pi_estimate(total_hits, samples, &pi, &std_error);
    if (status == MPMAP_OK && a.rank == 0) {
        if (mc_pi_flush(&r) != 0 || mpmap_h5_dataset_close(r.hits_ds) != 0 ||
            write_summary(&r, &a, &report, total_hits, pi, std_error) != 0) {
            status = MPMAP_EHDF5;
            app_output_failed(&a, report.message, sizeof report.message);
        }
        r.hits_ds = NULL;
    } else if (a.rank == 0 && r.hits_ds) {
        mpmap_h5_dataset_close(r.hits_ds);
        r.hits_ds = NULL;
    }
    MPI_Bcast(&status, 1, MPI_INT, 0, a.comm);
    code = app_finish(&a, status, &report);

    if (code == APP_EXIT_OK && a.rank == 0 && !a.common.quiet) {
        double off = fabs(pi - MC_PI_TRUE) / std_error;
        /* Samples drawn in this run: restored tasks cost nothing now (shares
         * differ by at most one, so the task fraction is exact enough). */
        double drawn = (double)samples * (double)(report.tasks_done - report.tasks_restored) /
                       (double)tasks;
        double rate = report.wall_time > 0 ? drawn / report.wall_time : NAN;
        printf("mc_pi: pi = %.10f +- %.2g (|pi - M_PI| = %.2f std errors)\n", pi, std_error, off);
        printf("  %lld samples in %lld tasks, seed %lld, %lld hits, %s kernel\n",
               (long long)samples, (long long)tasks, (long long)seed, (long long)total_hits,
               mc_pi_path_name(mc_pi_best_path()));
        printf("  %d ranks, %s schedule, %.3f s, %.3g samples/s", a.size,
               mpmap_schedule_name(a.config.schedule), report.wall_time, rate);
        if (report.tasks_restored > 0)
            printf(" (%lld tasks resumed from checkpoint)", (long long)report.tasks_restored);
        printf("\n  wrote %s\n", a.common.output);
    }
    free(r.block);
    return app_exit(&a, code);
}
