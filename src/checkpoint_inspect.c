/*
 * A read-only summary of a checkpoint log (see checkpoint_inspect.h). The
 * header is checked as at resume, minus the comparison with a job; the
 * entries go through the resume scan itself (checkpoint_scan.c), so the
 * count is the one a resume would restore.
 */
#define _GNU_SOURCE /* pread under -std=c17 */

#include "checkpoint_inspect.h"
#include "checkpoint_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Status codes read at once while counting failures. */
#define INSPECT_STATUS_BLOCK 65536

/* The header of a log of `size` bytes; on success c->ntasks, c->record_size
 * and c->end_offset (where the entries start) are set. */
static int read_header(mpmap_ckpt *c, int64_t size, char *err, size_t errlen)
{
    unsigned char fixed[MPMAP__CKPT_FIXED_HEADER] = { 0 };
    ssize_t got = mpmap__ckpt_read_full(c->fd, fixed, sizeof fixed, 0);
    if (got < 0) {
        mpmap__ckpt_message(err, errlen, "cannot read checkpoint '%s': %s", c->path,
                            strerror(errno));
        return MPMAP_EIO;
    }
    mpmap__ckpt_header h;
    if (got < 8 || mpmap__ckpt_decode_header(fixed, &h) != 0) {
        mpmap__ckpt_message(err, errlen, "'%s' is not an mpmap checkpoint", c->path);
        return MPMAP_ERESUME;
    }
    if (got < (ssize_t)sizeof fixed || size < (int64_t)MPMAP_CKPT_HEADER_SIZE(0) ||
        (uint64_t)h.fplen > (uint64_t)size - MPMAP_CKPT_HEADER_SIZE(0)) {
        mpmap__ckpt_message(err, errlen, "checkpoint '%s' is damaged: bad header", c->path);
        return MPMAP_ERESUME;
    }
    if (h.version != MPMAP_CKPT_VERSION) {
        mpmap__ckpt_message(err, errlen,
                            "checkpoint '%s' has format version %u (or another "
                            "byte order); this build reads version %u",
                            c->path, h.version, MPMAP_CKPT_VERSION);
        return MPMAP_ERESUME;
    }
    unsigned char *fp = malloc((size_t)h.fplen + 4);
    if (fp == NULL) {
        mpmap__ckpt_message(err, errlen, "checkpoint '%s': out of memory", c->path);
        return MPMAP_ENOMEM;
    }
    got = mpmap__ckpt_read_full(c->fd, fp, (size_t)h.fplen + 4, MPMAP__CKPT_FIXED_HEADER);
    uint32_t crc = 0;
    if (got == (ssize_t)h.fplen + 4)
        memcpy(&crc, fp + h.fplen, 4);
    int ok = got == (ssize_t)h.fplen + 4 && mpmap__ckpt_header_crc(fixed, fp, h.fplen) == crc;
    free(fp);
    if (!ok || h.ntasks < 0) {
        mpmap__ckpt_message(err, errlen, "checkpoint '%s' is damaged: bad header", c->path);
        return MPMAP_ERESUME;
    }
    c->ntasks = h.ntasks;
    c->record_size = (size_t)h.record_size;
    c->end_offset = (int64_t)MPMAP_CKPT_HEADER_SIZE(h.fplen);
    return MPMAP_OK;
}

/* Tasks with a non-zero status among the restored ones. Entries stored
 * without a status array had none failed, and are not read at all. */
static int count_failed(mpmap_ckpt *c, int64_t *failed, char *err, size_t errlen)
{
    int32_t *status = malloc(INSPECT_STATUS_BLOCK * sizeof *status);
    if (status == NULL) {
        mpmap__ckpt_message(err, errlen, "checkpoint '%s': out of memory", c->path);
        return MPMAP_ENOMEM;
    }
    int rc = MPMAP_OK;
    *failed = 0;
    for (size_t i = 0; i < c->nindex && rc == MPMAP_OK; i++) {
        if (!MPMAP__CKPT_HAS_STATUS(c->index[i].where))
            continue;
        for (int64_t b = c->index[i].begin; b < c->index[i].end && rc == MPMAP_OK;
             b += INSPECT_STATUS_BLOCK) {
            int64_t e = c->index[i].end - b < INSPECT_STATUS_BLOCK ? c->index[i].end
                                                                   : b + INSPECT_STATUS_BLOCK;
            rc = mpmap__ckpt_read(c, b, e, NULL, status);
            for (int64_t t = 0; rc == MPMAP_OK && t < e - b; t++)
                *failed += status[t] != 0;
        }
    }
    if (rc != MPMAP_OK)
        mpmap__ckpt_message(err, errlen, "%s", mpmap__ckpt_error(c));
    free(status);
    return rc;
}

int mpmap__ckpt_inspect(const char *path, mpmap__ckpt_summary *out, char *err, size_t errlen)
{
    mpmap__ckpt_message(err, errlen, "%s", "");
    if (path == NULL || out == NULL) {
        mpmap__ckpt_message(err, errlen, "checkpoint: invalid arguments");
        return MPMAP_EINVAL;
    }
    *out = (mpmap__ckpt_summary){ .ntasks = -1 };
    mpmap_ckpt *c = calloc(1, sizeof *c);
    if (c == NULL || (c->path = strdup(path)) == NULL) {
        free(c);
        mpmap__ckpt_message(err, errlen, "checkpoint '%s': out of memory", path);
        return MPMAP_ENOMEM;
    }
    int rc = MPMAP_OK;
    struct stat st;
    c->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (c->fd < 0) {
        rc = errno == ENOENT ? MPMAP_ERESUME : MPMAP_EIO;
        mpmap__ckpt_message(err, errlen, "%s '%s'%s%s",
                            rc == MPMAP_ERESUME ? "no checkpoint" : "cannot open checkpoint", path,
                            rc == MPMAP_ERESUME ? "" : ": ",
                            rc == MPMAP_ERESUME ? "" : strerror(errno));
    } else if (fstat(c->fd, &st) != 0) {
        mpmap__ckpt_message(err, errlen, "cannot stat checkpoint '%s': %s", path, strerror(errno));
        rc = MPMAP_EIO;
    } else if (st.st_size > 0) {
        /* An empty file is a run killed between create and header: nothing done. */
        rc = read_header(c, (int64_t)st.st_size, err, errlen);
        if (rc == MPMAP_OK)
            rc = mpmap__ckpt_scan(c, (int64_t)st.st_size, err, errlen);
        if (rc == MPMAP_OK)
            rc = count_failed(c, &out->failed, err, errlen);
        if (rc == MPMAP_OK) {
            out->ntasks = c->ntasks;
            out->record_size = c->record_size;
            out->done = c->restored_tasks;
            out->discarded = c->discarded;
        }
    }
    if (c->fd >= 0)
        close(c->fd);
    free(c->index);
    free(c->restored);
    free(c->notice);
    free(c->path);
    free(c);
    return rc;
}
