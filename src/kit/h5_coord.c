/*
 * Coordinates of the HDF5 output: 1-D datasets of values, indices or strings
 * that are dimension scales (netCDF-4 style), so xarray shows every axis as
 * a coordinate.
 */
#include "h5_internal.h"

#include <hdf5_hl.h>

#include <stdlib.h>

/* Elements of an index coordinate written per call (one 1 MiB chunk). */
#define H5__INDEX_BLOCK ((size_t)1 << 17)

/* Writes index values first..first+n-1 into the 1-D dataset ds starting at
 * element `first`, in bounded blocks so huge axes need little memory. */
static int write_index(mpmap_h5 *f, hid_t ds, const char *path, int64_t first, int64_t n)
{
    if (n <= 0)
        return 0;
    size_t block = (uint64_t)n < H5__INDEX_BLOCK ? (size_t)n : H5__INDEX_BLOCK;
    int64_t *values = malloc(block * sizeof *values);
    if (!values)
        return h5__fail(f, MPMAP_ENOMEM, "out of memory writing '%s'", path);
    int rc = 0;
    hid_t fspace = H5Dget_space(ds);
    if (fspace < 0)
        rc = h5__fail(f, MPMAP_EHDF5, "cannot write '%s'", path);
    for (int64_t done = 0; rc == 0 && done < n;) {
        hsize_t count = (uint64_t)(n - done) < block ? (hsize_t)(n - done) : block;
        for (hsize_t i = 0; i < count; i++)
            values[i] = first + done + (int64_t)i;
        hsize_t start = (hsize_t)(first + done);
        hid_t mspace = H5Screate_simple(1, &count, NULL);
        if (mspace < 0 ||
            H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0 ||
            H5Dwrite(ds, H5T_NATIVE_INT64, mspace, fspace, H5P_DEFAULT, values) < 0)
            rc = h5__fail(f, MPMAP_EHDF5, "cannot write '%s'", path);
        h5__close_id(&mspace, H5Sclose);
        done += (int64_t)count;
    }
    h5__close_id(&fspace, H5Sclose);
    free(values);
    return rc;
}

/*
 * Creates the 1-D coordinate `abs` of n elements and makes it a dimension
 * scale. values == NULL writes the index 0..n-1. extendible gives it an
 * unlimited maximum size (for the trace). On success *keep (if not NULL)
 * receives the open dataset, else it is closed.
 */
