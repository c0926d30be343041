/* Tests of the checkpoint log: resume round trips, job validation, torn
 * tails, a SIGKILLed writer, and the documented on-disk sizes. */
#define _GNU_SOURCE /* mkdtemp, kill, ftruncate under -std=c17 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "mpmap.h"

/* ---- fixtures and independent reference values --------------------------- */

typedef struct fixture {
    char dir[64];
    char path[128];
} fixture;

static int setup_dir(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    strcpy(f->dir, "/tmp/mpmap_ckpt_XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/run.ckpt", f->dir);
    *state = f;
    return 0;
}

static int teardown_dir(void **state)
{
    fixture *f = *state;
    DIR *d = opendir(f->dir);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[512];
            snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* The record of task t: a splitmix64 hash, so any misplaced byte shows. */
static uint64_t record_of(int64_t t)
{
    uint64_t z = (uint64_t)t + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A few tasks fail, with a code derived from the task. */
static int32_t status_of(int64_t t)
{
    return t % 7 == 3 ? (int32_t)(t + 1) : 0;
}

static void fill(int64_t begin, int64_t end, uint64_t *records, int32_t *status)
{
    for (int64_t t = begin; t < end; t++) {
        records[t - begin] = record_of(t);
        if (status != NULL)
            status[t - begin] = status_of(t);
    }
}

static int any_failed(int64_t begin, int64_t end)
{
    for (int64_t t = begin; t < end; t++)
        if (status_of(t) != 0)
            return 1;
    return 0;
}

static void append_chunk(mpmap_ckpt *c, int64_t begin, int64_t end, int with_status)
{
    size_t n = (size_t)(end - begin);
    uint64_t *rec = malloc(n * sizeof *rec);
    int32_t *st = malloc(n * sizeof *st);
    assert_non_null(rec);
    assert_non_null(st);
    fill(begin, end, rec, with_status ? st : NULL);
    assert_int_equal(mpmap__ckpt_append(c, begin, end, rec, with_status ? st : NULL), MPMAP_OK);
    free(rec);
    free(st);
}

static int64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (int64_t)st.st_size;
}

static unsigned char *slurp(const char *path, int64_t *size)
{
    *size = file_size(path);
    unsigned char *buf = malloc((size_t)*size);
    assert_non_null(buf);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fread(buf, 1, (size_t)*size, fp), (size_t)*size);
    fclose(fp);
    return buf;
}

static void spit(const char *path, const unsigned char *buf, int64_t size)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, (size_t)size, fp), (size_t)size);
    assert_int_equal(fclose(fp), 0);
}

/* Reads [begin, end) back and compares with record_of/status_of; tasks in
 * `plain` ranges (appended with status NULL) must read status 0. */
static void expect_tasks(mpmap_ckpt *c, int64_t begin, int64_t end, int with_status)
{
    size_t n = (size_t)(end - begin);
    uint64_t *rec = malloc(n * sizeof *rec);
    int32_t *st = malloc(n * sizeof *st);
    assert_non_null(rec);
    assert_non_null(st);
    memset(st, 0x55, n * sizeof *st);
    assert_int_equal(mpmap__ckpt_read(c, begin, end, rec, st), MPMAP_OK);
    for (int64_t t = begin; t < end; t++) {
        assert_true(rec[t - begin] == record_of(t));
        assert_int_equal(st[t - begin], with_status ? status_of(t) : 0);
    }
    free(rec);
    free(st);
}

static void expect_ranges(mpmap_ckpt *c, size_t n, const int64_t (*want)[2])
{
    const mpmap_range *r = NULL;
    assert_int_equal(mpmap__ckpt_restored(c, &r), n);
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(r[i].begin, want[i][0]);
        assert_int_equal(r[i].end, want[i][1]);
        total += want[i][1] - want[i][0];
    }
    assert_int_equal(mpmap__ckpt_restored_tasks(c), total);
}

static const char *const FP = "app=square n=100 scale=2.5";

