/*
 * A read-only look at a checkpoint log, for tools that describe a run from
 * outside it (mpmap-status): what a resume would restore, counted without
 * knowing the job, without taking the log's lock and without changing the
 * file (a torn tail is counted, not truncated). No MPI here.
 */
#ifndef MPMAP_CHECKPOINT_INSPECT_H
#define MPMAP_CHECKPOINT_INSPECT_H

#include <stddef.h>
#include <stdint.h>

typedef struct mpmap__ckpt_summary {
    int64_t ntasks;       /* the job's task count; -1 for an empty file (no header yet) */
    uint64_t record_size; /* bytes per task record */
    int64_t done;         /* tasks a resume would restore */
    int64_t failed;       /* of those, tasks stored with a non-zero status */
    int64_t discarded;    /* bytes of damaged or torn tail a resume would drop */
} mpmap__ckpt_summary;

/*
 * Summarises the checkpoint at `path` with the same header checks and the
 * same entry scan (checksums, overlap rule) as a resume. Returns 0, or
 * MPMAP_ERESUME ("no checkpoint 'X'", "'X' is not an mpmap checkpoint",
 * "checkpoint 'X' is damaged: bad header", other byte order or version),
 * MPMAP_EIO or MPMAP_ENOMEM, with a one-line message in err.
 */
int mpmap__ckpt_inspect(const char *path, mpmap__ckpt_summary *out, char *err, size_t errlen);

#endif
