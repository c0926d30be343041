/*
 * Checkpoint log (see checkpoint.h for the guarantees and the on-disk
 * format). Rank 0 appends completed chunks; a resumed run indexes the valid
 * entries and reads their records back on demand.
 */
#define _GNU_SOURCE /* pwritev, fdatasync, flock, posix_fadvise under -std=c17 */

#include "checkpoint_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "mpmap.h"

/* ---- helpers ------------------------------------------------------------- */

void mpmap__ckpt_message(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static double monotonic_seconds(const struct timespec *ts)
{
    return (double)ts->tv_sec + 1e-9 * (double)ts->tv_nsec;
}

static void mark_synced(mpmap_ckpt *c)
{
    c->unsynced = false;
    if (clock_gettime(CLOCK_MONOTONIC, &c->last_sync) != 0) {
        /* sync_if_due then syncs early, which is harmless */
        c->last_sync.tv_sec = 0;
        c->last_sync.tv_nsec = 0;
    }
}

/* ---- raw I/O ------------------------------------------------------------- */

/* pread until n bytes or end of file. Returns the bytes read, -1 on error. */
ssize_t mpmap__ckpt_read_full(int fd, void *buf, size_t n, int64_t offset)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, (char *)buf + got, n - got, (off_t)(offset + (int64_t)got));
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (k == 0)
            break;
        got += (size_t)k;
    }
    return (ssize_t)got;
}

/* pwritev all of iov at offset, resuming after short writes (large
 * entries, signals). Zero-length iovecs must not be passed. */
static int pwritev_full(int fd, struct iovec *iov, int count, int64_t offset)
{
    while (count > 0) {
        ssize_t k = pwritev(fd, iov, count, (off_t)offset);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (k == 0) {
            errno = EIO;
            return -1;
        }
        offset += k;
        while (count > 0 && (size_t)k >= iov->iov_len) {
            k -= (ssize_t)iov->iov_len;
            iov++;
            count--;
        }
        if (count > 0) {
            iov->iov_base = (char *)iov->iov_base + k;
            iov->iov_len -= (size_t)k;
        }
    }
    return 0;
}

/* Makes the creation (or truncation) of the log durable across a power
 * loss. Best effort: some filesystems refuse fsync on a directory, and the
 * file's own data is synced separately, so failures here are not errors. */
static void sync_parent_dir(const char *path)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return;
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) != 0) {
            /* tolerated, see above */
        }
        if (close(dfd) != 0) {
            /* read-only descriptor: nothing to lose */
        }
    }
    free(copy);
}

/* ---- header -------------------------------------------------------------- */

/* Writes the file header at offset 0 of an empty file and syncs it, so a
 * log always starts with a valid header once open returned. */
static int write_header(mpmap_ckpt *c, const char *fp, size_t fplen, char *err, size_t errlen)
{
    size_t size = MPMAP_CKPT_HEADER_SIZE(fplen);
    unsigned char *h = malloc(size);
    if (h == NULL) {
        mpmap__ckpt_message(err, errlen, "checkpoint '%s': out of memory", c->path);
        return MPMAP_ENOMEM;
    }
    mpmap__ckpt_encode_header(h, fp, fplen, c->ntasks, (uint64_t)c->record_size);

    struct iovec iov = { .iov_base = h, .iov_len = size };
    int rc = pwritev_full(c->fd, &iov, 1, 0);
    free(h);
    if (rc != 0 || fdatasync(c->fd) != 0) {
        mpmap__ckpt_message(err, errlen, "cannot write checkpoint '%s': %s", c->path,
                            strerror(errno));
        return MPMAP_EIO;
    }
    sync_parent_dir(c->path);
    c->end_offset = (int64_t)size;
    mark_synced(c);
    return MPMAP_OK;
}

/* Reads and checks the header of an existing log of `size` bytes against
 * the job (fp: its fingerprint, a C string); on success c->end_offset is
 * where the entries start. */
