/*
 * Internal pieces of the HDF5 output (include/mpmap_h5.h), shared by the
 * src/kit/h5_*.c files and not installed:
 *
 *   h5_error.c       quiet HDF5 error stack, one-line messages, sticky failure
 *   h5_file.c        output path checks, create .partial, commit, abort, full disk
 *   h5_path.c        object paths and dimension names
 *   h5_dataset.c     element types, chunk shapes, datasets and row writes
 *   h5_coord.c       coordinates (numeric and string) and dimension scales
 *   h5_attr.c        attributes and CF attributes
 *   h5_provenance.c  provenance attributes and the quoted command line
 *   h5_trace.c       the /trace group
 *   h5_read.c        reading FILE.h5:/DATASET input matrices
 *   h5_live.c        --live: the output readable while it is written (SWMR)
 *
 * Shared internal functions are named h5__*; everything else stays static in
 * its file. Only rank 0 calls any of this. The h5__live_* functions are also
 * called by the kit (app.c, fields.c): --live is an option of the kit's
 * output, not of the public mpmap_h5 API.
 */
#ifndef MPMAP_H5_INTERNAL_H
#define MPMAP_H5_INTERNAL_H

#include "mpmap_h5.h"

#include <stddef.h>
#include <stdint.h>

/* Rows per chunk of the extendible trace datasets. */
#define H5__TRACE_CHUNK 256

/* Element types a dataset or coordinate may have. */
typedef enum h5__kind { H5__F64 = 0, H5__I64, H5__I32 } h5__kind;

/* The trace columns after the /trace/chunk coordinate, in file order. */
enum { TRACE_CHUNK = 0, TRACE_BEGIN, TRACE_END, TRACE_RANK, TRACE_START, TRACE_FINISH, TRACE_NDS };

typedef struct h5__trace {
    int created;
    hid_t group;
    hid_t ds[TRACE_NDS];
    int64_t on_disk; /* rows already in the file */
    int buffered;    /* rows waiting in the arrays below */
    int64_t index[MPMAP_H5_TRACE_BUFFER];
    int64_t begin[MPMAP_H5_TRACE_BUFFER];
    int64_t end[MPMAP_H5_TRACE_BUFFER];
    int32_t rank[MPMAP_H5_TRACE_BUFFER];
    double start[MPMAP_H5_TRACE_BUFFER];
    double finish[MPMAP_H5_TRACE_BUFFER];
} h5__trace;

/*
 * A live output (--live): written in the HDF5 1.10 format and, while the run
 * goes on, in SWMR mode, so other processes can read it. /tasks_delivered
 * (scalar int64) says how many leading tasks are in the file for good.
 */
typedef struct h5__live {
    int on;            /* the file is in the SWMR-capable format */
    int swmr;          /* SWMR writing has started and not ended */
    hid_t delivered;   /* /tasks_delivered, open while swmr */
    double last;       /* monotonic time of the last publication */
    int64_t published; /* the count it published */
} h5__live;

struct mpmap_h5 {
    hid_t file;
    int force;
    int status;    /* first failure, sticky: commit refuses when non-zero */
    int sys_errno; /* the system error behind that failure (ENOSPC...), or 0 */
    char error[MPMAP_H5_ERROR_MAX];
    char *final_path;
    char *partial_path;
    mpmap_h5_dataset *datasets; /* open dataset handles, closed by commit/abort */
    h5__trace trace;
    h5__live live;
    /* Datasets created now get contiguous storage allocated at creation and
     * never filled, so other ranks can write their rows in place at a fixed
     * byte offset (h5__set_rows_in_place). */
    int rows_in_place;
    char *keep_path; /* a failed commit renames the partial file here (NULL: removes it) */
};

struct mpmap_h5_dataset {
    mpmap_h5 *file;
    hid_t id;
    h5__kind kind;
    int rank;
    hsize_t dims[MPMAP_H5_MAX_RANK];
    hsize_t row_elems; /* elements in one row (product of dims[1..]) */
    char *path;
    mpmap_h5_dataset *prev, *next;
};

/* ---- h5_error.c: errors ------------------------------------------------ */

/* The caller's HDF5 automatic error printing, saved by h5__quiet_begin. */
typedef struct h5__quiet {
    H5E_auto2_t func;
    void *data;
    int saved;
} h5__quiet;

/* Turns HDF5's error printing off / restores the saved setting; every public
 * entry point brackets its HDF5 calls with these. */
void h5__quiet_begin(h5__quiet *q);
void h5__quiet_end(const h5__quiet *q);
/* The system error (errno value) on HDF5's error stack, or 0. */
int h5__errno(void);
/* Formats a one-line message into err (may be NULL) and returns code; with
 * MPMAP_EHDF5, ": <HDF5's reason>" is appended. */
__attribute__((format(printf, 4, 5))) int h5__fail_buf(char *err, size_t errlen, int code,
                                                       const char *fmt, ...);
/* Same, but records the message as f's first (sticky) failure. */
__attribute__((format(printf, 3, 4))) int h5__fail(mpmap_h5 *f, int code, const char *fmt, ...);
/* Closes *id with closer when it is valid and invalidates it. */
void h5__close_id(hid_t *id, herr_t (*closer)(hid_t));

/* ---- h5_path.c: object paths and dimension names ----------------------- */

/* "x/y" -> "/x/y" (malloc'd), or NULL for an invalid path. */
char *h5__absolute_path(const char *path);
/* "/a/b" -> "b". */
const char *h5__last_component(const char *abs);
/* Absolute path of dimension `dim` of the dataset at dataset_abs, or NULL. */
char *h5__resolve_dim(const char *dataset_abs, const char *dim);
/* Whether the two absolute paths are in the same group. */
int h5__same_group(const char *dim_abs, const char *dataset_abs);
int h5__object_exists(hid_t file, const char *abs);
/* Link creation list that creates missing intermediate groups. */
hid_t h5__make_lcpl(void);

