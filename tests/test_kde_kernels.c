/*
 * Tests of the kde_sweep numerical kernels against direct formulas: the
 * hypercube count and density, the Gaussian density, and the K-fold
 * cross-validated log-likelihood (double-loop and long-double log-sum-exp
 * references), the kernels' 2^t against libm's long-double exp2l, the choice
 * between the direct and the expanded exponent, plus the bitwise
 * reproducibility of batched scores, and that every instruction-set path this
 * CPU runs (scalar, AVX2, AVX-512; isa.h) gives the same bytes, equal to the
 * numbers of the former -march=native builds.
 */
#define _POSIX_C_SOURCE 200809L /* setenv, unsetenv, strdup */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kde_kernels.h"
#include "mpmap.h"

/* xorshift64* generator: the tests must not depend on libc's rand. */
typedef struct {
    uint64_t s;
} test_rng;

static double rng_uniform(test_rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return (double)((r->s * 0x2545F4914F6CDD1DULL) >> 11) * 0x1p-53;
}

static double rng_normal(test_rng *r)
{
    const double u = rng_uniform(r), v = rng_uniform(r);
    return sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v);
}

static double *normal_samples(int64_t n, int d, uint64_t seed)
{
    test_rng r = { seed * 0x9E3779B97F4A7C15ULL + 1 };
    double *x = malloc(sizeof *x * (size_t)(n * d));
    assert_non_null(x);
    for (int64_t i = 0; i < n * d; i++)
        x[i] = rng_normal(&r);
    return x;
}

static void assert_rel(double got, double want, double tol)
{
    const double err = fabs(got - want);
    if (!(err <= tol * fabs(want)))
        fail_msg("got %.17g want %.17g (rel %.3g > %.3g)", got, want, err / fabs(want), tol);
}

/* Rows [begin, begin + len) form fold f: the first n mod K folds are one row longer. */
static void fold_bounds(int64_t n, int k, int f, int64_t *begin, int64_t *len)
{
    *len = n / k + (f < n % k ? 1 : 0);
    *begin = (int64_t)f * (n / k) + (f < n % k ? f : n % k);
}

/* Straightforward definition: log of the mean of Gaussian kernel values. */
static double cv_reference_direct(const double *x, int64_t n, int d, int k, double h)
{
    const double two_pi = 6.283185307179586476925;
    double total = 0.0;
    for (int f = 0; f < k; f++) {
        int64_t b, len;
        fold_bounds(n, k, f, &b, &len);
        double score = 0.0;
        for (int64_t i = b; i < b + len; i++) {
            double mean = 0.0;
            for (int64_t y = 0; y < n; y++) {
                if (y >= b && y < b + len)
                    continue;
                double s = 0.0;
                for (int j = 0; j < d; j++)
                    s += (x[i * d + j] - x[y * d + j]) * (x[i * d + j] - x[y * d + j]);
                mean += pow(two_pi * h * h, -0.5 * d) * exp(-s / (2.0 * h * h));
            }
            score += log(mean / (double)(n - len));
        }
        total += score;
    }
    return total / k;
}

/* Long-double log-sum-exp around each row's own largest term: finite for any h. */
static double cv_reference_lse(const double *x, int64_t n, int d, int k, double h)
{
    const long double two_pi = 6.283185307179586476925286766559L;
    const long double hh = (long double)h * h;
    long double total = 0.0L;
    for (int f = 0; f < k; f++) {
        int64_t b, len;
        fold_bounds(n, k, f, &b, &len);
        for (int64_t i = b; i < b + len; i++) {
            long double m = INFINITY;
            for (int64_t y = 0; y < n; y++) {
                if (y >= b && y < b + len)
                    continue;
                long double s = 0.0L;
                for (int j = 0; j < d; j++) {
                    const long double u = (long double)x[i * d + j] - x[y * d + j];
                    s += u * u;
                }
                m = s < m ? s : m;
            }
            long double acc = 0.0L;
            for (int64_t y = 0; y < n; y++) {
                if (y >= b && y < b + len)
                    continue;
                long double s = 0.0L;
                for (int j = 0; j < d; j++) {
                    const long double u = (long double)x[i * d + j] - x[y * d + j];
                    s += u * u;
                }
                acc += expl(-(s - m) / (2.0L * hh));
            }
            total += logl(acc) - m / (2.0L * hh) - logl((long double)(n - len)) -
                     0.5L * d * logl(two_pi * hh);
        }
    }
    return (double)(total / k);
}

