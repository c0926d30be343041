/* Tests of what the HDF5 output writes, read back through the plain HDF5
 * API: values, dimension scales and CF attributes, streamed row blocks, the
 * dimension rules, the /trace group and provenance attributes. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "mpmap_h5.h"
#include "h5_fixture.h"

#include <hdf5_hl.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int setup(void **state) { return h5_fixture_setup(state, "test_h5_write"); }
static int teardown(void **state) { return h5_fixture_teardown(state); }

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void assert_string_attr(hid_t obj, const char *name, const char *expected)
{
    hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
    assert_true(attr >= 0);
    hid_t type = H5Aget_type(attr);
    assert_true(type >= 0);
    assert_int_equal(H5Tget_class(type), H5T_STRING);
    assert_true(H5Tis_variable_str(type) > 0);
    char *value = NULL;
    assert_true(H5Aread(attr, type, &value) >= 0);
    assert_string_equal(value, expected);
    hid_t space = H5Aget_space(attr);
    assert_true(H5Dvlen_reclaim(type, space, H5P_DEFAULT, &value) >= 0);
    H5Sclose(space);
    H5Tclose(type);
    H5Aclose(attr);
}

static int64_t int64_attr(hid_t obj, const char *name)
{
    int64_t v = -1;
    hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
    assert_true(attr >= 0);
    assert_true(H5Aread(attr, H5T_NATIVE_INT64, &v) >= 0);
    H5Aclose(attr);
    return v;
}

static double double_attr(hid_t obj, const char *name)
{
    double v = NAN;
    hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
    assert_true(attr >= 0);
    assert_true(H5Aread(attr, H5T_NATIVE_DOUBLE, &v) >= 0);
    H5Aclose(attr);
    return v;
}

/* Dataset dims as read from the file. */
static int read_dims(hid_t ds, hsize_t *dims)
{
    hid_t space = H5Dget_space(ds);
    int n = H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    return n;
}

/* Asserts that axis `axis` of ds has the scale at scale_path attached, and
 * that the scale is named `name`. */
static void assert_scale(hid_t file, hid_t ds, unsigned axis, const char *scale_path,
                         const char *name)
{
    hid_t scale = H5Dopen2(file, scale_path, H5P_DEFAULT);
    assert_true(scale >= 0);
    assert_true(H5DSis_scale(scale) > 0);
    assert_true(H5DSis_attached(ds, scale, axis) > 0);
    assert_int_equal(H5DSget_num_scales(ds, axis), 1);
    char got[64] = "";
    assert_true(H5DSget_scale_name(scale, got, sizeof got) > 0);
    assert_string_equal(got, name);
    H5Dclose(scale);
}

static double density_value(int64_t i, int64_t j)
{
    return (double)i * 10.0 + (double)j * 0.5 - 3.25;
}

