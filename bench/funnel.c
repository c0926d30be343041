/*
 * funnel: how fast rank 0 takes in results. Every task's record is
 * RECORD_KIB KiB of doubles that cost next to nothing to compute, so the run
 * is bound by what rank 0 does with each record: receive it, put it in task
 * order and write it into the output through the app kit, as every app's
 * results go. bench/funnel_run.py compares this rate with what the apps
 * produce per rank and reports where one rank 0 stops keeping up.
 *
 * The kit's common flags apply: with --write ranks every rank writes its own
 * rows into the output instead (bench/funnel_writers.py sets the two
 * against each other).
 *
 *     mpirun -n 2 funnel --tasks 2000 --record-kib 1024 --output f.h5
 *     mpirun -n 8 funnel --tasks 2000 --record-kib 1024 --write ranks --output f.h5
 */
#include "mpmap_app.h"

#include <math.h>
#include <stdio.h>

typedef struct funnel {
    mpmap_app_problem problem;
    int64_t tasks, record_kib;
} funnel;

static int fill(int64_t begin, int64_t end, void *records, mpmap_task_error *err, void *ctx)
{
    (void)err;
    const funnel *f = ctx;
    int64_t n = f->record_kib * 128; /* doubles per record */
    double *out = records;
    for (int64_t t = begin; t < end; t++)
        for (int64_t i = 0; i < n; i++)
            *out++ = (double)t + (double)i * 1e-9;
    return 0;
}

static int setup(mpmap_app *app, void *ctx)
{
    (void)app;
    funnel *f = ctx;
    f->problem.ntasks = f->tasks;
    /* clang-format off */
    f->problem.fields[f->problem.nfields++] = (mpmap_app_field){
        .name = "block", .type = MPMAP_DOUBLE, .rank = 1, .shape = { f->record_kib * 128 },
        .dims = { "element" }, .long_name = "a record of the given size" };
    /* clang-format on */
    return 0;
}

static void print(mpmap_app *app, const mpmap_report *report, void *ctx)
{
    (void)app;
    const funnel *f = ctx;
    double bytes = (double)f->tasks * (double)f->record_kib * 1024.0;
    printf("funnel: %lld records of %lld KiB in %.3f s: %.1f MB/s into the output\n",
           (long long)f->tasks, (long long)f->record_kib, report->wall_time,
           bytes / report->wall_time / 1e6);
}

int main(int argc, char **argv)
{
    funnel f = { .tasks = 1000, .record_kib = 64 };
    /* clang-format off */
    mpmap_option options[] = {
        { .name = "--tasks", .kind = MPMAP_OPT_INT64, .target = &f.tasks, .metavar = "N",
          .help = "records", .default_text = "1000", .min = 1, .max = 1e9 },
        { .name = "--record-kib", .kind = MPMAP_OPT_INT64, .target = &f.record_kib,
          .metavar = "K", .help = "size of one record", .default_text = "64", .min = 1,
          .max = 65536 },
    };
    mpmap_app_def def = {
        .name = "funnel", .default_output = "funnel.h5",
        .summary = "Records that cost nothing to compute: rank 0's intake rate.",
        .options = options, .noptions = 2, .context = &f, .problem = &f.problem,
        .setup = setup, .map = fill, .print = print };
    /* clang-format on */
    return mpmap_app_main(argc, argv, &def);
}
