/*
 * The life of an HDF5 output file: path checks, create "<final>.partial",
 * commit (flush, close, fsync, rename, fsync the folder), abort and discard,
 * and making sure a full disk fails cleanly before HDF5's final flush.
 */
#define _GNU_SOURCE /* memfd_create, fallocate */

#include "h5_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h> /* memfd_create */
#include <sys/stat.h>
#include <unistd.h>

int mpmap_h5_check_output_path(const char *path, int force, char *err, size_t errlen)
{
    if (!path || !*path)
        return h5__fail_buf(err, errlen, MPMAP_EINVAL, "output path is empty");
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            return h5__fail_buf(err, errlen, MPMAP_EIO, "cannot create output '%s': %s", path,
                                strerror(EISDIR));
        if (!force)
            return h5__fail_buf(err, errlen, MPMAP_EIO,
                                "output '%s' exists (use --force to overwrite or --resume to "
                                "continue)",
                                path);
    } else if (errno != ENOENT) {
        return h5__fail_buf(err, errlen, MPMAP_EIO, "cannot create output '%s': %s", path,
                            strerror(errno));
    }

    /* The temporary file and the rename need a writable folder. */
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) : 0;
    char *dir = malloc(dlen + 2);
    if (!dir)
        return h5__fail_buf(err, errlen, MPMAP_ENOMEM, "out of memory");
    if (!slash)
        strcpy(dir, ".");
    else if (dlen == 0)
        strcpy(dir, "/");
    else
        snprintf(dir, dlen + 1, "%s", path);
    int rc = 0;
    if (stat(dir, &st) != 0)
        rc = h5__fail_buf(err, errlen, MPMAP_EIO, "cannot create output '%s': %s", path,
                          strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        rc = h5__fail_buf(err, errlen, MPMAP_EIO, "cannot create output '%s': %s", path,
                          strerror(ENOTDIR));
    else if (access(dir, W_OK | X_OK) != 0)
        rc = h5__fail_buf(err, errlen, MPMAP_EIO, "cannot create output '%s': %s", path,
                          strerror(errno));
    free(dir);
    return rc;
}

