/* Tests of the shared command-line module: strict value parsers, option
 * table parsing and its error messages, --help, the fingerprint and the
 * flags every app shares. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "mpmap_cli.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

static void assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, haystack);
}

/* ------------------------------------------------------------------------
 * A kde_sweep-like table, rebuilt for every test.
 */

static const char *const kernel_names[] = { "hypercube", "gaussian", NULL };

typedef struct app {
    int64_t samples;
    mpmap_cli_range widths;
    int kernel;
    double shift;
    mpmap_cli_list weights;
    mpmap_cli_strings tags;
    int verbose;
    int samples_seen;
    int64_t odd;
    mpmap_cli_common common;
    mpmap_option opts[8 + MPMAP_CLI_COMMON_COUNT];
    size_t nopts;
    char err[256];
} app;

/* CUSTOM parser: odd positive integers only. */
static int parse_odd(const char *text, void *target, char *err, size_t errlen)
{
    int64_t v;
    if (mpmap_parse_int64(text, &v) != 0 || v <= 0 || v % 2 == 0) {
        snprintf(err, errlen, "expected an odd positive integer");
        return -1;
    }
    *(int64_t *)target = v;
    return 0;
}

static int setup_app(void **state)
{
    app *a = test_calloc(1, sizeof *a);
    a->samples = 10000;
    a->widths = (mpmap_cli_range){ 1.0, 1.0, 1 };
    a->kernel = 1;
    a->odd = 1;
    mpmap_cli_common_init(&a->common);
    a->common.output = "kde.h5";
    const mpmap_option own[] = {
        { .name = "--samples", .kind = MPMAP_OPT_INT64, .target = &a->samples, .metavar = "N",
          .help = "points per estimate", .default_text = "10000", .min = 1, .max = INFINITY,
          .seen = &a->samples_seen },
        { .name = "--widths", .kind = MPMAP_OPT_RANGE, .target = &a->widths,
          .metavar = "START:STOP:COUNT", .help = "kernel widths" },
        { .name = "--kernel", .short_name = 'k', .kind = MPMAP_OPT_CHOICE, .target = &a->kernel,
          .help = "kernel shape", .default_text = "gaussian", .choices = kernel_names },
        { .name = "--shift", .kind = MPMAP_OPT_DOUBLE, .target = &a->shift, .metavar = "X",
          .help = "offset", .min = 0, .max = 1 },
        { .name = "--weights", .kind = MPMAP_OPT_DOUBLE_LIST, .target = &a->weights,
          .help = "weights", .min = 0, .max = INFINITY, .flags = MPMAP_OPT_EXCLUSIVE_MIN },
        { .name = "--tag", .kind = MPMAP_OPT_STRING_LIST, .target = &a->tags, .help = "labels" },
        { .name = "--verbose", .short_name = 'v', .kind = MPMAP_OPT_FLAG, .target = &a->verbose,
          .help = "talk more", .flags = MPMAP_OPT_NO_FINGERPRINT },
        { .name = "--odd", .kind = MPMAP_OPT_CUSTOM, .target = &a->odd, .parse = parse_odd,
          .help = "an odd number" },
    };
    size_t n = sizeof own / sizeof own[0];
    memcpy(a->opts, own, sizeof own);
    int added = mpmap_cli_common_options(&a->common, a->opts + n, MPMAP_CLI_COMMON_COUNT);
    assert_int_equal(added, MPMAP_CLI_COMMON_COUNT);
    a->nopts = n + (size_t)added;
    *state = a;
    return 0;
}

static int teardown_app(void **state)
{
    app *a = *state;
    mpmap_cli_free(a->opts, a->nopts);
    test_free(a);
    return 0;
}

static int run(app *a, int argc, char **argv)
{
    return mpmap_cli_parse("kde_sweep", a->opts, a->nopts, argc, argv, a->err, sizeof a->err);
}

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
        "",     " 5",  "5 ",   "12x",  "1.5",  "1e-1", "0x10", "9223372036854775808",
        "-9223372036854775809", "1e19", "e5",  "-",    "+",    "1e",   "inf",  "nan",
        "1,000", "--1", "1e+",  ".",    "1e99999999999999999999",  "12345678901234567891e-1",
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
    static const char *const bad[] = { "nan", "inf", "-inf", "infinity", "1.0abc", "", " 1",
                                       "1 ", "1e999", "-1e999", "0x1p3", "1e", "--1", ".", "1..2" };
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
    static const char *const bad[] = { "1:0:0",   "1:0:3",      "1:2:0",   "1:2:-1",
                                       "1:2",     "1:2:3:4",    "a:2:3",   "1:2:3.5",
                                       ":2:3",    "1::3",       "1:2:",    "",
                                       "nan:1:2", "-1e308:1e308:3", " 1:2:3" };
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

