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
 *
 * Shared internal functions are named h5__*; everything else stays static in
 * its file. Only rank 0 calls any of this.
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

struct mpmap_h5 {
    hid_t file;
    int force;
    int status; /* first failure, sticky: commit refuses when non-zero */
    int sys_errno; /* the system error behind that failure (ENOSPC...), or 0 */
    char error[MPMAP_H5_ERROR_MAX];
    char *final_path;
    char *partial_path;
    mpmap_h5_dataset *datasets; /* open dataset handles, closed by commit/abort */
    h5__trace trace;
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

/* ---- h5_coord.c: coordinates and dimension scales ---------------------- */

int h5__make_coordinate(mpmap_h5 *f, const char *abs, h5__kind kind, int64_t n,
                        const void *values, int extendible, const char *units,
                        const char *long_name, hid_t *keep);
int h5__open_or_make_scale(mpmap_h5 *f, const char *abs, const char *dataset, int axis,
                           hsize_t len, hid_t *scale);

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
int h5__attr_at(mpmap_h5 *f, const char *obj_path, const char *name, h5__attr_kind kind,
                size_t n, const void *value);

/* ---- h5_trace.c: the /trace group -------------------------------------- */

void h5__trace_init(h5__trace *t);
/* Appends the buffered trace rows to the file. */
int h5__trace_flush(mpmap_h5 *f);
/* Closes the trace ids; returns the first close failure. */
int h5__trace_close(mpmap_h5 *f);

#endif
