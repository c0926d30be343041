/*
 * Point-to-point messages and waiting, for the manager and the workers.
 * Every wait is a poll with a sleeping back-off, because Open MPI
 * busy-polls inside blocking calls and a waiting rank would otherwise take
 * a core from one that computes: idle ranks sleep, never spin.
 */
#ifndef MPMAP_CORE_TRANSPORT_H
#define MPMAP_CORE_TRANSPORT_H

#include <mpi.h>
#include <stddef.h>

/* Seconds on the monotonic clock. */
double mpmap__now(void);

/* ---- waiting without burning a core ------------------------------------ */

typedef struct mpmap__backoff {
    unsigned rounds; /* set to 0 after useful work to start short again */
} mpmap__backoff;

/* One idle round: spin, then yield, then sleep up to 1 ms (see transport.c). */
void mpmap__backoff_pause(mpmap__backoff *b);

/* Waits for a request to complete, backing off. 0 or MPMAP_EMPI. */
int mpmap__wait(MPI_Request *req);

/* ---- outstanding non-blocking sends ------------------------------------- */

typedef struct mpmap__pending_send {
    MPI_Request request;
    void *buffer;
} mpmap__pending_send;

typedef struct mpmap__sends {
    mpmap__pending_send *items;
    size_t count, capacity;
} mpmap__sends;

/* Sends `buffer` (owned by the list from now on, freed once sent; freed at
 * once on failure) without blocking. 0, MPMAP_ENOMEM or MPMAP_EMPI. */
int mpmap__sends_post(mpmap__sends *l, void *buffer, int bytes, int dest, int tag, MPI_Comm comm);
/* Frees the buffers of completed sends. */
void mpmap__sends_reap(mpmap__sends *l);
/* Waits for every send and empties the list. 0 or MPMAP_EMPI. */
int mpmap__sends_finish(mpmap__sends *l);

/* ---- receives ----------------------------------------------------------- */

/*
 * Receives one message from `source` (or MPI_ANY_SOURCE) with `tag` if one
 * has arrived, without blocking. Returns 1 when one was received, 0 when
 * none is there, or MPMAP_ENOMEM / MPMAP_EMPI.
 *   mpmap__try_recv_into: into *buffer, grown (realloc) to fit, reused
 *       across calls; *bytes and *from tell its size and sender.
 *   mpmap__try_recv_new: into a new malloc'd buffer given to the caller.
 * A 0 does not mean nothing has arrived: Open MPI's probe runs one progress
 * pass on a miss, which may pull in messages that only the next call
 * finds. A caller that must see everything that has arrived probes until
 * a miss follows a miss (see manager_poll in manager.c).
 */
int mpmap__try_recv_into(MPI_Comm comm, int source, int tag, char **buffer, size_t *capacity,
                         int *bytes, int *from);
int mpmap__try_recv_new(MPI_Comm comm, int source, int tag, void **out, int *bytes);

/* One-byte signal messages (CANCEL): post one, take one that has arrived
 * (1 if taken, 0 if none, or MPMAP_EMPI), or take one known to be coming. */
int mpmap__signal_post(mpmap__sends *l, int dest, int tag, MPI_Comm comm);
int mpmap__signal_try_take(MPI_Comm comm, int source, int tag);
int mpmap__signal_take(MPI_Comm comm, int source, int tag);

#endif
