/*
 * The wire format between the manager (rank 0) and the workers, in one
 * place: message tags, the result header and the layout of every message.
 * Messages travel on a private duplicate of the caller's communicator.
 *
 *   ASSIGN  manager -> worker: int64 [n, b0, e0, ..., b(n-1), e(n-1)], the real
 *           task ranges of one chunk; n = 0 means STOP (no more work).
 *   RESULT  worker -> manager: result_header, records, then (if flagged) one
 *           int32 status per task. Each message covers a contiguous piece of
 *           an assignment; the last piece carries RESULT_COMPLETE. In store
 *           mode (job.store) records stay on the worker and no record bytes
 *           travel (run_params.record_size is 0). A message
 *           flagged RESULT_REQUEST (a piece, or a bare header) asks for the
 *           next chunk and gets exactly one ASSIGN back.
 *   CANCEL  manager -> worker: stop early (error, interrupt). Sent at most
 *           once per worker; the final broadcast says whether it was sent so
 *           a worker that has not seen it yet receives it before returning.
 *
 * With node dispatch (submanager.h) a sub-manager stands between rank 0 and
 * the workers of its node: to them it is the manager (same messages), to
 * rank 0 a worker whose ASSIGNs hold the chunks of all its node's
 * scheduler slots, and whose RESULT messages are batches: one or more
 * entries back to back, each a complete RESULT as above (header, records,
 * statuses), so one message carries the pieces of several workers. An
 * entry names the rank that computed it (header.rank); COMPLETE and
 * REQUEST travel in bare entries of the sub-manager's own.
 *
 * Besides these, two broadcasts from rank 0: the run's parameters before
 * any work (mpmap__run_params), and the outcome at the end
 * (mpmap__final_state followed by the reduction's record_size bytes).
 */
#ifndef MPMAP_CORE_PROTOCOL_H
#define MPMAP_CORE_PROTOCOL_H

#include "mpmap.h"
#include "ranges.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { MPMAP__TAG_ASSIGN = 7101, MPMAP__TAG_RESULT = 7102, MPMAP__TAG_CANCEL = 7103 };

enum {
    MPMAP__RESULT_COMPLETE = 1,       /* last piece of an assignment: answer it */
    MPMAP__RESULT_HAS_STATUS = 2,     /* per-task status codes follow the records */
    MPMAP__RESULT_FAILED = 4,         /* a task failed under MPMAP_ON_ERROR_STOP */
    MPMAP__RESULT_INTERRUPTED = 8,    /* the worker saw its interrupt flag */
    MPMAP__RESULT_TASK_ERROR = 16,    /* message holds a failure under ..._CONTINUE */
    MPMAP__RESULT_REQUEST = 32,       /* the worker asks for its next chunk: answer it */
    MPMAP__RESULT_AHEAD = 64,         /* ... while it still holds work (may be deferred) */
    MPMAP__RESULT_STORE_FAILED = 128, /* job.store or store_sync failed (message says why);
                                         the piece reports no task, and completes its
                                         assignment */
    /* job.store_sync succeeded after this piece was stored: every range the
     * rank (header.rank) reported up to and including this piece is
     * durable, and may enter the checkpoint. */
    MPMAP__RESULT_SYNCED = 256,
    /* Under sync_stores only: the sender's last message (a bare header). A
     * worker sends it once it holds no chunk and expects none, after a last
     * store_sync if it stored anything since the previous one (SYNCED, or
     * STORE_FAILED); a sub-manager once every worker of its node sent
     * theirs. Its manager is not finished before it arrives, so a run that
     * ends leaves every range it could make durable in the checkpoint. */
    MPMAP__RESULT_FINAL = 512
};

typedef struct mpmap__result_header {
    int64_t begin;
    int64_t end;
    int64_t failed_task;
    double start;
    double finish;
    int32_t flags;
    int32_t error_code;
    int32_t rank; /* the rank that computed the piece (for the trace) */
    char message[MPMAP_MESSAGE_MAX];
} mpmap__result_header;

/* What every rank needs to know of the job; broadcast from rank 0. */
typedef struct mpmap__run_params {
    int64_t ntasks;
    /* Record bytes per task on the wire, in delivery and in the checkpoint:
     * 0 in store mode, where records stay on the rank that computed them. */
    int64_t record_size;
    int64_t map_record_size; /* record bytes per task the map writes (job.record_size) */
    int32_t store;           /* job.store is set (on every rank) */
    int32_t store_sync;      /* job.store_sync is set (on every rank) */
    /* Ranks call job.store_sync and flag SYNCED pieces: store_sync is set
     * and rank 0 keeps a checkpoint, which logs a stored range only once
     * the rank that stored it said it is durable. */
    int32_t sync_stores;
    int32_t prefetch;
    int32_t on_error;
    double flush_interval; /* longest time computed results stay unsent */
    /* node dispatch (submanager.h): what rank 0 decided, and what a
     * sub-manager needs to split its chunks */
    int32_t dispatch;             /* MPMAP_DISPATCH_FLAT or _NODES (never AUTO here) */
    int32_t node_size;            /* > 0: fake nodes of this many consecutive ranks */
    int32_t schedule;             /* mpmap_schedule */
    int64_t min_chunk, max_chunk; /* the scheduler's bounds (mpmap__chunk_bounds) */
} mpmap__run_params;