static int check_header(mpmap_ckpt *c, const char *fp, int64_t size, char *err, size_t errlen)
{
    unsigned char fixed[MPMAP__CKPT_FIXED_HEADER];
    ssize_t got = mpmap__ckpt_read_full(c->fd, fixed, sizeof fixed, 0);
    if (got < 0) {
        mpmap__ckpt_message(err, errlen, "cannot read checkpoint '%s': %s", c->path,
                            strerror(errno));
        return MPMAP_EIO;
    }
    if (got >= 8 && memcmp(fixed, MPMAP_CKPT_MAGIC, 8) != 0) {
        mpmap__ckpt_message(err, errlen, "'%s' is not an mpmap checkpoint", c->path);
        return MPMAP_ERESUME;
    }
    mpmap__ckpt_header stored;
    if (got < (ssize_t)sizeof fixed || size < (int64_t)MPMAP_CKPT_HEADER_SIZE(0) ||
        mpmap__ckpt_decode_header(fixed, &stored) != 0) {
        mpmap__ckpt_message(err, errlen, "checkpoint '%s' is damaged: bad header", c->path);
        return MPMAP_ERESUME;
    }
    if (stored.version != MPMAP_CKPT_VERSION) {
        if (__builtin_bswap32(stored.version) == MPMAP_CKPT_VERSION)
            mpmap__ckpt_message(err, errlen,
                                "checkpoint '%s' was written on a machine of the other byte order",
                                c->path);
        else
            mpmap__ckpt_message(err, errlen,
                                "checkpoint '%s' has format version %u; this build "
                                "reads version %u",
                                c->path, stored.version, MPMAP_CKPT_VERSION);
        return MPMAP_ERESUME;
    }
    /* Checked against the file size before allocating, so a damaged length
     * cannot ask for gigabytes. */
    size_t stored_len = stored.fplen;
    if ((uint64_t)stored_len > (uint64_t)size - MPMAP_CKPT_HEADER_SIZE(0)) {
        mpmap__ckpt_message(err, errlen, "checkpoint '%s' is damaged: bad header", c->path);
        return MPMAP_ERESUME;
    }
    unsigned char *stored_fp = malloc(stored_len + 4);
    if (stored_fp == NULL) {
        mpmap__ckpt_message(err, errlen, "checkpoint '%s': out of memory", c->path);
        return MPMAP_ENOMEM;
    }
    got = mpmap__ckpt_read_full(c->fd, stored_fp, stored_len + 4, MPMAP__CKPT_FIXED_HEADER);
    if (got != (ssize_t)stored_len + 4) {
        if (got < 0)
            mpmap__ckpt_message(err, errlen, "cannot read checkpoint '%s': %s", c->path,
                                strerror(errno));
        else
            mpmap__ckpt_message(err, errlen, "checkpoint '%s' is damaged: bad header", c->path);
        free(stored_fp);
        return got < 0 ? MPMAP_EIO : MPMAP_ERESUME;
    }
    uint32_t stored_crc;
    memcpy(&stored_crc, stored_fp + stored_len, 4);
    int rc = MPMAP_OK;
    char why[MPMAP_MESSAGE_MAX];
    if (mpmap__ckpt_header_crc(fixed, stored_fp, stored_len) != stored_crc) {
        mpmap__ckpt_message(err, errlen, "checkpoint '%s' is damaged: bad header", c->path);
        rc = MPMAP_ERESUME;
    } else if (mpmap_fingerprint_diff((const char *)stored_fp, stored_len, fp, 0, why,
                                      sizeof why) != 0) {
        /* Names the first differing argument ("--bandwidth: was 0.5, now
         * 0.7", "input data changed"): two fingerprints cut at a fixed
         * length read the same when only the input's hash at the end
         * differs. */
        mpmap__ckpt_message(err, errlen, "checkpoint '%s' belongs to a different run (%s)", c->path,
                            why);
        rc = MPMAP_ERESUME;
    } else if (stored.ntasks != c->ntasks) {
        mpmap__ckpt_message(err, errlen,
                            "checkpoint '%s' belongs to a different run (was %lld tasks, now %lld)",
                            c->path, (long long)stored.ntasks, (long long)c->ntasks);
        rc = MPMAP_ERESUME;
    } else if (stored.record_size != (uint64_t)c->record_size) {
        mpmap__ckpt_message(err, errlen,
                            "checkpoint '%s' belongs to a different run (record size was %llu "
                            "bytes, now %zu)",
                            c->path, (unsigned long long)stored.record_size, c->record_size);
        rc = MPMAP_ERESUME;
    }
    free(stored_fp);
    if (rc == MPMAP_OK)
        c->end_offset = (int64_t)MPMAP_CKPT_HEADER_SIZE(stored_len);
    return rc;
}

