/*
 * Unit tests for the Monte Carlo pi kernel: the work split, the estimate
 * formula, hit counts against a brute-force count over the mpmap_rng words,
 * and bitwise agreement of every SIMD path with the scalar path (every path
 * this CPU runs: the binary always has all three, isa.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "mc_pi_kernel.h"
#include "mpmap.h"
#include "mpmap_rng.h"

/* Points first..end-1 of (seed, task) counted from the u32 words in 128-bit arithmetic. */
static int64_t brute_force_hits(uint64_t seed, int64_t task, int64_t first, int64_t end)
{
    mpmap_rng r;
    mpmap_rng_init(&r, seed, (uint64_t)task);
    mpmap_rng_skip(&r, 2 * (uint64_t)first);
    int64_t hits = 0;
    for (int64_t i = first; i < end; i++) {
        unsigned __int128 x = mpmap_rng_u32(&r);
        unsigned __int128 y = mpmap_rng_u32(&r);
        hits += x * x + y * y < ((unsigned __int128)1 << 64);
    }
    return hits;
}

static void test_task_samples_partition_total_exactly(void **state)
{
    (void)state;
    const int64_t totals[] = { 0, 1, 2, 5, 99, 100, 101, 1000003, INT64_C(10000000000) };
    for (size_t i = 0; i < sizeof totals / sizeof totals[0]; i++) {
        for (int64_t tasks = 1; tasks <= 130; tasks++) {
            int64_t sum = 0, lo = INT64_MAX, hi = INT64_MIN;
            for (int64_t t = 0; t < tasks; t++) {
                int64_t share = mc_pi_task_samples(totals[i], tasks, t);
                assert_true(share >= 0);
                /* the larger shares come first */
                if (t > 0)
                    assert_true(share <= mc_pi_task_samples(totals[i], tasks, t - 1));
                sum += share;
                lo = share < lo ? share : lo;
                hi = share > hi ? share : hi;
            }
            assert_int_equal(sum, totals[i]);
            assert_true(hi - lo <= 1);
            /* exactly total % tasks tasks get the extra sample */
            int64_t bigger = 0;
            for (int64_t t = 0; t < tasks; t++)
                bigger += mc_pi_task_samples(totals[i], tasks, t) > totals[i] / tasks;
            assert_int_equal(bigger, totals[i] % tasks);
        }
    }
}

static void test_task_samples_rejects_invalid_arguments(void **state)
{
    (void)state;
    assert_int_equal(mc_pi_task_samples(-1, 4, 0), MPMAP_EINVAL);
    assert_int_equal(mc_pi_task_samples(10, 0, 0), MPMAP_EINVAL);
    assert_int_equal(mc_pi_task_samples(10, 4, -1), MPMAP_EINVAL);
    assert_int_equal(mc_pi_task_samples(10, 4, 4), MPMAP_EINVAL);
}

static void test_estimate_is_four_p_with_binomial_error(void **state)
{
    (void)state;
    double pi, se;
    mc_pi_estimate(785, 1000, &pi, &se);
    assert_float_equal(pi, 3.14, 1e-15);
    assert_float_equal(se, 4.0 * sqrt(0.785 * 0.215 / 1000.0), 1e-15);
    mc_pi_estimate(10, 10, &pi, &se);
    assert_float_equal(pi, 4.0, 0.0);
    assert_float_equal(se, 0.0, 0.0);
    mc_pi_estimate(0, 0, &pi, &se);
    assert_true(isnan(pi) && isnan(se));
    mc_pi_estimate(11, 10, &pi, &se);
    assert_true(isnan(pi) && isnan(se));
}

static void test_scalar_hits_match_brute_force_count(void **state)
{
    (void)state;
    const int64_t samples[] = { 0, 1, 2, 3, 10, 1001 };
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        for (int64_t task = 0; task < 5; task++) {
            assert_int_equal(mc_pi_hits_scalar(123, task, samples[i]),
                             brute_force_hits(123, task, 0, samples[i]));
        }
    }
    /* keys and streams with high words set: the scalar path folds them into rounds 0-2 */
    const uint64_t seeds[] = { UINT64_MAX, UINT64_C(0xFFFFFFFF00000000), UINT64_C(0xFFFFFFFF) };
    const int64_t tasks[] = { INT64_C(1) << 40, INT64_MAX, INT64_C(0xFFFFFFFF) };
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++)
        for (size_t t = 0; t < sizeof tasks / sizeof tasks[0]; t++)
            assert_int_equal(mc_pi_hits_scalar(seeds[s], tasks[t], 777),
                             brute_force_hits(seeds[s], tasks[t], 0, 777));
}

