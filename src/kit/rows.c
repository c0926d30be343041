/* --write ranks: rows written in place by the rank that computed them (see rows.h). */
#define _POSIX_C_SOURCE 200809L
#include "rows.h"

#include "h5_internal.h"
#include "mpmap_output.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bytes of one field gathered from the records before one pwrite. */
#define ROWS_GATHER_BYTES ((size_t)1 << 20)

const char *kit_rows_refusal(const mpmap_app_problem *p, int live)
{
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    (void)p;
    (void)live;
    return "--write ranks needs a little-endian machine (the file's layout)";
#else
    if (live)
        return "--write ranks cannot be used with --live (a live file is written by rank 0 alone)";
    if (p->nfields == 0)
        return "--write ranks: this run writes no result per task";
    if (p->reduce_op != MPMAP_REDUCE_NONE)
        return "--write ranks: this run folds its results on rank 0; use --write rank0";
    for (int i = 0; i < p->nfields; i++)
        if (p->fields[i].keep)
            return "--write ranks: this run's summary needs every result on rank 0; use --write "
                   "rank0";
    return NULL;
#endif
}

int kit_rows_plan(kit_rows *r, const kit_fields *w, const char *path)
{
    const mpmap_app_problem *p = w->problem;
    memset(r, 0, sizeof *r);
    r->fd = -1;
    r->l.nfields = p->nfields;
    r->l.ntasks = p->ntasks;
    r->l.record_size = (int64_t)p->record_size;
    snprintf(r->l.path, sizeof r->l.path, "%s", path);
    for (int i = 0; i < p->nfields; i++) {
        if (h5__dataset_offset(w->ds[i], &r->l.base[i]) != 0)
            return -1;
        r->l.row_bytes[i] = (int64_t)w->row_bytes[i];
        r->l.in_record[i] = (int64_t)p->offset[i];
    }
    /* Every object is in the file before other processes write into it:
     * from here on HDF5 only adds (status, trace, attributes). */
    return h5__flush(w->h5);
}

void kit_rows_share(kit_rows *r, MPI_Comm comm)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    if (rank != 0) {
        memset(r, 0, sizeof *r);
        r->fd = -1;
    }
    MPI_Bcast(&r->l, (int)sizeof r->l, MPI_BYTE, 0, comm);
}

static void describe(const kit_rows *r, int e, char *msg, size_t msglen)
{
    mpmap_output_describe_failure(r->l.path, e, NULL, msg, msglen);
}

int kit_rows_open(kit_rows *r, char *msg, size_t msglen)
{
    r->fd = open(r->l.path, O_WRONLY | O_CLOEXEC);
    if (r->fd < 0) {
        snprintf(msg, msglen, "cannot open '%s' to write results: %s", r->l.path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Writes all n bytes at offset; 0 or the errno of the failure. */
static int write_at(int fd, const char *data, size_t n, int64_t offset)
{
    while (n > 0) {
        ssize_t w = pwrite(fd, data, n, (off_t)offset);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? errno : EIO;
        data += w;
        n -= (size_t)w;
        offset += w;
    }
    return 0;
}

static int gather_room(kit_rows *r, size_t bytes)
{
    if (r->scratch_size >= bytes)
        return 0;
    char *grown = realloc(r->scratch, bytes);
    if (!grown)
        return ENOMEM;
    r->scratch = grown;
    r->scratch_size = bytes;
    return 0;
}

/* Field i of tasks [begin, end) from their records to the file. */
static int store_field(kit_rows *r, int i, int64_t begin, int64_t end, const char *records)
{
    size_t rs = (size_t)r->l.record_size, row = (size_t)r->l.row_bytes[i];
    int64_t at = r->l.base[i] + begin * r->l.row_bytes[i];
    if (r->l.nfields == 1 && row == rs) /* the records are the rows */
        return write_at(r->fd, records, (size_t)(end - begin) * rs, at);
    int64_t batch = (int64_t)(ROWS_GATHER_BYTES / (row ? row : 1));
    if (batch < 1)
        batch = 1;
    if (batch > end - begin)
        batch = end - begin;
    int e = gather_room(r, (size_t)batch * row);
    for (int64_t t = begin; e == 0 && t < end; t += batch) {
        int64_t n = end - t < batch ? end - t : batch;
        for (int64_t k = 0; k < n; k++)
            memcpy(r->scratch + (size_t)k * row,
                   records + (size_t)(t - begin + k) * rs + (size_t)r->l.in_record[i], row);
        e = write_at(r->fd, r->scratch, (size_t)n * row, at);
        at += n * r->l.row_bytes[i];
    }
    return e;
}

int kit_rows_store(int64_t begin, int64_t end, const void *records, char *message, void *context)
{
    kit_rows *r = context;
    int e = r->fd < 0 ? EBADF : 0;
    for (int i = 0; e == 0 && i < r->l.nfields; i++)
        e = store_field(r, i, begin, end, records);
    /* Not synced here: the runtime logs the range as done only after
     * kit_rows_sync, once per checkpoint interval. */
    if (e != 0) {
        describe(r, e, message, MPMAP_MESSAGE_MAX);
        return -1;
    }
    r->stored += end - begin;
    return 0;
}

int kit_rows_sync(char *message, void *context)
{
    kit_rows *r = context;
    int e = r->fd < 0 ? EBADF : 0;
    if (e == 0 && fdatasync(r->fd) != 0)
        e = errno;
    if (e != 0) {
        describe(r, e, message, MPMAP_MESSAGE_MAX);
        return -1;
    }
    return 0;
}

int kit_rows_write_value(kit_rows *r, int field, int64_t task, const void *value, char *msg,
                         size_t msglen)
{
    int e = r->fd < 0 ? EBADF : 0;
    if (e == 0)
        e = write_at(r->fd, value, (size_t)r->l.row_bytes[field],
                     r->l.base[field] + task * r->l.row_bytes[field]);
    if (e != 0) {
        describe(r, e, msg, msglen);
        return -1;
    }
    return 0;
}

int kit_rows_close(kit_rows *r, char *msg, size_t msglen)
{
    int rc = 0;
    if (r->fd >= 0) {
        /* Rank 0's commit syncs the file from its host; on a shared file
         * system each writer must push its own writes first. */
        if (fdatasync(r->fd) != 0) {
            describe(r, errno, msg, msglen);
            rc = -1;
        }
        if (close(r->fd) != 0 && rc == 0) {
            describe(r, errno, msg, msglen);
            rc = -1;
        }
    }
    r->fd = -1;
    free(r->scratch);
    r->scratch = NULL;
    r->scratch_size = 0;
    return rc;
}

void kit_rows_drop(kit_rows *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    free(r->scratch);
    r->scratch = NULL;
    r->scratch_size = 0;
}
