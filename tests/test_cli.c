/* Tests of the shared command-line module's option tables: the forms it
 * accepts, defaults, repeated and positional arguments, bounds and required
 * options, the fingerprint and the flags every app shares. The value parsers
 * are in test_cli_values.c, the error messages and --help in
 * test_cli_errors.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "cli_test_app.h"

/* ------------------------------------------------------------------------
 * Option parsing
 */

static void test_parse_accepts_separate_and_equals_forms(void **state)
{
    app *a = *state;
    char *argv[] = { "kde_sweep",
                     "--samples",
                     "1e4",
                     "--widths=1.0:1.2:100",
                     "-k",
                     "hypercube",
                     "--shift=0.25",
                     "--weights",
                     "1,2",
                     "--tag",
                     "a",
                     "--tag=b",
                     "-v",
                     "--odd",
                     "9",
                     "--schedule=dynamic",
                     "--chunk",
                     "16",
                     NULL };
    assert_int_equal(run(a, ARGC(argv), argv), 0);
    assert_string_equal(a->err, "");
    assert_true(a->samples == 10000);
    assert_true(a->samples_seen == 1);
    assert_true(a->widths.start == 1.0 && a->widths.stop == 1.2 && a->widths.count == 100);
    assert_int_equal(a->kernel, 0);
    assert_true(a->shift == 0.25);
    assert_int_equal(a->weights.count, 2);
    assert_true(a->weights.values[0] == 1.0 && a->weights.values[1] == 2.0);
    assert_int_equal(a->tags.count, 2);
    assert_string_equal(a->tags.items[0], "a");
    assert_string_equal(a->tags.items[1], "b");
    assert_int_equal(a->verbose, 1);
    assert_true(a->odd == 9);
    assert_string_equal(a->common.schedule_name, "dynamic");
    assert_true(a->common.chunk == 16);
}

static void test_parse_leaves_defaults_of_absent_options(void **state)
{
    app *a = *state;
    char *argv[] = { "kde_sweep", NULL };
    assert_int_equal(run(a, ARGC(argv), argv), 0);
    assert_true(a->samples == 10000);
    assert_int_equal(a->samples_seen, 0);
    assert_int_equal(a->kernel, 1);
    assert_string_equal(a->common.schedule_name, "guided");
    assert_string_equal(a->common.on_error, "stop");
    assert_true(a->common.chunk == 1);
    assert_string_equal(a->common.output, "kde.h5");
}

static void test_repeated_option_is_an_error(void **state)
{
    app *a = *state;
    char *argv[] = { "kde_sweep", "--samples", "5", "--samples=6", NULL };
    assert_int_equal(run(a, ARGC(argv), argv), MPMAP_EINVAL);
    assert_contains(a->err, "--samples: given twice");
}

static void test_positional_arguments_are_rejected(void **state)
{
    app *a = *state;
    char *argv[] = { "kde_sweep", "data.txt", NULL };
    assert_int_equal(run(a, ARGC(argv), argv), MPMAP_EINVAL);
    assert_contains(a->err, "unexpected argument 'data.txt'");
    char *argv2[] = { "kde_sweep", "--", "--samples", NULL };
    assert_int_equal(run(a, ARGC(argv2), argv2), MPMAP_EINVAL);
    assert_contains(a->err, "unexpected argument '--samples'");
    char *argv3[] = { "kde_sweep", "--samples", "5", "--", NULL };
    assert_int_equal(run(a, ARGC(argv3), argv3), 0);
}

static void test_flag_with_value_is_rejected(void **state)
{
    app *a = *state;
    char *argv[] = { "kde_sweep", "--force=yes", NULL };
    assert_int_equal(run(a, ARGC(argv), argv), MPMAP_EINVAL);
    assert_contains(a->err, "--force: does not take a value");
}

