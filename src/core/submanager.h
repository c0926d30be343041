/*
 * The sub-manager role under node dispatch (topology.h): the lowest rank of
 * a node other than rank 0's computes nothing and stands between rank 0
 * and the node's other ranks, so that rank 0 answers one request per node
 * instead of one per rank.
 *
 * To rank 0 it is a worker that asks for the chunks of all its node's
 * scheduler slots at once and streams results back in batches
 * (protocol.h); to its node's ranks it is the manager, speaking the
 * worker protocol unchanged over shared memory. It splits what it holds
 * guided-like (dynamic: into the configured chunk), and passes every piece
 * of results on untouched, so rank 0 still delivers, checkpoints, traces
 * and reduces exactly as with flat dispatch.
 */
#ifndef MPMAP_CORE_SUBMANAGER_H
#define MPMAP_CORE_SUBMANAGER_H

#include "core/run.h"

/* Runs the sub-manager until rank 0 has no more work and every chunk came
 * back. Returns 0, 1 when rank 0's CANCEL was received (and passed on to
 * the node's workers), or MPMAP_E*. */
int mpmap__submanager_main(mpmap__run *r);

/* After the final broadcast: rank 0 had sent a CANCEL this sub-manager
 * never saw; the node's workers expect one from it, so send it now. */
void mpmap__submanager_late_cancel(mpmap__run *r);

#endif
