/*
 * The /trace group of the HDF5 output: one row per chunk (begin, end, rank,
 * start, finish) on the extendible /trace/chunk coordinate, buffered and
 * appended MPMAP_H5_TRACE_BUFFER rows at a time.
 */
#include "h5_internal.h"

#include <hdf5_hl.h>

void h5__trace_init(h5__trace *t)
{
    t->created = 0;
    t->group = H5I_INVALID_HID;
    for (int i = 0; i < TRACE_NDS; i++)
        t->ds[i] = H5I_INVALID_HID;
    t->on_disk = 0;
    t->buffered = 0;
}

/* Closes the trace columns in reverse order of creation, then the group, and
 * forgets them; returns the first close failure. */
int h5__trace_close(mpmap_h5 *f)
{
    int rc = 0;
    for (int i = TRACE_NDS - 1; i >= 0; i--)
        if (f->trace.ds[i] >= 0 && H5Dclose(f->trace.ds[i]) < 0 && rc == 0)
            rc = h5__fail(f, MPMAP_EHDF5, "cannot close trace dataset");
    if (f->trace.group >= 0 && H5Gclose(f->trace.group) < 0 && rc == 0)
        rc = h5__fail(f, MPMAP_EHDF5, "cannot close group '/trace'");
    h5__trace_init(&f->trace);
    return rc;
}

static const char *const trace_paths[TRACE_NDS] = {
    "/trace/chunk", "/trace/begin", "/trace/end", "/trace/rank", "/trace/start", "/trace/finish",
};

