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
#include "mc_pi_kernel.h"
#include "mpmap_app.h"

#include <math.h>
#include <stdio.h>

/* Chunks per rank the schedule is capped to (mpmap_app_spread_chunks):
 * every chunk's results reach rank 0, the output and the checkpoint in
 * short pieces, and the last chunks are small enough to even the finish. */
#define MC_PI_CHUNKS_PER_RANK 32

/* pi to double precision; M_PI is not part of strict C17. */
#define MC_PI_TRUE 3.14159265358979323846

typedef struct mc_pi_run {
    mpmap_app_problem problem;
    int64_t samples, tasks, seed;
    int64_t total_hits; /* the library's sum of /hits, on every rank */
    double pi, std_error;
} mc_pi_run;

/* One int64 record per task: its hit count. */
static int mc_pi_map(int64_t begin, int64_t end, void *records, mpmap_task_error *err, void *ctx)
{
    const mc_pi_run *r = ctx;
    int64_t *out = records;
    for (int64_t t = begin; t < end; t++) {
        int64_t hits =
            mc_pi_hits((uint64_t)r->seed, t, mc_pi_task_samples(r->samples, r->tasks, t));
        if (hits < 0) /* only on arguments the validation has ruled out */
            return mpmap_task_fail(err, t, 1, "cannot count the hits of task %lld (%s)",
                                   (long long)t, mpmap_strerror((int)hits));
        out[t - begin] = hits;
    }
    return 0;
}

static int mc_pi_check(mpmap_app *app, void *ctx)
{
    const mc_pi_run *r = ctx;
    if (r->tasks > r->samples)
        return mpmap_app_usage(app,
                               "--tasks: %lld tasks but only %lld samples; every task needs at "
                               "least one sample",
                               (long long)r->tasks, (long long)r->samples);
    /* /hits and its /task coordinate hold 8 bytes per task each, the
     * checkpoint as much again: beyond memory it is a mistyped count, not
     * a run (checked before the output is created). */
    if (!mpmap_app_fits_in_memory(r->tasks, 2 * sizeof(int64_t)))
        return mpmap_app_usage(app,
                               "--tasks: %lld tasks do not fit in memory (one hit count "
                               "each in /hits)",
                               (long long)r->tasks);
    return 0;
}

static int mc_pi_setup(mpmap_app *app, void *ctx)
{
    mc_pi_run *r = ctx;
    mpmap_app_problem *p = &r->problem;
    p->ntasks = r->tasks;
    /* clang-format off */
    p->fields[p->nfields++] = (mpmap_app_field){
        .name = "hits", .type = MPMAP_INT64,
        .long_name = "points of the task inside the quarter circle x^2 + y^2 < 1" };
    p->coords[p->ncoords++] = (mpmap_app_coord){
        .name = "task", .type = MPMAP_INT64, .n = r->tasks,
        .long_name = "task index; task t draws samples/tasks points, plus one when "
                     "t < samples % tasks, from random stream (seed, t)" };
    /* clang-format on */
    p->reduce_op = MPMAP_REDUCE_SUM;
    p->reduce_type = MPMAP_INT64;
    p->reduction = &r->total_hits;
    /* The effective values, defaults included, name the job for --resume: the
     * flag text alone leaves out defaults, which a later version might change. */
    snprintf(p->fingerprint, sizeof p->fingerprint, "samples=%lld tasks=%lld seed=%lld",
             (long long)r->samples, (long long)r->tasks, (long long)r->seed);
    mpmap_app_spread_chunks(app, p, MC_PI_CHUNKS_PER_RANK, sizeof(int64_t));
    return 0;
}

/* Rank 0, after a successful run: the estimate as root attributes. */
static int mc_pi_finish(mpmap_app *app, const mpmap_report *report, void *ctx)
{
    (void)report;
    mc_pi_run *r = ctx;
    mc_pi_estimate(r->total_hits, r->samples, &r->pi, &r->std_error);
    const mpmap_app_attr attrs[] = {
        MPMAP_APP_DOUBLE("pi", r->pi),
        MPMAP_APP_DOUBLE("std_error", r->std_error),
        MPMAP_APP_INT64("samples", r->samples),
        MPMAP_APP_INT64("hits", r->total_hits),
        MPMAP_APP_INT64("tasks", r->tasks),
        MPMAP_APP_INT64("seed", r->seed),
        MPMAP_APP_STRING("kernel_path", mc_pi_path_name(mc_pi_best_path())),
    };
    return mpmap_app_attrs(app, attrs, sizeof attrs / sizeof attrs[0]);
}

static void mc_pi_print(mpmap_app *app, const mpmap_report *report, void *ctx)
{
    (void)app;
    const mc_pi_run *r = ctx;
    /* Samples drawn in this run: restored tasks cost nothing now (shares
     * differ by at most one, so the task fraction is exact enough). */
    double drawn = (double)r->samples * (double)(report->tasks_done - report->tasks_restored) /
                   (double)r->tasks;
    printf("mc_pi: pi = %.10f +- %.2g (|pi - M_PI| = %.2f std errors)\n", r->pi, r->std_error,
           fabs(r->pi - MC_PI_TRUE) / r->std_error);
    printf("  %lld samples in %lld tasks, seed %lld, %lld hits, %s kernel, %.3g samples/s\n",
           (long long)r->samples, (long long)r->tasks, (long long)r->seed, (long long)r->total_hits,
           mc_pi_path_name(mc_pi_best_path()),
           report->wall_time > 0 ? drawn / report->wall_time : NAN);
}

int main(int argc, char **argv)
{
    mc_pi_run r = { .samples = 1000000000, .tasks = 1000, .seed = 1 };
    /* clang-format off */
    mpmap_option options[] = {
        { .name = "--samples", .kind = MPMAP_OPT_INT64, .target = &r.samples, .metavar = "N",
          .help = "random points in all (1e9 notation accepted)", .default_text = "1e9",
          .min = 1, .max = 1e18 },
        { .name = "--tasks", .kind = MPMAP_OPT_INT64, .target = &r.tasks, .metavar = "T",
          .help = "tasks sharing the points (at most N), one hit count each",
          .default_text = "1000", .min = 1, .max = 1e18 },
        { .name = "--seed", .kind = MPMAP_OPT_INT64, .target = &r.seed, .metavar = "S",
          .help = "seed of the random streams", .default_text = "1", .min = 0, .max = 9.2e18 },
    };
    mpmap_app_def def = { .name = "mc_pi", .default_output = "mc_pi.h5",
                          .summary = "Monte Carlo estimate of pi, in parallel.",
                          .options = options, .noptions = 3, .context = &r, .problem = &r.problem,
                          .check = mc_pi_check, .setup = mc_pi_setup, .map = mc_pi_map,
                          .finish = mc_pi_finish, .print = mc_pi_print };
    /* clang-format on */
    return mpmap_app_main(argc, argv, &def);
}
