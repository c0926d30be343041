/* Tests of the HDF5 output file's life: atomic commit, abort, a full disk,
 * refusing to overwrite, missing folders, HDF5's error printing left as it
 * was. What a file contains is tested in test_h5_write.c, reading input
 * matrices in test_h5_read.c. */
#define _GNU_SOURCE /* mount, umount2 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "mpmap_h5.h"
#include "h5_fixture.h"

#include <hdf5_hl.h>

#include <dirent.h>
#include <errno.h>
#include <sys/mount.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int setup(void **state) { return h5_fixture_setup(state, "test_h5out"); }

static int teardown(void **state)
{
    fixture *fx = *state;
    char small[128]; /* the full-disk tests' tmpfs, if one failed before unmounting it */
    snprintf(small, sizeof small, "%s/small", fx->dir);
    (void)umount2(small, MNT_DETACH);
    (void)rmdir(small);
    return h5_fixture_teardown(state);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void test_commit_renames_partial_into_place(void **state)
{
    fixture *fx = *state;
    char out[256], partial[300], err[MPMAP_H5_ERROR_MAX];
    path_in(fx, "atomic.h5", out, sizeof out);
    snprintf(partial, sizeof partial, "%s.partial", out);
    mpmap_h5 *f = NULL;
    assert_int_equal(mpmap_h5_create(out, 0, &f, err, sizeof err), 0);
    assert_string_equal(mpmap_h5_partial_path(f), partial);
    assert_string_equal(mpmap_h5_final_path(f), out);
    assert_int_equal(mpmap_h5_attr_string(f, NULL, "title", "atomic"), 0);
    assert_false(exists(out));
    assert_true(exists(partial));
    assert_int_equal(mpmap_h5_commit(f, err, sizeof err), 0);
    assert_true(exists(out));
    assert_false(exists(partial));
    assert_true(H5Fis_hdf5(out) > 0);
}

static void test_abort_removes_partial(void **state)
{
    fixture *fx = *state;
    char out[256], err[MPMAP_H5_ERROR_MAX];
    path_in(fx, "aborted.h5", out, sizeof out);
    mpmap_h5 *f = NULL;
    assert_int_equal(mpmap_h5_create(out, 0, &f, err, sizeof err), 0);
    char partial[300];
    snprintf(partial, sizeof partial, "%s", mpmap_h5_partial_path(f));
    int64_t dims[1] = { 10 };
    const char *names[1] = { "i" };
    mpmap_h5_dataset *d = NULL;
    assert_int_equal(mpmap_h5_dataset_create(f, "x", H5T_NATIVE_DOUBLE, 1, dims, names, &d), 0);
    mpmap_trace_entry e = { 0, 1, 0, 0.0, 1.0 };
    assert_int_equal(mpmap_h5_trace_append(f, &e), 0);
    assert_true(exists(partial));
    mpmap_h5_abort(f); /* closes the open dataset and trace too */
    assert_false(exists(partial));
    assert_false(exists(out));
}

/*
 * A disk that fills up: the commit fails with ENOSPC and a message without
 * HDF5 internals, the file is dropped, and no HDF5 id is left behind (HDF5
 * 1.10 used to keep a half-closed file that crashed its own shutdown).
 * Needs root to mount a 256 KiB tmpfs; skipped otherwise.
 */
static void full_disk_case(fixture *fx, int64_t rows, int write_fails_first)
{
    char where[128], out[256], err[MPMAP_H5_ERROR_MAX];
    snprintf(where, sizeof where, "%s/small", fx->dir);
    assert_int_equal(mkdir(where, 0700), 0);
    if (mount("tmpfs", where, "tmpfs", 0, "size=256k") != 0) {
        rmdir(where);
        skip();
    }
    snprintf(out, sizeof out, "%s/o.h5", where);
    mpmap_h5 *f = NULL;
    assert_int_equal(mpmap_h5_create(out, 0, &f, err, sizeof err), 0);
    int64_t dims[2] = { rows, 1024 };
    const char *names[2] = { "row", "col" };
    mpmap_h5_dataset *d = NULL;
    assert_int_equal(mpmap_h5_dataset_create(f, "x", H5T_NATIVE_DOUBLE, 2, dims, names, &d), 0);
    double *row = calloc(1024, sizeof *row);
    assert_non_null(row);
    int failed = 0;
    for (int64_t r = 0; r < rows; r++) {
        for (int c = 0; c < 1024; c++)
            row[c] = (double)(r * 1024 + c);
        failed |= mpmap_h5_dataset_write_rows(d, r, 1, row) != 0;
    }
    free(row);
    if (write_fails_first) {
        /* The write met the full disk during the run: the cause is kept. */
        if (failed)
            assert_int_equal(mpmap_h5_sys_errno(f), ENOSPC);
    } else {
        assert_int_equal(failed, 0);
    }
    errno = 0;
    int rc = mpmap_h5_commit(f, err, sizeof err);
    int saved = errno;
    assert_int_not_equal(rc, 0);
    assert_int_equal(saved, ENOSPC);
    assert_non_null(strstr(err, "No space left on device"));
    assert_null(strstr(err, "errno"));
    assert_null(strstr(err, "slist"));
    assert_false(exists(out));
    char partial[300];
    snprintf(partial, sizeof partial, "%s.partial", out);
    assert_false(exists(partial));
    assert_int_equal(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
    assert_int_equal(umount2(where, MNT_DETACH), 0);
    assert_int_equal(rmdir(where), 0);
}

/* 1.6 MB, chunked: every chunk stays in HDF5's chunk cache until the
 * commit, whose flush meets the full disk. */
static void test_full_disk_at_commit_fails_cleanly(void **state) { full_disk_case(*state, 200, 0); }

/* 800 KB, contiguous: each row goes to disk as it is written, so the writes
 * meet the full disk while the run goes on. */
static void test_full_disk_during_writes_fails_cleanly(void **state)
{
    full_disk_case(*state, 100, 1);
}

static void test_existing_output_needs_force_and_stays_untouched(void **state)
{
    fixture *fx = *state;
    char out[256], err[MPMAP_H5_ERROR_MAX], expected[512];
    path_in(fx, "old.h5", out, sizeof out);
    const char old[] = "precious old results\n";
    FILE *fp = fopen(out, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(old, 1, sizeof old - 1, fp), sizeof old - 1);
    assert_int_equal(fclose(fp), 0);
    snprintf(expected, sizeof expected,
             "output '%s' exists (use --force to overwrite or --resume to continue)", out);

    assert_int_equal(mpmap_h5_check_output_path(out, 0, err, sizeof err), MPMAP_EIO);
    assert_string_equal(err, expected);
    mpmap_h5 *f = (mpmap_h5 *)&f; /* must be reset to NULL */
    assert_int_equal(mpmap_h5_create(out, 0, &f, err, sizeof err), MPMAP_EIO);
    assert_null(f);
    assert_string_equal(err, expected);

    char buf[64] = "";
    fp = fopen(out, "rb");
    assert_non_null(fp);
    size_t got = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    assert_int_equal(got, sizeof old - 1);
    assert_memory_equal(buf, old, sizeof old - 1);
    char partial[300];
    snprintf(partial, sizeof partial, "%s.partial", out);
    assert_false(exists(partial));

    /* With force the old file is replaced, only at commit. */
    assert_int_equal(mpmap_h5_check_output_path(out, 1, err, sizeof err), 0);
    assert_int_equal(mpmap_h5_create(out, 1, &f, err, sizeof err), 0);
    assert_true(H5Fis_hdf5(out) == 0);
    assert_int_equal(mpmap_h5_commit(f, err, sizeof err), 0);
    assert_true(H5Fis_hdf5(out) > 0);
}

static void test_missing_folder_is_reported_without_creating_anything(void **state)
{
    fixture *fx = *state;
    char out[256], err[MPMAP_H5_ERROR_MAX], expected[512];
    path_in(fx, "no/such/folder/out.h5", out, sizeof out);
    snprintf(expected, sizeof expected, "cannot create output '%s': No such file or directory",
             out);
    assert_int_equal(mpmap_h5_check_output_path(out, 0, err, sizeof err), MPMAP_EIO);
    assert_string_equal(err, expected);
    assert_int_equal(mpmap_h5_check_output_path(out, 1, err, sizeof err), MPMAP_EIO);
    assert_string_equal(err, expected);
    mpmap_h5 *f = NULL;
    assert_int_equal(mpmap_h5_create(out, 0, &f, err, sizeof err), MPMAP_EIO);
    assert_null(f);
    assert_string_equal(err, expected);
    char nosuch[256];
    path_in(fx, "no", nosuch, sizeof nosuch);
    assert_false(exists(nosuch));

    /* An output that is a folder is refused too. */
    snprintf(expected, sizeof expected, "cannot create output '%s': Is a directory", fx->dir);
    assert_int_equal(mpmap_h5_check_output_path(fx->dir, 1, err, sizeof err), MPMAP_EIO);
    assert_string_equal(err, expected);
    assert_int_equal(mpmap_h5_check_output_path("", 0, err, sizeof err), MPMAP_EINVAL);
}

static void test_hdf5_error_printing_is_restored(void **state)
{
    fixture *fx = *state;
    H5E_auto2_t before_func = NULL, after_func = NULL;
    void *before_data = NULL, *after_data = NULL;
    assert_true(H5Eget_auto2(H5E_DEFAULT, &before_func, &before_data) >= 0);
    char spec[300], err[MPMAP_H5_ERROR_MAX];
    snprintf(spec, sizeof spec, "%s/none.h5:/x", fx->dir);
    /* clang-format off */
    assert_int_equal(mpmap_h5_read_matrix(spec, &(double *){NULL}, &(int64_t){0}, &(int64_t){0},
                                          err, sizeof err),
                     MPMAP_EIO);
    /* clang-format on */
    assert_true(H5Eget_auto2(H5E_DEFAULT, &after_func, &after_data) >= 0);
    assert_ptr_equal(before_func, after_func);
    assert_ptr_equal(before_data, after_data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_renames_partial_into_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_removes_partial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_disk_at_commit_fails_cleanly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_disk_during_writes_fails_cleanly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_existing_output_needs_force_and_stays_untouched, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_missing_folder_is_reported_without_creating_anything,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_hdf5_error_printing_is_restored, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
