/* Tests of what the checkpoint log refuses and how it says so: its CRC, a
 * log of another job (and the fingerprint comparison that names the first
 * difference), a missing or damaged file, bad arguments, a log in use. The
 * appends and resumes of a valid log are in test_checkpoint.c. */
#define _GNU_SOURCE /* mkdtemp under -std=c17 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint_fixture.h"

/* ---- CRC ------------------------------------------------------------------ */

/* Bit-at-a-time CRC32C straight from the definition. */
static uint32_t crc32c_bitwise(const unsigned char *p, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc & 1u) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
}

static void test_crc32c_matches_definition_and_chains(void **state)
{
    (void)state;
    /* The published CRC-32C check value. */
    assert_int_equal(mpmap__crc32c(0, "123456789", 9), 0xE3069283u);
    unsigned char data[1031];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(record_of((int64_t)i) >> 17);
    for (size_t n = 0; n <= sizeof data; n += 97) {
        assert_int_equal(mpmap__crc32c(0, data, n), crc32c_bitwise(data, n));
        uint32_t chained = mpmap__crc32c(mpmap__crc32c(0, data, n / 3), data + n / 3, n - n / 3);
        assert_int_equal(chained, crc32c_bitwise(data, n));
    }
}

/* The table path is what a CPU without SSE4.2 runs: it must give the same
 * CRC for every length and alignment (the 8-byte steps of the instruction
 * path leave 0-7 bytes at the end). */
static void test_crc32c_table_path_equals_the_definition(void **state)
{
    (void)state;
    unsigned char data[300];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(record_of((int64_t)i) >> 11);
    assert_int_equal(mpmap__crc32c_table(0, "123456789", 9), 0xE3069283u);
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n + off <= sizeof data; n += 13) {
            uint32_t want = crc32c_bitwise(data + off, n);
            assert_int_equal(mpmap__crc32c_table(0, data + off, n), want);
            assert_int_equal(mpmap__crc32c(0, data + off, n), want);
        }
#if defined(__x86_64__)
    /* Every x86-64 CPU this project runs on (AVX2 and newer) has SSE4.2. */
    assert_int_equal(mpmap__crc32c_hardware(), 1);
#endif
}

/* ---- validation ------------------------------------------------------------ */

static int reopen_error(const char *path, const char *fp, int64_t ntasks, size_t rs, char *err,
                        size_t errlen)
{
    mpmap_ckpt *c = (mpmap_ckpt *)&c; /* must be reset to NULL on failure */
    int rc = mpmap__ckpt_open(path, fp, ntasks, rs, 1, &c, err, errlen);
    assert_null(c);
    return rc;
}

static void test_resume_refuses_another_job(void **state)
{
    fixture *f = *state;
    mpmap_ckpt *c = open_ok(f->path, 100, 8, 0);
    append_chunk(c, 0, 10, 1);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    char err[320];

    assert_int_equal(reopen_error(f->path, "app=square n=100 scale=3", 100, 8, err, sizeof err),
                     MPMAP_ERESUME);
    assert_non_null(strstr(err, "different run"));
    assert_non_null(strstr(err, "(scale: was 2.5, now 3)")); /* the first difference */
    assert_non_null(strstr(err, f->path));

    assert_int_equal(reopen_error(f->path, FP, 101, 8, err, sizeof err), MPMAP_ERESUME);
    assert_non_null(strstr(err, "different run"));
    assert_non_null(strstr(err, "was 100 tasks, now 101"));

    assert_int_equal(reopen_error(f->path, FP, 100, 16, err, sizeof err), MPMAP_ERESUME);
    assert_non_null(strstr(err, "record size was 8 bytes, now 16"));

    /* A very long fingerprint is clipped, not allowed to overflow. */
    char longfp[2000];
    memset(longfp, 'x', sizeof longfp - 1);
    longfp[sizeof longfp - 1] = '\0';
    char small[64];
    assert_int_equal(reopen_error(f->path, longfp, 100, 8, small, sizeof small), MPMAP_ERESUME);
    assert_true(strlen(small) < sizeof small);

    /* Long fingerprints: the difference is named wherever it is, never lost
     * behind a cut "was '...', now '...'". */
    char head[400];
    memset(head, 'a', 300);
    head[300] = '\0';
    char was[600], now[600];
    snprintf(was, sizeof was, "app --name=%s --seed=1 data=100x3:0123456789abcdef", head);
    c = NULL;
    assert_int_equal(mpmap__ckpt_open(f->path, was, 100, 8, 0, &c, err, sizeof err), MPMAP_OK);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    snprintf(now, sizeof now, "app --name=%s --seed=1 data=100x3:0123456789abcdee", head);
    assert_int_equal(reopen_error(f->path, now, 100, 8, err, sizeof err), MPMAP_ERESUME);
    assert_non_null(strstr(err, "(input data changed)"));
    snprintf(now, sizeof now, "app --name=%s --seed=2 data=100x3:0123456789abcdef", head);
    assert_int_equal(reopen_error(f->path, now, 100, 8, err, sizeof err), MPMAP_ERESUME);
    assert_non_null(strstr(err, "(--seed: was 1, now 2)"));
    assert_null(strstr(err, "was '"));

    /* The job still resumes with the right arguments. */
    c = open_ok(f->path, 100, 8, 0);
    append_chunk(c, 0, 10, 1);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    c = open_ok(f->path, 100, 8, 1);
    assert_int_equal(mpmap__ckpt_restored_tasks(c), 10);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
}