static void test_roundtrip_keeps_values_scales_and_units(void **state)
{
    fixture *fx = *state;
    char out[256], err[MPMAP_H5_ERROR_MAX];
    path_in(fx, "out.h5", out, sizeof out);
    mpmap_h5 *f = NULL;
    assert_int_equal(mpmap_h5_create(out, 0, &f, err, sizeof err), 0);

    const int64_t n = 5, m = 3;
    double widths[5] = { 0.1, 0.2, 0.4, 0.8, 1.6 };
    assert_int_equal(
        mpmap_h5_write_coordinate(f, "width", H5T_NATIVE_DOUBLE, n, widths, "m", "kernel width"),
        0);
    double values[5 * 3];
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m; j++)
            values[i * m + j] = density_value(i, j);
    int64_t dims[2] = { n, m };
    const char *names[2] = { "width", "sample" };
    mpmap_h5_dataset *d = NULL;
    assert_int_equal(mpmap_h5_dataset_create(f, "density", H5T_NATIVE_DOUBLE, 2, dims, names, &d),
                     0);
    assert_int_equal(mpmap_h5_dataset_write_all(d, values), 0);
    assert_int_equal(mpmap_h5_dataset_close(d), 0);
    assert_int_equal(mpmap_h5_attr_string(f, "density", "units", "1/m"), 0);
    assert_int_equal(mpmap_h5_attr_string(f, "/density", "long_name", "estimated density"), 0);
    assert_int_equal(mpmap_h5_attr_double(f, NULL, "bandwidth", 0.25), 0);
    assert_int_equal(mpmap_h5_attr_int64(f, "/", "seed", -42), 0);
    double bounds[3] = { -1.0, 0.0, 2.5 };
    assert_int_equal(mpmap_h5_attr_double_array(f, "/width", "bounds", 3, bounds), 0);
    /* Replacing an attribute keeps only the new value. */
    assert_int_equal(mpmap_h5_attr_int64(f, "/", "seed", 7), 0);

    int32_t counts[5 * 3];
    for (int i = 0; i < 15; i++)
        counts[i] = -i * 1000;
    mpmap_h5_dataset *c = NULL;
    assert_int_equal(mpmap_h5_dataset_create(f, "counts", H5T_NATIVE_INT32, 2, dims, names, &c), 0);
    assert_int_equal(mpmap_h5_dataset_write_all(c, counts), 0);
    /* Left open on purpose: commit closes it. */
    assert_int_equal(mpmap_h5_commit(f, err, sizeof err), 0);

    hid_t file = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    hid_t ds = H5Dopen2(file, "/density", H5P_DEFAULT);
    assert_true(ds >= 0);
    hsize_t got_dims[2];
    assert_int_equal(read_dims(ds, got_dims), 2);
    assert_int_equal(got_dims[0], n);
    assert_int_equal(got_dims[1], m);
    double back[15];
    assert_true(H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) >= 0);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m; j++)
            assert_true(back[i * m + j] == density_value(i, j));
    assert_scale(file, ds, 0, "/width", "width");
    assert_scale(file, ds, 1, "/sample", "sample");
    assert_string_attr(ds, "units", "1/m");
    assert_string_attr(ds, "long_name", "estimated density");
    H5Dclose(ds);

    hid_t w = H5Dopen2(file, "/width", H5P_DEFAULT);
    double wback[5];
    assert_true(H5Dread(w, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, wback) >= 0);
    for (int i = 0; i < 5; i++)
        assert_true(wback[i] == widths[i]);
    assert_string_attr(w, "units", "m");
    assert_string_attr(w, "long_name", "kernel width");
    double bback[3];
    hid_t battr = H5Aopen(w, "bounds", H5P_DEFAULT);
    assert_true(H5Aread(battr, H5T_NATIVE_DOUBLE, bback) >= 0);
    H5Aclose(battr);
    for (int i = 0; i < 3; i++)
        assert_true(bback[i] == bounds[i]);
    H5Dclose(w);

    hid_t s = H5Dopen2(file, "/sample", H5P_DEFAULT);
    hid_t stype = H5Dget_type(s);
    assert_int_equal(H5Tget_class(stype), H5T_INTEGER);
    assert_int_equal(H5Tget_size(stype), 8);
    H5Tclose(stype);
    int64_t sback[3];
    assert_true(H5Dread(s, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, sback) >= 0);
    for (int64_t j = 0; j < m; j++)
        assert_int_equal(sback[j], j);
    H5Dclose(s);

    hid_t cds = H5Dopen2(file, "/counts", H5P_DEFAULT);
    int32_t cback[15];
    assert_true(H5Dread(cds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, cback) >= 0);
    for (int i = 0; i < 15; i++)
        assert_int_equal(cback[i], -i * 1000);
    assert_scale(file, cds, 0, "/width", "width");
    assert_scale(file, cds, 1, "/sample", "sample");
    H5Dclose(cds);

    assert_true(double_attr(file, "bandwidth") == 0.25);
    assert_int_equal(int64_attr(file, "seed"), 7);
    H5Fclose(file);
}

/* A dataset large enough to be chunked, written in uneven blocks out of
 * order, reads back the same as one written in a single call. */
