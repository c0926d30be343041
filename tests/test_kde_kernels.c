/*
 * Tests of the kde_sweep density kernels against direct formulas: the
 * hypercube count and density, the Gaussian density, and the kernels' 2^t
 * against libm's long-double exp2l. The cross-validated log-likelihood is in
 * test_kde_kernels_cv.c, the instruction-set paths in test_kde_kernels_isa.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>

#include "kde_kernels.h"
#include "kde_test_data.h"

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
        0.5,
        -0.5, /* on the face in x: counts */
        0.0,
        -0.25, /* on a corner: counts */
        0.5,
        -0.75, /* on a corner: counts */
        0.5000000000000001,
        -0.5, /* just outside: does not count */
        0.25,
        -0.5, /* the centre: counts */
        0.25,
        -0.7500000000000001, /* just outside in y */
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
    assert_rel(kde_standard_normal_density(&p1, 1),
               exp(-0.245) / sqrt(2.0 * 3.14159265358979323846), 1e-15);
    const double p3[3] = { 0.1, -1.0, 2.0 };
    assert_rel(kde_standard_normal_density(p3, 3),
               pow(2.0 * 3.14159265358979323846, -1.5) * exp(-0.5 * 5.01), 1e-15);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