/* ------------------------------------------------------------ hypercube */

static int64_t count_direct(const double *x, int64_t n, int d, const double *p, double h)
{
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++) {
        int in = 1;
        for (int j = 0; j < d; j++)
            if (fabs(x[i * d + j] - p[j]) > h / 2)
                in = 0;
        c += in;
    }
    return c;
}

static void test_hypercube_count_matches_direct_loop(void **state)
{
    (void)state;
    for (int d = 1; d <= 5; d++) {
        double *x = normal_samples(300, d, 10 + (uint64_t)d);
        test_rng r = { 77 + (uint64_t)d };
        for (int trial = 0; trial < 20; trial++) {
            double p[5];
            for (int j = 0; j < d; j++)
                p[j] = rng_normal(&r);
            const double h = 0.1 + 3.0 * rng_uniform(&r);
            assert_int_equal(kde_hypercube_count(x, 300, d, p, h), count_direct(x, 300, d, p, h));
        }
        free(x);
    }
}

static void test_hypercube_counts_samples_on_the_face(void **state)
{
    (void)state;
    /* h = 0.5: half-width 0.25; all differences below are exact in binary. */
    const double p[2] = { 0.25, -0.5 };
    const double x[] = {
        0.5,  -0.5,  /* on the face in x: counts */
        0.0,  -0.25, /* on a corner: counts */
        0.5,  -0.75, /* on a corner: counts */
        0.5000000000000001, -0.5, /* just outside: does not count */
        0.25, -0.5,  /* the centre: counts */
        0.25, -0.7500000000000001, /* just outside in y */
    };
    assert_int_equal(kde_hypercube_count(x, 6, 2, p, 0.5), 4);
    const double line[] = { -1.0, 1.0, 0.0, 1.0000000000000002 };
    const double origin = 0.0;
    assert_int_equal(kde_hypercube_count(line, 4, 1, &origin, 2.0), 3);
}

static void test_hypercube_density_divides_by_volume(void **state)
{
    (void)state;
    /* count / (n h^d): 12 of 400 samples in a cube of side 0.5 in 3-D. */
    assert_rel(kde_hypercube_density(12, 400, 3, 0.5), 12.0 / (400.0 * 0.125), 1e-15);
    assert_rel(kde_hypercube_density(7, 100, 1, 0.2), 7.0 / (100.0 * 0.2), 1e-15);
    /* With many uniform samples on [0,1]^2 the density at the centre is ~1. */
    const int64_t n = 40000;
    double *x = malloc(sizeof *x * (size_t)(2 * n));
    assert_non_null(x);
    test_rng r = { 5 };
    for (int64_t i = 0; i < 2 * n; i++)
        x[i] = rng_uniform(&r);
    const double centre[2] = { 0.5, 0.5 };
    const int64_t c = kde_hypercube_count(x, n, 2, centre, 0.2);
    assert_true(fabs(kde_hypercube_density(c, n, 2, 0.2) - 1.0) < 0.1);
    free(x);
}

/* ------------------------------------------------------------- Gaussian */

static void test_gaussian_density_matches_direct_formula(void **state)
{
    (void)state;
    const double two_pi = 6.283185307179586476925;
    for (int d = 1; d <= 4; d++) {
        for (int64_t n = 1; n <= 301; n += 100) {
            double *x = normal_samples(n, d, 100 + (uint64_t)(d * 1000 + n));
            test_rng r = { 9 + (uint64_t)d };
            for (int trial = 0; trial < 5; trial++) {
                double p[4];
                for (int j = 0; j < d; j++)
                    p[j] = rng_normal(&r);
                const double hs[] = { 0.05, 0.3, 1.0, 7.0 };
                for (int k = 0; k < 4; k++) {
                    const double h = hs[k];
                    long double sum = 0.0L;
                    for (int64_t i = 0; i < n; i++) {
                        long double s = 0.0L;
                        for (int j = 0; j < d; j++)
                            s += ((long double)x[i * d + j] - p[j]) * (x[i * d + j] - p[j]);
                        sum += expl(-s / (2.0L * h * h));
                    }
                    const double want =
                        (double)(sum / n * powl((long double)two_pi * h * h, -0.5L * d));
                    if (want < 1e-300)
                        continue;
                    assert_rel(kde_gaussian_density(x, n, d, p, h), want, 1e-12);
                }
            }
            free(x);
        }
    }
}

