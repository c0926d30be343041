/*
 * kde_sweep: kernel density estimates over a sweep of window widths.
 *
 * One task per width. Each task evaluates the density at every query point
 * (Parzen hypercube window or Gaussian kernel) and, with --cv K, the K-fold
 * cross-validated log-likelihood of the Gaussian kernel at that width.
 * Results stream to rank 0 in width order and into kde_sweep.h5.
 */
#define _POSIX_C_SOURCE 200809L
#include "app_common.h"
#include "kde_kernels.h"
#include "mpmap_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { KERNEL_HYPERCUBE = 0, KERNEL_GAUSSIAN = 1 };
static const char *const kernel_names[] = { "hypercube", "gaussian", NULL };

typedef struct kde_problem {
    app *a; /* first: the shared job callbacks (app_job_progress/trace) find it here */
    /* inputs, on every rank */
    const double *samples;
    int64_t n;
    int d;
    double *points; /* M x d */
    int64_t m;
    mpmap_cli_range widths;
    int kernel;
    int folds;
    kde_cv_plan *plan;
    /* record layout */
    size_t count_offset, cv_offset, record_size;
    /* rank 0: output */
    mpmap_h5_dataset *density_ds, *count_ds, *cv_ds;
    double *density; /* K x M, kept for the summary */
    double *cv;      /* K */
    char *scratch;
    size_t scratch_size;
} kde_problem;

static double width_of(const kde_problem *p, int64_t t) { return mpmap_cli_range_value(&p->widths, t); }

static int kde_map(int64_t begin, int64_t end, void *records, mpmap_task_error *err, void *ctx)
{
    (void)err;
    const kde_problem *p = ctx;
    char *out = records;
    for (int64_t t = begin; t < end; t++) {
        char *rec = out + (size_t)(t - begin) * p->record_size;
        double h = width_of(p, t);
        for (int64_t j = 0; j < p->m; j++) {
            const double *point = p->points + j * p->d;
            double density;
            if (p->kernel == KERNEL_HYPERCUBE) {
                int64_t count = kde_hypercube_count(p->samples, p->n, p->d, point, h);
                /* No sample in the window is density 0, also when h^d
                 * underflows (0/0 would give NaN). */
                density = count == 0 ? 0.0 : kde_hypercube_density(count, p->n, p->d, h);
                memcpy(rec + p->count_offset + (size_t)j * sizeof(int64_t), &count, sizeof count);
            } else {
                density = kde_gaussian_density(p->samples, p->n, p->d, point, h);
            }
            memcpy(rec + (size_t)j * sizeof(double), &density, sizeof density);
        }
    }
    if (p->plan) {
        /* All widths of the slice in one pass over the data; each score is
         * bitwise what a one-width call gives. */
        int64_t count = end - begin;
        double widths[64], scores[64];
        for (int64_t t0 = begin; t0 < end; t0 += 64) {
            int k = (int)(end - t0 < 64 ? end - t0 : 64);
            for (int i = 0; i < k; i++)
                widths[i] = width_of(p, t0 + i);
            kde_cv_scores(p->plan, widths, k, scores);
            for (int i = 0; i < k; i++)
                memcpy(out + (size_t)(t0 + i - begin) * p->record_size + p->cv_offset, &scores[i],
                       sizeof(double));
        }
        (void)count;
    }
    return 0;
}

/* Rank 0: de-interleaves the records of [begin, end) into the datasets. */
static int kde_sink(int64_t begin, int64_t end, const void *records, const int32_t *status,
                    void *ctx)
{
    (void)status;
    kde_problem *p = ctx;
    int64_t rows = end - begin;
    size_t need = (size_t)(rows * p->m) * sizeof(double);
    if (need > p->scratch_size) {
        char *grown = realloc(p->scratch, need);
        if (!grown)
            return -1;
        p->scratch = grown;
        p->scratch_size = need;
    }
    const char *in = records;
    for (int64_t r = 0; r < rows; r++)
        memcpy(p->density + (size_t)((begin + r) * p->m), in + (size_t)r * p->record_size,
               (size_t)p->m * sizeof(double));
    if (mpmap_h5_dataset_write_rows(p->density_ds, begin, rows, p->density + begin * p->m) != 0)
        return -1;
    if (p->count_ds) {
        int64_t *counts = (int64_t *)p->scratch;
        for (int64_t r = 0; r < rows; r++)
            memcpy(counts + r * p->m, in + (size_t)r * p->record_size + p->count_offset,
                   (size_t)p->m * sizeof(int64_t));
        if (mpmap_h5_dataset_write_rows(p->count_ds, begin, rows, counts) != 0)
            return -1;
    }
    if (p->cv_ds) {
        for (int64_t r = 0; r < rows; r++)
            memcpy(p->cv + begin + r, in + (size_t)r * p->record_size + p->cv_offset, sizeof(double));
        if (mpmap_h5_dataset_write_rows(p->cv_ds, begin, rows, p->cv + begin) != 0)
            return -1;
    }
    return 0;
}

