/*
 * Unit tests for mpmap_rng: the word stream is Random123's Philox4x32-10,
 * streams are reproducible and distinct, and uniform/normal draws have the
 * right distribution (fixed seeds, so every run checks the same numbers).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include <Random123/philox.h>

#include "mpmap_rng.h"

#define DRAWS 1000000

/* Published Random123 known-answer vectors for philox4x32 with 10 rounds. */
static void test_block_matches_published_philox_vectors(void **state)
{
    (void)state;
    uint32_t w[4];
    mpmap_rng_block(0, 0, 0, w);
    assert_int_equal(w[0], 0x6627e8d5u);
    assert_int_equal(w[1], 0xe169c58du);
    assert_int_equal(w[2], 0xbc57ac4cu);
    assert_int_equal(w[3], 0x9b00dbd8u);

    mpmap_rng_block(UINT64_MAX, UINT64_MAX, UINT64_MAX, w);
    assert_int_equal(w[0], 0x408f276du);
    assert_int_equal(w[1], 0x41c83b0eu);
    assert_int_equal(w[2], 0xa20bc7c6u);
    assert_int_equal(w[3], 0x6d5451fdu);

    /* ctr = {243f6a88 85a308d3 13198a2e 03707344}, key = {a4093822 299f31d0} */
    mpmap_rng_block(UINT64_C(0x299f31d0a4093822), UINT64_C(0x0370734413198a2e),
                    UINT64_C(0x85a308d3243f6a88), w);
    assert_int_equal(w[0], 0xd16cfe09u);
    assert_int_equal(w[1], 0x94fdccebu);
    assert_int_equal(w[2], 0x5001e420u);
    assert_int_equal(w[3], 0x24126ea1u);
}

/* Word 4b+j of (seed, stream) is word j of philox4x32({b, stream}, seed). */
static void test_u32_stream_is_random123_philox(void **state)
{
    (void)state;
    const uint64_t seeds[] = { 0, 1, UINT64_C(0xDEADBEEF00000001), UINT64_MAX };
    const uint64_t streams[] = { 0, 7, UINT64_C(0x100000000), UINT64_C(0xFFFFFFFF12345678) };
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        for (size_t j = 0; j < sizeof streams / sizeof streams[0]; j++) {
            mpmap_rng r;
            mpmap_rng_init(&r, seeds[i], streams[j]);
            philox4x32_key_t key = { { (uint32_t)seeds[i], (uint32_t)(seeds[i] >> 32) } };
            for (uint32_t b = 0; b < 50; b++) {
                philox4x32_ctr_t ctr = { { b, 0, (uint32_t)streams[j],
                                           (uint32_t)(streams[j] >> 32) } };
                philox4x32_ctr_t expect = philox4x32(ctr, key);
                for (int k = 0; k < 4; k++)
                    assert_int_equal(mpmap_rng_u32(&r), expect.v[k]);
            }
        }
    }
}

static void test_same_seed_and_stream_repeat_the_sequence(void **state)
{
    (void)state;
    mpmap_rng a, b;
    mpmap_rng_init(&a, 42, 17);
    mpmap_rng_init(&b, 42, 17);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(mpmap_rng_u64(&a), mpmap_rng_u64(&b));
    for (int i = 0; i < 1000; i++) {
        double x = mpmap_rng_normal(&a);
        double y = mpmap_rng_normal(&b);
        assert_memory_equal(&x, &y, sizeof x);
    }
}

/* Counts positions where two 1000-word sequences agree; a few by chance at most. */
static int agreeing_words(uint64_t seed_a, uint64_t stream_a, uint64_t seed_b, uint64_t stream_b)
{
    mpmap_rng a, b;
    mpmap_rng_init(&a, seed_a, stream_a);
    mpmap_rng_init(&b, seed_b, stream_b);
    int same = 0;
    for (int i = 0; i < 1000; i++)
        same += mpmap_rng_u32(&a) == mpmap_rng_u32(&b);
    return same;
}

static void test_different_streams_or_seeds_differ(void **state)
{
    (void)state;
    assert_true(agreeing_words(42, 0, 42, 1) <= 1);
    assert_true(agreeing_words(42, 5, 42, UINT64_C(5) + (UINT64_C(1) << 32)) <= 1);
    assert_true(agreeing_words(42, 5, 43, 5) <= 1);
    assert_true(agreeing_words(42, 5, 42 + (UINT64_C(1) << 32), 5) <= 1);
    assert_true(mpmap_rng_subseed(42, 1) != mpmap_rng_subseed(42, 2));
    assert_true(mpmap_rng_subseed(42, 1) != mpmap_rng_subseed(43, 1));
    assert_int_equal(mpmap_rng_subseed(42, 1), mpmap_rng_subseed(42, 1));
}

