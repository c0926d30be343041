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
 *   - the kernel is evaluated as 2^t2 with t2 = log2(e) c (d2min - |x - y|^2),
 *     c = 1 / (2 h^2): base 2 makes the range reduction one add and two
 *     subtractions, and a 16-entry table of 2^(j/16) leaves a degree-6
 *     polynomial on |f| <= 1/32 (error below 2e-17), see kde_exp2_*;
 *   - for moderate and large widths the exponent is formed from the expansion
 *     |x - y|^2 = |x|^2 + |y|^2 - 2 x.y of centred coordinates (d + 1 FMAs per
 *     pair instead of 2d + 1 operations); for small widths, where c |x|^2 is
 *     large and the expansion would cancel, the direct difference form is
 *     kept. The form is chosen from h and the plan alone (kde_cv_expanded);
 *   - eight held-out rows share every training vector that is loaded;
 *   - whole blocks of 16 training rows whose kernel terms are negligible
 *     (below exp(-40) / n_train of the row's largest term) are skipped using
 *     bounding boxes, which is where small widths get their speed.
 * The order of every floating-point operation depends only on the plan and the
 * width, so a width's score is bitwise the same whichever rank computes it and
 * whatever other widths it is computed with. The AVX-512, AVX2 and scalar-with-
 * FMA paths perform the same operations lane by lane (vscalefpd equals the
 * exponent-field addition of the other paths for the normal results it is
 * given), so they agree too.
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
#if KDE_USE_AVX2 && defined(__AVX512F__)
#define KDE_USE_AVX512 1
#else
#define KDE_USE_AVX512 0
#endif

/* a*b + c with one rounding where the hardware has FMA, so scalar code follows
 * the same arithmetic as the vector code. */
#if defined(__FMA__)
#define KDE_FMA(a, b, c) fma((a), (b), (c))
#else
#define KDE_FMA(a, b, c) ((a) * (b) + (c))
#endif

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
 * it also bounds every exponent below by -4 c R^2 log2(e) > -740, so no lane
 * can reach KDE_EXP2_MIN and the expanded path needs no underflow mask.
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
    double *coord;        /* [d * stride] coordinate j of position q at coord[j * stride + q]; padding is 0 */
    double *ccoord;       /* [d * stride] the same minus the mean of the samples; padding is 0 */
    double *cnorm2;       /* [stride] squared norm of the centred coordinates; padding is 0 */
    double r2max;         /* largest cnorm2 */
    double *d2min;        /* [stride] squared distance from a row to its nearest training row */
    double *box_lo;       /* [nblocks * d] lower corner of each block of KDE_BLOCK positions */
    double *box_hi;       /* [nblocks * d] upper corner */
};

/* ------------------------------------------------------------------ exp */

/*
 * 2^t = p * m for KDE_EXP2_MIN <= t <= ~0, the scalar twin of kde_exp2_split4
 * and kde_exp2_split8 (same steps, same constants): t = k + f with k a
 * multiple of 1/16 and |f| <= 1/32, p = 2^f by the polynomial and
 * m = 2^k = T[16 k mod 16] * 2^floor(k) exactly. Keeping the product
 * unrounded lets the sums add p * m with one FMA.
 */
static inline double kde_exp2_split(double t, double *m)
{
    const double kd = t + KDE_EXP2_SHIFTER;
    const double k = kd - KDE_EXP2_SHIFTER;
    const double f = t - k; /* exact */
    uint64_t kbits;
    memcpy(&kbits, &kd, sizeof kbits);
    double q = KDE_P6;
    q = KDE_FMA(q, f, KDE_P5);
    q = KDE_FMA(q, f, KDE_P4);
    q = KDE_FMA(q, f, KDE_P3);
    q = KDE_FMA(q, f, KDE_P2);
    q = KDE_FMA(q, f, KDE_P1);
    /* Multiply T[j] by 2^floor(k) by adding it to the exponent field: the bits
     * of kd shifted right by 4 end in floor(k) (the shifter's own bits shift
     * out of the top); T in [1, 2) and floor(k) >= -1020 keep m normal. */
    uint64_t mbits;
    memcpy(&mbits, &kde_exp2_table[kbits & 15], sizeof mbits);
    mbits += (kbits >> 4) << 52;
    memcpy(m, &mbits, sizeof mbits);
    return KDE_FMA(q, f, 1.0);
}