/* ---- public API ---------------------------------------------------------- */

static void free_handle(mpmap_ckpt *c)
{
    free(c->index);
    free(c->restored);
    free(c->notice);
    free(c->path);
    free(c);
}

/* Takes an exclusive lock so two runs cannot interleave entries in one log.
 * Filesystems without lock support (ENOLCK on some NFS setups) run
 * unlocked rather than refusing to checkpoint at all. */
static int lock_file(mpmap_ckpt *c, char *err, size_t errlen)
{
    while (flock(c->fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EINTR)
            continue;
        if (errno == EWOULDBLOCK) {
            mpmap__ckpt_message(err, errlen, "checkpoint '%s' is in use by another process",
                                c->path);
            return MPMAP_EIO;
        }
        break;
    }
    return MPMAP_OK;
}

static int open_fresh(mpmap_ckpt *c, const char *fp, size_t fplen, char *err, size_t errlen)
{
    /* Not O_TRUNC: the lock must be held before the contents go, or a fresh
     * run could wipe the log of a run still writing it. */
    c->fd = open(c->path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (c->fd < 0) {
        mpmap__ckpt_message(err, errlen, "cannot create checkpoint '%s': %s", c->path,
                            strerror(errno));
        return MPMAP_EIO;
    }
    int rc = lock_file(c, err, errlen);
    if (rc != MPMAP_OK)
        return rc;
    if (ftruncate(c->fd, 0) != 0) {
        mpmap__ckpt_message(err, errlen, "cannot truncate checkpoint '%s': %s", c->path,
                            strerror(errno));
        return MPMAP_EIO;
    }
    return write_header(c, fp, fplen, err, errlen);
}

static int open_resume(mpmap_ckpt *c, const char *fp, size_t fplen, char *err, size_t errlen)
{
    c->fd = open(c->path, O_RDWR | O_CLOEXEC);
    if (c->fd < 0) {
        if (errno == ENOENT) {
            mpmap__ckpt_message(err, errlen, "no checkpoint '%s' to resume from", c->path);
            return MPMAP_ERESUME;
        }
        mpmap__ckpt_message(err, errlen, "cannot open checkpoint '%s': %s", c->path,
                            strerror(errno));
        return MPMAP_EIO;
    }
    int rc = lock_file(c, err, errlen);
    if (rc != MPMAP_OK)
        return rc;
    struct stat st;
    if (fstat(c->fd, &st) != 0) {
        mpmap__ckpt_message(err, errlen, "cannot stat checkpoint '%s': %s", c->path,
                            strerror(errno));
        return MPMAP_EIO;
    }
    int64_t size = (int64_t)st.st_size;
    if (size == 0) /* killed between create and header write: nothing was lost */
        return write_header(c, fp, fplen, err, errlen);
    rc = check_header(c, fp, size, err, errlen);
    if (rc == MPMAP_OK)
        rc = mpmap__ckpt_scan(c, size, err, errlen);
    if (rc != MPMAP_OK)
        return rc;
    if (c->end_offset < size) {
        /* Cut the torn tail now, so new entries follow the last good one
         * and a later scan does not stop at the old garbage. */
        if (ftruncate(c->fd, (off_t)c->end_offset) != 0 || fdatasync(c->fd) != 0) {
            mpmap__ckpt_message(err, errlen, "cannot truncate checkpoint '%s': %s", c->path,
                                strerror(errno));
            return MPMAP_EIO;
        }
    }
    mark_synced(c);
    return MPMAP_OK;
}

int mpmap__ckpt_open(const char *path, const char *fingerprint, int64_t ntasks, size_t record_size,
                     int resume, mpmap_ckpt **out, char *err, size_t errlen)
{
    mpmap__ckpt_message(err, errlen, "%s", "");
    if (out == NULL || path == NULL || ntasks < 0) {
        mpmap__ckpt_message(err, errlen, "checkpoint: invalid arguments");
        return MPMAP_EINVAL;
    }
    *out = NULL;
    if (fingerprint == NULL)
        fingerprint = "";
    size_t fplen = strlen(fingerprint);
    /* Every size computed later (payload lengths, file offsets) is at most
     * ntasks * (record_size + 4) plus headers; keep that well inside int64. */
    if (fplen > UINT32_MAX || record_size > (size_t)(INT64_MAX / 4) ||
        (ntasks > 0 && (uint64_t)record_size + 4u > (uint64_t)(INT64_MAX / 4) / (uint64_t)ntasks)) {
        mpmap__ckpt_message(err, errlen, "checkpoint '%s': job too large for the format", path);
        return MPMAP_EINVAL;
    }
    mpmap_ckpt *c = calloc(1, sizeof *c);
    if (c == NULL || (c->path = strdup(path)) == NULL) {
        free(c);
        mpmap__ckpt_message(err, errlen, "checkpoint '%s': out of memory", path);
        return MPMAP_ENOMEM;
    }
    c->fd = -1;
    c->ntasks = ntasks;
    c->record_size = record_size;
    int rc = resume ? open_resume(c, fingerprint, fplen, err, errlen)
                    : open_fresh(c, fingerprint, fplen, err, errlen);
    if (rc != MPMAP_OK) {
        if (c->fd >= 0 && close(c->fd) != 0) {
            /* already failing with a more useful message */
        }
        free_handle(c);
        return rc;
    }
    *out = c;
    return MPMAP_OK;
}

int mpmap__ckpt_append(mpmap_ckpt *c, int64_t begin, int64_t end, const void *records,
                       const int32_t *status)
{
    if (c == NULL)
        return MPMAP_EINVAL;
    if (begin < 0 || begin >= end || end > c->ntasks || (records == NULL && c->record_size > 0)) {
        snprintf(c->error, sizeof c->error,
                 "checkpoint '%s': cannot append tasks [%lld, %lld) of %lld", c->path,
                 (long long)begin, (long long)end, (long long)c->ntasks);
        return MPMAP_EINVAL;
    }
    size_t n = (size_t)(end - begin);
    /* All-zero statuses are the common case; dropping them saves 4 bytes a
     * task and reads back identically. */
    bool has_status = false;
    for (size_t i = 0; status != NULL && i < n && !has_status; i++)
        has_status = status[i] != 0;
    size_t status_len = has_status ? n * sizeof(int32_t) : 0;
    size_t records_len = n * c->record_size;
    uint64_t payload_len = (uint64_t)status_len + records_len;

    uint32_t crc = mpmap__crc32c(0, status, status_len);
    crc = mpmap__crc32c(crc, records, records_len);
    unsigned char h[MPMAP_CKPT_ENTRY_HEADER_SIZE];
    mpmap__ckpt_entry_header eh = { .flags = has_status ? 1u : 0u,
                                    .begin = begin,
                                    .end = end,
                                    .payload_len = payload_len,
                                    .payload_crc = crc };
    mpmap__ckpt_encode_entry(h, &eh);

    struct iovec iov[3];
    int count = 0;
    iov[count++] = (struct iovec){ .iov_base = h, .iov_len = sizeof h };
    if (status_len > 0)
        iov[count++] = (struct iovec){ .iov_base = (void *)status, .iov_len = status_len };
    if (records_len > 0)
        iov[count++] = (struct iovec){ .iov_base = (void *)records, .iov_len = records_len };
    if (pwritev_full(c->fd, iov, count, c->end_offset) != 0) {
        int saved = errno;
        /* Remove the partial entry so the log stays a clean sequence; a
         * retry would overwrite it anyway since writes go to end_offset. */
        if (ftruncate(c->fd, (off_t)c->end_offset) != 0) {
            /* the torn bytes are caught by the checksums on resume */
        }
        snprintf(c->error, sizeof c->error, "cannot write checkpoint '%s': %s", c->path,
                 strerror(saved));
        return MPMAP_EIO;
    }
    c->end_offset += MPMAP_CKPT_ENTRY_HEADER_SIZE + (int64_t)payload_len;
    c->unsynced = true;
    return MPMAP_OK;
}

int mpmap__ckpt_sync(mpmap_ckpt *c)
{
    if (c == NULL)
        return MPMAP_EINVAL;
    if (fdatasync(c->fd) != 0) {
        snprintf(c->error, sizeof c->error, "cannot sync checkpoint '%s': %s", c->path,
                 strerror(errno));
        return MPMAP_EIO;
    }
    mark_synced(c);
    return MPMAP_OK;
}

int mpmap__ckpt_sync_if_due(mpmap_ckpt *c, double interval)
{
    if (c == NULL)
        return MPMAP_EINVAL;
    if (!c->unsynced)
        return MPMAP_OK;
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) == 0 &&
        monotonic_seconds(&now) - monotonic_seconds(&c->last_sync) < interval)
        return MPMAP_OK;
    return mpmap__ckpt_sync(c);
}

