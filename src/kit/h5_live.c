/*
 * --live: an output other processes can read while the run writes it, with
 * HDF5's single-writer/multiple-reader mode (SWMR, HDF5 >= 1.10).
 *
 * The life of a live file (rank 0, as every HDF5 call here):
 *   format   right after mpmap_h5_create the file is made again in the 1.10
 *            format (SWMR needs superblock version 3 and the 1.10 chunk
 *            indexes), its root attributes (the fingerprint) carried over;
 *   set up   the run's coordinates and datasets are created as for any file,
 *            small (contiguous) ones with their storage at once, so writing
 *            them later changes no object header;
 *   start    /tasks_delivered and the trace are created, then SWMR writing
 *            starts: from here HDF5 allows writing raw data and growing
 *            datasets, not creating objects or attributes;
 *   publish  about once a second the datasets are flushed and only then
 *            /tasks_delivered is written and flushed, so a reader never sees
 *            a count ahead of the data it counts;
 *   end      the file is settled (as the commit does: space reserved first,
 *            so a full disk fails cleanly), closed and opened again for
 *            ordinary writing; /tasks_delivered (and a trace without rows)
 *            goes, and the summary, provenance and commit follow as for any
 *            file, so the committed file holds what a run without --live
 *            writes.
 *
 * Readers hold HDF5's shared file lock while they have the file open (SWMR
 * writing itself gives up its lock), so the file is opened again without
 * taking one: with a lock it could not be opened while anyone watches. The
 * superblock still marks it as being written, which keeps new readers out
 * for the few moments until the commit.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, strdup */

#include "h5_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LIVE_DELIVERED "/tasks_delivered"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void h5__live_init(h5__live *l)
{
    l->on = 0;
    l->swmr = 0;
    l->delivered = H5I_INVALID_HID;
    l->last = 0;
    l->published = -1;
}

void h5__live_close(mpmap_h5 *f) { h5__close_id(&f->live.delivered, H5Dclose); }

/* File access list of a live file: the 1.10 format (not "latest": a later
 * library would write a format 1.10 readers cannot open), and optionally no
 * file lock. */
static hid_t live_fapl(int lock)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0)
        return -1;
    if (H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110) < 0) {
        H5Pclose(fapl);
        return -1;
    }
#if H5_VERSION_GE(1, 10, 7)
    if (!lock && H5Pset_file_locking(fapl, 0, 1) < 0) {
        H5Pclose(fapl);
        return -1;
    }
#else
    (void)lock; /* older libraries lock only with HDF5_USE_FILE_LOCKING */
#endif
    return fapl;
}

/* ---- format: the root attributes carried over ------------------------------ */

typedef struct live_attr {
    char *name;
    hid_t type, space;
    void *data;
} live_attr;

typedef struct live_attrs {
    live_attr *a;
    size_t n, cap;
} live_attrs;

static herr_t collect_attr(hid_t loc, const char *name, const H5A_info_t *info, void *op)
{
    (void)info;
    live_attrs *c = op;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 4;
        live_attr *a = realloc(c->a, cap * sizeof *a);
        if (!a)
            return -1;
        c->a = a;
        c->cap = cap;
    }
    live_attr *a = &c->a[c->n];
    memset(a, 0, sizeof *a);
    a->type = a->space = H5I_INVALID_HID;
    c->n++;
    hid_t attr = H5Aopen(loc, name, H5P_DEFAULT);
    hssize_t n = -1;
    size_t size = 0;
    if (attr >= 0 && (a->type = H5Aget_type(attr)) >= 0 && (a->space = H5Aget_space(attr)) >= 0) {
        n = H5Sget_simple_extent_npoints(a->space);
        size = H5Tget_size(a->type);
    }
    int ok = n >= 0 && size > 0 && (a->name = strdup(name)) &&
             (a->data = calloc((size_t)n * size + 1, 1)) && H5Aread(attr, a->type, a->data) >= 0;
    if (!ok && a->data) {
        free(a->data); /* nothing was read into it: nothing to reclaim */
        a->data = NULL;
    }
    if (attr >= 0)
        H5Aclose(attr);
    return ok ? 0 : -1;
}

static void free_attrs(live_attrs *c)
{
    for (size_t i = 0; i < c->n; i++) {
        live_attr *a = &c->a[i];
        if (a->data) /* the strings HDF5 allocated for variable-length values */
#if H5_VERSION_GE(1, 12, 0)
            (void)H5Treclaim(a->type, a->space, H5P_DEFAULT, a->data);
#else
            (void)H5Dvlen_reclaim(a->type, a->space, H5P_DEFAULT, a->data);
#endif
        free(a->data);
        free(a->name);
        h5__close_id(&a->space, H5Sclose);
        h5__close_id(&a->type, H5Tclose);
    }
    free(c->a);
}