static void test_streamed_row_blocks_equal_single_write(void **state)
{
    fixture *fx = *state;
    char out[256], err[MPMAP_H5_ERROR_MAX];
    path_in(fx, "stream.h5", out, sizeof out);
    const int64_t rows = 3001, cols = 97; /* 2.3 MB: chunked */
    int64_t *all = malloc((size_t)(rows * cols) * sizeof *all);
    assert_non_null(all);
    for (int64_t i = 0; i < rows * cols; i++)
        all[i] = i * 7919 - 123456;

    mpmap_h5 *f = NULL;
    assert_int_equal(mpmap_h5_create(out, 0, &f, err, sizeof err), 0);
    int64_t dims[2] = { rows, cols };
    const char *names[2] = { "row", "col" };
    mpmap_h5_dataset *one = NULL, *blocks = NULL;
    assert_int_equal(mpmap_h5_dataset_create(f, "one", H5T_NATIVE_INT64, 2, dims, names, &one), 0);
    assert_int_equal(mpmap_h5_dataset_write_all(one, all), 0);
    assert_int_equal(mpmap_h5_dataset_close(one), 0);
    assert_int_equal(
        mpmap_h5_dataset_create(f, "blocks", H5T_NATIVE_INT64, 2, dims, names, &blocks), 0);
    const int64_t cuts[] = { 1000, 1, 2000, 7, 0 }; /* block starts, out of order */
    const int64_t ends[] = { 2000, 7, 3001, 1000, 1 };
    for (size_t b = 0; b < sizeof cuts / sizeof cuts[0]; b++)
        assert_int_equal(
            mpmap_h5_dataset_write_rows(blocks, cuts[b], ends[b] - cuts[b], all + cuts[b] * cols),
            0);
    /* Rows past the end are refused. */
    assert_int_equal(mpmap_h5_dataset_write_rows(blocks, rows - 1, 2, all), MPMAP_EINVAL);
    assert_int_equal(mpmap_h5_dataset_close(blocks), 0);
    /* That refusal is sticky: the file is not committed. */
    assert_int_equal(mpmap_h5_commit(f, err, sizeof err), MPMAP_EINVAL);
    assert_non_null(strstr(err, "outside 0..3001"));
    assert_false(exists(out));

    /* Again, without the bad call. */
    assert_int_equal(mpmap_h5_create(out, 0, &f, err, sizeof err), 0);
    assert_int_equal(mpmap_h5_dataset_create(f, "one", H5T_NATIVE_INT64, 2, dims, names, &one), 0);
    assert_int_equal(mpmap_h5_dataset_write_all(one, all), 0);
    assert_int_equal(
        mpmap_h5_dataset_create(f, "blocks", H5T_NATIVE_INT64, 2, dims, names, &blocks), 0);
    for (size_t b = 0; b < sizeof cuts / sizeof cuts[0]; b++)
        assert_int_equal(
            mpmap_h5_dataset_write_rows(blocks, cuts[b], ends[b] - cuts[b], all + cuts[b] * cols),
            0);
    assert_int_equal(mpmap_h5_commit(f, err, sizeof err), 0);

    hid_t file = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    int64_t *a = malloc((size_t)(rows * cols) * sizeof *a);
    int64_t *b = malloc((size_t)(rows * cols) * sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    hid_t d1 = H5Dopen2(file, "/one", H5P_DEFAULT);
    hid_t d2 = H5Dopen2(file, "/blocks", H5P_DEFAULT);
    assert_true(H5Dread(d1, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, a) >= 0);
    assert_true(H5Dread(d2, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, b) >= 0);
    assert_memory_equal(a, b, (size_t)(rows * cols) * sizeof *a);
    assert_memory_equal(a, all, (size_t)(rows * cols) * sizeof *a);
    hid_t dcpl = H5Dget_create_plist(d2);
    assert_int_equal(H5Pget_layout(dcpl), H5D_CHUNKED);
    hsize_t chunk[2];
    assert_int_equal(H5Pget_chunk(dcpl, 2, chunk), 2);
    assert_int_equal(chunk[1], cols); /* whole rows */
    assert_true(chunk[0] * chunk[1] * 8 <= (1u << 20));
    H5Pclose(dcpl);
    assert_scale(file, d2, 0, "/row", "row");
    assert_scale(file, d2, 1, "/col", "col");
    H5Dclose(d2);
    H5Dclose(d1);
    H5Fclose(file);
    free(a);
    free(b);
    free(all);
}

static mpmap_trace_entry trace_row(int64_t i)
{
    mpmap_trace_entry e;
    e.begin = i * 3;
    e.end = i * 3 + 3;
    e.rank = (int32_t)(i % 7);
    e.start = (double)i * 0.001;
    e.finish = (double)i * 0.001 + 0.0005;
    return e;
}

static void test_trace_of_10000_rows_reads_back_exactly(void **state)
{
    fixture *fx = *state;
    char out[256], err[MPMAP_H5_ERROR_MAX];
    path_in(fx, "trace.h5", out, sizeof out);
    const int64_t n = 10000;
    mpmap_h5 *f = NULL;
    assert_int_equal(mpmap_h5_create(out, 0, &f, err, sizeof err), 0);
    for (int64_t i = 0; i < n; i++) {
        mpmap_trace_entry e = trace_row(i);
        assert_int_equal(mpmap_h5_trace_append(f, &e), 0);
    }
    assert_int_equal(mpmap_h5_commit(f, err, sizeof err), 0);

    hid_t file = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    int64_t *begin = malloc((size_t)n * sizeof *begin), *end = malloc((size_t)n * sizeof *end);
    int64_t *chunk = malloc((size_t)n * sizeof *chunk);
    int32_t *rank = malloc((size_t)n * sizeof *rank);
    double *start = malloc((size_t)n * sizeof *start), *finish = malloc((size_t)n * sizeof *finish);
    struct {
        const char *path;
        hid_t type;
        void *buf;
    } cols[] = {
        { "/trace/chunk", H5T_NATIVE_INT64, chunk },
        { "/trace/begin", H5T_NATIVE_INT64, begin },
        { "/trace/end", H5T_NATIVE_INT64, end },
        { "/trace/rank", H5T_NATIVE_INT32, rank },
        { "/trace/start", H5T_NATIVE_DOUBLE, start },
        { "/trace/finish", H5T_NATIVE_DOUBLE, finish },
    };
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
        assert_non_null(cols[c].buf);
        hid_t ds = H5Dopen2(file, cols[c].path, H5P_DEFAULT);
        assert_true(ds >= 0);
        hsize_t dims[1], maxdims[1];
        hid_t space = H5Dget_space(ds);
        assert_int_equal(H5Sget_simple_extent_dims(space, dims, maxdims), 1);
        H5Sclose(space);
        assert_int_equal(dims[0], n);
        assert_true(maxdims[0] == H5S_UNLIMITED);
        assert_true(H5Dread(ds, cols[c].type, H5S_ALL, H5S_ALL, H5P_DEFAULT, cols[c].buf) >= 0);
        if (c > 0)
            assert_scale(file, ds, 0, "/trace/chunk", "chunk");
        if (strstr(cols[c].path, "start") || strstr(cols[c].path, "finish"))
            assert_string_attr(ds, "units", "s");
        H5Dclose(ds);
    }
    for (int64_t i = 0; i < n; i++) {
        mpmap_trace_entry e = trace_row(i);
        assert_int_equal(chunk[i], i);
        assert_int_equal(begin[i], e.begin);
        assert_int_equal(end[i], e.end);
        assert_int_equal(rank[i], e.rank);
        assert_true(start[i] == e.start);
        assert_true(finish[i] == e.finish);
    }
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
        free(cols[c].buf);
    H5Fclose(file);
}