static mpmap_ckpt *open_ok(const char *path, int64_t ntasks, size_t rs, int resume)
{
    mpmap_ckpt *c = NULL;
    char err[320];
    int rc = mpmap__ckpt_open(path, FP, ntasks, rs, resume, &c, err, sizeof err);
    if (rc != MPMAP_OK)
        print_error("open failed: %s\n", err);
    assert_int_equal(rc, MPMAP_OK);
    assert_non_null(c);
    return c;
}

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

/* ---- round trips ---------------------------------------------------------- */

static void test_resume_restores_out_of_order_appends_coalesced(void **state)
{
    fixture *f = *state;
    mpmap_ckpt *c = open_ok(f->path, 100, 8, 0);
    assert_int_equal(mpmap__ckpt_restored(c, NULL), 0);
    assert_int_equal(mpmap__ckpt_restored_tasks(c), 0);
    /* Completion order differs from task order; [10,25) passes an all-zero
     * status array, [0,10) none. */
    append_chunk(c, 40, 60, 1);
    append_chunk(c, 0, 10, 0);
    int32_t zeros[15] = {0};
    uint64_t rec[15];
    fill(10, 25, rec, NULL);
    assert_int_equal(mpmap__ckpt_append(c, 10, 25, rec, zeros), MPMAP_OK);
    append_chunk(c, 70, 100, 1);
    append_chunk(c, 25, 40, 1);
    assert_int_equal(mpmap__ckpt_sync(c), MPMAP_OK);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);

    /* Size from the documented format: statuses only where some is non-zero. */
    const int64_t chunks[][2] = {{40, 60}, {0, 10}, {10, 25}, {70, 100}, {25, 40}};
    int64_t want = (int64_t)MPMAP_CKPT_HEADER_SIZE(strlen(FP));
    for (size_t i = 0; i < 5; i++) {
        int64_t n = chunks[i][1] - chunks[i][0];
        int st = i != 1 && i != 2 && any_failed(chunks[i][0], chunks[i][1]);
        want += MPMAP_CKPT_ENTRY_HEADER_SIZE + n * 8 + (st ? n * 4 : 0);
    }
    assert_int_equal(file_size(f->path), want);

    c = open_ok(f->path, 100, 8, 1);
    const int64_t ranges[][2] = {{0, 60}, {70, 100}};
    expect_ranges(c, 2, ranges);
    assert_int_equal(mpmap__ckpt_discarded_bytes(c), 0);
    expect_tasks(c, 0, 25, 0);   /* spans two entries without statuses */
    expect_tasks(c, 25, 60, 1);  /* spans two entries with statuses */
    expect_tasks(c, 45, 50, 1);  /* inside one entry */
    expect_tasks(c, 70, 100, 1); /* a whole entry */

    /* Mixed: [5, 30) spans three entries, the last one with statuses. */
    uint64_t r[25];
    int32_t s[25];
    assert_int_equal(mpmap__ckpt_read(c, 5, 30, r, s), MPMAP_OK);
    for (int64_t t = 5; t < 30; t++) {
        assert_true(r[t - 5] == record_of(t));
        assert_int_equal(s[t - 5], t >= 25 ? status_of(t) : 0);
    }
    /* Records only, statuses only. */
    assert_int_equal(mpmap__ckpt_read(c, 50, 52, r, NULL), MPMAP_OK);
    assert_true(r[0] == record_of(50) && r[1] == record_of(51));
    assert_int_equal(mpmap__ckpt_read(c, 52, 53, NULL, s), MPMAP_OK);
    assert_int_equal(s[0], status_of(52));

    /* Not restored. */
    assert_int_equal(mpmap__ckpt_read(c, 55, 75, r, s), MPMAP_EINVAL);
    assert_int_equal(mpmap__ckpt_read(c, 60, 61, r, s), MPMAP_EINVAL);
    assert_non_null(strstr(mpmap__ckpt_error(c), "not restored"));
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
}

