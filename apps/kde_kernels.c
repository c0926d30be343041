/*
 * Numerical kernels of the kde_sweep app (see kde_kernels.h).
 *
 * The hot loop is the Gaussian cross-validation: every held-out row against
 * every training row, once per width. It is organised so that
 *   - the width-independent work (fold layout, spatial order, bounding boxes,
 *     nearest-neighbour distances, a centred copy of the coordinates) is done
 *     once in the plan;
 *   - the inner loop runs over a structure-of-arrays copy of the training rows,
 *     eight rows per vector (one AVX-512 vector or two AVX2 vectors), and
 *     every held-out row keeps eight lane sums (training position q goes to
 *     lane q % 8, lanes added in a fixed order at the end);
 *   - the kernel is evaluated as 2^t2 with t2 = log2(e) c (d2min - |x - y|^2)
 *     (direct form; the expanded form drops d2min), c = 1 / (2 h^2): base 2 makes the range reduction one add and two
 *     subtractions, and a 16-entry table of 2^(j/16) leaves a degree-6
 *     polynomial on |f| <= 1/32 (error below 2e-17), see kde_exp2_*;
 *   - for moderate and large widths the exponent is formed from the expansion
 *     |x - y|^2 = |x|^2 + |y|^2 - 2 x.y of centred coordinates (d + 1 FMAs per
 *     pair instead of 2d + 1 operations); for small widths, where c |x|^2 is
 *     large and the expansion would cancel, the direct difference form is
 *     kept. The form is chosen from h and the plan alone (kde_cv_plan_expanded);
 *   - in the expanded form each cross-fold pair of rows is evaluated once
 *     and its term added to both rows' sums (kde_cv_sym_body.h): half the
 *     exponentials;
 *   - eight held-out rows share every training vector that is loaded;
 *   - in the direct form, whole blocks of 16 training rows whose kernel
 *     terms are negligible (below exp(-40) / n_train of the row's largest
 *     term) are skipped using bounding boxes, which is where small widths get
 *     their speed.
 * The order of every floating-point operation depends only on the plan and the
 * width, so a width's score is bitwise the same whichever rank computes it and
 * whatever other widths it is computed with. The AVX-512, AVX2 and scalar-with-
 * FMA paths perform the same operations lane by lane (vscalefpd equals the
 * exponent-field addition of the other paths for the normal results it is
 * given), so they agree too.
 *
 * Run-time dispatch: the code whose speed depends on the instruction set
 * (kde_kernels_body.h, which includes kde_exp_body.h, kde_density_body.h and
 * kde_cv_body.h) is compiled three times, for the scalar, AVX2+FMA and
 * AVX-512 paths (isa.h), and every public function calls the copy of the path
 * chosen at first use (MPMAP_ISA, else the best the CPU supports). The scalar
 * path rounds exactly like the vector paths because every multiply-add that
 * the vector paths fuse is an explicit fma() call here (inlined as an FMA
 * instruction in the vector paths, libm's exact fma elsewhere), and the file
 * turns contraction off (below), so no other a * b + c is fused on any path.
 * The numbers are those of the former -march=native builds on FMA machines.
 */
#include "kde_kernels.h"

#include <mpmap.h>

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "isa.h"

#if ISA_X86
#include <immintrin.h>
#endif

/* No contraction of a * b + c into an FMA anywhere in this file: a compiler
 * may fuse only where the target has FMA, i.e. in the vector paths' copies of
 * the scalar code, and the paths would disagree. GCC does not contract in
 * ISO C mode, but does under -std=gnu*; clang contracts by default. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* a*b + c with one rounding on every path: the vector paths use FMA
 * instructions, so the scalar code must too (never a * b + c). */
#define KDE_FMA(a, b, c) fma((a), (b), (c))

#define KDE_LANES 8  /* lane sums per held-out row; also the fold padding granule */
#define KDE_DLANES 4 /* lane sums of kde_gaussian_density */
#define KDE_BLOCK 16 /* training rows per bounding box */
#define KDE_GROUP 8  /* held-out rows evaluated together (the unroll pragmas below match) */

