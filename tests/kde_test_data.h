/* Random samples and a relative-error check for the tests of the kde_sweep
 * kernels (test_kde_kernels*.c): a generator of their own, so the tests do
 * not depend on libc's rand. Include after cmocka.h. */
#ifndef MPMAP_TESTS_KDE_TEST_DATA_H
#define MPMAP_TESTS_KDE_TEST_DATA_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* xorshift64* generator: the tests must not depend on libc's rand. */
typedef struct {
    uint64_t s;
} test_rng;

static inline double rng_uniform(test_rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return (double)((r->s * 0x2545F4914F6CDD1DULL) >> 11) * 0x1p-53;
}

static inline double rng_normal(test_rng *r)
{
    const double u = rng_uniform(r), v = rng_uniform(r);
    return sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v);
}

static inline double *normal_samples(int64_t n, int d, uint64_t seed)
{
    test_rng r = { seed * 0x9E3779B97F4A7C15ULL + 1 };
    double *x = malloc(sizeof *x * (size_t)(n * d));
    assert_non_null(x);
    for (int64_t i = 0; i < n * d; i++)
        x[i] = rng_normal(&r);
    return x;
}

static inline void assert_rel(double got, double want, double tol)
{
    const double err = fabs(got - want);
    if (!(err <= tol * fabs(want)))
        fail_msg("got %.17g want %.17g (rel %.3g > %.3g)", got, want, err / fabs(want), tol);
}

#endif