/* ---- h5_dataset.c: element types and datasets -------------------------- */

/* The kind of a native type; MPMAP_EINVAL for any other type. */
int h5__type_kind(hid_t type, h5__kind *kind);
hid_t h5__kind_mem_type(h5__kind kind);
hid_t h5__kind_file_type(h5__kind kind);
size_t h5__kind_size(h5__kind kind);
/* Dataset creation and access lists; -1 on failure (ids to be closed). */
int h5__make_plists(int rank, const hsize_t *dims, const hsize_t *chunk_override, size_t elem,
                    hid_t *dcpl, hid_t *dapl);
/* Unlinks d from its file's list and frees it (its id is closed already). */
void h5__dataset_free(mpmap_h5_dataset *d);
/* Datasets created from now on (on = 1) until called with 0 are laid out so
 * that rows can be written into the file without HDF5: contiguous, their
 * storage allocated at once, never filled. */
void h5__set_rows_in_place(mpmap_h5 *f, int on);
/* Byte offset of such a dataset's data in the file; 0 or -1. */
int h5__dataset_offset(const mpmap_h5_dataset *d, int64_t *offset);
/* Writes what HDF5 holds in memory to the file, the disk space it needs
 * reserved first (h5__settle); 0 or -1 (f's error set). */
int h5__flush(mpmap_h5 *f);
/* A commit that fails renames the partial file to path instead of removing
 * it (h5_file.c); 0 or -1 (out of memory). */
int h5__keep_on_failure(mpmap_h5 *f, const char *path);

/* ---- h5_coord.c: coordinates and dimension scales ---------------------- */

int h5__make_coordinate(mpmap_h5 *f, const char *abs, h5__kind kind, int64_t n, const void *values,
                        int extendible, const char *units, const char *long_name, hid_t *keep);
int h5__open_or_make_scale(mpmap_h5 *f, const char *abs, const char *dataset, int axis, hsize_t len,
                           hid_t *scale);

/* ---- h5_attr.c: attributes --------------------------------------------- */

typedef enum h5__attr_kind {
    ATTR_STRING,
    ATTR_DOUBLE,
    ATTR_INT64,
    ATTR_DOUBLES,
    ATTR_INT64S
} h5__attr_kind;

/* Variable-length UTF-8 string type (to be closed), or negative. */
hid_t h5__string_type(void);
/* units and long_name attributes on the open object obj, when not NULL. */
int h5__set_cf_attrs(mpmap_h5 *f, hid_t obj, const char *path, const char *units,
                     const char *long_name);
/* One attribute on the object at obj_path (NULL or "/" = root). */
int h5__attr_at(mpmap_h5 *f, const char *obj_path, const char *name, h5__attr_kind kind, size_t n,
                const void *value);

/* ---- h5_file.c: the file's life ---------------------------------------- */

/* Closes every id the handle owns and the file; the first close failure. */
int h5__close_all(mpmap_h5 *f);
/* Points the file's descriptor at an anonymous in-memory file (a file to be
 * thrown away: its closing writes cannot fail on a full disk). */
void h5__discard_storage(mpmap_h5 *f);
/* Flushes the trace and then the whole file after making sure the disk can
 * take what the flush writes; on failure the storage is discarded. */
int h5__settle(mpmap_h5 *f);

/* ---- h5_trace.c: the /trace group -------------------------------------- */

void h5__trace_init(h5__trace *t);
/* Creates the (empty) trace group and columns now rather than with the
 * first entry: a live file cannot create objects once SWMR writing runs. */
int h5__trace_create(mpmap_h5 *f);
/* Opens the trace's group and columns again (the file was reopened). */
int h5__trace_reopen(mpmap_h5 *f);
/* Appends the buffered trace rows to the file. */
int h5__trace_flush(mpmap_h5 *f);
/* Closes the trace ids; returns the first close failure. */
int h5__trace_close(mpmap_h5 *f);

/* ---- h5_live.c: --live --------------------------------------------------- */

/* Seconds between two publications of a live file. */
#define H5__LIVE_INTERVAL 1.0

void h5__live_init(h5__live *l);
/* Right after mpmap_h5_create, before anything but root attributes exists:
 * makes the new file SWMR-capable (it is created again in the 1.10 format,
 * its root attributes carried over). */
int h5__live_format(mpmap_h5 *f);
/* After every object the run writes into has been created: creates
 * /tasks_delivered (0) and the trace, then starts SWMR writing. A no-op for
 * a file that is not live. */
int h5__live_start(mpmap_h5 *f);
/* Whether a live file is due for a publication: 1 when `delivered` differs
 * from the count last published, H5__LIVE_INTERVAL after it; -1 when writing
 * it has failed (the run is to stop); 0 otherwise and for any other file. */
int h5__live_due(const mpmap_h5 *f, int64_t delivered);
/* Flushes the open datasets, then records that tasks [0, delivered) are in
 * the file and final: readers never see a count ahead of the data. 0 for a
 * file that is not live. */
int h5__live_publish(mpmap_h5 *f, int64_t delivered);
/* Ends SWMR writing: settles and closes the file, opens it again for
 * ordinary writing (what follows creates objects and attributes) and removes
 * what only the live file had (/tasks_delivered, an empty trace). The open
 * dataset handles stay valid. 0 for a file that is not live. */
int h5__live_end(mpmap_h5 *f);
/* Closes the live file's own ids (part of closing the file). */
void h5__live_close(mpmap_h5 *f);

#endif
