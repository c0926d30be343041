/*
 * Rank 0's manager state, shared by the files of the manager role:
 * manager.c (the loop, hand-out, messages) and manager_own.c (rank 0's own
 * work between answers). Nothing outside the manager includes this.
 */
#ifndef MPMAP_CORE_MANAGER_STATE_H
#define MPMAP_CORE_MANAGER_STATE_H

#include "core/chunk_cost.h"
#include "core/delivery.h"
#include "core/manager.h"
#include "core/transport.h"
#include "schedule.h"

#include <stdbool.h>
#include <stdint.h>

/* Target length of one time slice of work between polls. Rank 0's own
 * slices follow how long workers take per piece (they must never run dry
 * while rank 0 computes), within these bounds. */
#define MANAGER_SLICE_MAX 0.002
#define MANAGER_SLICE_MIN 0.00002
#define MANAGER_SLICE_START 0.0001
/* Rank 0's own chunk, computed in slices between serving the workers. */
typedef struct own_chunk {
    mpmap_range *ranges;
    size_t count, index; /* ranges of the chunk; the one being computed */
    int64_t pos;         /* next task to compute */
    char *buffer;
    int32_t *status; /* NULL while every task succeeded */
    int64_t room;    /* tasks the buffer holds */
    double start;    /* when the unflushed part of the range started */
    int64_t flushed; /* tasks of the current range before this are delivered */
    int64_t slice_len;
    double slice_target; /* seconds; see MANAGER_SLICE_* */
    double last_slice;   /* seconds the last slice took */
    bool exhausted;      /* the scheduler has nothing more for rank 0 */
    bool unsynced;       /* store_sync: stored ranges not yet made durable */
    double last_sync;    /* when rank 0 last ran job.store_sync (mpmap__now) */
} own_chunk;

struct mpmap__manager {
    mpmap__run *r;
    const mpmap__topology *topo;
    int workers;       /* ranks rank 0 serves directly (sub-managers too) */
    int sched_workers; /* P as the scheduler sees it */
    bool computes;     /* rank 0 takes chunks too */
    mpmap__scheduler sched;
    mpmap_range *pending; /* real ranges still to compute (virtual space) */
    int64_t *offsets;
    size_t npending;
    bool *stopped;            /* worker was told STOP (or to cancel) */
    int64_t *open_chunks;     /* chunks handed to a worker, not yet COMPLETE */
    bool *deferred;           /* a request made ahead, answered once that worker is idle */
    bool *final_due;          /* sync_stores: the rank's FINAL message has not come yet */
    mpmap__chunk_cost *costs; /* per rank: feedback for adaptive schedules */
    mpmap__sends sends;
    mpmap__delivery delivery;
    own_chunk own;
    /* outcome */
    int stopping; /* 0 or the MPMAP_E* the run will return */
    bool cancel_sent;
    int64_t failed_task;
    char message[MPMAP_MESSAGE_MAX + 64];
    int64_t chunks;
    double last_sync, last_progress;
};

/* Starts stopping the run (first reason wins) and cancels every rank rank
 * 0 serves, once. */
void mpmap__manager_stop(mpmap__manager *m, int code, int64_t task, const char *message);
/* A piece of results computed by `rank` has arrived (in any order). */
void mpmap__manager_accept(mpmap__manager *m, int rank, int64_t begin, int64_t end,
                           const char *records, const int32_t *status);
/* `rank` said its reported ranges are durable: they enter the checkpoint. */
void mpmap__manager_synced(mpmap__manager *m, int rank);
/* One trace entry (no-op without a trace callback or for an empty piece). */
void mpmap__manager_trace(mpmap__manager *m, int64_t begin, int64_t end, int rank, double start,
                          double finish);
/* Next chunk of scheduler slot `slot` as real ranges (malloc'd, *out);
 * returns their count, 0 when nothing is left. */
size_t mpmap__manager_next_chunk(mpmap__manager *m, int slot, mpmap_range **out);
/* The chunk of `rank` completed at `finish`: tell the scheduler its cost. */
void mpmap__manager_chunk_done(mpmap__manager *m, int rank, double finish);

/* ---- manager_own.c ------------------------------------------------------ */

/* Starts range own.index of rank 0's own chunk. 0 or MPMAP_ENOMEM. */
int mpmap__manager_own_start(mpmap__manager *m);
/* Runs one time slice of rank 0's own work. 0 or MPMAP_ENOMEM. */
int mpmap__manager_own_slice(mpmap__manager *m);
/* Hands rank 0's own results of the current range up to `upto` on (in
 * store mode after storing them). 0, or MPMAP_ECALLBACK when the store
 * failed (the run is then stopping). */
int mpmap__manager_own_flush(mpmap__manager *m, int64_t upto);
/* With store_sync and a checkpoint: makes rank 0's own stored ranges
 * durable and logs them, when flush_interval has passed since the last
 * time or `force`. 0, or MPMAP_ECALLBACK when store_sync failed (the run
 * is then stopping). */
int mpmap__manager_own_sync(mpmap__manager *m, bool force);

#endif