static void test_int_bounds_are_inclusive_and_exact(void **state)
{
    (void)state;
    int64_t v = 0;
    char err[200];
    /* clang-format off */
    mpmap_option o[] = { { .name = "--ranks", .kind = MPMAP_OPT_INT64, .target = &v, .min = 2,
                           .max = 64 } };
    /* clang-format on */
    char *lo[] = { "p", "--ranks=2", NULL }, *hi[] = { "p", "--ranks=64", NULL };
    char *below[] = { "p", "--ranks=1", NULL }, *above[] = { "p", "--ranks=65", NULL };
    assert_int_equal(mpmap_cli_parse("p", o, 1, 2, lo, err, sizeof err), 0);
    assert_true(v == 2);
    assert_int_equal(mpmap_cli_parse("p", o, 1, 2, hi, err, sizeof err), 0);
    assert_true(v == 64);
    assert_int_equal(mpmap_cli_parse("p", o, 1, 2, below, err, sizeof err), MPMAP_EINVAL);
    assert_string_equal(err, "p: --ranks: expected an integer from 2 to 64, got '1'");
    assert_int_equal(mpmap_cli_parse("p", o, 1, 2, above, err, sizeof err), MPMAP_EINVAL);
}

static void test_required_option_must_be_given(void **state)
{
    (void)state;
    const char *in = NULL;
    char err[200];
    /* clang-format off */
    mpmap_option o[] = { { .name = "--input", .kind = MPMAP_OPT_STRING, .target = &in,
                           .flags = MPMAP_OPT_REQUIRED } };
    /* clang-format on */
    char *none[] = { "p", NULL }, *given[] = { "p", "--input", "x.h5", NULL };
    assert_int_equal(mpmap_cli_parse("p", o, 1, 1, none, err, sizeof err), MPMAP_EINVAL);
    assert_string_equal(err, "p: missing required option --input (see --help)");
    assert_int_equal(mpmap_cli_parse("p", o, 1, 3, given, err, sizeof err), 0);
    assert_string_equal(in, "x.h5");
}

/* ------------------------------------------------------------------------
 * Fingerprint
 */

static void fingerprint(app *a, int argc, char **argv, char *out, size_t n)
{
    assert_int_equal(run(a, argc, argv), 0);
    assert_int_equal(mpmap_cli_fingerprint(a->opts, a->nopts, argc, argv, out, n), 0);
}

static void test_fingerprint_ignores_flags_that_do_not_change_results(void **state)
{
    app *a = *state;
    char f1[256], f2[256];
    char *plain[] = { "kde_sweep", "--samples", "100", "--widths=1:2:3", NULL };
    char *extra[] = { "kde_sweep",  "--resume", "--widths",  "1:2:3",
                      "--schedule", "static",   "--chunk=8", "--samples=100",
                      "--quiet",    "--output", "x.h5",      "--progress-interval",
                      "5",          "-v",       NULL };
    fingerprint(a, ARGC(plain), plain, f1, sizeof f1);
    mpmap_cli_free(a->opts, a->nopts);
    fingerprint(a, ARGC(extra), extra, f2, sizeof f2);
    assert_string_equal(f1, f2);
    assert_string_equal(f1, "--samples=100 --widths=1:2:3");
    char *forced[] = { "kde_sweep", "--force", "--samples", "100", "--widths=1:2:3", NULL };
    fingerprint(a, ARGC(forced), forced, f2, sizeof f2);
    assert_string_equal(f1, f2);
}

static void test_fingerprint_differs_when_results_differ(void **state)
{
    app *a = *state;
    char f1[256], f2[256], f3[256];
    char *one[] = { "kde_sweep", "--samples", "100", NULL };
    char *two[] = { "kde_sweep", "--samples", "101", NULL };
    char *cont[] = { "kde_sweep", "--samples", "100", "--on-error", "continue", NULL };
    fingerprint(a, ARGC(one), one, f1, sizeof f1);
    fingerprint(a, ARGC(two), two, f2, sizeof f2);
    fingerprint(a, ARGC(cont), cont, f3, sizeof f3);
    assert_string_not_equal(f1, f2);
    assert_string_not_equal(f1, f3);
}

