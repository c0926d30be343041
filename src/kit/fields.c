/*
 * The app kit's output of task records: one HDF5 dataset per field, written
 * in blocks of rows as records arrive (rank 0 only).
 *
 * Records reach the sink in ascending task order, each task once, so every
 * field's block always holds one contiguous run of tasks. A record holds the
 * fields one after the other; the block holds each field's values row after
 * row, which is the dataset's layout, so one block is one HDF5 write per
 * field however small the chunks are (--schedule dynamic --chunk 1 must not
 * turn into one write per task).
 *
 * A live output (--live, h5_live.c) also gets what the block holds about
 * once a second, and the count of tasks in the file, so readers follow the
 * run; the block itself is kept until it is full, as without --live.
 */
#define _POSIX_C_SOURCE 200809L
#include "h5_internal.h"
#include "kit_internal.h"
#include "rows.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of records gathered before one write per field. */
#define FIELDS_BLOCK_BYTES ((size_t)1 << 20)

static size_t type_size(mpmap_datatype t) { return t == MPMAP_INT32 ? 4 : 8; }

static hid_t type_h5(mpmap_datatype t)
{
    return t == MPMAP_DOUBLE  ? H5T_NATIVE_DOUBLE
           : t == MPMAP_INT64 ? H5T_NATIVE_INT64
                              : H5T_NATIVE_INT32;
}

int kit_fields_layout(mpmap_app_problem *p, char *msg, size_t msglen)
{
    size_t offset = 0;
    if (p->nfields < 0 || p->nfields > MPMAP_APP_MAX_FIELDS || p->ncoords < 0 ||
        p->ncoords > MPMAP_APP_MAX_COORDS) {
        snprintf(msg, msglen, "too many fields or coordinates");
        return MPMAP_EINVAL;
    }
    for (int i = 0; i < p->nfields; i++) {
        const mpmap_app_field *f = &p->fields[i];
        if (!f->name || f->rank < 0 || f->rank > MPMAP_APP_MAX_DIMS) {
            snprintf(msg, msglen, "field %d: no name or bad rank", i);
            return MPMAP_EINVAL;
        }
        int64_t count = 1;
        for (int k = 0; k < f->rank; k++) {
            if (f->shape[k] < 0 || !f->dims[k]) {
                snprintf(msg, msglen, "field '%s': axis %d has no name or a negative length",
                         f->name, k);
                return MPMAP_EINVAL;
            }
            count *= f->shape[k];
        }
        if (f->rank + (p->task_rank > 1 ? p->task_rank : 1) > MPMAP_H5_MAX_RANK) {
            snprintf(msg, msglen, "field '%s': more than %d axes with the task axes", f->name,
                     MPMAP_H5_MAX_RANK);
            return MPMAP_EINVAL;
        }
        p->offset[i] = offset;
        offset += (size_t)count * type_size(f->type);
    }
    p->record_size = offset;
    if (p->task_rank > 1) {
        int64_t product = 1;
        for (int k = 0; k < p->task_rank && k < MPMAP_APP_MAX_DIMS; k++)
            product *= p->task_dims[k] ? p->task_shape[k] : -1;
        if (p->task_rank > MPMAP_APP_MAX_DIMS || product != p->ntasks) {
            snprintf(msg, msglen, "the task grid does not match the %lld tasks",
                     (long long)p->ntasks);
            return MPMAP_EINVAL;
        }
    }
    return 0;
}

static int64_t field_count(const mpmap_app_field *f)
{
    int64_t count = 1;
    for (int k = 0; k < f->rank; k++)
        count *= f->shape[k];
    return count;
}

/* Memory for fields kept for the summary: refused before any allocation
 * when it cannot fit, so a huge sweep fails with a message, not an OOM kill. */
static int alloc_kept(kit_fields *w, const mpmap_app_problem *p, char *msg, size_t msglen)
{
    for (int i = 0; i < p->nfields; i++) {
        const mpmap_app_field *f = &p->fields[i];
        if (!f->keep)
            continue;
        size_t row = (size_t)field_count(f) * type_size(f->type);
        if (!mpmap_app_fits_in_memory(p->ntasks, row) ||
            !(w->kept[i] = malloc((size_t)p->ntasks * row + 1))) {
            snprintf(msg, msglen, "%lld results of '%s' do not fit in memory", (long long)p->ntasks,
                     f->name);
            return MPMAP_APP_USAGE;
        }
    }
    return 0;
}

