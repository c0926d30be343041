/*
 * The files of a keyed run's checkpoint (keyed_checkpoint.c says what they
 * hold and when they are written): their names, the state files (written
 * from a rank's runs and table, read back into its table) and the manifest
 * (written, read and checked against the job), each written to NAME.tmp,
 * synced and renamed into place.
 */
#define _POSIX_C_SOURCE 200809L
#include "checkpoint.h"
#include "keyed_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KC_MAGIC "MPMAPKC1"
#define KS_MAGIC "MPMAPKS1"
#define KC_HEAD 56 /* the manifest's fixed part */
#define KS_HEAD 32 /* a state file's header */
/* Bounds a damaged manifest cannot push an allocation past. */
#define KC_MAX_FINGERPRINT (1u << 20)
#define KC_MAX_FILES (1 << 24)

/* ---- file names ------------------------------------------------------------ */

/* path's directory into dir; returns path's last component. */
static const char *dir_of(const char *path, char *dir, size_t len)
{
    const char *slash = strrchr(path, '/');
    if (slash)
        snprintf(dir, len, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    else
        snprintf(dir, len, ".");
    return slash ? slash + 1 : path;
}

void mpmap__kstate_name(char *buf, size_t len, const char *path, int leg, int rank)
{
    snprintf(buf, len, "%s.leg%d.rank%d", path, leg, rank);
}

/* Whether `name` (in path's directory) is a state file of path: its leg
 * and rank, else -1. ".tmp" leftovers count as well. */
static int state_leg(const char *name, const char *base, int *rank)
{
    size_t bl = strlen(base);
    if (strncmp(name, base, bl) != 0 || strncmp(name + bl, ".leg", 4) != 0)
        return -1;
    char *end;
    long leg = strtol(name + bl + 4, &end, 10);
    if (end == name + bl + 4 || strncmp(end, ".rank", 5) != 0)
        return -1;
    const char *r = end + 5;
    long rk = strtol(r, &end, 10);
    if (end == r || (*end && strcmp(end, ".tmp") != 0) || leg < 0 || rk < 0)
        return -1;
    *rank = (int)rk;
    return (int)leg;
}

/* Removes path's state files except leg `keep`'s first `files` (keep -1:
 * all of them). 0 or MPMAP_EIO. */
int mpmap__kstate_remove(const char *path, int keep, int files)
{
    char dir[4096];
    const char *base = dir_of(path, dir, sizeof dir);
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? MPMAP_OK : MPMAP_EIO;
    int rc = MPMAP_OK;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        int rank, leg = state_leg(e->d_name, base, &rank);
        size_t nl = strlen(e->d_name);
        bool tmp = nl > 4 && strcmp(e->d_name + nl - 4, ".tmp") == 0;
        if (leg < 0 || (leg == keep && rank < files && !tmp))
            continue;
        char file[8192];
        snprintf(file, sizeof file, "%s/%s", dir, e->d_name);
        if (unlink(file) != 0 && errno != ENOENT)
            rc = MPMAP_EIO;
    }
    closedir(d);
    return rc;
}

int mpmap_keyed_checkpoint_remove(const char *path)
{
    if (!path)
        return MPMAP_EINVAL;
    /* The manifest first: without it the state files are not a checkpoint. */
    int rc = unlink(path) == 0 || errno == ENOENT ? MPMAP_OK : MPMAP_EIO;
    int rs = mpmap__kstate_remove(path, -1, 0);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    (void)unlink(tmp);
    return rc != MPMAP_OK ? rc : rs;
}