static void test_standard_normal_density_matches_formula(void **state)
{
    (void)state;
    const double p1 = 0.7;
    assert_rel(kde_standard_normal_density(&p1, 1), exp(-0.245) / sqrt(2.0 * 3.14159265358979323846), 1e-15);
    const double p3[3] = { 0.1, -1.0, 2.0 };
    assert_rel(kde_standard_normal_density(p3, 3), pow(2.0 * 3.14159265358979323846, -1.5) * exp(-0.5 * 5.01),
               1e-15);
}

/* ------------------------------------------------------------------ exp */

/* Relative error of kde_exp2(t) against exp2l, in units of 2^-52. */
static double exp2_err_ulps(double t)
{
    const long double want = exp2l((long double)t);
    return (double)(fabsl((long double)kde_exp2(t) - want) / want) * 0x1p52;
}

static void test_exp2_within_two_ulp_over_its_whole_range(void **state)
{
    (void)state;
    double worst = 0.0;
    /* Dense sweep of [-1020, 0] plus random points, and the edges of the
     * reduced range (t = k/16 +- 1/32) where the polynomial is weakest. */
    for (int64_t i = 0; i <= 1020 * 256; i++) {
        const double t = -(double)i / 256.0 - 0x1p-60 * (double)(i % 7);
        const double e = exp2_err_ulps(t);
        worst = e > worst ? e : worst;
    }
    test_rng r = { 12345 };
    for (int i = 0; i < 200000; i++) {
        const double t = -1020.0 * rng_uniform(&r);
        const double e = exp2_err_ulps(t);
        worst = e > worst ? e : worst;
        const double edge = -floor(-t * 16.0) / 16.0 - 1.0 / 32.0 + 1e-12 * rng_uniform(&r);
        if (edge >= -1020.0) {
            const double e2 = exp2_err_ulps(edge);
            worst = e2 > worst ? e2 : worst;
        }
    }
    for (double t = -1e-3; t < -1e-300; t /= 3.0) /* tiny arguments: 2^t ~ 1 + t ln 2 */
        worst = fmax(worst, exp2_err_ulps(t));
    if (!(worst <= 2.0))
        fail_msg("largest error %.3f ulp (2^-52 relative) > 2", worst);
    /* 1e-15 relative is what the cross-validation sums need. */
    assert_true(worst * 0x1p-52 < 1e-15);
}

static void test_exp2_exact_at_zero_and_zero_below_range(void **state)
{
    (void)state;
    assert_true(kde_exp2(0.0) == 1.0);
    assert_true(kde_exp2(-1.0) == 0.5);
    assert_true(kde_exp2(-1020.0) == 0x1p-1020);
    assert_true(kde_exp2(-1020.0000000001) == 0.0);
    assert_true(kde_exp2(-1e300) == 0.0);
    assert_true(kde_exp2(-INFINITY) == 0.0);
    assert_true(kde_exp2(NAN) == 0.0);
}

static void test_exp2_vector_path_matches_scalar_bitwise(void **state)
{
    (void)state;
    enum { N = 1003 }; /* not a multiple of 8 or 4: every tail path runs */
    double t[N], got[N], want[N];
    test_rng r = { 777 };
    for (int i = 0; i < N; i++)
        t[i] = -1030.0 * rng_uniform(&r) + 1e-3; /* some above 0, some below the range */
    t[5] = NAN;
    t[6] = -INFINITY;
    t[7] = 0.0;
    kde_exp2_many(t, N, got);
    for (int i = 0; i < N; i++)
        want[i] = kde_exp2(t[i]);
    assert_memory_equal(got, want, sizeof got);
}

/* ------------------------------------------------------------------ CV */

/* Largest squared distance of a row from the mean of the rows. */
static double max_centred_norm2(const double *x, int64_t n, int d)
{
    double mean[8] = { 0 };
    for (int j = 0; j < d; j++) {
        for (int64_t i = 0; i < n; i++)
            mean[j] += x[i * d + j];
        mean[j] /= (double)n;
    }
    double r2 = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double s = 0.0;
        for (int j = 0; j < d; j++)
            s += (x[i * d + j] - mean[j]) * (x[i * d + j] - mean[j]);
        r2 = s > r2 ? s : r2;
    }
    return r2;
}