/* The task axes: the grid, or the one axis named task_dim. */
static int task_axes(const mpmap_app_problem *p, int64_t *dims, const char **names)
{
    if (p->task_rank > 1) {
        for (int k = 0; k < p->task_rank; k++) {
            dims[k] = p->task_shape[k];
            names[k] = p->task_dims[k];
        }
        return p->task_rank;
    }
    dims[0] = p->ntasks;
    names[0] = p->task_dim ? p->task_dim : "task";
    return 1;
}

static int write_coords(mpmap_h5 *h5, const mpmap_app_problem *p, bool index_ones)
{
    for (int i = 0; i < p->ncoords; i++) {
        const mpmap_app_coord *c = &p->coords[i];
        char path[256];
        snprintf(path, sizeof path, "/%s", c->name);
        if (!index_ones && c->values &&
            mpmap_h5_write_coordinate(h5, path, type_h5(c->type), c->n, c->values, c->units,
                                      c->long_name) != 0)
            return MPMAP_APP_FAILED;
        if (!index_ones && c->strings &&
            mpmap_h5_write_string_coordinate(h5, path, c->n, c->strings, c->long_name) != 0)
            return MPMAP_APP_FAILED;
        /* Index coordinates (no values) exist once a dataset used them. */
        if (index_ones && !c->values && !c->strings &&
            ((c->long_name && mpmap_h5_attr_string(h5, path, "long_name", c->long_name) != 0) ||
             (c->units && mpmap_h5_attr_string(h5, path, "units", c->units) != 0)))
            return MPMAP_APP_FAILED;
    }
    return 0;
}

/* Creates /NAME with the task axes first, then `rank` axes of its own. */
static int create_dataset(kit_fields *w, const char *name, mpmap_datatype type, int rank,
                          const int64_t *shape, const char *const *dims, mpmap_h5_dataset **ds)
{
    int64_t all[MPMAP_H5_MAX_RANK];
    const char *names[MPMAP_H5_MAX_RANK];
    int n = task_axes(w->problem, all, names);
    for (int k = 0; k < rank; k++) {
        all[n + k] = shape[k];
        names[n + k] = dims[k];
    }
    char path[256];
    snprintf(path, sizeof path, "/%s", name);
    return mpmap_h5_dataset_create(w->h5, path, type_h5(type), n + rank, all, names, ds);
}

int kit_fields_open(kit_fields *w, mpmap_h5 *h5, const mpmap_app_problem *p, char *msg,
                    size_t msglen)
{
    memset(w, 0, sizeof *w);
    w->h5 = h5;
    w->problem = p;
    int code = alloc_kept(w, p, msg, msglen);
    if (code != 0)
        return code;
    /* Blocks hold whole rows of the first task axis: a row is one task,
     * or one slice of the grid. */
    int64_t dims[MPMAP_H5_MAX_RANK];
    const char *names[MPMAP_H5_MAX_RANK];
    int naxes = task_axes(p, dims, names);
    w->nrows = dims[0];
    w->row_tasks = 1;
    for (int k = 1; k < naxes; k++)
        w->row_tasks *= dims[k];
    size_t row = (p->record_size + (p->status ? sizeof(int32_t) : 0)) * (size_t)w->row_tasks;
    w->block_rows = (int64_t)(FIELDS_BLOCK_BYTES / (row > 0 ? row : 1));
    if (w->block_rows < 1)
        w->block_rows = 1;
    if (w->block_rows > w->nrows && w->nrows > 0)
        w->block_rows = w->nrows;
    size_t block_tasks = (size_t)(w->block_rows * w->row_tasks);
    if (write_coords(h5, p, false) != 0)
        return MPMAP_APP_FAILED;
    for (int i = 0; i < p->nfields; i++) {
        const mpmap_app_field *f = &p->fields[i];
        w->row_bytes[i] = (size_t)field_count(f) * type_size(f->type);
        w->block[i] = malloc(block_tasks * w->row_bytes[i] + 1);
        if (!w->block[i]) {
            snprintf(msg, msglen, "out of memory");
            return MPMAP_APP_FAILED;
        }
        char path[256];
        snprintf(path, sizeof path, "/%s", f->name);
        if (create_dataset(w, f->name, f->type, f->rank, f->shape, f->dims, &w->ds[i]) != 0 ||
            (f->units && mpmap_h5_attr_string(h5, path, "units", f->units) != 0) ||
            (f->long_name && mpmap_h5_attr_string(h5, path, "long_name", f->long_name) != 0))
            return MPMAP_APP_FAILED;
    }
    if (p->status) {
        w->block_status = malloc(block_tasks * sizeof(int32_t) + 1);
        if (!w->block_status) {
            snprintf(msg, msglen, "out of memory");
            return MPMAP_APP_FAILED;
        }
        if (create_dataset(w, "status", MPMAP_INT32, 0, NULL, NULL, &w->status_ds) != 0 ||
            mpmap_h5_attr_string(h5, "/status", "long_name", "outcome of each task (0 = ok)") !=
                0 ||
            (p->status_codes && mpmap_h5_attr_string(h5, "/status", "codes", p->status_codes) != 0))
            return MPMAP_APP_FAILED;
    }
    /* A live file is complete in structure from here on (SWMR). */
    if (write_coords(h5, p, true) != 0 || h5__live_start(h5) != 0)
        return MPMAP_APP_FAILED;
    return 0;
}

