/*
 * Numerical kernels of the kde_sweep app: hypercube (Parzen window) counts,
 * Gaussian kernel densities and the K-fold cross-validated log-likelihood of
 * a Gaussian KDE. Pure computation: no MPI, no HDF5, no global state (but the
 * instruction-set path, which never changes a result), so any
 * rank can evaluate any width and get bitwise the same number.
 *
 * Samples are n rows of d float64 coordinates, row-major.
 *
 * Hypercube density = count / (n * h^d), where count is the number of samples
 * inside the axis-aligned cube of side h centred on the point. The divisor is
 * the cube's VOLUME h^d. A widespread tutorial version divides by n * h, which
 * is only right for d = 1: in d dimensions it scales the density by h^(d-1),
 * so larger windows look better than they are and the apparent best width
 * moves towards large h.
 */
#ifndef KDE_KERNELS_H
#define KDE_KERNELS_H

#include <stdint.h>

#include "isa.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Number of samples x with |x_j - point_j| <= h/2 for every j (a sample
 * exactly on the cube's face counts). Samples with a NaN coordinate never
 * count.
 */
int64_t kde_hypercube_count(const double *samples, int64_t n, int d, const double *point, double h);

/* count / (n * h^d): the Parzen-window density estimate for a cube of side h. */
double kde_hypercube_density(int64_t count, int64_t n, int d, double h);

/*
 * Gaussian KDE at point: (1/n) sum_x (2 pi h^2)^(-d/2) exp(-|x - point|^2 / (2 h^2)).
 * Terms with exponent below -707 are flushed to 0 (they are below 1e-307).
 */
double kde_gaussian_density(const double *samples, int64_t n, int d, const double *point, double h);

/* Density of the standard normal in d dimensions: (2 pi)^(-d/2) exp(-|p|^2 / 2). */
double kde_standard_normal_density(const double *point, int d);

/*
 * Everything about the K-fold cross-validation that does not depend on the
 * width, computed once: a structure-of-arrays copy of the samples, each fold
 * reordered spatially (k-d order) and cut into blocks with bounding boxes, the
 * fold bounds, and for every row the squared distance to its nearest training
 * row (the row that carries the largest kernel term at every width). The plan
 * is read-only after creation, so one plan may serve many threads.
 */
typedef struct kde_cv_plan kde_cv_plan;

/* Largest dimension the cross-validation accepts (per-group buffers live on the stack). */
#define KDE_CV_MAX_DIM 64

/*
 * Builds the plan for K = folds contiguous folds in input order, the first
 * (n mod K) folds one row longer. Returns 0, MPMAP_EINVAL (n < 2, d < 1 or
 * d > KDE_CV_MAX_DIM, folds < 2 or folds > n, NULL pointers, non-finite coordinates) or
 * MPMAP_ENOMEM. *out is set only on success.
 */
int kde_cv_plan_create(const double *samples, int64_t n, int d, int folds, kde_cv_plan **out);
void kde_cv_plan_free(kde_cv_plan *plan);

int64_t kde_cv_plan_rows(const kde_cv_plan *plan);
int kde_cv_plan_dim(const kde_cv_plan *plan);
int kde_cv_plan_folds(const kde_cv_plan *plan);

/*
 * Mean over folds of sum over held-out rows x of
 *     log( (1/n_train) sum_{training y} K_h(x - y) ),
 * K_h(u) = (2 pi h^2)^(-d/2) exp(-|u|^2 / (2 h^2)). For small widths (the
 * direct form, see kde_cv_plan_expanded) it is evaluated in log-sum-exp form
 * around the nearest training row, so it stays finite for tiny h, and kernel
 * terms below exp(-40) / n_train of the largest term of a row are skipped in
 * whole blocks; together they change the row's sum by less than 1e-17
 * relative, below double resolution. For the other widths every term is
 * computed, once per pair of rows in different folds. Returns NaN for h <= 0
 * or non-finite h, or if memory runs out (a scratch array of about n doubles).
 * The result depends only on the plan and h (bitwise), and is within ~1e-13
 * relative per kernel term of the exact value.
 */
double kde_cv_score(const kde_cv_plan *plan, double h);

/*
 * scores[i] = kde_cv_score(plan, widths[i]) for i < count, bitwise identical
 * to the single-width call whatever the grouping or order of the widths.
 */
void kde_cv_scores(const kde_cv_plan *plan, const double *widths, int count, double *scores);

/*
 * 1 if kde_cv_score evaluates width h with the expanded exponent
 * |x|^2 + |y|^2 - 2 x.y of centred coordinates (moderate and large widths:
 * c R^2 <= 128 with c = 1 / (2 h^2) and R^2 the largest squared distance of a
 * sample from the samples' mean, which keeps every kernel term within ~1e-13
 * relative), 0 if it uses the direct difference form (small widths, and h
 * that kde_cv_score rejects). Depends only on the plan and h.
 */
int kde_cv_plan_expanded(const kde_cv_plan *plan, double h);

/*
 * 2^t as the cross-validation kernels compute it (table of 2^(j/16) and a
 * degree-6 polynomial; within ~2 ulp of 2^t), for t <= 0; 2^t below 2^-1020
 * (and NaN) gives 0. kde_exp2 is the scalar path, kde_exp2_many the path in
 * use (kde_kernels_path); they give the same bits.
 */
double kde_exp2(double t);
void kde_exp2_many(const double *t, int64_t n, double *out);

/*
 * Instruction-set path of the kernels above (isa.h): chosen at the first call
 * from MPMAP_ISA and the CPU, the same for all of them. Every path gives
 * bitwise the same results. kde_kernels_use_path switches to another path
 * supported by this CPU (returns 0) or returns MPMAP_EINVAL and changes
 * nothing; for tests and benchmarks, not to be called while another thread
 * is inside a kernel.
 */
isa_path kde_kernels_path(void);
int kde_kernels_use_path(isa_path path);

#ifdef __cplusplus
}
#endif

#endif /* KDE_KERNELS_H */
