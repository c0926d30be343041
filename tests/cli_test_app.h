/* The fixture of the cmocka tests of the shared command-line module
 * (test_cli*.c): a kde_sweep-like option table with every option kind and
 * the common flags, rebuilt for every test (APP_TEST), and the parse call on
 * it. Include after cmocka.h. */
#ifndef MPMAP_TESTS_CLI_TEST_APP_H
#define MPMAP_TESTS_CLI_TEST_APP_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mpmap_cli.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

static inline void assert_contains(const char *haystack, const char *needle)
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
static inline int parse_odd(const char *text, void *target, char *err, size_t errlen)
{
    int64_t v;
    if (mpmap_parse_int64(text, &v) != 0 || v <= 0 || v % 2 == 0) {
        snprintf(err, errlen, "expected an odd positive integer");
        return -1;
    }
    *(int64_t *)target = v;
    return 0;
}

static inline int setup_app(void **state)
{
    app *a = test_calloc(1, sizeof *a);
    a->samples = 10000;
    a->widths = (mpmap_cli_range){ 1.0, 1.0, 1 };
    a->kernel = 1;
    a->odd = 1;
    mpmap_cli_common_init(&a->common);
    a->common.output = "kde.h5";
    /* clang-format off */
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
    /* clang-format on */
    size_t n = sizeof own / sizeof own[0];
    memcpy(a->opts, own, sizeof own);
    int added = mpmap_cli_common_options(&a->common, a->opts + n, MPMAP_CLI_COMMON_COUNT);
    assert_int_equal(added, MPMAP_CLI_COMMON_COUNT);
    a->nopts = n + (size_t)added;
    *state = a;
    return 0;
}

static inline int teardown_app(void **state)
{
    app *a = *state;
    mpmap_cli_free(a->opts, a->nopts);
    test_free(a);
    return 0;
}

static inline int run(app *a, int argc, char **argv)
{
    return mpmap_cli_parse("kde_sweep", a->opts, a->nopts, argc, argv, a->err, sizeof a->err);
}

#define APP_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup_app, teardown_app)

#endif
