/*
 * kde_data: where kde_sweep's samples and query points come from — an
 * n x d dataset (--input FILE.h5:/DATASET) or synthetic standard normal
 * samples (--samples, --dim, --seed; one copy per node), and the points of
 * --point (default the origin) — with the checks of those flags.
 */
#ifndef KDE_DATA_H
#define KDE_DATA_H

#include "kde_best.h"
#include "mpmap_app.h"

#include <stdint.h>

typedef struct kde_data {
    /* flags */
    const char *input;
    int64_t samples_flag, dim_flag, seed;
    int samples_seen, dim_seen, seed_seen;
    mpmap_cli_strings point_specs;
    /* on every rank, after kde_data_load */
    mpmap_app_shared *shared;
    const double *samples; /* n x d, read-only, shared by the node */
    int64_t n;
    int d;
    double *points; /* m x d */
    int64_t m;
} kde_data;

/* Query points the flags ask for (before loading). */
int64_t kde_data_npoints(const kde_data *data);
/* Rank 0, before anything is read: flags that only apply to synthetic
 * samples, and synthetic samples that cannot fit. 0 or MPMAP_APP_USAGE. */
int kde_data_check(mpmap_app *app, const kde_data *data);
/* Collective: the samples, then the points (each --point must match the
 * samples' dimension); the samples' shape and bytes go into the problem's
 * fingerprint, as resuming needs the same data. 0 or an exit code with the
 * message set. */
int kde_data_load(mpmap_app *app, kde_data *data, mpmap_app_problem *problem);
/* Rank 0, synthetic data only: /reference_density (the true density at
 * the points) and /abs_error (k widths x m points) of the swept densities,
 * and into best the width closest to the truth. 0, or non-zero when out
 * of memory or a write failed (as mpmap_app_write_array). */
int kde_data_write_reference(mpmap_app *app, const kde_data *data, const double *widths, int64_t k,
                             const double *density, kde_best *best);
void kde_data_free(kde_data *data);

#endif