/*
 * Sizes around the vector groups (AVX2: 4 lanes x 5 unrolled = 20 blocks, 40
 * points; AVX-512: 8 x 6 = 48 blocks, 96 points; twice each) and beyond.
 */
static const int64_t sizes[] = { 0,   1,   2,   3,   7,   31,  32,  33,   39,   40,    41,
                                 63,  64,  65,  66,  79,  80,  81,  95,   96,   97,    127,
                                 128, 129, 191, 192, 193, 640, 999, 1001, 4099, 100003 };
enum { SIZE_COUNT = sizeof sizes / sizeof sizes[0] };

static void test_every_path_matches_scalar(void **state)
{
    (void)state;
    const uint64_t seeds[] = { 0, 1, 2024, UINT64_C(0xFFFFFFFF00000000), UINT64_MAX };
    const int64_t tasks[] = { 0, 1, 12345, INT64_C(1) << 32, INT64_MAX };
    int paths_checked = 0;
    for (int p = MC_PI_PATH_SCALAR; p <= MC_PI_PATH_AVX512; p++) {
        if (!mc_pi_path_available((mc_pi_path)p))
            continue;
        paths_checked++;
        for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
            for (size_t t = 0; t < sizeof tasks / sizeof tasks[0]; t++) {
                for (size_t n = 0; n < SIZE_COUNT; n++) {
                    int64_t expect = mc_pi_hits_scalar(seeds[s], tasks[t], sizes[n]);
                    assert_int_equal(mc_pi_hits_path((mc_pi_path)p, seeds[s], tasks[t], sizes[n]),
                                     expect);
                }
            }
        }
    }
    assert_true(paths_checked >= 1);
    assert_int_equal(mc_pi_hits(7, 3, 100003), mc_pi_hits_scalar(7, 3, 100003));
}

/* Ranges with odd starts, and counters whose block index needs more than 32 bits. */
static void test_ranges_match_brute_force_on_every_path(void **state)
{
    (void)state;
    const int64_t starts[] = {
        0, 1, 2, 65, (INT64_C(1) << 33) - 41, (INT64_C(1) << 33) + 1, INT64_C(1) << 50
    };
    const int64_t lengths[] = { 0, 1, 2, 64, 65, 200, 333 };
    for (int p = MC_PI_PATH_SCALAR; p <= MC_PI_PATH_AVX512; p++) {
        if (!mc_pi_path_available((mc_pi_path)p))
            continue;
        for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++) {
            for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
                int64_t first = starts[s], end = starts[s] + lengths[l];
                assert_int_equal(mc_pi_hits_range((mc_pi_path)p, 99, 5, first, end),
                                 brute_force_hits(99, 5, first, end));
            }
        }
        /* pieces of a range add up to the whole */
        int64_t whole = mc_pi_hits_range((mc_pi_path)p, 8, 9, 0, 5000);
        int64_t pieces = mc_pi_hits_range((mc_pi_path)p, 8, 9, 0, 1237) +
                         mc_pi_hits_range((mc_pi_path)p, 8, 9, 1237, 5000);
        assert_int_equal(whole, pieces);
    }
}

/*
 * The block counter's high word is folded into the first Philox rounds once
 * per run of blocks: ranges where it changes (point 2^33 is block 2^32) or is
 * at its largest, long enough for whole vector groups on both sides, still
 * count what Random123's words give.
 */
static void test_ranges_across_high_word_changes_match_brute_force(void **state)
{
    (void)state;
    const int64_t first[] = { (INT64_C(1) << 33) - 2001, (INT64_C(1) << 34) - 1000,
                              (INT64_C(3) << 33) - 7, INT64_MAX - 3001 };
    const int64_t length[] = { 4003, 2000, 505, 3001 };
    int paths_checked = 0;
    for (int p = MC_PI_PATH_SCALAR; p <= MC_PI_PATH_AVX512; p++) {
        if (!mc_pi_path_available((mc_pi_path)p))
            continue;
        paths_checked++;
        for (size_t i = 0; i < sizeof first / sizeof first[0]; i++) {
            for (int high = 0; high < 2; high++) {
                const uint64_t key = high ? UINT64_MAX - 12345 : 42;
                const int64_t task = high ? INT64_C(0x1234567890) : 3;
                assert_int_equal(
                    mc_pi_hits_range((mc_pi_path)p, key, task, first[i], first[i] + length[i]),
                    brute_force_hits(key, task, first[i], first[i] + length[i]));
            }
        }
    }
    assert_true(paths_checked >= 1);
}