/* Rank 0: the datasets that stream during the run. */
static int create_outputs(kde_problem *p, app *a, char *msg, size_t msglen)
{
    if (app_create_output(a, msg, msglen) != 0)
        return APP_EXIT_FAILED;
    mpmap_h5 *f = a->h5;
    int64_t k = p->widths.count;
    double *w = malloc((size_t)k * sizeof *w);
    if (!w)
        return APP_EXIT_FAILED;
    for (int64_t t = 0; t < k; t++)
        w[t] = width_of(p, t);
    int rc = mpmap_h5_write_coordinate(f, "/width", H5T_NATIVE_DOUBLE, k, w, "1",
                                       p->kernel == KERNEL_HYPERCUBE ? "hypercube edge length h"
                                                                     : "Gaussian kernel bandwidth h");
    free(w);
    const char *point_dims[] = { "point_index", "dim" };
    int64_t point_shape[] = { p->m, p->d };
    mpmap_h5_dataset *ds = NULL;
    if (rc == 0)
        rc = mpmap_h5_dataset_create(f, "/point", H5T_NATIVE_DOUBLE, 2, point_shape, point_dims, &ds);
    if (rc == 0)
        rc = mpmap_h5_dataset_write_all(ds, p->points);
    if (ds)
        mpmap_h5_dataset_close(ds);
    if (rc == 0)
        rc = mpmap_h5_attr_string(f, "/point", "long_name", "query points where the density is estimated");
    const char *km_dims[] = { "width", "point_index" };
    int64_t km_shape[] = { k, p->m };
    if (rc == 0)
        rc = mpmap_h5_dataset_create(f, "/density", H5T_NATIVE_DOUBLE, 2, km_shape, km_dims,
                                     &p->density_ds);
    if (rc == 0)
        rc = mpmap_h5_attr_string(f, "/density", "long_name",
                                  p->kernel == KERNEL_HYPERCUBE
                                      ? "Parzen hypercube density estimate count/(n*h^d)"
                                      : "Gaussian kernel density estimate");
    if (rc == 0 && p->kernel == KERNEL_HYPERCUBE) {
        rc = mpmap_h5_dataset_create(f, "/count", H5T_NATIVE_INT64, 2, km_shape, km_dims,
                                     &p->count_ds);
        if (rc == 0)
            rc = mpmap_h5_attr_string(f, "/count", "long_name",
                                      "samples inside the hypercube of edge h around the point");
    }
    if (rc == 0 && p->folds > 0) {
        const char *k_dims[] = { "width" };
        rc = mpmap_h5_dataset_create(f, "/cv_score", H5T_NATIVE_DOUBLE, 1, &k, k_dims, &p->cv_ds);
        if (rc == 0)
            rc = mpmap_h5_attr_string(f, "/cv_score", "long_name",
                                      "K-fold cross-validated log-likelihood (Gaussian kernel), mean over folds");
    }
    return rc != 0 ? app_output_failed(a, msg, msglen) : 0;
}