int mpmap_h5_create(const char *final_path, int force, mpmap_h5 **out, char *err, size_t errlen)
{
    if (!out)
        return h5__fail_buf(err, errlen, MPMAP_EINVAL, "mpmap_h5_create: out is NULL");
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
        return h5__fail_buf(err, errlen, MPMAP_ENOMEM, "out of memory");
    }
    memcpy(f->final_path, final_path, len + 1);
    snprintf(f->partial_path, len + sizeof ".partial", "%s.partial", final_path);
    f->force = force;
    h5__trace_init(&f->trace);
    h5__live_init(&f->live);

    h5__quiet q;
    h5__quiet_begin(&q);
    f->file = H5Fcreate(f->partial_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    int sys = 0;
    if (f->file < 0) {
        sys = h5__errno();
        rc = h5__fail_buf(err, errlen, MPMAP_EHDF5, "cannot create output '%s' (as '%s')",
                          final_path, f->partial_path);
    }
    h5__quiet_end(&q);
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

const char *mpmap_h5_error(const mpmap_h5 *f) { return f ? f->error : ""; }

int mpmap_h5_sys_errno(const mpmap_h5 *f) { return f ? f->sys_errno : 0; }

const char *mpmap_h5_partial_path(const mpmap_h5 *f) { return f ? f->partial_path : NULL; }

const char *mpmap_h5_final_path(const mpmap_h5 *f) { return f ? f->final_path : NULL; }

/* Closes every id the handle owns, datasets first, then the trace columns in
 * reverse order of creation, then the file. Returns the first close failure. */
int h5__close_all(mpmap_h5 *f)
{
    int rc = 0;
    while (f->datasets) {
        mpmap_h5_dataset *d = f->datasets;
        if (d->id >= 0 && H5Dclose(d->id) < 0 && rc == 0)
            rc = h5__fail(f, MPMAP_EHDF5, "cannot close dataset '%s'", d->path);
        h5__dataset_free(d);
    }
    int trc = h5__trace_close(f);
    if (rc == 0)
        rc = trc;
    h5__live_close(f);

    if (f->file >= 0) {
        /* With the default (weak) close degree, HDF5 keeps the file open while
         * any object in it is, and would then write it after the rename; an
         * id left open here is a bug, so report it and close it. */
        ssize_t open = H5Fget_obj_count(f->file, H5F_OBJ_ALL | H5F_OBJ_LOCAL);
        if (open > 1) {
            if (rc == 0)
                rc = h5__fail(f, MPMAP_EHDF5, "internal error: %zd HDF5 objects left open",
                              open - 1);
            hid_t *ids = malloc((size_t)open * sizeof *ids);
            ssize_t got =
                ids ? H5Fget_obj_ids(f->file, H5F_OBJ_ALL & ~H5F_OBJ_FILE, (size_t)open, ids) : 0;
            for (ssize_t i = 0; i < got; i++)
                (void)H5Idec_ref(ids[i]);
            free(ids);
        }
        if (H5Fclose(f->file) < 0 && rc == 0)
            rc = h5__fail(f, MPMAP_EHDF5, "cannot close '%s'", f->partial_path);
        f->file = H5I_INVALID_HID;
    }
    return rc;
}

static void free_handle(mpmap_h5 *f)
{
    free(f->keep_path);
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
void h5__discard_storage(mpmap_h5 *f)
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
        int chunked = H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, rank, chunk) == rank;
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
#define H5__FLUSH_SLACK ((hsize_t)256 << 10)

/*
 * HDF5 1.10 cannot close a file whose metadata flush failed (see
 * h5__discard_storage), so the commit makes sure the disk can take everything
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
    need += H5__FLUSH_SLACK;
    for (mpmap_h5_dataset *d = f->datasets; d; d = d->next)
        if (d->id >= 0)
            need += unallocated_bytes(d->id);
    for (int i = 0; i < TRACE_NDS; i++)
        if (f->trace.ds[i] >= 0)
            need += unallocated_bytes(f->trace.ds[i]);
#ifdef FALLOC_FL_KEEP_SIZE
    if (fallocate(*(int *)handle, FALLOC_FL_KEEP_SIZE, 0, (off_t)need) != 0 &&
        (errno == ENOSPC || errno == EDQUOT))
        return h5__fail(f, MPMAP_EIO, "cannot write '%s': %s", f->partial_path, strerror(errno));
#endif
    return 0;
}

int h5__settle(mpmap_h5 *f)
{
    int rc = f->status;
    if (rc == 0)
        rc = h5__trace_flush(f);
    if (rc == 0)
        rc = ensure_space(f);
    if (f->file >= 0 && rc == 0 && H5Fflush(f->file, H5F_SCOPE_GLOBAL) < 0)
        rc = h5__fail(f, MPMAP_EHDF5, "cannot flush '%s'", f->partial_path);
    if (rc != 0)
        h5__discard_storage(f);
    return rc;
}

int mpmap_h5_commit(mpmap_h5 *f, char *err, size_t errlen)
{
    if (!f)
        return h5__fail_buf(err, errlen, MPMAP_EINVAL, "mpmap_h5_commit: no file");
    h5__quiet q;
    h5__quiet_begin(&q);
    int rc = h5__settle(f);
    int crc = h5__close_all(f);
    if (rc == 0)
        rc = crc;
    h5__quiet_end(&q);

    if (rc == 0 && fsync_path(f->partial_path, O_RDONLY) != 0)
        rc = h5__fail(f, MPMAP_EIO, "cannot sync '%s': %s", f->partial_path, strerror(errno));
    struct stat st;
    /* The output may have appeared while the job ran; without --force it is
     * not ours to replace. */
    if (rc == 0 && !f->force && lstat(f->final_path, &st) == 0) {
        errno = 0; /* a refusal, not a system error */
        rc = h5__fail(f, MPMAP_EIO,
                      "output '%s' exists (use --force to overwrite or --resume to continue)",
                      f->final_path);
    }
    if (rc == 0 && rename(f->partial_path, f->final_path) != 0)
        rc = h5__fail(f, MPMAP_EIO, "cannot rename '%s' to '%s': %s", f->partial_path,
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
        /* Rows written in place are the checkpoint's results: kept for
         * --resume rather than removed with the file that failed. */
        if (!f->keep_path || rename(f->partial_path, f->keep_path) != 0)
            (void)unlink(f->partial_path);
        if (err && errlen > 0)
            snprintf(err, errlen, "output '%s' not written: %s", f->final_path, f->error);
    }
    int sys = rc != 0 ? f->sys_errno : 0;
    free_handle(f);
    errno = sys;
    return rc;
}

int h5__keep_on_failure(mpmap_h5 *f, const char *path)
{
    free(f->keep_path);
    f->keep_path = path ? strdup(path) : NULL;
    return path && !f->keep_path ? -1 : 0;
}

void mpmap_h5_discard(mpmap_h5 *f)
{
    if (f)
        h5__discard_storage(f);
}

void mpmap_h5_abort(mpmap_h5 *f)
{
    if (!f)
        return;
    h5__quiet q;
    h5__quiet_begin(&q);
    h5__discard_storage(f);
    (void)h5__close_all(f);
    h5__quiet_end(&q);
    (void)unlink(f->partial_path);
    free_handle(f);
}
