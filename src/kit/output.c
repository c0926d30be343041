/*
 * The life of a run's output: lock, decision against what is on disk,
 * creation with a fingerprint, commit or abort, release. See
 * include/mpmap_output.h.
 */
#define _GNU_SOURCE /* flock, gethostname, O_CLOEXEC */

#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Attempts at taking the lock when its file keeps being replaced under us
 * (a previous holder finishing and another run starting at that moment). */
#define OUTPUT_LOCK_ATTEMPTS 8

struct mpmap_output {
    char *path;       /* OUT */
    char *checkpoint; /* OUT.ckpt */
    char *lock;       /* OUT.lock */
    int lock_fd;      /* holds the flock; -1 when not held */
    int replace_ok;   /* an existing OUT may be replaced at commit */
};

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errlen, int code,
                                                      const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (s) {
        memcpy(s, a, la);
        memcpy(s + la, b, lb + 1);
    }
    return s;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* ---- the lock ------------------------------------------------------------ */

/* What the holder wrote into the lock file ("pid P on host H"), or "". */
static void read_holder(int fd, char *buf, size_t len)
{
    ssize_t n = pread(fd, buf, len - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
}

static int take_lock(mpmap_output *o, char *err, size_t errlen)
{
    for (int attempt = 0; attempt < OUTPUT_LOCK_ATTEMPTS; attempt++) {
        /* Close-on-exec: a child the app runs (param_sweep --exec) must not
         * inherit the lock and keep it past the run. */
        int fd = open(o->lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return fail(err, errlen, MPMAP_EIO, "cannot create output '%s': cannot create '%s': %s",
                        o->path, o->lock, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            if (e == EWOULDBLOCK || e == EAGAIN) {
                char holder[256];
                read_holder(fd, holder, sizeof holder);
                close(fd);
                return fail(err, errlen, MPMAP_EIO,
                            "output '%s' is in use by another run (%s%slock '%s'); wait for it "
                            "to end or stop it",
                            o->path, holder, holder[0] ? "; " : "", o->lock);
            }
            if (e != ENOSYS && e != EOPNOTSUPP && e != ENOLCK && e != EINVAL) {
                close(fd);
                return fail(err, errlen, MPMAP_EIO, "cannot lock '%s': %s", o->lock, strerror(e));
            }
            /* A file system without locks (Lustre mounted without flock):
             * the run goes on unguarded, as runs did before there was a
             * lock, rather than not at all. */
        }
        /* The holder we waited on may have removed the file between our open
         * and flock: our lock is then on a nameless file a third run would
         * not see. Only a lock on the file that bears the name counts. */
        struct stat held, named;
        if (fstat(fd, &held) == 0 && stat(o->lock, &named) == 0 && held.st_dev == named.st_dev &&
            held.st_ino == named.st_ino) {
            char host[256] = "?";
            if (gethostname(host, sizeof host) != 0)
                snprintf(host, sizeof host, "?");
            host[sizeof host - 1] = '\0';
            char text[320];
            int n = snprintf(text, sizeof text, "pid %ld on host %s\n", (long)getpid(), host);
            /* Best effort: the text only helps the message of a refused run. */
            if (ftruncate(fd, 0) == 0 && n > 0)
                (void)!pwrite(fd, text, (size_t)n, 0);
            o->lock_fd = fd;
            return 0;
        }
        close(fd);
    }
    return fail(err, errlen, MPMAP_EIO, "cannot lock '%s': it keeps being replaced", o->lock);
}

int mpmap_output_open(const char *path, mpmap_output **out, char *err, size_t errlen)
{
    if (!out)
        return fail(err, errlen, MPMAP_EINVAL, "mpmap_output_open: out is NULL");
    *out = NULL;
    /* Folder, writability, "is a folder": everything but existence. */
    int rc = mpmap_h5_check_output_path(path, 1, err, errlen);
    if (rc != 0)
        return rc;
    mpmap_output *o = calloc(1, sizeof *o);
    if (o) {
        o->lock_fd = -1;
        o->path = join(path, "");
        o->checkpoint = join(path, ".ckpt");
        o->lock = join(path, ".lock");
    }
    if (!o || !o->path || !o->checkpoint || !o->lock) {
        mpmap_output_close(o);
        return fail(err, errlen, MPMAP_ENOMEM, "out of memory");
    }
    rc = take_lock(o, err, errlen);
    if (rc != 0) {
        mpmap_output_close(o);
        return rc;
    }
    *out = o;
    return 0;
}

void mpmap_output_close(mpmap_output *o)
{
    if (!o)
        return;
    if (o->lock_fd >= 0) {
        /* Unlink while still holding it: a run that opened the old file
         * meanwhile sees the name gone after its flock and starts over. */
        (void)unlink(o->lock);
        close(o->lock_fd);
    }
    free(o->path);
    free(o->checkpoint);
    free(o->lock);
    free(o);
}

const char *mpmap_output_path(const mpmap_output *o) { return o ? o->path : NULL; }

const char *mpmap_output_checkpoint_path(const mpmap_output *o) { return o ? o->checkpoint : NULL; }

const char *mpmap_output_lock_path(const mpmap_output *o) { return o ? o->lock : NULL; }

/* ---- fingerprints ---------------------------------------------------------- */

/* The comparison itself lives in the core (src/fingerprint_diff.c), where
 * the checkpoint's resume check uses it too. */
int mpmap_output_fingerprint_diff(const char *was, size_t was_len, const char *now, int flags_only,
                                  char *why, size_t whylen)
{
    return mpmap_fingerprint_diff(was, was_len, now, flags_only, why, whylen);
}

/* ---- the decision ------------------------------------------------------------ */

/* The fingerprint recorded in a committed output: 0 with a malloc'd *value,
 * or MPMAP_EINVAL (no such attribute, not an HDF5 file...). */
static int read_fingerprint(const char *path, char **value)
{
    *value = NULL;
    H5E_auto2_t func;
    void *data;
    int saved = H5Eget_auto2(H5E_DEFAULT, &func, &data) >= 0;
    (void)H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int rc = MPMAP_EINVAL;
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t attr = file >= 0 ? H5Aopen_by_name(file, "/", MPMAP_OUTPUT_FINGERPRINT_ATTR, H5P_DEFAULT,
                                             H5P_DEFAULT)
                           : H5I_INVALID_HID;
    hid_t type = H5Tcopy(H5T_C_S1);
    if (attr >= 0 && type >= 0 && H5Tset_size(type, H5T_VARIABLE) >= 0 &&
        H5Tset_cset(type, H5T_CSET_UTF8) >= 0) {
        char *text = NULL;
        if (H5Aread(attr, type, &text) >= 0 && text) {
            *value = join(text, "");
            rc = *value ? 0 : MPMAP_ENOMEM;
            H5free_memory(text);
        }
    }
    if (type >= 0)
        H5Tclose(type);
    if (attr >= 0)
        H5Aclose(attr);
    if (file >= 0)
        H5Fclose(file);
    if (saved)
        (void)H5Eset_auto2(H5E_DEFAULT, func, data);
    return rc;
}

/*
 * The fingerprint in the header of checkpoint `path` (format in
 * src/checkpoint.h: "MPMAPCK1", u32 version 1, u32 length F, i64 ntasks, u64
 * record size, F bytes), malloc'd into *value; 0, or -1 for anything else
 * (missing, damaged, of the other byte order), which is then left to the
 * runtime's own full check.
 */
static int read_checkpoint_fingerprint(const char *path, char **value, size_t *len)
{
    *value = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    unsigned char head[32];
    int rc = -1;
    if (pread(fd, head, sizeof head, 0) == (ssize_t)sizeof head &&
        memcmp(head, "MPMAPCK1", 8) == 0) {
        uint32_t version, flen;
        memcpy(&version, head + 8, 4);
        memcpy(&flen, head + 12, 4);
        if (version == 1 && flen <= (1u << 20)) {
            *value = malloc((size_t)flen + 1);
            if (*value && pread(fd, *value, flen, 32) == (ssize_t)flen) {
                (*value)[flen] = '\0';
                *len = flen;
                rc = 0;
            }
        }
    }
    close(fd);
    if (rc != 0) {
        free(*value);
        *value = NULL;
    }
    return rc;
}

int mpmap_output_decide(mpmap_output *o, int force, int resume, const char *fingerprint,
                        int complete, mpmap_output_state *state, char *err, size_t errlen)
{
    if (!o || !state)
        return fail(err, errlen, MPMAP_EINVAL, "mpmap_output_decide: no output");
    *state = MPMAP_OUTPUT_FRESH;
    int have_out = exists(o->path), have_ckpt = exists(o->checkpoint);
    /* A keyed count interrupted before the run (word_count, mpmap_keyed.h)
     * waits in OUT.kckpt; its job checks that checkpoint's fingerprint. */
    char keyed[4200];
    snprintf(keyed, sizeof keyed, "%s.kckpt", o->path);
    int have_keyed = exists(keyed);
    o->replace_ok = 0;
    if (force) {
        o->replace_ok = 1;
        return 0;
    }
    if (resume && have_ckpt) {
        /* Checked here so the refusal can name what differs; the runtime
         * checks the whole header again when it opens the checkpoint. */
        char *stored = NULL;
        size_t stored_len = 0;
        char why[256];
        if (read_checkpoint_fingerprint(o->checkpoint, &stored, &stored_len) == 0 &&
            mpmap_output_fingerprint_diff(stored, stored_len, fingerprint, !complete, why,
                                          sizeof why) != 0) {
            free(stored);
            return fail(err, errlen, MPMAP_EINVAL,
                        "--resume: checkpoint '%s' belongs to a different run (%s); use --force "
                        "to start over",
                        o->checkpoint, why);
        }
        free(stored);
        /* An interrupted --force run over an old result: the old file stays
         * until the resumed run commits its replacement. */
        o->replace_ok = 1;
        *state = MPMAP_OUTPUT_RESUME;
        return 0;
    }
    if (resume && have_keyed) {
        o->replace_ok = 1;
        *state = MPMAP_OUTPUT_RESUME;
        return 0;
    }
    if (resume && have_out) {
        char *stored = NULL;
        int rc = read_fingerprint(o->path, &stored);
        if (rc == MPMAP_ENOMEM)
            return fail(err, errlen, rc, "out of memory");
        if (rc != 0)
            return fail(err, errlen, MPMAP_EINVAL,
                        "--resume: output '%s' exists and records no run to compare with (use "
                        "--force to overwrite it)",
                        o->path);
        char why[256];
        int differ = mpmap_output_fingerprint_diff(stored, strlen(stored), fingerprint, !complete,
                                                   why, sizeof why);
        free(stored);
        if (differ)
            return fail(err, errlen, MPMAP_EINVAL,
                        "--resume: output '%s' is complete but from another run (%s); use "
                        "--force to overwrite it",
                        o->path, why);
        *state = MPMAP_OUTPUT_COMPLETE;
        return 0;
    }
    if (resume)
        return fail(err, errlen, MPMAP_EINVAL, "--resume: no checkpoint '%s' to resume from",
                    o->checkpoint);
    if (have_out)
        return fail(err, errlen, MPMAP_EIO,
                    "output '%s' exists (use --force to overwrite or --resume to continue)",
                    o->path);
    if (have_ckpt || have_keyed)
        return fail(err, errlen, MPMAP_EINVAL,
                    "a checkpoint '%s' of an interrupted run exists (use --resume to continue it "
                    "or --force to start over)",
                    have_ckpt ? o->checkpoint : keyed);
    return 0;
}

/* ---- create, commit, abort ------------------------------------------------------ */

void mpmap_output_describe_failure(const char *path, int sys_errno, const char *detail, char *buf,
                                   size_t len)
{
    if (sys_errno == ENOSPC)
        fail(buf, len, 0, "no space left on device while writing '%s'", path);
    else if (sys_errno == EDQUOT)
        fail(buf, len, 0, "disk quota exceeded while writing '%s'", path);
    else if (sys_errno != 0)
        fail(buf, len, 0, "cannot write '%s': %s", path, strerror(sys_errno));
    else
        fail(buf, len, 0, "cannot write '%s': %s", path, detail && *detail ? detail : "failed");
}

int mpmap_output_create(mpmap_output *o, const char *fingerprint, mpmap_h5 **h5, char *err,
                        size_t errlen)
{
    if (!o || !h5)
        return fail(err, errlen, MPMAP_EINVAL, "mpmap_output_create: no output");
    *h5 = NULL;
    char why[MPMAP_H5_ERROR_MAX];
    int rc = mpmap_h5_create(o->path, o->replace_ok, h5, why, sizeof why);
    if (rc != 0) {
        /* mpmap_h5_create leaves errno at the system error behind a failure;
         * only a full disk reads better than its own "cannot create" text. */
        int e = errno;
        if (rc != MPMAP_EINVAL && (e == ENOSPC || e == EDQUOT))
            mpmap_output_describe_failure(o->path, e, why, err, errlen);
        else
            fail(err, errlen, 0, "%s", why);
        return rc;
    }
    rc = mpmap_h5_attr_string(*h5, "/", MPMAP_OUTPUT_FINGERPRINT_ATTR,
                              fingerprint ? fingerprint : "");
    if (rc != 0) {
        mpmap_output_describe_failure(o->path, mpmap_h5_sys_errno(*h5), mpmap_h5_error(*h5), err,
                                      errlen);
        mpmap_h5_abort(*h5);
        *h5 = NULL;
    }
    return rc;
}

int mpmap_output_commit(mpmap_output *o, mpmap_h5 *h5, char *err, size_t errlen)
{
    if (!o || !h5) {
        mpmap_h5_abort(h5);
        return fail(err, errlen, MPMAP_EINVAL, "mpmap_output_commit: no output");
    }
    char why[MPMAP_H5_ERROR_MAX];
    int rc = mpmap_h5_commit(h5, why, sizeof why);
    if (rc != 0) {
        mpmap_output_describe_failure(o->path, errno, why, err, errlen);
        return rc;
    }
    /* The results are safely in place: the checkpoint has served. */
    if (unlink(o->checkpoint) != 0 && errno != ENOENT)
        return 0; /* a stale checkpoint is harmless: --force or --resume decide */
    return 0;
}

void mpmap_output_abort(mpmap_output *o, mpmap_h5 *h5)
{
    (void)o;
    mpmap_h5_abort(h5);
}