/* Rank 0, after a successful run: reference, errors, best widths, provenance. */
static int write_summary(kde_problem *p, app *a, const mpmap_report *report, bool synthetic,
                         double *best_width, double *best_error, double *best_cv_width)
{
    mpmap_h5 *f = a->h5;
    int64_t k = p->widths.count;
    int rc = 0;
    *best_width = NAN;
    *best_error = NAN;
    *best_cv_width = NAN;
    if (synthetic) {
        double *ref = malloc((size_t)p->m * sizeof *ref);
        double *err = malloc((size_t)(k * p->m) * sizeof *err);
        if (!ref || !err) {
            free(ref);
            free(err);
            return -1;
        }
        for (int64_t j = 0; j < p->m; j++)
            ref[j] = kde_standard_normal_density(p->points + j * p->d, p->d);
        int64_t best = 0;
        double best_mean = INFINITY;
        for (int64_t t = 0; t < k; t++) {
            double mean = 0;
            for (int64_t j = 0; j < p->m; j++) {
                err[t * p->m + j] = fabs(p->density[t * p->m + j] - ref[j]);
                mean += err[t * p->m + j] / (double)p->m;
            }
            if (!isnan(mean) && mean < best_mean) {
                best_mean = mean;
                best = t;
            }
        }
        *best_width = width_of(p, best);
        *best_error = best_mean;
        const char *m_dims[] = { "point_index" };
        const char *km_dims[] = { "width", "point_index" };
        int64_t km_shape[] = { k, p->m };
        mpmap_h5_dataset *ds = NULL;
        rc = mpmap_h5_dataset_create(f, "/reference_density", H5T_NATIVE_DOUBLE, 1, &p->m, m_dims, &ds);
        if (rc == 0)
            rc = mpmap_h5_dataset_write_all(ds, ref);
        if (ds)
            mpmap_h5_dataset_close(ds);
        ds = NULL;
        if (rc == 0)
            rc = mpmap_h5_attr_string(f, "/reference_density", "long_name",
                                      "true density of the synthetic standard normal data");
        if (rc == 0)
            rc = mpmap_h5_dataset_create(f, "/abs_error", H5T_NATIVE_DOUBLE, 2, km_shape, km_dims, &ds);
        if (rc == 0)
            rc = mpmap_h5_dataset_write_all(ds, err);
        if (ds)
            mpmap_h5_dataset_close(ds);
        if (rc == 0)
            rc = mpmap_h5_attr_string(f, "/abs_error", "long_name", "|density - reference_density|");
        if (rc == 0)
            rc = mpmap_h5_attr_double(f, "/", "best_width_reference", *best_width);
        if (rc == 0)
            rc = mpmap_h5_attr_double(f, "/", "best_abs_error", best_mean);
        free(ref);
        free(err);
    }
    if (rc == 0 && p->folds > 0) {
        int64_t best = 0; /* the highest score; NaN scores never win */
        for (int64_t t = 1; t < k; t++)
            if (!isnan(p->cv[t]) && (isnan(p->cv[best]) || p->cv[t] > p->cv[best]))
                best = t;
        *best_cv_width = width_of(p, best);
        rc = mpmap_h5_attr_double(f, "/", "best_width_cv", *best_cv_width);
        if (rc == 0)
            rc = mpmap_h5_attr_double(f, "/", "best_cv_score", p->cv[best]);
    }
    if (rc == 0 && (!isnan(*best_cv_width) || !isnan(*best_width)))
        rc = mpmap_h5_attr_double(f, "/", "best_width",
                                  !isnan(*best_cv_width) ? *best_cv_width : *best_width);
    char n_text[32], d_text[16], folds_text[16];
    snprintf(n_text, sizeof n_text, "%lld", (long long)p->n);
    snprintf(d_text, sizeof d_text, "%d", p->d);
    snprintf(folds_text, sizeof folds_text, "%d", p->folds);
    const char *keys[] = { "kernel", "samples", "dim", "cv_folds", "data" };
    const char *values[] = { kernel_names[p->kernel], n_text, d_text, folds_text,
                             synthetic ? "synthetic standard normal" : "input file" };
    if (rc == 0)
        rc = app_write_provenance(a, report, 5, keys, values);
    return rc;
}