static void test_cv_form_switches_at_documented_width(void **state)
{
    (void)state;
    /* Expanded exponent iff c R^2 <= 128 with c = 1 / (2 h^2): h >= R / 16. */
    const int64_t n = 300;
    double *x = normal_samples(n, 2, 8080);
    kde_cv_plan *plan = NULL;
    assert_int_equal(kde_cv_plan_create(x, n, 2, 5, &plan), 0);
    const double hswitch = sqrt(max_centred_norm2(x, n, 2)) / 16.0;
    assert_int_equal(kde_cv_plan_expanded(plan, hswitch * 0.99), 0);
    assert_int_equal(kde_cv_plan_expanded(plan, hswitch * 1.01), 1);
    assert_int_equal(kde_cv_plan_expanded(plan, 1e-3), 0);
    assert_int_equal(kde_cv_plan_expanded(plan, 1e3), 1);
    assert_int_equal(kde_cv_plan_expanded(plan, 0.0), 0);
    assert_int_equal(kde_cv_plan_expanded(plan, NAN), 0);
    /* The choice is a function of h: asking again, or in another order, agrees. */
    for (double h = 0.01; h < 10.0; h *= 1.1)
        assert_int_equal(kde_cv_plan_expanded(plan, h), kde_cv_plan_expanded(plan, h));
    kde_cv_plan_free(plan);
    free(x);
}

static void test_cv_score_exact_on_both_sides_of_form_switch(void **state)
{
    (void)state;
    /* Data far from the origin: the expanded form must centre it, or c |x|^2
     * (here ~1e6 c) would cancel catastrophically. */
    const int64_t n = 240;
    for (int shifted = 0; shifted < 2; shifted++) {
        double *x = normal_samples(n, 2, 9090);
        for (int64_t i = 0; i < 2 * n; i++)
            x[i] = shifted ? 1000.0 + 2.0 * x[i] : x[i];
        kde_cv_plan *plan = NULL;
        assert_int_equal(kde_cv_plan_create(x, n, 2, 4, &plan), 0);
        const double hswitch = sqrt(max_centred_norm2(x, n, 2)) / 16.0;
        const double hs[] = { 0.9 * hswitch, 0.999 * hswitch, 1.001 * hswitch, 1.1 * hswitch,
                              3.0 * hswitch, 50.0 * hswitch };
        int forms = 0;
        for (int i = 0; i < 6; i++) {
            forms |= 1 << kde_cv_plan_expanded(plan, hs[i]);
            assert_rel(kde_cv_score(plan, hs[i]), cv_reference_lse(x, n, 2, 4, hs[i]), 1e-12);
        }
        assert_int_equal(forms, 3); /* both forms ran */
        kde_cv_plan_free(plan);
        free(x);
    }
}


static void test_cv_score_matches_double_loop_reference(void **state)
{
    (void)state;
    const int ks[] = { 2, 3, 5, 7 };
    const int64_t ns[] = { 50, 97, 200 };
    const double hs[] = { 0.08, 0.3, 1.0, 4.0 };
    for (int d = 1; d <= 3; d++) {
        for (int ni = 0; ni < 3; ni++) {
            const int64_t n = ns[ni];
            double *x = normal_samples(n, d, (uint64_t)(d * 100 + ni));
            for (int ki = 0; ki < 4; ki++) {
                kde_cv_plan *plan = NULL;
                assert_int_equal(kde_cv_plan_create(x, n, d, ks[ki], &plan), 0);
                assert_int_equal(kde_cv_plan_rows(plan), n);
                assert_int_equal(kde_cv_plan_dim(plan), d);
                assert_int_equal(kde_cv_plan_folds(plan), ks[ki]);
                for (int hi = 0; hi < 4; hi++)
                    assert_rel(kde_cv_score(plan, hs[hi]),
                               cv_reference_direct(x, n, d, ks[ki], hs[hi]), 1e-10);
                kde_cv_plan_free(plan);
            }
            free(x);
        }
    }
}