static int64_t delivered(const kit_fields *w)
{
    return w->block_first * w->row_tasks + w->block_count;
}

/* A live file: writes the held tasks (a row of a grid that is not complete
 * yet padded with zeros, overwritten when it is) without emptying the
 * block, then publishes the count. */
static int live_sync(kit_fields *w)
{
    int64_t rows = (w->block_count + w->row_tasks - 1) / w->row_tasks;
    int64_t pad = rows * w->row_tasks - w->block_count;
    for (int i = 0; rows > 0 && i < w->problem->nfields; i++) {
        memset(w->block[i] + (size_t)w->block_count * w->row_bytes[i], 0,
               (size_t)pad * w->row_bytes[i]);
        if (mpmap_h5_dataset_write_rows(w->ds[i], w->block_first, rows, w->block[i]) != 0)
            return -1;
    }
    if (rows > 0 && w->status_ds) {
        memset(w->block_status + w->block_count, 0, (size_t)pad * sizeof(int32_t));
        if (mpmap_h5_dataset_write_rows(w->status_ds, w->block_first, rows, w->block_status) != 0)
            return -1;
    }
    return h5__live_publish(w->h5, delivered(w)) != 0 ? -1 : 0;
}

int kit_fields_live_tick(kit_fields *w)
{
    if (!w->problem)
        return 0;
    int due = h5__live_due(w->h5, delivered(w));
    return due < 0 ? -1 : due > 0 ? live_sync(w) : 0;
}

/* Writes the held rows of every field and empties the block. */
int kit_fields_flush(kit_fields *w)
{
    int64_t rows = w->block_count / w->row_tasks;
    if (rows == 0)
        return 0;
    for (int i = 0; !w->rows && i < w->problem->nfields; i++)
        if (mpmap_h5_dataset_write_rows(w->ds[i], w->block_first, rows, w->block[i]) != 0)
            return -1;
    if (w->status_ds &&
        mpmap_h5_dataset_write_rows(w->status_ds, w->block_first, rows, w->block_status) != 0)
        return -1;
    w->block_first += rows;
    w->block_count = 0;
    return 0;
}

/* A failed task's record: NaN in floating fields (never a plausible
 * value), 0 in integer ones. */
static void fill_failed(const mpmap_app_field *f, char *dst, size_t bytes)
{
    if (f->type == MPMAP_DOUBLE) {
        const double nan = NAN;
        for (size_t b = 0; b < bytes; b += sizeof nan)
            memcpy(dst + b, &nan, sizeof nan);
    } else {
        memset(dst, 0, bytes);
    }
}

/* Counts one more task in the block (its status, when kept) and writes
 * the block out once it holds its rows. 0 or -1. */
static int hold_task(kit_fields *w, int32_t code)
{
    if (w->block_status)
        w->block_status[w->block_count] = code;
    w->failed += code != 0;
    w->block_count++;
    int64_t rows =
        w->nrows - w->block_first < w->block_rows ? w->nrows - w->block_first : w->block_rows;
    return w->block_count == rows * w->row_tasks ? kit_fields_flush(w) : 0;
}

/* --write ranks: the rows are in the file already; what is left here is
 * the status of each task and the fill of the failed ones. */
static int rows_sink(kit_fields *w, int64_t begin, int64_t end, const int32_t *status)
{
    const mpmap_app_problem *p = w->problem;
    char msg[MPMAP_H5_ERROR_MAX];
    for (int64_t t = begin; t < end; t++) {
        int32_t code = status ? status[t - begin] : 0;
        for (int i = 0; code != 0 && i < p->nfields; i++) {
            fill_failed(&p->fields[i], w->block[i], w->row_bytes[i]);
            if (kit_rows_write_value(w->rows, i, t, w->block[i], msg, sizeof msg) != 0) {
                h5__fail(w->h5, MPMAP_EIO, "%s", msg);
                return -1;
            }
        }
        if (hold_task(w, code) != 0)
            return -1;
    }
    return 0;
}

