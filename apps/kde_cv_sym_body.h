/*
 * The per-path cross-validation kernels of the expanded form (moderate and
 * large widths, kde_cv_plan_expanded), which evaluate every cross-fold pair
 * of rows once. Included by kde_cv_body.h, once per path, after the direct
 * form's kernels (it uses kde_lane_mask and kde_row_sum).
 *
 * The kernel term of rows x and y, exp(-c |x - y|^2), does not depend on
 * which of the two is held out. So the folds are taken in order and the
 * rows of fold f are summed against the rows of the later folds only: each
 * term goes to x's lane sums (as in the direct form) and to a column sum of
 * y (colsum, indexed by position), which collects y's terms from the earlier
 * folds. When fold f is reached, a row's column sum is complete, and its
 * total is the column sum plus its own lane sums. Half the exponentials of
 * the one-sided evaluation.
 *
 * No log-sum-exp shift here: a shift must be one value per row, and a term
 * shared by two rows cannot carry both rows' shifts. It is not needed. With
 * centred coordinates |x - y| <= |x| + |y| <= 2 R, so the unshifted exponent
 * t2 = -log2(e) c |x - y|^2 >= -4 log2(e) c R^2 >= -739 when c R^2 <= 128
 * (KDE_EXPANDED_LIMIT), far above KDE_EXP2_MIN: no term underflows or turns
 * subnormal, every term keeps the relative precision of the shifted form
 * (the absolute error of t2 is a few ulp of c R^2 with or without the
 * shift), and a row's sum, at least its largest term, is >= 2^-739, a
 * normal number, whose log is as accurate as the shifted one's. The block skipping of the
 * direct form is dropped too (a skip would have to hold for both rows of a
 * pair): c R^2 <= 128 puts the skip distance sqrt((40 + log n_train) / c)
 * above 0.55 R, so only rows far apart could be skipped, and evaluating each
 * pair once costs no more than the one-sided sum with skipping even for
 * uniform data in one dimension right at the switch, where the skipping
 * saves most.
 *
 * Every path adds the same values in the same order: per training vector,
 * row r's term goes to lane q % 8 of row r's sums (one FMA) and the column
 * sum is col = term(r = 0) + term(r = 1) + ... over the group's valid rows
 * (FMAs from 0), then colsum[q] += col; the padding rows of a fold's last
 * group and the padding lanes of its last vector add nothing to a column.
 */

#if KDE_USE_AVX512
/* Row r's exponent b_r - c2 |y|^2 + sum_j a_rj y_j at positions [q, q + 8). */
KDE_INLINE __m512d kde_sym_t8(const kde_cv_plan *p, int D, int64_t q, const double *a, double b,
                              __m512d c2v)
{
    __m512d t = _mm512_fnmadd_pd(c2v, _mm512_load_pd(p->cnorm2 + q), _mm512_set1_pd(b));
#pragma GCC unroll 4
    for (int j = 0; j < D; j++)
        t = _mm512_fmadd_pd(_mm512_set1_pd(a[j]), _mm512_load_pd(p->ccoord + j * p->stride + q), t);
    return t;
}

/* The terms of positions [q, q + 8) (lanes of valid only) for the group:
 * into the lane sums of all eight rows, and rows [0, rows) into colsum. */
KDE_INLINE void kde_sym_vector(const kde_cv_plan *p, int D, int64_t q, __mmask8 valid, int rows,
                               const double *a, const double *b, __m512d c2v, __m512d tab_lo,
                               __m512d tab_hi, __m512d acc[KDE_GROUP], double *colsum)
{
    __m512d col = _mm512_setzero_pd();
#pragma GCC unroll 8
    for (int r = 0; r < KDE_GROUP; r++) {
        const __m512d t = kde_sym_t8(p, D, q, a + r * D, b[r], c2v);
        __m512d m; /* 0 outside valid, so those lanes add 0 below */
        const __m512d pv = kde_exp2_split8(t, tab_lo, tab_hi, valid, &m);
        acc[r] = _mm512_fmadd_pd(pv, m, acc[r]);
        if (r < rows)
            col = _mm512_fmadd_pd(pv, m, col);
    }
    _mm512_store_pd(colsum + q, _mm512_add_pd(_mm512_load_pd(colsum + q), col));
}

/* Positions [a0, e) of one fold (a0 a multiple of KDE_LANES). */
KDE_INLINE void kde_sym_fold(const kde_cv_plan *p, int D, int64_t a0, int64_t e, int rows,
                             const double *a, const double *b, double c2, __m512d acc[KDE_GROUP],
                             double *colsum)
{
    const __m512d c2v = _mm512_set1_pd(c2);
    const __m512d tab_lo = _mm512_load_pd(kde_exp2_table);
    const __m512d tab_hi = _mm512_load_pd(kde_exp2_table + 8);
    int64_t q = a0;
    for (; q + KDE_LANES <= e; q += KDE_LANES)
        kde_sym_vector(p, D, q, 0xff, rows, a, b, c2v, tab_lo, tab_hi, acc, colsum);
    if (q < e) /* the fold's last, partial vector */
        kde_sym_vector(p, D, q, (__mmask8)((1u << (e - q)) - 1u), rows, a, b, c2v, tab_lo, tab_hi,
                       acc, colsum);
}
#elif KDE_USE_AVX2
/* kde_sym_vector of the AVX-512 path as two four-lane halves. */
KDE_INLINE void kde_sym_vector(const kde_cv_plan *p, int D, int64_t q, int64_t valid, int rows,
                               const double *a, const double *b, __m256d c2v,
                               __m256d acc[KDE_GROUP][2], double *colsum)
{
    const int64_t stride = p->stride;
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const int64_t qh = q + 4 * h;
        const __m256d mask = kde_lane_mask(valid - 4 * h);
        __m256d col = _mm256_setzero_pd();
#pragma GCC unroll 8
        for (int r = 0; r < KDE_GROUP; r++) {
            __m256d t = _mm256_fnmadd_pd(c2v, _mm256_load_pd(p->cnorm2 + qh), _mm256_set1_pd(b[r]));
#pragma GCC unroll 4
            for (int j = 0; j < D; j++)
                t = _mm256_fmadd_pd(_mm256_set1_pd(a[r * D + j]),
                                    _mm256_load_pd(p->ccoord + j * stride + qh), t);
            __m256d m;
            const __m256d pv = kde_exp2_split4(t, &m);
            acc[r][h] = _mm256_blendv_pd(acc[r][h], _mm256_fmadd_pd(pv, m, acc[r][h]), mask);
            if (r < rows)
                col = _mm256_blendv_pd(col, _mm256_fmadd_pd(pv, m, col), mask);
        }
        _mm256_store_pd(colsum + qh, _mm256_add_pd(_mm256_load_pd(colsum + qh), col));
    }
}

