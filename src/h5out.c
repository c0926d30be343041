/*
 * The HDF5 output file of an mpmap app (see include/mpmap_h5.h): atomic
 * create/commit, datasets whose every axis carries a dimension scale so that
 * netCDF readers (h5netcdf, xarray) see coordinates, CF attributes,
 * provenance, the chunk trace, and reading FILE.h5:/DATASET matrices.
 */
#define _GNU_SOURCE /* memfd_create, fallocate */

#include "mpmap_h5.h"

#include <hdf5_hl.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h> /* memfd_create */
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Datasets above this size are chunked, in chunks of about this size. */
#define H5OUT_CHUNK_BYTES ((size_t)1 << 20)
/* Per-dataset chunk cache: a few chunks, so row blocks that straddle chunk
 * boundaries are assembled in memory instead of read back from disk. */
#define H5OUT_CACHE_BYTES ((size_t)4 << 20)
#define H5OUT_CACHE_SLOTS 521
/* Elements of an index coordinate written per call (one 1 MiB chunk). */
#define H5OUT_INDEX_BLOCK ((size_t)1 << 17)
/* Rows per chunk of the extendible trace datasets. */
#define H5OUT_TRACE_CHUNK 256

typedef enum h5out_kind { H5OUT_F64 = 0, H5OUT_I64, H5OUT_I32 } h5out_kind;

/* The trace columns after the /trace/chunk coordinate, in file order. */
enum { TRACE_CHUNK = 0, TRACE_BEGIN, TRACE_END, TRACE_RANK, TRACE_START, TRACE_FINISH, TRACE_NDS };

typedef struct h5out_trace {
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
} h5out_trace;

struct mpmap_h5 {
    hid_t file;
    int force;
    int status; /* first failure, sticky: commit refuses when non-zero */
    int sys_errno; /* the system error behind that failure (ENOSPC...), or 0 */
    char error[MPMAP_H5_ERROR_MAX];
    char *final_path;
    char *partial_path;
    mpmap_h5_dataset *datasets; /* open dataset handles, closed by commit/abort */
    h5out_trace trace;
};

struct mpmap_h5_dataset {
    mpmap_h5 *file;
    hid_t id;
    h5out_kind kind;
    int rank;
    hsize_t dims[MPMAP_H5_MAX_RANK];
    hsize_t row_elems; /* elements in one row (product of dims[1..]) */
    char *path;
    mpmap_h5_dataset *prev, *next;
};

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

/* HDF5 prints its error stack to stderr by default; each public entry point
 * turns that off and restores the caller's setting on the way out, so the
 * library changes no process-wide state. */
typedef struct h5out_quiet {
    H5E_auto2_t func;
    void *data;
    int saved;
} h5out_quiet;

static void quiet_begin(h5out_quiet *q)
{
    q->saved = H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data) >= 0;
    (void)H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void quiet_end(const h5out_quiet *q)
{
    if (q->saved)
        (void)H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
}

typedef struct h5out_walk {
    char *buf;
    size_t len;
} h5out_walk;

static herr_t walk_innermost(unsigned n, const H5E_error2_t *e, void *data)
{
    h5out_walk *w = data;
    if (n == 0 && e && e->desc)
        snprintf(w->buf, w->len, "%s", e->desc);
    return 0;
}

static herr_t walk_errno(unsigned n, const H5E_error2_t *e, void *data)
{
    (void)n;
    int *found = data;
    const char *at = e && e->desc ? strstr(e->desc, "errno = ") : NULL;
    if (!*found && at)
        *found = atoi(at + 8);
    return 0;
}

/* The system error HDF5's file driver met (its descriptions carry
 * "errno = 28, error message = ..."), or 0: lets callers tell a full disk
 * from a broken file without parsing HDF5's text themselves. */
static int h5_errno(void)
{
    int found = 0;
    if (H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_errno, &found) < 0 || found < 0)
        return 0;
    return found;
}

/* The most specific description on HDF5's error stack (where the failure was
 * detected, e.g. "unable to open file: ... errno = 2 ..."), or just the
 * system error's text when there is one (HDF5's version of it carries
 * timestamps, descriptors and buffer addresses); must be called before any
 * other HDF5 call clears the stack. */
static void h5_detail(char *buf, size_t len)
{
    h5out_walk w = {buf, len};
    buf[0] = '\0';
    int sys = h5_errno();
    if (sys > 0)
        snprintf(buf, len, "%s", strerror(sys));
    else if (H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_innermost, &w) < 0 || !buf[0])
        snprintf(buf, len, "HDF5 call failed");
}

static void one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r')
            *s = ' ';
}

/* Formats into err (if any) and optionally appends ": <HDF5 detail>". */
static void vformat(char *err, size_t errlen, int with_h5, const char *fmt, va_list ap)
{
    char detail[512];
    if (with_h5)
        h5_detail(detail, sizeof detail);
    if (!err || errlen == 0)
        return;
    vsnprintf(err, errlen, fmt, ap);
    if (with_h5) {
        size_t used = strlen(err);
        if (used < errlen)
            snprintf(err + used, errlen - used, ": %s", detail);
    }
    one_line(err);
}

__attribute__((format(printf, 4, 5))) static int fail_buf(char *err, size_t errlen, int code,
                                                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vformat(err, errlen, code == MPMAP_EHDF5, fmt, ap);
    va_end(ap);
    return code;
}

/* Records the first failure on the handle; later ones keep the first text
 * because that is the cause, the rest usually follow from it. */
__attribute__((format(printf, 3, 4))) static int fail(mpmap_h5 *f, int code, const char *fmt,
                                                      ...)
{
    int sys = code == MPMAP_EIO ? errno : 0; /* callers fail() right after the system call */
    char detail[512];
    if (code == MPMAP_EHDF5) {
        sys = h5_errno();
        h5_detail(detail, sizeof detail); /* before anything clears the stack */
    }
    if (f->status == 0) {
        f->sys_errno = sys;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(f->error, sizeof f->error, fmt, ap);
        va_end(ap);
        if (code == MPMAP_EHDF5) {
            size_t used = strlen(f->error);
            snprintf(f->error + used, sizeof f->error - used, ": %s", detail);
        }
        one_line(f->error);
        f->status = code;
    }
    return code;
}

static void close_id(hid_t *id, herr_t (*closer)(hid_t))
{
    if (*id >= 0)
        (void)closer(*id);
    *id = H5I_INVALID_HID;
}

/* ------------------------------------------------------------------------ */
/* Types and paths                                                           */

static int type_kind(hid_t type, h5out_kind *kind)
{
    if (H5Tequal(type, H5T_NATIVE_DOUBLE) > 0)
        *kind = H5OUT_F64;
    else if (H5Tequal(type, H5T_NATIVE_INT64) > 0)
        *kind = H5OUT_I64;
    else if (H5Tequal(type, H5T_NATIVE_INT32) > 0)
        *kind = H5OUT_I32;
    else
        return MPMAP_EINVAL;
    return 0;
}

static hid_t kind_mem_type(h5out_kind kind)
{
    switch (kind) {
    case H5OUT_F64: return H5T_NATIVE_DOUBLE;
    case H5OUT_I64: return H5T_NATIVE_INT64;
    default: return H5T_NATIVE_INT32;
    }
}

/* Little-endian standard types, so the file reads the same everywhere. */
static hid_t kind_file_type(h5out_kind kind)
{
    switch (kind) {
    case H5OUT_F64: return H5T_IEEE_F64LE;
    case H5OUT_I64: return H5T_STD_I64LE;
    default: return H5T_STD_I32LE;
    }
}

static size_t kind_size(h5out_kind kind)
{
    return kind == H5OUT_I32 ? 4 : 8;
}

/* Absolute form of an object path: "x/y" -> "/x/y". Rejects empty names,
 * empty components ("a//b", trailing '/') and "." or ".." components, which
 * would make the group and dimension rules below ambiguous. */