static void test_cv_score_handles_higher_dimensions(void **state)
{
    (void)state;
    /* d = 6 runs the generic (non-specialised) kernel. */
    const int64_t n = 83;
    double *x = normal_samples(n, 6, 606);
    kde_cv_plan *plan = NULL;
    assert_int_equal(kde_cv_plan_create(x, n, 6, 4, &plan), 0);
    for (double h = 0.3; h < 5.0; h *= 2.5)
        assert_rel(kde_cv_score(plan, h), cv_reference_direct(x, n, 6, 4, h), 1e-10);
    kde_cv_plan_free(plan);
    free(x);
}

static void test_cv_score_is_finite_and_exact_for_tiny_widths(void **state)
{
    (void)state;
    /* Direct exp underflows to 0 for all pairs here; log-sum-exp must not. */
    const double hs[] = { 1e-3, 1e-4, 1e-6 };
    for (int d = 1; d <= 3; d++) {
        const int64_t n = 150;
        double *x = normal_samples(n, d, 4242 + (uint64_t)d);
        /* Near-duplicate rows across folds: the nearest-row term dominates. */
        x[(n - 1) * d] = x[0] + 1e-7;
        kde_cv_plan *plan = NULL;
        assert_int_equal(kde_cv_plan_create(x, n, d, 5, &plan), 0);
        for (int i = 0; i < 3; i++) {
            const double got = kde_cv_score(plan, hs[i]);
            assert_true(isfinite(got));
            assert_rel(got, cv_reference_lse(x, n, d, 5, hs[i]), 1e-12);
        }
        kde_cv_plan_free(plan);
        free(x);
    }
}

/* Double-precision log-sum-exp reference with a brute-force nearest row. */
static double cv_reference_lse_double(const double *x, int64_t n, int d, int k, double h)
{
    const double inv = 1.0 / (2.0 * h * h);
    double total = 0.0;
    for (int f = 0; f < k; f++) {
        int64_t b, len;
        fold_bounds(n, k, f, &b, &len);
        for (int64_t i = b; i < b + len; i++) {
            double m = INFINITY;
            for (int64_t y = 0; y < n; y++) {
                if (y >= b && y < b + len)
                    continue;
                double s = 0.0;
                for (int j = 0; j < d; j++)
                    s += (x[i * d + j] - x[y * d + j]) * (x[i * d + j] - x[y * d + j]);
                m = s < m ? s : m;
            }
            double acc = 0.0;
            for (int64_t y = 0; y < n; y++) {
                if (y >= b && y < b + len)
                    continue;
                double s = 0.0;
                for (int j = 0; j < d; j++)
                    s += (x[i * d + j] - x[y * d + j]) * (x[i * d + j] - x[y * d + j]);
                acc += exp((m - s) * inv);
            }
            total += log(acc) - m * inv - log((double)(n - len)) -
                     0.5 * d * log(6.283185307179586476925 * h * h);
        }
    }
    return total / k;
}

static void test_cv_score_stable_for_tiny_width_on_large_data(void **state)
{
    (void)state;
    /* The app's stress case: n = 10000, d = 2, h = 1e-3, where every plain
     * exp(-d2 / (2 h^2)) underflows to 0. */
    const int64_t n = 10000;
    double *x = normal_samples(n, 2, 31337);
    kde_cv_plan *plan = NULL;
    assert_int_equal(kde_cv_plan_create(x, n, 2, 5, &plan), 0);
    const double s = kde_cv_score(plan, 1e-3);
    assert_true(isfinite(s));
    assert_rel(s, cv_reference_lse_double(x, n, 2, 5, 1e-3), 1e-12);
    kde_cv_plan_free(plan);
    free(x);
}