static int write_attrs(mpmap_h5 *f, const live_attrs *c)
{
    for (size_t i = 0; i < c->n; i++) {
        const live_attr *a = &c->a[i];
        hid_t attr = H5Acreate2(f->file, a->name, a->type, a->space, H5P_DEFAULT, H5P_DEFAULT);
        int ok = attr >= 0 && H5Awrite(attr, a->type, a->data) >= 0;
        if (attr >= 0 && H5Aclose(attr) < 0)
            ok = 0;
        if (!ok)
            return h5__fail(f, MPMAP_EHDF5, "cannot write attribute '%s' of '%s'", a->name,
                            f->partial_path);
    }
    return 0;
}

int h5__live_format(mpmap_h5 *f)
{
    if (!f)
        return MPMAP_EINVAL;
    if (f->status != 0 || f->live.on)
        return f->status;
    h5__quiet q;
    h5__quiet_begin(&q);
    int rc = 0;
    H5G_info_t root;
    live_attrs attrs = { 0 };
    hid_t fapl = H5I_INVALID_HID;
    if (f->file < 0 || H5Gget_info(f->file, &root) < 0)
        rc = h5__fail(f, MPMAP_EHDF5, "cannot read '%s'", f->partial_path);
    else if (root.nlinks != 0)
        rc = h5__fail(f, MPMAP_EINVAL, "internal error: '%s' is not new", f->partial_path);
    else if (H5Aiterate2(f->file, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, collect_attr, &attrs) < 0)
        rc = h5__fail(f, MPMAP_EHDF5, "cannot read the attributes of '%s'", f->partial_path);
    if (rc == 0) {
        herr_t closed = H5Fclose(f->file);
        f->file = H5I_INVALID_HID;
        if (closed < 0 || (fapl = live_fapl(1)) < 0 ||
            (f->file = H5Fcreate(f->partial_path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)) < 0)
            rc = h5__fail(f, MPMAP_EHDF5, "cannot create output '%s' (as '%s')", f->final_path,
                          f->partial_path);
    }
    if (rc == 0)
        rc = write_attrs(f, &attrs);
    if (rc == 0)
        f->live.on = 1;
    free_attrs(&attrs);
    h5__close_id(&fapl, H5Pclose);
    h5__quiet_end(&q);
    return rc;
}

/* ---- start, publish --------------------------------------------------------- */

static int create_delivered(mpmap_h5 *f)
{
    int rc = 0;
    int64_t zero = 0;
    hid_t space = H5Screate(H5S_SCALAR), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (space < 0 || dcpl < 0 || H5Pset_layout(dcpl, H5D_CONTIGUOUS) < 0 ||
        H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0 ||
        (f->live.delivered = H5Dcreate2(f->file, LIVE_DELIVERED, H5T_STD_I64LE, space, H5P_DEFAULT,
                                        dcpl, H5P_DEFAULT)) < 0 ||
        H5Dwrite(f->live.delivered, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &zero) < 0)
        rc = h5__fail(f, MPMAP_EHDF5, "cannot create '%s'", LIVE_DELIVERED);
    h5__close_id(&dcpl, H5Pclose);
    h5__close_id(&space, H5Sclose);
    if (rc == 0)
        rc = h5__set_cf_attrs(f, f->live.delivered, LIVE_DELIVERED, NULL,
                              "tasks whose results are in this file for good (tasks 0 to N-1); "
                              "only while the run writes the file");
    return rc;
}

int h5__live_start(mpmap_h5 *f)
{
    if (!f)
        return MPMAP_EINVAL;
    if (!f->live.on || f->live.swmr || f->status != 0)
        return f->status;
    h5__quiet q;
    h5__quiet_begin(&q);
    int rc = create_delivered(f);
    if (rc == 0 && !f->trace.created)
        rc = h5__trace_create(f);
    if (rc == 0 && H5Fstart_swmr_write(f->file) < 0)
        rc =
            h5__fail(f, MPMAP_EHDF5, "cannot start writing '%s' for live readers", f->partial_path);
    if (rc == 0) {
        f->live.swmr = 1;
        f->live.published = 0;
        f->live.last = now();
    }
    h5__quiet_end(&q);
    return rc;
}