static char *absolute_path(const char *path)
{
    if (!path || !*path || strcmp(path, "/") == 0)
        return NULL;
    size_t len = strlen(path);
    int lead = path[0] != '/';
    char *abs = malloc(len + 2);
    if (!abs)
        return NULL;
    snprintf(abs, len + 2, "%s%s", lead ? "/" : "", path);
    for (const char *c = abs; *c; c++) {
        if (*c != '/')
            continue;
        const char *next = c + 1;
        size_t comp = strcspn(next, "/");
        if (comp == 0 || (comp == 1 && next[0] == '.') ||
            (comp == 2 && next[0] == '.' && next[1] == '.')) {
            free(abs);
            return NULL;
        }
    }
    return abs;
}

/* Length of the group part of an absolute path: "/a/b" -> 2 ("/a"),
 * "/b" -> 0 (the root). */
static size_t group_len(const char *abs)
{
    return (size_t)(strrchr(abs, '/') - abs);
}

static const char *last_component(const char *abs)
{
    return strrchr(abs, '/') + 1;
}

/* "chunk" used by "/trace/begin" -> "/trace/chunk"; "/x" stays "/x". */
static char *resolve_dim(const char *dataset_abs, const char *dim)
{
    if (!dim || !*dim)
        return NULL;
    if (dim[0] == '/')
        return absolute_path(dim);
    size_t glen = group_len(dataset_abs);
    size_t need = glen + 1 + strlen(dim) + 1;
    char *joined = malloc(need);
    if (!joined)
        return NULL;
    snprintf(joined, need, "%.*s/%s", (int)glen, dataset_abs, dim);
    char *abs = absolute_path(joined);
    free(joined);
    return abs;
}

/* netCDF readers resolve a variable's dimensions in its own group and its
 * ancestors, but xarray opens one group at a time and only shows coordinate
 * variables of that group; a scale in the dataset's own group is what makes
 * every axis a coordinate for all of them. */
static int same_group(const char *dim_abs, const char *dataset_abs)
{
    size_t dlen = group_len(dim_abs);
    return dlen == group_len(dataset_abs) && strncmp(dim_abs, dataset_abs, dlen) == 0;
}

static int object_exists(hid_t file, const char *abs)
{
    return H5LTpath_valid(file, abs, 1) > 0;
}

/* Link creation list that creates missing intermediate groups. */
static hid_t make_lcpl(void)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (lcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) < 0)
        close_id(&lcpl, H5Pclose);
    return lcpl;
}

/* ------------------------------------------------------------------------ */
/* Output path checks, create, commit, abort                                 */

int mpmap_h5_check_output_path(const char *path, int force, char *err, size_t errlen)
{
    if (!path || !*path)
        return fail_buf(err, errlen, MPMAP_EINVAL, "output path is empty");
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            return fail_buf(err, errlen, MPMAP_EIO, "cannot create output '%s': %s", path,
                            strerror(EISDIR));
        if (!force)
            return fail_buf(err, errlen, MPMAP_EIO,
                            "output '%s' exists (use --force to overwrite or --resume to "
                            "continue)",
                            path);
    } else if (errno != ENOENT) {
        return fail_buf(err, errlen, MPMAP_EIO, "cannot create output '%s': %s", path,
                        strerror(errno));
    }

    /* The temporary file and the rename need a writable folder. */
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) : 0;
    char *dir = malloc(dlen + 2);
    if (!dir)
        return fail_buf(err, errlen, MPMAP_ENOMEM, "out of memory");
    if (!slash)
        strcpy(dir, ".");
    else if (dlen == 0)
        strcpy(dir, "/");
    else
        snprintf(dir, dlen + 1, "%s", path);
    int rc = 0;
    if (stat(dir, &st) != 0)
        rc = fail_buf(err, errlen, MPMAP_EIO, "cannot create output '%s': %s", path,
                      strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        rc = fail_buf(err, errlen, MPMAP_EIO, "cannot create output '%s': %s", path,
                      strerror(ENOTDIR));
    else if (access(dir, W_OK | X_OK) != 0)
        rc = fail_buf(err, errlen, MPMAP_EIO, "cannot create output '%s': %s", path,
                      strerror(errno));
    free(dir);
    return rc;
}

static void trace_init(h5out_trace *t)
{
    t->created = 0;
    t->group = H5I_INVALID_HID;
    for (int i = 0; i < TRACE_NDS; i++)
        t->ds[i] = H5I_INVALID_HID;
    t->on_disk = 0;
    t->buffered = 0;
}

