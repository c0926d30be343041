/*
 * Numerical kernels of the kde_sweep app (see kde_kernels.h).
 *
 * The hot loop is the Gaussian cross-validation: every held-out row against
 * every training row, once per width. It is organised so that
 *   - the width-independent work (fold layout, spatial order, bounding boxes,
 *     nearest-neighbour distances) is done once in the plan;
 *   - the inner loop runs over a structure-of-arrays copy of the training rows,
 *     four rows per AVX2 vector, with an inlined FMA polynomial exp (with
 *     AVX-512 two such vectors per instruction, summed in the same order, so
 *     AVX-512, AVX2 and scalar-with-FMA builds agree bit for bit);
 *   - four held-out rows share every training vector that is loaded;
 *   - whole blocks of 16 training rows whose kernel terms are negligible
 *     (below exp(-40) / n_train of the row's largest term) are skipped using
 *     bounding boxes, which is where small widths get their speed.
 * The order of every floating-point operation depends only on the plan and the
 * width, so a width's score is bitwise the same whichever rank computes it and
 * whatever other widths it is computed with.
 */
#include "kde_kernels.h"

#include <mpmap.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define KDE_USE_AVX2 1
#else
#define KDE_USE_AVX2 0
#endif

/* a*b + c with one rounding where the hardware has FMA, so scalar code follows
 * the same arithmetic as the vector code. */
#if defined(__FMA__)
#define KDE_FMA(a, b, c) fma((a), (b), (c))
#else
#define KDE_FMA(a, b, c) ((a) * (b) + (c))
#endif

#define KDE_LANES 4  /* doubles per AVX2 vector; also the lane count of the scalar path */
#define KDE_BLOCK 16 /* training rows per bounding box */
#define KDE_GROUP 4  /* held-out rows evaluated together */

/* exp(t) for t < KDE_EXP_MIN is returned as 0 (it is below 1e-307); keeping
 * t >= -707 also keeps 2^k a normal number in the reconstruction below. */
#define KDE_EXP_MIN (-707.0)

/* Kernel terms exp(t) with t < -(KDE_SKIP_MARGIN + log(n_train)) may be
 * skipped: all of them together are below exp(-40) ~ 4e-18 of the row's
 * largest term, which is 1 after the log-sum-exp shift. */
#define KDE_SKIP_MARGIN 40.0

#define KDE_LOG2E 0x1.71547652b82fep+0
/* ln 2 split so that k * KDE_LN2_HI is exact for |k| < 2^11. */
#define KDE_LN2_HI 0x1.62e42p-1
#define KDE_LN2_LO 0x1.fdf473de6af28p-22
/* Adding 1.5 * 2^52 rounds to an integer and leaves it in the low mantissa bits. */
#define KDE_SHIFTER 0x1.8p52
#define KDE_LOG_2PI 1.8378770664093454835606594728112

/* Taylor coefficients 1/k!, k = 2..12: on |r| <= ln2/2 the degree-12
 * truncation error is below 2e-16 relative. */
#define KDE_C2 (1.0 / 2.0)
#define KDE_C3 (1.0 / 6.0)
#define KDE_C4 (1.0 / 24.0)
#define KDE_C5 (1.0 / 120.0)
#define KDE_C6 (1.0 / 720.0)
#define KDE_C7 (1.0 / 5040.0)
#define KDE_C8 (1.0 / 40320.0)
#define KDE_C9 (1.0 / 362880.0)
#define KDE_C10 (1.0 / 3628800.0)
#define KDE_C11 (1.0 / 39916800.0)
#define KDE_C12 (1.0 / 479001600.0)

#define KDE_INLINE static inline __attribute__((always_inline))

