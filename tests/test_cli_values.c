/* Tests of the shared command-line module's strict value parsers: integers,
 * numbers, START:STOP:COUNT ranges and their values, comma-separated lists.
 * Option tables are in test_cli.c, their messages and --help in
 * test_cli_errors.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "mpmap_cli.h"

/* ------------------------------------------------------------------------
 * Pure parsers
 */

static void test_int64_accepts_decimal_and_exact_exponent_forms(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t value;
    } good[] = {
        { "0", 0 },
        { "42", 42 },
        { "-7", -7 },
        { "+5", 5 },
        { "007", 7 },
        { "-0", 0 },
        { "1e9", 1000000000 },
        { "1E3", 1000 },
        { "2.5e3", 2500 },
        { "100.0", 100 },
        { "1000e-3", 1 },
        { "0.5e1", 5 },
        { "0e999999", 0 },
        { "9223372036854775807", INT64_MAX },
        { "-9223372036854775808", INT64_MIN },
        { "9.223372036854775807e18", INT64_MAX },
        { "12345678901234567890e-1", 1234567890123456789 },
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t v = -12345;
        assert_int_equal(mpmap_parse_int64(good[i].text, &v), 0);
        assert_true(v == good[i].value);
    }
}

static void test_int64_rejects_malformed_fractional_and_overflowing(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        " 5",
        "5 ",
        "12x",
        "1.5",
        "1e-1",
        "0x10",
        "9223372036854775808",
        "-9223372036854775809",
        "1e19",
        "e5",
        "-",
        "+",
        "1e",
        "inf",
        "nan",
        "1,000",
        "--1",
        "1e+",
        ".",
        "1e99999999999999999999",
        "12345678901234567891e-1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = 77;
        if (mpmap_parse_int64(bad[i], &v) != MPMAP_EINVAL)
            fail_msg("accepted '%s'", bad[i]);
        assert_true(v == 77);
    }
}

static void test_double_accepts_finite_decimal_numbers(void **state)
{
    (void)state;
    double v;
    assert_int_equal(mpmap_parse_double("1.5", &v), 0);
    assert_true(v == 1.5);
    assert_int_equal(mpmap_parse_double("-2e-3", &v), 0);
    assert_true(v == -2e-3);
    assert_int_equal(mpmap_parse_double(".25", &v), 0);
    assert_true(v == 0.25);
    assert_int_equal(mpmap_parse_double("3.", &v), 0);
    assert_true(v == 3.0);
    assert_int_equal(mpmap_parse_double("1e308", &v), 0);
    assert_true(v == 1e308);
}

static void test_double_rejects_nonfinite_and_trailing_text(void **state)
{
    (void)state;
    static const char *const bad[] = { "nan",   "inf", "-inf", "infinity", "1.0abc",
                                       "",      " 1",  "1 ",   "1e999",    "-1e999",
                                       "0x1p3", "1e",  "--1",  ".",        "1..2" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double v = 9.0;
        if (mpmap_parse_double(bad[i], &v) != MPMAP_EINVAL)
            fail_msg("accepted '%s'", bad[i]);
        assert_true(v == 9.0);
    }
}

static void test_range_parses_start_stop_count(void **state)
{
    (void)state;
    mpmap_cli_range r;
    assert_int_equal(mpmap_parse_range("1.0:1.2:100", &r), 0);
    assert_true(r.start == 1.0 && r.stop == 1.2 && r.count == 100);
    assert_int_equal(mpmap_parse_range("-1:1:1e3", &r), 0);
    assert_true(r.start == -1.0 && r.stop == 1.0 && r.count == 1000);
    assert_int_equal(mpmap_parse_range("2:2:1", &r), 0);
    assert_int_equal(mpmap_parse_range("1:2:1", &r), 0); /* COUNT 1 stands for START */
    assert_true(mpmap_cli_range_value(&r, 0) == 1.0);
}

static void test_range_rejects_bad_count_order_and_shape(void **state)
{
    (void)state;
    static const char *const bad[] = { "1:0:0",   "1:0:3", "1:2:0",   "1:2:-1",         "1:2",
                                       "1:2:3:4", "a:2:3", "1:2:3.5", ":2:3",           "1::3",
                                       "1:2:",    "",      "nan:1:2", "-1e308:1e308:3", " 1:2:3" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mpmap_cli_range r = { 5, 6, 7 };
        if (mpmap_parse_range(bad[i], &r) != MPMAP_EINVAL)
            fail_msg("accepted '%s'", bad[i]);
        assert_true(r.start == 5 && r.stop == 6 && r.count == 7);
    }
}

static void test_range_values_run_evenly_from_start_to_exact_stop(void **state)
{
    (void)state;
    const mpmap_cli_range r = { 1.0, 1.2, 100 };
    assert_true(mpmap_cli_range_value(&r, 0) == 1.0);
    assert_true(mpmap_cli_range_value(&r, 99) == 1.2);
    double prev = 1.0;
    for (int64_t i = 0; i < 100; i++) {
        /* Independent reference: the weighted mean of the ends in long double. */
        long double expect = (1.0L * (long double)(99 - i) + 1.2L * (long double)i) / 99.0L;
        double v = mpmap_cli_range_value(&r, i);
        assert_true(fabsl((long double)v - expect) < 1e-15L);
        assert_true(v >= prev);
        assert_true(v <= 1.2);
        prev = v;
    }
    /* Spacing is (STOP - START) / (COUNT - 1). */
    double step = mpmap_cli_range_value(&r, 50) - mpmap_cli_range_value(&r, 49);
    assert_true(fabs(step - 0.2 / 99.0) < 1e-14);
    const mpmap_cli_range one = { 3.0, 4.0, 1 };
    assert_true(mpmap_cli_range_value(&one, 0) == 3.0);
}

static void test_double_list_parses_commas_and_rejects_empty_items(void **state)
{
    (void)state;
    mpmap_cli_list l = { 0 };
    assert_int_equal(mpmap_parse_double_list("1,2.5,-3", &l), 0);
    assert_int_equal(l.count, 3);
    assert_true(l.values[0] == 1.0 && l.values[1] == 2.5 && l.values[2] == -3.0);
    assert_true(l.owned);
    mpmap_cli_list_free(&l);
    assert_null(l.values);
    assert_int_equal(mpmap_parse_double_list("7", &l), 0);
    assert_int_equal(l.count, 1);
    mpmap_cli_list_free(&l);
    static const char *const bad[] = { "", ",", "1,,2", "1,", ",1", "1;2", "x", "1, 2", "nan" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mpmap_cli_list keep = { 0 };
        if (mpmap_parse_double_list(bad[i], &keep) != MPMAP_EINVAL)
            fail_msg("accepted '%s'", bad[i]);
        assert_null(keep.values);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int64_accepts_decimal_and_exact_exponent_forms),
        cmocka_unit_test(test_int64_rejects_malformed_fractional_and_overflowing),
        cmocka_unit_test(test_double_accepts_finite_decimal_numbers),
        cmocka_unit_test(test_double_rejects_nonfinite_and_trailing_text),
        cmocka_unit_test(test_range_parses_start_stop_count),
        cmocka_unit_test(test_range_rejects_bad_count_order_and_shape),
        cmocka_unit_test(test_range_values_run_evenly_from_start_to_exact_stop),
        cmocka_unit_test(test_double_list_parses_commas_and_rejects_empty_items),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