static void test_u64_and_uniform_are_built_from_words_in_order(void **state)
{
    (void)state;
    mpmap_rng words, r;
    mpmap_rng_init(&words, 9, 3);
    mpmap_rng_init(&r, 9, 3);
    for (int i = 0; i < 101; i++) {
        uint64_t lo = mpmap_rng_u32(&words);
        uint64_t hi = mpmap_rng_u32(&words);
        uint64_t v = lo | (hi << 32);
        if (i % 2 == 0) {
            assert_int_equal(mpmap_rng_u64(&r), v);
        } else {
            double expect = ldexp((double)(v >> 11), -53);
            double got = mpmap_rng_uniform(&r);
            assert_memory_equal(&got, &expect, sizeof got);
        }
        assert_int_equal(mpmap_rng_position(&r), mpmap_rng_position(&words));
    }
}

static void test_uniform_in_unit_interval_with_right_moments(void **state)
{
    (void)state;
    mpmap_rng r;
    mpmap_rng_init(&r, 2024, 0);
    double sum = 0.0, sum2 = 0.0;
    for (int i = 0; i < DRAWS; i++) {
        double u = mpmap_rng_uniform(&r);
        assert_true(u >= 0.0 && u < 1.0);
        sum += u;
        sum2 += u * u;
    }
    double mean = sum / DRAWS;
    double var = sum2 / DRAWS - mean * mean;
    /* 5 standard errors: sd(mean) = sqrt(1/12 / n), sd(var) = sqrt((1/80 - 1/144) / n). */
    assert_true(fabs(mean - 0.5) < 5.0 * sqrt(1.0 / 12.0 / DRAWS));
    assert_true(fabs(var - 1.0 / 12.0) < 5.0 * sqrt((1.0 / 80.0 - 1.0 / 144.0) / DRAWS));
}

static void test_normal_has_right_moments_and_tails(void **state)
{
    (void)state;
    mpmap_rng r;
    mpmap_rng_init(&r, 2024, 1);
    double sum = 0.0, sum2 = 0.0;
    long beyond2 = 0, beyond3 = 0;
    for (int i = 0; i < DRAWS; i++) {
        double z = mpmap_rng_normal(&r);
        assert_true(isfinite(z) && fabs(z) < 8.6);
        sum += z;
        sum2 += z * z;
        beyond2 += fabs(z) > 2.0;
        beyond3 += fabs(z) > 3.0;
    }
    double mean = sum / DRAWS;
    double var = sum2 / DRAWS - mean * mean;
    assert_true(fabs(mean) < 5.0 / sqrt(DRAWS));
    assert_true(fabs(var - 1.0) < 5.0 * sqrt(2.0 / DRAWS));
    /* P(|Z| > c) = erfc(c / sqrt 2); binomial standard error of the fraction. */
    double p2 = erfc(2.0 / sqrt(2.0)), p3 = erfc(3.0 / sqrt(2.0));
    assert_true(fabs((double)beyond2 / DRAWS - p2) < 5.0 * sqrt(p2 * (1.0 - p2) / DRAWS));
    assert_true(fabs((double)beyond3 / DRAWS - p3) < 5.0 * sqrt(p3 * (1.0 - p3) / DRAWS));
}

/* Box-Muller from the documented uniforms, computed here from the u64 words. */
static void test_normal_is_box_muller_of_two_uniforms(void **state)
{
    (void)state;
    mpmap_rng words, r;
    mpmap_rng_init(&words, 5, 6);
    mpmap_rng_init(&r, 5, 6);
    for (int i = 0; i < 100; i++) {
        double u1 = mpmap_rng_uniform(&words), u2 = mpmap_rng_uniform(&words);
        double rho = sqrt(-2.0 * log(1.0 - u1));
        double theta = 6.283185307179586 * u2; /* 2 pi */
        double z0 = rho * cos(theta), z1 = rho * sin(theta);
        assert_float_equal(mpmap_rng_normal(&r), z0, 1e-12);
        assert_float_equal(mpmap_rng_normal(&r), z1, 1e-12);
    }
}

static void test_fill_equals_repeated_single_draws(void **state)
{
    (void)state;
    enum { N = 37 };
    double filled[N], single[N];
    mpmap_rng a, b;
    mpmap_rng_init(&a, 11, 12);
    mpmap_rng_init(&b, 11, 12);
    mpmap_rng_u32(&a); /* start mid-block */
    mpmap_rng_u32(&b);
    mpmap_rng_fill_uniform(&a, filled, N);
    for (int i = 0; i < N; i++)
        single[i] = mpmap_rng_uniform(&b);
    assert_memory_equal(filled, single, sizeof filled);
    mpmap_rng_fill_normal(&a, filled, N); /* odd N: leaves a kept partner behind */
    for (int i = 0; i < N; i++)
        single[i] = mpmap_rng_normal(&b);
    assert_memory_equal(filled, single, sizeof filled);
    assert_true(mpmap_rng_normal(&a) == mpmap_rng_normal(&b));
}