int main(int argc, char **argv)
{
    app a;
    app_init(&a, "kde_sweep", &argc, &argv);

    const char *input = NULL;
    int64_t samples = 10000, dim = 2, seed = 123, folds = 0;
    int samples_seen = 0, dim_seen = 0, seed_seen = 0, cv_seen = 0;
    int kernel = KERNEL_HYPERCUBE;
    mpmap_cli_range widths = { 1.0, 1.2, 100 };
    mpmap_cli_strings point_specs = { 0 };

    app_add_option(&a, (mpmap_option){ .name = "--input", .kind = MPMAP_OPT_STRING, .target = &input,
                                       .metavar = "FILE.h5:/DATASET",
                                       .help = "samples: an n x d float64 dataset (default: synthetic standard normal)" });
    app_add_option(&a, (mpmap_option){ .name = "--samples", .kind = MPMAP_OPT_INT64, .target = &samples,
                                       .metavar = "N", .help = "synthetic samples", .default_text = "10000",
                                       .min = 1, .max = 1e10, .seen = &samples_seen });
    app_add_option(&a, (mpmap_option){ .name = "--dim", .kind = MPMAP_OPT_INT64, .target = &dim,
                                       .metavar = "D", .help = "dimension of the synthetic samples",
                                       .default_text = "2", .min = 1, .max = KDE_CV_MAX_DIM, .seen = &dim_seen });
    app_add_option(&a, (mpmap_option){ .name = "--seed", .kind = MPMAP_OPT_INT64, .target = &seed,
                                       .metavar = "S", .help = "seed of the synthetic samples",
                                       .default_text = "123", .min = 0, .max = 9.2e18, .seen = &seed_seen });
    app_add_option(&a, (mpmap_option){ .name = "--kernel", .kind = MPMAP_OPT_CHOICE, .target = &kernel,
                                       .help = "hypercube (Parzen window) or gaussian",
                                       .default_text = "hypercube", .choices = kernel_names });
    app_add_option(&a, (mpmap_option){ .name = "--widths", .kind = MPMAP_OPT_RANGE, .target = &widths,
                                       .metavar = "A:B:K", .help = "K widths evenly spaced from A to B",
                                       .default_text = "1.0:1.2:100", .min = 0, .max = INFINITY,
                                       .flags = MPMAP_OPT_EXCLUSIVE_MIN });
    app_add_option(&a, (mpmap_option){ .name = "--point", .kind = MPMAP_OPT_STRING_LIST,
                                       .target = &point_specs, .metavar = "X1,X2,...",
                                       .help = "where to estimate the density; repeat for more points",
                                       .default_text = "the origin" });
    app_add_option(&a, (mpmap_option){ .name = "--cv", .kind = MPMAP_OPT_INT64, .target = &folds,
                                       .metavar = "K", .help = "also score each width by K-fold cross-validation",
                                       .min = 2, .max = 1e9, .seen = &cv_seen });

    int code = app_parse(&a, "kde_sweep.h5",
                         "Kernel density estimates over a sweep of window widths, in parallel.");
    if (code >= 0)
        return app_exit(&a, code);

    /* Checks that need no data; rank 0 decides for everyone. */
    char msg[APP_MESSAGE_MAX] = "";
    code = 0;
    bool synthetic = input == NULL;
    if (!synthetic && (samples_seen || dim_seen || seed_seen)) {
        snprintf(msg, sizeof msg, "%s: only applies to synthetic data, not with --input",
                 samples_seen ? "--samples" : dim_seen ? "--dim" : "--seed");
        code = APP_EXIT_USAGE;
    }
    if (code == 0 && a.rank == 0)
        code = app_check_output(&a, NULL, msg, sizeof msg);
    code = app_agree(&a, code, msg);
    if (code != 0)
        return app_exit(&a, code);

    kde_problem p = { .a = &a, .widths = widths, .kernel = kernel, .folds = (int)folds };
    app_shared shared = { .window = MPI_WIN_NULL, .node = MPI_COMM_NULL, .leaders = MPI_COMM_NULL };
    if (synthetic) {
        p.n = samples;
        p.d = (int)dim;
        if (app_shared_alloc(&a, p.n * p.d, &shared) != 0) {
            code = app_agree(&a, APP_EXIT_USAGE, "--samples: the samples do not fit in memory");
            return app_exit(&a, code);
        }
        /* One copy per node, drawn by the node's first rank; row i is
         * random stream i, so the data never depends on the rank count. */
        if (shared.node_leader)
            mpmap_rng_rows_normal((uint64_t)seed, 0, (size_t)p.n, (size_t)p.d, shared.data);
        app_shared_publish(&a, &shared, false);
    } else {
        int64_t rows, cols;
        code = app_load_matrix(&a, "--input", input, &shared, &rows, &cols);
        if (code != 0)
            return app_exit(&a, code);
        p.n = rows;
        p.d = (int)cols;
        if (cols > KDE_CV_MAX_DIM) {
            code = app_agree(&a, APP_EXIT_USAGE, "--input: more than 64 columns");
            return app_exit(&a, code);
        }
    }
    const double *data = shared.data;
    p.samples = data;

    /* Points: default the origin, each --point must match the data's dimension. */
    p.m = point_specs.count > 0 ? (int64_t)point_specs.count : 1;
    p.points = calloc((size_t)(p.m * p.d), sizeof *p.points);
    code = p.points ? 0 : APP_EXIT_FAILED;
    for (size_t i = 0; code == 0 && i < point_specs.count; i++) {
        mpmap_cli_list list = { 0 };
        if (mpmap_parse_double_list(point_specs.items[i], &list) != 0) {
            snprintf(msg, sizeof msg, "--point: expected comma-separated numbers, got '%s'",
                     point_specs.items[i]);
            code = APP_EXIT_USAGE;
        } else if ((int64_t)list.count != p.d) {
            snprintf(msg, sizeof msg,
                     "--point: expected %d coordinates (the data has %d dimensions), got '%s'", p.d,
                     p.d, point_specs.items[i]);
            code = APP_EXIT_USAGE;
        } else {
            memcpy(p.points + (int64_t)i * p.d, list.values, (size_t)p.d * sizeof(double));
        }
        mpmap_cli_list_free(&list);
    }
    if (code == 0 && cv_seen && folds > p.n) {
        snprintf(msg, sizeof msg, "--cv: %lld folds but only %lld samples", (long long)folds,
                 (long long)p.n);
        code = APP_EXIT_USAGE;
    }
    code = app_agree(&a, code, msg);
    if (code != 0) {
        app_shared_free(&shared);
        free(p.points);
        return app_exit(&a, code);
    }

    /* Resuming needs the same data: the fingerprint covers its shape and bytes. */
    char extra[128];
    snprintf(extra, sizeof extra, "data=%lldx%d:%016llx", (long long)p.n, p.d,
             (unsigned long long)app_hash_bytes(data, (size_t)(p.n * p.d) * sizeof(double)));
    app_configure(&a, extra);

    if (p.folds > 0 && kde_cv_plan_create(p.samples, p.n, p.d, p.folds, &p.plan) != 0) {
        app_error(&a, "--cv: cannot prepare the cross-validation (out of memory?)");
        return app_exit(&a, APP_EXIT_FAILED);
    }
    p.count_offset = (size_t)p.m * sizeof(double);
    p.cv_offset = p.count_offset + (p.kernel == KERNEL_HYPERCUBE ? (size_t)p.m * sizeof(int64_t) : 0);
    p.record_size = p.cv_offset + (p.folds > 0 ? sizeof(double) : 0);

    code = 0;
    if (a.rank == 0) {
        bool fits = app_fits_in_memory(p.widths.count, (size_t)p.m * sizeof(double));
        p.density = fits ? malloc((size_t)(p.widths.count * p.m) * sizeof(double)) : NULL;
        p.cv = fits ? malloc((size_t)p.widths.count * sizeof(double)) : NULL;
        if (!p.density || !p.cv) {
            snprintf(msg, sizeof msg, "--widths: %lld widths do not fit in memory",
                     (long long)p.widths.count);
            code = APP_EXIT_USAGE;
        } else {
            code = create_outputs(&p, &a, msg, sizeof msg);
        }
    }
    code = app_agree(&a, code, msg);
    if (code != 0)
        return app_exit(&a, code);

    mpmap_job job = { .ntasks = p.widths.count, .record_size = p.record_size, .map = kde_map,
                      .context = &p, .sink = kde_sink, .trace = app_job_trace,
                      .progress = app_job_progress };
    mpmap_report report;
    int status = mpmap_run(a.comm, &a.config, &job, &report);

    double best_width = NAN, best_error = NAN, best_cv = NAN;
    if (status == MPMAP_OK && a.rank == 0) {
        if (mpmap_h5_dataset_close(p.density_ds) != 0 ||
            (p.count_ds && mpmap_h5_dataset_close(p.count_ds) != 0) ||
            (p.cv_ds && mpmap_h5_dataset_close(p.cv_ds) != 0) ||
            write_summary(&p, &a, &report, synthetic, &best_width, &best_error, &best_cv) != 0) {
            status = MPMAP_EHDF5;
            app_output_failed(&a, report.message, sizeof report.message);
        }
        p.density_ds = p.count_ds = p.cv_ds = NULL;
    } else if (a.rank == 0) {
        if (p.density_ds)
            mpmap_h5_dataset_close(p.density_ds);
        if (p.count_ds)
            mpmap_h5_dataset_close(p.count_ds);
        if (p.cv_ds)
            mpmap_h5_dataset_close(p.cv_ds);
    }
    MPI_Bcast(&status, 1, MPI_INT, 0, a.comm);
    code = app_finish(&a, status, &report);

    if (code == APP_EXIT_OK && a.rank == 0 && !a.common.quiet) {
        printf("kde_sweep: %lld widths from %g to %g, %s kernel, n=%lld d=%d, %lld point%s\n",
               (long long)p.widths.count, p.widths.start, p.widths.stop, kernel_names[p.kernel],
               (long long)p.n, p.d, (long long)p.m, p.m == 1 ? "" : "s");
        if (!isnan(best_width))
            printf("  best width (closest to the true density): %.6g, abs error %.3g\n", best_width,
                   best_error);
        if (!isnan(best_cv))
            printf("  best width (%d-fold cross-validation): %.6g\n", p.folds, best_cv);
        app_print_run_summary(&a, &report);
    }
    kde_cv_plan_free(p.plan);
    free(p.density);
    free(p.cv);
    free(p.scratch);
    free(p.points);
    app_shared_free(&shared);
    return app_exit(&a, code);
}