/* mpmap_fingerprint_diff, the comparison behind the message above. */
static const char *diff(const char *was, const char *now, int flags_only)
{
    static char why[256];
    int rc = mpmap_fingerprint_diff(was, strlen(was), now, flags_only, why, sizeof why);
    assert_int_equal(rc, why[0] != '\0');
    return why;
}

static void test_fingerprint_diff_names_the_first_difference(void **state)
{
    (void)state;
    assert_string_equal(diff("kde --n=1 --h=2", "kde --n=1 --h=2", 0), "");
    assert_string_equal(diff("kde --n=1 --h=2", "kde --n=1 --h=3", 0), "--h: was 2, now 3");
    assert_string_equal(diff("kde --n=1", "kde --n=1 --seed=3", 0),
                        "--seed: given now (3), not before");
    assert_string_equal(diff("kde --n=1 --fast", "kde --n=1", 0),
                        "--fast: given before (set), not now");
    assert_string_equal(diff("kde --n=1 data=4x2:ab", "kde --n=1 data=4x2:ac", 0),
                        "input data changed");
    assert_string_equal(diff("kde --n=1 data=4x2:ab", "kde --n=1 data=4x2:ac", 1), "");
    assert_string_equal(diff("kde --n=1", "knn --n=1", 0), "written by kde, not knn");
    assert_string_equal(diff("kde --n=1", "kde  --n=1", 0), "the arguments differ");
    char longv[200], was[256], now[256];
    memset(longv, '7', 100);
    longv[100] = '\0';
    snprintf(was, sizeof was, "kde --grid=%s1", longv);
    snprintf(now, sizeof now, "kde --grid=%s2", longv);
    const char *why = diff(was, now, 0);
    assert_true(strncmp(why, "--grid: was 777", 15) == 0 && strstr(why, "...") != NULL);
    char tiny[8];
    assert_int_equal(mpmap_fingerprint_diff("a --x=1", 7, "a --x=2", 0, tiny, sizeof tiny), 1);
    assert_true(strlen(tiny) < sizeof tiny);
    assert_int_equal(mpmap_fingerprint_diff(NULL, 0, NULL, 0, NULL, 0), 0);
}

static void test_resume_without_file_says_no_checkpoint(void **state)
{
    fixture *f = *state;
    char err[320];
    assert_int_equal(reopen_error(f->path, FP, 100, 8, err, sizeof err), MPMAP_ERESUME);
    assert_non_null(strstr(err, "no checkpoint"));
    assert_non_null(strstr(err, f->path));
    struct stat st;
    assert_int_equal(stat(f->path, &st), -1); /* resume never creates the file */
}

static void test_damaged_header_is_refused(void **state)
{
    fixture *f = *state;
    mpmap_ckpt *c = open_ok(f->path, 100, 8, 0);
    append_chunk(c, 0, 10, 1);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    int64_t size;
    unsigned char *orig = slurp(f->path, &size);
    char err[320];

    /* A flipped fingerprint byte fails the header CRC, not the fingerprint
     * comparison. */
    orig[34] ^= 0x01;
    spit(f->path, orig, size);
    assert_int_equal(reopen_error(f->path, FP, 100, 8, err, sizeof err), MPMAP_ERESUME);
    assert_non_null(strstr(err, "damaged: bad header"));
    orig[34] ^= 0x01;

    /* Cut inside the header. */
    spit(f->path, orig, 20);
    assert_int_equal(reopen_error(f->path, FP, 100, 8, err, sizeof err), MPMAP_ERESUME);
    assert_non_null(strstr(err, "damaged: bad header"));

    /* Something else entirely. */
    const char text[] = "this is a results file, not a checkpoint\n";
    spit(f->path, (const unsigned char *)text, (int64_t)sizeof text);
    assert_int_equal(reopen_error(f->path, FP, 100, 8, err, sizeof err), MPMAP_ERESUME);
    assert_non_null(strstr(err, "not an mpmap checkpoint"));

    /* Other format version. */
    /* clang-format off */
    memcpy(orig + 8, &(uint32_t){7}, 4);
    /* clang-format on */
    spit(f->path, orig, size);
    assert_int_equal(reopen_error(f->path, FP, 100, 8, err, sizeof err), MPMAP_ERESUME);
    assert_non_null(strstr(err, "version 7"));
    free(orig);
}

