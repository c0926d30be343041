/* Tests of the shared command-line module's error messages and --help: one
 * line naming the flag and the value, the expected format, the valid
 * choices, the bounds; --help and --version winning over errors, and the
 * help text listing every flag with its default. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cli_test_app.h"

/* ------------------------------------------------------------------------
 * Error messages
 */

static void test_negative_samples_names_flag_and_value(void **state)
{
    app *a = *state;
    char *argv[] = { "kde_sweep", "--samples", "-5", NULL };
    assert_int_equal(run(a, ARGC(argv), argv), MPMAP_EINVAL);
    assert_string_equal(a->err, "kde_sweep: --samples: expected a positive integer, got '-5'");
    char *argv2[] = { "kde_sweep", "--samples=12x", NULL };
    assert_int_equal(run(a, ARGC(argv2), argv2), MPMAP_EINVAL);
    assert_contains(a->err, "--samples");
    assert_contains(a->err, "'12x'");
}

static void test_bad_range_explains_the_format(void **state)
{
    app *a = *state;
    char *argv[] = { "kde_sweep", "--widths", "1:0:0", NULL };
    assert_int_equal(run(a, ARGC(argv), argv), MPMAP_EINVAL);
    assert_string_equal(a->err, "kde_sweep: --widths: expected START:STOP:COUNT with COUNT >= 1 "
                                "and START <= STOP, got '1:0:0'");
}

static void test_unknown_choice_lists_valid_values(void **state)
{
    app *a = *state;
    char *argv[] = { "kde_sweep", "--kernel", "triangle", NULL };
    assert_int_equal(run(a, ARGC(argv), argv), MPMAP_EINVAL);
    assert_string_equal(a->err, "kde_sweep: --kernel: unknown value 'triangle' (expected "
                                "hypercube or gaussian)");
    char *argv2[] = { "kde_sweep", "--schedule=fast", NULL };
    assert_int_equal(run(a, ARGC(argv2), argv2), MPMAP_EINVAL);
    assert_contains(a->err, "--schedule");
    assert_contains(a->err, "'fast'");
    assert_contains(a->err, "guided, static, dynamic, factoring, awf-b, awf-c, awf-d, awf-e, af "
                            "or auto");
}

static void test_unknown_option_points_to_help(void **state)
{
    app *a = *state;
    char *argv[] = { "kde_sweep", "--foo", NULL };
    assert_int_equal(run(a, ARGC(argv), argv), MPMAP_EINVAL);
    assert_string_equal(a->err, "kde_sweep: unknown option '--foo' (see --help)");
    char *argv2[] = { "kde_sweep", "--foo=3", NULL };
    assert_int_equal(run(a, ARGC(argv2), argv2), MPMAP_EINVAL);
    assert_string_equal(a->err, "kde_sweep: unknown option '--foo' (see --help)");
    char *argv3[] = { "kde_sweep", "-x", NULL };
    assert_int_equal(run(a, ARGC(argv3), argv3), MPMAP_EINVAL);
    assert_contains(a->err, "unknown option '-x'");
}

static void test_zero_chunk_is_rejected(void **state)
{
    app *a = *state;
    char *argv[] = { "kde_sweep", "--chunk", "0", NULL };
    assert_int_equal(run(a, ARGC(argv), argv), MPMAP_EINVAL);
    assert_contains(a->err, "kde_sweep: --chunk: expected");
    assert_contains(a->err, "'0'");
}

static void test_missing_value_is_reported(void **state)
{
    app *a = *state;
    char *argv[] = { "kde_sweep", "--samples", NULL };
    assert_int_equal(run(a, ARGC(argv), argv), MPMAP_EINVAL);
    assert_contains(a->err, "--samples: missing value");
    char *argv2[] = { "kde_sweep", "--samples", "--widths", "1:2:3", NULL };
    assert_int_equal(run(a, ARGC(argv2), argv2), MPMAP_EINVAL);
    assert_contains(a->err, "--samples: missing value");
    assert_contains(a->err, "'--widths'");
}

