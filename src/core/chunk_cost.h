/*
 * What each rank's current chunk has cost, for the schedules that learn
 * from it (schedule.h, observe): the manager adds every piece of results
 * as it arrives and, at the piece that completes the chunk, tells the
 * scheduler the chunk's tasks, its compute time (the sum of the pieces'
 * worker-side times) and the time since that rank's previous chunk
 * finished (compute plus waiting and messages), all in the rank's clock.
 */
#ifndef MPMAP_CORE_CHUNK_COST_H
#define MPMAP_CORE_CHUNK_COST_H

#include "schedule.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct mpmap__chunk_cost {
    int64_t tasks;
    double compute;     /* seconds the pieces took on the rank */
    double last_finish; /* when the rank's previous chunk finished (0: run start) */
} mpmap__chunk_cost;

/* A piece of `tasks` tasks that took `seconds` on the rank. */
static inline void mpmap__chunk_cost_add(mpmap__chunk_cost *c, int64_t tasks, double seconds)
{
    c->tasks += tasks;
    c->compute += seconds;
}

/* The chunk is complete at `finish`: scheduler slot `slot` hears what it
 * cost (unless the run is stopping: nothing is chosen any more), and the
 * next chunk starts counting from there. */
static inline void mpmap__chunk_cost_complete(mpmap__chunk_cost *c, mpmap__scheduler *s, int slot,
                                              double finish, bool report)
{
    if (report)
        mpmap__scheduler_observe(s, slot, c->tasks, c->compute, finish - c->last_finish);
    *c = (mpmap__chunk_cost){ .last_finish = finish };
}

#endif
