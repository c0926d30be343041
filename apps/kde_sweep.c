/*
 * kde_sweep: kernel density estimates over a sweep of window widths.
 *
 * One task per width. Each task evaluates the density at every query point
 * (Parzen hypercube window or Gaussian kernel) and, with --cv K, the K-fold
 * cross-validated log-likelihood of the Gaussian kernel at that width.
 * Results stream to rank 0 in width order and into kde_sweep.h5. The
 * samples and query points come from kde_data.h, the choice of the best
 * width from kde_best.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "kde_best.h"
#include "kde_data.h"
#include "kde_kernels.h"
#include "mpmap_app.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Chunks per rank the schedule is capped to (mpmap_app_spread_chunks). */
#define KDE_CHUNKS_PER_RANK 8

enum { KERNEL_HYPERCUBE = 0, KERNEL_GAUSSIAN = 1 };
static const char *const kernel_names[] = { "hypercube", "gaussian", NULL };

typedef struct kde_problem {
    mpmap_app_problem problem;
    kde_data data;
    /* flags */
    int64_t folds; /* --cv, 0 without */
    int cv_seen;
    mpmap_cli_range widths;
    int kernel;
    /* on every rank */
    kde_cv_plan *plan;
    double *width_values; /* the K widths */
    /* rank 0: the summary */
    kde_best best;
} kde_problem;

static int kde_map(int64_t begin, int64_t end, void *records, mpmap_task_error *err, void *ctx)
{
    (void)err;
    const kde_problem *p = ctx;
    const kde_data *x = &p->data;
    char *out = records;
    for (int64_t t = begin; t < end; t++) {
        char *rec = out + (size_t)(t - begin) * p->problem.record_size;
        double h = p->width_values[t];
        for (int64_t j = 0; j < x->m; j++) {
            const double *point = x->points + j * x->d;
            double density;
            if (p->kernel == KERNEL_HYPERCUBE) {
                int64_t count = kde_hypercube_count(x->samples, x->n, x->d, point, h);
                /* No sample in the window is density 0, also when h^d
                 * underflows (0/0 would give NaN). */
                density = count == 0 ? 0.0 : kde_hypercube_density(count, x->n, x->d, h);
                /* Field 1, /count, follows /density in the record. */
                memcpy(rec + p->problem.offset[1] + (size_t)j * sizeof count, &count, sizeof count);
            } else {
                density = kde_gaussian_density(x->samples, x->n, x->d, point, h);
            }
            memcpy(rec + (size_t)j * sizeof(double), &density, sizeof density);
        }
    }
    if (p->plan) {
        /* All widths of the slice in one pass over the data; each score is
         * bitwise what a one-width call gives. */
        double scores[64];
        size_t cv_offset = p->problem.offset[p->problem.nfields - 1]; /* the last field */
        for (int64_t t0 = begin; t0 < end; t0 += 64) {
            int k = (int)(end - t0 < 64 ? end - t0 : 64);
            kde_cv_scores(p->plan, p->width_values + t0, k, scores);
            for (int i = 0; i < k; i++)
                memcpy(out + (size_t)(t0 + i - begin) * p->problem.record_size + cv_offset,
                       &scores[i], sizeof(double));
        }
    }
    return 0;
}

/* Rank 0: checks that need no data. */
static int kde_check(mpmap_app *app, void *ctx)
{
    const kde_problem *p = ctx;
    int code = kde_data_check(app, &p->data);
    /* Sizes before anything is allocated: rank 0 holds /density and
     * /abs_error (K x M) and /width and /cv_score (K). */
    int64_t m = kde_data_npoints(&p->data);
    if (code == 0 &&
        !mpmap_app_fits_in_memory(p->widths.count, (size_t)(m * 3 + 2) * sizeof(double)))
        code = mpmap_app_usage(app, "--widths: %lld widths x %lld point%s do not fit in memory",
                               (long long)p->widths.count, (long long)m, m == 1 ? "" : "s");
    return code;
}