int kit_fields_sink(int64_t begin, int64_t end, const void *records, const int32_t *status,
                    void *context)
{
    kit_fields *w = context;
    if (w->rows) {
        if (begin != w->block_first * w->row_tasks + w->block_count)
            return -1;
        return rows_sink(w, begin, end, status);
    }
    const mpmap_app_problem *p = w->problem;
    const char *in = records;
    int64_t first = w->block_first * w->row_tasks + w->block_count;
    if (begin != first)
        return -1; /* out of order: the library's contract is broken */
    for (int i = 0; i < p->nfields; i++)
        if (w->kept[i])
            for (int64_t t = begin; t < end; t++) {
                char *dst = w->kept[i] + (size_t)t * w->row_bytes[i];
                if (status && status[t - begin] != 0)
                    fill_failed(&p->fields[i], dst, w->row_bytes[i]);
                else
                    memcpy(dst, in + (size_t)(t - begin) * p->record_size + p->offset[i],
                           w->row_bytes[i]);
            }
    /* One field, one task axis, no status: the record is the dataset's
     * row, so large pieces go straight to the file. */
    if (p->nfields == 1 && w->row_tasks == 1 && !w->status_ds && w->block_count == 0 &&
        end - begin >= w->block_rows) {
        if (mpmap_h5_dataset_write_rows(w->ds[0], begin, end - begin, records) != 0)
            return -1;
        w->block_first = end;
        return kit_fields_live_tick(w);
    }
    for (int64_t t = begin; t < end; t++) {
        const char *rec = in + (size_t)(t - begin) * p->record_size;
        int32_t code = status ? status[t - begin] : 0;
        for (int i = 0; i < p->nfields; i++) {
            char *dst = w->block[i] + (size_t)w->block_count * w->row_bytes[i];
            if (code != 0)
                fill_failed(&p->fields[i], dst, w->row_bytes[i]);
            else
                memcpy(dst, rec + p->offset[i], w->row_bytes[i]);
        }
        if (hold_task(w, code) != 0)
            return -1;
    }
    return kit_fields_live_tick(w);
}

int kit_fields_close(kit_fields *w)
{
    int rc = kit_fields_flush(w);
    /* Live readers see the whole count before the file leaves SWMR mode. */
    if (rc == 0 && w->h5 && h5__live_publish(w->h5, delivered(w)) != 0)
        rc = -1;
    for (int i = 0; i < MPMAP_APP_MAX_FIELDS; i++) {
        if (w->ds[i] && mpmap_h5_dataset_close(w->ds[i]) != 0)
            rc = -1;
        w->ds[i] = NULL;
        free(w->block[i]);
        w->block[i] = NULL;
    }
    if (w->status_ds && mpmap_h5_dataset_close(w->status_ds) != 0)
        rc = -1;
    w->status_ds = NULL;
    free(w->block_status);
    w->block_status = NULL;
    /* What follows (the app's summary, provenance) creates objects and
     * attributes, which a file in SWMR mode cannot. */
    if (rc == 0 && w->h5 && h5__live_end(w->h5) != 0)
        rc = -1;
    return rc;
}

void kit_fields_discard(kit_fields *w)
{
    for (int i = 0; i < MPMAP_APP_MAX_FIELDS; i++) {
        if (w->ds[i])
            mpmap_h5_dataset_close(w->ds[i]);
        free(w->block[i]);
        w->ds[i] = NULL;
        w->block[i] = NULL;
    }
    if (w->status_ds)
        mpmap_h5_dataset_close(w->status_ds);
    w->status_ds = NULL;
    free(w->block_status);
    w->block_status = NULL;
}

void kit_fields_free(kit_fields *w)
{
    kit_fields_discard(w);
    for (int i = 0; i < MPMAP_APP_MAX_FIELDS; i++) {
        free(w->kept[i]);
        w->kept[i] = NULL;
    }
}

const void *kit_fields_data(const kit_fields *w, const char *name)
{
    if (!w->problem)
        return NULL;
    for (int i = 0; i < w->problem->nfields; i++)
        if (strcmp(w->problem->fields[i].name, name) == 0)
            return w->kept[i];
    return NULL;
}
