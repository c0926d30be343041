/* Unit tests of param_grid: --param parsing, errors and C-order indexing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "param_grid.h"

static char err[512];

static void assert_contains(const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail_msg("'%s' does not contain '%s'", text, needle);
}

/* Adds spec and expects it to fail with message fragments, grid unchanged. */
static void expect_error(const char *spec, const char *fragment1, const char *fragment2)
{
    param_grid grid;
    param_grid_init(&grid);
    assert_int_equal(param_grid_add(&grid, "keep=1,2", err, sizeof err), PARAM_OK);
    err[0] = '\0';
    assert_int_equal(param_grid_add(&grid, spec, err, sizeof err), PARAM_EINVAL);
    assert_contains(err, "--param");
    if (fragment1)
        assert_contains(err, fragment1);
    if (fragment2)
        assert_contains(err, fragment2);
    assert_null(strchr(err, '\n'));
    assert_int_equal(grid.nparams, 1);
    assert_int_equal(grid.npoints, 2);
    param_grid_free(&grid);
}

static void test_range_values_follow_formula_and_end_at_stop(void **state)
{
    (void)state;
    param_grid grid;
    param_grid_init(&grid);
    assert_int_equal(param_grid_add(&grid, "x=0.1:0.7:7", err, sizeof err), PARAM_OK);
    assert_int_equal(grid.nparams, 1);
    assert_string_equal(grid.axes[0].name, "x");
    assert_int_equal(grid.axes[0].kind, PARAM_AXIS_RANGE);
    assert_int_equal(grid.axes[0].count, 7);
    assert_int_equal(grid.npoints, 7);
    for (int i = 0; i < 6; i++)
        assert_true(param_axis_value(&grid.axes[0], i) == 0.1 + i * (0.7 - 0.1) / 6.0);
    assert_true(param_axis_value(&grid.axes[0], 6) == 0.7);
    param_grid_free(&grid);
}

static void test_descending_range_is_allowed(void **state)
{
    (void)state;
    param_grid grid;
    param_grid_init(&grid);
    assert_int_equal(param_grid_add(&grid, "t = 3 : -1 : 5", err, sizeof err), PARAM_EINVAL);
    assert_int_equal(param_grid_add(&grid, "t=3 : -1 : 5", err, sizeof err), PARAM_OK);
    const double expected[] = { 3, 2, 1, 0, -1 };
    for (int i = 0; i < 5; i++)
        assert_true(param_axis_value(&grid.axes[0], i) == expected[i]);
    param_grid_free(&grid);
}

static void test_list_keeps_order_and_values(void **state)
{
    (void)state;
    param_grid grid;
    param_grid_init(&grid);
    assert_int_equal(param_grid_add(&grid, "_b2=5, -2.5e3,0x1p-2,7", err, sizeof err), PARAM_OK);
    assert_int_equal(grid.axes[0].kind, PARAM_AXIS_LIST);
    assert_int_equal(grid.axes[0].count, 4);
    const double expected[] = { 5.0, -2500.0, 0.25, 7.0 };
    for (int i = 0; i < 4; i++)
        assert_true(param_axis_value(&grid.axes[0], i) == expected[i]);
    assert_true(grid.axes[0].start == 5.0);
    assert_true(grid.axes[0].stop == 7.0);
    param_grid_free(&grid);
}

static void test_single_value_and_count_one(void **state)
{
    (void)state;
    param_grid grid;
    param_grid_init(&grid);
    assert_int_equal(grid.npoints, 1);
    assert_int_equal(param_grid_add(&grid, "a=4.5", err, sizeof err), PARAM_OK);
    assert_int_equal(param_grid_add(&grid, "b=2:2:1", err, sizeof err), PARAM_OK);
    assert_int_equal(grid.npoints, 1);
    double values[2];
    param_grid_point(&grid, 0, values);
    assert_true(values[0] == 4.5);
    assert_true(values[1] == 2.0);
    param_grid_free(&grid);
    assert_int_equal(grid.nparams, 0);
    assert_null(grid.axes);
}

