/*
 * The per-path exponential of kde_kernels.c: 2^t by a 16-entry table and a
 * polynomial, scalar and vector, with one rounding shared by every path.
 * Included by kde_kernels_body.h, once per path, with KDE_USE_AVX2,
 * KDE_USE_AVX512 and the KDE_FN renames set there. Not a public header.
 */

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

static void kde_exp2_many_impl(const double *t, int64_t n, double *out)
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
