/* Where kde_sweep's samples and query points come from; see kde_data.h. */
#define _POSIX_C_SOURCE 200809L
#include "kde_data.h"
#include "kde_kernels.h"
#include "mpmap_rng.h"

#include <stdlib.h>

int64_t kde_data_npoints(const kde_data *d)
{
    return d->point_specs.count > 0 ? (int64_t)d->point_specs.count : 1;
}

int kde_data_check(mpmap_app *app, const kde_data *d)
{
    if (d->input && (d->samples_seen || d->dim_seen || d->seed_seen))
        return mpmap_app_usage(app, "%s: only applies to synthetic data, not with --input",
                               d->samples_seen ? "--samples"
                               : d->dim_seen   ? "--dim"
                                               : "--seed");
    if (!d->input && !mpmap_app_fits_in_memory(d->samples_flag * d->dim_flag, sizeof(double)))
        return mpmap_app_usage(app,
                               "--samples: %lld samples x %lld dimensions do not fit in "
                               "memory",
                               (long long)d->samples_flag, (long long)d->dim_flag);
    return 0;
}

int kde_data_load(mpmap_app *app, kde_data *d, mpmap_app_problem *problem)
{
    int64_t rows, cols;
    int code = mpmap_app_input_matrix(app, d->input ? "--input" : "--samples", d->input,
                                      mpmap_rng_rows_normal, (uint64_t)d->seed, d->samples_flag,
                                      d->dim_flag, &d->shared, &rows, &cols);
    if (code != 0)
        return code;
    d->n = rows;
    d->d = (int)cols;
    d->samples = mpmap_app_shared_data(d->shared);
    /* The cross-validation keeps per-group buffers on the stack (KDE_CV_MAX_DIM). */
    if (cols > KDE_CV_MAX_DIM)
        return mpmap_app_usage(app, "--input: more than 64 columns");
    mpmap_app_fingerprint_matrix(app, problem, "data", d->samples, d->n, d->d);
    return mpmap_app_points(app, "--point", &d->point_specs, d->d, &d->points, &d->m);
}

int kde_data_write_reference(mpmap_app *app, const kde_data *x, const double *widths, int64_t k,
                             const double *density, kde_best *best)
{
    int64_t m = x->m;
    double *ref = malloc((size_t)m * sizeof *ref);
    double *err = malloc((size_t)(k * m) * sizeof *err);
    int rc = ref && err ? 0 : -1;
    if (rc == 0)
        best->reference = widths[kde_best_reference(x->points, m, x->d, density, k, ref, err,
                                                    &best->reference_error)];
    /* clang-format off */
    if (rc == 0)
        rc = mpmap_app_write_array(app, &(mpmap_app_field){
            .name = "reference_density", .type = MPMAP_DOUBLE, .rank = 1, .shape = { m },
            .dims = { "point_index" },
            .long_name = "true density of the synthetic standard normal data" }, ref);
    if (rc == 0)
        rc = mpmap_app_write_array(app, &(mpmap_app_field){
            .name = "abs_error", .type = MPMAP_DOUBLE, .rank = 2, .shape = { k, m },
            .dims = { "width", "point_index" },
            .long_name = "|density - reference_density|" }, err);
    /* clang-format on */
    free(ref);
    free(err);
    return rc;
}

void kde_data_free(kde_data *d)
{
    free(d->points);
    mpmap_app_shared_free(d->shared);
}