static void test_malformed_specs_are_rejected_with_the_spec_quoted(void **state)
{
    (void)state;
    expect_error("a=1:2", "--param: expected NAME=START:STOP:COUNT or NAME=v1,v2,..., got 'a=1:2'",
                 NULL);
    expect_error("a=1:2:3:4", "expected NAME=START:STOP:COUNT", "'a=1:2:3:4'");
    expect_error("a", "expected NAME=", "'a'");
    expect_error("=1,2", "expected NAME=", "'=1,2'");
    expect_error("a=", "expected NAME=", "'a='");
}

static void test_bad_names_are_rejected(void **state)
{
    (void)state;
    expect_error("1a=1", "invalid name '1a'", "[A-Za-z_][A-Za-z0-9_]*");
    expect_error("a-b=1", "invalid name 'a-b'", NULL);
    expect_error("a b=1", "invalid name 'a b'", NULL);
    expect_error("result=1,2", "'result' is reserved", "'result=1,2'");
    expect_error("status=0:1:3", "'status' is reserved", NULL);
    expect_error("trace=1", "'trace' is reserved", NULL);
    expect_error("keep=3", "duplicate parameter 'keep'", "'keep=3'");
    char longname[PARAM_NAME_MAX + 8];
    memset(longname, 'n', PARAM_NAME_MAX);
    strcpy(longname + PARAM_NAME_MAX, "=1");
    expect_error(longname, "name longer than", NULL);
}

static void test_bad_numbers_are_rejected(void **state)
{
    (void)state;
    expect_error("a=1x", "invalid value '1x'", "'a=1x'");
    expect_error("a=nan", "invalid value 'nan'", NULL);
    expect_error("a=1,inf", "invalid value 'inf'", NULL);
    expect_error("a=1,-infinity", "invalid value '-infinity'", NULL);
    expect_error("a=1,1e999", "invalid value '1e999'", NULL);
    expect_error("a=1,,2", "empty value", "'a=1,,2'");
    expect_error("a=1,2,", "empty value", NULL);
    expect_error("a= ", "empty value", NULL);
    expect_error("a=x:2:3", "invalid START 'x'", "'a=x:2:3'");
    expect_error("a=1:2y:3", "invalid STOP '2y'", NULL);
    expect_error("a=1:2:0", "invalid COUNT '0'", NULL);
    expect_error("a=1:2:-3", "invalid COUNT '-3'", NULL);
    expect_error("a=1:2:1.5", "invalid COUNT '1.5'", NULL);
    expect_error("a=1:2:1e3", "invalid COUNT '1e3'", NULL);
    expect_error("a=1:2:", "invalid COUNT ''", NULL);
    expect_error("a=1:2:99999999999999999999", "invalid COUNT", NULL);
    expect_error("a=1:2:1", "COUNT 1 needs START == STOP", NULL);
    expect_error("a=-1e308:1e308:3", "overflows", NULL);
}