/* 2^t for t <= ~0; below KDE_EXP2_MIN (and NaN) 0. */
static inline double kde_exp2_scalar(double t)
{
    if (!(t >= KDE_EXP2_MIN))
        return 0.0;
    double m;
    const double p = kde_exp2_split(t, &m);
    return p * m;
}

/* acc + 2^t with the vector paths' rounding; t below KDE_EXP2_MIN adds nothing. */
static inline double kde_exp2_acc(double t, double acc)
{
    if (!(t >= KDE_EXP2_MIN))
        return acc;
    double m;
    const double p = kde_exp2_split(t, &m);
    return KDE_FMA(p, m, acc);
}

#if KDE_USE_AVX2
/* kde_exp2_split on four lanes; the table lookup is a gather. */
KDE_INLINE __m256d kde_exp2_split4(__m256d t, __m256d *m)
{
    const __m256d shifter = _mm256_set1_pd(KDE_EXP2_SHIFTER);
    const __m256d kd = _mm256_add_pd(t, shifter);
    const __m256d k = _mm256_sub_pd(kd, shifter);
    const __m256d f = _mm256_sub_pd(t, k);
    const __m256i kbits = _mm256_castpd_si256(kd);
    __m256d q = _mm256_set1_pd(KDE_P6);
    q = _mm256_fmadd_pd(q, f, _mm256_set1_pd(KDE_P5));
    q = _mm256_fmadd_pd(q, f, _mm256_set1_pd(KDE_P4));
    q = _mm256_fmadd_pd(q, f, _mm256_set1_pd(KDE_P3));
    q = _mm256_fmadd_pd(q, f, _mm256_set1_pd(KDE_P2));
    q = _mm256_fmadd_pd(q, f, _mm256_set1_pd(KDE_P1));
    const __m256i j = _mm256_and_si256(kbits, _mm256_set1_epi64x(15));
    const __m256i e = _mm256_slli_epi64(_mm256_srli_epi64(kbits, 4), 52);
    const __m256d tab = _mm256_i64gather_pd(kde_exp2_table, j, 8);
    *m = _mm256_castsi256_pd(_mm256_add_epi64(_mm256_castpd_si256(tab), e));
    return _mm256_fmadd_pd(q, f, _mm256_set1_pd(1.0));
}

/* Lanes of t at or above KDE_EXP2_MIN (not NaN), within the lanes of use. */
KDE_INLINE __m256d kde_exp2_keep4(__m256d t, __m256d use)
{
    return _mm256_and_pd(_mm256_cmp_pd(t, _mm256_set1_pd(KDE_EXP2_MIN), _CMP_GE_OQ), use);
}

/* 2^t lane-wise, 0 below KDE_EXP2_MIN. */
KDE_INLINE __m256d kde_exp2_4(__m256d t)
{
    const __m256d keep = kde_exp2_keep4(t, _mm256_castsi256_pd(_mm256_set1_epi64x(-1)));
    __m256d m;
    const __m256d p = kde_exp2_split4(t, &m);
    return _mm256_and_pd(_mm256_mul_pd(p, m), keep);
}

/* acc + 2^t in the lanes of keep (one rounding); other lanes keep acc. */
KDE_INLINE __m256d kde_exp2_acc4(__m256d t, __m256d acc, __m256d keep)
{
    __m256d m;
    const __m256d p = kde_exp2_split4(t, &m);
    return _mm256_blendv_pd(acc, _mm256_fmadd_pd(p, m, acc), keep);
}

/* ((l0 + l1) + (l2 + l3)): a fixed order, the same as the scalar path. */
KDE_INLINE double kde_hsum4(__m256d v)
{
    double l[4];
    _mm256_storeu_pd(l, v);
    return (l[0] + l[1]) + (l[2] + l[3]);
}
#endif

#if KDE_USE_AVX512
/*
 * kde_exp2_split on eight lanes with the table in two registers (vpermt2pd,
 * no memory gather) and 2^floor(k) applied by vscalefpd, which gives the same
 * bits as the exponent-field addition for these normal results. m is 0 in
 * the lanes outside keep: a subnormal vscalefpd result would cost a
 * microcode assist.
 */