struct kde_cv_plan {
    int64_t n;
    int d;
    int folds;
    int64_t stride;       /* padded positions per coordinate (multiple of KDE_LANES) */
    int64_t *fold_len;    /* [folds] rows per fold */
    int64_t *seg_begin;   /* [folds + 1] first position of each fold (multiple of KDE_LANES) */
    int64_t *block_first; /* [folds + 1] first bounding-box block of each fold */
    double *coord;        /* [d * stride] coordinate j of position q at coord[j * stride + q]; padding is 0 */
    double *d2min;        /* [stride] squared distance from a row to its nearest training row */
    double *box_lo;       /* [nblocks * d] lower corner of each block of KDE_BLOCK positions */
    double *box_hi;       /* [nblocks * d] upper corner */
};

/* ------------------------------------------------------------------ exp */

/* exp(t) for t <= 0, the scalar twin of kde_exp4 (same steps, same constants). */
static inline double kde_exp_scalar(double t)
{
    if (!(t >= KDE_EXP_MIN))
        return 0.0;
    double kd = KDE_FMA(t, KDE_LOG2E, KDE_SHIFTER);
    double k = kd - KDE_SHIFTER;
    double r = KDE_FMA(k, -KDE_LN2_HI, t);
    r = KDE_FMA(k, -KDE_LN2_LO, r);
    double p = KDE_C12;
    p = KDE_FMA(p, r, KDE_C11);
    p = KDE_FMA(p, r, KDE_C10);
    p = KDE_FMA(p, r, KDE_C9);
    p = KDE_FMA(p, r, KDE_C8);
    p = KDE_FMA(p, r, KDE_C7);
    p = KDE_FMA(p, r, KDE_C6);
    p = KDE_FMA(p, r, KDE_C5);
    p = KDE_FMA(p, r, KDE_C4);
    p = KDE_FMA(p, r, KDE_C3);
    p = KDE_FMA(p, r, KDE_C2);
    p = KDE_FMA(p, r, 1.0);
    p = KDE_FMA(p, r, 1.0);
    /* Multiply by 2^k by adding k to the exponent field; p in [0.7, 1.42] and
     * k >= -1020 keep the result normal. */
    uint64_t kbits, pbits;
    memcpy(&kbits, &kd, sizeof kbits);
    memcpy(&pbits, &p, sizeof pbits);
    pbits += kbits << 52;
    memcpy(&p, &pbits, sizeof p);
    return p;
}

#if KDE_USE_AVX2
/* exp(t) lane-wise for t <= 0; lanes below KDE_EXP_MIN give 0. */
KDE_INLINE __m256d kde_exp4(__m256d t)
{
    const __m256d lo = _mm256_set1_pd(KDE_EXP_MIN);
    const __m256d keep = _mm256_cmp_pd(t, lo, _CMP_GE_OQ);
    t = _mm256_max_pd(t, lo);
    const __m256d shifter = _mm256_set1_pd(KDE_SHIFTER);
    __m256d kd = _mm256_fmadd_pd(t, _mm256_set1_pd(KDE_LOG2E), shifter);
    __m256d k = _mm256_sub_pd(kd, shifter);
    __m256d r = _mm256_fnmadd_pd(k, _mm256_set1_pd(KDE_LN2_HI), t);
    r = _mm256_fnmadd_pd(k, _mm256_set1_pd(KDE_LN2_LO), r);
    __m256d p = _mm256_set1_pd(KDE_C12);
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(KDE_C11));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(KDE_C10));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(KDE_C9));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(KDE_C8));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(KDE_C7));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(KDE_C6));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(KDE_C5));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(KDE_C4));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(KDE_C3));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(KDE_C2));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
    __m256i e = _mm256_slli_epi64(_mm256_castpd_si256(kd), 52);
    p = _mm256_castsi256_pd(_mm256_add_epi64(_mm256_castpd_si256(p), e));
    return _mm256_and_pd(p, keep);
}

/* ((l0 + l1) + (l2 + l3)): a fixed order, the same as the scalar path. */
KDE_INLINE double kde_hsum4(__m256d v)
{
    double l[KDE_LANES];
    _mm256_storeu_pd(l, v);
    return (l[0] + l[1]) + (l[2] + l[3]);
}