int h5__live_due(const mpmap_h5 *f, int64_t delivered)
{
    if (!f || !f->live.swmr)
        return 0;
    if (f->status != 0)
        return -1;
    return delivered != f->live.published && now() - f->live.last >= H5__LIVE_INTERVAL;
}

int h5__live_publish(mpmap_h5 *f, int64_t delivered)
{
    if (!f)
        return MPMAP_EINVAL;
    if (!f->live.swmr)
        return 0;
    if (f->status != 0)
        return f->status;
    h5__quiet q;
    h5__quiet_begin(&q);
    int rc = 0;
    for (mpmap_h5_dataset *d = f->datasets; d && rc == 0; d = d->next)
        if (H5Dflush(d->id) < 0)
            rc = h5__fail(f, MPMAP_EHDF5, "cannot flush '%s'", d->path);
    if (rc == 0)
        rc = h5__trace_flush(f);
    for (int i = 0; i < TRACE_NDS && rc == 0; i++)
        if (f->trace.ds[i] >= 0 && H5Dflush(f->trace.ds[i]) < 0)
            rc = h5__fail(f, MPMAP_EHDF5, "cannot flush '/trace'");
    /* Last, and flushed on its own: the count follows the data it counts. */
    if (rc == 0 && (H5Dwrite(f->live.delivered, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                             &delivered) < 0 ||
                    H5Dflush(f->live.delivered) < 0))
        rc = h5__fail(f, MPMAP_EHDF5, "cannot write '%s'", LIVE_DELIVERED);
    if (rc == 0) {
        f->live.published = delivered;
        f->live.last = now();
    }
    h5__quiet_end(&q);
    return rc;
}

/* ---- end ---------------------------------------------------------------------- */

/* Opens the file again for ordinary writing and restores the handle's ids;
 * removes what only the live file had. */
static int reopen(mpmap_h5 *f, int64_t trace_rows)
{
    hid_t fapl = live_fapl(0);
    if (fapl < 0 || (f->file = H5Fopen(f->partial_path, H5F_ACC_RDWR, fapl)) < 0) {
        h5__close_id(&fapl, H5Pclose);
        return h5__fail(f, MPMAP_EHDF5, "cannot open '%s' again", f->partial_path);
    }
    H5Pclose(fapl);
    if (H5Ldelete(f->file, LIVE_DELIVERED, H5P_DEFAULT) < 0)
        return h5__fail(f, MPMAP_EHDF5, "cannot remove '%s'", LIVE_DELIVERED);
    /* A run without chunks of its own (all restored) has no trace. */
    if (trace_rows == 0 && H5Ldelete(f->file, "/trace", H5P_DEFAULT) < 0)
        return h5__fail(f, MPMAP_EHDF5, "cannot remove the empty '/trace'");
    if (trace_rows > 0) {
        int rc = h5__trace_reopen(f);
        if (rc != 0)
            return rc;
        f->trace.created = 1;
        f->trace.on_disk = trace_rows;
    }
    for (mpmap_h5_dataset *d = f->datasets; d; d = d->next)
        if ((d->id = H5Dopen2(f->file, d->path, H5P_DEFAULT)) < 0)
            return h5__fail(f, MPMAP_EHDF5, "cannot open '%s' again", d->path);
    return 0;
}

int h5__live_end(mpmap_h5 *f)
{
    if (!f)
        return MPMAP_EINVAL;
    if (!f->live.swmr)
        return 0;
    h5__quiet q;
    h5__quiet_begin(&q);
    int rc = h5__settle(f);
    int64_t trace_rows = f->trace.on_disk;
    /* Everything closes, the dataset handles keep their place in the list. */
    for (mpmap_h5_dataset *d = f->datasets; d; d = d->next)
        if (d->id >= 0 && H5Dclose(d->id) < 0 && rc == 0)
            rc = h5__fail(f, MPMAP_EHDF5, "cannot close dataset '%s'", d->path);
    for (mpmap_h5_dataset *d = f->datasets; d; d = d->next)
        d->id = H5I_INVALID_HID;
    int trc = h5__trace_close(f);
    if (rc == 0)
        rc = trc;
    h5__live_close(f);
    if (f->file >= 0 && H5Fclose(f->file) < 0 && rc == 0)
        rc = h5__fail(f, MPMAP_EHDF5, "cannot close '%s'", f->partial_path);
    f->file = H5I_INVALID_HID;
    f->live.swmr = 0;
    if (rc == 0)
        rc = reopen(f, trace_rows);
    h5__quiet_end(&q);
    return rc;
}