static void test_cv_scores_bitwise_equal_to_single_width(void **state)
{
    (void)state;
    const int64_t n = 157;
    double *x = normal_samples(n, 2, 2024);
    kde_cv_plan *plan = NULL;
    assert_int_equal(kde_cv_plan_create(x, n, 2, 3, &plan), 0);
    enum { W = 7 };
    const double widths[W] = { 0.5, 1e-3, 0.07, 2.0, 0.2, 0.011, 30.0 };
    double single[W];
    for (int i = W - 1; i >= 0; i--) /* reverse order on purpose */
        single[i] = kde_cv_score(plan, widths[i]);

    /* The widths cover both forms of the exponent. */
    assert_int_equal(kde_cv_plan_expanded(plan, 1e-3), 0);
    assert_int_equal(kde_cv_plan_expanded(plan, 30.0), 1);

    double all[W];
    kde_cv_scores(plan, widths, W, all);
    assert_memory_equal(all, single, sizeof all);

    /* Other groupings and orders: pairs, singletons, a shuffled batch. */
    for (int i = 0; i + 1 < W; i += 2) {
        double two[2];
        kde_cv_scores(plan, widths + i, 2, two);
        assert_memory_equal(two, single + i, sizeof two);
    }
    const int perm[W] = { 3, 6, 0, 5, 1, 4, 2 };
    double shuffled_w[W], shuffled_s[W];
    for (int i = 0; i < W; i++)
        shuffled_w[i] = widths[perm[i]];
    kde_cv_scores(plan, shuffled_w, W, shuffled_s);
    for (int i = 0; i < W; i++)
        assert_memory_equal(&shuffled_s[i], &single[perm[i]], sizeof(double));
    /* Repeating a call gives the same bits. */
    const double again = kde_cv_score(plan, widths[2]);
    assert_memory_equal(&again, &single[2], sizeof again);
    kde_cv_plan_free(plan);
    free(x);
}

static void test_cv_plan_rejects_bad_fold_counts(void **state)
{
    (void)state;
    double *x = normal_samples(10, 2, 1);
    kde_cv_plan *plan = NULL;
    assert_int_equal(kde_cv_plan_create(x, 10, 2, 1, &plan), MPMAP_EINVAL);
    assert_int_equal(kde_cv_plan_create(x, 10, 2, 0, &plan), MPMAP_EINVAL);
    assert_int_equal(kde_cv_plan_create(x, 10, 2, 11, &plan), MPMAP_EINVAL);
    assert_int_equal(kde_cv_plan_create(x, 10, 0, 2, &plan), MPMAP_EINVAL);
    assert_int_equal(kde_cv_plan_create(NULL, 10, 2, 2, &plan), MPMAP_EINVAL);
    assert_null(plan);
    x[3] = NAN;
    assert_int_equal(kde_cv_plan_create(x, 10, 2, 2, &plan), MPMAP_EINVAL);
    x[3] = 0.5;
    /* folds == n is allowed: leave-one-out. */
    assert_int_equal(kde_cv_plan_create(x, 10, 2, 10, &plan), 0);
    assert_rel(kde_cv_score(plan, 0.7), cv_reference_direct(x, 10, 2, 10, 0.7), 1e-10);
    assert_true(isnan(kde_cv_score(plan, 0.0)));
    assert_true(isnan(kde_cv_score(plan, -1.0)));
    kde_cv_plan_free(plan);
    kde_cv_plan_free(NULL);
    free(x);
}

/* ---------------------------------------------------------------- paths */

/* Appends `bytes` bytes to a growing buffer. */
typedef struct {
    unsigned char *data;
    size_t len, cap;
} byte_buf;

static void buf_add(byte_buf *b, const void *p, size_t bytes)
{
    if (b->len + bytes > b->cap) {
        b->cap = 2 * (b->len + bytes);
        b->data = realloc(b->data, b->cap);
        assert_non_null(b->data);
    }
    memcpy(b->data + b->len, p, bytes);
    b->len += bytes;
}

/*
 * Every kernel's output on fixed inputs, by the path in use: hypercube
 * counts and Gaussian densities (d = 1..6, n not a multiple of any vector
 * width), CV scores on both sides of the form switch (d = 1..5: the
 * specialised and the generic dimension; fold sizes that leave partial
 * vectors), and 2^t over its whole range with every tail length.
 */