/* Makes a rename in path's directory durable. */
static void sync_dir(const char *path)
{
    char dir[4096];
    (void)dir_of(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* ---- writing ----------------------------------------------------------------- */

typedef struct kwriter {
    FILE *f;
    uint32_t crc;
    uint64_t bytes;
    int err; /* errno of the first failure */
} kwriter;

static void put(kwriter *w, const void *p, size_t n)
{
    if (w->err || n == 0)
        return;
    if (fwrite(p, 1, n, w->f) != n)
        w->err = errno ? errno : EIO;
    w->crc = mpmap__crc32c(w->crc, p, n);
    w->bytes += n;
}

static FILE *open_tmp(const char *final, char *tmp, size_t len)
{
    snprintf(tmp, len, "%s.tmp", final);
    int fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (fd >= 0 && !f)
        close(fd);
    return f;
}

/* Syncs, closes and renames w's file into place: the first errno, or 0. */
static int close_tmp(kwriter *w, const char *tmp, const char *final)
{
    int err = w->err;
    if (!err && (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0))
        err = errno ? errno : EIO;
    if (fclose(w->f) != 0 && !err)
        err = errno ? errno : EIO;
    if (!err && rename(tmp, final) != 0)
        err = errno;
    if (err)
        (void)unlink(tmp);
    return err;
}

/* This rank's partials: its runs, then its table. */
int mpmap__kstate_write(mpmap_emitter *em, const char *file, uint64_t *bytes, uint32_t *crc,
                        char *msg, size_t msglen)
{
    size_t vs = em->job->value_size;
    const mpmap__ktab *t = &em->local;
    int64_t entries = 0;
    for (size_t i = 0; i < em->spill.nruns; i++)
        entries += em->spill.runs[i].entries;
    for (size_t i = 0; i < t->nentries; i++)
        entries += t->entries[i].npartials > 0;
    char tmp[4300]; /* the name and ".tmp" */
    kwriter w = { .f = open_tmp(file, tmp, sizeof tmp) };
    if (!w.f) {
        snprintf(msg, msglen, "rank %d: cannot create '%s': %s", em->rank, tmp, strerror(errno));
        return MPMAP_EIO;
    }
    uint32_t head[2] = { 1, 0 };
    uint64_t vs64 = vs;
    put(&w, KS_MAGIC, 8);
    put(&w, head, sizeof head);
    put(&w, &vs64, 8);
    put(&w, &entries, 8);
    mpmap__kentry_buf b = { 0 };
    int rc = MPMAP_OK;
    for (size_t i = 0; i < em->spill.nruns && rc == MPMAP_OK && !w.err; i++) {
        rc = mpmap__krun_rewind(&em->spill, i);
        int got;
        while (rc == MPMAP_OK && !w.err && (got = mpmap__krun_next(&em->spill, i, vs, &b)) != 0) {
            if (got < 0) {
                rc = got;
                break;
            }
            uint64_t eh[2] = { b.keylen, b.n };
            put(&w, eh, sizeof eh);
            put(&w, b.data, b.keylen + b.n * (8 + vs));
        }
    }
    free(b.data);
    for (size_t i = 0; i < t->nentries && rc == MPMAP_OK && !w.err; i++) {
        const mpmap__kentry *k = &t->entries[i];
        if (k->npartials <= 0)
            continue;
        uint64_t eh[2] = { k->keylen, (uint64_t)k->npartials };
        put(&w, eh, sizeof eh);
        put(&w, t->keys + k->keyoff, k->keylen);
        for (int64_t r = k->first; r >= 0; r = *MPMAP__REC_NEXT(t, r)) {
            put(&w, MPMAP__REC_TASK(t, r), 8);
            put(&w, MPMAP__REC_VALUE(t, r), vs);
        }
    }
    if (rc != MPMAP_OK && !w.err)
        w.err = EIO;
    int err = close_tmp(&w, tmp, file);
    if (err) {
        if (rc != MPMAP_OK && em->spill.error[0])
            snprintf(msg, msglen, "%s", em->spill.error);
        else
            snprintf(msg, msglen, "rank %d: cannot write '%s': %s", em->rank, file, strerror(err));
        return MPMAP_EIO;
    }
    sync_dir(file);
    *bytes = w.bytes;
    *crc = w.crc;
    return MPMAP_OK;
}

void mpmap__kmanifest_free(mpmap__kmanifest *m)
{
    free(m->fingerprint);
    free(m->ranges);
    free(m->files);
    *m = (mpmap__kmanifest){ 0 };
}

int mpmap__kmanifest_write(const char *path, const mpmap__kmanifest *m, char *msg, size_t msglen)
{
    char tmp[4300]; /* the name and ".tmp" */
    kwriter w = { .f = open_tmp(path, tmp, sizeof tmp) };
    if (!w.f) {
        snprintf(msg, msglen, "cannot create '%s': %s", tmp, strerror(errno));
        return MPMAP_EIO;
    }
    uint32_t v[2] = { 1, m->fplen };
    int32_t ints[4] = { m->op, m->type, m->leg, m->nfiles };
    put(&w, KC_MAGIC, 8);
    put(&w, v, sizeof v);
    put(&w, &m->ntasks, 8);
    put(&w, &m->value_size, 8);
    put(&w, ints, sizeof ints);
    put(&w, &m->nranges, 8);
    put(&w, m->fingerprint, m->fplen);
    put(&w, m->ranges, m->nranges * sizeof *m->ranges);
    put(&w, m->files, (size_t)m->nfiles * sizeof *m->files);
    uint32_t crc = w.crc;
    put(&w, &crc, 4);
    int err = close_tmp(&w, tmp, path);
    if (err) {
        snprintf(msg, msglen, "cannot write '%s': %s", path, strerror(err));
        return MPMAP_EIO;
    }
    sync_dir(path);
    return MPMAP_OK;
}

/* ---- reading the manifest ------------------------------------------------------ */

/* 0, MPMAP_ERESUME (missing, damaged, not a manifest) or MPMAP_ENOMEM/EIO. */
static int read_manifest(const char *path, mpmap__kmanifest *m, char *err, size_t errlen)
{
    *m = (mpmap__kmanifest){ 0 };
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) {
            snprintf(err, errlen, "no checkpoint '%s' to resume from", path);
            return MPMAP_ERESUME;
        }
        snprintf(err, errlen, "cannot open checkpoint '%s': %s", path, strerror(errno));
        return MPMAP_EIO;
    }
    unsigned char h[KC_HEAD];
    int rc = MPMAP_ERESUME;
    uint32_t crc = 0;
    if (fread(h, 1, KC_HEAD, f) == KC_HEAD && memcmp(h, KC_MAGIC, 8) == 0) {
        uint32_t version;
        memcpy(&version, h + 8, 4);
        memcpy(&m->fplen, h + 12, 4);
        memcpy(&m->ntasks, h + 16, 8);
        memcpy(&m->value_size, h + 24, 8);
        memcpy(&m->op, h + 32, 4);
        memcpy(&m->type, h + 36, 4);
        memcpy(&m->leg, h + 40, 4);
        memcpy(&m->nfiles, h + 44, 4);
        memcpy(&m->nranges, h + 48, 8);
        crc = mpmap__crc32c(0, h, KC_HEAD);
        if (version == 1 && m->fplen <= KC_MAX_FINGERPRINT && m->ntasks >= 0 &&
            m->nranges <= (uint64_t)m->ntasks && m->nfiles > 0 && m->nfiles <= KC_MAX_FILES &&
            m->leg >= 0)
            rc = MPMAP_OK;
    }
    if (rc == MPMAP_OK) {
        m->fingerprint = malloc((size_t)m->fplen + 1);
        m->ranges = malloc((size_t)m->nranges * sizeof *m->ranges + 1);
        m->files = malloc((size_t)m->nfiles * sizeof *m->files);
        if (!m->fingerprint || !m->ranges || !m->files)
            rc = MPMAP_ENOMEM;
    }
    uint32_t stored = 0;
    if (rc == MPMAP_OK &&
        (fread(m->fingerprint, 1, m->fplen, f) != m->fplen ||
         fread(m->ranges, sizeof *m->ranges, m->nranges, f) != m->nranges ||
         fread(m->files, sizeof *m->files, (size_t)m->nfiles, f) != (size_t)m->nfiles ||
         fread(&stored, 4, 1, f) != 1))
        rc = MPMAP_ERESUME;
    if (rc == MPMAP_OK) {
        m->fingerprint[m->fplen] = '\0';
        crc = mpmap__crc32c(crc, m->fingerprint, m->fplen);
        crc = mpmap__crc32c(crc, m->ranges, m->nranges * sizeof *m->ranges);
        crc = mpmap__crc32c(crc, m->files, (size_t)m->nfiles * sizeof *m->files);
        if (crc != stored)
            rc = MPMAP_ERESUME;
    }
    /* The completed ranges must be ascending, disjoint and inside the job. */
    for (uint64_t i = 0; rc == MPMAP_OK && i < m->nranges; i++) {
        const mpmap__krange *r = &m->ranges[i];
        if (r->begin < (i ? m->ranges[i - 1].end : 0) || r->end <= r->begin || r->end > m->ntasks)
            rc = MPMAP_ERESUME;
    }
    fclose(f);
    if (rc == MPMAP_ERESUME)
        snprintf(err, errlen, "checkpoint '%s' is damaged or not a keyed checkpoint", path);
    else if (rc == MPMAP_ENOMEM)
        snprintf(err, errlen, "out of memory reading checkpoint '%s'", path);
    if (rc != MPMAP_OK)
        mpmap__kmanifest_free(m);
    return rc;
}

