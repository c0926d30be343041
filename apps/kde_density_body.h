/*
 * The per-path density kernels of kde_kernels.c: the hypercube count and the
 * Gaussian density at one point (the exponential is kde_exp_body.h's).
 * Included by kde_kernels_body.h, once per path, with KDE_USE_AVX2,
 * KDE_USE_AVX512 and the KDE_FN renames set there. Not a public header.
 */

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

static int64_t kde_hypercube_count_impl(const double *samples, int64_t n, int d,
                                        const double *point, double h)
{
    if (samples == NULL || point == NULL || n <= 0 || d <= 0)
        return 0;
    const double half = 0.5 * h; /* exact: the face itself is inside */
    /* Constant d lets the compiler unroll the coordinate loop into branch-free code. */
    switch (d) {
    case 1: return kde_cube_count_d(samples, n, 1, point, half);
    case 2: return kde_cube_count_d(samples, n, 2, point, half);
    case 3: return kde_cube_count_d(samples, n, 3, point, half);
    default: return kde_cube_count_d(samples, n, d, point, half);
    }
}

/* ------------------------------------------------------------- Gaussian */

/* Not in the AVX-512 copy: kde_gaussian_density uses the AVX2 copy on
 * AVX-512 CPUs too. It has no AVX-512 code of its own, and GCC's generic
 * tuning compiles its distance loop ~15% slower for AVX-512 than for AVX2
 * (same bits either way). */
#if !KDE_USE_AVX512
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

static double kde_gaussian_density_impl(const double *samples, int64_t n, int d,
                                        const double *point, double h)
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
#endif /* !KDE_USE_AVX512 */
