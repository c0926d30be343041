/*
 * Writes a representative mpmap output file to argv[1] (replacing it): a
 * named coordinate, an automatic index coordinate, a streamed 2-D dataset, a
 * dataset in a subgroup with its own coordinate, a trace and provenance. The
 * h5out_xarray test opens the result with h5py, h5netcdf and xarray.
 */
#include "mpmap_h5.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define DEMO_WIDTHS 6
#define DEMO_SAMPLES 50
#define DEMO_TRACE 5000

static int demo_write(mpmap_h5 *f, int argc, char **argv)
{
    double widths[DEMO_WIDTHS];
    for (int i = 0; i < DEMO_WIDTHS; i++)
        widths[i] = 0.1 * (double)(i + 1);
    int rc = mpmap_h5_write_coordinate(f, "width", H5T_NATIVE_DOUBLE, DEMO_WIDTHS, widths, "m",
                                       "kernel width");

    int64_t dims[2] = { DEMO_WIDTHS, DEMO_SAMPLES };
    const char *names[2] = { "width", "sample" };
    mpmap_h5_dataset *d = NULL;
    if (rc == 0)
        rc = mpmap_h5_dataset_create(f, "density", H5T_NATIVE_DOUBLE, 2, dims, names, &d);
    /* Streamed one row at a time, as an app's sink would. */
    for (int64_t i = 0; rc == 0 && i < DEMO_WIDTHS; i++) {
        double row[DEMO_SAMPLES];
        for (int j = 0; j < DEMO_SAMPLES; j++)
            row[j] = exp(-(double)j / (10.0 * widths[i]));
        rc = mpmap_h5_dataset_write_rows(d, i, 1, row);
    }
    if (d && mpmap_h5_dataset_close(d) != 0 && rc == 0)
        rc = MPMAP_EHDF5;
    if (rc == 0)
        rc = mpmap_h5_attr_string(f, "density", "units", "1/m");
    if (rc == 0)
        rc = mpmap_h5_attr_string(f, "density", "long_name", "estimated density");

    /* A dataset in a group, on a coordinate of that group. */
    int64_t n = DEMO_WIDTHS;
    const char *wname[1] = { "width" };
    if (rc == 0)
        rc = mpmap_h5_write_coordinate(f, "/stats/width", H5T_NATIVE_DOUBLE, DEMO_WIDTHS, widths,
                                       "m", "kernel width");
    mpmap_h5_dataset *s = NULL;
    if (rc == 0)
        rc = mpmap_h5_dataset_create(f, "/stats/count", H5T_NATIVE_INT32, 1, &n, wname, &s);
    int32_t counts[DEMO_WIDTHS] = { 5, 4, 3, 2, 1, 0 };
    if (rc == 0)
        rc = mpmap_h5_dataset_write_all(s, counts);
    if (s && mpmap_h5_dataset_close(s) != 0 && rc == 0)
        rc = MPMAP_EHDF5;

    for (int64_t c = 0; rc == 0 && c < DEMO_TRACE; c++) {
        mpmap_trace_entry e = { c * 4, c * 4 + 4, (int32_t)(c % 3), 0.01 * (double)c,
                                0.01 * (double)c + 0.005 };
        rc = mpmap_h5_trace_append(f, &e);
    }

    /* clang-format off */
    mpmap_h5_provenance p = {.app = "h5out_demo",
                             .argc = argc,
                             .argv = argv,
                             .ranks = 1,
                             .schedule = "guided",
                             .chunk = 4,
                             .wall_time = 0.0,
                             .start_time = 0.0};
    /* clang-format on */
    if (rc == 0)
        rc = mpmap_h5_write_provenance(f, &p);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUT.h5\n", argv[0]);
        return 2;
    }
    char err[MPMAP_H5_ERROR_MAX];
    mpmap_h5 *f = NULL;
    if (mpmap_h5_create(argv[1], 1, &f, err, sizeof err) != 0) {
        fprintf(stderr, "h5out_demo: %s\n", err);
        return 1;
    }
    if (demo_write(f, argc, argv) != 0) {
        fprintf(stderr, "h5out_demo: %s\n", mpmap_h5_error(f));
        mpmap_h5_abort(f);
        return 1;
    }
    if (mpmap_h5_commit(f, err, sizeof err) != 0) {
        fprintf(stderr, "h5out_demo: %s\n", err);
        return 1;
    }
    return 0;
}