int mpmap__kckpt_inspect(const char *path, int64_t *ntasks, int64_t *done, int *leg, char *err,
                         size_t errlen)
{
    mpmap__kmanifest m;
    if (read_manifest(path, &m, err, errlen) != MPMAP_OK)
        return -1;
    *ntasks = m.ntasks;
    *done = 0;
    for (uint64_t i = 0; i < m.nranges; i++)
        *done += m.ranges[i].end - m.ranges[i].begin;
    *leg = m.leg;
    mpmap__kmanifest_free(&m);
    return 0;
}

/* Rank 0: the manifest of a resume, checked against this job. */
int mpmap__kmanifest_check(const char *path, const mpmap_config *cfg, const mpmap_keyed_job *job,
                           mpmap__kmanifest *m, char *msg, size_t msglen)
{
    char why[256];
    int rc = read_manifest(path, m, why, sizeof why);
    if (rc != MPMAP_OK) {
        snprintf(msg, msglen, "%s", why);
        return rc;
    }
    const char *fp = cfg->fingerprint ? cfg->fingerprint : "";
    if (mpmap_fingerprint_diff(m->fingerprint, m->fplen, fp, 0, why, sizeof why) != 0)
        rc = MPMAP_ERESUME;
    else if (m->ntasks != job->ntasks || m->value_size != job->value_size ||
             m->op != (int32_t)job->op || m->type != (int32_t)job->type) {
        snprintf(why, sizeof why,
                 "it has %lld tasks of %llu-byte values, op %d type %d; this job %lld, %llu, "
                 "op %d type %d",
                 (long long)m->ntasks, (unsigned long long)m->value_size, (int)m->op, (int)m->type,
                 (long long)job->ntasks, (unsigned long long)job->value_size, (int)job->op,
                 (int)job->type);
        rc = MPMAP_ERESUME;
    }
    if (rc != MPMAP_OK) {
        snprintf(msg, msglen, "checkpoint '%s' belongs to a different run (%s)", path, why);
        mpmap__kmanifest_free(m);
    }
    return rc;
}

