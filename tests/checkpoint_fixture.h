/* The fixture of the cmocka tests of the checkpoint log (test_checkpoint*.c):
 * a log path in a fresh scratch directory per test, records and statuses
 * derived from the task index (so any misplaced byte shows), and the helpers
 * that append them, read them back and check what a resume restored.
 * Include after cmocka.h, with _GNU_SOURCE defined (mkdtemp). */
#ifndef MPMAP_TESTS_CHECKPOINT_FIXTURE_H
#define MPMAP_TESTS_CHECKPOINT_FIXTURE_H

#include "scratch_dir.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "mpmap.h"

typedef struct fixture {
    scratch_dir scratch;
    char path[128];
} fixture;

static inline int setup_dir(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    if (scratch_make(&f->scratch, "mpmap_ckpt") != 0) {
        free(f);
        return -1;
    }
    scratch_path(&f->scratch, "run.ckpt", f->path, sizeof f->path);
    *state = f;
    return 0;
}

static inline int teardown_dir(void **state)
{
    fixture *f = *state;
    scratch_remove(&f->scratch);
    free(f);
    return 0;
}

/* The record of task t: a splitmix64 hash, so any misplaced byte shows. */
static inline uint64_t record_of(int64_t t)
{
    uint64_t z = (uint64_t)t + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A few tasks fail, with a code derived from the task. */
static inline int32_t status_of(int64_t t) { return t % 7 == 3 ? (int32_t)(t + 1) : 0; }

static inline void fill(int64_t begin, int64_t end, uint64_t *records, int32_t *status)
{
    for (int64_t t = begin; t < end; t++) {
        records[t - begin] = record_of(t);
        if (status != NULL)
            status[t - begin] = status_of(t);
    }
}

static inline void append_chunk(mpmap_ckpt *c, int64_t begin, int64_t end, int with_status)
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

static inline int64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (int64_t)st.st_size;
}

static inline unsigned char *slurp(const char *path, int64_t *size)
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

static inline void spit(const char *path, const unsigned char *buf, int64_t size)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, (size_t)size, fp), (size_t)size);
    assert_int_equal(fclose(fp), 0);
}

/* Reads [begin, end) back and compares with record_of/status_of; tasks in
 * `plain` ranges (appended with status NULL) must read status 0. */
static inline void expect_tasks(mpmap_ckpt *c, int64_t begin, int64_t end, int with_status)
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

static inline void expect_ranges(mpmap_ckpt *c, size_t n, const int64_t (*want)[2])
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

static inline mpmap_ckpt *open_ok(const char *path, int64_t ntasks, size_t rs, int resume)
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

#endif
