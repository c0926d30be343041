/*
 * kde_best: which swept width is best — the one whose densities come
 * closest to the true density of synthetic data, or the one with the
 * highest cross-validation score — and whether it lies on the edge of the
 * swept range, where the optimum may lie beyond it. Pure: no MPI, no HDF5.
 */
#ifndef KDE_BEST_H
#define KDE_BEST_H

#include "mpmap_cli.h"

#include <stdint.h>
#include <stdio.h>

/*
 * Synthetic standard normal data: ref (m) gets the true density at the m
 * points (m x d), err (k x m) each width's |density - ref|; returns the
 * width with the smallest mean error (NaN means never win; 0 when none
 * wins) and that mean in *mean_error (INFINITY when none wins).
 */
int64_t kde_best_reference(const double *points, int64_t m, int d, const double *density, int64_t k,
                           double *ref, double *err, double *mean_error);

/* The width with the highest of k scores; NaN scores never win. */
int64_t kde_best_cv(const double *cv, int64_t k);

/* The best widths of a run; NaN where there is none. */
typedef struct kde_best {
    double reference, reference_error; /* closest to the true density, and its mean error */
    double cv;                         /* highest cross-validation score */
} kde_best;

/* The summary's lines about the best widths, with a warning for each that
 * is the first or last of the swept widths. */
void kde_best_print(FILE *out, const kde_best *best, const mpmap_cli_range *widths, int folds);

#endif