static void test_hits_reject_invalid_arguments(void **state)
{
    (void)state;
    assert_int_equal(mc_pi_hits(1, -1, 10), MPMAP_EINVAL);
    assert_int_equal(mc_pi_hits(1, 0, -1), MPMAP_EINVAL);
    assert_int_equal(mc_pi_hits_scalar(1, 0, -5), MPMAP_EINVAL);
    assert_int_equal(mc_pi_hits_range(MC_PI_PATH_SCALAR, 1, 0, 10, 9), MPMAP_EINVAL);
    assert_int_equal(mc_pi_hits_range(MC_PI_PATH_SCALAR, 1, 0, -1, 9), MPMAP_EINVAL);
    assert_int_equal(mc_pi_hits_path((mc_pi_path)99, 1, 0, 9), MPMAP_EINVAL);
    assert_string_equal(mc_pi_path_name(MC_PI_PATH_SCALAR), "scalar");
    assert_true(mc_pi_path_available(mc_pi_best_path()));
}

static void test_hit_fraction_is_within_five_standard_errors_of_pi_over_4(void **state)
{
    (void)state;
    const int64_t n = 10000000;
    const double quarter_pi = 0.78539816339744830962;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        int64_t hits = mc_pi_hits(seed, 0, n);
        double se = sqrt(quarter_pi * (1.0 - quarter_pi) / (double)n);
        assert_true(fabs((double)hits / (double)n - quarter_pi) < 5.0 * se);
    }
}

/* mc_pi_use_path switches what mc_pi_hits runs; each path gives the same bytes. */
static void test_use_path_switches_mc_pi_hits_bitwise(void **state)
{
    (void)state;
    const mc_pi_path initial = mc_pi_best_path();
    assert_true(mc_pi_path_available(initial));
    assert_true(mc_pi_path_available(MC_PI_PATH_SCALAR));
    assert_false(mc_pi_path_available((mc_pi_path)3));
    enum { N = 5 * SIZE_COUNT };
    int64_t want[N], got[N];
    for (int p = MC_PI_PATH_SCALAR; p <= MC_PI_PATH_AVX512; p++) {
        if (!mc_pi_path_available((mc_pi_path)p)) {
            /* Not on this CPU: refused, and the path in use stays. */
            const mc_pi_path before = mc_pi_best_path();
            assert_int_equal(mc_pi_use_path((mc_pi_path)p), MPMAP_EINVAL);
            assert_int_equal(mc_pi_best_path(), before);
            print_message("mc_pi paths: %s not supported by this CPU, not compared\n",
                          mc_pi_path_name((mc_pi_path)p));
            continue;
        }
        assert_int_equal(mc_pi_use_path((mc_pi_path)p), 0);
        assert_int_equal(mc_pi_best_path(), (mc_pi_path)p);
        int64_t *out = p == MC_PI_PATH_SCALAR ? want : got;
        for (int i = 0; i < N; i++)
            out[i] = mc_pi_hits(UINT64_C(0x5DEECE66D) * (uint64_t)(i % 5), i / 5 * 1000003,
                                sizes[i % SIZE_COUNT]);
        if (p != MC_PI_PATH_SCALAR) {
            assert_memory_equal(got, want, sizeof got);
            print_message("mc_pi paths: %s == scalar\n", mc_pi_path_name((mc_pi_path)p));
        }
    }
    /* The reference count of one whole task, the same on every path. */
    assert_int_equal(mc_pi_hits_scalar(1, 0, 1000000), brute_force_hits(1, 0, 0, 1000000));
    assert_int_equal(mc_pi_use_path(initial), 0);
    assert_int_equal(mc_pi_best_path(), initial);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_task_samples_partition_total_exactly),
        cmocka_unit_test(test_task_samples_rejects_invalid_arguments),
        cmocka_unit_test(test_estimate_is_four_p_with_binomial_error),
        cmocka_unit_test(test_scalar_hits_match_brute_force_count),
        cmocka_unit_test(test_every_path_matches_scalar),
        cmocka_unit_test(test_ranges_match_brute_force_on_every_path),
        cmocka_unit_test(test_ranges_across_high_word_changes_match_brute_force),
        cmocka_unit_test(test_hits_reject_invalid_arguments),
        cmocka_unit_test(test_hit_fraction_is_within_five_standard_errors_of_pi_over_4),
        cmocka_unit_test(test_use_path_switches_mc_pi_hits_bitwise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