/* ---- reading a state file back ----------------------------------------------------- */

int mpmap__kstate_seed(mpmap_emitter *em, const char *file, const mpmap__kfile *want, char *msg,
                       size_t msglen)
{
    size_t vs = em->job->value_size;
    FILE *f = fopen(file, "rb");
    if (!f) {
        snprintf(msg, msglen, "rank %d: cannot open checkpoint file '%s': %s", em->rank, file,
                 strerror(errno));
        return MPMAP_ERESUME;
    }
    unsigned char h[KS_HEAD];
    uint64_t value_size = 0, at = KS_HEAD;
    int64_t entries = -1;
    bool ok = fread(h, 1, KS_HEAD, f) == KS_HEAD && memcmp(h, KS_MAGIC, 8) == 0;
    if (ok) {
        uint32_t version;
        memcpy(&version, h + 8, 4);
        memcpy(&value_size, h + 16, 8);
        memcpy(&entries, h + 24, 8);
        ok = version == 1 && value_size == vs && entries >= 0 && want->bytes >= KS_HEAD;
    }
    uint32_t crc = mpmap__crc32c(0, h, KS_HEAD);
    char *buf = NULL;
    size_t cap = 0;
    int rc = MPMAP_OK;
    for (int64_t e = 0; ok && rc == MPMAP_OK && e < entries; e++) {
        uint64_t eh[2];
        ok = fread(eh, 8, 2, f) == 2;
        /* Sizes from the file are checked against its length before use. */
        uint64_t left = want->bytes - at;
        ok = ok && left >= 16 && eh[0] <= left - 16 &&
             (eh[1] == 0 || eh[1] <= (left - 16 - eh[0]) / (8 + vs));
        size_t need = ok ? (size_t)(eh[0] + eh[1] * (8 + vs)) : 0;
        if (ok && need + 1 > cap) {
            char *p = realloc(buf, need + 1);
            if (!p) {
                rc = MPMAP_ENOMEM;
                snprintf(msg, msglen, "rank %d: out of memory reading '%s'", em->rank, file);
                break;
            }
            buf = p;
            cap = need + 1;
        }
        ok = ok && fread(buf, 1, need, f) == need;
        if (!ok)
            break;
        crc = mpmap__crc32c(mpmap__crc32c(crc, eh, 16), buf, need);
        at += 16 + need;
        for (uint64_t i = 0; rc == MPMAP_OK && i < eh[1]; i++) {
            const char *p = buf + eh[0] + i * (8 + vs);
            int64_t task;
            memcpy(&task, p, 8);
            rc = mpmap__keyed_seed(em, buf, (size_t)eh[0], task, p + 8);
        }
        if (rc != MPMAP_OK)
            snprintf(msg, msglen, "%s", em->message);
    }
    ok = ok && at == want->bytes && crc == want->crc && fgetc(f) == EOF;
    fclose(f);
    free(buf);
    if (rc == MPMAP_OK && !ok) {
        snprintf(msg, msglen, "checkpoint file '%s' is damaged (start over with a fresh run)",
                 file);
        rc = MPMAP_ERESUME;
    }
    return rc;
}