static int kde_setup(mpmap_app *app, void *ctx)
{
    kde_problem *p = ctx;
    const kde_data *x = &p->data;
    int code = kde_data_load(app, &p->data, &p->problem);
    if (code != 0)
        return code;
    if (p->cv_seen && p->folds > x->n)
        return mpmap_app_usage(app, "--cv: %lld folds but only %lld samples", (long long)p->folds,
                               (long long)x->n);
    if (p->folds > 0 && kde_cv_plan_create(x->samples, x->n, x->d, (int)p->folds, &p->plan) != 0)
        return mpmap_app_failure(app, "--cv: cannot prepare the cross-validation (out of memory?)");
    if (!(p->width_values = mpmap_app_range_values(&p->widths)))
        return mpmap_app_failure(app, "out of memory");
    mpmap_app_problem *q = &p->problem;
    /* clang-format off */
    mpmap_app_task_axis(app, q, &(mpmap_app_coord){
        .name = "width", .type = MPMAP_DOUBLE, .n = p->widths.count, .values = p->width_values,
        .units = "1", .long_name = p->kernel == KERNEL_HYPERCUBE ? "hypercube edge length h"
                                                                 : "Gaussian kernel bandwidth h" });
    q->fields[q->nfields++] = (mpmap_app_field){
        .name = "density", .type = MPMAP_DOUBLE, .rank = 1, .shape = { x->m },
        .dims = { "point_index" }, .keep = true,
        .long_name = p->kernel == KERNEL_HYPERCUBE ? "Parzen hypercube density estimate count/(n*h^d)"
                                                   : "Gaussian kernel density estimate" };
    if (p->kernel == KERNEL_HYPERCUBE)
        q->fields[q->nfields++] = (mpmap_app_field){
            .name = "count", .type = MPMAP_INT64, .rank = 1, .shape = { x->m },
            .dims = { "point_index" },
            .long_name = "samples inside the hypercube of edge h around the point" };
    if (p->folds > 0)
        q->fields[q->nfields++] = (mpmap_app_field){
            .name = "cv_score", .type = MPMAP_DOUBLE, .keep = true,
            .long_name = "K-fold cross-validated log-likelihood (Gaussian kernel), mean over folds" };
    /* clang-format on */
    /* A width's cost depends on the width (cross-validation: the smallest
     * skip distant blocks, moderate ones sum every pair from both sides,
     * large ones each pair once, for half that), so guided's first chunk,
     * half the sweep at -n 2, can hold most of the work and leave the other
     * rank the cheap end. Chunks of at most 1/(8 P) of the widths even the
     * finish; handing a width out costs far less than computing it. */
    size_t record_bytes = (size_t)x->m * sizeof(double) * (p->kernel == KERNEL_HYPERCUBE ? 2 : 1) +
                          (p->folds > 0 ? sizeof(double) : 0);
    mpmap_app_spread_chunks(app, q, KDE_CHUNKS_PER_RANK, record_bytes);
    return 0;
}

/* Rank 0, after a successful run: the query points, reference, errors,
 * best widths and the run's settings. */
static int kde_finish(mpmap_app *app, const mpmap_report *report, void *ctx)
{
    (void)report;
    kde_problem *p = ctx;
    const kde_data *x = &p->data;
    const double *cv = mpmap_app_field_data(app, "cv_score");
    int64_t best = cv ? kde_best_cv(cv, p->widths.count) : 0;
    p->best = (kde_best){ NAN, NAN, cv ? p->width_values[best] : NAN };
    /* clang-format off */
    int rc = mpmap_app_write_array(app, &(mpmap_app_field){
        .name = "point", .type = MPMAP_DOUBLE, .rank = 2, .shape = { x->m, x->d },
        .dims = { "point_index", "dim" },
        .long_name = "query points where the density is estimated" }, x->points);
    /* clang-format on */
    if (rc == 0 && !x->input)
        rc = kde_data_write_reference(app, x, p->width_values, p->widths.count,
                                      mpmap_app_field_data(app, "density"), &p->best);
    double chosen = !isnan(p->best.cv) ? p->best.cv : p->best.reference;
    const mpmap_app_attr attrs[] = {
        x->input ? MPMAP_APP_NO_ATTR : MPMAP_APP_DOUBLE("best_width_reference", p->best.reference),
        x->input ? MPMAP_APP_NO_ATTR : MPMAP_APP_DOUBLE("best_abs_error", p->best.reference_error),
        cv ? MPMAP_APP_DOUBLE("best_width_cv", p->best.cv) : MPMAP_APP_NO_ATTR,
        cv ? MPMAP_APP_DOUBLE("best_cv_score", cv[best]) : MPMAP_APP_NO_ATTR,
        !isnan(chosen) ? MPMAP_APP_DOUBLE("best_width", chosen) : MPMAP_APP_NO_ATTR,
        MPMAP_APP_STRING("kernel", kernel_names[p->kernel]),
        MPMAP_APP_INT64("samples", x->n),
        MPMAP_APP_INT64("dim", x->d),
        MPMAP_APP_INT64("cv_folds", p->folds),
        MPMAP_APP_STRING("data", x->input ? "input file" : "synthetic standard normal"),
    };
    return rc != 0 ? rc : mpmap_app_attrs(app, attrs, sizeof attrs / sizeof attrs[0]);
}