static void test_help_and_version_codes_win_over_errors(void **state)
{
    app *a = *state;
    char *h1[] = { "kde_sweep", "--help", NULL };
    char *h2[] = { "kde_sweep", "--samples", "5", "-h", NULL };
    char *h3[] = { "kde_sweep", "--samples", "-5", "--foo", "--help", NULL };
    char *v1[] = { "kde_sweep", "--version", NULL };
    assert_int_equal(run(a, ARGC(h1), h1), MPMAP_CLI_HELP);
    assert_int_equal(run(a, ARGC(h2), h2), MPMAP_CLI_HELP);
    assert_int_equal(run(a, ARGC(h3), h3), MPMAP_CLI_HELP);
    assert_int_equal(run(a, ARGC(v1), v1), MPMAP_CLI_VERSION);
    assert_int_equal(MPMAP_CLI_HELP, 1);
    assert_int_equal(MPMAP_CLI_VERSION, 2);
}

static void test_bounds_are_described_in_messages(void **state)
{
    app *a = *state;
    char *argv[] = { "kde_sweep", "--shift", "1.5", NULL };
    assert_int_equal(run(a, ARGC(argv), argv), MPMAP_EINVAL);
    assert_contains(a->err, "--shift: expected a number in [0, 1], got '1.5'");
    char *argv2[] = { "kde_sweep", "--weights", "1,0", NULL };
    assert_int_equal(run(a, ARGC(argv2), argv2), MPMAP_EINVAL);
    assert_contains(a->err, "comma-separated list of numbers > 0, got '1,0'");
    char *argv3[] = { "kde_sweep", "--progress-interval", "0", NULL };
    assert_int_equal(run(a, ARGC(argv3), argv3), MPMAP_EINVAL);
    assert_contains(a->err, "a number > 0, got '0'");
    char *argv4[] = { "kde_sweep", "--odd", "4", NULL };
    assert_int_equal(run(a, ARGC(argv4), argv4), MPMAP_EINVAL);
    assert_string_equal(a->err, "kde_sweep: --odd: expected an odd positive integer, got '4'");
}

static void test_error_message_is_one_line_for_hostile_values(void **state)
{
    app *a = *state;
    char *argv[] = { "kde_sweep", "--samples", "1\n2\r3", NULL };
    assert_int_equal(run(a, ARGC(argv), argv), MPMAP_EINVAL);
    assert_null(strchr(a->err, '\n'));
    assert_null(strchr(a->err, '\r'));
}

static void test_help_lists_every_flag_with_default(void **state)
{
    app *a = *state;
    FILE *f = tmpfile();
    assert_non_null(f);
    mpmap_cli_help(f, "kde_sweep", "Kernel density estimates over a range of widths.", a->opts,
                   a->nopts);
    long size = ftell(f);
    assert_true(size > 0);
    char *text = test_calloc((size_t)size + 1, 1);
    rewind(f);
    assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    assert_contains(text, "Usage: kde_sweep [options]");
    assert_contains(text, "Kernel density estimates");
    for (size_t i = 0; i < a->nopts; i++)
        assert_contains(text, a->opts[i].name);
    assert_contains(text, "--samples N");
    assert_contains(text, "-k, --kernel hypercube|gaussian");
    assert_contains(text, "(default: 10000)");
    assert_contains(text, "(default: kde.h5)");
    assert_contains(text, "(default: guided)");
    assert_contains(text, "--help");
    assert_contains(text, "--version");
    /* Aligned: the help text of --samples and --chunk starts in the same column. */
    const char *s = strstr(text, "points per estimate");
    const char *c = strstr(text, "smallest chunk");
    const char *sl = s, *cl = c;
    while (sl > text && sl[-1] != '\n')
        sl--;
    while (cl > text && cl[-1] != '\n')
        cl--;
    assert_int_equal(s - sl, c - cl);
    test_free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        APP_TEST(test_negative_samples_names_flag_and_value),
        APP_TEST(test_bad_range_explains_the_format),
        APP_TEST(test_unknown_choice_lists_valid_values),
        APP_TEST(test_unknown_option_points_to_help),
        APP_TEST(test_zero_chunk_is_rejected),
        APP_TEST(test_missing_value_is_reported),
        APP_TEST(test_help_and_version_codes_win_over_errors),
        APP_TEST(test_bounds_are_described_in_messages),
        APP_TEST(test_error_message_is_one_line_for_hostile_values),
        APP_TEST(test_help_lists_every_flag_with_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