KDE_INLINE __m512d kde_exp2_split8(__m512d t, __m512d tab_lo, __m512d tab_hi, __mmask8 keep,
                                   __m512d *m)
{
    const __m512d shifter = _mm512_set1_pd(KDE_EXP2_SHIFTER);
    const __m512d kd = _mm512_add_pd(t, shifter);
    const __m512d k = _mm512_sub_pd(kd, shifter);
    const __m512d f = _mm512_sub_pd(t, k);
    __m512d q = _mm512_set1_pd(KDE_P6);
    q = _mm512_fmadd_pd(q, f, _mm512_set1_pd(KDE_P5));
    q = _mm512_fmadd_pd(q, f, _mm512_set1_pd(KDE_P4));
    q = _mm512_fmadd_pd(q, f, _mm512_set1_pd(KDE_P3));
    q = _mm512_fmadd_pd(q, f, _mm512_set1_pd(KDE_P2));
    q = _mm512_fmadd_pd(q, f, _mm512_set1_pd(KDE_P1));
    const __m512d tab = _mm512_permutex2var_pd(tab_lo, _mm512_castpd_si512(kd), tab_hi);
    *m = keep == 0xff ? _mm512_scalef_pd(tab, k) : _mm512_maskz_scalef_pd(keep, tab, k);
    return _mm512_fmadd_pd(q, f, _mm512_set1_pd(1.0));
}
#endif

double kde_exp2(double t)
{
    return kde_exp2_scalar(t);
}

void kde_exp2_many(const double *t, int64_t n, double *out)
{
    int64_t i = 0;
#if KDE_USE_AVX512
    const __m512d tab_lo = _mm512_load_pd(kde_exp2_table);
    const __m512d tab_hi = _mm512_load_pd(kde_exp2_table + 8);
    for (; i + 8 <= n; i += 8) {
        const __m512d tv = _mm512_loadu_pd(t + i);
        const __mmask8 keep = _mm512_cmp_pd_mask(tv, _mm512_set1_pd(KDE_EXP2_MIN), _CMP_GE_OQ);
        __m512d m;
        const __m512d p = kde_exp2_split8(tv, tab_lo, tab_hi, keep, &m);
        _mm512_storeu_pd(out + i, _mm512_maskz_mul_pd(keep, p, m));
    }
#endif
#if KDE_USE_AVX2
    for (; i + 4 <= n; i += 4)
        _mm256_storeu_pd(out + i, kde_exp2_4(_mm256_loadu_pd(t + i)));
#endif
    for (; i < n; i++)
        out[i] = kde_exp2_scalar(t[i]);
}

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

/* Adds 2^(-d2[i] * c2) for i < m into four lane sums (element i to lane i % 4). */
static void kde_sum_exp2_neg(const double *d2, int64_t m, double c2, double lanes[KDE_DLANES])
{
    int64_t i = 0;
#if KDE_USE_AVX2
    __m256d acc = _mm256_loadu_pd(lanes);
    const __m256d negc = _mm256_set1_pd(-c2);
    for (; i + KDE_DLANES <= m; i += KDE_DLANES)
        acc = _mm256_add_pd(acc, kde_exp2_4(_mm256_mul_pd(_mm256_loadu_pd(d2 + i), negc)));
    _mm256_storeu_pd(lanes, acc);
#else
    for (; i + KDE_DLANES <= m; i += KDE_DLANES)
        for (int l = 0; l < KDE_DLANES; l++)
            lanes[l] += kde_exp2_scalar(d2[i + l] * -c2);
#endif
    for (int l = 0; i < m; i++, l++)
        lanes[l] += kde_exp2_scalar(d2[i] * -c2);
}