static void test_parse_double_is_strict(void **state)
{
    (void)state;
    double v = 0;
    assert_int_equal(param_parse_double(" 1.5e-3 ", &v), PARAM_OK);
    assert_true(v == 1.5e-3);
    assert_int_equal(param_parse_double("-0", &v), PARAM_OK);
    assert_int_equal(param_parse_double("1e-310", &v), PARAM_OK); /* subnormal is fine */
    assert_true(v > 0 && v < 1e-300);
    const char *bad[] = { "",     " ",     "1x",  "nan", "NaN", "inf",
                          "-inf", "1e400", "1 2", "\n1", "--1", "1.2.3" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(param_parse_double(bad[i], &v), PARAM_EINVAL);
}

/* Reference: nested loops, last axis innermost. */
static void check_c_order(const char *const *specs, int nspecs)
{
    param_grid grid;
    param_grid_init(&grid);
    for (int k = 0; k < nspecs; k++)
        assert_int_equal(param_grid_add(&grid, specs[k], err, sizeof err), PARAM_OK);
    int64_t n[3] = { 1, 1, 1 };
    for (int k = 0; k < nspecs; k++)
        n[k] = grid.axes[k].count;
    assert_int_equal(grid.npoints, n[0] * n[1] * n[2]);
    int64_t t = 0;
    for (int64_t i = 0; i < n[0]; i++)
        for (int64_t j = 0; j < n[1]; j++)
            for (int64_t l = 0; l < n[2]; l++, t++) {
                const int64_t want[3] = { i, j, l };
                int64_t index[3] = { -1, -1, -1 };
                double values[3];
                param_grid_index(&grid, t, index);
                param_grid_point(&grid, t, values);
                for (int k = 0; k < nspecs; k++) {
                    assert_int_equal(index[k], want[k]);
                    assert_true(values[k] == param_axis_value(&grid.axes[k], want[k]));
                }
            }
    assert_int_equal(t, grid.npoints);
    param_grid_free(&grid);
}

static void test_task_index_is_c_order_for_one_to_three_params(void **state)
{
    (void)state;
    const char *one[] = { "a=0:1:5" };
    const char *two[] = { "a=0:1:3", "b=10,20,30,40" };
    const char *three[] = { "a=1,2", "b=0:4:5", "c=-1:1:3" };
    check_c_order(one, 1);
    check_c_order(two, 2);
    check_c_order(three, 3);

    /* Spot check against the explicit formula t = (i*nb + j)*nc + l. */
    param_grid grid;
    param_grid_init(&grid);
    for (int k = 0; k < 3; k++)
        assert_int_equal(param_grid_add(&grid, three[k], err, sizeof err), PARAM_OK);
    double values[3];
    param_grid_point(&grid, (1 * 5 + 3) * 3 + 2, values);
    assert_true(values[0] == 2.0 && values[1] == 3.0 && values[2] == 1.0);
    assert_int_equal(param_grid_find(&grid, "c"), 2);
    assert_int_equal(param_grid_find(&grid, "z"), -1);
    param_grid_free(&grid);
}

static void test_grid_size_is_capped_before_int64_overflow(void **state)
{
    (void)state;
    param_grid grid;
    param_grid_init(&grid);
    assert_int_equal(param_grid_add(&grid, "a=0:1:1048576", err, sizeof err), PARAM_OK);
    assert_int_equal(param_grid_add(&grid, "b=0:1:1048576", err, sizeof err), PARAM_OK);
    assert_int_equal(grid.npoints, PARAM_GRID_MAX_POINTS); /* 2^40 exactly is allowed */
    assert_int_equal(param_grid_add(&grid, "c=1,2", err, sizeof err), PARAM_EINVAL);
    assert_contains(err, "grid too large");
    assert_contains(err, "'c=1,2'");
    /* 2^40 * 2^40 would wrap int64 without the guard. */
    assert_int_equal(param_grid_add(&grid, "d=0:1:1099511627776", err, sizeof err), PARAM_EINVAL);
    assert_contains(err, "grid too large");
    assert_int_equal(grid.nparams, 2);
    assert_int_equal(grid.npoints, PARAM_GRID_MAX_POINTS);
    /* The last point of a huge grid is still addressable without storage. */
    double values[2];
    param_grid_point(&grid, grid.npoints - 1, values);
    assert_true(values[0] == 1.0 && values[1] == 1.0);
    param_grid_free(&grid);

    param_grid_init(&grid);
    assert_int_equal(param_grid_add(&grid, "a=0:1:1099511627777", err, sizeof err), PARAM_EINVAL);
    assert_contains(err, "invalid COUNT");
    param_grid_free(&grid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_values_follow_formula_and_end_at_stop),
        cmocka_unit_test(test_descending_range_is_allowed),
        cmocka_unit_test(test_list_keeps_order_and_values),
        cmocka_unit_test(test_single_value_and_count_one),
        cmocka_unit_test(test_malformed_specs_are_rejected_with_the_spec_quoted),
        cmocka_unit_test(test_bad_names_are_rejected),
        cmocka_unit_test(test_bad_numbers_are_rejected),
        cmocka_unit_test(test_parse_double_is_strict),
        cmocka_unit_test(test_task_index_is_c_order_for_one_to_three_params),
        cmocka_unit_test(test_grid_size_is_capped_before_int64_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