/* Lanes [0, valid) all ones, the rest zero. */
KDE_INLINE __m256d kde_lane_mask(int64_t valid)
{
    const __m256i idx = _mm256_setr_epi64x(0, 1, 2, 3);
    return _mm256_castsi256_pd(_mm256_cmpgt_epi64(_mm256_set1_epi64x(valid), idx));
}
#endif

#if KDE_USE_AVX2 && defined(__AVX512F__)
/* kde_exp4 on eight lanes: the same operations lane by lane, so the same bits. */
KDE_INLINE __m512d kde_exp8(__m512d t)
{
    const __m512d lo = _mm512_set1_pd(KDE_EXP_MIN);
    const __mmask8 keep = _mm512_cmp_pd_mask(t, lo, _CMP_GE_OQ);
    t = _mm512_max_pd(t, lo);
    const __m512d shifter = _mm512_set1_pd(KDE_SHIFTER);
    __m512d kd = _mm512_fmadd_pd(t, _mm512_set1_pd(KDE_LOG2E), shifter);
    __m512d k = _mm512_sub_pd(kd, shifter);
    __m512d r = _mm512_fnmadd_pd(k, _mm512_set1_pd(KDE_LN2_HI), t);
    r = _mm512_fnmadd_pd(k, _mm512_set1_pd(KDE_LN2_LO), r);
    __m512d p = _mm512_set1_pd(KDE_C12);
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(KDE_C11));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(KDE_C10));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(KDE_C9));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(KDE_C8));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(KDE_C7));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(KDE_C6));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(KDE_C5));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(KDE_C4));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(KDE_C3));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(KDE_C2));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
    __m512i e = _mm512_slli_epi64(_mm512_castpd_si512(kd), 52);
    p = _mm512_castsi512_pd(_mm512_add_epi64(_mm512_castpd_si512(p), e));
    return _mm512_maskz_mov_pd(keep, p);
}
#endif

/* ------------------------------------------------------------ hypercube */

KDE_INLINE int64_t kde_cube_count_d(const double *samples, int64_t n, int d, const double *point,
                                    double half)
{
    int64_t count = 0;
    for (int64_t i = 0; i < n; i++) {
        const double *x = samples + i * (int64_t)d;
        int inside = 1;
        for (int j = 0; j < d; j++)
            inside &= fabs(x[j] - point[j]) <= half;
        count += inside;
    }
    return count;
}

int64_t kde_hypercube_count(const double *samples, int64_t n, int d, const double *point,
                            double h)
{
    if (samples == NULL || point == NULL || n <= 0 || d <= 0)
        return 0;
    const double half = 0.5 * h; /* exact: the face itself is inside */
    /* Constant d lets the compiler unroll the coordinate loop into branch-free code. */
    switch (d) {
    case 1:
        return kde_cube_count_d(samples, n, 1, point, half);
    case 2:
        return kde_cube_count_d(samples, n, 2, point, half);
    case 3:
        return kde_cube_count_d(samples, n, 3, point, half);
    default:
        return kde_cube_count_d(samples, n, d, point, half);
    }
}

double kde_hypercube_density(int64_t count, int64_t n, int d, double h)
{
    /* Divide by the cube's volume h^d, not by h. */
    return (double)count / ((double)n * pow(h, (double)d));
}

/* ------------------------------------------------------------- Gaussian */

