/*
 * Who talks to whom in one run. Flat dispatch: every rank is a worker of
 * rank 0. Node dispatch: on each node other than rank 0's, the lowest rank
 * is a sub-manager (submanager.h) that serves the node's other ranks and
 * is itself served by rank 0; rank 0's own node, and a node of one rank,
 * are served by rank 0 directly.
 *
 * Rank 0 gives the scheduler one slot per computing rank: its own (when it
 * computes), one per direct worker, and the slots of a sub-manager's
 * workers to that sub-manager, which asks for all of them at once.
 */
#ifndef MPMAP_CORE_TOPOLOGY_H
#define MPMAP_CORE_TOPOLOGY_H

#include <mpi.h>
#include <stdbool.h>

typedef struct mpmap__topology {
    int size;
    int *boss;       /* per rank: the rank it gets chunks from (-1 for rank 0) */
    int *served;     /* per rank: workers a sub-manager serves (0: not one) */
    int *slot_first; /* rank 0 only, per direct child (and rank 0): its slots */
    int *slot_count;
    int slots; /* scheduler slots in all (P) */
} mpmap__topology;

/*
 * Collective over comm. dispatch is MPMAP_DISPATCH_FLAT or _NODES;
 * node_size > 0 groups consecutive ranks into fake nodes of that size
 * (testing on one machine), else nodes are MPI's shared-memory groups.
 * Returns 0 or MPMAP_EMPI; out of memory aborts the job (the other ranks
 * wait in a collective).
 */
int mpmap__topology_build(mpmap__topology *t, MPI_Comm comm, int rank, int size, int dispatch,
                          int node_size);

/* Rank 0: numbers the scheduler slots; `computes`: rank 0 takes a slot. */
int mpmap__topology_number_slots(mpmap__topology *t, bool computes);

void mpmap__topology_destroy(mpmap__topology *t);

static inline bool mpmap__topology_is_sub(const mpmap__topology *t, int rank)
{
    return t->served[rank] > 0;
}

#endif