static void test_empty_file_resumes_as_empty_log(void **state)
{
    fixture *f = *state;
    spit(f->path, (const unsigned char *)"", 0);
    mpmap_ckpt *c = open_ok(f->path, 50, 8, 1);
    assert_int_equal(mpmap__ckpt_restored_tasks(c), 0);
    append_chunk(c, 10, 20, 1);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    c = open_ok(f->path, 50, 8, 1);
    const int64_t ranges[][2] = { { 10, 20 } };
    expect_ranges(c, 1, ranges);
    expect_tasks(c, 10, 20, 1);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
}

static void test_invalid_arguments_are_rejected(void **state)
{
    fixture *f = *state;
    mpmap_ckpt *c = NULL;
    char err[320];
    assert_int_equal(mpmap__ckpt_open(f->path, FP, -1, 8, 0, &c, err, sizeof err), MPMAP_EINVAL);
    assert_int_equal(mpmap__ckpt_open(NULL, FP, 10, 8, 0, &c, err, sizeof err), MPMAP_EINVAL);
    assert_int_equal(mpmap__ckpt_open(f->path, FP, INT64_MAX / 2, 8, 0, &c, err, sizeof err),
                     MPMAP_EINVAL);
    c = open_ok(f->path, 100, 8, 0);
    uint64_t rec[200] = { 0 };
    assert_int_equal(mpmap__ckpt_append(c, 5, 5, rec, NULL), MPMAP_EINVAL);
    assert_int_equal(mpmap__ckpt_append(c, 6, 5, rec, NULL), MPMAP_EINVAL);
    assert_int_equal(mpmap__ckpt_append(c, -1, 5, rec, NULL), MPMAP_EINVAL);
    assert_int_equal(mpmap__ckpt_append(c, 90, 101, rec, NULL), MPMAP_EINVAL);
    assert_int_equal(mpmap__ckpt_append(c, 0, 5, NULL, NULL), MPMAP_EINVAL);
    assert_non_null(strstr(mpmap__ckpt_error(c), "cannot append"));
    /* Nothing was written by the rejected calls. */
    assert_int_equal(file_size(f->path), (int64_t)MPMAP_CKPT_HEADER_SIZE(strlen(FP)));
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
}

static void test_second_open_of_a_live_log_is_refused(void **state)
{
    fixture *f = *state;
    mpmap_ckpt *c = open_ok(f->path, 100, 8, 0);
    append_chunk(c, 0, 10, 1);
    mpmap_ckpt *d = NULL;
    char err[320];
    assert_int_equal(mpmap__ckpt_open(f->path, FP, 100, 8, 0, &d, err, sizeof err), MPMAP_EIO);
    assert_non_null(strstr(err, "in use"));
    assert_int_equal(mpmap__ckpt_open(f->path, FP, 100, 8, 1, &d, err, sizeof err), MPMAP_EIO);
    assert_null(d);
    /* The refused fresh open did not truncate the live log. */
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    c = open_ok(f->path, 100, 8, 1);
    assert_int_equal(mpmap__ckpt_restored_tasks(c), 10);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_matches_definition_and_chains),
        cmocka_unit_test(test_crc32c_table_path_equals_the_definition),
        cmocka_unit_test_setup_teardown(test_resume_refuses_another_job, setup_dir, teardown_dir),
        cmocka_unit_test(test_fingerprint_diff_names_the_first_difference),
        cmocka_unit_test_setup_teardown(test_resume_without_file_says_no_checkpoint, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_damaged_header_is_refused, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_empty_file_resumes_as_empty_log, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_invalid_arguments_are_rejected, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_second_open_of_a_live_log_is_refused, setup_dir,
                                        teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