/* Adds exp(-d2[i] * c) for i < m into four lane sums (element i to lane i % 4). */
static void kde_sum_exp_neg(const double *d2, int64_t m, double c, double lanes[KDE_LANES])
{
    int64_t i = 0;
#if KDE_USE_AVX2
    __m256d acc = _mm256_loadu_pd(lanes);
    const __m256d negc = _mm256_set1_pd(-c);
    for (; i + KDE_LANES <= m; i += KDE_LANES)
        acc = _mm256_add_pd(acc, kde_exp4(_mm256_mul_pd(_mm256_loadu_pd(d2 + i), negc)));
    _mm256_storeu_pd(lanes, acc);
#else
    for (; i + KDE_LANES <= m; i += KDE_LANES)
        for (int l = 0; l < KDE_LANES; l++)
            lanes[l] += kde_exp_scalar(d2[i + l] * -c);
#endif
    for (int l = 0; i < m; i++, l++)
        lanes[l] += kde_exp_scalar(d2[i] * -c);
}

double kde_gaussian_density(const double *samples, int64_t n, int d, const double *point,
                            double h)
{
    if (samples == NULL || point == NULL || n <= 0 || d <= 0)
        return NAN;
    enum { CHUNK = 256 };
    double d2[CHUNK];
    double lanes[KDE_LANES] = { 0.0, 0.0, 0.0, 0.0 };
    const double c = 0.5 / (h * h);
    for (int64_t begin = 0; begin < n; begin += CHUNK) {
        const int64_t m = n - begin < CHUNK ? n - begin : CHUNK;
        const double *x = samples + begin * (int64_t)d;
        for (int64_t i = 0; i < m; i++) {
            double s = 0.0;
            for (int j = 0; j < d; j++) {
                const double u = x[i * d + j] - point[j];
                s = KDE_FMA(u, u, s);
            }
            d2[i] = s;
        }
        kde_sum_exp_neg(d2, m, c, lanes);
    }
    const double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    if (sum == 0.0)
        return 0.0; /* avoids 0 * inf when the normalisation overflows */
    /* log of (2 pi h^2)^(-d/2) without forming h^2, which may underflow. */
    const double log_norm = -0.5 * d * (KDE_LOG_2PI + 2.0 * log(h));
    return sum / (double)n * exp(log_norm);
}

double kde_standard_normal_density(const double *point, int d)
{
    double s = 0.0;
    for (int j = 0; j < d; j++)
        s += point[j] * point[j];
    return exp(-0.5 * d * KDE_LOG_2PI - 0.5 * s);
}

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

static void kde_group_load(const kde_cv_plan *p, int64_t first, int64_t remaining,
                           double *xs, kde_group_box *g)
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

/* Nearest-neighbour squared distances of the group's rows over positions
 * [a, e) of one block, folded into best[r]. Same arithmetic for the squared
 * distance as the score kernels, so the nearest term's exponent is ~0. */
static void kde_block_min(const kde_cv_plan *p, int64_t a, int64_t e, const double *xs,
                          double best[KDE_GROUP])
{
    const int d = p->d;
    for (int64_t q = a; q < e; q++) {
        for (int r = 0; r < KDE_GROUP; r++) {
            const double u0 = p->coord[q] - xs[r * d];
            double s = u0 * u0;
            for (int j = 1; j < d; j++) {
                const double u = p->coord[j * p->stride + q] - xs[r * d + j];
                s = KDE_FMA(u, u, s);
            }
            best[r] = s < best[r] ? s : best[r];
        }
    }
}

static void kde_plan_nearest(kde_cv_plan *p)
{
    const int d = p->d;
    double xbuf[KDE_GROUP * KDE_CV_MAX_DIM];
    kde_group_box g;
    for (int f = 0; f < p->folds; f++) {
        for (int64_t i = 0; i < p->fold_len[f]; i += KDE_GROUP) {
            kde_group_load(p, p->seg_begin[f] + i, p->fold_len[f] - i, xbuf, &g);
            double best[KDE_GROUP] = { INFINITY, INFINITY, INFINITY, INFINITY };
            for (int f2 = 0; f2 < p->folds; f2++) {
                if (f2 == f)
                    continue;
                for (int64_t b = p->block_first[f2]; b < p->block_first[f2 + 1]; b++) {
                    const int64_t a = p->seg_begin[f2] + (b - p->block_first[f2]) * KDE_BLOCK;
                    const int64_t end = p->seg_begin[f2] + p->fold_len[f2];
                    const int64_t e = a + KDE_BLOCK < end ? a + KDE_BLOCK : end;
                    double worst = best[0];
                    for (int r = 1; r < KDE_GROUP; r++)
                        worst = best[r] > worst ? best[r] : worst;
                    if (kde_box_gap2(g.lo, g.hi, p->box_lo + b * d, p->box_hi + b * d, d) > worst)
                        continue; /* cannot improve any row of the group */
                    kde_block_min(p, a, e, xbuf, best);
                }
            }
            for (int r = 0; r < g.valid; r++)
                p->d2min[g.pos[r]] = best[r];
        }
    }
}

