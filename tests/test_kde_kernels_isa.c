/*
 * Tests that every instruction-set path of the kde_sweep kernels this CPU
 * runs (scalar, AVX2, AVX-512; isa.h) gives the same bytes, equal to the
 * numbers of the former -march=native builds, and of the MPMAP_ISA override.
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
#include "kde_test_data.h"
#include "mpmap.h"

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
 * width), CV scores on both sides of the form switch and right at it
 * (d = 1..6: the specialised and the generic dimension; folds of unequal
 * length whose last group and last vector are partial), and 2^t over its
 * whole range with every tail length.
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
        {
            kde_cv_plan *plan = NULL;
            assert_int_equal(kde_cv_plan_create(x, n, d, 3 + d % 3, &plan), 0);
            enum { W = 16 };
            double widths[W], scores[W];
            for (int w = 0; w < W - 2; w++)
                widths[w] = 0.004 * pow(1.7, w); /* 0.004 .. 4.0: both forms */
            /* The last direct and the first expanded width (to ~1e-15). */
            double lo = widths[0], hi = widths[W - 3];
            assert_int_equal(kde_cv_plan_expanded(plan, lo), 0);
            assert_int_equal(kde_cv_plan_expanded(plan, hi), 1);
            for (int i = 0; i < 60; i++) {
                const double mid = 0.5 * (lo + hi);
                *(kde_cv_plan_expanded(plan, mid) ? &hi : &lo) = mid;
            }
            widths[W - 2] = lo;
            widths[W - 1] = hi;
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
            kde_cv_score(plan, 0.003),
            kde_cv_score(plan, 0.05),
            kde_cv_score(plan, 0.3),
            kde_cv_score(plan, 1.0),
            kde_gaussian_density(x, 1500, 2, point, 0.4),
            kde_cv_score(plan5, 0.02),
            kde_cv_score(plan5, 0.9),
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
        cmocka_unit_test(test_every_isa_path_gives_the_same_bytes),
        cmocka_unit_test(test_every_isa_path_keeps_the_reference_numbers),
        cmocka_unit_test(test_isa_environment_override),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