static void all_outputs(byte_buf *out)
{
    for (int d = 1; d <= 6; d++) {
        const int64_t n = 517 + 13 * d;
        double *x = normal_samples(n, d, 300 + (uint64_t)d);
        for (int k = 0; k < 4; k++) {
            double point[6];
            for (int j = 0; j < d; j++)
                point[j] = 0.4 * k - 0.6 + 0.05 * j;
            for (int w = 0; w < 12; w++) {
                const double h = 0.02 * pow(1.6, w);
                const int64_t c = kde_hypercube_count(x, n, d, point, h);
                const double g = kde_gaussian_density(x, n, d, point, h);
                buf_add(out, &c, sizeof c);
                buf_add(out, &g, sizeof g);
            }
        }
        if (d <= 5) {
            kde_cv_plan *plan = NULL;
            assert_int_equal(kde_cv_plan_create(x, n, d, 3 + d % 3, &plan), 0);
            enum { W = 14 };
            double widths[W], scores[W];
            for (int w = 0; w < W; w++)
                widths[w] = 0.004 * pow(1.7, w); /* 0.004 .. 4.0: both forms */
            kde_cv_scores(plan, widths, W, scores);
            buf_add(out, scores, sizeof scores);
            kde_cv_plan_free(plan);
        }
        free(x);
    }
    for (int n = 1; n <= 19; n++) {
        double t[19], e[19];
        test_rng r = { 4242 + (uint64_t)n };
        for (int i = 0; i < n; i++)
            t[i] = -1030.0 * rng_uniform(&r);
        kde_exp2_many(t, n, e);
        buf_add(out, e, sizeof(double) * (size_t)n);
    }
}

static void test_every_isa_path_gives_the_same_bytes(void **state)
{
    (void)state;
    const isa_path initial = kde_kernels_path();
    assert_true(isa_supported(initial));
    byte_buf want = { 0 };
    assert_int_equal(kde_kernels_use_path(ISA_SCALAR), 0);
    assert_int_equal(kde_kernels_path(), ISA_SCALAR);
    all_outputs(&want);
    for (int p = ISA_SCALAR + 1; p < ISA_COUNT; p++) {
        if (!isa_supported((isa_path)p)) {
            /* Not on this CPU: refused, and the path in use stays. */
            assert_int_equal(kde_kernels_use_path((isa_path)p), MPMAP_EINVAL);
            assert_int_equal(kde_kernels_path(), ISA_SCALAR);
            print_message("kde paths: %s not supported by this CPU, not compared\n",
                          isa_name((isa_path)p));
            continue;
        }
        assert_int_equal(kde_kernels_use_path((isa_path)p), 0);
        assert_int_equal(kde_kernels_path(), (isa_path)p);
        byte_buf got = { 0 };
        all_outputs(&got);
        assert_int_equal(got.len, want.len);
        assert_memory_equal(got.data, want.data, want.len);
        print_message("kde paths: %s == scalar (%zu bytes)\n", isa_name((isa_path)p), got.len);
        free(got.data);
        assert_int_equal(kde_kernels_use_path(ISA_SCALAR), 0);
    }
    free(want.data);
    assert_int_equal(kde_kernels_use_path(initial), 0);
}

/*
 * The numbers of the -march=native builds before run-time dispatch (FMA
 * machines), which every path must keep: any change of operation order or
 * fusion shows up here.
 */
static void test_every_isa_path_keeps_the_reference_numbers(void **state)
{
    (void)state;
    const isa_path initial = kde_kernels_path();
    double *x = normal_samples(1500, 2, 7);
    double *y = normal_samples(700, 5, 11);
    kde_cv_plan *plan = NULL, *plan5 = NULL;
    assert_int_equal(kde_cv_plan_create(x, 1500, 2, 5, &plan), 0);
    assert_int_equal(kde_cv_plan_create(y, 700, 5, 4, &plan5), 0);
    const double point[2] = { 0.1, -0.2 };
    for (int p = ISA_SCALAR; p < ISA_COUNT; p++) {
        if (kde_kernels_use_path((isa_path)p) != 0)
            continue;
        const double got[7] = {
            kde_cv_score(plan, 0.003), kde_cv_score(plan, 0.05), kde_cv_score(plan, 0.3),
            kde_cv_score(plan, 1.0),   kde_gaussian_density(x, 1500, 2, point, 0.4),
            kde_cv_score(plan5, 0.02), kde_cv_score(plan5, 0.9),
        };
        const double want[7] = {
            -0x1.6baab7223bea5p+17, -0x1.47cbe272d2f21p+10, -0x1.a9109bb0dd2a3p+9,
            -0x1.c3496a5283b4p+9,   0x1.2a513833e5645p-3,   -0x1.3af0cfb285f8dp+17,
            -0x1.47e34bc302b79p+10,
        };
        for (int i = 0; i < 7; i++)
            if (memcmp(&got[i], &want[i], sizeof got[i]) != 0)
                fail_msg("path %s, value %d: got %a want %a", isa_name((isa_path)p), i, got[i],
                         want[i]);
        assert_int_equal(kde_hypercube_count(x, 1500, 2, point, 0.4), 42);
    }
    /* Both forms of the exponent are covered. */
    assert_int_equal(kde_cv_plan_expanded(plan, 0.05), 0);
    assert_int_equal(kde_cv_plan_expanded(plan, 0.3), 1);
    assert_int_equal(kde_kernels_use_path(initial), 0);
    kde_cv_plan_free(plan);
    kde_cv_plan_free(plan5);
    free(x);
    free(y);
}