/* 2^t for t < KDE_EXP2_MIN is returned as 0 (it is below 1e-307); keeping
 * t >= -1020 also keeps every result a normal number, so adding the integer
 * part of t to the exponent field is exact. */
#define KDE_EXP2_MIN (-1020.0)
/* Adding 1.5 * 2^48 rounds t to a multiple of 1/16 and leaves 16 t in the low
 * mantissa bits: the low four bits index the table, the rest is floor(t). */
#define KDE_EXP2_SHIFTER 0x1.8p48

/* Kernel terms exp(t) with t < -(KDE_SKIP_MARGIN + log(n_train)) may be
 * skipped: all of them together are below exp(-40) ~ 4e-18 of the row's
 * largest term, which is 1 after the log-sum-exp shift. */
#define KDE_SKIP_MARGIN 40.0

/*
 * The expanded exponent b_x + a_y + sum_j p_xj y_j adds terms as large as
 * c |x|^2, c |y|^2 and 2 c |x| |y| (centred coordinates, each at most c R^2
 * with R^2 the largest squared distance of a row from the centre), so its
 * absolute rounding error is a few ulp of c R^2. With c R^2 <= 128 that is
 * below ~1e-13, i.e. every kernel term keeps a relative error below ~1e-13;
 * it also bounds every exponent below by -4 c R^2 log2(e) > -740, shifted or
 * not (|x - y|^2 <= 4 R^2), so no lane can reach KDE_EXP2_MIN: the expanded
 * path needs no underflow mask, and no log-sum-exp shift either (see
 * kde_cv_sym_body.h).
 */
#define KDE_EXPANDED_LIMIT 128.0

#define KDE_LOG2E 0x1.71547652b82fep+0
#define KDE_LN2 0x1.62e42fefa39efp-1
#define KDE_LOG_2PI 1.8378770664093454835606594728112

/* 2^f = 1 + f q(f) on |f| <= 1/32: Chebyshev fit of (2^f - 1) / f of degree
 * 5, relative error of 2^f below 1.5e-17 (before rounding). */
#define KDE_P1 0x1.62e42fefa39f3p-1
#define KDE_P2 0x1.ebfbdff82c590p-3
#define KDE_P3 0x1.c6b08d6f2a289p-5
#define KDE_P4 0x1.3b2ab6fb41213p-7
#define KDE_P5 0x1.5d897e525c216p-10
#define KDE_P6 0x1.430a1d08ec681p-13

#define KDE_INLINE static inline __attribute__((always_inline))

/* 2^(j/16), j = 0..15, correctly rounded. */
static const double kde_exp2_table[16] __attribute__((aligned(64))) = {
    0x1.0000000000000p+0, 0x1.0b5586cf9890fp+0, 0x1.172b83c7d517bp+0, 0x1.2387a6e756238p+0,
    0x1.306fe0a31b715p+0, 0x1.3dea64c123422p+0, 0x1.4bfdad5362a27p+0, 0x1.5ab07dd485429p+0,
    0x1.6a09e667f3bcdp+0, 0x1.7a11473eb0187p+0, 0x1.8ace5422aa0dbp+0, 0x1.9c49182a3f090p+0,
    0x1.ae89f995ad3adp+0, 0x1.c199bdd85529cp+0, 0x1.d5818dcfba487p+0, 0x1.ea4afa2a490dap+0,
};

struct kde_cv_plan {
    int64_t n;
    int d;
    int folds;
    int64_t stride;       /* padded positions per coordinate (multiple of KDE_LANES) */
    int64_t *fold_len;    /* [folds] rows per fold */
    int64_t *seg_begin;   /* [folds + 1] first position of each fold (multiple of KDE_LANES) */
    int64_t *block_first; /* [folds + 1] first bounding-box block of each fold */
    double
        *coord; /* [d * stride] coordinate j of position q at coord[j * stride + q]; padding is 0 */
    double *ccoord; /* [d * stride] the same minus the mean of the samples; padding is 0 */
    double *cnorm2; /* [stride] squared norm of the centred coordinates; padding is 0 */
    double r2max;   /* largest cnorm2 */
    double *d2min;  /* [stride] squared distance from a row to its nearest training row */
    double *box_lo; /* [nblocks * d] lower corner of each block of KDE_BLOCK positions */
    double *box_hi; /* [nblocks * d] upper corner */
};

