/*
 * kde_sweep: kernel density estimates over a sweep of window widths.
 *
 * One task per width. Each task evaluates the density at every query point
 * (Parzen hypercube window or Gaussian kernel) and, with --cv K, the K-fold
 * cross-validated log-likelihood of the Gaussian kernel at that width.
 * Results stream to rank 0 in width order and into kde_sweep.h5.
 */
#define _POSIX_C_SOURCE 200809L
#include "kde_kernels.h"
#include "mpmap_app.h"
#include "mpmap_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { KERNEL_HYPERCUBE = 0, KERNEL_GAUSSIAN = 1 };
static const char *const kernel_names[] = { "hypercube", "gaussian", NULL };

typedef struct kde_problem {
    mpmap_app_problem problem;
    /* flags */
    const char *input;
    int64_t samples_flag, dim_flag, seed, folds_flag;
    int samples_seen, dim_seen, seed_seen, cv_seen;
    mpmap_cli_strings point_specs;
    /* inputs, on every rank */
    mpmap_app_shared *shared;
    const double *samples;
    int64_t n;
    int d;
    double *points; /* M x d */
    int64_t m;
    mpmap_cli_range widths;
    int kernel;
    int folds;
    kde_cv_plan *plan;
    double *width_values;
    /* rank 0: the summary */
    double best_width, best_error, best_cv;
} kde_problem;

static double width_of(const kde_problem *p, int64_t t) { return mpmap_cli_range_value(&p->widths, t); }