/* MPMAP_ISA parsing and clamping (isa.h), without touching the kernels' choice. */
static void test_isa_environment_override(void **state)
{
    (void)state;
    const char *saved = getenv("MPMAP_ISA");
    char *copy = saved != NULL ? strdup(saved) : NULL;
    assert_true(isa_supported(ISA_SCALAR));
    assert_false(isa_supported((isa_path)7));
    assert_true(isa_supported(isa_best()));
    assert_int_equal(isa_clamp(ISA_SCALAR), ISA_SCALAR);
    /* An unsupported request falls to the best supported path below it. */
    assert_true(isa_clamp(ISA_AVX512) <= ISA_AVX512 && isa_supported(isa_clamp(ISA_AVX512)));
    assert_int_equal(isa_clamp(ISA_AVX512), isa_best());
    if (!isa_supported(ISA_AVX2))
        assert_int_equal(isa_clamp(ISA_AVX2), ISA_SCALAR);

    assert_int_equal(setenv("MPMAP_ISA", "scalar", 1), 0);
    assert_int_equal(isa_from_env("test"), ISA_SCALAR);
    assert_int_equal(setenv("MPMAP_ISA", "avx2", 1), 0);
    assert_int_equal(isa_from_env("test"), isa_clamp(ISA_AVX2));
    assert_int_equal(setenv("MPMAP_ISA", "avx512", 1), 0);
    assert_int_equal(isa_from_env("test"), isa_clamp(ISA_AVX512));
    assert_int_equal(setenv("MPMAP_ISA", "auto", 1), 0);
    assert_int_equal(isa_from_env("test"), isa_best());
    assert_int_equal(setenv("MPMAP_ISA", "", 1), 0);
    assert_int_equal(isa_from_env("test"), isa_best());
    assert_int_equal(setenv("MPMAP_ISA", "sse9 (test of an unknown value)", 1), 0);
    assert_int_equal(isa_from_env("test"), isa_best()); /* and one warning on stderr */
    assert_int_equal(unsetenv("MPMAP_ISA"), 0);
    assert_int_equal(isa_from_env("test"), isa_best());
    assert_string_equal(isa_name(ISA_AVX512), "avx512");
    assert_string_equal(isa_name((isa_path)9), "unknown");
    if (copy != NULL) {
        assert_int_equal(setenv("MPMAP_ISA", copy, 1), 0);
        free(copy);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hypercube_count_matches_direct_loop),
        cmocka_unit_test(test_hypercube_counts_samples_on_the_face),
        cmocka_unit_test(test_hypercube_density_divides_by_volume),
        cmocka_unit_test(test_gaussian_density_matches_direct_formula),
        cmocka_unit_test(test_standard_normal_density_matches_formula),
        cmocka_unit_test(test_exp2_within_two_ulp_over_its_whole_range),
        cmocka_unit_test(test_exp2_exact_at_zero_and_zero_below_range),
        cmocka_unit_test(test_exp2_vector_path_matches_scalar_bitwise),
        cmocka_unit_test(test_cv_form_switches_at_documented_width),
        cmocka_unit_test(test_cv_score_exact_on_both_sides_of_form_switch),
        cmocka_unit_test(test_cv_score_matches_double_loop_reference),
        cmocka_unit_test(test_cv_score_handles_higher_dimensions),
        cmocka_unit_test(test_cv_score_is_finite_and_exact_for_tiny_widths),
        cmocka_unit_test(test_cv_score_stable_for_tiny_width_on_large_data),
        cmocka_unit_test(test_cv_scores_bitwise_equal_to_single_width),
        cmocka_unit_test(test_cv_plan_rejects_bad_fold_counts),
        cmocka_unit_test(test_every_isa_path_gives_the_same_bytes),
        cmocka_unit_test(test_every_isa_path_keeps_the_reference_numbers),
        cmocka_unit_test(test_isa_environment_override),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