int mpmap_h5_create(const char *final_path, int force, mpmap_h5 **out, char *err, size_t errlen)
{
    if (!out)
        return fail_buf(err, errlen, MPMAP_EINVAL, "mpmap_h5_create: out is NULL");
    *out = NULL;
    int rc = mpmap_h5_check_output_path(final_path, force, err, errlen);
    if (rc != 0) {
        errno = 0; /* a refusal: its message says why */
        return rc;
    }

    mpmap_h5 *f = calloc(1, sizeof *f);
    size_t len = strlen(final_path);
    if (f) {
        f->final_path = malloc(len + 1);
        f->partial_path = malloc(len + sizeof ".partial");
    }
    if (!f || !f->final_path || !f->partial_path) {
        if (f) {
            free(f->final_path);
            free(f->partial_path);
        }
        free(f);
        return fail_buf(err, errlen, MPMAP_ENOMEM, "out of memory");
    }
    memcpy(f->final_path, final_path, len + 1);
    snprintf(f->partial_path, len + sizeof ".partial", "%s.partial", final_path);
    f->force = force;
    trace_init(&f->trace);

    h5out_quiet q;
    quiet_begin(&q);
    f->file = H5Fcreate(f->partial_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    int sys = 0;
    if (f->file < 0) {
        sys = h5_errno();
        rc = fail_buf(err, errlen, MPMAP_EHDF5, "cannot create output '%s' (as '%s')",
                      final_path, f->partial_path);
    }
    quiet_end(&q);
    if (rc != 0) {
        free(f->final_path);
        free(f->partial_path);
        free(f);
        errno = sys;
        return rc;
    }
    *out = f;
    return 0;
}

const char *mpmap_h5_error(const mpmap_h5 *f)
{
    return f ? f->error : "";
}

int mpmap_h5_sys_errno(const mpmap_h5 *f)
{
    return f ? f->sys_errno : 0;
}

const char *mpmap_h5_partial_path(const mpmap_h5 *f)
{
    return f ? f->partial_path : NULL;
}

const char *mpmap_h5_final_path(const mpmap_h5 *f)
{
    return f ? f->final_path : NULL;
}

static int trace_flush(mpmap_h5 *f);

static void dataset_free(mpmap_h5_dataset *d)
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

/* Closes every id the handle owns, datasets first, then the trace columns in
 * reverse order of creation, then the file. Returns the first close failure. */
static int close_all(mpmap_h5 *f)
{
    int rc = 0;
    while (f->datasets) {
        mpmap_h5_dataset *d = f->datasets;
        if (d->id >= 0 && H5Dclose(d->id) < 0 && rc == 0)
            rc = fail(f, MPMAP_EHDF5, "cannot close dataset '%s'", d->path);
        dataset_free(d);
    }
    for (int i = TRACE_NDS - 1; i >= 0; i--)
        if (f->trace.ds[i] >= 0 && H5Dclose(f->trace.ds[i]) < 0 && rc == 0)
            rc = fail(f, MPMAP_EHDF5, "cannot close trace dataset");
    if (f->trace.group >= 0 && H5Gclose(f->trace.group) < 0 && rc == 0)
        rc = fail(f, MPMAP_EHDF5, "cannot close group '/trace'");
    trace_init(&f->trace);

    if (f->file >= 0) {
        /* With the default (weak) close degree, HDF5 keeps the file open while
         * any object in it is, and would then write it after the rename; an
         * id left open here is a bug, so report it and close it. */
        ssize_t open = H5Fget_obj_count(f->file, H5F_OBJ_ALL | H5F_OBJ_LOCAL);
        if (open > 1) {
            if (rc == 0)
                rc = fail(f, MPMAP_EHDF5, "internal error: %zd HDF5 objects left open",
                          open - 1);
            hid_t *ids = malloc((size_t)open * sizeof *ids);
            ssize_t got = ids ? H5Fget_obj_ids(f->file, H5F_OBJ_ALL & ~H5F_OBJ_FILE, (size_t)open,
                                               ids)
                              : 0;
            for (ssize_t i = 0; i < got; i++)
                (void)H5Idec_ref(ids[i]);
            free(ids);
        }
        if (H5Fclose(f->file) < 0 && rc == 0)
            rc = fail(f, MPMAP_EHDF5, "cannot close '%s'", f->partial_path);
        f->file = H5I_INVALID_HID;
    }
    return rc;
}

static void free_handle(mpmap_h5 *f)
{
    free(f->final_path);
    free(f->partial_path);
    free(f);
}

/*
 * HDF5 1.10 cannot close a file whose last flush fails (a full disk, a
 * quota): H5Fclose frees half the file's state, keeps its id and the
 * library's own shutdown (at MPI_Finalize) then crashes on it. A file with a
 * failed write is thrown away anyway, so before it is closed its descriptor
 * is pointed at an anonymous in-memory file, where HDF5's closing writes
 * succeed and vanish; the partial file on disk is removed by the caller.
 */
static void discard_storage(mpmap_h5 *f)
{
    void *handle = NULL;
    if (f->file < 0 || H5Fget_vfd_handle(f->file, H5P_DEFAULT, &handle) < 0 || !handle)
        return;
    int fd = *(int *)handle;
#ifdef MFD_CLOEXEC
    int sink = memfd_create("mpmap-discarded-output", MFD_CLOEXEC);
#else
    int sink = -1;
#endif
    if (sink < 0)
        return;
    (void)dup2(sink, fd);
    (void)close(sink);
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    if (close(fd) != 0 && rc == 0)
        return -1;
    errno = saved;
    return rc;
}

/* Bytes of ds's full extent (rounded up to whole chunks) that have no
 * storage in the file yet: what flushing its cached chunks may still add. */
static hsize_t unallocated_bytes(hid_t ds)
{
    hid_t space = H5Dget_space(ds), dcpl = H5Dget_create_plist(ds), type = H5Dget_type(ds);
    hsize_t total = 0;
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (rank >= 0 && rank <= MPMAP_H5_MAX_RANK && dcpl >= 0 && type >= 0) {
        hsize_t dims[MPMAP_H5_MAX_RANK], chunk[MPMAP_H5_MAX_RANK];
        H5Sget_simple_extent_dims(space, dims, NULL);
        int chunked = H5Pget_layout(dcpl) == H5D_CHUNKED &&
                      H5Pget_chunk(dcpl, rank, chunk) == rank;
        total = H5Tget_size(type);
        for (int k = 0; k < rank; k++)
            total *= chunked ? (dims[k] + chunk[k] - 1) / chunk[k] * chunk[k] : dims[k];
    }
    hsize_t have = H5Dget_storage_size(ds);
    if (type >= 0)
        H5Tclose(type);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (space >= 0)
        H5Sclose(space);
    return total > have ? total - have : 0;
}

/* Room the final flush may use beyond the datasets' raw data: new index
 * nodes, heaps and object header growth. */
#define H5OUT_FLUSH_SLACK ((hsize_t)256 << 10)

/*
 * HDF5 1.10 cannot close a file whose metadata flush failed (see
 * discard_storage), so the commit makes sure the disk can take everything
 * the flush may write before it starts: the file's blocks, the storage its
 * datasets still lack and some slack are allocated up front (without
 * changing the file's size). On a full disk that fails cleanly, with
 * ENOSPC, while the file can still be discarded. File systems without
 * fallocate go on as before.
 */
static int ensure_space(mpmap_h5 *f)
{
    hsize_t need = 0;
    void *handle = NULL;
    if (f->file < 0 || H5Fget_filesize(f->file, &need) < 0 ||
        H5Fget_vfd_handle(f->file, H5P_DEFAULT, &handle) < 0 || !handle)
        return 0;
    need += H5OUT_FLUSH_SLACK;
    for (mpmap_h5_dataset *d = f->datasets; d; d = d->next)
        if (d->id >= 0)
            need += unallocated_bytes(d->id);
    for (int i = 0; i < TRACE_NDS; i++)
        if (f->trace.ds[i] >= 0)
            need += unallocated_bytes(f->trace.ds[i]);
#ifdef FALLOC_FL_KEEP_SIZE
    if (fallocate(*(int *)handle, FALLOC_FL_KEEP_SIZE, 0, (off_t)need) != 0 &&
        (errno == ENOSPC || errno == EDQUOT))
        return fail(f, MPMAP_EIO, "cannot write '%s': %s", f->partial_path, strerror(errno));
#endif
    return 0;
}

int mpmap_h5_commit(mpmap_h5 *f, char *err, size_t errlen)
{
    if (!f)
        return fail_buf(err, errlen, MPMAP_EINVAL, "mpmap_h5_commit: no file");
    h5out_quiet q;
    quiet_begin(&q);
    int rc = f->status;
    if (rc == 0)
        rc = trace_flush(f);
    if (rc == 0)
        rc = ensure_space(f);
    if (f->file >= 0 && rc == 0 && H5Fflush(f->file, H5F_SCOPE_GLOBAL) < 0)
        rc = fail(f, MPMAP_EHDF5, "cannot flush '%s'", f->partial_path);
    if (rc != 0)
        discard_storage(f);
    int crc = close_all(f);
    if (rc == 0)
        rc = crc;
    quiet_end(&q);

    if (rc == 0 && fsync_path(f->partial_path, O_RDONLY) != 0)
        rc = fail(f, MPMAP_EIO, "cannot sync '%s': %s", f->partial_path, strerror(errno));
    struct stat st;
    /* The output may have appeared while the job ran; without --force it is
     * not ours to replace. */
    if (rc == 0 && !f->force && lstat(f->final_path, &st) == 0) {
        errno = 0; /* a refusal, not a system error */
        rc = fail(f, MPMAP_EIO,
                  "output '%s' exists (use --force to overwrite or --resume to continue)",
                  f->final_path);
    }
    if (rc == 0 && rename(f->partial_path, f->final_path) != 0)
        rc = fail(f, MPMAP_EIO, "cannot rename '%s' to '%s': %s", f->partial_path,
                  f->final_path, strerror(errno));
    if (rc == 0) {
        /* Make the rename itself durable. Some file systems cannot fsync a
         * folder; the data is already in place then, so this is best effort. */
        const char *slash = strrchr(f->final_path, '/');
        if (!slash) {
            (void)fsync_path(".", O_RDONLY);
        } else {
            size_t dlen = slash == f->final_path ? 1 : (size_t)(slash - f->final_path);
            char *dir = malloc(dlen + 1);
            if (dir) {
                memcpy(dir, f->final_path, dlen);
                dir[dlen] = '\0';
                (void)fsync_path(dir, O_RDONLY);
                free(dir);
            }
        }
    } else {
        (void)unlink(f->partial_path);
        if (err && errlen > 0)
            snprintf(err, errlen, "output '%s' not written: %s", f->final_path, f->error);
    }
    int sys = rc != 0 ? f->sys_errno : 0;
    free_handle(f);
    errno = sys;
    return rc;
}

void mpmap_h5_discard(mpmap_h5 *f)
{
    if (f)
        discard_storage(f);
}

void mpmap_h5_abort(mpmap_h5 *f)
{
    if (!f)
        return;
    h5out_quiet q;
    quiet_begin(&q);
    discard_storage(f);
    (void)close_all(f);
    quiet_end(&q);
    (void)unlink(f->partial_path);
    free_handle(f);
}

/* ------------------------------------------------------------------------ */
/* Coordinates and datasets                                                  */

/* Chunk shape of about H5OUT_CHUNK_BYTES: whole rows where they fit, so a
 * streamed block of rows touches few chunks; very long rows are split too. */
static void chunk_shape(int rank, const hsize_t *dims, size_t elem, hsize_t *chunk)
{
    hsize_t target = H5OUT_CHUNK_BYTES / elem;
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
static int make_plists(int rank, const hsize_t *dims, const hsize_t *chunk_override, size_t elem,
                       hid_t *dcpl, hid_t *dapl)
{
    *dcpl = H5Pcreate(H5P_DATASET_CREATE);
    *dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (*dcpl < 0 || *dapl < 0)
        return -1;
    hsize_t total = elem;
    for (int k = 0; k < rank; k++)
        total *= dims[k];
    if (chunk_override || total > H5OUT_CHUNK_BYTES) {
        hsize_t chunk[MPMAP_H5_MAX_RANK];
        if (chunk_override)
            memcpy(chunk, chunk_override, (size_t)rank * sizeof *chunk);
        else
            chunk_shape(rank, dims, elem, chunk);
        if (H5Pset_chunk(*dcpl, rank, chunk) < 0 ||
            H5Pset_chunk_cache(*dapl, H5OUT_CACHE_SLOTS, H5OUT_CACHE_BYTES, 1.0) < 0)
            return -1;
    }
    return 0;
}

static int set_cf_attrs(mpmap_h5 *f, hid_t obj, const char *path, const char *units,
                        const char *long_name);

/* Writes index values first..first+n-1 into the 1-D dataset ds starting at
 * element `first`, in bounded blocks so huge axes need little memory. */
static int write_index(mpmap_h5 *f, hid_t ds, const char *path, int64_t first, int64_t n)
{
    if (n <= 0)
        return 0;
    size_t block = (uint64_t)n < H5OUT_INDEX_BLOCK ? (size_t)n : H5OUT_INDEX_BLOCK;
    int64_t *values = malloc(block * sizeof *values);
    if (!values)
        return fail(f, MPMAP_ENOMEM, "out of memory writing '%s'", path);
    int rc = 0;
    hid_t fspace = H5Dget_space(ds);
    if (fspace < 0)
        rc = fail(f, MPMAP_EHDF5, "cannot write '%s'", path);
    for (int64_t done = 0; rc == 0 && done < n;) {
        hsize_t count = (uint64_t)(n - done) < block ? (hsize_t)(n - done) : block;
        for (hsize_t i = 0; i < count; i++)
            values[i] = first + done + (int64_t)i;
        hsize_t start = (hsize_t)(first + done);
        hid_t mspace = H5Screate_simple(1, &count, NULL);
        if (mspace < 0 ||
            H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0 ||
            H5Dwrite(ds, H5T_NATIVE_INT64, mspace, fspace, H5P_DEFAULT, values) < 0)
            rc = fail(f, MPMAP_EHDF5, "cannot write '%s'", path);
        close_id(&mspace, H5Sclose);
        done += (int64_t)count;
    }
    close_id(&fspace, H5Sclose);
    free(values);
    return rc;
}

/*
 * Creates the 1-D coordinate `abs` of n elements and makes it a dimension
 * scale. values == NULL writes the index 0..n-1. extendible gives it an
 * unlimited maximum size (for the trace). On success *keep (if not NULL)
 * receives the open dataset, else it is closed.
 */
static int make_coordinate(mpmap_h5 *f, const char *abs, h5out_kind kind, int64_t n,
                           const void *values, int extendible, const char *units,
                           const char *long_name, hid_t *keep)
{
    int rc = 0;
    hsize_t dim = (hsize_t)n;
    hsize_t maxdim = extendible ? H5S_UNLIMITED : dim;
    hsize_t trace_chunk = H5OUT_TRACE_CHUNK;
    hid_t lcpl = make_lcpl(), dcpl = H5I_INVALID_HID, dapl = H5I_INVALID_HID;
    hid_t space = H5I_INVALID_HID, ds = H5I_INVALID_HID;
    if (lcpl < 0 ||
        make_plists(1, &dim, extendible ? &trace_chunk : NULL, kind_size(kind), &dcpl, &dapl) <
            0 ||
        (space = H5Screate_simple(1, &dim, &maxdim)) < 0 ||
        (ds = H5Dcreate2(f->file, abs, kind_file_type(kind), space, lcpl, dcpl, dapl)) < 0) {
        rc = fail(f, MPMAP_EHDF5, "cannot create coordinate '%s'", abs);
    } else if (values && n > 0 &&
               H5Dwrite(ds, kind_mem_type(kind), H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0) {
        rc = fail(f, MPMAP_EHDF5, "cannot write coordinate '%s'", abs);
    } else if (!values && (rc = write_index(f, ds, abs, 0, n)) != 0) {
        /* message recorded by write_index */
    } else if (H5DSset_scale(ds, last_component(abs)) < 0) {
        rc = fail(f, MPMAP_EHDF5, "cannot make '%s' a dimension scale", abs);
    } else {
        rc = set_cf_attrs(f, ds, abs, units, long_name);
    }
    close_id(&space, H5Sclose);
    close_id(&dapl, H5Pclose);
    close_id(&dcpl, H5Pclose);
    close_id(&lcpl, H5Pclose);
    if (rc == 0 && keep)
        *keep = ds;
    else
        close_id(&ds, H5Dclose);
    return rc;
}

int mpmap_h5_write_coordinate(mpmap_h5 *f, const char *path, hid_t type, int64_t n,
                              const void *values, const char *units, const char *long_name)
{
    if (!f)
        return MPMAP_EINVAL;
    h5out_quiet q;
    quiet_begin(&q);
    int rc = 0;
    h5out_kind kind;
    char *abs = absolute_path(path);
    if (!abs)
        rc = fail(f, MPMAP_EINVAL, "invalid coordinate name '%s'", path ? path : "(null)");
    else if (type_kind(type, &kind) != 0)
        rc = fail(f, MPMAP_EINVAL, "coordinate '%s': type must be float64, int64 or int32", abs);
    else if (n < 0 || (n > 0 && !values))
        rc = fail(f, MPMAP_EINVAL, "coordinate '%s': invalid length or values", abs);
    else if (object_exists(f->file, abs))
        rc = fail(f, MPMAP_EINVAL, "coordinate '%s' already exists", abs);
    else
        rc = make_coordinate(f, abs, kind, n, values, 0, units, long_name, NULL);
    free(abs);
    quiet_end(&q);
    return rc;
}

/* Opens the existing scale `abs` for an axis of length `len`, or creates an
 * index coordinate there. */
static int open_or_make_scale(mpmap_h5 *f, const char *abs, const char *dataset, int axis,
                              hsize_t len, hid_t *scale)
{
    *scale = H5I_INVALID_HID;
    if (!object_exists(f->file, abs)) {
        int rc = make_coordinate(f, abs, H5OUT_I64, (int64_t)len, NULL, 0, NULL, NULL, scale);
        return rc;
    }
    int rc = 0;
    hid_t ds = H5I_INVALID_HID, space = H5I_INVALID_HID;
    hsize_t have = 0;
    if ((ds = H5Oopen(f->file, abs, H5P_DEFAULT)) < 0)
        rc = fail(f, MPMAP_EHDF5, "cannot open dimension '%s' of '%s'", abs, dataset);
    else if (H5Iget_type(ds) != H5I_DATASET)
        rc = fail(f, MPMAP_EINVAL, "dimension '%s' of '%s' exists but is not a dataset", abs,
                  dataset);
    else if (H5DSis_scale(ds) <= 0)
        rc = fail(f, MPMAP_EINVAL, "dimension '%s' of '%s' exists but is not a dimension scale",
                  abs, dataset);
    else if ((space = H5Dget_space(ds)) < 0)
        rc = fail(f, MPMAP_EHDF5, "cannot read the shape of '%s'", abs);
    else if (H5Sget_simple_extent_ndims(space) != 1 ||
             H5Sget_simple_extent_dims(space, &have, NULL) != 1)
        rc = fail(f, MPMAP_EINVAL, "dimension '%s' of '%s' is not 1-D", abs, dataset);
    else if (have != len)
        rc = fail(f, MPMAP_EINVAL,
                  "dataset '%s' axis %d has length %llu but dimension '%s' has length %llu",
                  dataset, axis, (unsigned long long)len, abs, (unsigned long long)have);
    close_id(&space, H5Sclose);
    if (rc == 0)
        *scale = ds;
    else
        close_id(&ds, H5Oclose);
    return rc;
}

int mpmap_h5_dataset_create(mpmap_h5 *f, const char *path, hid_t type, int rank,
                            const int64_t *dims, const char *const *dim_names,
                            mpmap_h5_dataset **out)
{
    if (!f)
        return MPMAP_EINVAL;
    if (out)
        *out = NULL;
    h5out_quiet q;
    quiet_begin(&q);
    int rc = 0;
    h5out_kind kind = H5OUT_F64;
    char *abs = absolute_path(path);
    char *dim_abs[MPMAP_H5_MAX_RANK] = {0};
    hid_t scales[MPMAP_H5_MAX_RANK];
    hsize_t hdims[MPMAP_H5_MAX_RANK];
    for (int k = 0; k < MPMAP_H5_MAX_RANK; k++)
        scales[k] = H5I_INVALID_HID;
    hid_t lcpl = H5I_INVALID_HID, dcpl = H5I_INVALID_HID, dapl = H5I_INVALID_HID;
    hid_t space = H5I_INVALID_HID, ds = H5I_INVALID_HID;

    if (!abs)
        rc = fail(f, MPMAP_EINVAL, "invalid dataset name '%s'", path ? path : "(null)");
    else if (!out || !dims || !dim_names || rank < 1 || rank > MPMAP_H5_MAX_RANK)
        rc = fail(f, MPMAP_EINVAL, "dataset '%s': invalid rank, dims or dimension names", abs);
    else if (type_kind(type, &kind) != 0)
        rc = fail(f, MPMAP_EINVAL, "dataset '%s': type must be float64, int64 or int32", abs);
    else if (object_exists(f->file, abs))
        rc = fail(f, MPMAP_EINVAL, "dataset '%s' already exists", abs);

    /* Validate every axis before creating anything. */
    double total = (double)kind_size(kind);
    for (int k = 0; rc == 0 && k < rank; k++) {
        if (dims[k] < 0) {
            rc = fail(f, MPMAP_EINVAL, "dataset '%s': axis %d has negative length", abs, k);
            break;
        }
        hdims[k] = (hsize_t)dims[k];
        total *= (double)dims[k];
        dim_abs[k] = resolve_dim(abs, dim_names[k]);
        if (!dim_abs[k])
            rc = fail(f, MPMAP_EINVAL, "dataset '%s': invalid dimension name '%s'", abs,
                      dim_names[k] ? dim_names[k] : "(null)");
        else if (strcmp(dim_abs[k], abs) == 0)
            rc = fail(f, MPMAP_EINVAL,
                      "dataset '%s' cannot be its own dimension; write it with "
                      "mpmap_h5_write_coordinate",
                      abs);
        else if (!same_group(dim_abs[k], abs))
            rc = fail(f, MPMAP_EINVAL, "dimension '%s' of '%s' must be in the dataset's group",
                      dim_abs[k], abs);
        for (int j = 0; rc == 0 && j < k; j++)
            if (strcmp(dim_abs[j], dim_abs[k]) == 0)
                rc = fail(f, MPMAP_EINVAL,
                          "dataset '%s' uses dimension '%s' twice; give each axis its own name",
                          abs, dim_abs[k]);
    }
    if (rc == 0 && total > 9.0e18)
        rc = fail(f, MPMAP_EINVAL, "dataset '%s' is too large", abs);

    for (int k = 0; rc == 0 && k < rank; k++)
        rc = open_or_make_scale(f, dim_abs[k], abs, k, hdims[k], &scales[k]);

    if (rc == 0) {
        if ((lcpl = make_lcpl()) < 0 ||
            make_plists(rank, hdims, NULL, kind_size(kind), &dcpl, &dapl) < 0 ||
            (space = H5Screate_simple(rank, hdims, NULL)) < 0 ||
            (ds = H5Dcreate2(f->file, abs, kind_file_type(kind), space, lcpl, dcpl, dapl)) < 0)
            rc = fail(f, MPMAP_EHDF5, "cannot create dataset '%s'", abs);
    }
    for (int k = 0; rc == 0 && k < rank; k++)
        if (H5DSattach_scale(ds, scales[k], (unsigned)k) < 0)
            rc = fail(f, MPMAP_EHDF5, "cannot attach dimension '%s' to '%s'", dim_abs[k], abs);

    mpmap_h5_dataset *d = NULL;
    if (rc == 0 && !(d = calloc(1, sizeof *d)))
        rc = fail(f, MPMAP_ENOMEM, "out of memory");
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

    close_id(&ds, H5Dclose);
    close_id(&space, H5Sclose);
    close_id(&dapl, H5Pclose);
    close_id(&dcpl, H5Pclose);
    close_id(&lcpl, H5Pclose);
    for (int k = MPMAP_H5_MAX_RANK - 1; k >= 0; k--) {
        close_id(&scales[k], H5Dclose);
        free(dim_abs[k]);
    }
    free(abs);
    quiet_end(&q);
    return rc;
}

int mpmap_h5_dataset_write_rows(mpmap_h5_dataset *d, int64_t first_row, int64_t nrows,
                                const void *data)
{
    if (!d)
        return MPMAP_EINVAL;
    mpmap_h5 *f = d->file;
    if (first_row < 0 || nrows < 0 || (uint64_t)first_row > d->dims[0] ||
        (uint64_t)nrows > d->dims[0] - (uint64_t)first_row)
        return fail(f, MPMAP_EINVAL, "dataset '%s': rows %lld..%lld outside 0..%llu", d->path,
                    (long long)first_row, (long long)first_row + (long long)nrows,
                    (unsigned long long)d->dims[0]);
    if (nrows == 0 || d->row_elems == 0)
        return 0;
    if (!data)
        return fail(f, MPMAP_EINVAL, "dataset '%s': no data", d->path);

    h5out_quiet q;
    quiet_begin(&q);
    int rc = 0;
    hsize_t start[MPMAP_H5_MAX_RANK] = {0}, count[MPMAP_H5_MAX_RANK];
    memcpy(count, d->dims, sizeof count);
    start[0] = (hsize_t)first_row;
    count[0] = (hsize_t)nrows;
    hid_t fspace = H5Dget_space(d->id);
    hid_t mspace = H5Screate_simple(d->rank, count, NULL);
    if (fspace < 0 || mspace < 0 ||
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        H5Dwrite(d->id, kind_mem_type(d->kind), mspace, fspace, H5P_DEFAULT, data) < 0)
        rc = fail(f, MPMAP_EHDF5, "cannot write rows %lld..%lld of '%s'", (long long)first_row,
                  (long long)(first_row + nrows), d->path);
    close_id(&mspace, H5Sclose);
    close_id(&fspace, H5Sclose);
    quiet_end(&q);
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
    h5out_quiet q;
    quiet_begin(&q);
    int rc = 0;
    if (H5Dclose(d->id) < 0)
        rc = fail(f, MPMAP_EHDF5, "cannot close dataset '%s'", d->path);
    quiet_end(&q);
    dataset_free(d);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Attributes                                                                */

/* Attributes the dimension-scale convention owns; overwriting them would
 * break the links that readers follow. */
static int reserved_attr(const char *name)
{
    return strcmp(name, "CLASS") == 0 || strcmp(name, "NAME") == 0 ||
           strcmp(name, "REFERENCE_LIST") == 0 || strcmp(name, "DIMENSION_LIST") == 0;
}

/* Writes (replacing) attribute `name` on the open object obj. */
static int attr_on(mpmap_h5 *f, hid_t obj, const char *path, const char *name, hid_t type,
                   hid_t space, const void *buf)
{
    if (!name || !*name || reserved_attr(name))
        return fail(f, MPMAP_EINVAL, "invalid attribute name '%s' on '%s'",
                    name ? name : "(null)", path);
    htri_t exists = H5Aexists(obj, name);
    if (exists < 0 || (exists > 0 && H5Adelete(obj, name) < 0))
        return fail(f, MPMAP_EHDF5, "cannot replace attribute '%s' of '%s'", name, path);
    int rc = 0;
    hid_t attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0 || H5Awrite(attr, type, buf) < 0)
        rc = fail(f, MPMAP_EHDF5, "cannot write attribute '%s' of '%s'", name, path);
    close_id(&attr, H5Aclose);
    return rc;
}

static hid_t string_type(void)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    if (type >= 0 && (H5Tset_size(type, H5T_VARIABLE) < 0 || H5Tset_cset(type, H5T_CSET_UTF8) < 0))
        close_id(&type, H5Tclose);
    return type;
}

static int string_attr_on(mpmap_h5 *f, hid_t obj, const char *path, const char *name,
                          const char *value)
{
    if (!value)
        return fail(f, MPMAP_EINVAL, "attribute '%s' of '%s' has no value", name ? name : "",
                    path);
    hid_t type = string_type();
    hid_t space = H5Screate(H5S_SCALAR);
    int rc;
    if (type < 0 || space < 0)
        rc = fail(f, MPMAP_EHDF5, "cannot write attribute '%s' of '%s'", name ? name : "", path);
    else
        rc = attr_on(f, obj, path, name, type, space, &value);
    close_id(&space, H5Sclose);
    close_id(&type, H5Tclose);
    return rc;
}

static int set_cf_attrs(mpmap_h5 *f, hid_t obj, const char *path, const char *units,
                        const char *long_name)
{
    int rc = 0;
    if (units)
        rc = string_attr_on(f, obj, path, "units", units);
    if (rc == 0 && long_name)
        rc = string_attr_on(f, obj, path, "long_name", long_name);
    return rc;
}

typedef enum attr_kind { ATTR_STRING, ATTR_DOUBLE, ATTR_INT64, ATTR_DOUBLES } attr_kind;

/* Opens obj_path (NULL or "/" = root) and writes one attribute on it. */
static int attr_at(mpmap_h5 *f, const char *obj_path, const char *name, attr_kind kind,
                   size_t n, const void *value)
{
    const char *path = obj_path && *obj_path ? obj_path : "/";
    int rc = 0;
    hid_t obj = H5I_INVALID_HID, space = H5I_INVALID_HID;
    if (!object_exists(f->file, path) || (obj = H5Oopen(f->file, path, H5P_DEFAULT)) < 0)
        return fail(f, MPMAP_EINVAL, "cannot set attribute '%s': no object '%s'",
                    name ? name : "(null)", path);
    switch (kind) {
    case ATTR_STRING: rc = string_attr_on(f, obj, path, name, value); break;
    case ATTR_DOUBLE:
    case ATTR_INT64:
        if ((space = H5Screate(H5S_SCALAR)) < 0)
            rc = fail(f, MPMAP_EHDF5, "cannot write attribute '%s' of '%s'", name, path);
        else
            rc = attr_on(f, obj, path, name,
                         kind == ATTR_DOUBLE ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64, space,
                         value);
        break;
    case ATTR_DOUBLES: {
        hsize_t len = n;
        if (n == 0 || !value)
            rc = fail(f, MPMAP_EINVAL, "attribute '%s' of '%s' has no values", name, path);
        else if ((space = H5Screate_simple(1, &len, NULL)) < 0)
            rc = fail(f, MPMAP_EHDF5, "cannot write attribute '%s' of '%s'", name, path);
        else
            rc = attr_on(f, obj, path, name, H5T_NATIVE_DOUBLE, space, value);
        break;
    }
    }
    close_id(&space, H5Sclose);
    close_id(&obj, H5Oclose);
    return rc;
}

static int attr_public(mpmap_h5 *f, const char *obj_path, const char *name, attr_kind kind,
                       size_t n, const void *value)
{
    if (!f)
        return MPMAP_EINVAL;
    h5out_quiet q;
    quiet_begin(&q);
    int rc = attr_at(f, obj_path, name, kind, n, value);
    quiet_end(&q);
    return rc;
}

int mpmap_h5_attr_string(mpmap_h5 *f, const char *obj_path, const char *name, const char *value)
{
    return attr_public(f, obj_path, name, ATTR_STRING, 0, value);
}

int mpmap_h5_attr_double(mpmap_h5 *f, const char *obj_path, const char *name, double value)
{
    return attr_public(f, obj_path, name, ATTR_DOUBLE, 1, &value);
}

int mpmap_h5_attr_int64(mpmap_h5 *f, const char *obj_path, const char *name, int64_t value)
{
    return attr_public(f, obj_path, name, ATTR_INT64, 1, &value);
}

int mpmap_h5_attr_double_array(mpmap_h5 *f, const char *obj_path, const char *name, size_t n,
                               const double *values)
{
    return attr_public(f, obj_path, name, ATTR_DOUBLES, n, values);
}

/* ------------------------------------------------------------------------ */
/* Provenance                                                                */

/* Arguments made only of these characters need no quoting in any POSIX shell. */
static int shell_safe(const char *arg)
{
    if (!*arg)
        return 0;
    for (const char *c = arg; *c; c++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-",
                    *c))
            return 0;
    return 1;
}

size_t mpmap_h5_join_command_line(int argc, char *const *argv, char *buf, size_t buflen)
{
    size_t n = 0;
#define H5OUT_PUT(ch)                                                                            \
    do {                                                                                         \
        if (n + 1 < buflen)                                                                      \
            buf[n] = (ch);                                                                       \
        n++;                                                                                     \
    } while (0)
    for (int i = 0; argv && i < argc; i++) {
        const char *arg = argv[i] ? argv[i] : "";
        if (i > 0)
            H5OUT_PUT(' ');
        if (shell_safe(arg)) {
            for (const char *c = arg; *c; c++)
                H5OUT_PUT(*c);
            continue;
        }
        /* Inside single quotes nothing is special except the quote itself,
         * which is closed, escaped and reopened: ' -> '\'' */
        H5OUT_PUT('\'');
        for (const char *c = arg; *c; c++) {
            if (*c == '\'') {
                H5OUT_PUT('\'');
                H5OUT_PUT('\\');
                H5OUT_PUT('\'');
                H5OUT_PUT('\'');
            } else {
                H5OUT_PUT(*c);
            }
        }
        H5OUT_PUT('\'');
    }
#undef H5OUT_PUT
    if (buflen > 0)
        buf[n < buflen ? n : buflen - 1] = '\0';
    return n;
}

int mpmap_h5_write_provenance(mpmap_h5 *f, const mpmap_h5_provenance *p)
{
    if (!f)
        return MPMAP_EINVAL;
    if (!p || !p->app)
        return fail(f, MPMAP_EINVAL, "provenance: app name missing");
    if (p->nextra > 0 && (!p->extra_keys || !p->extra_values))
        return fail(f, MPMAP_EINVAL, "provenance: extra keys or values missing");

    size_t cmd_len = mpmap_h5_join_command_line(p->argc, p->argv, NULL, 0);
    char *cmd = malloc(cmd_len + 1);
    if (!cmd)
        return fail(f, MPMAP_ENOMEM, "out of memory");
    mpmap_h5_join_command_line(p->argc, p->argv, cmd, cmd_len + 1);

    char start[32] = "unknown";
    time_t t = p->start_time > 0 ? (time_t)p->start_time : time(NULL);
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(start, sizeof start, "%Y-%m-%dT%H:%M:%SZ", &tm);

    char host[256];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';

    h5out_quiet q;
    quiet_begin(&q);
    unsigned maj = 0, min = 0, rel = 0;
    char hdf5[32] = "unknown";
    if (H5get_libversion(&maj, &min, &rel) >= 0)
        snprintf(hdf5, sizeof hdf5, "%u.%u.%u", maj, min, rel);

    size_t hist_len = strlen(start) + 1 + cmd_len + 1;
    char *history = malloc(hist_len);
    int rc = 0;
    if (!history)
        rc = fail(f, MPMAP_ENOMEM, "out of memory");
    else
        snprintf(history, hist_len, "%s %s", start, cmd);

    int64_t ranks = p->ranks, chunk = p->chunk;
    double wall = p->wall_time;
    if (rc == 0)
        rc = attr_at(f, "/", "mpmap_app", ATTR_STRING, 0, p->app);
    if (rc == 0)
        rc = attr_at(f, "/", "mpmap_app_version", ATTR_STRING, 0,
                     p->app_version ? p->app_version : MPMAP_VERSION_STRING);
    if (rc == 0)
        rc = attr_at(f, "/", "mpmap_command_line", ATTR_STRING, 0, cmd);
    if (rc == 0)
        rc = attr_at(f, "/", "mpmap_ranks", ATTR_INT64, 1, &ranks);
    if (rc == 0)
        rc = attr_at(f, "/", "mpmap_schedule", ATTR_STRING, 0,
                     p->schedule ? p->schedule : "unknown");
    if (rc == 0)
        rc = attr_at(f, "/", "mpmap_chunk", ATTR_INT64, 1, &chunk);
    if (rc == 0)
        rc = attr_at(f, "/", "mpmap_wall_time", ATTR_DOUBLE, 1, &wall);
    if (rc == 0)
        rc = attr_at(f, "/", "mpmap_start_time", ATTR_STRING, 0, start);
    if (rc == 0)
        rc = attr_at(f, "/", "mpmap_host", ATTR_STRING, 0, host);
    if (rc == 0)
        rc = attr_at(f, "/", "mpmap_version", ATTR_STRING, 0, MPMAP_VERSION_STRING);
    if (rc == 0)
        rc = attr_at(f, "/", "mpmap_hdf5_version", ATTR_STRING, 0, hdf5);
    if (rc == 0)
        rc = attr_at(f, "/", "history", ATTR_STRING, 0, history);
    for (int i = 0; rc == 0 && i < p->nextra; i++)
        rc = attr_at(f, "/", p->extra_keys[i], ATTR_STRING, 0,
                     p->extra_values[i] ? p->extra_values[i] : "");
    quiet_end(&q);
    free(history);
    free(cmd);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Trace                                                                     */

static const char *const trace_paths[TRACE_NDS] = {
    "/trace/chunk", "/trace/begin", "/trace/end", "/trace/rank", "/trace/start", "/trace/finish",
};

static int trace_create(mpmap_h5 *f)
{
    h5out_trace *t = &f->trace;
    static const char *const long_names[TRACE_NDS] = {
        "chunk number, in the order chunks were recorded",
        "first task of the chunk",
        "one past the last task of the chunk",
        "rank that computed the chunk",
        "time the chunk started, since the run started",
        "time the chunk finished, since the run started",
    };
    if (object_exists(f->file, "/trace"))
        return fail(f, MPMAP_EINVAL, "'/trace' already exists");
    if ((t->group = H5Gcreate2(f->file, "/trace", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0)
        return fail(f, MPMAP_EHDF5, "cannot create group '/trace'");
    int rc = make_coordinate(f, trace_paths[TRACE_CHUNK], H5OUT_I64, 0, NULL, 1, NULL,
                             long_names[TRACE_CHUNK], &t->ds[TRACE_CHUNK]);
    hsize_t zero = 0, unlimited = H5S_UNLIMITED, chunk = H5OUT_TRACE_CHUNK;
    for (int i = TRACE_BEGIN; rc == 0 && i < TRACE_NDS; i++) {
        h5out_kind kind = i == TRACE_RANK ? H5OUT_I32
                          : (i == TRACE_START || i == TRACE_FINISH) ? H5OUT_F64
                                                                     : H5OUT_I64;
        hid_t dcpl = H5I_INVALID_HID, dapl = H5I_INVALID_HID;
        hid_t space = H5Screate_simple(1, &zero, &unlimited);
        if (space < 0 || make_plists(1, &zero, &chunk, kind_size(kind), &dcpl, &dapl) < 0 ||
            (t->ds[i] = H5Dcreate2(f->file, trace_paths[i], kind_file_type(kind), space,
                                   H5P_DEFAULT, dcpl, dapl)) < 0)
            rc = fail(f, MPMAP_EHDF5, "cannot create '%s'", trace_paths[i]);
        else if (H5DSattach_scale(t->ds[i], t->ds[TRACE_CHUNK], 0) < 0)
            rc = fail(f, MPMAP_EHDF5, "cannot attach '/trace/chunk' to '%s'", trace_paths[i]);
        else
            rc = set_cf_attrs(f, t->ds[i], trace_paths[i],
                              (i == TRACE_START || i == TRACE_FINISH) ? "s" : NULL,
                              long_names[i]);
        close_id(&dapl, H5Pclose);
        close_id(&dcpl, H5Pclose);
        close_id(&space, H5Sclose);
    }
    t->created = 1; /* ids are closed by close_all even when creation failed */
    return rc;
}

/* Grows every trace dataset by the buffered rows and writes them. The
 * coordinate grows with the columns so readers always see one length. */
static int trace_flush(mpmap_h5 *f)
{
    h5out_trace *t = &f->trace;
    if (t->buffered == 0)
        return 0;
    const void *columns[TRACE_NDS] = {t->index, t->begin, t->end, t->rank, t->start, t->finish};
    hsize_t first = (hsize_t)t->on_disk, count = (hsize_t)t->buffered;
    hsize_t size = first + count;
    for (int i = 0; i < t->buffered; i++)
        t->index[i] = t->on_disk + i;
    int rc = 0;
    for (int i = 0; rc == 0 && i < TRACE_NDS; i++) {
        h5out_kind kind = i == TRACE_RANK ? H5OUT_I32
                          : (i == TRACE_START || i == TRACE_FINISH) ? H5OUT_F64
                                                                     : H5OUT_I64;
        hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
        if (H5Dset_extent(t->ds[i], &size) < 0 || (fspace = H5Dget_space(t->ds[i])) < 0 ||
            (mspace = H5Screate_simple(1, &count, NULL)) < 0 ||
            H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &first, NULL, &count, NULL) < 0 ||
            H5Dwrite(t->ds[i], kind_mem_type(kind), mspace, fspace, H5P_DEFAULT, columns[i]) < 0)
            rc = fail(f, MPMAP_EHDF5, "cannot append to '%s'", trace_paths[i]);
        close_id(&mspace, H5Sclose);
        close_id(&fspace, H5Sclose);
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
        return fail(f, MPMAP_EINVAL, "trace entry is NULL");
    if (f->status != 0)
        return f->status; /* the file is not going to be committed anyway */
    h5out_trace *t = &f->trace;
    int rc = 0;
    h5out_quiet q;
    quiet_begin(&q);
    if (!t->created)
        rc = trace_create(f);
    if (rc == 0 && t->buffered == MPMAP_H5_TRACE_BUFFER)
        rc = trace_flush(f);
    if (rc == 0) {
        int i = t->buffered++;
        t->begin[i] = entry->begin;
        t->end[i] = entry->end;
        t->rank[i] = entry->rank;
        t->start[i] = entry->start;
        t->finish[i] = entry->finish;
    }
    quiet_end(&q);
    return rc;
}

int mpmap_h5_trace_flush(mpmap_h5 *f)
{
    if (!f)
        return MPMAP_EINVAL;
    h5out_quiet q;
    quiet_begin(&q);
    int rc = trace_flush(f);
    quiet_end(&q);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Reading inputs                                                            */

int mpmap_h5_split_spec(const char *spec, char *file, size_t file_size, char *dataset,
                        size_t dataset_size, char *err, size_t errlen)
{
    const char *colon = NULL;
    for (const char *c = spec; c && *c; c++)
        if (c[0] == ':' && c[1] == '/')
            colon = c;
    if (!colon || colon == spec)
        return fail_buf(err, errlen, MPMAP_EINVAL, "input '%s' is not FILE.h5:/DATASET",
                        spec ? spec : "(null)");
    size_t flen = (size_t)(colon - spec);
    size_t dlen = strlen(colon + 1);
    if (!file || !dataset || flen + 1 > file_size || dlen + 1 > dataset_size)
        return fail_buf(err, errlen, MPMAP_EINVAL, "input '%s': name too long", spec);
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
static int read_dataset(hid_t fid, const char *file, const char *dset, double **data,
                        int64_t *rows, int64_t *cols, char *err, size_t errlen)
{
    int rc = 0;
    hid_t obj = H5I_INVALID_HID, type = H5I_INVALID_HID, space = H5I_INVALID_HID;
    htri_t valid = H5LTpath_valid(fid, dset, 1);
    if (valid <= 0)
        return fail_buf(err, errlen, MPMAP_EINVAL, "input file '%s' has no dataset '%s'", file,
                        dset);
    if ((obj = H5Oopen(fid, dset, H5P_DEFAULT)) < 0)
        return fail_buf(err, errlen, MPMAP_EHDF5, "cannot open '%s' in '%s'", dset, file);
    if (H5Iget_type(obj) != H5I_DATASET) {
        rc = fail_buf(err, errlen, MPMAP_EINVAL, "'%s' in input file '%s' is not a dataset",
                      dset, file);
        close_id(&obj, H5Oclose);
        return rc;
    }

    H5T_class_t cls = H5T_NO_CLASS;
    int ndims = -1;
    hsize_t dims[2] = {0, 0};
    if ((type = H5Dget_type(obj)) < 0 || (cls = H5Tget_class(type)) < 0 ||
        (space = H5Dget_space(obj)) < 0 || (ndims = H5Sget_simple_extent_ndims(space)) < 0)
        rc = fail_buf(err, errlen, MPMAP_EHDF5, "cannot inspect '%s' in '%s'", dset, file);
    else if (cls != H5T_FLOAT)
        rc = fail_buf(err, errlen, MPMAP_EINVAL,
                      "dataset '%s' in '%s' has %s elements; expected floating point", dset, file,
                      class_name(cls));
    else if (ndims != 1 && ndims != 2)
        rc = fail_buf(err, errlen, MPMAP_EINVAL,
                      "dataset '%s' in '%s' is %d-D; expected 2-D (or 1-D, read as one column)",
                      dset, file, ndims);
    else if (H5Sget_simple_extent_dims(space, dims, NULL) < 0)
        rc = fail_buf(err, errlen, MPMAP_EHDF5, "cannot inspect '%s' in '%s'", dset, file);
    if (rc == 0) {
        if (ndims == 1)
            dims[1] = 1;
        if (dims[0] == 0 || dims[1] == 0)
            rc = fail_buf(err, errlen, MPMAP_EINVAL, "dataset '%s' in '%s' is empty (%llu x %llu)",
                          dset, file, (unsigned long long)dims[0], (unsigned long long)dims[1]);
        else if (dims[0] > (hsize_t)INT64_MAX / dims[1] ||
                 dims[0] * dims[1] > SIZE_MAX / sizeof(double))
            rc = fail_buf(err, errlen, MPMAP_ENOMEM,
                          "dataset '%s' in '%s' is too large to read (%llu x %llu)", dset, file,
                          (unsigned long long)dims[0], (unsigned long long)dims[1]);
    }
    double *buf = NULL;
    if (rc == 0 && !(buf = malloc((size_t)(dims[0] * dims[1]) * sizeof *buf)))
        rc = fail_buf(err, errlen, MPMAP_ENOMEM,
                      "dataset '%s' in '%s' is too large to read (%llu x %llu)", dset, file,
                      (unsigned long long)dims[0], (unsigned long long)dims[1]);
    if (rc == 0 && H5Dread(obj, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        rc = fail_buf(err, errlen, MPMAP_EHDF5, "cannot read '%s' in '%s'", dset, file);
    for (size_t i = 0; rc == 0 && i < (size_t)(dims[0] * dims[1]); i++)
        if (!isfinite(buf[i]))
            rc = fail_buf(err, errlen, MPMAP_EINVAL,
                          "dataset '%s' in '%s' contains a non-finite value at row %zu, "
                          "column %zu",
                          dset, file, i / (size_t)dims[1], i % (size_t)dims[1]);
    close_id(&space, H5Sclose);
    close_id(&type, H5Tclose);
    close_id(&obj, H5Oclose);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *data = buf;
    *rows = (int64_t)dims[0];
    *cols = (int64_t)dims[1];
    return 0;
}

int mpmap_h5_read_matrix(const char *spec, double **data, int64_t *rows, int64_t *cols,
                         char *err, size_t errlen)
{
    if (!data || !rows || !cols)
        return fail_buf(err, errlen, MPMAP_EINVAL, "mpmap_h5_read_matrix: NULL output");
    *data = NULL;
    *rows = *cols = 0;
    size_t len = spec ? strlen(spec) + 1 : 1;
    char *file = malloc(len), *dset = malloc(len);
    int rc = 0;
    if (!file || !dset)
        rc = fail_buf(err, errlen, MPMAP_ENOMEM, "out of memory");
    if (rc == 0)
        rc = mpmap_h5_split_spec(spec, file, len, dset, len, err, errlen);

    struct stat st;
    if (rc == 0 && stat(file, &st) != 0)
        rc = fail_buf(err, errlen, MPMAP_EIO, "cannot open input file '%s': %s", file,
                      strerror(errno));
    else if (rc == 0 && S_ISDIR(st.st_mode))
        rc = fail_buf(err, errlen, MPMAP_EIO, "cannot open input file '%s': %s", file,
                      strerror(EISDIR));
    else if (rc == 0 && access(file, R_OK) != 0)
        rc = fail_buf(err, errlen, MPMAP_EIO, "cannot open input file '%s': %s", file,
                      strerror(errno));
    if (rc != 0) {
        free(file);
        free(dset);
        return rc;
    }

    h5out_quiet q;
    quiet_begin(&q);
    htri_t is = H5Fis_hdf5(file);
    hid_t fid = H5I_INVALID_HID;
    if (is == 0)
        rc = fail_buf(err, errlen, MPMAP_EIO, "input file '%s' is not an HDF5 file", file);
    else if (is < 0 || (fid = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
        rc = fail_buf(err, errlen, MPMAP_EHDF5, "cannot open input file '%s'", file);
    else
        rc = read_dataset(fid, file, dset, data, rows, cols, err, errlen);
    if (fid >= 0 && H5Fclose(fid) < 0 && rc == 0) {
        rc = fail_buf(err, errlen, MPMAP_EHDF5, "cannot close input file '%s'", file);
        free(*data);
        *data = NULL;
        *rows = *cols = 0;
    }
    quiet_end(&q);
    free(file);
    free(dset);
    return rc;
}

int mpmap_h5_write_string_coordinate(mpmap_h5 *f, const char *path, int64_t n,
                                     const char *const *values, const char *long_name)
{
    if (!f)
        return MPMAP_EINVAL;
    h5out_quiet q;
    quiet_begin(&q);
    int rc = 0;
    char *abs = absolute_path(path);
    if (!abs) {
        rc = fail(f, MPMAP_EINVAL, "invalid coordinate name '%s'", path ? path : "(null)");
    } else if (n < 0 || (n > 0 && !values)) {
        rc = fail(f, MPMAP_EINVAL, "coordinate '%s': invalid length or values", abs);
    } else if (object_exists(f->file, abs)) {
        rc = fail(f, MPMAP_EINVAL, "coordinate '%s' already exists", abs);
    } else {
        for (int64_t i = 0; i < n; i++)
            if (!values[i]) {
                rc = fail(f, MPMAP_EINVAL, "coordinate '%s': value %lld is NULL", abs, (long long)i);
                break;
            }
    }
    if (rc == 0) {
        hsize_t dim = (hsize_t)n;
        hid_t lcpl = make_lcpl(), type = string_type();
        hid_t space = H5I_INVALID_HID, ds = H5I_INVALID_HID;
        if (lcpl < 0 || type < 0 || (space = H5Screate_simple(1, &dim, NULL)) < 0 ||
            (ds = H5Dcreate2(f->file, abs, type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT)) < 0)
            rc = fail(f, MPMAP_EHDF5, "cannot create coordinate '%s'", abs);
        else if (n > 0 && H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0)
            rc = fail(f, MPMAP_EHDF5, "cannot write coordinate '%s'", abs);
        else if (H5DSset_scale(ds, last_component(abs)) < 0)
            rc = fail(f, MPMAP_EHDF5, "cannot make '%s' a dimension scale", abs);
        else
            rc = set_cf_attrs(f, ds, abs, NULL, long_name);
        close_id(&ds, H5Dclose);
        close_id(&space, H5Sclose);
        close_id(&type, H5Tclose);
        close_id(&lcpl, H5Pclose);
    }
    free(abs);
    quiet_end(&q);
    return rc;
}