static int kde_map(int64_t begin, int64_t end, void *records, mpmap_task_error *err, void *ctx)
{
    (void)err;
    const kde_problem *p = ctx;
    char *out = records;
    for (int64_t t = begin; t < end; t++) {
        char *rec = out + (size_t)(t - begin) * p->problem.record_size;
        double h = width_of(p, t);
        for (int64_t j = 0; j < p->m; j++) {
            const double *point = p->points + j * p->d;
            double density;
            if (p->kernel == KERNEL_HYPERCUBE) {
                int64_t count = kde_hypercube_count(p->samples, p->n, p->d, point, h);
                /* No sample in the window is density 0, also when h^d
                 * underflows (0/0 would give NaN). */
                density = count == 0 ? 0.0 : kde_hypercube_density(count, p->n, p->d, h);
                /* Field 1, /count, follows /density in the record. */
                memcpy(rec + p->problem.offset[1] + (size_t)j * sizeof count, &count, sizeof count);
            } else {
                density = kde_gaussian_density(p->samples, p->n, p->d, point, h);
            }
            memcpy(rec + (size_t)j * sizeof(double), &density, sizeof density);
        }
    }
    if (p->plan) {
        /* All widths of the slice in one pass over the data; each score is
         * bitwise what a one-width call gives. */
        double widths[64], scores[64];
        size_t cv_offset = p->problem.offset[p->problem.nfields - 1]; /* the last field */
        for (int64_t t0 = begin; t0 < end; t0 += 64) {
            int k = (int)(end - t0 < 64 ? end - t0 : 64);
            for (int i = 0; i < k; i++)
                widths[i] = width_of(p, t0 + i);
            kde_cv_scores(p->plan, widths, k, scores);
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
    if (p->input && (p->samples_seen || p->dim_seen || p->seed_seen))
        return mpmap_app_usage(app, "%s: only applies to synthetic data, not with --input",
                               p->samples_seen ? "--samples" : p->dim_seen ? "--dim" : "--seed");
    /* Sizes before anything is allocated: rank 0 holds /density and
     * /abs_error (K x M) and /width and /cv_score (K). */
    int64_t m = p->point_specs.count > 0 ? (int64_t)p->point_specs.count : 1;
    if (!mpmap_app_fits_in_memory(p->widths.count, (size_t)(m * 3 + 2) * sizeof(double)))
        return mpmap_app_usage(app, "--widths: %lld widths x %lld point%s do not fit in memory",
                               (long long)p->widths.count, (long long)m, m == 1 ? "" : "s");
    if (!p->input && !mpmap_app_fits_in_memory(p->samples_flag * p->dim_flag, sizeof(double)))
        return mpmap_app_usage(app, "--samples: %lld samples x %lld dimensions do not fit in "
                                    "memory",
                               (long long)p->samples_flag, (long long)p->dim_flag);
    return 0;
}

/* The samples: --input, or synthetic standard normal rows (one copy per node). */
static int load_samples(mpmap_app *app, kde_problem *p)
{
    int64_t rows, cols;
    int code = mpmap_app_input_matrix(app, p->input ? "--input" : "--samples", p->input,
                                      mpmap_rng_rows_normal, (uint64_t)p->seed, p->samples_flag,
                                      p->dim_flag, &p->shared, &rows, &cols);
    if (code != 0)
        return code;
    p->n = rows;
    p->d = (int)cols;
    p->samples = mpmap_app_shared_data(p->shared);
    if (cols > KDE_CV_MAX_DIM)
        return mpmap_app_usage(app, "--input: more than 64 columns");
    return 0;
}

/* Points: default the origin, each --point must match the data's dimension. */
static int parse_points(mpmap_app *app, kde_problem *p)
{
    p->m = p->point_specs.count > 0 ? (int64_t)p->point_specs.count : 1;
    p->points = calloc((size_t)(p->m * p->d), sizeof *p->points);
    if (!p->points)
        return mpmap_app_failure(app, "out of memory");
    for (size_t i = 0; i < p->point_specs.count; i++) {
        mpmap_cli_list list = { 0 };
        const char *spec = p->point_specs.items[i];
        int bad = mpmap_parse_double_list(spec, &list) != 0;
        int64_t got = (int64_t)list.count;
        if (!bad && got == p->d)
            memcpy(p->points + (int64_t)i * p->d, list.values, (size_t)p->d * sizeof(double));
        mpmap_cli_list_free(&list);
        if (bad)
            return mpmap_app_usage(app, "--point: expected comma-separated numbers, got '%s'",
                                   spec);
        if (got != p->d)
            return mpmap_app_usage(app,
                                   "--point: expected %d coordinates (the data has %d "
                                   "dimensions), got '%s'",
                                   p->d, p->d, spec);
    }
    return 0;
}

static int kde_setup(mpmap_app *app, void *ctx)
{
    kde_problem *p = ctx;
    p->folds = (int)p->folds_flag;
    int code = load_samples(app, p);
    if (code == 0)
        code = parse_points(app, p);
    if (code != 0)
        return code;
    if (p->cv_seen && p->folds_flag > p->n)
        return mpmap_app_usage(app, "--cv: %lld folds but only %lld samples",
                               (long long)p->folds_flag, (long long)p->n);
    if (p->folds > 0 && kde_cv_plan_create(p->samples, p->n, p->d, p->folds, &p->plan) != 0)
        return mpmap_app_failure(app, "--cv: cannot prepare the cross-validation (out of memory?)");
    int64_t k = p->widths.count;
    p->width_values = malloc((size_t)k * sizeof(double));
    if (!p->width_values)
        return mpmap_app_failure(app, "out of memory");
    for (int64_t t = 0; t < k; t++)
        p->width_values[t] = width_of(p, t);

    mpmap_app_problem *q = &p->problem;
    q->ntasks = k;
    q->task_dim = "width";
    q->coords[q->ncoords++] = (mpmap_app_coord){
        .name = "width", .type = MPMAP_DOUBLE, .n = k, .values = p->width_values, .units = "1",
        .long_name = p->kernel == KERNEL_HYPERCUBE ? "hypercube edge length h"
                                                   : "Gaussian kernel bandwidth h" };
    q->fields[q->nfields++] = (mpmap_app_field){
        .name = "density", .type = MPMAP_DOUBLE, .rank = 1, .shape = { p->m },
        .dims = { "point_index" }, .keep = true,
        .long_name = p->kernel == KERNEL_HYPERCUBE ? "Parzen hypercube density estimate count/(n*h^d)"
                                                   : "Gaussian kernel density estimate" };
    if (p->kernel == KERNEL_HYPERCUBE)
        q->fields[q->nfields++] = (mpmap_app_field){
            .name = "count", .type = MPMAP_INT64, .rank = 1, .shape = { p->m },
            .dims = { "point_index" },
            .long_name = "samples inside the hypercube of edge h around the point" };
    if (p->folds > 0)
        q->fields[q->nfields++] = (mpmap_app_field){
            .name = "cv_score", .type = MPMAP_DOUBLE, .keep = true,
            .long_name = "K-fold cross-validated log-likelihood (Gaussian kernel), mean over folds" };
    /* Resuming needs the same data: the fingerprint covers its shape and bytes. */
    snprintf(q->fingerprint, sizeof q->fingerprint, "data=%lldx%d:%016llx", (long long)p->n, p->d,
             (unsigned long long)mpmap_app_hash(p->samples, (size_t)(p->n * p->d) * sizeof(double)));
    return 0;
}

/* Rank 0: /reference_density and /abs_error of synthetic data, and the
 * width whose density is closest to the truth. */
static int write_reference(kde_problem *p, mpmap_h5 *f, const double *density)
{
    int64_t k = p->widths.count;
    double *ref = malloc((size_t)p->m * sizeof *ref);
    double *err = malloc((size_t)(k * p->m) * sizeof *err);
    int rc = ref && err ? 0 : -1;
    for (int64_t j = 0; rc == 0 && j < p->m; j++)
        ref[j] = kde_standard_normal_density(p->points + j * p->d, p->d);
    int64_t best = 0;
    double best_mean = INFINITY;
    for (int64_t t = 0; rc == 0 && t < k; t++) {
        double mean = 0;
        for (int64_t j = 0; j < p->m; j++) {
            err[t * p->m + j] = fabs(density[t * p->m + j] - ref[j]);
            mean += err[t * p->m + j] / (double)p->m;
        }
        if (!isnan(mean) && mean < best_mean) {
            best_mean = mean;
            best = t;
        }
    }
    p->best_width = width_of(p, best);
    p->best_error = best_mean;
    const char *m_dims[] = { "point_index" };
    const char *km_dims[] = { "width", "point_index" };
    int64_t km_shape[] = { k, p->m };
    mpmap_h5_dataset *ds = NULL;
    if (rc == 0)
        rc = mpmap_h5_dataset_create(f, "/reference_density", H5T_NATIVE_DOUBLE, 1, &p->m, m_dims,
                                     &ds);
    if (rc == 0)
        rc = mpmap_h5_dataset_write_all(ds, ref);
    if (ds)
        rc |= mpmap_h5_dataset_close(ds);
    ds = NULL;
    if (rc == 0)
        rc = mpmap_h5_attr_string(f, "/reference_density", "long_name",
                                  "true density of the synthetic standard normal data");
    if (rc == 0)
        rc = mpmap_h5_dataset_create(f, "/abs_error", H5T_NATIVE_DOUBLE, 2, km_shape, km_dims, &ds);
    if (rc == 0)
        rc = mpmap_h5_dataset_write_all(ds, err);
    if (ds)
        rc |= mpmap_h5_dataset_close(ds);
    if (rc == 0)
        rc = mpmap_h5_attr_string(f, "/abs_error", "long_name", "|density - reference_density|");
    if (rc == 0)
        rc = mpmap_h5_attr_double(f, "/", "best_width_reference", p->best_width);
    if (rc == 0)
        rc = mpmap_h5_attr_double(f, "/", "best_abs_error", best_mean);
    free(ref);
    free(err);
    return rc;
}

/* Rank 0, after a successful run: the query points, reference, errors,
 * best widths and the run's settings. */
static int kde_finish(mpmap_app *app, const mpmap_report *report, void *ctx)
{
    (void)report;
    kde_problem *p = ctx;
    mpmap_h5 *f = mpmap_app_h5(app);
    int64_t k = p->widths.count;
    const double *cv = mpmap_app_field_data(app, "cv_score");
    p->best_width = p->best_error = p->best_cv = NAN;
    const char *point_dims[] = { "point_index", "dim" };
    int64_t point_shape[] = { p->m, p->d };
    mpmap_h5_dataset *ds = NULL;
    int rc = mpmap_h5_dataset_create(f, "/point", H5T_NATIVE_DOUBLE, 2, point_shape, point_dims,
                                     &ds);
    if (rc == 0)
        rc = mpmap_h5_dataset_write_all(ds, p->points);
    if (ds)
        rc |= mpmap_h5_dataset_close(ds);
    if (rc == 0)
        rc = mpmap_h5_attr_string(f, "/point", "long_name",
                                  "query points where the density is estimated");
    if (rc == 0 && !p->input)
        rc = write_reference(p, f, mpmap_app_field_data(app, "density"));
    if (rc == 0 && cv) {
        int64_t best = 0; /* the highest score; NaN scores never win */
        for (int64_t t = 1; t < k; t++)
            if (!isnan(cv[t]) && (isnan(cv[best]) || cv[t] > cv[best]))
                best = t;
        p->best_cv = width_of(p, best);
        rc = mpmap_h5_attr_double(f, "/", "best_width_cv", p->best_cv);
        if (rc == 0)
            rc = mpmap_h5_attr_double(f, "/", "best_cv_score", cv[best]);
    }
    if (rc == 0 && (!isnan(p->best_cv) || !isnan(p->best_width)))
        rc = mpmap_app_attr_double(app, "best_width",
                                   !isnan(p->best_cv) ? p->best_cv : p->best_width);
    if (rc == 0)
        rc = mpmap_app_attr_string(app, "kernel", kernel_names[p->kernel]);
    if (rc == 0)
        rc = mpmap_app_attr_int64(app, "samples", p->n);
    if (rc == 0)
        rc = mpmap_app_attr_int64(app, "dim", p->d);
    if (rc == 0)
        rc = mpmap_app_attr_int64(app, "cv_folds", p->folds);
    if (rc == 0)
        rc = mpmap_app_attr_string(app, "data", p->input ? "input file" : "synthetic standard normal");
    return rc;
}

static void kde_print(mpmap_app *app, const mpmap_report *report, void *ctx)
{
    (void)app;
    (void)report;
    const kde_problem *p = ctx;
    printf("kde_sweep: %lld widths from %g to %g, %s kernel, n=%lld d=%d, %lld point%s\n",
           (long long)p->widths.count, p->widths.start, p->widths.stop, kernel_names[p->kernel],
           (long long)p->n, p->d, (long long)p->m, p->m == 1 ? "" : "s");
    if (!isnan(p->best_width))
        printf("  best width (closest to the true density): %.6g, abs error %.3g\n", p->best_width,
               p->best_error);
    if (!isnan(p->best_cv))
        printf("  best width (%d-fold cross-validation): %.6g\n", p->folds, p->best_cv);
    /* A best width on the first or last swept width may only be the best
     * of a range that stops too early. */
    const double edges[] = { p->best_width, p->best_cv };
    const char *const what[] = { "closest to the true density", "cross-validation" };
    for (int i = 0; i < 2; i++)
        if (!isnan(edges[i]) && p->widths.count > 1 &&
            (edges[i] == width_of(p, 0) || edges[i] == width_of(p, p->widths.count - 1)))
            printf("  warning: the best width (%s) %.6g is at the %s edge of the swept range "
                   "%g..%g; the optimum may lie outside it (widen --widths)\n",
                   what[i], edges[i], edges[i] == width_of(p, 0) ? "lower" : "upper",
                   p->widths.start, p->widths.stop);
}

static void kde_cleanup(void *ctx)
{
    kde_problem *p = ctx;
    kde_cv_plan_free(p->plan);
    free(p->points);
    free(p->width_values);
    mpmap_app_shared_free(p->shared);
}

int main(int argc, char **argv)
{
    kde_problem p = { .samples_flag = 10000, .dim_flag = 2, .seed = 123,
                      .widths = { 1.0, 1.2, 100 } };
    mpmap_option options[] = {
        { .name = "--input", .kind = MPMAP_OPT_STRING, .target = &p.input,
          .metavar = "FILE.h5:/DATASET",
          .help = "samples: an n x d float64 dataset (default: synthetic standard normal)" },
        { .name = "--samples", .kind = MPMAP_OPT_INT64, .target = &p.samples_flag, .metavar = "N",
          .help = "synthetic samples", .default_text = "10000", .min = 1, .max = 1e10,
          .seen = &p.samples_seen },
        { .name = "--dim", .kind = MPMAP_OPT_INT64, .target = &p.dim_flag, .metavar = "D",
          .help = "dimension of the synthetic samples", .default_text = "2", .min = 1,
          .max = KDE_CV_MAX_DIM, .seen = &p.dim_seen },
        { .name = "--seed", .kind = MPMAP_OPT_INT64, .target = &p.seed, .metavar = "S",
          .help = "seed of the synthetic samples", .default_text = "123", .min = 0,
          .max = 9.2e18, .seen = &p.seed_seen },
        { .name = "--kernel", .kind = MPMAP_OPT_CHOICE, .target = &p.kernel,
          .help = "hypercube (Parzen window) or gaussian", .default_text = "hypercube",
          .choices = kernel_names },
        { .name = "--widths", .kind = MPMAP_OPT_RANGE, .target = &p.widths, .metavar = "A:B:K",
          .help = "K widths evenly spaced from A to B", .default_text = "1.0:1.2:100", .min = 0,
          .max = INFINITY, .flags = MPMAP_OPT_EXCLUSIVE_MIN },
        { .name = "--point", .kind = MPMAP_OPT_STRING_LIST, .target = &p.point_specs,
          .metavar = "X1,X2,...", .default_text = "the origin",
          .help = "where to estimate the density; repeat for more points" },
        { .name = "--cv", .kind = MPMAP_OPT_INT64, .target = &p.folds_flag, .metavar = "K",
          .help = "also score each width by K-fold cross-validation", .min = 2, .max = 1e9,
          .seen = &p.cv_seen },
    };
    mpmap_app_def def = {
        .name = "kde_sweep", .default_output = "kde_sweep.h5",
        .summary = "Kernel density estimates over a sweep of window widths, in parallel.",
        .options = options, .noptions = sizeof options / sizeof options[0], .context = &p,
        .problem = &p.problem, .check = kde_check, .setup = kde_setup, .map = kde_map,
        .finish = kde_finish, .print = kde_print, .cleanup = kde_cleanup };
    return mpmap_app_main(argc, argv, &def);
}
