/* Sends, receives and back-off waiting (see transport.h). */
#define _POSIX_C_SOURCE 200809L
#include "core/transport.h"

#include "mpmap.h"

#include <sched.h>
#include <stdlib.h>
#include <time.h>

double mpmap__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- waiting without burning a core ------------------------------------ */

/* Spin briefly (a reply is often microseconds away), then yield the core
 * for a while (sched_yield returns at once when no other process wants the
 * core, and hands it over when the node is oversubscribed), then sleep with
 * growing intervals up to 1 ms so a long-idle rank costs nothing. */
#define BACKOFF_SPINS 50u
#define BACKOFF_YIELDS 4000u
void mpmap__backoff_pause(mpmap__backoff *b)
{
    b->rounds++;
    if (b->rounds <= BACKOFF_SPINS)
        return;
    if (b->rounds <= BACKOFF_SPINS + BACKOFF_YIELDS) {
        sched_yield();
        return;
    }
    unsigned step = b->rounds - BACKOFF_SPINS - BACKOFF_YIELDS;
    long ns = step >= 10 ? 1000000L : (1000L << step);
    struct timespec ts = { 0, ns };
    nanosleep(&ts, NULL);
}

int mpmap__wait(MPI_Request *req)
{
    mpmap__backoff b = { 0 };
    for (;;) {
        int done = 0;
        if (MPI_Test(req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return MPMAP_EMPI;
        if (done)
            return MPMAP_OK;
        mpmap__backoff_pause(&b);
    }
}

/* ---- outstanding non-blocking sends ------------------------------------- */

void mpmap__sends_reap(mpmap__sends *l)
{
    size_t kept = 0;
    for (size_t i = 0; i < l->count; i++) {
        int done = 0;
        MPI_Test(&l->items[i].request, &done, MPI_STATUS_IGNORE);
        if (done)
            free(l->items[i].buffer);
        else
            l->items[kept++] = l->items[i];
    }
    l->count = kept;
}

int mpmap__sends_post(mpmap__sends *l, void *buffer, int bytes, int dest, int tag, MPI_Comm comm)
{
    if (l->count == l->capacity) {
        mpmap__sends_reap(l);
        if (l->count == l->capacity) {
            size_t cap = l->capacity ? 2 * l->capacity : 16;
            mpmap__pending_send *grown = realloc(l->items, cap * sizeof *grown);
            if (!grown) {
                free(buffer);
                return MPMAP_ENOMEM;
            }
            l->items = grown;
            l->capacity = cap;
        }
    }
    mpmap__pending_send *p = &l->items[l->count];
    p->buffer = buffer;
    if (MPI_Isend(buffer, bytes, MPI_BYTE, dest, tag, comm, &p->request) != MPI_SUCCESS) {
        free(buffer);
        return MPMAP_EMPI;
    }
    l->count++;
    return MPMAP_OK;
}

int mpmap__sends_finish(mpmap__sends *l)
{
    int rc = MPMAP_OK;
    for (size_t i = 0; i < l->count; i++) {
        if (mpmap__wait(&l->items[i].request) != MPMAP_OK)
            rc = MPMAP_EMPI;
        free(l->items[i].buffer);
    }
    free(l->items);
    *l = (mpmap__sends){ 0 };
    return rc;
}

/* ---- receives ----------------------------------------------------------- */

/* Matched probe for (source, tag): 1 with the message, its size and
 * sender; 0 when nothing has arrived; MPMAP_EMPI. */
static int probe(MPI_Comm comm, int source, int tag, MPI_Message *msg, int *count, int *from)
{
    int found = 0;
    MPI_Status st;
    if (MPI_Improbe(source, tag, comm, &found, msg, &st) != MPI_SUCCESS)
        return MPMAP_EMPI;
    if (!found)
        return 0;
    MPI_Get_count(&st, MPI_BYTE, count);
    *from = st.MPI_SOURCE;
    return 1;
}

int mpmap__try_recv_into(MPI_Comm comm, int source, int tag, char **buffer, size_t *capacity,
                         int *bytes, int *from)
{
    MPI_Message msg;
    int count = 0, sender = 0;
    int rc = probe(comm, source, tag, &msg, &count, &sender);
    if (rc != 1)
        return rc;
    if ((size_t)count > *capacity) {
        char *grown = realloc(*buffer, (size_t)count);
        if (!grown)
            return MPMAP_ENOMEM;
        *buffer = grown;
        *capacity = (size_t)count;
    }
    if (MPI_Mrecv(*buffer, count, MPI_BYTE, &msg, MPI_STATUS_IGNORE) != MPI_SUCCESS)
        return MPMAP_EMPI;
    *bytes = count;
    *from = sender;
    return 1;
}

int mpmap__try_recv_new(MPI_Comm comm, int source, int tag, void **out, int *bytes)
{
    MPI_Message msg;
    int count = 0, sender = 0;
    int rc = probe(comm, source, tag, &msg, &count, &sender);
    if (rc != 1)
        return rc;
    void *buffer = malloc((size_t)(count > 0 ? count : 1));
    if (!buffer)
        return MPMAP_ENOMEM;
    if (MPI_Mrecv(buffer, count, MPI_BYTE, &msg, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
        free(buffer);
        return MPMAP_EMPI;
    }
    *out = buffer;
    *bytes = count;
    return 1;
}

int mpmap__signal_post(mpmap__sends *l, int dest, int tag, MPI_Comm comm)
{
    char *byte = malloc(1);
    if (!byte)
        return MPMAP_ENOMEM;
    *byte = 0;
    return mpmap__sends_post(l, byte, 1, dest, tag, comm);
}

int mpmap__signal_try_take(MPI_Comm comm, int source, int tag)
{
    int found = 0;
    if (MPI_Iprobe(source, tag, comm, &found, MPI_STATUS_IGNORE) != MPI_SUCCESS)
        return MPMAP_EMPI;
    if (!found)
        return 0;
    char dummy;
    MPI_Recv(&dummy, 1, MPI_BYTE, source, tag, comm, MPI_STATUS_IGNORE);
    return 1;
}

int mpmap__signal_take(MPI_Comm comm, int source, int tag)
{
    char dummy;
    return MPI_Recv(&dummy, 1, MPI_BYTE, source, tag, comm, MPI_STATUS_IGNORE) == MPI_SUCCESS
               ? MPMAP_OK
               : MPMAP_EMPI;
}