static void test_second_interruption_keeps_both_runs(void **state)
{
    fixture *f = *state;
    mpmap_ckpt *c = open_ok(f->path, 100, 8, 0);
    append_chunk(c, 0, 50, 1);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);

    c = open_ok(f->path, 100, 8, 1);
    const int64_t first[][2] = {{0, 50}};
    expect_ranges(c, 1, first);
    append_chunk(c, 80, 100, 1);
    append_chunk(c, 50, 60, 1);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);

    c = open_ok(f->path, 100, 8, 1);
    const int64_t both[][2] = {{0, 60}, {80, 100}};
    expect_ranges(c, 2, both);
    expect_tasks(c, 0, 60, 1);
    expect_tasks(c, 80, 100, 1);
    /* A fresh open discards the log. */
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    c = open_ok(f->path, 100, 8, 0);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    c = open_ok(f->path, 100, 8, 1);
    assert_int_equal(mpmap__ckpt_restored(c, NULL), 0);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
}

static void test_record_size_zero_keeps_ranges_and_statuses(void **state)
{
    fixture *f = *state;
    mpmap_ckpt *c = open_ok(f->path, 1000, 0, 0);
    assert_int_equal(mpmap__ckpt_append(c, 500, 1000, NULL, NULL), MPMAP_OK);
    int32_t st[100];
    for (int64_t t = 0; t < 100; t++)
        st[t] = status_of(t);
    assert_int_equal(mpmap__ckpt_append(c, 0, 100, NULL, st), MPMAP_OK);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    assert_int_equal(file_size(f->path), (int64_t)MPMAP_CKPT_HEADER_SIZE(strlen(FP)) +
                                             2 * MPMAP_CKPT_ENTRY_HEADER_SIZE + 100 * 4);

    c = open_ok(f->path, 1000, 0, 1);
    const int64_t ranges[][2] = {{0, 100}, {500, 1000}};
    expect_ranges(c, 2, ranges);
    int32_t got[600];
    assert_int_equal(mpmap__ckpt_read(c, 0, 100, NULL, got), MPMAP_OK);
    for (int64_t t = 0; t < 100; t++)
        assert_int_equal(got[t], status_of(t));
    memset(got, 1, sizeof got);
    assert_int_equal(mpmap__ckpt_read(c, 500, 1000, NULL, got), MPMAP_OK);
    for (int i = 0; i < 500; i++)
        assert_int_equal(got[i], 0);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
}

static void test_overlapping_entry_is_ignored_whole(void **state)
{
    fixture *f = *state;
    mpmap_ckpt *c = open_ok(f->path, 100, 8, 0);
    append_chunk(c, 0, 10, 1);
    /* Overlaps [0,10): ignored as a whole, though [10,15) is new. Its
     * records differ so reading them back would show. */
    uint64_t bogus[20];
    for (int i = 0; i < 20; i++)
        bogus[i] = ~record_of(5 + i);
    assert_int_equal(mpmap__ckpt_append(c, 5, 15, bogus, NULL), MPMAP_OK);
    append_chunk(c, 30, 40, 1);
    append_chunk(c, 10, 20, 1);
    assert_int_equal(mpmap__ckpt_append(c, 35, 36, bogus, NULL), MPMAP_OK); /* inside [30,40) */
    assert_int_equal(mpmap__ckpt_append(c, 15, 35, bogus, NULL), MPMAP_OK); /* spans two */
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);

    c = open_ok(f->path, 100, 8, 1);
    const int64_t ranges[][2] = {{0, 20}, {30, 40}};
    expect_ranges(c, 2, ranges);
    expect_tasks(c, 0, 20, 1);
    expect_tasks(c, 30, 40, 1);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
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
    memcpy(orig + 8, &(uint32_t){7}, 4);
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
    const int64_t ranges[][2] = {{10, 20}};
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
    uint64_t rec[200] = {0};
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

/* A write that fails (the disk full, or here a file size limit) is reported
 * with its cause, and leaves the log as it was: the runtime passes this text
 * on to the run's report. */