size_t mpmap__ckpt_restored(const mpmap_ckpt *c, const mpmap_range **ranges)
{
    if (ranges != NULL)
        *ranges = c != NULL ? c->restored : NULL;
    return c != NULL ? c->nrestored : 0;
}

int64_t mpmap__ckpt_restored_tasks(const mpmap_ckpt *c)
{
    return c != NULL ? c->restored_tasks : 0;
}

int64_t mpmap__ckpt_discarded_bytes(const mpmap_ckpt *c) { return c != NULL ? c->discarded : 0; }

const char *mpmap__ckpt_notice(const mpmap_ckpt *c)
{
    return c != NULL && c->notice != NULL ? c->notice : "";
}

const char *mpmap__ckpt_error(const mpmap_ckpt *c) { return c != NULL ? c->error : ""; }

static int read_exact(mpmap_ckpt *c, void *buf, size_t n, int64_t offset)
{
    ssize_t got = mpmap__ckpt_read_full(c->fd, buf, n, offset);
    if (got == (ssize_t)n)
        return MPMAP_OK;
    snprintf(c->error, sizeof c->error, "cannot read checkpoint '%s': %s", c->path,
             got < 0 ? strerror(errno) : "file shorter than its index");
    return MPMAP_EIO;
}

int mpmap__ckpt_read(mpmap_ckpt *c, int64_t begin, int64_t end, void *records, int32_t *status)
{
    if (c == NULL || begin < 0 || begin > end)
        return MPMAP_EINVAL;
    /* Last entry starting at or before `begin`. */
    size_t lo = 0, hi = c->nindex;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->index[mid].begin <= begin)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t i = lo > 0 ? lo - 1 : 0;
    for (int64_t t = begin; t < end; i++) {
        if (i >= c->nindex || c->index[i].begin > t || c->index[i].end <= t) {
            snprintf(c->error, sizeof c->error,
                     "checkpoint '%s': tasks [%lld, %lld) were not restored", c->path,
                     (long long)begin, (long long)end);
            return MPMAP_EINVAL;
        }
        const mpmap__ckpt_entry *e = &c->index[i];
        int64_t stop = end < e->end ? end : e->end;
        size_t count = (size_t)(stop - t), skip = (size_t)(t - e->begin);
        size_t entry_tasks = (size_t)(e->end - e->begin);
        int64_t offset = MPMAP__CKPT_OFFSET(e->where);
        int has_status = MPMAP__CKPT_HAS_STATUS(e->where);
        if (status != NULL) {
            int32_t *dst = status + (t - begin);
            if (!has_status)
                memset(dst, 0, count * sizeof *dst);
            else if (read_exact(c, dst, count * sizeof *dst,
                                offset + (int64_t)(skip * sizeof *dst)) != MPMAP_OK)
                return MPMAP_EIO;
        }
        if (records != NULL && c->record_size > 0) {
            int64_t records_at =
                offset + (has_status ? (int64_t)(entry_tasks * sizeof(int32_t)) : 0);
            if (read_exact(c, (char *)records + (size_t)(t - begin) * c->record_size,
                           count * c->record_size,
                           records_at + (int64_t)(skip * c->record_size)) != MPMAP_OK)
                return MPMAP_EIO;
        }
        t = stop;
    }
    return MPMAP_OK;
}

int mpmap__ckpt_close(mpmap_ckpt *c)
{
    if (c == NULL)
        return MPMAP_OK;
    int rc = MPMAP_OK;
    if (c->unsynced && fdatasync(c->fd) != 0)
        rc = MPMAP_EIO;
    if (close(c->fd) != 0)
        rc = MPMAP_EIO;
    free_handle(c);
    return rc;
}

int mpmap__ckpt_remove(mpmap_ckpt *c)
{
    if (c == NULL)
        return MPMAP_OK;
    int rc = MPMAP_OK;
    /* Unlink while still holding the lock, so no other run can open the
     * old log in between. */
    if (unlink(c->path) != 0 && errno != ENOENT)
        rc = MPMAP_EIO;
    if (close(c->fd) != 0)
        rc = MPMAP_EIO;
    free_handle(c);
    return rc;
}