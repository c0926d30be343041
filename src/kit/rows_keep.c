/*
 * The rows of a checkpoint written with --write ranks, kept across legs
 * (see rows.h). Rank 0 only.
 *
 * OUT.ckpt logs which tasks are done; their rows are in the data file of the
 * leg that computed them. OUT.ckpt.rows says which file that is (its inode:
 * a stopped leg renames OUT.partial to OUT.partial.prev, a killed one
 * leaves it) and where each field's data starts in it. A resumed leg moves
 * that file aside, creates its own OUT.partial, copies the fields' data
 * across, and only then points the manifest at the new file and drops the
 * old one, so a leg killed at any step leaves a manifest naming a file that
 * holds every checkpointed row.
 */
#define _POSIX_C_SOURCE 200809L
#include "rows.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEEP_MAGIC "mpmap rows 1"
#define COPY_BYTES ((size_t)4 << 20)

typedef struct manifest {
    uint64_t fingerprint;
    uint64_t device, inode;
    int64_t ntasks;
    int nfields;
    int64_t base[MPMAP_APP_MAX_FIELDS];
    int64_t row_bytes[MPMAP_APP_MAX_FIELDS];
} manifest;

void kit_rows_keep_paths(const char *output, char *manifest_path, char *prev, size_t len)
{
    snprintf(manifest_path, len, "%s.ckpt.rows", output);
    snprintf(prev, len, "%s.partial.prev", output);
}

static int read_manifest(const char *path, manifest *m)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char magic[32] = "";
    unsigned long long fp = 0, dev = 0, ino = 0;
    long long ntasks = 0;
    int ok = fgets(magic, sizeof magic, f) && strncmp(magic, KEEP_MAGIC "\n", sizeof magic) == 0 &&
             fscanf(f, "fingerprint %llx device %llu inode %llu ntasks %lld fields %d", &fp, &dev,
                    &ino, &ntasks, &m->nfields) == 5 &&
             m->nfields >= 1 && m->nfields <= MPMAP_APP_MAX_FIELDS;
    for (int i = 0; ok && i < m->nfields; i++) {
        long long base, row;
        ok = fscanf(f, "%lld %lld", &base, &row) == 2 && base >= 0 && row >= 0;
        m->base[i] = base;
        m->row_bytes[i] = row;
    }
    fclose(f);
    m->fingerprint = fp;
    m->device = dev;
    m->inode = ino;
    m->ntasks = ntasks;
    return ok ? 0 : -1;
}

/* The manifest, whole or not at all: written beside, synced, renamed. */
static int write_manifest(const char *path, const manifest *m)
{
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f,
            KEEP_MAGIC "\nfingerprint %016" PRIx64 "\ndevice %" PRIu64 "\ninode %" PRIu64
                       "\nntasks %" PRId64 "\nfields %d\n",
            m->fingerprint, m->device, m->inode, m->ntasks, m->nfields);
    for (int i = 0; i < m->nfields; i++)
        fprintf(f, "%" PRId64 " %" PRId64 "\n", m->base[i], m->row_bytes[i]);
    int ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        (void)unlink(tmp);
        return -1;
    }
    /* The rename itself survives a crash once the folder is synced. */
    char dir[4300];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    return 0;
}

static int same_file(const char *path, const manifest *m)
{
    struct stat st;
    return stat(path, &st) == 0 && (uint64_t)st.st_dev == m->device &&
           (uint64_t)st.st_ino == m->inode;
}

int kit_rows_keep_claim(const char *output, uint64_t fingerprint_hash, char *msg, size_t msglen)
{
    char path[4200], prev[4200], partial[4200];
    kit_rows_keep_paths(output, path, prev, sizeof path);
    snprintf(partial, sizeof partial, "%s.partial", output);
    manifest m;
    if (read_manifest(path, &m) != 0 || m.fingerprint != fingerprint_hash) {
        snprintf(msg, msglen,
                 "--resume: '%s' does not describe where this run's results were written "
                 "(missing or of another run); rerun with --force to start over",
                 path);
        return -1;
    }
    if (same_file(prev, &m))
        return 0;
    if (same_file(partial, &m) && rename(partial, prev) == 0)
        return 0;
    snprintf(msg, msglen,
             "--resume: the file holding the results of the checkpoint's tasks ('%s' or "
             "'%s') is gone; rerun with --force to start over",
             prev, partial);
    return -1;
}

