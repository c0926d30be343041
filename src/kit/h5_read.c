/*
 * Reading inputs: a floating-point matrix from "FILE.h5:/DATASET".
 */
#define _POSIX_C_SOURCE 200809L /* stat, access */

#include "h5_internal.h"

#include <hdf5_hl.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int mpmap_h5_split_spec(const char *spec, char *file, size_t file_size, char *dataset,
                        size_t dataset_size, char *err, size_t errlen)
{
    const char *colon = NULL;
    for (const char *c = spec; c && *c; c++)
        if (c[0] == ':' && c[1] == '/')
            colon = c;
    if (!colon || colon == spec)
        return h5__fail_buf(err, errlen, MPMAP_EINVAL, "input '%s' is not FILE.h5:/DATASET",
                            spec ? spec : "(null)");
    size_t flen = (size_t)(colon - spec);
    size_t dlen = strlen(colon + 1);
    if (!file || !dataset || flen + 1 > file_size || dlen + 1 > dataset_size)
        return h5__fail_buf(err, errlen, MPMAP_EINVAL, "input '%s': name too long", spec);
    memcpy(file, spec, flen);
    file[flen] = '\0';
    memcpy(dataset, colon + 1, dlen + 1);
    return 0;
}

static const char *class_name(H5T_class_t cls)
{
    switch (cls) {
    case H5T_INTEGER: return "integer";
    case H5T_TIME: return "time";
    case H5T_STRING: return "string";
    case H5T_BITFIELD: return "bitfield";
    case H5T_OPAQUE: return "opaque";
    case H5T_COMPOUND: return "compound";
    case H5T_REFERENCE: return "reference";
    case H5T_ENUM: return "enum";
    case H5T_VLEN: return "variable-length";
    case H5T_ARRAY: return "array";
    default: return "unknown";
    }
}

