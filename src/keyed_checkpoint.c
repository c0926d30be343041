/*
 * The checkpoint of a keyed run (keyed_internal.h): what an interrupted
 * run saves, and how --resume continues from it with the same bits.
 *
 * What is saved: a key's value is its partials folded in task order, and a
 * partial is one task's (or, for order-insensitive folds, several tasks')
 * values folded in emission order. An interrupted run therefore saves, per
 * rank, the partials it holds — its spilled runs and its local table, each
 * partial with its task — and, once, the tasks completed. The map of the
 * next leg runs the other tasks only; the saved partials go back into the
 * local tables first (as if those tasks had just run there) and the shuffle
 * then takes every partial of a key to its owner, which sorts them by task
 * as always. Nothing depends on which rank held what: a resume may use any
 * rank count (saved file i goes to rank i mod ranks) and gives the bits of
 * an uninterrupted run.
 *
 * Files, all beside PATH (config.checkpoint_path):
 *   PATH.legL.rankR  rank R's partials at the end of leg L: "MPMAPKS1", u32
 *                    version 1, u32 0, u64 value_size, i64 entries, then the
 *                    entries as a run file holds them (u64 keylen, u64 n,
 *                    key, n x (i64 task, value)).
 *   PATH             the manifest, written last by rank 0: "MPMAPKC1", u32
 *                    version 1, u32 fingerprint length F, i64 ntasks, u64
 *                    value_size, i32 op, i32 type, i32 leg L, i32 files, u64
 *                    ranges, F bytes, ranges x (i64 begin, i64 end) completed,
 *                    files x (u64 bytes, u32 CRC32C, u32 0) of the state
 *                    files, then the CRC32C of all of it.
 * Each file is written to NAME.tmp, synced and renamed, the manifest last:
 * a run killed while saving leaves the previous manifest and the files it
 * names untouched (a leg's files have names of their own), and only once
 * the new manifest is in place are the older legs' files removed. A leg's
 * files hold every partial saved so far (the earlier legs' went into its
 * tables), so the last leg's files are the whole checkpoint.
 */
#define _POSIX_C_SOURCE 200809L
#include "keyed_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the plan: which tasks this leg runs ---------------------------------- */

int64_t mpmap__kplan_task(const mpmap__kplan *p, int64_t v, int64_t max, int64_t *n)
{
    size_t lo = 0, hi = p->ntodo; /* the last range starting at or before v */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->todo_start[mid] <= v)
            lo = mid;
        else
            hi = mid;
    }
    int64_t off = v - p->todo_start[lo], left = p->todo[lo].end - p->todo[lo].begin - off;
    *n = left < max ? left : max;
    return p->todo[lo].begin + off;
}

static int add_range(mpmap__krange **r, size_t *n, size_t *cap, int64_t begin, int64_t end)
{
    if (*n > 0 && (*r)[*n - 1].end == begin) {
        (*r)[*n - 1].end = end;
        return MPMAP_OK;
    }
    if (*n == *cap) {
        size_t ncap = *cap ? 2 * *cap : 16;
        mpmap__krange *q = realloc(*r, ncap * sizeof *q);
        if (!q)
            return MPMAP_ENOMEM;
        *r = q;
        *cap = ncap;
    }
    (*r)[(*n)++] = (mpmap__krange){ begin, end };
    return MPMAP_OK;
}

int mpmap__kplan_done(mpmap__kplan *p, int64_t begin, int64_t end)
{
    return add_range(&p->done, &p->ndone, &p->capdone, begin, end);
}

void mpmap__kplan_free(mpmap__kplan *p)
{
    free(p->todo);
    free(p->todo_start);
    free(p->prev);
    free(p->done);
    *p = (mpmap__kplan){ 0 };
}

/* The tasks of [0, ntasks) outside p->prev (sorted, disjoint). */
static int plan_todo(mpmap__kplan *p, int64_t ntasks)
{
    size_t cap = p->nprev + 1;
    p->todo = malloc(cap * sizeof *p->todo);
    p->todo_start = malloc(cap * sizeof *p->todo_start);
    if (!p->todo || !p->todo_start)
        return MPMAP_ENOMEM;
    int64_t at = 0;
    p->restored = 0;
    p->remaining = 0;
    for (size_t i = 0; i <= p->nprev; i++) {
        int64_t stop = i < p->nprev ? p->prev[i].begin : ntasks;
        if (stop > at) {
            p->todo_start[p->ntodo] = p->remaining;
            p->todo[p->ntodo++] = (mpmap__krange){ at, stop };
            p->remaining += stop - at;
        }
        if (i < p->nprev) {
            p->restored += p->prev[i].end - p->prev[i].begin;
            at = p->prev[i].end;
        }
    }
    return MPMAP_OK;
}

