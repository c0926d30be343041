/*
 * Chunk scheduling: which tasks the next chunk covers. Pure: no MPI, no I/O,
 * no clocks, so every schedule is unit-tested exhaustively.
 *
 * A scheduler hands out the tasks [0, total) of a "virtual" index space.
 * On a fresh run that is the job's task range; on a resumed run it is the
 * tasks still missing, and mpmap_ranges_translate maps a virtual chunk back
 * onto the real task ranges it covers.
 */
#ifndef MPMAP_SCHEDULE_H
#define MPMAP_SCHEDULE_H

#include "mpmap.h"
#include "ranges.h"

#include <stddef.h>
#include <stdint.h>

typedef struct mpmap_scheduler {
    mpmap_schedule kind;
    int64_t total;     /* tasks to hand out */
    int64_t next;      /* first task not yet handed out (shared-pool schedules) */
    int workers;       /* P */
    int64_t min_chunk; /* C */
    int64_t max_chunk; /* upper bound on any chunk */
    int64_t batch_chunk; /* factoring: chunk size of the current batch */
    int batch_left;      /* factoring: chunks left in the current batch */
    int64_t *static_next; /* static: next task of each worker's block */
} mpmap_scheduler;

/* min_chunk >= 1; max_chunk 0 means unbounded. Returns 0 or MPMAP_E*. */
int mpmap_scheduler_init(mpmap_scheduler *s, mpmap_schedule kind, int64_t total, int workers,
                         int64_t min_chunk, int64_t max_chunk);
void mpmap_scheduler_destroy(mpmap_scheduler *s);

/* The next chunk for `worker` (0..P-1): returns 1 and sets [*begin, *end),
 * or 0 when nothing is left for that worker. */
int mpmap_scheduler_next(mpmap_scheduler *s, int worker, int64_t *begin, int64_t *end);

/* First and last task of worker w's block under the static schedule. */
void mpmap_static_block(int64_t total, int workers, int w, int64_t *begin, int64_t *end);

/*
 * Virtual-to-real translation for resumed runs. `pending` holds n sorted,
 * disjoint ranges; `offsets[i]` is the number of pending tasks before
 * pending[i] (offsets has n + 1 entries, the last one the total). Writes the
 * real ranges covering virtual tasks [vbegin, vend) to out (at most outcap)
 * and returns how many there are (which may exceed outcap: call again with
 * more room).
 */
size_t mpmap_ranges_translate(const mpmap_range *pending, const int64_t *offsets, size_t n,
                              int64_t vbegin, int64_t vend, mpmap_range *out, size_t outcap);

/* The complement of the sorted disjoint `done` ranges within [0, total):
 * writes it to out (room for ndone + 1 ranges) and returns its length. */
size_t mpmap_ranges_complement(const mpmap_range *done, size_t ndone, int64_t total,
                               mpmap_range *out);

#endif