int h5__trace_create(mpmap_h5 *f)
{
    h5__trace *t = &f->trace;
    static const char *const long_names[TRACE_NDS] = {
        "chunk number, in the order chunks were recorded",
        "first task of the chunk",
        "one past the last task of the chunk",
        "rank that computed the chunk",
        "time the chunk started, since the run started",
        "time the chunk finished, since the run started",
    };
    if (h5__object_exists(f->file, "/trace"))
        return h5__fail(f, MPMAP_EINVAL, "'/trace' already exists");
    if ((t->group = H5Gcreate2(f->file, "/trace", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0)
        return h5__fail(f, MPMAP_EHDF5, "cannot create group '/trace'");
    int rc = h5__make_coordinate(f, trace_paths[TRACE_CHUNK], H5__I64, 0, NULL, 1, NULL,
                                 long_names[TRACE_CHUNK], &t->ds[TRACE_CHUNK]);
    hsize_t zero = 0, unlimited = H5S_UNLIMITED, chunk = H5__TRACE_CHUNK;
    for (int i = TRACE_BEGIN; rc == 0 && i < TRACE_NDS; i++) {
        h5__kind kind = i == TRACE_RANK                           ? H5__I32
                        : (i == TRACE_START || i == TRACE_FINISH) ? H5__F64
                                                                  : H5__I64;
        hid_t dcpl = H5I_INVALID_HID, dapl = H5I_INVALID_HID;
        hid_t space = H5Screate_simple(1, &zero, &unlimited);
        if (space < 0 || h5__make_plists(1, &zero, &chunk, h5__kind_size(kind), &dcpl, &dapl) < 0 ||
            (t->ds[i] = H5Dcreate2(f->file, trace_paths[i], h5__kind_file_type(kind), space,
                                   H5P_DEFAULT, dcpl, dapl)) < 0)
            rc = h5__fail(f, MPMAP_EHDF5, "cannot create '%s'", trace_paths[i]);
        else if (H5DSattach_scale(t->ds[i], t->ds[TRACE_CHUNK], 0) < 0)
            rc = h5__fail(f, MPMAP_EHDF5, "cannot attach '/trace/chunk' to '%s'", trace_paths[i]);
        else
            rc = h5__set_cf_attrs(f, t->ds[i], trace_paths[i],
                                  (i == TRACE_START || i == TRACE_FINISH) ? "s" : NULL,
                                  long_names[i]);
        h5__close_id(&dapl, H5Pclose);
        h5__close_id(&dcpl, H5Pclose);
        h5__close_id(&space, H5Sclose);
    }
    t->created = 1; /* ids are closed by h5__trace_close even when creation failed */
    return rc;
}

int h5__trace_reopen(mpmap_h5 *f)
{
    h5__trace *t = &f->trace;
    if ((t->group = H5Gopen2(f->file, "/trace", H5P_DEFAULT)) < 0)
        return h5__fail(f, MPMAP_EHDF5, "cannot open group '/trace'");
    for (int i = 0; i < TRACE_NDS; i++)
        if ((t->ds[i] = H5Dopen2(f->file, trace_paths[i], H5P_DEFAULT)) < 0)
            return h5__fail(f, MPMAP_EHDF5, "cannot open '%s'", trace_paths[i]);
    return 0;
}

/* Grows every trace dataset by the buffered rows and writes them. The
 * coordinate grows with the columns so readers always see one length. */
int h5__trace_flush(mpmap_h5 *f)
{
    h5__trace *t = &f->trace;
    if (t->buffered == 0)
        return 0;
    const void *columns[TRACE_NDS] = { t->index, t->begin, t->end, t->rank, t->start, t->finish };
    hsize_t first = (hsize_t)t->on_disk, count = (hsize_t)t->buffered;
    hsize_t size = first + count;
    for (int i = 0; i < t->buffered; i++)
        t->index[i] = t->on_disk + i;
    int rc = 0;
    for (int i = 0; rc == 0 && i < TRACE_NDS; i++) {
        h5__kind kind = i == TRACE_RANK                           ? H5__I32
                        : (i == TRACE_START || i == TRACE_FINISH) ? H5__F64
                                                                  : H5__I64;
        hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
        if (H5Dset_extent(t->ds[i], &size) < 0 || (fspace = H5Dget_space(t->ds[i])) < 0 ||
            (mspace = H5Screate_simple(1, &count, NULL)) < 0 ||
            H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &first, NULL, &count, NULL) < 0 ||
            H5Dwrite(t->ds[i], h5__kind_mem_type(kind), mspace, fspace, H5P_DEFAULT, columns[i]) <
                0)
            rc = h5__fail(f, MPMAP_EHDF5, "cannot append to '%s'", trace_paths[i]);
        h5__close_id(&mspace, H5Sclose);
        h5__close_id(&fspace, H5Sclose);
    }
    if (rc == 0) {
        t->on_disk += t->buffered;
        t->buffered = 0;
    }
    return rc;
}

int mpmap_h5_trace_append(mpmap_h5 *f, const mpmap_trace_entry *entry)
{
    if (!f)
        return MPMAP_EINVAL;
    if (!entry)
        return h5__fail(f, MPMAP_EINVAL, "trace entry is NULL");
    if (f->status != 0)
        return f->status; /* the file is not going to be committed anyway */
    h5__trace *t = &f->trace;
    int rc = 0;
    h5__quiet q;
    h5__quiet_begin(&q);
    if (!t->created)
        rc = h5__trace_create(f);
    if (rc == 0 && t->buffered == MPMAP_H5_TRACE_BUFFER)
        rc = h5__trace_flush(f);
    if (rc == 0) {
        int i = t->buffered++;
        t->begin[i] = entry->begin;
        t->end[i] = entry->end;
        t->rank[i] = entry->rank;
        t->start[i] = entry->start;
        t->finish[i] = entry->finish;
    }
    h5__quiet_end(&q);
    return rc;
}

int mpmap_h5_trace_flush(mpmap_h5 *f)
{
    if (!f)
        return MPMAP_EINVAL;
    h5__quiet q;
    h5__quiet_begin(&q);
    int rc = h5__trace_flush(f);
    h5__quiet_end(&q);
    return rc;
}