static void test_skip_equals_discarding_words(void **state)
{
    (void)state;
    const uint64_t before[] = { 0, 1, 3, 4, 6 };
    const uint64_t skips[] = { 0, 1, 2, 3, 4, 5, 9, 1000 };
    for (size_t i = 0; i < sizeof before / sizeof before[0]; i++) {
        for (size_t j = 0; j < sizeof skips / sizeof skips[0]; j++) {
            mpmap_rng a, b;
            mpmap_rng_init(&a, 77, 88);
            mpmap_rng_init(&b, 77, 88);
            for (uint64_t k = 0; k < before[i]; k++) {
                mpmap_rng_u32(&a);
                mpmap_rng_u32(&b);
            }
            mpmap_rng_skip(&a, skips[j]);
            for (uint64_t k = 0; k < skips[j]; k++)
                mpmap_rng_u32(&b);
            assert_int_equal(mpmap_rng_position(&a), before[i] + skips[j]);
            for (int k = 0; k < 9; k++)
                assert_int_equal(mpmap_rng_u32(&a), mpmap_rng_u32(&b));
        }
    }
}

static void test_skip_drops_kept_normal(void **state)
{
    (void)state;
    mpmap_rng a, b;
    mpmap_rng_init(&a, 1, 2);
    mpmap_rng_normal(&a); /* consumes 4 words, keeps the partner */
    mpmap_rng_skip(&a, 0);
    mpmap_rng_init(&b, 1, 2);
    mpmap_rng_skip(&b, 4);
    assert_true(mpmap_rng_normal(&a) == mpmap_rng_normal(&b));
}

static void test_rows_do_not_depend_on_how_many_are_generated(void **state)
{
    (void)state;
    enum { ROWS = 10, COLS = 7 };
    double all[ROWS * COLS], part[3 * COLS], one[COLS];
    mpmap_rng_rows_normal(99, 0, ROWS, COLS, all);
    mpmap_rng_rows_normal(99, 4, 3, COLS, part);
    assert_memory_equal(part, all + 4 * COLS, sizeof part);
    for (int row = 0; row < ROWS; row++) {
        mpmap_rng r;
        mpmap_rng_init(&r, 99, (uint64_t)row);
        mpmap_rng_fill_normal(&r, one, COLS);
        assert_memory_equal(one, all + row * COLS, sizeof one);
    }

    mpmap_rng_rows_uniform(99, 0, ROWS, COLS, all);
    mpmap_rng_rows_uniform(99, 7, 3, COLS, part);
    assert_memory_equal(part, all + 7 * COLS, sizeof part);
    mpmap_rng r;
    mpmap_rng_init(&r, 99, 2);
    mpmap_rng_fill_uniform(&r, one, COLS);
    assert_memory_equal(one, all + 2 * COLS, sizeof one);
}

static void test_copied_state_continues_identically(void **state)
{
    (void)state;
    mpmap_rng a;
    mpmap_rng_init(&a, 3, 4);
    mpmap_rng_u32(&a);
    mpmap_rng_normal(&a);
    mpmap_rng b = a;
    for (int i = 0; i < 50; i++) {
        double x = mpmap_rng_normal(&a), y = mpmap_rng_normal(&b);
        assert_memory_equal(&x, &y, sizeof x);
        assert_int_equal(mpmap_rng_u32(&a), mpmap_rng_u32(&b));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_matches_published_philox_vectors),
        cmocka_unit_test(test_u32_stream_is_random123_philox),
        cmocka_unit_test(test_same_seed_and_stream_repeat_the_sequence),
        cmocka_unit_test(test_different_streams_or_seeds_differ),
        cmocka_unit_test(test_u64_and_uniform_are_built_from_words_in_order),
        cmocka_unit_test(test_uniform_in_unit_interval_with_right_moments),
        cmocka_unit_test(test_normal_has_right_moments_and_tails),
        cmocka_unit_test(test_normal_is_box_muller_of_two_uniforms),
        cmocka_unit_test(test_fill_equals_repeated_single_draws),
        cmocka_unit_test(test_skip_equals_discarding_words),
        cmocka_unit_test(test_skip_drops_kept_normal),
        cmocka_unit_test(test_rows_do_not_depend_on_how_many_are_generated),
        cmocka_unit_test(test_copied_state_continues_identically),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
