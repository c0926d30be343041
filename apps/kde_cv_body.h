/*
 * The per-path cross-validation kernels of kde_kernels.c: the nearest-
 * neighbour plan, the leave-fold-out log-likelihood scores in the direct
 * form, then (kde_cv_sym_body.h) the expanded form's, and the entry point
 * that picks one of the two (the exponential is kde_exp_body.h's). Included
 * by kde_kernels_body.h, once per path, with KDE_USE_AVX2, KDE_USE_AVX512 and
 * the KDE_FN renames set there. Not a public header.
 */

/* ------------------------------------------------------------------ plan */

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

/* ----------------------------------------------------------------- score */

#if KDE_USE_AVX512
/* Adds the direct-form terms of the eight training positions [q, q + 8)
 * (lanes of valid only) to the group's lane sums. Constant D after inlining. */
KDE_INLINE void kde_vector_sum(const kde_cv_plan *p, int D, int64_t q, __mmask8 valid,
                               const double *a, const double *b, __m512d c2v, __m512d tab_lo,
                               __m512d tab_hi, __m512d acc[KDE_GROUP])
{
    const int64_t stride = p->stride;
    const double *y = p->coord;
    /* Fully unrolled over the group so the eight independent exp chains
     * overlap and the sums stay in registers. */
#pragma GCC unroll 8
    for (int r = 0; r < KDE_GROUP; r++) {
        __m512d u = _mm512_sub_pd(_mm512_load_pd(y + q), _mm512_set1_pd(a[r * D]));
        __m512d s = _mm512_mul_pd(u, u);
#pragma GCC unroll 4
        for (int j = 1; j < D; j++) {
            u = _mm512_sub_pd(_mm512_load_pd(y + j * stride + q), _mm512_set1_pd(a[r * D + j]));
            s = _mm512_fmadd_pd(u, u, s);
        }
        /* c2 (d2min - s), difference first: at the nearest row it is exactly
         * 0, where b - c2 s would be the rounding error of c2 d2min,
         * thousands for tiny widths (huge c2). The cap at 0 is a guard;
         * s >= d2min by construction. */
        __m512d t = _mm512_mul_pd(_mm512_sub_pd(_mm512_set1_pd(b[r]), s), c2v);
        t = _mm512_min_pd(t, _mm512_setzero_pd());
        const __mmask8 keep =
            _mm512_mask_cmp_pd_mask(valid, t, _mm512_set1_pd(KDE_EXP2_MIN), _CMP_GE_OQ);
        __m512d m;
        const __m512d pv = kde_exp2_split8(t, tab_lo, tab_hi, keep, &m);
        acc[r] = keep == 0xff ? _mm512_fmadd_pd(pv, m, acc[r])
                              : _mm512_mask3_fmadd_pd(pv, m, acc[r], keep);
    }
}

/* Positions [a0, e) of one run of blocks (a0 a multiple of KDE_LANES). */
KDE_INLINE void kde_block_sum(const kde_cv_plan *p, int D, int64_t a0, int64_t e, const double *a,
                              const double *b, double c2, __m512d acc[KDE_GROUP])
{
    const __m512d c2v = _mm512_set1_pd(c2);
    const __m512d tab_lo = _mm512_load_pd(kde_exp2_table);
    const __m512d tab_hi = _mm512_load_pd(kde_exp2_table + 8);
    int64_t q = a0;
    for (; q + KDE_LANES <= e; q += KDE_LANES)
        kde_vector_sum(p, D, q, 0xff, a, b, c2v, tab_lo, tab_hi, acc);
    if (q < e) /* the fold's last, partial vector: padding lanes must add nothing */
        kde_vector_sum(p, D, q, (__mmask8)((1u << (e - q)) - 1u), a, b, c2v, tab_lo, tab_hi, acc);
}

/* ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)), as the other paths. */
KDE_INLINE double kde_hsum8(__m512d v)
{
    double l[KDE_LANES];
    _mm512_storeu_pd(l, v);
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

/* Row r's total of its lane sums, in the order every path uses. */
/* A group's lane sums (zeroed with memset: all-zero bits are 0.0). */
typedef __m512d kde_sums[KDE_GROUP];

KDE_INLINE double kde_row_sum(const __m512d acc[KDE_GROUP], int r) { return kde_hsum8(acc[r]); }
#elif KDE_USE_AVX2
/* Lanes [0, valid) all ones, the rest zero (valid may be <= 0 or >= 4). */
KDE_INLINE __m256d kde_lane_mask(int64_t valid)
{
    const __m256i idx = _mm256_setr_epi64x(0, 1, 2, 3);
    return _mm256_castsi256_pd(_mm256_cmpgt_epi64(_mm256_set1_epi64x(valid), idx));
}

/* kde_vector_sum of the AVX-512 path as two four-lane halves. */
KDE_INLINE void kde_vector_sum(const kde_cv_plan *p, int D, int64_t q, int64_t valid,
                               const double *a, const double *b, __m256d c2v,
                               __m256d acc[KDE_GROUP][2])
{
    const int64_t stride = p->stride;
    const double *y = p->coord;
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const int64_t qh = q + 4 * h;
        const __m256d mask = kde_lane_mask(valid - 4 * h);
#pragma GCC unroll 8
        for (int r = 0; r < KDE_GROUP; r++) {
            __m256d u = _mm256_sub_pd(_mm256_load_pd(y + qh), _mm256_set1_pd(a[r * D]));
            __m256d s = _mm256_mul_pd(u, u);
#pragma GCC unroll 4
            for (int j = 1; j < D; j++) {
                u = _mm256_sub_pd(_mm256_load_pd(y + j * stride + qh),
                                  _mm256_set1_pd(a[r * D + j]));
                s = _mm256_fmadd_pd(u, u, s);
            }
            __m256d t =
                _mm256_mul_pd(_mm256_sub_pd(_mm256_set1_pd(b[r]), s), c2v); /* see AVX-512 */
            t = _mm256_min_pd(t, _mm256_setzero_pd());
            acc[r][h] = kde_exp2_acc4(t, acc[r][h], kde_exp2_keep4(t, mask));
        }
    }
}

KDE_INLINE void kde_block_sum(const kde_cv_plan *p, int D, int64_t a0, int64_t e, const double *a,
                              const double *b, double c2, __m256d acc[KDE_GROUP][2])
{
    const __m256d c2v = _mm256_set1_pd(c2);
    for (int64_t q = a0; q < e; q += KDE_LANES)
        kde_vector_sum(p, D, q, e - q, a, b, c2v, acc);
}
typedef __m256d kde_sums[KDE_GROUP][2];

KDE_INLINE double kde_row_sum(__m256d acc[KDE_GROUP][2], int r)
{
    return kde_hsum4(acc[r][0]) + kde_hsum4(acc[r][1]);
}
#else
typedef double kde_sums[KDE_GROUP][KDE_LANES];

KDE_INLINE double kde_row_sum(double acc[KDE_GROUP][KDE_LANES], int r)
{
    return ((acc[r][0] + acc[r][1]) + (acc[r][2] + acc[r][3])) +
           ((acc[r][4] + acc[r][5]) + (acc[r][6] + acc[r][7]));
}

KDE_INLINE void kde_block_sum(const kde_cv_plan *p, int D, int64_t a0, int64_t e, const double *a,
                              const double *b, double c2, double acc[KDE_GROUP][KDE_LANES])
{
    const int64_t stride = p->stride;
    for (int64_t q = a0; q < e; q++) {
        const int lane = (int)(q % KDE_LANES);
        for (int r = 0; r < KDE_GROUP; r++) {
            double u = p->coord[q] - a[r * D];
            double s = u * u;
            for (int j = 1; j < D; j++) {
                u = p->coord[j * stride + q] - a[r * D + j];
                s = KDE_FMA(u, u, s);
            }
            double t = (b[r] - s) * c2; /* see the AVX-512 path */
            t = t < 0.0 ? t : 0.0;      /* as _mm*_min_pd(t, 0) */
            acc[r][lane] = kde_exp2_acc(t, acc[r][lane]);
        }
    }
}
#endif