static void test_failed_append_names_the_cause_and_keeps_the_log_clean(void **state)
{
    fixture *f = *state;
    mpmap_ckpt *c = open_ok(f->path, 1000, 8, 0);
    uint64_t rec[1000] = { 0 };
    assert_int_equal(mpmap__ckpt_append(c, 0, 10, rec, NULL), MPMAP_OK);
    int64_t before = file_size(f->path);
    struct rlimit saved;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = { (rlim_t)before + 100, saved.rlim_max };
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    int rc = mpmap__ckpt_append(c, 10, 1000, rec, NULL);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(rc, MPMAP_EIO);
    assert_non_null(strstr(mpmap__ckpt_error(c), strerror(EFBIG)));
    assert_non_null(strstr(mpmap__ckpt_error(c), f->path));
    assert_int_equal(file_size(f->path), before);
    /* The log goes on once there is room again. */
    assert_int_equal(mpmap__ckpt_append(c, 10, 20, rec, NULL), MPMAP_OK);
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

static void test_remove_unlinks_and_close_keeps(void **state)
{
    fixture *f = *state;
    mpmap_ckpt *c = open_ok(f->path, 10, 8, 0);
    append_chunk(c, 0, 10, 1);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    c = open_ok(f->path, 10, 8, 1);
    assert_int_equal(mpmap__ckpt_remove(c), MPMAP_OK);
    assert_int_equal(stat(f->path, &st), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(mpmap__ckpt_close(NULL), MPMAP_OK);
}

/* ---- torn tails ------------------------------------------------------------ */

/* The notice of a log cut after `kept` of 100 tasks at byte `at`. */
static void expect_notice(const mpmap_ckpt *c, const char *path, int64_t kept, int64_t at)
{
    char want[512];
    snprintf(want, sizeof want,
             "checkpoint '%s' is damaged after %lld of 100 tasks (byte %lld); the other %lld "
             "tasks will be recomputed",
             path, (long long)kept, (long long)at, (long long)(100 - kept));
    assert_string_equal(mpmap__ckpt_notice(c), want);
}

static void test_torn_last_entry_is_dropped_and_log_continues(void **state)
{
    fixture *f = *state;
    mpmap_ckpt *c = open_ok(f->path, 100, 8, 0);
    append_chunk(c, 0, 10, 1);
    append_chunk(c, 20, 30, 1);
    int64_t good_end = file_size(f->path);
    append_chunk(c, 10, 20, 1); /* the entry that will be torn */
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    int64_t size;
    unsigned char *orig = slurp(f->path, &size);
    int64_t last = size - good_end;
    assert_int_equal(last, MPMAP_CKPT_ENTRY_HEADER_SIZE + 10 * 8 + 10 * 4);

    const int64_t cuts[] = {1, 20, MPMAP_CKPT_ENTRY_HEADER_SIZE - 1, MPMAP_CKPT_ENTRY_HEADER_SIZE,
                            MPMAP_CKPT_ENTRY_HEADER_SIZE + 1, last / 2 + 3, last - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        spit(f->path, orig, good_end + cuts[k]);
        c = open_ok(f->path, 100, 8, 1);
        const int64_t before[][2] = {{0, 10}, {20, 30}};
        expect_ranges(c, 2, before);
        assert_int_equal(mpmap__ckpt_discarded_bytes(c), cuts[k]);
        expect_notice(c, f->path, 20, good_end);
        assert_int_equal(file_size(f->path), good_end); /* torn bytes truncated away */
        expect_tasks(c, 0, 10, 1);
        expect_tasks(c, 20, 30, 1);
        append_chunk(c, 10, 20, 1);
        assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);

        c = open_ok(f->path, 100, 8, 1);
        const int64_t after[][2] = {{0, 30}};
        expect_ranges(c, 1, after);
        assert_int_equal(mpmap__ckpt_discarded_bytes(c), 0);
        assert_string_equal(mpmap__ckpt_notice(c), ""); /* a clean log says nothing */
        expect_tasks(c, 0, 30, 1);
        assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    }

    /* One flipped bit anywhere in the last entry: payload (status part,
     * record part), or header fields. */
    const int64_t flips[] = {MPMAP_CKPT_ENTRY_HEADER_SIZE + 5, MPMAP_CKPT_ENTRY_HEADER_SIZE + 60,
                             last - 1, 0, 9, 25, 33, 37};
    for (size_t k = 0; k < sizeof flips / sizeof flips[0]; k++) {
        orig[good_end + flips[k]] ^= 0x10;
        spit(f->path, orig, size);
        orig[good_end + flips[k]] ^= 0x10;
        c = open_ok(f->path, 100, 8, 1);
        const int64_t before[][2] = {{0, 10}, {20, 30}};
        expect_ranges(c, 2, before);
        assert_int_equal(mpmap__ckpt_discarded_bytes(c), last);
        assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    }

    /* Damage in a middle entry ends the log there (documented): later
     * entries cannot be trusted to start on an entry boundary. */
    int64_t first_end = (int64_t)MPMAP_CKPT_HEADER_SIZE(strlen(FP)) +
                        MPMAP_CKPT_ENTRY_HEADER_SIZE + 10 * 8 + 10 * 4;
    orig[first_end + MPMAP_CKPT_ENTRY_HEADER_SIZE + 7] ^= 0x01;
    spit(f->path, orig, size);
    c = open_ok(f->path, 100, 8, 1);
    const int64_t only[][2] = {{0, 10}};
    expect_ranges(c, 1, only);
    expect_notice(c, f->path, 10, first_end); /* told, not dropped silently */
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    free(orig);
}

/* ---- SIGKILL ---------------------------------------------------------------- */

#define CRASH_TASKS 1000000
#define CRASH_CHUNKS 2000

/* A fixed plan of chunks: boundaries and the order the "workers" finish
 * them, from a seed, so parent and child agree. */
typedef struct crash_plan {
    int64_t bound[CRASH_CHUNKS + 1];
    int order[CRASH_CHUNKS];
} crash_plan;

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static void make_plan(crash_plan *p, uint64_t seed)
{
    /* Distinct cut points: sorted random picks, deduplicated by spacing. */
    for (int i = 0; i <= CRASH_CHUNKS; i++)
        p->bound[i] = (int64_t)((double)i * CRASH_TASKS / CRASH_CHUNKS);
    for (int i = 1; i < CRASH_CHUNKS; i++) {
        int64_t room = p->bound[i + 1] - p->bound[i - 1] - 2;
        p->bound[i] = p->bound[i - 1] + 1 + (int64_t)(lcg(&seed) % (uint64_t)(room / 2 + 1));
    }
    for (int i = 0; i < CRASH_CHUNKS; i++)
        p->order[i] = i;
    /* Local swaps only: completion order stays near task order, as with
     * guided scheduling. */
    for (int i = CRASH_CHUNKS - 1; i > 0; i--) {
        int j = i - (int)(lcg(&seed) % 8);
        if (j < 0)
            j = 0;
        int tmp = p->order[i];
        p->order[i] = p->order[j];
        p->order[j] = tmp;
    }
}

/* Child: resumes (or starts) the log and appends every planned chunk not
 * yet restored, then waits to be killed. Never returns. */
static void crash_child(const char *path, const crash_plan *p, int resume, int ready_fd)
{
    mpmap_ckpt *c = NULL;
    if (mpmap__ckpt_open(path, FP, CRASH_TASKS, 8, resume, &c, NULL, 0) != MPMAP_OK)
        _exit(2);
    const mpmap_range *r;
    size_t nr = mpmap__ckpt_restored(c, &r);
    if (write(ready_fd, "x", 1) != 1)
        _exit(3);
    uint64_t *rec = malloc(sizeof(uint64_t) * CRASH_TASKS / 10);
    int32_t *st = malloc(sizeof(int32_t) * CRASH_TASKS / 10);
    if (rec == NULL || st == NULL)
        _exit(4);
    for (int k = 0; k < CRASH_CHUNKS; k++) {
        int64_t b = p->bound[p->order[k]], e = p->bound[p->order[k] + 1];
        int done = 0;
        for (size_t i = 0; i < nr; i++)
            done |= r[i].begin <= b && e <= r[i].end;
        if (done)
            continue;
        fill(b, e, rec, st);
        if (mpmap__ckpt_append(c, b, e, rec, st) != MPMAP_OK)
            _exit(5);
        if (mpmap__ckpt_sync_if_due(c, 0.005) != MPMAP_OK)
            _exit(6);
    }
    if (mpmap__ckpt_close(c) != MPMAP_OK)
        _exit(7);
    _exit(0);
}

/* Parent's check after a kill: everything restored reads back exactly, and
 * restored ranges are unions of whole planned chunks. */
static int64_t check_recovered(const char *path, const crash_plan *p, int64_t before)
{
    mpmap_ckpt *c = open_ok(path, CRASH_TASKS, 8, 1);
    if (mpmap__ckpt_discarded_bytes(c) > 0)
        print_message("torn tail of %lld bytes dropped\n", (long long)mpmap__ckpt_discarded_bytes(c));
    const mpmap_range *r;
    size_t nr = mpmap__ckpt_restored(c, &r);
    int64_t total = mpmap__ckpt_restored_tasks(c);
    assert_true(total >= before); /* a crash never loses synced-or-not complete entries */
    uint64_t *rec = malloc(sizeof(uint64_t) * 65536);
    int32_t *st = malloc(sizeof(int32_t) * 65536);
    assert_non_null(rec);
    assert_non_null(st);
    for (size_t i = 0; i < nr; i++) {
        int found_b = 0, found_e = 0;
        for (int k = 0; k <= CRASH_CHUNKS; k++) {
            found_b |= p->bound[k] == r[i].begin;
            found_e |= p->bound[k] == r[i].end;
        }
        assert_true(found_b && found_e);
        for (int64_t b = r[i].begin; b < r[i].end; b += 65536) {
            int64_t e = b + 65536 < r[i].end ? b + 65536 : r[i].end;
            assert_int_equal(mpmap__ckpt_read(c, b, e, rec, st), MPMAP_OK);
            for (int64_t t = b; t < e; t++) {
                if (rec[t - b] != record_of(t) || st[t - b] != status_of(t))
                    fail_msg("task %lld reads back wrong", (long long)t);
            }
        }
    }
    free(rec);
    free(st);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    return total;
}

static void test_sigkill_during_appends_keeps_every_complete_entry(void **state)
{
    fixture *f = *state;
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
    print_message("crash seed %llu\n", (unsigned long long)seed);
    crash_plan *plan = malloc(sizeof *plan);
    assert_non_null(plan);
    make_plan(plan, seed);
    uint64_t rng = seed ^ 0xABCDEFull;

    int64_t restored = 0;
    int rounds = 0;
    for (; rounds < 6 && restored < CRASH_TASKS; rounds++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            crash_child(f->path, plan, rounds > 0, fds[1]);
        }
        close(fds[1]);
        char byte;
        assert_int_equal(read(fds[0], &byte, 1), 1);
        close(fds[0]);
        /* Kill somewhere inside the stream of appends (the full pass takes
         * tens of milliseconds). The last round runs to completion. */
        if (rounds < 5) {
            struct timespec delay = {0, (long)(lcg(&rng) % 15000000u)};
            nanosleep(&delay, NULL);
            kill(pid, SIGKILL);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
                    (WIFEXITED(status) && WEXITSTATUS(status) == 0));
        restored = check_recovered(f->path, plan, restored);
        print_message("round %d: %lld tasks recovered\n", rounds, (long long)restored);
    }
    assert_int_equal(restored, CRASH_TASKS);
    free(plan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_matches_definition_and_chains),
        cmocka_unit_test_setup_teardown(test_resume_restores_out_of_order_appends_coalesced,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_second_interruption_keeps_both_runs, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_record_size_zero_keeps_ranges_and_statuses,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_overlapping_entry_is_ignored_whole, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_resume_refuses_another_job, setup_dir, teardown_dir),
        cmocka_unit_test(test_fingerprint_diff_names_the_first_difference),
        cmocka_unit_test_setup_teardown(test_resume_without_file_says_no_checkpoint, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_damaged_header_is_refused, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_empty_file_resumes_as_empty_log, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_invalid_arguments_are_rejected, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_failed_append_names_the_cause_and_keeps_the_log_clean,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_second_open_of_a_live_log_is_refused, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_remove_unlinks_and_close_keeps, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_torn_last_entry_is_dropped_and_log_continues,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_sigkill_during_appends_keeps_every_complete_entry,
                                        setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