static void test_fingerprint_normalises_number_spellings(void **state)
{
    app *a = *state;
    char f1[256], f2[256];
    char *one[] = { "kde_sweep",    "--samples", "1e4",      "--widths",
                    "1.0:1.20:1e2", "-k",        "gaussian", NULL };
    char *two[] = { "kde_sweep", "--kernel=gaussian", "--widths=1:1.2:100", "--samples=10000",
                    NULL };
    fingerprint(a, ARGC(one), one, f1, sizeof f1);
    fingerprint(a, ARGC(two), two, f2, sizeof f2);
    assert_string_equal(f1, f2);
    char *tags[] = { "kde_sweep", "--tag", "a b", "--tag=c%", NULL };
    mpmap_cli_free(a->opts, a->nopts);
    fingerprint(a, ARGC(tags), tags, f1, sizeof f1);
    assert_string_equal(f1, "--tag=a%20b --tag=c%25");
}

static void test_fingerprint_fails_on_bad_arguments_or_small_buffer(void **state)
{
    app *a = *state;
    char small[8], out[256];
    char *argv[] = { "kde_sweep", "--samples", "100", NULL };
    char *bad[] = { "kde_sweep", "--samples", "-1", NULL };
    assert_int_equal(
        mpmap_cli_fingerprint(a->opts, a->nopts, ARGC(argv), argv, small, sizeof small),
        MPMAP_EINVAL);
    assert_int_equal(mpmap_cli_fingerprint(a->opts, a->nopts, ARGC(bad), bad, out, sizeof out),
                     MPMAP_EINVAL);
}

/* ------------------------------------------------------------------------
 * Common flags
 */

static void test_common_apply_fills_config(void **state)
{
    app *a = *state;
    char *argv[] = { "kde_sweep", "--schedule", "factoring",
                     "--chunk",   "32",         "--on-error",
                     "continue",  "--resume",   "--progress-interval",
                     "0.5",       NULL };
    assert_int_equal(run(a, ARGC(argv), argv), 0);
    mpmap_config config;
    memset(&config, 0, sizeof config);
    assert_int_equal(
        mpmap_cli_common_apply("kde_sweep", &a->common, &config, a->err, sizeof a->err), 0);
    assert_int_equal(config.schedule, MPMAP_SCHEDULE_FACTORING);
    assert_true(config.chunk == 32);
    assert_int_equal(config.on_error, MPMAP_ON_ERROR_CONTINUE);
    assert_int_equal(config.resume, 1);
    assert_true(config.progress_interval == 0.5);
}

static void test_force_with_resume_is_an_error(void **state)
{
    app *a = *state;
    char *argv[] = { "kde_sweep", "--force", "--resume", NULL };
    assert_int_equal(run(a, ARGC(argv), argv), 0);
    mpmap_config config;
    memset(&config, 0, sizeof config);
    assert_int_equal(
        mpmap_cli_common_apply("kde_sweep", &a->common, &config, a->err, sizeof a->err),
        MPMAP_EINVAL);
    assert_contains(a->err, "kde_sweep: --force and --resume");
}

static void test_common_options_need_room(void **state)
{
    (void)state;
    mpmap_cli_common c;
    mpmap_cli_common_init(&c);
    mpmap_option few[MPMAP_CLI_COMMON_COUNT - 1];
    assert_int_equal(mpmap_cli_common_options(&c, few, MPMAP_CLI_COMMON_COUNT - 1), MPMAP_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        APP_TEST(test_parse_accepts_separate_and_equals_forms),
        APP_TEST(test_parse_leaves_defaults_of_absent_options),
        APP_TEST(test_repeated_option_is_an_error),
        APP_TEST(test_positional_arguments_are_rejected),
        APP_TEST(test_flag_with_value_is_rejected),
        cmocka_unit_test(test_int_bounds_are_inclusive_and_exact),
        cmocka_unit_test(test_required_option_must_be_given),
        APP_TEST(test_fingerprint_ignores_flags_that_do_not_change_results),
        APP_TEST(test_fingerprint_differs_when_results_differ),
        APP_TEST(test_fingerprint_normalises_number_spellings),
        APP_TEST(test_fingerprint_fails_on_bad_arguments_or_small_buffer),
        APP_TEST(test_common_apply_fills_config),
        APP_TEST(test_force_with_resume_is_an_error),
        cmocka_unit_test(test_common_options_need_room),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