/* Everything after the file is open; ids are closed in reverse order. */
static int read_dataset(hid_t fid, const char *file, const char *dset, double **data, int64_t *rows,
                        int64_t *cols, char *err, size_t errlen)
{
    int rc = 0;
    hid_t obj = H5I_INVALID_HID, type = H5I_INVALID_HID, space = H5I_INVALID_HID;
    htri_t valid = H5LTpath_valid(fid, dset, 1);
    if (valid <= 0)
        return h5__fail_buf(err, errlen, MPMAP_EINVAL, "input file '%s' has no dataset '%s'", file,
                            dset);
    if ((obj = H5Oopen(fid, dset, H5P_DEFAULT)) < 0)
        return h5__fail_buf(err, errlen, MPMAP_EHDF5, "cannot open '%s' in '%s'", dset, file);
    if (H5Iget_type(obj) != H5I_DATASET) {
        rc = h5__fail_buf(err, errlen, MPMAP_EINVAL, "'%s' in input file '%s' is not a dataset",
                          dset, file);
        h5__close_id(&obj, H5Oclose);
        return rc;
    }

    H5T_class_t cls = H5T_NO_CLASS;
    int ndims = -1;
    hsize_t dims[2] = { 0, 0 };
    if ((type = H5Dget_type(obj)) < 0 || (cls = H5Tget_class(type)) < 0 ||
        (space = H5Dget_space(obj)) < 0 || (ndims = H5Sget_simple_extent_ndims(space)) < 0)
        rc = h5__fail_buf(err, errlen, MPMAP_EHDF5, "cannot inspect '%s' in '%s'", dset, file);
    else if (cls != H5T_FLOAT)
        rc = h5__fail_buf(err, errlen, MPMAP_EINVAL,
                          "dataset '%s' in '%s' has %s elements; expected floating point", dset,
                          file, class_name(cls));
    else if (ndims != 1 && ndims != 2)
        rc = h5__fail_buf(err, errlen, MPMAP_EINVAL,
                          "dataset '%s' in '%s' is %d-D; expected 2-D (or 1-D, read as one column)",
                          dset, file, ndims);
    else if (H5Sget_simple_extent_dims(space, dims, NULL) < 0)
        rc = h5__fail_buf(err, errlen, MPMAP_EHDF5, "cannot inspect '%s' in '%s'", dset, file);
    if (rc == 0) {
        if (ndims == 1)
            dims[1] = 1;
        if (dims[0] == 0 || dims[1] == 0)
            rc = h5__fail_buf(err, errlen, MPMAP_EINVAL,
                              "dataset '%s' in '%s' is empty (%llu x %llu)", dset, file,
                              (unsigned long long)dims[0], (unsigned long long)dims[1]);
        else if (dims[0] > (hsize_t)INT64_MAX / dims[1] ||
                 dims[0] * dims[1] > SIZE_MAX / sizeof(double))
            rc = h5__fail_buf(err, errlen, MPMAP_ENOMEM,
                              "dataset '%s' in '%s' is too large to read (%llu x %llu)", dset, file,
                              (unsigned long long)dims[0], (unsigned long long)dims[1]);
    }
    double *buf = NULL;
    if (rc == 0 && !(buf = malloc((size_t)(dims[0] * dims[1]) * sizeof *buf)))
        rc = h5__fail_buf(err, errlen, MPMAP_ENOMEM,
                          "dataset '%s' in '%s' is too large to read (%llu x %llu)", dset, file,
                          (unsigned long long)dims[0], (unsigned long long)dims[1]);
    if (rc == 0 && H5Dread(obj, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        rc = h5__fail_buf(err, errlen, MPMAP_EHDF5, "cannot read '%s' in '%s'", dset, file);
    for (size_t i = 0; rc == 0 && i < (size_t)(dims[0] * dims[1]); i++)
        if (!isfinite(buf[i]))
            rc = h5__fail_buf(err, errlen, MPMAP_EINVAL,
                              "dataset '%s' in '%s' contains a non-finite value at row %zu, "
                              "column %zu",
                              dset, file, i / (size_t)dims[1], i % (size_t)dims[1]);
    h5__close_id(&space, H5Sclose);
    h5__close_id(&type, H5Tclose);
    h5__close_id(&obj, H5Oclose);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *data = buf;
    *rows = (int64_t)dims[0];
    *cols = (int64_t)dims[1];
    return 0;
}

int mpmap_h5_read_matrix(const char *spec, double **data, int64_t *rows, int64_t *cols, char *err,
                         size_t errlen)
{
    if (!data || !rows || !cols)
        return h5__fail_buf(err, errlen, MPMAP_EINVAL, "mpmap_h5_read_matrix: NULL output");
    *data = NULL;
    *rows = *cols = 0;
    size_t len = spec ? strlen(spec) + 1 : 1;
    char *file = malloc(len), *dset = malloc(len);
    int rc = 0;
    if (!file || !dset)
        rc = h5__fail_buf(err, errlen, MPMAP_ENOMEM, "out of memory");
    if (rc == 0)
        rc = mpmap_h5_split_spec(spec, file, len, dset, len, err, errlen);

    struct stat st;
    if (rc == 0 && stat(file, &st) != 0)
        rc = h5__fail_buf(err, errlen, MPMAP_EIO, "cannot open input file '%s': %s", file,
                          strerror(errno));
    else if (rc == 0 && S_ISDIR(st.st_mode))
        rc = h5__fail_buf(err, errlen, MPMAP_EIO, "cannot open input file '%s': %s", file,
                          strerror(EISDIR));
    else if (rc == 0 && access(file, R_OK) != 0)
        rc = h5__fail_buf(err, errlen, MPMAP_EIO, "cannot open input file '%s': %s", file,
                          strerror(errno));
    if (rc != 0) {
        free(file);
        free(dset);
        return rc;
    }

    h5__quiet q;
    h5__quiet_begin(&q);
    htri_t is = H5Fis_hdf5(file);
    hid_t fid = H5I_INVALID_HID;
    if (is == 0)
        rc = h5__fail_buf(err, errlen, MPMAP_EIO, "input file '%s' is not an HDF5 file", file);
    else if (is < 0 || (fid = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
        rc = h5__fail_buf(err, errlen, MPMAP_EHDF5, "cannot open input file '%s'", file);
    else
        rc = read_dataset(fid, file, dset, data, rows, cols, err, errlen);
    if (fid >= 0 && H5Fclose(fid) < 0 && rc == 0) {
        rc = h5__fail_buf(err, errlen, MPMAP_EHDF5, "cannot close input file '%s'", file);
        free(*data);
        *data = NULL;
        *rows = *cols = 0;
    }
    h5__quiet_end(&q);
    free(file);
    free(dset);
    return rc;
}