int kde_cv_plan_create(const double *samples, int64_t n, int d, int folds, kde_cv_plan **out)
{
    if (samples == NULL || out == NULL || n < 2 || d < 1 || d > KDE_CV_MAX_DIM || folds < 2 || (int64_t)folds > n)
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
        p->block_first[f + 1] =
            p->block_first[f] + (p->fold_len[f] + KDE_BLOCK - 1) / KDE_BLOCK;
    }
    p->stride = p->seg_begin[folds];
    const int64_t nblocks = p->block_first[folds];

    const size_t coord_bytes = ((sizeof(double) * (size_t)d * (size_t)p->stride) + 63) / 64 * 64;
    const size_t d2_bytes = ((sizeof(double) * (size_t)p->stride) + 63) / 64 * 64;
    p->coord = aligned_alloc(64, coord_bytes);
    p->d2min = aligned_alloc(64, d2_bytes);
    p->box_lo = malloc(sizeof(double) * (size_t)nblocks * (size_t)d);
    p->box_hi = malloc(sizeof(double) * (size_t)nblocks * (size_t)d);
    if (p->coord == NULL || p->d2min == NULL || p->box_lo == NULL || p->box_hi == NULL)
        goto nomem;
    memset(p->coord, 0, coord_bytes);
    memset(p->d2min, 0, d2_bytes);

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

    kde_plan_nearest(p);
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
    free(plan->box_lo);
    free(plan->box_hi);
    free(plan);
}

int64_t kde_cv_plan_rows(const kde_cv_plan *plan) { return plan->n; }
int kde_cv_plan_dim(const kde_cv_plan *plan) { return plan->d; }
int kde_cv_plan_folds(const kde_cv_plan *plan) { return plan->folds; }

/* ----------------------------------------------------------------- score */

/*
 * Adds exp(off[r] - |y - x_r|^2 * c) over training positions [a, e) to the
 * lane sums of the group's rows (position q goes to lane q % 4; a is a
 * multiple of 4). With a constant D the coordinate loops unroll and the
 * training coordinates stay in registers.
 */
#if KDE_USE_AVX2
KDE_INLINE void kde_vector_sum(const double *coord, int64_t stride, int D, int64_t q,
                               const double *xs, const double *off, __m256d cv, __m256d mask,
                               __m256d acc[KDE_GROUP])
{
    /* Fully unrolled over the group so the four independent exp chains
     * overlap and the sums stay in registers. */
#pragma GCC unroll 4
    for (int r = 0; r < KDE_GROUP; r++) {
        __m256d u = _mm256_sub_pd(_mm256_load_pd(coord + q), _mm256_set1_pd(xs[r * D]));
        __m256d s = _mm256_mul_pd(u, u);
#pragma GCC unroll 4
        for (int j = 1; j < D; j++) {
            u = _mm256_sub_pd(_mm256_load_pd(coord + j * stride + q), _mm256_set1_pd(xs[r * D + j]));
            s = _mm256_fmadd_pd(u, u, s);
        }
        const __m256d t = _mm256_fnmadd_pd(s, cv, _mm256_set1_pd(off[r]));
        acc[r] = _mm256_add_pd(acc[r], _mm256_and_pd(kde_exp4(t), mask));
    }
}