/* ------------------------------------------------------- shared helpers */

/* ------------------------------------------------------------------ plan */

typedef struct {
    double key;
    int64_t row;
} kde_keyed;

static int kde_keyed_cmp(const void *a, const void *b)
{
    const kde_keyed *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row); /* total order: qsort is not stable */
}

/*
 * Reorders rows[0..count) into k-d order: split at a multiple of KDE_BLOCK
 * (then of KDE_GROUP) along the widest coordinate, recursively, so every
 * aligned block and every held-out group is spatially compact.
 */
static void kde_kd_order(int64_t *rows, int64_t count, const double *samples, int d,
                         kde_keyed *scratch)
{
    if (count <= KDE_GROUP)
        return;
    const int64_t grain = count > KDE_BLOCK ? KDE_BLOCK : KDE_GROUP;
    int widest = 0;
    double widest_extent = -1.0;
    for (int j = 0; j < d; j++) {
        double lo = INFINITY, hi = -INFINITY;
        for (int64_t i = 0; i < count; i++) {
            const double v = samples[rows[i] * d + j];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        if (hi - lo > widest_extent) {
            widest_extent = hi - lo;
            widest = j;
        }
    }
    for (int64_t i = 0; i < count; i++) {
        scratch[i].key = samples[rows[i] * d + widest];
        scratch[i].row = rows[i];
    }
    qsort(scratch, (size_t)count, sizeof *scratch, kde_keyed_cmp);
    for (int64_t i = 0; i < count; i++)
        rows[i] = scratch[i].row;
    const int64_t grains = (count + grain - 1) / grain;
    const int64_t left = (grains + 1) / 2 * grain; /* 0 < left < count since count > grain */
    kde_kd_order(rows, left, samples, d, scratch);
    kde_kd_order(rows + left, count - left, samples, d, scratch);
}

/* Squared distance between boxes [alo, ahi] and [blo, bhi]: a lower bound of
 * the squared distance between any point of one and any point of the other. */
static inline double kde_box_gap2(const double *alo, const double *ahi, const double *blo,
                                  const double *bhi, int d)
{
    double s = 0.0;
    for (int j = 0; j < d; j++) {
        double g = alo[j] - bhi[j];
        const double g2 = blo[j] - ahi[j];
        g = g2 > g ? g2 : g;
        if (g > 0.0)
            s += g * g;
    }
    return s;
}

/* A group of up to KDE_GROUP held-out positions (the last one repeated when
 * the fold runs out), with its coordinates and bounding box. */
typedef struct {
    int64_t pos[KDE_GROUP];
    int valid;
    double lo[KDE_CV_MAX_DIM], hi[KDE_CV_MAX_DIM];
} kde_group_box;

static void kde_group_load(const kde_cv_plan *p, int64_t first, int64_t remaining, double *xs,
                           kde_group_box *g)
{
    const int d = p->d;
    g->valid = remaining < KDE_GROUP ? (int)remaining : KDE_GROUP;
    for (int r = 0; r < KDE_GROUP; r++)
        g->pos[r] = first + (r < g->valid ? r : g->valid - 1);
    for (int j = 0; j < d; j++) {
        double lo = INFINITY, hi = -INFINITY;
        for (int r = 0; r < KDE_GROUP; r++) {
            const double v = p->coord[j * p->stride + g->pos[r]];
            xs[r * d + j] = v;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        g->lo[j] = lo;
        g->hi[j] = hi;
    }
}

/* The exponent form of a width (before the per-path code, which uses it). */
/* ----------------------------------------------------------------- score */

/*
 * The exponent of the kernel term of held-out row x and training row y, in
 * base 2, is formed from per-row constants a (d values) and b, with
 * c2 = log2(e) / (2 h^2):
 *   direct:   t2 = c2 (b - sum_j (y_j - a_j)^2),  a = x,        b = d2min,
 *             i.e. c2 (d2min - |x - y|^2), shifted by the row's nearest term;
 *   expanded: t2 = b - c2 |y'|^2 + sum_j a_j y'_j, a = 2 c2 x', b = -c2 |x'|^2,
 *             i.e. -c2 |x - y|^2, unshifted and symmetric in x and y,
 * where x', y' are the centred coordinates.
 */
int kde_cv_plan_expanded(const kde_cv_plan *plan, double h)
{
    if (plan == NULL || !(h > 0.0) || !isfinite(h))
        return 0;
    const double c = 0.5 / (h * h);
    return isfinite(c) && c * plan->r2max <= KDE_EXPANDED_LIMIT;
}

/* ------------------------------------------------------ per-path copies */

#define KDE_USE_AVX2 0
#define KDE_USE_AVX512 0
#define KDE_FN(name) name##_scalar
#include "kde_kernels_body.h"
#undef KDE_FN
#undef KDE_USE_AVX2
#undef KDE_USE_AVX512

#if ISA_X86
ISA_PUSH_AVX2
#define KDE_USE_AVX2 1
#define KDE_USE_AVX512 0
#define KDE_FN(name) name##_avx2
#include "kde_kernels_body.h"
#undef KDE_FN
#undef KDE_USE_AVX2
#undef KDE_USE_AVX512
ISA_POP

ISA_PUSH_AVX512
#define KDE_USE_AVX2 1
#define KDE_USE_AVX512 1
#define KDE_FN(name) name##_avx512
#include "kde_kernels_body.h"
#undef KDE_FN
#undef KDE_USE_AVX2
#undef KDE_USE_AVX512
ISA_POP
#endif

/* ------------------------------------------------------------- dispatch */

/* The path in use: -1 until the first call reads MPMAP_ISA. Relaxed atomics:
 * racing first calls all compute the same value. */
static atomic_int kde_path_state = -1;

isa_path kde_kernels_path(void)
{
    int p = atomic_load_explicit(&kde_path_state, memory_order_relaxed);
    if (p < 0) {
        p = (int)isa_from_env("kde_kernels");
        atomic_store_explicit(&kde_path_state, p, memory_order_relaxed);
    }
    return (isa_path)p;
}

int kde_kernels_use_path(isa_path path)
{
    if (!isa_supported(path))
        return MPMAP_EINVAL;
    atomic_store_explicit(&kde_path_state, (int)path, memory_order_relaxed);
    return 0;
}

#if ISA_X86
/* Calls name_<path>(args) for the path in use. */
#define KDE_DISPATCH(name, args)                                                                   \
    switch (kde_kernels_path()) {                                                                  \
    case ISA_AVX512: return name##_avx512 args;                                                    \
    case ISA_AVX2: return name##_avx2 args;                                                        \
    default: return name##_scalar args;                                                            \
    }
#else
#define KDE_DISPATCH(name, args) return name##_scalar args;
#endif

/* ------------------------------------------------------------------ exp */

double kde_exp2(double t) { return kde_exp2_scalar_scalar(t); }

void kde_exp2_many(const double *t, int64_t n,
                   double *out){ KDE_DISPATCH(kde_exp2_many_impl, (t, n, out)) }

/* ------------------------------------------------------------ hypercube */

int64_t kde_hypercube_count(const double *samples, int64_t n, int d, const double *point, double h)
{
    KDE_DISPATCH(kde_hypercube_count_impl, (samples, n, d, point, h))
}

double kde_hypercube_density(int64_t count, int64_t n, int d, double h)
{
    /* Divide by the cube's volume h^d, not by h. */
    return (double)count / ((double)n * pow(h, (double)d));
}

/* ------------------------------------------------------------- Gaussian */

double kde_gaussian_density(const double *samples, int64_t n, int d, const double *point, double h)
{
#if ISA_X86
    if (kde_kernels_path() != ISA_SCALAR) /* AVX-512 CPUs too: see kde_density_body.h */
        return kde_gaussian_density_impl_avx2(samples, n, d, point, h);
#endif
    return kde_gaussian_density_impl_scalar(samples, n, d, point, h);
}

double kde_standard_normal_density(const double *point, int d)
{
    double s = 0.0;
    for (int j = 0; j < d; j++)
        s += point[j] * point[j];
    return exp(-0.5 * d * KDE_LOG_2PI - 0.5 * s);
}

/* ------------------------------------------------------------------ plan */

static int kde_plan_nearest(kde_cv_plan *p) { KDE_DISPATCH(kde_plan_nearest, (p)) }

int kde_cv_plan_create(const double *samples, int64_t n, int d, int folds, kde_cv_plan **out)
{
    if (samples == NULL || out == NULL || n < 2 || d < 1 || d > KDE_CV_MAX_DIM || folds < 2 ||
        (int64_t)folds > n)
        return MPMAP_EINVAL;
    for (int64_t i = 0; i < n * d; i++)
        if (!isfinite(samples[i]))
            return MPMAP_EINVAL;

    kde_cv_plan *p = calloc(1, sizeof *p);
    if (p == NULL)
        return MPMAP_ENOMEM;
    p->n = n;
    p->d = d;
    p->folds = folds;
    p->fold_len = calloc((size_t)folds, sizeof *p->fold_len);
    p->seg_begin = calloc((size_t)folds + 1, sizeof *p->seg_begin);
    p->block_first = calloc((size_t)folds + 1, sizeof *p->block_first);
    int64_t *rows = malloc(sizeof *rows * (size_t)n);
    kde_keyed *scratch = malloc(sizeof *scratch * (size_t)n);
    if (p->fold_len == NULL || p->seg_begin == NULL || p->block_first == NULL || rows == NULL ||
        scratch == NULL)
        goto nomem;

    /* Folds in input order; segments padded to whole vectors. */
    for (int f = 0; f < folds; f++) {
        p->fold_len[f] = n / folds + (f < n % folds ? 1 : 0);
        p->seg_begin[f + 1] =
            p->seg_begin[f] + (p->fold_len[f] + KDE_LANES - 1) / KDE_LANES * KDE_LANES;
        p->block_first[f + 1] = p->block_first[f] + (p->fold_len[f] + KDE_BLOCK - 1) / KDE_BLOCK;
    }
    p->stride = p->seg_begin[folds];
    const int64_t nblocks = p->block_first[folds];

    const size_t coord_bytes = ((sizeof(double) * (size_t)d * (size_t)p->stride) + 63) / 64 * 64;
    const size_t d2_bytes = ((sizeof(double) * (size_t)p->stride) + 63) / 64 * 64;
    p->coord = aligned_alloc(64, coord_bytes);
    p->d2min = aligned_alloc(64, d2_bytes);
    p->ccoord = aligned_alloc(64, coord_bytes);
    p->cnorm2 = aligned_alloc(64, d2_bytes);
    p->box_lo = malloc(sizeof(double) * (size_t)nblocks * (size_t)d);
    p->box_hi = malloc(sizeof(double) * (size_t)nblocks * (size_t)d);
    if (p->coord == NULL || p->d2min == NULL || p->ccoord == NULL || p->cnorm2 == NULL ||
        p->box_lo == NULL || p->box_hi == NULL)
        goto nomem;
    memset(p->coord, 0, coord_bytes);
    memset(p->d2min, 0, d2_bytes);
    memset(p->ccoord, 0, coord_bytes);
    memset(p->cnorm2, 0, d2_bytes);

    int64_t row0 = 0;
    for (int f = 0; f < folds; f++) {
        const int64_t len = p->fold_len[f];
        for (int64_t i = 0; i < len; i++)
            rows[i] = row0 + i;
        kde_kd_order(rows, len, samples, d, scratch);
        for (int64_t i = 0; i < len; i++)
            for (int j = 0; j < d; j++)
                p->coord[j * p->stride + p->seg_begin[f] + i] = samples[rows[i] * d + j];
        for (int64_t b = p->block_first[f]; b < p->block_first[f + 1]; b++) {
            const int64_t a = p->seg_begin[f] + (b - p->block_first[f]) * KDE_BLOCK;
            const int64_t end = p->seg_begin[f] + len;
            const int64_t e = a + KDE_BLOCK < end ? a + KDE_BLOCK : end;
            for (int j = 0; j < d; j++) {
                double lo = INFINITY, hi = -INFINITY;
                for (int64_t q = a; q < e; q++) {
                    const double v = p->coord[j * p->stride + q];
                    lo = v < lo ? v : lo;
                    hi = v > hi ? v : hi;
                }
                p->box_lo[b * d + j] = lo;
                p->box_hi[b * d + j] = hi;
            }
        }
        row0 += len;
    }
    free(rows);
    free(scratch);
    rows = NULL;
    scratch = NULL;

    /* Centred copy for the expanded exponent: centring keeps |x|^2 and with it
     * the expansion's rounding small, and x - mean is rounded relative to the
     * centred value, so it is as faithful as the raw coordinate. */
    p->r2max = 0.0;
    for (int j = 0; j < d; j++) {
        double mean = 0.0;
        for (int64_t i = 0; i < n; i++)
            mean += samples[i * d + j];
        mean /= (double)n;
        for (int f = 0; f < folds; f++)
            for (int64_t q = p->seg_begin[f]; q < p->seg_begin[f] + p->fold_len[f]; q++)
                p->ccoord[j * p->stride + q] = p->coord[j * p->stride + q] - mean;
    }
    for (int f = 0; f < folds; f++) {
        for (int64_t q = p->seg_begin[f]; q < p->seg_begin[f] + p->fold_len[f]; q++) {
            double s = 0.0;
            for (int j = 0; j < d; j++) {
                const double v = p->ccoord[j * p->stride + q];
                s = KDE_FMA(v, v, s);
            }
            p->cnorm2[q] = s;
            p->r2max = s > p->r2max ? s : p->r2max;
        }
    }

    if (kde_plan_nearest(p) != MPMAP_OK)
        goto nomem;
    *out = p;
    return 0;

nomem:
    free(rows);
    free(scratch);
    kde_cv_plan_free(p);
    return MPMAP_ENOMEM;
}

void kde_cv_plan_free(kde_cv_plan *plan)
{
    if (plan == NULL)
        return;
    free(plan->fold_len);
    free(plan->seg_begin);
    free(plan->block_first);
    free(plan->coord);
    free(plan->d2min);
    free(plan->ccoord);
    free(plan->cnorm2);
    free(plan->box_lo);
    free(plan->box_hi);
    free(plan);
}

int64_t kde_cv_plan_rows(const kde_cv_plan *plan) { return plan->n; }
int kde_cv_plan_dim(const kde_cv_plan *plan) { return plan->d; }
int kde_cv_plan_folds(const kde_cv_plan *plan) { return plan->folds; }

/* ----------------------------------------------------------------- score */

static double kde_cv_score_one(const kde_cv_plan *p, double h)
{
    KDE_DISPATCH(kde_cv_score_one, (p, h))
}

double kde_cv_score(const kde_cv_plan *plan, double h) { return kde_cv_score_one(plan, h); }

void kde_cv_scores(const kde_cv_plan *plan, const double *widths, int count, double *scores)
{
    /* Widths are independent: each goes through kde_cv_score_one alone, so the
     * grouping cannot change a single bit of any score. */
    for (int i = 0; i < count; i++)
        scores[i] = kde_cv_score_one(plan, widths[i]);
}
