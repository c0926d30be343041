/* Tests of reading input matrices from HDF5 files ("FILE.h5:/DATASET"):
 * every bad input gets its one-line message, 2-D and 1-D datasets read back
 * exactly, and the spec splits at the last ":/". */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "mpmap_h5.h"
#include "h5_fixture.h"

#include <hdf5.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int setup(void **state) { return h5_fixture_setup(state, "test_h5_read"); }
static int teardown(void **state) { return h5_fixture_teardown(state); }

static void write_h5(const char *path, const char *name, hid_t type, int rank, const hsize_t *dims,
                     const void *data)
{
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(file >= 0);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t ds = H5Dcreate2(file, name, type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(ds >= 0);
    if (data)
        assert_true(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(ds);
    H5Sclose(space);
    H5Pclose(lcpl);
    H5Fclose(file);
}

static void assert_read_fails(const char *spec, int code, const char *expected)
{
    char err[MPMAP_H5_ERROR_MAX] = "";
    double *data = (double *)&data;
    int64_t rows = -1, cols = -1;
    assert_int_equal(mpmap_h5_read_matrix(spec, &data, &rows, &cols, err, sizeof err), code);
    assert_null(data);
    assert_string_equal(err, expected);
}

static void test_read_matrix_reports_each_bad_input(void **state)
{
    fixture *fx = *state;
    char path[256], spec[300], want[700];

    path_in(fx, "missing.h5", path, sizeof path);
    snprintf(spec, sizeof spec, "%s:/x", path);
    snprintf(want, sizeof want, "cannot open input file '%s': No such file or directory", path);
    assert_read_fails(spec, MPMAP_EIO, want);

    path_in(fx, "text.h5", path, sizeof path);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("x,y\n1,2\n", fp);
    fclose(fp);
    snprintf(spec, sizeof spec, "%s:/x", path);
    snprintf(want, sizeof want, "input file '%s' is not an HDF5 file", path);
    assert_read_fails(spec, MPMAP_EIO, want);

    path_in(fx, "ints.h5", path, sizeof path);
    int32_t ints[4] = { 1, 2, 3, 4 };
    hsize_t d1[1] = { 4 };
    write_h5(path, "/v", H5T_NATIVE_INT32, 1, d1, ints);
    snprintf(spec, sizeof spec, "%s:/v", path);
    snprintf(want, sizeof want,
             "dataset '/v' in '%s' has integer elements; expected floating point", path);
    assert_read_fails(spec, MPMAP_EINVAL, want);
    snprintf(spec, sizeof spec, "%s:/nothing/here", path);
    snprintf(want, sizeof want, "input file '%s' has no dataset '/nothing/here'", path);
    assert_read_fails(spec, MPMAP_EINVAL, want);

    path_in(fx, "cube.h5", path, sizeof path);
    double cube[8] = { 0 };
    hsize_t d3[3] = { 2, 2, 2 };
    write_h5(path, "/g/cube", H5T_NATIVE_DOUBLE, 3, d3, cube);
    snprintf(spec, sizeof spec, "%s:/g/cube", path);
    snprintf(want, sizeof want,
             "dataset '/g/cube' in '%s' is 3-D; expected 2-D (or 1-D, read as one column)", path);
    assert_read_fails(spec, MPMAP_EINVAL, want);
    snprintf(spec, sizeof spec, "%s:/g", path);
    snprintf(want, sizeof want, "'/g' in input file '%s' is not a dataset", path);
    assert_read_fails(spec, MPMAP_EINVAL, want);

    path_in(fx, "nan.h5", path, sizeof path);
    double m[2 * 3] = { 1, 2, 3, 4, 5, 6 };
    m[1 * 3 + 2] = NAN;
    hsize_t d2[2] = { 2, 3 };
    write_h5(path, "/m", H5T_NATIVE_DOUBLE, 2, d2, m);
    snprintf(spec, sizeof spec, "%s:/m", path);
    snprintf(want, sizeof want,
             "dataset '/m' in '%s' contains a non-finite value at row 1, column 2", path);
    assert_read_fails(spec, MPMAP_EINVAL, want);

    path_in(fx, "inf.h5", path, sizeof path);
    m[1 * 3 + 2] = 6;
    m[0 * 3 + 1] = -INFINITY;
    write_h5(path, "/m", H5T_NATIVE_DOUBLE, 2, d2, m);
    snprintf(spec, sizeof spec, "%s:/m", path);
    snprintf(want, sizeof want,
             "dataset '/m' in '%s' contains a non-finite value at row 0, column 1", path);
    assert_read_fails(spec, MPMAP_EINVAL, want);

    path_in(fx, "empty.h5", path, sizeof path);
    hsize_t d0[2] = { 0, 3 };
    write_h5(path, "/e", H5T_NATIVE_DOUBLE, 2, d0, NULL);
    snprintf(spec, sizeof spec, "%s:/e", path);
    snprintf(want, sizeof want, "dataset '/e' in '%s' is empty (0 x 3)", path);
    assert_read_fails(spec, MPMAP_EINVAL, want);

    snprintf(want, sizeof want, "input '%s' is not FILE.h5:/DATASET", path);
    assert_read_fails(path, MPMAP_EINVAL, want);
}

static void test_read_matrix_reads_2d_and_1d_as_column(void **state)
{
    fixture *fx = *state;
    char path[256], spec[300], err[MPMAP_H5_ERROR_MAX];
    /* ':' in the file name: the spec splits at the last ":/". */
    path_in(fx, "in:put.h5", path, sizeof path);
    float m[3 * 2];
    for (int i = 0; i < 6; i++)
        m[i] = (float)i * 0.5f - 1.0f;
    hsize_t d2[2] = { 3, 2 };
    write_h5(path, "/a/m", H5T_NATIVE_FLOAT, 2, d2, m);
    snprintf(spec, sizeof spec, "%s:/a/m", path);
    double *data = NULL;
    int64_t rows = 0, cols = 0;
    assert_int_equal(mpmap_h5_read_matrix(spec, &data, &rows, &cols, err, sizeof err), 0);
    assert_int_equal(rows, 3);
    assert_int_equal(cols, 2);
    for (int i = 0; i < 6; i++)
        assert_true(data[i] == (double)i * 0.5 - 1.0);
    free(data);

    path_in(fx, "vec.h5", path, sizeof path);
    double v[4] = { 1.5, -2.5, 3.5, 1e300 };
    hsize_t d1[1] = { 4 };
    write_h5(path, "/v", H5T_NATIVE_DOUBLE, 1, d1, v);
    snprintf(spec, sizeof spec, "%s:/v", path);
    assert_int_equal(mpmap_h5_read_matrix(spec, &data, &rows, &cols, err, sizeof err), 0);
    assert_int_equal(rows, 4);
    assert_int_equal(cols, 1);
    assert_memory_equal(data, v, sizeof v);
    free(data);

    char file[64], dset[64];
    assert_int_equal(mpmap_h5_split_spec("c:/dir/f.h5:/g/d", file, sizeof file, dset, sizeof dset,
                                         err, sizeof err),
                     0);
    assert_string_equal(file, "c:/dir/f.h5");
    assert_string_equal(dset, "/g/d");
    assert_int_equal(
        mpmap_h5_split_spec(":/d", file, sizeof file, dset, sizeof dset, err, sizeof err),
        MPMAP_EINVAL);
    assert_int_equal(
        mpmap_h5_split_spec("f.h5:d", file, sizeof file, dset, sizeof dset, err, sizeof err),
        MPMAP_EINVAL);
    assert_string_equal(err, "input 'f.h5:d' is not FILE.h5:/DATASET");
    assert_int_equal(mpmap_h5_split_spec("f.h5:/d", file, 4, dset, sizeof dset, err, sizeof err),
                     MPMAP_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_matrix_reports_each_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_matrix_reads_2d_and_1d_as_column, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