static void kde_print(mpmap_app *app, const mpmap_report *report, void *ctx)
{
    (void)app;
    (void)report;
    const kde_problem *p = ctx;
    printf("kde_sweep: %lld widths from %g to %g, %s kernel, n=%lld d=%d, %lld point%s\n",
           (long long)p->widths.count, p->widths.start, p->widths.stop, kernel_names[p->kernel],
           (long long)p->data.n, p->data.d, (long long)p->data.m, p->data.m == 1 ? "" : "s");
    kde_best_print(stdout, &p->best, &p->widths, (int)p->folds);
}

static void kde_cleanup(void *ctx)
{
    kde_problem *p = ctx;
    kde_cv_plan_free(p->plan);
    free(p->width_values);
    kde_data_free(&p->data);
}

int main(int argc, char **argv)
{
    kde_problem p = { .data = { .samples_flag = 10000, .dim_flag = 2, .seed = 123 },
                      .widths = { 1.0, 1.2, 100 } };
    kde_data *x = &p.data;
    /* clang-format off */
    mpmap_option options[] = {
        { .name = "--input", .kind = MPMAP_OPT_STRING, .target = &x->input,
          .metavar = "FILE.h5:/DATASET",
          .help = "samples: an n x d float64 dataset (default: synthetic standard normal)" },
        { .name = "--samples", .kind = MPMAP_OPT_INT64, .target = &x->samples_flag, .metavar = "N",
          .help = "synthetic samples", .default_text = "10000", .min = 1, .max = 1e10,
          .seen = &x->samples_seen },
        { .name = "--dim", .kind = MPMAP_OPT_INT64, .target = &x->dim_flag, .metavar = "D",
          .help = "dimension of the synthetic samples", .default_text = "2", .min = 1,
          .max = KDE_CV_MAX_DIM, .seen = &x->dim_seen },
        { .name = "--seed", .kind = MPMAP_OPT_INT64, .target = &x->seed, .metavar = "S",
          .help = "seed of the synthetic samples", .default_text = "123", .min = 0,
          .max = 9.2e18, .seen = &x->seed_seen },
        { .name = "--kernel", .kind = MPMAP_OPT_CHOICE, .target = &p.kernel,
          .help = "hypercube (Parzen window) or gaussian", .default_text = "hypercube",
          .choices = kernel_names },
        { .name = "--widths", .kind = MPMAP_OPT_RANGE, .target = &p.widths, .metavar = "A:B:K",
          .help = "K widths evenly spaced from A to B", .default_text = "1.0:1.2:100", .min = 0,
          .max = INFINITY, .flags = MPMAP_OPT_EXCLUSIVE_MIN },
        { .name = "--point", .kind = MPMAP_OPT_STRING_LIST, .target = &x->point_specs,
          .metavar = "X1,X2,...", .default_text = "the origin",
          .help = "where to estimate the density; repeat for more points" },
        { .name = "--cv", .kind = MPMAP_OPT_INT64, .target = &p.folds, .metavar = "K",
          .help = "also score each width by K-fold cross-validation", .min = 2, .max = 1e9,
          .seen = &p.cv_seen },
    };
    mpmap_app_def def = {
        .name = "kde_sweep", .default_output = "kde_sweep.h5",
        .summary = "Kernel density estimates over a sweep of window widths, in parallel.",
        .options = options, .noptions = sizeof options / sizeof options[0], .context = &p,
        .problem = &p.problem, .check = kde_check, .setup = kde_setup, .map = kde_map,
        .finish = kde_finish, .print = kde_print, .cleanup = kde_cleanup };
    /* clang-format on */
    return mpmap_app_main(argc, argv, &def);
}
