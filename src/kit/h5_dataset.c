/*
 * Datasets of the HDF5 output: element types, chunk shapes, creating a
 * dataset with a dimension scale on every axis, and writing it row block by
 * row block.
 */
#include "h5_internal.h"

#include <hdf5_hl.h>

#include <stdlib.h>
#include <string.h>

/* Datasets above this size are chunked, in chunks of about this size. */
#define H5__CHUNK_BYTES ((size_t)1 << 20)
/* Per-dataset chunk cache: a few chunks, so row blocks that straddle chunk
 * boundaries are assembled in memory instead of read back from disk. */
#define H5__CACHE_BYTES ((size_t)4 << 20)
#define H5__CACHE_SLOTS 521

int h5__type_kind(hid_t type, h5__kind *kind)
{
    if (H5Tequal(type, H5T_NATIVE_DOUBLE) > 0)
        *kind = H5__F64;
    else if (H5Tequal(type, H5T_NATIVE_INT64) > 0)
        *kind = H5__I64;
    else if (H5Tequal(type, H5T_NATIVE_INT32) > 0)
        *kind = H5__I32;
    else
        return MPMAP_EINVAL;
    return 0;
}

hid_t h5__kind_mem_type(h5__kind kind)
{
    switch (kind) {
    case H5__F64: return H5T_NATIVE_DOUBLE;
    case H5__I64: return H5T_NATIVE_INT64;
    default: return H5T_NATIVE_INT32;
    }
}

/* Little-endian standard types, so the file reads the same everywhere. */
hid_t h5__kind_file_type(h5__kind kind)
{
    switch (kind) {
    case H5__F64: return H5T_IEEE_F64LE;
    case H5__I64: return H5T_STD_I64LE;
    default: return H5T_STD_I32LE;
    }
}

size_t h5__kind_size(h5__kind kind) { return kind == H5__I32 ? 4 : 8; }

void h5__dataset_free(mpmap_h5_dataset *d)
{
    mpmap_h5 *f = d->file;
    if (d->prev)
        d->prev->next = d->next;
    else
        f->datasets = d->next;
    if (d->next)
        d->next->prev = d->prev;
    free(d->path);
    free(d);
}

/* Chunk shape of about H5__CHUNK_BYTES: whole rows where they fit, so a
 * streamed block of rows touches few chunks; very long rows are split too. */
static void chunk_shape(int rank, const hsize_t *dims, size_t elem, hsize_t *chunk)
{
    hsize_t target = H5__CHUNK_BYTES / elem;
    for (int k = 0; k < rank; k++)
        chunk[k] = dims[k] ? dims[k] : 1;
    for (int k = 0; k < rank; k++) {
        hsize_t rest = 1;
        for (int j = k + 1; j < rank; j++)
            rest *= chunk[j];
        if (chunk[k] * rest <= target)
            break;
        hsize_t c = target / rest;
        chunk[k] = c ? c : 1;
        if (rest <= target)
            break;
    }
}

/* Dataset creation and access lists for `rank` axes; chunked when large or
 * extendible. */
int h5__make_plists(int rank, const hsize_t *dims, const hsize_t *chunk_override, size_t elem,
                    hid_t *dcpl, hid_t *dapl)
{
    *dcpl = H5Pcreate(H5P_DATASET_CREATE);
    *dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (*dcpl < 0 || *dapl < 0)
        return -1;
    hsize_t total = elem;
    for (int k = 0; k < rank; k++)
        total *= dims[k];
    if (chunk_override || total > H5__CHUNK_BYTES) {
        hsize_t chunk[MPMAP_H5_MAX_RANK];
        if (chunk_override)
            memcpy(chunk, chunk_override, (size_t)rank * sizeof *chunk);
        else
            chunk_shape(rank, dims, elem, chunk);
        if (H5Pset_chunk(*dcpl, rank, chunk) < 0 ||
            H5Pset_chunk_cache(*dapl, H5__CACHE_SLOTS, H5__CACHE_BYTES, 1.0) < 0)
            return -1;
    }
    return 0;
}