#if defined(__AVX512F__)
/*
 * Two 4-row vectors at once. The terms are computed on eight lanes with the
 * same per-lane operations, then added to the four-lane sums low half first,
 * exactly as two consecutive kde_vector_sum calls would: AVX-512 and AVX2
 * builds give bitwise the same scores.
 */
KDE_INLINE void kde_vector_sum8(const double *coord, int64_t stride, int D, int64_t q,
                                const double *xs, const double *off, double c,
                                __m256d acc[KDE_GROUP])
{
    const __m512d cv = _mm512_set1_pd(c);
#pragma GCC unroll 4
    for (int r = 0; r < KDE_GROUP; r++) {
        __m512d u = _mm512_sub_pd(_mm512_loadu_pd(coord + q), _mm512_set1_pd(xs[r * D]));
        __m512d s = _mm512_mul_pd(u, u);
#pragma GCC unroll 4
        for (int j = 1; j < D; j++) {
            u = _mm512_sub_pd(_mm512_loadu_pd(coord + j * stride + q), _mm512_set1_pd(xs[r * D + j]));
            s = _mm512_fmadd_pd(u, u, s);
        }
        const __m512d t = _mm512_fnmadd_pd(s, cv, _mm512_set1_pd(off[r]));
        const __m512d term = kde_exp8(t);
        acc[r] = _mm256_add_pd(acc[r], _mm512_castpd512_pd256(term));
        acc[r] = _mm256_add_pd(acc[r], _mm512_extractf64x4_pd(term, 1));
    }
}
#endif

KDE_INLINE void kde_block_sum(const double *coord, int64_t stride, int D, int64_t a, int64_t e,
                              const double *xs, const double *off, double c,
                              __m256d acc[KDE_GROUP])
{
    const __m256d cv = _mm256_set1_pd(c);
    const __m256d all = _mm256_castsi256_pd(_mm256_set1_epi64x(-1));
    int64_t q = a;
#if defined(__AVX512F__)
    for (; q + 2 * KDE_LANES <= e; q += 2 * KDE_LANES)
        kde_vector_sum8(coord, stride, D, q, xs, off, c, acc);
#endif
    for (; q + KDE_LANES <= e; q += KDE_LANES)
        kde_vector_sum(coord, stride, D, q, xs, off, cv, all, acc);
    if (q < e) /* the fold's last, partial vector: padding lanes must add nothing */
        kde_vector_sum(coord, stride, D, q, xs, off, cv, kde_lane_mask(e - q), acc);
}
#else
KDE_INLINE void kde_block_sum(const double *coord, int64_t stride, int D, int64_t a, int64_t e,
                              const double *xs, const double *off, double c,
                              double acc[KDE_GROUP][KDE_LANES])
{
    for (int64_t q = a; q < e; q++) {
        const int lane = (int)(q % KDE_LANES);
        for (int r = 0; r < KDE_GROUP; r++) {
            double u = coord[q] - xs[r * D];
            double s = u * u;
            for (int j = 1; j < D; j++) {
                u = coord[j * stride + q] - xs[r * D + j];
                s = KDE_FMA(u, u, s);
            }
            acc[r][lane] += kde_exp_scalar(KDE_FMA(s, -c, off[r]));
        }
    }
}
#endif

/* Sum over the held-out rows of fold f of log sum_y exp(-|x - y|^2 c),
 * specialised on the dimension D. */