/* ---- the two collective steps --------------------------------------------------------- */

/* The header rank 0 broadcasts at the start of a leg. */
typedef struct kbegin {
    int32_t code;
    int32_t prev_leg; /* -1: nothing to read back */
    int32_t nfiles;
    int32_t pad;
    uint64_t nranges;
} kbegin;

int mpmap__kckpt_begin(MPI_Comm comm, const mpmap_config *cfg, mpmap_emitter *em, char *msg,
                       size_t msglen)
{
    int P, rank;
    MPI_Comm_size(comm, &P);
    MPI_Comm_rank(comm, &rank);
    const mpmap_keyed_job *job = em->job;
    mpmap__kplan *p = &em->plan;
    const char *path = cfg ? cfg->checkpoint_path : NULL;
    kbegin b = { .prev_leg = -1 };
    mpmap__kmanifest m = { 0 };
    if (rank == 0 && path && cfg->resume) {
        b.code = mpmap__kmanifest_check(path, cfg, job, &m, msg, msglen);
        if (b.code == MPMAP_OK) {
            b.prev_leg = m.leg;
            b.nfiles = m.nfiles;
            b.nranges = m.nranges;
        }
    } else if (rank == 0 && path && mpmap_keyed_checkpoint_remove(path) != MPMAP_OK) {
        /* A fresh run: an old checkpoint would be resumed by mistake later. */
        snprintf(msg, msglen, "cannot remove the old checkpoint '%s': %s", path, strerror(errno));
        b.code = MPMAP_EIO;
    }
    MPI_Bcast(&b, (int)sizeof b, MPI_BYTE, 0, comm);
    int code = b.code;
    if (code == MPMAP_OK && b.prev_leg >= 0) {
        if (rank != 0) {
            m.ranges = malloc((size_t)b.nranges * sizeof *m.ranges + 1);
            m.files = malloc((size_t)b.nfiles * sizeof *m.files);
        }
        code = mpmap__keyed_agree(comm, m.ranges && m.files ? MPMAP_OK : MPMAP_ENOMEM);
    }
    if (code == MPMAP_OK && b.prev_leg >= 0) {
        /* In pieces: MPI counts are int. */
        const size_t piece = (size_t)1 << 26;
        size_t rbytes = (size_t)b.nranges * sizeof *m.ranges;
        for (size_t off = 0; off < rbytes; off += piece)
            MPI_Bcast((char *)m.ranges + off, (int)(rbytes - off < piece ? rbytes - off : piece),
                      MPI_BYTE, 0, comm);
        MPI_Bcast(m.files, (int)((size_t)b.nfiles * sizeof *m.files), MPI_BYTE, 0, comm);
        p->prev = m.ranges;
        p->nprev = (size_t)b.nranges;
        m.ranges = NULL;
        p->leg = b.prev_leg + 1;
    }
    if (code == MPMAP_OK)
        code = mpmap__keyed_agree(comm, plan_todo(p, job->ntasks));
    int mine = MPMAP_OK;
    for (int i = rank; code == MPMAP_OK && b.prev_leg >= 0 && i < b.nfiles && mine == MPMAP_OK;
         i += P) {
        char file[4200];
        mpmap__kstate_name(file, sizeof file, path, b.prev_leg, i);
        mine = mpmap__kstate_seed(em, file, &m.files[i], msg, msglen);
    }
    if (code == MPMAP_OK)
        code = mpmap__keyed_agree(comm, mine);
    mpmap__kmanifest_free(&m);
    return code;
}

