/* Tests of the run fingerprint built from parsed option values. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "mpmap_cli.h"

static const char *const kernel_names[] = { "hypercube", "gaussian", NULL };

typedef struct job {
    int64_t samples;
    mpmap_cli_range widths;
    int kernel;
    const char *input;
    mpmap_cli_strings points;
    int64_t chunk;
    mpmap_option opts[6];
} job;

static void job_init(job *j)
{
    memset(j, 0, sizeof *j);
    j->samples = 10000;
    j->widths = (mpmap_cli_range){ 1.0, 1.2, 100 };
    j->chunk = 1;
    /* clang-format off */
    mpmap_option o[] = {
        { .name = "--samples", .kind = MPMAP_OPT_INT64, .target = &j->samples, .min = 1,
          .max = 1e12 },
        { .name = "--widths", .kind = MPMAP_OPT_RANGE, .target = &j->widths, .max = INFINITY },
        { .name = "--kernel", .kind = MPMAP_OPT_CHOICE, .target = &j->kernel,
          .choices = kernel_names },
        { .name = "--input", .kind = MPMAP_OPT_STRING, .target = &j->input },
        { .name = "--point", .kind = MPMAP_OPT_STRING_LIST, .target = &j->points },
        { .name = "--chunk", .kind = MPMAP_OPT_INT64, .target = &j->chunk, .min = 1, .max = 1e12,
          .flags = MPMAP_OPT_NO_FINGERPRINT },
    };
    /* clang-format on */
    memcpy(j->opts, o, sizeof o);
}

static void fingerprint_of(int argc, char **argv, char *out, size_t len)
{
    job j;
    job_init(&j);
    char err[256];
    assert_int_equal(mpmap_cli_parse("t", j.opts, 6, argc, argv, err, sizeof err), 0);
    assert_int_equal(mpmap_cli_fingerprint_values(j.opts, 6, out, len), 0);
    mpmap_cli_free(j.opts, 6);
}

static void test_defaults_are_part_of_the_fingerprint(void **state)
{
    (void)state;
    char *argv[] = { "t", NULL };
    char fp[512];
    fingerprint_of(1, argv, fp, sizeof fp);
    assert_string_equal(fp, "--samples=10000 --widths=1:1.2:100 --kernel=hypercube "
                            "--input=(none) --point=");
}

static void test_same_values_written_differently_give_the_same_fingerprint(void **state)
{
    (void)state;
    char *a[] = { "t", "--samples", "1e4", "--widths=1.0:1.20:100", "--chunk", "7", NULL };
    char *b[] = { "t", "--widths", "1:1.2:100", NULL };
    char fa[512], fb[512];
    fingerprint_of(6, a, fa, sizeof fa);
    fingerprint_of(3, b, fb, sizeof fb);
    assert_string_equal(fa, fb);
}

static void test_another_value_changes_the_fingerprint(void **state)
{
    (void)state;
    char *a[] = { "t", "--kernel", "gaussian", "--input", "my data.h5:/x", NULL };
    char *b[] = { "t", NULL };
    char fa[512], fb[512];
    fingerprint_of(5, a, fa, sizeof fa);
    fingerprint_of(1, b, fb, sizeof fb);
    assert_string_not_equal(fa, fb);
    /* A space inside a value cannot be mistaken for the next option. */
    assert_non_null(strstr(fa, "--input=my%20data.h5:/x"));
    assert_non_null(strstr(fa, "--kernel=gaussian"));
}

static void test_a_long_fingerprint_keeps_its_start_and_a_hash_of_the_rest(void **state)
{
    (void)state;
    char *a[] = { "t", "--point", "1,2,3,4,5,6,7,8,9", "--point", "9,8,7,6,5,4,3,2,1", NULL };
    char *b[] = { "t", "--point", "1,2,3,4,5,6,7,8,9", "--point", "9,8,7,6,5,4,3,2,0", NULL };
    char fa[80], fb[80];
    fingerprint_of(5, a, fa, sizeof fa);
    fingerprint_of(5, b, fb, sizeof fb);
    assert_true(strlen(fa) == sizeof fa - 1);
    assert_non_null(strstr(fa, " ...#"));
    assert_memory_equal(fa, "--samples=10000", 15);
    assert_string_not_equal(fa, fb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_part_of_the_fingerprint),
        cmocka_unit_test(test_same_values_written_differently_give_the_same_fingerprint),
        cmocka_unit_test(test_another_value_changes_the_fingerprint),
        cmocka_unit_test(test_a_long_fingerprint_keeps_its_start_and_a_hash_of_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