double kde_gaussian_density(const double *samples, int64_t n, int d, const double *point,
                            double h)
{
    if (samples == NULL || point == NULL || n <= 0 || d <= 0)
        return NAN;
    enum { CHUNK = 256 };
    double d2[CHUNK];
    double lanes[KDE_DLANES] = { 0.0, 0.0, 0.0, 0.0 };
    /* exp(-d2 / (2 h^2)) = 2^(-d2 c2) */
    const double c2 = KDE_LOG2E * (0.5 / (h * h));
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
        kde_sum_exp2_neg(d2, m, c2, lanes);
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

/* Returns MPMAP_ENOMEM or MPMAP_OK. */
static int kde_plan_nearest(kde_cv_plan *p)
{
    const int d = p->d;
    double xbuf[KDE_GROUP * KDE_CV_MAX_DIM];
    kde_group_box g;
    double *gaps = malloc(sizeof *gaps * (size_t)p->block_first[p->folds]);
    if (gaps == NULL)
        return MPMAP_ENOMEM;
    for (int f = 0; f < p->folds; f++) {
        for (int64_t i = 0; i < p->fold_len[f]; i += KDE_GROUP) {
            kde_group_load(p, p->seg_begin[f] + i, p->fold_len[f] - i, xbuf, &g);
            double best[KDE_GROUP];
            for (int r = 0; r < KDE_GROUP; r++)
                best[r] = INFINITY;
            /* The block of each other fold nearest to the group first, so
             * the bound is tight from the start and the second pass scans
             * only blocks that can still hold a nearer row. The minimum is
             * exact whatever the order. */
            for (int f2 = 0; f2 < p->folds; f2++) {
                if (f2 == f)
                    continue;
                int64_t nearest = -1;
                double nearest_gap = INFINITY;
                for (int64_t b = p->block_first[f2]; b < p->block_first[f2 + 1]; b++) {
                    gaps[b] = kde_box_gap2(g.lo, g.hi, p->box_lo + b * d, p->box_hi + b * d, d);
                    if (gaps[b] < nearest_gap) {
                        nearest_gap = gaps[b];
                        nearest = b;
                    }
                }
                if (nearest >= 0) {
                    const int64_t end = p->seg_begin[f2] + p->fold_len[f2];
                    const int64_t a = p->seg_begin[f2] + (nearest - p->block_first[f2]) * KDE_BLOCK;
                    kde_block_min(p, a, a + KDE_BLOCK < end ? a + KDE_BLOCK : end, xbuf, best);
                    gaps[nearest] = INFINITY; /* done */
                }
            }
            for (int f2 = 0; f2 < p->folds; f2++) {
                if (f2 == f)
                    continue;
                const int64_t end = p->seg_begin[f2] + p->fold_len[f2];
                for (int64_t b = p->block_first[f2]; b < p->block_first[f2 + 1]; b++) {
                    double worst = best[0];
                    for (int r = 1; r < KDE_GROUP; r++)
                        worst = best[r] > worst ? best[r] : worst;
                    if (gaps[b] > worst)
                        continue; /* cannot improve any row of the group */
                    const int64_t a = p->seg_begin[f2] + (b - p->block_first[f2]) * KDE_BLOCK;
                    kde_block_min(p, a, a + KDE_BLOCK < end ? a + KDE_BLOCK : end, xbuf, best);
                }
            }
            for (int r = 0; r < g.valid; r++)
                p->d2min[g.pos[r]] = best[r];
        }
    }
    free(gaps);
    return MPMAP_OK;
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

/*
 * The exponent of the kernel term of held-out row x and training row y, in
 * base 2 and shifted by the row's nearest term, t2 = c2 (d2min - |x - y|^2)
 * with c2 = log2(e) / (2 h^2), is formed from per-row constants a (d values)
 * and b:
 *   direct:   t2 = c2 (b - sum_j (y_j - a_j)^2),  a = x,        b = d2min;
 *   expanded: t2 = b - c2 |y'|^2 + sum_j a_j y'_j, a = 2 c2 x', b = c2 (d2min - |x'|^2),
 * where x', y' are the centred coordinates.
 */
int kde_cv_plan_expanded(const kde_cv_plan *plan, double h)
{
    if (plan == NULL || !(h > 0.0) || !isfinite(h))
        return 0;
    const double c = 0.5 / (h * h);
    return isfinite(c) && c * plan->r2max <= KDE_EXPANDED_LIMIT;
}

#if KDE_USE_AVX512
/* Adds the terms of the eight training positions [q, q + 8) (lanes of valid
 * only) to the group's lane sums. Constant D and EXPANDED after inlining. */
KDE_INLINE void kde_vector_sum(const kde_cv_plan *p, int D, int expanded, int64_t q,
                               __mmask8 valid, const double *a, const double *b, __m512d c2v,
                               __m512d tab_lo, __m512d tab_hi, __m512d acc[KDE_GROUP])
{
    const int64_t stride = p->stride;
    const double *y = expanded ? p->ccoord : p->coord;
    /* Fully unrolled over the group so the eight independent exp chains
     * overlap and the sums stay in registers. */
#pragma GCC unroll 8
    for (int r = 0; r < KDE_GROUP; r++) {
        __m512d t;
        if (expanded) {
            t = _mm512_fnmadd_pd(c2v, _mm512_load_pd(p->cnorm2 + q), _mm512_set1_pd(b[r]));
#pragma GCC unroll 4
            for (int j = 0; j < D; j++)
                t = _mm512_fmadd_pd(_mm512_set1_pd(a[r * D + j]), _mm512_load_pd(y + j * stride + q), t);
        } else {
            __m512d u = _mm512_sub_pd(_mm512_load_pd(y + q), _mm512_set1_pd(a[r * D]));
            __m512d s = _mm512_mul_pd(u, u);
#pragma GCC unroll 4
            for (int j = 1; j < D; j++) {
                u = _mm512_sub_pd(_mm512_load_pd(y + j * stride + q), _mm512_set1_pd(a[r * D + j]));
                s = _mm512_fmadd_pd(u, u, s);
            }
            /* c2 (d2min - s), difference first: at the nearest row it is
             * exactly 0, where b - c2 s would be the rounding error of
             * c2 d2min, thousands for tiny widths (huge c2). The cap at 0 is
             * a guard; s >= d2min by construction. */
            t = _mm512_mul_pd(_mm512_sub_pd(_mm512_set1_pd(b[r]), s), c2v);
            t = _mm512_min_pd(t, _mm512_setzero_pd());
        }
        /* The expanded form's exponents are all above KDE_EXP2_MIN (see
         * KDE_EXPANDED_LIMIT), so it skips the underflow test. */
        const __mmask8 keep =
            expanded ? valid
                     : _mm512_mask_cmp_pd_mask(valid, t, _mm512_set1_pd(KDE_EXP2_MIN), _CMP_GE_OQ);
        __m512d m;
        const __m512d pv = kde_exp2_split8(t, tab_lo, tab_hi, keep, &m);
        acc[r] = keep == 0xff ? _mm512_fmadd_pd(pv, m, acc[r])
                              : _mm512_mask3_fmadd_pd(pv, m, acc[r], keep);
    }
}

/* Positions [a0, e) of one run of blocks (a0 a multiple of KDE_LANES). */
KDE_INLINE void kde_block_sum(const kde_cv_plan *p, int D, int expanded, int64_t a0, int64_t e,
                              const double *a, const double *b, double c2, __m512d acc[KDE_GROUP])
{
    const __m512d c2v = _mm512_set1_pd(c2);
    const __m512d tab_lo = _mm512_load_pd(kde_exp2_table);
    const __m512d tab_hi = _mm512_load_pd(kde_exp2_table + 8);
    int64_t q = a0;
    for (; q + KDE_LANES <= e; q += KDE_LANES)
        kde_vector_sum(p, D, expanded, q, 0xff, a, b, c2v, tab_lo, tab_hi, acc);
    if (q < e) /* the fold's last, partial vector: padding lanes must add nothing */
        kde_vector_sum(p, D, expanded, q, (__mmask8)((1u << (e - q)) - 1u), a, b, c2v, tab_lo,
                       tab_hi, acc);
}

/* ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)), as the other paths. */
KDE_INLINE double kde_hsum8(__m512d v)
{
    double l[KDE_LANES];
    _mm512_storeu_pd(l, v);
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}
#elif KDE_USE_AVX2
/* Lanes [0, valid) all ones, the rest zero (valid may be <= 0 or >= 4). */
KDE_INLINE __m256d kde_lane_mask(int64_t valid)
{
    const __m256i idx = _mm256_setr_epi64x(0, 1, 2, 3);
    return _mm256_castsi256_pd(_mm256_cmpgt_epi64(_mm256_set1_epi64x(valid), idx));
}

/* kde_vector_sum of the AVX-512 path as two four-lane halves. */
KDE_INLINE void kde_vector_sum(const kde_cv_plan *p, int D, int expanded, int64_t q,
                               int64_t valid, const double *a, const double *b, __m256d c2v,
                               __m256d acc[KDE_GROUP][2])
{
    const int64_t stride = p->stride;
    const double *y = expanded ? p->ccoord : p->coord;
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const int64_t qh = q + 4 * h;
        const __m256d mask = kde_lane_mask(valid - 4 * h);
#pragma GCC unroll 8
        for (int r = 0; r < KDE_GROUP; r++) {
            __m256d t;
            if (expanded) {
                t = _mm256_fnmadd_pd(c2v, _mm256_load_pd(p->cnorm2 + qh), _mm256_set1_pd(b[r]));
#pragma GCC unroll 4
                for (int j = 0; j < D; j++)
                    t = _mm256_fmadd_pd(_mm256_set1_pd(a[r * D + j]),
                                        _mm256_load_pd(y + j * stride + qh), t);
            } else {
                __m256d u = _mm256_sub_pd(_mm256_load_pd(y + qh), _mm256_set1_pd(a[r * D]));
                __m256d s = _mm256_mul_pd(u, u);
#pragma GCC unroll 4
                for (int j = 1; j < D; j++) {
                    u = _mm256_sub_pd(_mm256_load_pd(y + j * stride + qh),
                                      _mm256_set1_pd(a[r * D + j]));
                    s = _mm256_fmadd_pd(u, u, s);
                }
                t = _mm256_mul_pd(_mm256_sub_pd(_mm256_set1_pd(b[r]), s), c2v); /* see AVX-512 */
                t = _mm256_min_pd(t, _mm256_setzero_pd());
            }
            acc[r][h] = kde_exp2_acc4(t, acc[r][h], kde_exp2_keep4(t, mask));
        }
    }
}

KDE_INLINE void kde_block_sum(const kde_cv_plan *p, int D, int expanded, int64_t a0, int64_t e,
                              const double *a, const double *b, double c2,
                              __m256d acc[KDE_GROUP][2])
{
    const __m256d c2v = _mm256_set1_pd(c2);
    for (int64_t q = a0; q < e; q += KDE_LANES)
        kde_vector_sum(p, D, expanded, q, e - q, a, b, c2v, acc);
}
#else
KDE_INLINE void kde_block_sum(const kde_cv_plan *p, int D, int expanded, int64_t a0, int64_t e,
                              const double *a, const double *b, double c2,
                              double acc[KDE_GROUP][KDE_LANES])
{
    const int64_t stride = p->stride;
    for (int64_t q = a0; q < e; q++) {
        const int lane = (int)(q % KDE_LANES);
        for (int r = 0; r < KDE_GROUP; r++) {
            double t;
            if (expanded) {
                t = KDE_FMA(-c2, p->cnorm2[q], b[r]);
                for (int j = 0; j < D; j++)
                    t = KDE_FMA(a[r * D + j], p->ccoord[j * stride + q], t);
            } else {
                double u = p->coord[q] - a[r * D];
                double s = u * u;
                for (int j = 1; j < D; j++) {
                    u = p->coord[j * stride + q] - a[r * D + j];
                    s = KDE_FMA(u, u, s);
                }
                t = (b[r] - s) * c2;   /* see the AVX-512 path */
                t = t < 0.0 ? t : 0.0; /* as _mm*_min_pd(t, 0) */
            }
            acc[r][lane] = kde_exp2_acc(t, acc[r][lane]);
        }
    }
}
#endif

/* Sum over the held-out rows of fold f of log sum_y exp(-|x - y|^2 c),
 * specialised on the dimension D and the form of the exponent. */
KDE_INLINE double kde_fold_logsum(const kde_cv_plan *p, int f, double c2, double skip, int D,
                                  int expanded)
{
    double xbuf[KDE_GROUP * KDE_CV_MAX_DIM];
    double abuf[KDE_GROUP * KDE_CV_MAX_DIM];
    kde_group_box g;
    double total = 0.0;
    for (int64_t i = 0; i < p->fold_len[f]; i += KDE_GROUP) {
        kde_group_load(p, p->seg_begin[f] + i, p->fold_len[f] - i, xbuf, &g);
        double off[KDE_GROUP], b[KDE_GROUP];
        const double *a = xbuf;
        double worst = 0.0;
        for (int r = 0; r < KDE_GROUP; r++) {
            const int64_t pos = g.pos[r];
            const double m = p->d2min[pos];
            off[r] = m * c2;
            b[r] = m; /* direct form: t2 = c2 (b - s) */
            worst = m > worst ? m : worst;
            if (expanded) {
                b[r] = KDE_FMA(-c2, p->cnorm2[pos], off[r]);
                for (int j = 0; j < D; j++)
                    abuf[r * D + j] = (2.0 * c2) * p->ccoord[j * p->stride + pos];
                a = abuf;
            }
        }
#if KDE_USE_AVX512
        __m512d acc[KDE_GROUP];
        for (int r = 0; r < KDE_GROUP; r++)
            acc[r] = _mm512_setzero_pd();
#elif KDE_USE_AVX2
        __m256d acc[KDE_GROUP][2];
        for (int r = 0; r < KDE_GROUP; r++)
            acc[r][0] = acc[r][1] = _mm256_setzero_pd();
#else
        double acc[KDE_GROUP][KDE_LANES] = { { 0.0 } };
#endif
        for (int f2 = 0; f2 < p->folds; f2++) {
            if (f2 == f)
                continue;
            const int64_t begin = p->seg_begin[f2];
            const int64_t end = begin + p->fold_len[f2];
            /* Consecutive kept blocks form one run [run, a0) summed in one call:
             * the same terms in the same order as block by block, with the
             * loop set-up paid once per run (large widths keep whole folds). */
            int64_t run = begin;
            for (int64_t blk = p->block_first[f2]; blk < p->block_first[f2 + 1]; blk++) {
                const int64_t a0 = begin + (blk - p->block_first[f2]) * KDE_BLOCK;
                /* Every term of this block is below exp(-skip * c) of the row's
                 * largest; the nearest row's block never qualifies. */
                if (kde_box_gap2(g.lo, g.hi, p->box_lo + blk * D, p->box_hi + blk * D, D) - worst >
                    skip) {
                    if (run < a0)
                        kde_block_sum(p, D, expanded, run, a0, a, b, c2, acc);
                    run = a0 + KDE_BLOCK;
                }
            }
            if (run < end)
                kde_block_sum(p, D, expanded, run, end, a, b, c2, acc);
        }
        for (int r = 0; r < g.valid; r++) {
#if KDE_USE_AVX512
            const double s = kde_hsum8(acc[r]);
#elif KDE_USE_AVX2
            const double s = kde_hsum4(acc[r][0]) + kde_hsum4(acc[r][1]);
#else
            const double s = ((acc[r][0] + acc[r][1]) + (acc[r][2] + acc[r][3])) +
                             ((acc[r][4] + acc[r][5]) + (acc[r][6] + acc[r][7]));
#endif
            /* log sum exp(-d2 c) = log sum 2^(off - c2 d2) - off ln 2; the
             * rounding of off[r] cancels between the two parts. */
            total += KDE_FMA(-off[r], KDE_LN2, log(s));
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
    const double c2 = KDE_LOG2E * c;
    if (!isfinite(c2) || !(c > 0.0))
        return NAN; /* h^2 underflows or overflows */
    const int expanded = kde_cv_plan_expanded(p, h);
    const double log_norm = -0.5 * p->d * (KDE_LOG_2PI + 2.0 * log(h));
    double sum = 0.0;
    for (int f = 0; f < p->folds; f++) {
        const int64_t ntrain = p->n - p->fold_len[f];
        const double skip = (KDE_SKIP_MARGIN + log((double)ntrain)) / c;
        double logsum;
#define KDE_CASE(D)                                                                      \
    case D:                                                                              \
        logsum = expanded ? kde_fold_logsum(p, f, c2, skip, D, 1)                        \
                          : kde_fold_logsum(p, f, c2, skip, D, 0);                       \
        break;
        switch (p->d) {
            KDE_CASE(1)
            KDE_CASE(2)
            KDE_CASE(3)
            KDE_CASE(4)
        default:
            logsum = expanded ? kde_fold_logsum(p, f, c2, skip, p->d, 1)
                              : kde_fold_logsum(p, f, c2, skip, p->d, 0);
            break;
        }
#undef KDE_CASE
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