/* ------------------------------------------------------------------------
 * Option parsing
 */

static void test_parse_accepts_separate_and_equals_forms(void **state)
{
    app *a = *state;
    char *argv[] = { "kde_sweep", "--samples", "1e4", "--widths=1.0:1.2:100", "-k", "hypercube",
                     "--shift=0.25", "--weights", "1,2", "--tag", "a", "--tag=b", "-v",
                     "--odd", "9", "--schedule=dynamic", "--chunk", "16", NULL };
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

static void test_int_bounds_are_inclusive_and_exact(void **state)
{
    (void)state;
    int64_t v = 0;
    char err[200];
    mpmap_option o[] = { { .name = "--ranks", .kind = MPMAP_OPT_INT64, .target = &v, .min = 2,
                           .max = 64 } };
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
    mpmap_option o[] = { { .name = "--input", .kind = MPMAP_OPT_STRING, .target = &in,
                           .flags = MPMAP_OPT_REQUIRED } };
    char *none[] = { "p", NULL }, *given[] = { "p", "--input", "x.h5", NULL };
    assert_int_equal(mpmap_cli_parse("p", o, 1, 1, none, err, sizeof err), MPMAP_EINVAL);
    assert_string_equal(err, "p: missing required option --input (see --help)");
    assert_int_equal(mpmap_cli_parse("p", o, 1, 3, given, err, sizeof err), 0);
    assert_string_equal(in, "x.h5");
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
    char *extra[] = { "kde_sweep", "--resume", "--widths", "1:2:3", "--schedule", "static",
                      "--chunk=8", "--samples=100", "--quiet", "--output", "x.h5",
                      "--progress-interval", "5", "-v", NULL };
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
    char *one[] = { "kde_sweep", "--samples", "1e4", "--widths", "1.0:1.20:1e2", "-k",
                    "gaussian", NULL };
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
    assert_int_equal(mpmap_cli_fingerprint(a->opts, a->nopts, ARGC(argv), argv, small,
                                           sizeof small),
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
    char *argv[] = { "kde_sweep", "--schedule", "factoring", "--chunk", "32", "--on-error",
                     "continue", "--resume", "--progress-interval", "0.5", NULL };
    assert_int_equal(run(a, ARGC(argv), argv), 0);
    mpmap_config config;
    memset(&config, 0, sizeof config);
    assert_int_equal(mpmap_cli_common_apply("kde_sweep", &a->common, &config, a->err,
                                            sizeof a->err),
                     0);
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
    assert_int_equal(mpmap_cli_common_apply("kde_sweep", &a->common, &config, a->err,
                                            sizeof a->err),
                     MPMAP_EINVAL);
    assert_contains(a->err, "kde_sweep: --force and --resume");
}

static void test_common_options_need_room(void **state)
{
    (void)state;
    mpmap_cli_common c;
    mpmap_cli_common_init(&c);
    mpmap_option few[MPMAP_CLI_COMMON_COUNT - 1];
    assert_int_equal(mpmap_cli_common_options(&c, few, MPMAP_CLI_COMMON_COUNT - 1),
                     MPMAP_EINVAL);
}

#define APP_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup_app, teardown_app)

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
        APP_TEST(test_parse_accepts_separate_and_equals_forms),
        APP_TEST(test_parse_leaves_defaults_of_absent_options),
        APP_TEST(test_negative_samples_names_flag_and_value),
        APP_TEST(test_bad_range_explains_the_format),
        APP_TEST(test_unknown_choice_lists_valid_values),
        APP_TEST(test_unknown_option_points_to_help),
        APP_TEST(test_zero_chunk_is_rejected),
        APP_TEST(test_missing_value_is_reported),
        APP_TEST(test_help_and_version_codes_win_over_errors),
        APP_TEST(test_repeated_option_is_an_error),
        APP_TEST(test_positional_arguments_are_rejected),
        APP_TEST(test_flag_with_value_is_rejected),
        APP_TEST(test_bounds_are_described_in_messages),
        cmocka_unit_test(test_int_bounds_are_inclusive_and_exact),
        cmocka_unit_test(test_required_option_must_be_given),
        APP_TEST(test_error_message_is_one_line_for_hostile_values),
        APP_TEST(test_help_lists_every_flag_with_default),
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