KDE_INLINE void kde_sym_fold(const kde_cv_plan *p, int D, int64_t a0, int64_t e, int rows,
                             const double *a, const double *b, double c2, __m256d acc[KDE_GROUP][2],
                             double *colsum)
{
    const __m256d c2v = _mm256_set1_pd(c2);
    for (int64_t q = a0; q < e; q += KDE_LANES)
        kde_sym_vector(p, D, q, e - q, rows, a, b, c2v, acc, colsum);
}
#else
KDE_INLINE void kde_sym_fold(const kde_cv_plan *p, int D, int64_t a0, int64_t e, int rows,
                             const double *a, const double *b, double c2,
                             double acc[KDE_GROUP][KDE_LANES], double *colsum)
{
    const int64_t stride = p->stride;
    for (int64_t q = a0; q < e; q++) {
        const int lane = (int)(q % KDE_LANES);
        double col = 0.0;
        for (int r = 0; r < KDE_GROUP; r++) {
            double t = KDE_FMA(-c2, p->cnorm2[q], b[r]);
            for (int j = 0; j < D; j++)
                t = KDE_FMA(a[r * D + j], p->ccoord[j * stride + q], t);
            double m;
            const double pv = kde_exp2_split(t, &m); /* t >= -739: no underflow test */
            acc[r][lane] = KDE_FMA(pv, m, acc[r][lane]);
            if (r < rows)
                col = KDE_FMA(pv, m, col);
        }
        colsum[q] += col;
    }
}
#endif

/* Sum over all rows x of log sum_{y in other folds} exp(-|x - y|^2 c), each
 * fold's part followed by its normalisation as in the direct form.
 * Specialised on the dimension D. */
KDE_INLINE double kde_sym_sum(const kde_cv_plan *p, double c2, double log_norm, int D,
                              double *colsum)
{
    double abuf[KDE_GROUP * KDE_CV_MAX_DIM];
    double xbuf[KDE_GROUP * KDE_CV_MAX_DIM];
    kde_group_box g;
    double sum = 0.0;
    for (int f = 0; f < p->folds; f++) {
        double total = 0.0;
        for (int64_t i = 0; i < p->fold_len[f]; i += KDE_GROUP) {
            kde_group_load(p, p->seg_begin[f] + i, p->fold_len[f] - i, xbuf, &g);
            double b[KDE_GROUP];
            for (int r = 0; r < KDE_GROUP; r++) {
                const int64_t pos = g.pos[r];
                b[r] = -c2 * p->cnorm2[pos]; /* t2 = b - c2 |y'|^2 + 2 c2 x'.y' */
                for (int j = 0; j < D; j++)
                    abuf[r * D + j] = (2.0 * c2) * p->ccoord[j * p->stride + pos];
            }
            kde_sums acc;
            memset(acc, 0, sizeof acc);
            for (int f2 = f + 1; f2 < p->folds; f2++)
                kde_sym_fold(p, D, p->seg_begin[f2], p->seg_begin[f2] + p->fold_len[f2], g.valid,
                             abuf, b, c2, acc, colsum);
            /* The earlier folds' terms (complete: those folds are done)
             * plus the later folds'. */
            for (int r = 0; r < g.valid; r++)
                total += log(colsum[g.pos[r]] + kde_row_sum(acc, r));
        }
        const int64_t ntrain = p->n - p->fold_len[f];
        sum += total + (double)p->fold_len[f] * (log_norm - log((double)ntrain));
    }
    return sum;
}

/* The expanded form's score; NaN when the column sums cannot be allocated. */
static double kde_sym_score(const kde_cv_plan *p, double c2, double log_norm)
{
    /* One column sum per position, zero in the padding; aligned for the
     * vector loads (stride is a multiple of KDE_LANES). */
    const size_t bytes = sizeof(double) * (size_t)p->stride;
    double *colsum = aligned_alloc(64, bytes);
    if (colsum == NULL)
        return NAN;
    memset(colsum, 0, bytes);
    double sum;
#define KDE_CASE(D)                                                                                \
    case D: sum = kde_sym_sum(p, c2, log_norm, D, colsum); break;
    switch (p->d) {
        KDE_CASE(1)
        KDE_CASE(2)
        KDE_CASE(3)
        KDE_CASE(4)
    default: sum = kde_sym_sum(p, c2, log_norm, p->d, colsum); break;
    }
#undef KDE_CASE
    free(colsum);
    return sum / (double)p->folds;
}
