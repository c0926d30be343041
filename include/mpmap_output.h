/*
 * mpmap_output: the life of one run's output, from the first look at the
 * path to the committed file.
 *
 * A run writing OUT owns four names beside it:
 *   OUT          the final file, only ever replaced by an atomic rename
 *   OUT.partial  the file being written (mpmap_h5)
 *   OUT.ckpt     the checkpoint of completed tasks (the runtime's)
 *   OUT.lock     the lock: while a run lives it holds an exclusive flock on
 *                this file, which names its host and pid
 * and, when every rank writes its own rows (the kit's --write ranks), two
 * more kept for --resume: OUT.ckpt.rows (where the checkpoint's rows are)
 * and OUT.partial.prev (the data file of a stopped run).
 *
 * The lock is taken first, before anything else is looked at, and held until
 * mpmap_output_close; a second run on the same OUT is refused whatever its
 * flags, so nothing a live run holds is ever truncated. A lock file left by a
 * dead run is not in the way: the kernel dropped its lock with the process,
 * so staleness is decided by the lock itself, never by the file existing.
 * (Two runs on two hosts sharing a folder are told apart where the file
 * system forwards flock, as Linux NFS clients do with NLM/NFSv4 locks and
 * Lustre mounted with -o flock; where flock is not supported at all, e.g.
 * Lustre without it, the run goes on without the guard, as before.)
 *
 * Rank 0 only; MPI is not used. Errors: 0 or a negative MPMAP_E* code with a
 * one-line message in err.
 *
 *     mpmap_output *o;
 *     if (mpmap_output_open(path, &o, err, sizeof err) != 0) -> exit 2
 *     mpmap_output_state st;
 *     if (mpmap_output_decide(o, force, resume, fingerprint, 1, &st, err, sizeof err) != 0)
 *         -> exit 2
 *     if (st == MPMAP_OUTPUT_COMPLETE) -> exit 0, nothing to do
 *     mpmap_h5 *f;
 *     mpmap_output_create(o, fingerprint, &f, err, sizeof err);
 *     ... run with checkpoint mpmap_output_checkpoint_path(o) ...
 *     mpmap_output_commit(o, f, err, sizeof err);   // or mpmap_output_abort(o, f)
 *     mpmap_output_close(o);
 */
#ifndef MPMAP_OUTPUT_H
#define MPMAP_OUTPUT_H

#include "mpmap_h5.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mpmap_output mpmap_output;

/* What a run should do with its output, decided from what is on disk. */
typedef enum mpmap_output_state {
    MPMAP_OUTPUT_FRESH = 0, /* write from scratch (nothing there, or --force) */
    MPMAP_OUTPUT_RESUME,    /* continue from the checkpoint (--resume) */
    MPMAP_OUTPUT_COMPLETE   /* OUT exists, made with the same fingerprint: nothing to do */
} mpmap_output_state;

/* Root attribute of a committed output naming the run that made it. */
#define MPMAP_OUTPUT_FINGERPRINT_ATTR "mpmap_fingerprint"

/*
 * Checks that `path` can be written (like mpmap_h5_check_output_path, but an
 * existing file is fine here) and takes the run's lock OUT.lock. A lock held
 * by a live run gives MPMAP_EIO and "output 'OUT' is in use by another run
 * (pid P on host H; lock 'OUT.lock')". On failure *out is NULL.
 */
int mpmap_output_open(const char *path, mpmap_output **out, char *err, size_t errlen);

/*
 * Decides what the run does, from OUT and OUT.ckpt and the flags:
 *   --force                     FRESH (OUT is replaced only at commit)
 *   --resume, OUT.ckpt exists   RESUME (an old OUT stays until commit)
 *   --resume, OUT exists alone  COMPLETE when OUT's fingerprint equals
 *                               `fingerprint`, else MPMAP_EINVAL naming the
 *                               first difference
 *   --resume, neither           MPMAP_EINVAL, no checkpoint to resume from
 *   no flag, OUT or OUT.ckpt    MPMAP_EINVAL, use --force or --resume
 *   no flag, neither            FRESH
 * With --resume and a checkpoint whose header names another job (other
 * flags, other input data), MPMAP_EINVAL says what differs.
 * With complete == 0 the fingerprint lacks the parts only known later (an
 * input's hash): only the app name and flags are compared, so COMPLETE is
 * provisional and the caller decides again with the whole fingerprint
 * before writing anything.
 */
int mpmap_output_decide(mpmap_output *o, int force, int resume, const char *fingerprint,
                        int complete, mpmap_output_state *state, char *err, size_t errlen);

/*
 * Creates OUT.partial (mpmap_h5_create) and records `fingerprint` in it as
 * the root attribute MPMAP_OUTPUT_FINGERPRINT_ATTR. An existing OUT may be
 * replaced at commit only if the decision allowed it (--force, or a resume
 * over an old result).
 */
int mpmap_output_create(mpmap_output *o, const char *fingerprint, mpmap_h5 **h5, char *err,
                        size_t errlen);

/*
 * Commits h5 (fsync, rename to OUT, fsync of the folder) and then removes the
 * checkpoint. Always frees h5. On failure the checkpoint is kept and err
 * reads e.g. "no space left on device while writing 'OUT'".
 */
int mpmap_output_commit(mpmap_output *o, mpmap_h5 *h5, char *err, size_t errlen);

/* Drops OUT.partial (h5 may be NULL); OUT and OUT.ckpt are left as they are. */
void mpmap_output_abort(mpmap_output *o, mpmap_h5 *h5);

/* Releases the lock and removes OUT.lock; frees o (NULL is fine). */
void mpmap_output_close(mpmap_output *o);

const char *mpmap_output_path(const mpmap_output *o);
const char *mpmap_output_checkpoint_path(const mpmap_output *o);
const char *mpmap_output_lock_path(const mpmap_output *o);

/*
 * "no space left on device while writing 'OUT'" for ENOSPC, "disk quota
 * exceeded while writing 'OUT'" for EDQUOT, "cannot write 'OUT': strerror"
 * for another sys_errno, else "cannot write 'OUT': detail". No HDF5 stack.
 */
void mpmap_output_describe_failure(const char *path, int sys_errno, const char *detail, char *buf,
                                   size_t len);

/*
 * Compares two job fingerprints ("APP --flag=value ... key=value ...", as the
 * apps build them). Returns 0 when they are equal, else 1 with `why` naming
 * the first difference: "--samples: was 1000, now 2000", "--seed: given now
 * (3), not before", "input data changed" (a data= or other non-flag part),
 * or "written by APP1, not APP2". With flags_only the parts after the flags
 * are ignored. Same as mpmap_fingerprint_diff (mpmap.h), which the core's
 * checkpoint check uses too.
 */
int mpmap_output_fingerprint_diff(const char *was, size_t was_len, const char *now, int flags_only,
                                  char *why, size_t whylen);

#ifdef __cplusplus
}
#endif

#endif /* MPMAP_OUTPUT_H */