static void test_provenance_attributes_are_written(void **state)
{
    fixture *fx = *state;
    char out[256], err[MPMAP_H5_ERROR_MAX];
    path_in(fx, "prov.h5", out, sizeof out);
    mpmap_h5 *f = NULL;
    assert_int_equal(mpmap_h5_create(out, 0, &f, err, sizeof err), 0);
    char *argv[] = { "kde", "--out", "my file.h5", "it's", "", "--bw=0.5", NULL };
    const char *keys[] = { "kde_kernel" }, *values[] = { "gaussian" };
    mpmap_h5_provenance p = {
        .app = "kde",
        .argc = 6,
        .argv = argv,
        .ranks = 4,
        .schedule = "guided",
        .chunk = 16,
        .wall_time = 12.5,
        .start_time = 1700000000.0,
        .nextra = 1,
        .extra_keys = keys,
        .extra_values = values,
    };
    assert_int_equal(mpmap_h5_write_provenance(f, &p), 0);
    assert_int_equal(mpmap_h5_commit(f, err, sizeof err), 0);

    const char *cmd = "kde --out 'my file.h5' 'it'\\''s' '' --bw=0.5";
    char buf[128];
    assert_int_equal(mpmap_h5_join_command_line(6, argv, buf, sizeof buf), strlen(cmd));
    assert_string_equal(buf, cmd);
    char tiny[4];
    assert_int_equal(mpmap_h5_join_command_line(6, argv, tiny, sizeof tiny), strlen(cmd));
    assert_string_equal(tiny, "kde");

    char host[256] = "";
    assert_int_equal(gethostname(host, sizeof host), 0);
    unsigned maj, min, rel;
    assert_true(H5get_libversion(&maj, &min, &rel) >= 0);
    char hdf5[32];
    snprintf(hdf5, sizeof hdf5, "%u.%u.%u", maj, min, rel);

    hid_t file = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    assert_string_attr(file, "mpmap_app", "kde");
    assert_string_attr(file, "mpmap_app_version", MPMAP_VERSION_STRING);
    assert_string_attr(file, "mpmap_version", MPMAP_VERSION_STRING);
    assert_string_attr(file, "mpmap_command_line", cmd);
    assert_int_equal(int64_attr(file, "mpmap_ranks"), 4);
    assert_string_attr(file, "mpmap_schedule", "guided");
    assert_int_equal(int64_attr(file, "mpmap_chunk"), 16);
    assert_true(double_attr(file, "mpmap_wall_time") == 12.5);
    /* 1700000000 s after the epoch is 2023-11-14 22:13:20 UTC. */
    assert_string_attr(file, "mpmap_start_time", "2023-11-14T22:13:20Z");
    assert_string_attr(file, "mpmap_host", host);
    assert_string_attr(file, "mpmap_hdf5_version", hdf5);
    char history[256];
    snprintf(history, sizeof history, "2023-11-14T22:13:20Z %s", cmd);
    assert_string_attr(file, "history", history);
    assert_string_attr(file, "kde_kernel", "gaussian");
    H5Fclose(file);
}