/* The outcome, broadcast from rank 0 at the end (the reduction follows). */
typedef struct mpmap__final_state {
    int32_t status;
    int32_t cancelled;
    int64_t failed_task;
    int64_t done;
    int64_t restored;
    int64_t failed;
    int64_t chunks;
    char schedule[16]; /* the schedule that ran (auto: the one it picked) */
    char message[MPMAP_MESSAGE_MAX + 64];
} mpmap__final_state;

/* ---- ASSIGN -------------------------------------------------------------- */

/* Number of int64 values in an ASSIGN of n ranges. */
static inline size_t mpmap__assign_length(size_t n) { return 1 + 2 * n; }

/* An ASSIGN message for ranges[0..n) (n = 0: STOP), malloc'd; NULL when out
 * of memory. */
static inline int64_t *mpmap__assign_encode(const mpmap_range *ranges, size_t n)
{
    int64_t *msg = malloc(mpmap__assign_length(n) * sizeof *msg);
    if (!msg)
        return NULL;
    msg[0] = (int64_t)n;
    for (size_t i = 0; i < n; i++) {
        msg[1 + 2 * i] = ranges[i].begin;
        msg[2 + 2 * i] = ranges[i].end;
    }
    return msg;
}

static inline int64_t mpmap__assign_count(const int64_t *msg) { return msg[0]; }
static inline bool mpmap__assign_is_stop(const int64_t *msg) { return msg[0] == 0; }
static inline int64_t mpmap__assign_begin(const int64_t *msg, int64_t k) { return msg[1 + 2 * k]; }
static inline int64_t mpmap__assign_end(const int64_t *msg, int64_t k) { return msg[2 + 2 * k]; }

/* Tasks in all the ranges of an ASSIGN. */
static inline int64_t mpmap__assign_tasks(const int64_t *msg)
{
    int64_t n = 0;
    for (int64_t k = 0; k < msg[0]; k++)
        n += msg[2 + 2 * k] - msg[1 + 2 * k];
    return n;
}

/* ---- RESULT -------------------------------------------------------------- */

/*
 * A RESULT is built in a buffer with room for `room` tasks: the header, the
 * records of room tasks, then room statuses. Before it is sent the statuses
 * (if any) are moved up behind the records actually written, so the message
 * is header | n records | [n statuses].
 */
static inline size_t mpmap__result_capacity(int64_t room, size_t record_size)
{
    return sizeof(mpmap__result_header) + (size_t)room * (record_size + sizeof(int32_t));
}
static inline char *mpmap__result_records(char *buffer)
{
    return buffer + sizeof(mpmap__result_header);
}
static inline int32_t *mpmap__result_status_area(char *buffer, int64_t room, size_t record_size)
{
    return (int32_t *)(buffer + sizeof(mpmap__result_header) + (size_t)room * record_size);
}

/* Packs the first n tasks for sending (see above); returns the message size. */
static inline size_t mpmap__result_pack(char *buffer, int64_t n, int64_t room, size_t record_size,
                                        bool has_status)
{
    size_t bytes = sizeof(mpmap__result_header) + (size_t)n * record_size;
    if (has_status) {
        /* Close the gap between the records written and the status array. */
        memmove(mpmap__result_records(buffer) + (size_t)n * record_size,
                mpmap__result_status_area(buffer, room, record_size), (size_t)n * sizeof(int32_t));
        bytes += (size_t)n * sizeof(int32_t);
    }
    return bytes;
}

/* Packs the first n tasks of a piece whose records were handed to job.store
 * (records of record_size bytes were written, none travel): the message is
 * header | [n statuses]. Returns the message size. */
static inline size_t mpmap__result_pack_stored(char *buffer, int64_t n, int64_t room,
                                               size_t record_size, bool has_status)
{
    size_t bytes = sizeof(mpmap__result_header);
    if (has_status) {
        memmove(mpmap__result_records(buffer), mpmap__result_status_area(buffer, room, record_size),
                (size_t)n * sizeof(int32_t));
        bytes += (size_t)n * sizeof(int32_t);
    }
    return bytes;
}

/* Reads a received RESULT: copies its header to *h and points at its
 * records and statuses (NULL when every task succeeded). MPMAP_EMPI when the
 * message is too short to be one. */
static inline int mpmap__result_decode(const char *buffer, int bytes, size_t record_size,
                                       mpmap__result_header *h, const char **records,
                                       const int32_t **status)
{
    if (bytes < (int)sizeof *h)
        return MPMAP_EMPI;
    memcpy(h, buffer, sizeof *h);
    int64_t n = h->end - h->begin;
    *records = buffer + sizeof *h;
    *status = (h->flags & MPMAP__RESULT_HAS_STATUS)
                  ? (const int32_t *)(*records + (size_t)n * record_size)
                  : NULL;
    return MPMAP_OK;
}

/* Bytes of the batch entry at `buffer` (of `bytes` left), or 0 when what
 * is left is too short to be one. */
static inline size_t mpmap__result_entry_size(const char *buffer, size_t bytes, size_t record_size)
{
    mpmap__result_header h;
    if (bytes < sizeof h)
        return 0;
    memcpy(&h, buffer, sizeof h);
    if (h.end < h.begin)
        return 0;
    size_t n = (size_t)(h.end - h.begin);
    size_t size = sizeof h + n * record_size +
                  ((h.flags & MPMAP__RESULT_HAS_STATUS) ? n * sizeof(int32_t) : 0);
    return size <= bytes ? size : 0;
}

#endif