int mpmap_h5_dataset_create(mpmap_h5 *f, const char *path, hid_t type, int rank,
                            const int64_t *dims, const char *const *dim_names,
                            mpmap_h5_dataset **out)
{
    if (!f)
        return MPMAP_EINVAL;
    if (out)
        *out = NULL;
    h5__quiet q;
    h5__quiet_begin(&q);
    int rc = 0;
    h5__kind kind = H5__F64;
    char *abs = h5__absolute_path(path);
    char *dim_abs[MPMAP_H5_MAX_RANK] = { 0 };
    hid_t scales[MPMAP_H5_MAX_RANK];
    hsize_t hdims[MPMAP_H5_MAX_RANK];
    for (int k = 0; k < MPMAP_H5_MAX_RANK; k++)
        scales[k] = H5I_INVALID_HID;
    hid_t lcpl = H5I_INVALID_HID, dcpl = H5I_INVALID_HID, dapl = H5I_INVALID_HID;
    hid_t space = H5I_INVALID_HID, ds = H5I_INVALID_HID;

    if (!abs)
        rc = h5__fail(f, MPMAP_EINVAL, "invalid dataset name '%s'", path ? path : "(null)");
    else if (!out || !dims || !dim_names || rank < 1 || rank > MPMAP_H5_MAX_RANK)
        rc = h5__fail(f, MPMAP_EINVAL, "dataset '%s': invalid rank, dims or dimension names", abs);
    else if (h5__type_kind(type, &kind) != 0)
        rc = h5__fail(f, MPMAP_EINVAL, "dataset '%s': type must be float64, int64 or int32", abs);
    else if (h5__object_exists(f->file, abs))
        rc = h5__fail(f, MPMAP_EINVAL, "dataset '%s' already exists", abs);

    /* Validate every axis before creating anything. */
    double total = (double)h5__kind_size(kind);
    for (int k = 0; rc == 0 && k < rank; k++) {
        if (dims[k] < 0) {
            rc = h5__fail(f, MPMAP_EINVAL, "dataset '%s': axis %d has negative length", abs, k);
            break;
        }
        hdims[k] = (hsize_t)dims[k];
        total *= (double)dims[k];
        dim_abs[k] = h5__resolve_dim(abs, dim_names[k]);
        if (!dim_abs[k])
            rc = h5__fail(f, MPMAP_EINVAL, "dataset '%s': invalid dimension name '%s'", abs,
                          dim_names[k] ? dim_names[k] : "(null)");
        else if (strcmp(dim_abs[k], abs) == 0)
            rc = h5__fail(f, MPMAP_EINVAL,
                          "dataset '%s' cannot be its own dimension; write it with "
                          "mpmap_h5_write_coordinate",
                          abs);
        else if (!h5__same_group(dim_abs[k], abs))
            rc = h5__fail(f, MPMAP_EINVAL, "dimension '%s' of '%s' must be in the dataset's group",
                          dim_abs[k], abs);
        for (int j = 0; rc == 0 && j < k; j++)
            if (strcmp(dim_abs[j], dim_abs[k]) == 0)
                rc = h5__fail(f, MPMAP_EINVAL,
                              "dataset '%s' uses dimension '%s' twice; give each axis its own name",
                              abs, dim_abs[k]);
    }
    if (rc == 0 && total > 9.0e18)
        rc = h5__fail(f, MPMAP_EINVAL, "dataset '%s' is too large", abs);

    for (int k = 0; rc == 0 && k < rank; k++)
        rc = h5__open_or_make_scale(f, dim_abs[k], abs, k, hdims[k], &scales[k]);

    if (rc == 0) {
        if ((lcpl = h5__make_lcpl()) < 0 ||
            h5__make_plists(rank, hdims, NULL, h5__kind_size(kind), &dcpl, &dapl) < 0 ||
            /* A live file's small datasets get their storage now: allocating
             * it at the first write would change their object header while
             * readers watch (under SWMR only raw data may change). */
            (f->live.on && H5Pget_layout(dcpl) == H5D_CONTIGUOUS &&
             H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0) ||
            /* Rows written in place by other processes: the bytes must sit
             * at one known offset from the start, and HDF5 must never write
             * them itself (no fill). */
            (f->rows_in_place && (H5Pset_layout(dcpl, H5D_CONTIGUOUS) < 0 ||
                                  H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0 ||
                                  H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0)) ||
            (space = H5Screate_simple(rank, hdims, NULL)) < 0 ||
            (ds = H5Dcreate2(f->file, abs, h5__kind_file_type(kind), space, lcpl, dcpl, dapl)) < 0)
            rc = h5__fail(f, MPMAP_EHDF5, "cannot create dataset '%s'", abs);
    }
    for (int k = 0; rc == 0 && k < rank; k++)
        if (H5DSattach_scale(ds, scales[k], (unsigned)k) < 0)
            rc = h5__fail(f, MPMAP_EHDF5, "cannot attach dimension '%s' to '%s'", dim_abs[k], abs);

    mpmap_h5_dataset *d = NULL;
    if (rc == 0 && !(d = calloc(1, sizeof *d)))
        rc = h5__fail(f, MPMAP_ENOMEM, "out of memory");
    if (rc == 0) {
        d->file = f;
        d->id = ds;
        d->kind = kind;
        d->rank = rank;
        d->row_elems = 1;
        for (int k = 0; k < rank; k++) {
            d->dims[k] = hdims[k];
            if (k > 0)
                d->row_elems *= hdims[k];
        }
        d->path = abs;
        abs = NULL;
        d->next = f->datasets;
        if (f->datasets)
            f->datasets->prev = d;
        f->datasets = d;
        ds = H5I_INVALID_HID;
        *out = d;
    }

    h5__close_id(&ds, H5Dclose);
    h5__close_id(&space, H5Sclose);
    h5__close_id(&dapl, H5Pclose);
    h5__close_id(&dcpl, H5Pclose);
    h5__close_id(&lcpl, H5Pclose);
    for (int k = MPMAP_H5_MAX_RANK - 1; k >= 0; k--) {
        h5__close_id(&scales[k], H5Dclose);
        free(dim_abs[k]);
    }
    free(abs);
    h5__quiet_end(&q);
    return rc;
}