/* Sum over the held-out rows of fold f of log sum_y exp(-|x - y|^2 c) in the
 * direct form, with the log-sum-exp shift around each row's nearest training
 * row and the block skipping; specialised on the dimension D. */
KDE_INLINE double kde_fold_logsum(const kde_cv_plan *p, int f, double c2, double skip, int D)
{
    double xbuf[KDE_GROUP * KDE_CV_MAX_DIM];
    kde_group_box g;
    double total = 0.0;
    for (int64_t i = 0; i < p->fold_len[f]; i += KDE_GROUP) {
        kde_group_load(p, p->seg_begin[f] + i, p->fold_len[f] - i, xbuf, &g);
        double off[KDE_GROUP], b[KDE_GROUP];
        double worst = 0.0;
        for (int r = 0; r < KDE_GROUP; r++) {
            const double m = p->d2min[g.pos[r]];
            off[r] = m * c2;
            b[r] = m; /* t2 = c2 (b - s) */
            worst = m > worst ? m : worst;
        }
        kde_sums acc;
        memset(acc, 0, sizeof acc);
        for (int f2 = 0; f2 < p->folds; f2++) {
            if (f2 == f)
                continue;
            const int64_t begin = p->seg_begin[f2];
            const int64_t end = begin + p->fold_len[f2];
            /* Consecutive kept blocks form one run [run, a0) summed in one call:
             * the same terms in the same order as block by block, with the
             * loop set-up paid once per run. */
            int64_t run = begin;
            for (int64_t blk = p->block_first[f2]; blk < p->block_first[f2 + 1]; blk++) {
                const int64_t a0 = begin + (blk - p->block_first[f2]) * KDE_BLOCK;
                /* Every term of this block is below exp(-skip * c) of the row's
                 * largest; the nearest row's block never qualifies. */
                if (kde_box_gap2(g.lo, g.hi, p->box_lo + blk * D, p->box_hi + blk * D, D) - worst >
                    skip) {
                    if (run < a0)
                        kde_block_sum(p, D, run, a0, xbuf, b, c2, acc);
                    run = a0 + KDE_BLOCK;
                }
            }
            if (run < end)
                kde_block_sum(p, D, run, end, xbuf, b, c2, acc);
        }
        for (int r = 0; r < g.valid; r++) {
            /* log sum exp(-d2 c) = log sum 2^(off - c2 d2) - off ln 2; the
             * rounding of off[r] cancels between the two parts. */
            total += KDE_FMA(-off[r], KDE_LN2, log(kde_row_sum(acc, r)));
        }
    }
    return total;
}

#include "kde_cv_sym_body.h"

/* The one implementation behind both entry points; kept out of line so every
 * width runs exactly the same machine code whichever function was called.
 * NaN for a bad h, or when the expanded form's scratch cannot be allocated. */
static __attribute__((noinline)) double kde_cv_score_one(const kde_cv_plan *p, double h)
{
    if (p == NULL || !(h > 0.0) || !isfinite(h))
        return NAN;
    const double c = 0.5 / (h * h);
    const double c2 = KDE_LOG2E * c;
    if (!isfinite(c2) || !(c > 0.0))
        return NAN; /* h^2 underflows or overflows */
    const double log_norm = -0.5 * p->d * (KDE_LOG_2PI + 2.0 * log(h));
    if (kde_cv_plan_expanded(p, h))
        return kde_sym_score(p, c2, log_norm);
    double sum = 0.0;
    for (int f = 0; f < p->folds; f++) {
        const int64_t ntrain = p->n - p->fold_len[f];
        const double skip = (KDE_SKIP_MARGIN + log((double)ntrain)) / c;
        double logsum;
#define KDE_CASE(D)                                                                                \
    case D: logsum = kde_fold_logsum(p, f, c2, skip, D); break;
        switch (p->d) {
            KDE_CASE(1)
            KDE_CASE(2)
            KDE_CASE(3)
            KDE_CASE(4)
        default: logsum = kde_fold_logsum(p, f, c2, skip, p->d); break;
        }
#undef KDE_CASE
        sum += logsum + (double)p->fold_len[f] * (log_norm - log((double)ntrain));
    }
    return sum / (double)p->folds;
}