/* Ascending by begin (the ranks' done ranges are disjoint). */
static int cmp_range(const void *a, const void *b)
{
    const mpmap__krange *x = a, *y = b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

int mpmap__kckpt_save(MPI_Comm comm, const mpmap_config *cfg, mpmap_emitter *em, int64_t *done,
                      char *msg, size_t msglen)
{
    int P, rank;
    MPI_Comm_size(comm, &P);
    MPI_Comm_rank(comm, &rank);
    const char *path = cfg->checkpoint_path;
    mpmap__kplan *p = &em->plan;
    char file[4200];
    mpmap__kstate_name(file, sizeof file, path, p->leg, rank);
    mpmap__kfile mine = { 0 };
    int rc = mpmap__kstate_write(em, file, &mine.bytes, &mine.crc, msg, msglen);
    int code = mpmap__keyed_agree(comm, rc);

    /* Rank 0 gathers the files' sizes and CRCs and every rank's done tasks. */
    mpmap__kmanifest m = { .ntasks = em->job->ntasks,
                           .value_size = em->job->value_size,
                           .op = (int32_t)em->job->op,
                           .type = (int32_t)em->job->type,
                           .leg = p->leg,
                           .nfiles = P };
    int n = (int)(p->ndone * 2), *counts = NULL, *displs = NULL;
    size_t total = p->nprev;
    if (rank == 0) {
        m.files = malloc((size_t)P * sizeof *m.files);
        counts = malloc((size_t)P * sizeof *counts);
        displs = malloc((size_t)P * sizeof *displs);
        if (!m.files || !counts || !displs)
            rc = MPMAP_ENOMEM;
    }
    if (code == MPMAP_OK)
        code = mpmap__keyed_agree(comm, rc);
    if (code == MPMAP_OK) {
        MPI_Gather(&mine, (int)sizeof mine, MPI_BYTE, m.files, (int)sizeof mine, MPI_BYTE, 0, comm);
        MPI_Gather(&n, 1, MPI_INT, counts, 1, MPI_INT, 0, comm);
        if (rank == 0) {
            long long sum = 0;
            for (int d = 0; d < P; d++) {
                displs[d] = (int)sum;
                sum += counts[d];
            }
            total += (size_t)sum / 2;
            m.ranges = malloc((total + 1) * sizeof *m.ranges);
            rc = sum <= 0x7fffffff && m.ranges ? MPMAP_OK : MPMAP_ENOMEM;
        }
        code = mpmap__keyed_agree(comm, rc);
    }
    if (code == MPMAP_OK) {
        MPI_Gatherv(p->done, n, MPI_INT64_T, m.ranges ? m.ranges + p->nprev : NULL, counts, displs,
                    MPI_INT64_T, 0, comm);
        if (rank == 0) {
            if (p->nprev)
                memcpy(m.ranges, p->prev, p->nprev * sizeof *m.ranges);
            if (total)
                qsort(m.ranges, total, sizeof *m.ranges, cmp_range);
            size_t k = 0; /* coalesce touching ranges */
            for (size_t i = 0; i < total; i++) {
                if (k > 0 && m.ranges[k - 1].end == m.ranges[i].begin)
                    m.ranges[k - 1].end = m.ranges[i].end;
                else
                    m.ranges[k++] = m.ranges[i];
            }
            m.nranges = k;
            *done = 0;
            for (size_t i = 0; i < k; i++)
                *done += m.ranges[i].end - m.ranges[i].begin;
            const char *fp = cfg->fingerprint ? cfg->fingerprint : "";
            m.fingerprint = malloc(strlen(fp) + 1);
            if (!m.fingerprint) {
                rc = MPMAP_ENOMEM;
                snprintf(msg, msglen, "out of memory");
            } else {
                memcpy(m.fingerprint, fp, strlen(fp) + 1);
                m.fplen = (uint32_t)strlen(fp);
                rc = mpmap__kmanifest_write(path, &m, msg, msglen);
            }
            /* The new leg is in place: the older legs' files have served. */
            if (rc == MPMAP_OK)
                (void)mpmap__kstate_remove(path, p->leg, P);
        }
        code = mpmap__keyed_agree(comm, rc);
        MPI_Bcast(done, 1, MPI_INT64_T, 0, comm);
    }
    if (code != MPMAP_OK)
        (void)unlink(file); /* the previous manifest still names its own files */
    if (code != MPMAP_OK && !msg[0] && rc != MPMAP_OK)
        snprintf(msg, msglen, "out of memory saving the keyed checkpoint '%s'", path);
    free(counts);
    free(displs);
    mpmap__kmanifest_free(&m);
    return code == MPMAP_ENOMEM ? MPMAP_ENOMEM : code == MPMAP_OK ? MPMAP_OK : MPMAP_EIO;
}