void h5__set_rows_in_place(mpmap_h5 *f, int on)
{
    if (f)
        f->rows_in_place = on;
}

int h5__dataset_offset(const mpmap_h5_dataset *d, int64_t *offset)
{
    h5__quiet q;
    h5__quiet_begin(&q);
    haddr_t at = H5Dget_offset(d->id);
    h5__quiet_end(&q);
    if (at == HADDR_UNDEF || at > (haddr_t)INT64_MAX)
        return h5__fail(d->file, MPMAP_EHDF5, "dataset '%s' has no storage in place", d->path), -1;
    *offset = (int64_t)at;
    return 0;
}

int h5__flush(mpmap_h5 *f)
{
    /* Through h5__settle: a flush that fails for want of space leaves a
     * file HDF5 can no longer close (see h5__discard_storage). */
    h5__quiet q;
    h5__quiet_begin(&q);
    int rc = h5__settle(f);
    h5__quiet_end(&q);
    return rc != 0 ? -1 : 0;
}

int mpmap_h5_dataset_write_rows(mpmap_h5_dataset *d, int64_t first_row, int64_t nrows,
                                const void *data)
{
    if (!d)
        return MPMAP_EINVAL;
    mpmap_h5 *f = d->file;
    if (first_row < 0 || nrows < 0 || (uint64_t)first_row > d->dims[0] ||
        (uint64_t)nrows > d->dims[0] - (uint64_t)first_row)
        return h5__fail(f, MPMAP_EINVAL, "dataset '%s': rows %lld..%lld outside 0..%llu", d->path,
                        (long long)first_row, (long long)first_row + (long long)nrows,
                        (unsigned long long)d->dims[0]);
    if (nrows == 0 || d->row_elems == 0)
        return 0;
    if (!data)
        return h5__fail(f, MPMAP_EINVAL, "dataset '%s': no data", d->path);

    h5__quiet q;
    h5__quiet_begin(&q);
    int rc = 0;
    hsize_t start[MPMAP_H5_MAX_RANK] = { 0 }, count[MPMAP_H5_MAX_RANK];
    memcpy(count, d->dims, sizeof count);
    start[0] = (hsize_t)first_row;
    count[0] = (hsize_t)nrows;
    hid_t fspace = H5Dget_space(d->id);
    hid_t mspace = H5Screate_simple(d->rank, count, NULL);
    if (fspace < 0 || mspace < 0 ||
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        H5Dwrite(d->id, h5__kind_mem_type(d->kind), mspace, fspace, H5P_DEFAULT, data) < 0)
        rc = h5__fail(f, MPMAP_EHDF5, "cannot write rows %lld..%lld of '%s'", (long long)first_row,
                      (long long)(first_row + nrows), d->path);
    h5__close_id(&mspace, H5Sclose);
    h5__close_id(&fspace, H5Sclose);
    h5__quiet_end(&q);
    return rc;
}

int mpmap_h5_dataset_write_all(mpmap_h5_dataset *d, const void *data)
{
    if (!d)
        return MPMAP_EINVAL;
    return mpmap_h5_dataset_write_rows(d, 0, (int64_t)d->dims[0], data);
}

int mpmap_h5_dataset_close(mpmap_h5_dataset *d)
{
    if (!d)
        return 0;
    mpmap_h5 *f = d->file;
    h5__quiet q;
    h5__quiet_begin(&q);
    int rc = 0;
    if (H5Dclose(d->id) < 0)
        rc = h5__fail(f, MPMAP_EHDF5, "cannot close dataset '%s'", d->path);
    h5__quiet_end(&q);
    h5__dataset_free(d);
    return rc;
}
