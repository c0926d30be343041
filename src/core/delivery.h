/*
 * Ordered delivery on rank 0: results reach the sink in task order. Pieces
 * that arrive early wait in a reorder list, and ranges restored from a
 * checkpoint are read back when the delivery point reaches them. The
 * reduction is folded at delivery, so it too happens in task order,
 * identically for any rank count and schedule. Every computed piece is also
 * appended to the checkpoint as it arrives, except with job.store_sync: a
 * stored piece is then logged only once the rank that stored it has said
 * it is durable (mpmap__delivery_synced), and until then waits in that
 * rank's list of unlogged ranges.
 *
 * The functions never stop the run themselves: they go on with what they
 * can and return the first failure (MPMAP_E*) with a one-line message, and
 * the caller decides.
 */
#ifndef MPMAP_CORE_DELIVERY_H
#define MPMAP_CORE_DELIVERY_H

#include "checkpoint.h"
#include "mpmap.h"
#include "ranges.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mpmap__held_piece {
    int64_t begin, end;
    char *records;
    int32_t *status; /* NULL when all ok */
} mpmap__held_piece;

/* Ranges a rank reported but has not yet said are durable (store_sync). */
typedef struct mpmap__unlogged_range {
    int64_t begin, end;
    int32_t *status; /* NULL when all ok */
} mpmap__unlogged_range;

typedef struct mpmap__unlogged {
    mpmap__unlogged_range *ranges;
    size_t count, capacity;
} mpmap__unlogged;

typedef struct mpmap__delivery {
    const mpmap_job *job;
    size_t record_size;
    mpmap_ckpt *ckpt;            /* NULL: no checkpoint */
    const mpmap_range *restored; /* owned by ckpt */
    size_t nrestored, next_restored;
    int64_t next_deliver;    /* every task before it was delivered */
    mpmap__held_piece *held; /* arrived early, waiting for their turn */
    size_t nheld, held_capacity;
    char *reduction; /* record_size bytes (+1) */
    bool sink_off;   /* the sink is not called any more */
    /* job.store_sync with a checkpoint: per computing rank (nranks), the
     * ranges not yet logged; NULL otherwise (every piece logged at once). */
    mpmap__unlogged *unlogged;
    int nranks;
    /* counts, read by the manager */
    int64_t computed;       /* tasks accepted in this run */
    int64_t restored_tasks; /* tasks in the restored ranges */
    int64_t failed;         /* delivered tasks with status != 0 */
} mpmap__delivery;

/*
 * Sets up delivery for `job` with record_size bytes per task: the
 * reduction's initial value, and the checkpoint when config names one
 * (opened fresh, or read for resume). Pieces come from ranks 0..nranks-1.
 * 0 or MPMAP_E* with the reason in err. Call mpmap__delivery_destroy
 * either way.
 */
int mpmap__delivery_init(mpmap__delivery *d, const mpmap_config *config, const mpmap_job *job,
                         int64_t ntasks, size_t record_size, int nranks, char *err, size_t errlen);
void mpmap__delivery_destroy(mpmap__delivery *d);

/* The restored ranges (sorted, disjoint); their count. */
size_t mpmap__delivery_restored(const mpmap__delivery *d, const mpmap_range **ranges);

/* A piece of results computed by `rank` has arrived (in any order):
 * checkpoint it (with store_sync: once rank says it is durable), and
 * deliver it and whatever it makes contiguous, or hold it. */
int mpmap__delivery_accept(mpmap__delivery *d, int rank, int64_t begin, int64_t end,
                           const char *records, const int32_t *status, char *err, size_t errlen);

/* `rank` made every range it reported so far durable (store_sync): its
 * unlogged ranges go to the checkpoint. Nothing without store_sync. */
int mpmap__delivery_synced(mpmap__delivery *d, int rank, char *err, size_t errlen);

/* Delivers whatever is now contiguous with the delivery point: checkpointed
 * ranges (read back in bounded pieces) and pieces that arrived early. */
int mpmap__delivery_flush(mpmap__delivery *d, char *err, size_t errlen);

/* Syncs the checkpoint to disk (nothing without one). */
int mpmap__delivery_sync(mpmap__delivery *d, char *err, size_t errlen);

/* Stops calling the sink (after a callback failed). */
void mpmap__delivery_stop_sink(mpmap__delivery *d);

#endif
