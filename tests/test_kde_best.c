/*
 * Tests of kde_sweep's choice of the best width (apps/kde_best.h): NaN never
 * wins, ties keep the first width, the reference is the standard normal
 * density, and a best width on the edge of the swept range is warned about.
 */
#define _POSIX_C_SOURCE 200809L /* open_memstream */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kde_best.h"

static void test_best_cv_is_the_highest_score_and_nan_never_wins(void **state)
{
    (void)state;
    const double scores[] = { NAN, -3.0, -1.5, NAN, -1.5, -2.0 };
    assert_int_equal(kde_best_cv(scores, 6), 2); /* the first of two equal scores */
    const double all_nan[] = { NAN, NAN };
    assert_int_equal(kde_best_cv(all_nan, 2), 0);
}

static void test_best_reference_is_the_smallest_mean_error(void **state)
{
    (void)state;
    const double points[] = { 0.0, 1.0 }; /* two 1-D points */
    double truth0 = 1.0 / sqrt(2.0 * 3.14159265358979323846), truth1 = truth0 * exp(-0.5);
    /* Three widths: off by 0.1 each, exact, NaN. */
    const double density[] = { truth0 + 0.1, truth1 - 0.1, truth0, truth1, NAN, truth1 };
    double ref[2], err[6], mean = 0;
    assert_int_equal(kde_best_reference(points, 2, 1, density, 3, ref, err, &mean), 1);
    assert_true(fabs(ref[0] - truth0) < 1e-15 && fabs(ref[1] - truth1) < 1e-15);
    assert_true(fabs(err[0] - 0.1) < 1e-12 && fabs(err[1] - 0.1) < 1e-12);
    assert_true(err[2] < 1e-15 && err[3] < 1e-15 && isnan(err[4]));
    assert_true(mean < 1e-15);
    const double only_nan[] = { NAN, NAN };
    assert_int_equal(kde_best_reference(points, 2, 1, only_nan, 1, ref, err, &mean), 0);
    assert_true(isinf(mean));
}

static char *printed(const kde_best *best, const mpmap_cli_range *widths, int folds)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    kde_best_print(out, best, widths, folds);
    fclose(out);
    return text;
}

static void test_print_warns_of_a_best_width_on_the_edge(void **state)
{
    (void)state;
    const mpmap_cli_range widths = { 0.5, 1.5, 3 }; /* 0.5, 1, 1.5 */
    char *text = printed(&(kde_best){ 1.0, 0.25, 1.5 }, &widths, 5);
    assert_string_equal(text,
                        "  best width (closest to the true density): 1, abs error 0.25\n"
                        "  best width (5-fold cross-validation): 1.5\n"
                        "  warning: the best width (cross-validation) 1.5 is at the upper edge of "
                        "the swept range 0.5..1.5; the optimum may lie outside it (widen "
                        "--widths)\n");
    free(text);
    text = printed(&(kde_best){ 0.5, 0.1, NAN }, &widths, 0);
    assert_non_null(strstr(text, "(closest to the true density) 0.5 is at the lower edge"));
    assert_null(strstr(text, "cross-validation"));
    free(text);
    /* One width is no range: no warning. */
    const mpmap_cli_range one = { 0.5, 0.5, 1 };
    text = printed(&(kde_best){ 0.5, 0.1, 0.5 }, &one, 2);
    assert_null(strstr(text, "warning"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_best_cv_is_the_highest_score_and_nan_never_wins),
        cmocka_unit_test(test_best_reference_is_the_smallest_mean_error),
        cmocka_unit_test(test_print_warns_of_a_best_width_on_the_edge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