KDE_INLINE double kde_fold_logsum(const kde_cv_plan *p, int f, double c, double skip, int D)
{
    double xbuf[KDE_GROUP * KDE_CV_MAX_DIM];
    kde_group_box g;
    double total = 0.0;
    for (int64_t i = 0; i < p->fold_len[f]; i += KDE_GROUP) {
        kde_group_load(p, p->seg_begin[f] + i, p->fold_len[f] - i, xbuf, &g);
        double off[KDE_GROUP];
        double worst = 0.0;
        for (int r = 0; r < KDE_GROUP; r++) {
            const double m = p->d2min[g.pos[r]];
            off[r] = m * c;
            worst = m > worst ? m : worst;
        }
#if KDE_USE_AVX2
        __m256d acc[KDE_GROUP];
        for (int r = 0; r < KDE_GROUP; r++)
            acc[r] = _mm256_setzero_pd();
#else
        double acc[KDE_GROUP][KDE_LANES] = { { 0.0 } };
#endif
        for (int f2 = 0; f2 < p->folds; f2++) {
            if (f2 == f)
                continue;
            const int64_t end = p->seg_begin[f2] + p->fold_len[f2];
            for (int64_t b = p->block_first[f2]; b < p->block_first[f2 + 1]; b++) {
                /* Every term of this block is below exp(-skip * c) of the row's
                 * largest; the nearest row's block never qualifies. */
                if (kde_box_gap2(g.lo, g.hi, p->box_lo + b * D, p->box_hi + b * D, D) - worst > skip)
                    continue;
                const int64_t a = p->seg_begin[f2] + (b - p->block_first[f2]) * KDE_BLOCK;
                const int64_t e = a + KDE_BLOCK < end ? a + KDE_BLOCK : end;
                kde_block_sum(p->coord, p->stride, D, a, e, xbuf, off, c, acc);
            }
        }
        for (int r = 0; r < g.valid; r++) {
#if KDE_USE_AVX2
            const double s = kde_hsum4(acc[r]);
#else
            const double s = (acc[r][0] + acc[r][1]) + (acc[r][2] + acc[r][3]);
#endif
            /* log sum exp(-d2 c) = -d2min c + log sum exp(d2min c - d2 c); the
             * rounding of off[r] cancels between the two parts. */
            total += log(s) - off[r];
        }
    }
    return total;
}

/* The one implementation behind both entry points; kept out of line so every
 * width runs exactly the same machine code whichever function was called. */
static __attribute__((noinline)) double kde_cv_score_one(const kde_cv_plan *p, double h)
{
    if (p == NULL || !(h > 0.0) || !isfinite(h))
        return NAN;
    const double c = 0.5 / (h * h);
    if (!isfinite(c) || !(c > 0.0))
        return NAN; /* h^2 underflows or overflows */
    const double log_norm = -0.5 * p->d * (KDE_LOG_2PI + 2.0 * log(h));
    double sum = 0.0;
    for (int f = 0; f < p->folds; f++) {
        const int64_t ntrain = p->n - p->fold_len[f];
        const double skip = (KDE_SKIP_MARGIN + log((double)ntrain)) / c;
        double logsum;
        switch (p->d) {
        case 1:
            logsum = kde_fold_logsum(p, f, c, skip, 1);
            break;
        case 2:
            logsum = kde_fold_logsum(p, f, c, skip, 2);
            break;
        case 3:
            logsum = kde_fold_logsum(p, f, c, skip, 3);
            break;
        case 4:
            logsum = kde_fold_logsum(p, f, c, skip, 4);
            break;
        default:
            logsum = kde_fold_logsum(p, f, c, skip, p->d);
            break;
        }
        sum += logsum + (double)p->fold_len[f] * (log_norm - log((double)ntrain));
    }
    return sum / (double)p->folds;
}

double kde_cv_score(const kde_cv_plan *plan, double h)
{
    return kde_cv_score_one(plan, h);
}

void kde_cv_scores(const kde_cv_plan *plan, const double *widths, int count, double *scores)
{
    /* Widths are independent: each goes through kde_cv_score_one alone, so the
     * grouping cannot change a single bit of any score. */
    for (int i = 0; i < count; i++)
        scores[i] = kde_cv_score_one(plan, widths[i]);
}
