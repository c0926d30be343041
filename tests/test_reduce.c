/* Reductions: each operation against a direct loop over the records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "reduce.h"

#define N 257

static void fill_doubles(double rec[N][3])
{
    for (int i = 0; i < N; i++) {
        rec[i][0] = sin(i * 0.7) * 1e3;
        rec[i][1] = (i % 5 == 0) ? -1e300 : i * 1e-3;
        rec[i][2] = (double)((i * 7919) % 1000) - 500.0;
    }
}

static void test_double_sum_min_max_match_direct_loops(void **state)
{
    (void)state;
    double rec[N][3];
    fill_doubles(rec);
    const mpmap_reduce_op ops[] = { MPMAP_REDUCE_SUM, MPMAP_REDUCE_MIN, MPMAP_REDUCE_MAX };
    for (int k = 0; k < 3; k++) {
        double acc[3];
        mpmap_reduce_init(ops[k], MPMAP_DOUBLE, sizeof acc, NULL, acc);
        for (int i = 0; i < N; i++)
            mpmap_reduce_fold(ops[k], MPMAP_DOUBLE, sizeof acc, rec[i], acc, NULL, NULL);
        for (int j = 0; j < 3; j++) {
            double want = ops[k] == MPMAP_REDUCE_SUM ? 0 : rec[0][j];
            for (int i = ops[k] == MPMAP_REDUCE_SUM ? 0 : 1; i < N; i++) {
                if (ops[k] == MPMAP_REDUCE_SUM)
                    want += rec[i][j];
                else if (ops[k] == MPMAP_REDUCE_MIN)
                    want = fmin(want, rec[i][j]);
                else
                    want = fmax(want, rec[i][j]);
            }
            /* Same order of additions: equal to the last bit. */
            assert_memory_equal(&acc[j], &want, sizeof want);
        }
    }
}

static void test_integer_types_fold_exactly(void **state)
{
    (void)state;
    int64_t a64[2];
    int32_t a32[4];
    mpmap_reduce_init(MPMAP_REDUCE_SUM, MPMAP_INT64, sizeof a64, NULL, a64);
    mpmap_reduce_init(MPMAP_REDUCE_MAX, MPMAP_INT32, sizeof a32, NULL, a32);
    int64_t s0 = 0, s1 = 0;
    int32_t m[4] = { INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN };
    for (int64_t i = 0; i < N; i++) {
        int64_t r64[2] = { i * 1000003, -i * i };
        int32_t r32[4] = { (int32_t)i, (int32_t)-i, (int32_t)(i % 17), (int32_t)(i * 31 % 101) };
        mpmap_reduce_fold(MPMAP_REDUCE_SUM, MPMAP_INT64, sizeof a64, r64, a64, NULL, NULL);
        mpmap_reduce_fold(MPMAP_REDUCE_MAX, MPMAP_INT32, sizeof a32, r32, a32, NULL, NULL);
        s0 += r64[0];
        s1 += r64[1];
        for (int j = 0; j < 4; j++)
            m[j] = r32[j] > m[j] ? r32[j] : m[j];
    }
    assert_int_equal(a64[0], s0);
    assert_int_equal(a64[1], s1);
    for (int j = 0; j < 4; j++)
        assert_int_equal(a32[j], m[j]);
}

static void test_identities(void **state)
{
    (void)state;
    double d;
    int64_t i64;
    int32_t i32;
    mpmap_reduce_init(MPMAP_REDUCE_MIN, MPMAP_DOUBLE, 8, NULL, &d);
    assert_true(isinf(d) && d > 0);
    mpmap_reduce_init(MPMAP_REDUCE_MAX, MPMAP_DOUBLE, 8, NULL, &d);
    assert_true(isinf(d) && d < 0);
    mpmap_reduce_init(MPMAP_REDUCE_MIN, MPMAP_INT64, 8, NULL, &i64);
    assert_int_equal(i64, INT64_MAX);
    mpmap_reduce_init(MPMAP_REDUCE_MAX, MPMAP_INT32, 4, NULL, &i32);
    assert_int_equal(i32, INT32_MIN);
    mpmap_reduce_init(MPMAP_REDUCE_SUM, MPMAP_INT64, 8, NULL, &i64);
    assert_int_equal(i64, 0);
}

static void test_nan_never_wins_min_or_max(void **state)
{
    (void)state;
    double acc;
    mpmap_reduce_init(MPMAP_REDUCE_MAX, MPMAP_DOUBLE, 8, NULL, &acc);
    const double values[] = { 1.0, NAN, 3.0, NAN, 2.0 };
    for (int i = 0; i < 5; i++)
        mpmap_reduce_fold(MPMAP_REDUCE_MAX, MPMAP_DOUBLE, 8, &values[i], &acc, NULL, NULL);
    assert_true(acc == 3.0);
}

typedef struct stats {
    double sum;
    int64_t count;
} stats;

static void fold_stats(const void *record, void *accumulator, void *context)
{
    stats *a = accumulator;
    const stats *r = record;
    a->sum += r->sum * *(const double *)context;
    a->count += r->count;
}

static void test_user_operation_gets_context_and_initial_value(void **state)
{
    (void)state;
    stats initial = { 10.0, 100 }, acc;
    double scale = 2.0;
    mpmap_reduce_init(MPMAP_REDUCE_USER, MPMAP_DOUBLE, sizeof acc, &initial, &acc);
    for (int i = 1; i <= 4; i++) {
        stats r = { (double)i, 1 };
        mpmap_reduce_fold(MPMAP_REDUCE_USER, MPMAP_DOUBLE, sizeof acc, &r, &acc, fold_stats,
                          &scale);
    }
    assert_true(acc.sum == 10.0 + 2.0 * (1 + 2 + 3 + 4));
    assert_int_equal(acc.count, 104);
}

static void test_check_rejects_layouts_that_do_not_fit(void **state)
{
    (void)state;
    assert_int_equal(mpmap_reduce_check(MPMAP_REDUCE_SUM, MPMAP_DOUBLE, 12, NULL), MPMAP_EINVAL);
    assert_int_equal(mpmap_reduce_check(MPMAP_REDUCE_SUM, MPMAP_INT32, 12, NULL), MPMAP_OK);
    assert_int_equal(mpmap_reduce_check(MPMAP_REDUCE_MIN, MPMAP_INT64, 0, NULL), MPMAP_EINVAL);
    assert_int_equal(mpmap_reduce_check(MPMAP_REDUCE_USER, MPMAP_DOUBLE, 8, NULL), MPMAP_EINVAL);
    assert_int_equal(mpmap_reduce_check(MPMAP_REDUCE_USER, MPMAP_DOUBLE, 8, fold_stats), MPMAP_OK);
    assert_int_equal(mpmap_reduce_check((mpmap_reduce_op)99, MPMAP_DOUBLE, 8, NULL), MPMAP_EINVAL);
    assert_int_equal(mpmap_reduce_check(MPMAP_REDUCE_SUM, (mpmap_datatype)9, 8, NULL),
                     MPMAP_EINVAL);
    assert_int_equal(mpmap_reduce_check(MPMAP_REDUCE_NONE, MPMAP_DOUBLE, 0, NULL), MPMAP_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_double_sum_min_max_match_direct_loops),
        cmocka_unit_test(test_integer_types_fold_exactly),
        cmocka_unit_test(test_identities),
        cmocka_unit_test(test_nan_never_wins_min_or_max),
        cmocka_unit_test(test_user_operation_gets_context_and_initial_value),
        cmocka_unit_test(test_check_rejects_layouts_that_do_not_fit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