int h5__make_coordinate(mpmap_h5 *f, const char *abs, h5__kind kind, int64_t n, const void *values,
                        int extendible, const char *units, const char *long_name, hid_t *keep)
{
    int rc = 0;
    hsize_t dim = (hsize_t)n;
    hsize_t maxdim = extendible ? H5S_UNLIMITED : dim;
    hsize_t trace_chunk = H5__TRACE_CHUNK;
    hid_t lcpl = h5__make_lcpl(), dcpl = H5I_INVALID_HID, dapl = H5I_INVALID_HID;
    hid_t space = H5I_INVALID_HID, ds = H5I_INVALID_HID;
    if (lcpl < 0 ||
        h5__make_plists(1, &dim, extendible ? &trace_chunk : NULL, h5__kind_size(kind), &dcpl,
                        &dapl) < 0 ||
        (space = H5Screate_simple(1, &dim, &maxdim)) < 0 ||
        (ds = H5Dcreate2(f->file, abs, h5__kind_file_type(kind), space, lcpl, dcpl, dapl)) < 0) {
        rc = h5__fail(f, MPMAP_EHDF5, "cannot create coordinate '%s'", abs);
    } else if (values && n > 0 &&
               H5Dwrite(ds, h5__kind_mem_type(kind), H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0) {
        rc = h5__fail(f, MPMAP_EHDF5, "cannot write coordinate '%s'", abs);
    } else if (!values && (rc = write_index(f, ds, abs, 0, n)) != 0) {
        /* message recorded by write_index */
    } else if (H5DSset_scale(ds, h5__last_component(abs)) < 0) {
        rc = h5__fail(f, MPMAP_EHDF5, "cannot make '%s' a dimension scale", abs);
    } else {
        rc = h5__set_cf_attrs(f, ds, abs, units, long_name);
    }
    h5__close_id(&space, H5Sclose);
    h5__close_id(&dapl, H5Pclose);
    h5__close_id(&dcpl, H5Pclose);
    h5__close_id(&lcpl, H5Pclose);
    if (rc == 0 && keep)
        *keep = ds;
    else
        h5__close_id(&ds, H5Dclose);
    return rc;
}

int mpmap_h5_write_coordinate(mpmap_h5 *f, const char *path, hid_t type, int64_t n,
                              const void *values, const char *units, const char *long_name)
{
    if (!f)
        return MPMAP_EINVAL;
    h5__quiet q;
    h5__quiet_begin(&q);
    int rc = 0;
    h5__kind kind;
    char *abs = h5__absolute_path(path);
    if (!abs)
        rc = h5__fail(f, MPMAP_EINVAL, "invalid coordinate name '%s'", path ? path : "(null)");
    else if (h5__type_kind(type, &kind) != 0)
        rc =
            h5__fail(f, MPMAP_EINVAL, "coordinate '%s': type must be float64, int64 or int32", abs);
    else if (n < 0 || (n > 0 && !values))
        rc = h5__fail(f, MPMAP_EINVAL, "coordinate '%s': invalid length or values", abs);
    else if (h5__object_exists(f->file, abs))
        rc = h5__fail(f, MPMAP_EINVAL, "coordinate '%s' already exists", abs);
    else
        rc = h5__make_coordinate(f, abs, kind, n, values, 0, units, long_name, NULL);
    free(abs);
    h5__quiet_end(&q);
    return rc;
}

int mpmap_h5_write_string_coordinate(mpmap_h5 *f, const char *path, int64_t n,
                                     const char *const *values, const char *long_name)
{
    if (!f)
        return MPMAP_EINVAL;
    h5__quiet q;
    h5__quiet_begin(&q);
    int rc = 0;
    char *abs = h5__absolute_path(path);
    if (!abs) {
        rc = h5__fail(f, MPMAP_EINVAL, "invalid coordinate name '%s'", path ? path : "(null)");
    } else if (n < 0 || (n > 0 && !values)) {
        rc = h5__fail(f, MPMAP_EINVAL, "coordinate '%s': invalid length or values", abs);
    } else if (h5__object_exists(f->file, abs)) {
        rc = h5__fail(f, MPMAP_EINVAL, "coordinate '%s' already exists", abs);
    } else {
        for (int64_t i = 0; i < n; i++)
            if (!values[i]) {
                rc = h5__fail(f, MPMAP_EINVAL, "coordinate '%s': value %lld is NULL", abs,
                              (long long)i);
                break;
            }
    }
    if (rc == 0) {
        hsize_t dim = (hsize_t)n;
        hid_t lcpl = h5__make_lcpl(), type = h5__string_type();
        hid_t space = H5I_INVALID_HID, ds = H5I_INVALID_HID;
        if (lcpl < 0 || type < 0 || (space = H5Screate_simple(1, &dim, NULL)) < 0 ||
            (ds = H5Dcreate2(f->file, abs, type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT)) < 0)
            rc = h5__fail(f, MPMAP_EHDF5, "cannot create coordinate '%s'", abs);
        else if (n > 0 && H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0)
            rc = h5__fail(f, MPMAP_EHDF5, "cannot write coordinate '%s'", abs);
        else if (H5DSset_scale(ds, h5__last_component(abs)) < 0)
            rc = h5__fail(f, MPMAP_EHDF5, "cannot make '%s' a dimension scale", abs);
        else
            rc = h5__set_cf_attrs(f, ds, abs, NULL, long_name);
        h5__close_id(&ds, H5Dclose);
        h5__close_id(&space, H5Sclose);
        h5__close_id(&type, H5Tclose);
        h5__close_id(&lcpl, H5Pclose);
    }
    free(abs);
    h5__quiet_end(&q);
    return rc;
}

/* Opens the existing scale `abs` for an axis of length `len`, or creates an
 * index coordinate there. */
int h5__open_or_make_scale(mpmap_h5 *f, const char *abs, const char *dataset, int axis, hsize_t len,
                           hid_t *scale)
{
    *scale = H5I_INVALID_HID;
    if (!h5__object_exists(f->file, abs)) {
        int rc = h5__make_coordinate(f, abs, H5__I64, (int64_t)len, NULL, 0, NULL, NULL, scale);
        return rc;
    }
    int rc = 0;
    hid_t ds = H5I_INVALID_HID, space = H5I_INVALID_HID;
    hsize_t have = 0;
    if ((ds = H5Oopen(f->file, abs, H5P_DEFAULT)) < 0)
        rc = h5__fail(f, MPMAP_EHDF5, "cannot open dimension '%s' of '%s'", abs, dataset);
    else if (H5Iget_type(ds) != H5I_DATASET)
        rc = h5__fail(f, MPMAP_EINVAL, "dimension '%s' of '%s' exists but is not a dataset", abs,
                      dataset);
    else if (H5DSis_scale(ds) <= 0)
        rc = h5__fail(f, MPMAP_EINVAL, "dimension '%s' of '%s' exists but is not a dimension scale",
                      abs, dataset);
    else if ((space = H5Dget_space(ds)) < 0)
        rc = h5__fail(f, MPMAP_EHDF5, "cannot read the shape of '%s'", abs);
    else if (H5Sget_simple_extent_ndims(space) != 1 ||
             H5Sget_simple_extent_dims(space, &have, NULL) != 1)
        rc = h5__fail(f, MPMAP_EINVAL, "dimension '%s' of '%s' is not 1-D", abs, dataset);
    else if (have != len)
        rc = h5__fail(f, MPMAP_EINVAL,
                      "dataset '%s' axis %d has length %llu but dimension '%s' has length %llu",
                      dataset, axis, (unsigned long long)len, abs, (unsigned long long)have);
    h5__close_id(&space, H5Sclose);
    if (rc == 0)
        *scale = ds;
    else
        h5__close_id(&ds, H5Oclose);
    return rc;
}