static int copy_region(int from, int to, int64_t src, int64_t dst, int64_t bytes, char *buf)
{
    while (bytes > 0) {
        size_t n = bytes < (int64_t)COPY_BYTES ? (size_t)bytes : COPY_BYTES;
        ssize_t got = pread(from, buf, n, (off_t)src);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -1;
        if (got == 0) /* rows never written in the old file: nothing to carry */
            return 0;
        for (ssize_t done = 0; done < got;) {
            ssize_t w = pwrite(to, buf + done, (size_t)(got - done), (off_t)(dst + done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return -1;
            done += w;
        }
        src += got;
        dst += got;
        bytes -= got;
    }
    return 0;
}

/* Every field's rows from the claimed file into the new one. */
static int copy_rows(const kit_rows *r, const char *prev, const manifest *old, char *msg,
                     size_t msglen)
{
    if (old->nfields != r->l.nfields || old->ntasks != r->l.ntasks) {
        snprintf(msg, msglen, "--resume: '%s' holds other fields; rerun with --force", prev);
        return -1;
    }
    int from = open(prev, O_RDONLY | O_CLOEXEC);
    int to = open(r->l.path, O_WRONLY | O_CLOEXEC);
    char *buf = malloc(COPY_BYTES);
    int rc = (from >= 0 && to >= 0 && buf) ? 0 : -1;
    for (int i = 0; rc == 0 && i < r->l.nfields; i++) {
        if (old->row_bytes[i] != r->l.row_bytes[i])
            rc = -1;
        else
            rc = copy_region(from, to, old->base[i], r->l.base[i], r->l.ntasks * r->l.row_bytes[i],
                             buf);
    }
    if (rc == 0 && fdatasync(to) != 0)
        rc = -1;
    int e = errno;
    free(buf);
    if (from >= 0)
        close(from);
    if (to >= 0)
        close(to);
    if (rc != 0)
        snprintf(msg, msglen,
                 "--resume: cannot carry the checkpoint's results from '%s' to '%s': %s", prev,
                 r->l.path, strerror(e ? e : EIO));
    return rc;
}

int kit_rows_keep_start(const kit_rows *r, const char *output, uint64_t fingerprint_hash,
                        int resume, char *msg, size_t msglen)
{
    char path[4200], prev[4200];
    kit_rows_keep_paths(output, path, prev, sizeof path);
    manifest old;
    if (resume && (read_manifest(path, &old) != 0 || copy_rows(r, prev, &old, msg, msglen) != 0))
        return -1;
    struct stat st;
    if (stat(r->l.path, &st) != 0) {
        snprintf(msg, msglen, "cannot look at '%s': %s", r->l.path, strerror(errno));
        return -1;
    }
    manifest m = { .fingerprint = fingerprint_hash,
                   .device = (uint64_t)st.st_dev,
                   .inode = (uint64_t)st.st_ino,
                   .ntasks = r->l.ntasks,
                   .nfields = r->l.nfields };
    for (int i = 0; i < m.nfields; i++) {
        m.base[i] = r->l.base[i];
        m.row_bytes[i] = r->l.row_bytes[i];
    }
    if (write_manifest(path, &m) != 0) {
        snprintf(msg, msglen, "cannot write '%s': %s", path, strerror(errno));
        return -1;
    }
    (void)unlink(prev); /* its rows are in the new file now */
    return 0;
}

void kit_rows_keep_stop(const char *output)
{
    char path[4200], prev[4200], partial[4200];
    kit_rows_keep_paths(output, path, prev, sizeof path);
    snprintf(partial, sizeof partial, "%s.partial", output);
    (void)rename(partial, prev);
}

void kit_rows_keep_forget(const char *output)
{
    char path[4200], prev[4200];
    kit_rows_keep_paths(output, path, prev, sizeof path);
    (void)unlink(path);
    (void)unlink(prev);
}
