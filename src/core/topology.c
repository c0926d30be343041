/* Roles of the ranks and rank 0's scheduler slots (see topology.h). */
#include "core/topology.h"

#include "mpmap.h"

#include <stdlib.h>

/* Each rank's node, named by the lowest rank on it. */
static int node_leader(MPI_Comm comm, int rank, int node_size, int *leader)
{
    if (node_size > 0) {
        *leader = rank / node_size * node_size;
        return MPMAP_OK;
    }
    MPI_Comm node;
    if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node) != MPI_SUCCESS)
        return MPMAP_EMPI;
    int rc = MPI_Allreduce(&rank, leader, 1, MPI_INT, MPI_MIN, node);
    MPI_Comm_free(&node);
    return rc == MPI_SUCCESS ? MPMAP_OK : MPMAP_EMPI;
}

int mpmap__topology_build(mpmap__topology *t, MPI_Comm comm, int rank, int size, int dispatch,
                          int node_size)
{
    *t = (mpmap__topology){ .size = size };
    t->boss = calloc((size_t)size, sizeof *t->boss);
    t->served = calloc((size_t)size, sizeof *t->served);
    int *leaders = calloc((size_t)size, sizeof *leaders);
    int *members = calloc((size_t)size, sizeof *members);
    if (!t->boss || !t->served || !leaders || !members)
        MPI_Abort(comm, 1); /* the others are in a collective: cannot leave it */
    int rc = MPMAP_OK;
    if (dispatch == MPMAP_DISPATCH_NODES && node_size > 0) {
        for (int r = 0; r < size; r++)
            leaders[r] = r / node_size * node_size;
    } else if (dispatch == MPMAP_DISPATCH_NODES) {
        int leader = 0;
        rc = node_leader(comm, rank, node_size, &leader);
        if (MPI_Allgather(&leader, 1, MPI_INT, leaders, 1, MPI_INT, comm) != MPI_SUCCESS)
            rc = MPMAP_EMPI;
    }
    if (rc == MPMAP_OK) {
        if (dispatch == MPMAP_DISPATCH_NODES)
            for (int r = 0; r < size; r++)
                members[leaders[r]]++;
        for (int r = 0; r < size; r++) {
            if (r == 0)
                t->boss[r] = -1;
            else if (dispatch != MPMAP_DISPATCH_NODES || leaders[r] == leaders[0] ||
                     members[leaders[r]] == 1 || leaders[r] == r)
                t->boss[r] = 0; /* served by rank 0 (a sub-manager is too) */
            else
                t->boss[r] = leaders[r];
            if (dispatch == MPMAP_DISPATCH_NODES && r > 0 && leaders[r] == r &&
                leaders[r] != leaders[0])
                t->served[r] = members[r] - 1;
        }
    }
    free(leaders);
    free(members);
    return rc;
}

int mpmap__topology_number_slots(mpmap__topology *t, bool computes)
{
    t->slot_first = calloc((size_t)t->size, sizeof *t->slot_first);
    t->slot_count = calloc((size_t)t->size, sizeof *t->slot_count);
    if (!t->slot_first || !t->slot_count)
        return MPMAP_ENOMEM;
    int next = 0;
    if (computes) {
        t->slot_count[0] = 1;
        next = 1;
    }
    for (int r = 1; r < t->size; r++) {
        if (t->boss[r] != 0)
            continue;
        t->slot_first[r] = next;
        t->slot_count[r] = t->served[r] > 0 ? t->served[r] : 1;
        next += t->slot_count[r];
    }
    t->slots = next;
    return MPMAP_OK;
}

void mpmap__topology_destroy(mpmap__topology *t)
{
    free(t->boss);
    free(t->served);
    free(t->slot_first);
    free(t->slot_count);
    *t = (mpmap__topology){ 0 };
}