static void test_dimension_rules_are_enforced(void **state)
{
    fixture *fx = *state;
    char out[256], err[MPMAP_H5_ERROR_MAX];
    path_in(fx, "dims.h5", out, sizeof out);
    mpmap_h5 *f = NULL;
    int64_t dims[2] = { 4, 4 };
    mpmap_h5_dataset *d = NULL;

    /* A relative dimension lives in the dataset's group. */
    assert_int_equal(mpmap_h5_create(out, 0, &f, err, sizeof err), 0);
    const char *ok[2] = { "/g/h/point", "slot" };
    assert_int_equal(mpmap_h5_dataset_create(f, "/g/h/x", H5T_NATIVE_DOUBLE, 2, dims, ok, &d), 0);
    assert_int_equal(mpmap_h5_dataset_close(d), 0);
    assert_int_equal(mpmap_h5_commit(f, err, sizeof err), 0);
    hid_t file = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(file, "/g/h/x", H5P_DEFAULT);
    assert_scale(file, ds, 0, "/g/h/point", "point");
    assert_scale(file, ds, 1, "/g/h/slot", "slot");
    H5Dclose(ds);
    H5Fclose(file);

    /* Each of these is refused, and a refused call keeps the file from
     * being committed. */
    const char *twice[2] = { "point", "point" };
    const char *parent[2] = { "/point", "slot" };
    const char *rooted[2] = { "/point", "/slot" };
    const char *self[1] = { "y" };
    double widths[3] = { 1, 2, 3 };
    for (int c = 0; c < 4; c++) {
        assert_int_equal(mpmap_h5_create(out, 1, &f, err, sizeof err), 0);
        int rc;
        const char *want;
        if (c == 0) {
            rc = mpmap_h5_dataset_create(f, "x", H5T_NATIVE_DOUBLE, 2, dims, twice, &d);
            want = "uses dimension '/point' twice";
        } else if (c == 1) {
            rc = mpmap_h5_dataset_create(f, "/g/x", H5T_NATIVE_DOUBLE, 2, dims, parent, &d);
            want = "dimension '/point' of '/g/x' must be in the dataset's group";
        } else if (c == 2) {
            rc = mpmap_h5_dataset_create(f, "y", H5T_NATIVE_DOUBLE, 1, dims, self, &d);
            want = "cannot be its own dimension";
        } else {
            assert_int_equal(
                mpmap_h5_write_coordinate(f, "point", H5T_NATIVE_DOUBLE, 3, widths, NULL, NULL), 0);
            rc = mpmap_h5_dataset_create(f, "x", H5T_NATIVE_DOUBLE, 2, dims, rooted, &d);
            want = "axis 0 has length 4 but dimension '/point' has length 3";
        }
        assert_int_equal(rc, MPMAP_EINVAL);
        assert_null(d);
        assert_non_null(strstr(mpmap_h5_error(f), want));
        assert_int_equal(mpmap_h5_commit(f, err, sizeof err), MPMAP_EINVAL);
        assert_non_null(strstr(err, want));
    }
    /* The earlier committed file was left alone by the failed commits. */
    assert_true(H5Fis_hdf5(out) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip_keeps_values_scales_and_units, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_streamed_row_blocks_equal_single_write, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_trace_of_10000_rows_reads_back_exactly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_provenance_attributes_are_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dimension_rules_are_enforced, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
