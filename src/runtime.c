/*
 * The MPI part of mpmap: the manager loop on rank 0, the worker loop on the
 * other ranks, and the message protocol between them.
 *
 * Protocol (on a private duplicate of the caller's communicator):
 *   ASSIGN  manager -> worker: int64 [n, b0, e0, ..., b(n-1), e(n-1)], the real
 *           task ranges of one chunk; n = 0 means STOP (no more work).
 *   RESULT  worker -> manager: result_header, records, then (if flagged) one
 *           int32 status per task. Each message covers a contiguous piece of
 *           an assignment; the last piece carries RESULT_COMPLETE. A message
 *           flagged RESULT_REQUEST (a piece, or a bare header) asks for the
 *           next chunk and gets exactly one ASSIGN back.
 *   CANCEL  manager -> worker: stop early (error, interrupt). Sent at most
 *           once per worker; the final broadcast says whether it was sent so
 *           a worker that has not seen it yet receives it before returning.
 *
 * Demand-driven hand-out: every worker gets one chunk at the start and then
 * asks for the next one while it still has work (see worker_wants_chunk), so
 * it never waits for the round trip, yet the size of that next chunk is
 * decided as late as possible. A worker has at most one request in flight;
 * it is finished when it holds no chunk, has no request in flight, and was
 * told STOP (or to cancel). The manager is finished when every worker was
 * told STOP and every chunk it handed out came back COMPLETE, so no message
 * is ever left unmatched.
 *
 * Rank 0 computes too: it runs its own chunks in short time slices and
 * serves worker messages between slices. Every wait is a poll with a
 * sleeping back-off, because Open MPI busy-polls inside blocking calls and a
 * waiting rank would otherwise take a core from one that computes.
 *
 * Results reach the sink in task order: pieces that arrive early wait in a
 * reorder list, and ranges restored from a checkpoint are read back when the
 * delivery point reaches them. The reduction is folded at delivery, so it
 * too happens in task order, identically for any rank count and schedule.
 */
#define _POSIX_C_SOURCE 200809L
#include "mpmap.h"

#include "checkpoint.h"
#include "reduce.h"
#include "schedule.h"

#include <math.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { TAG_ASSIGN = 7101, TAG_RESULT = 7102, TAG_CANCEL = 7103 };

enum {
    RESULT_COMPLETE = 1,    /* last piece of an assignment: answer it */
    RESULT_HAS_STATUS = 2,  /* per-task status codes follow the records */
    RESULT_FAILED = 4,      /* a task failed under MPMAP_ON_ERROR_STOP */
    RESULT_INTERRUPTED = 8, /* the worker saw its interrupt flag */
    RESULT_TASK_ERROR = 16, /* message holds a failure under ..._CONTINUE */
    RESULT_REQUEST = 32,    /* the worker asks for its next chunk: answer it */
    RESULT_AHEAD = 64       /* ... while it still holds work (may be deferred) */
};

typedef struct result_header {
    int64_t begin;
    int64_t end;
    int64_t failed_task;
    double start;
    double finish;
    int32_t flags;
    int32_t error_code;
    char message[MPMAP_MESSAGE_MAX];
} result_header;

/* Default bound on the records of one chunk: keeps messages and the
 * manager's reorder buffer small whatever the schedule asks for. */
#define CHUNK_RECORD_BYTES (4u << 20)
/* Target length of one time slice of work between polls. Rank 0's own
 * slices follow how long workers take per piece (they must never run dry
 * while rank 0 computes), within these bounds. */
#define MANAGER_SLICE_MAX 0.002
#define MANAGER_SLICE_MIN 0.00002
#define MANAGER_SLICE_START 0.0001
#define WORKER_SLICE_SECONDS 0.02
/* Largest piece read back from a checkpoint at once. */
#define RESTORE_PIECE_BYTES (1u << 20)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- waiting without burning a core ------------------------------------ */

typedef struct backoff {
    unsigned rounds;
} backoff;

/* Spin briefly (a reply is often microseconds away), then yield the core
 * for a while (sched_yield returns at once when no other process wants the
 * core, and hands it over when the node is oversubscribed), then sleep with
 * growing intervals up to 1 ms so a long-idle rank costs nothing. */
#define BACKOFF_SPINS 50u
#define BACKOFF_YIELDS 4000u
static void backoff_pause(backoff *b)
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

static int wait_request(MPI_Request *req)
{
    backoff b = { 0 };
    for (;;) {
        int done = 0;
        if (MPI_Test(req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return MPMAP_EMPI;
        if (done)
            return MPMAP_OK;
        backoff_pause(&b);
    }
}

/* ---- outstanding non-blocking sends ------------------------------------- */

typedef struct pending_send {
    MPI_Request request;
    void *buffer;
} pending_send;

typedef struct send_list {
    pending_send *items;
    size_t count, capacity;
} send_list;

/* Frees the buffers of completed sends. */
static void sends_reap(send_list *l)
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

/* Sends `buffer` (owned by the list from now on) without blocking. */
static int sends_post(send_list *l, void *buffer, int bytes, int dest, int tag, MPI_Comm comm)
{
    if (l->count == l->capacity) {
        sends_reap(l);
        if (l->count == l->capacity) {
            size_t cap = l->capacity ? 2 * l->capacity : 16;
            pending_send *grown = realloc(l->items, cap * sizeof *grown);
            if (!grown) {
                free(buffer);
                return MPMAP_ENOMEM;
            }
            l->items = grown;
            l->capacity = cap;
        }
    }
    pending_send *p = &l->items[l->count];
    p->buffer = buffer;
    if (MPI_Isend(buffer, bytes, MPI_BYTE, dest, tag, comm, &p->request) != MPI_SUCCESS) {
        free(buffer);
        return MPMAP_EMPI;
    }
    l->count++;
    return MPMAP_OK;
}

static int sends_finish(send_list *l)
{
    int rc = MPMAP_OK;
    for (size_t i = 0; i < l->count; i++) {
        if (wait_request(&l->items[i].request) != MPMAP_OK)
            rc = MPMAP_EMPI;
        free(l->items[i].buffer);
    }
    free(l->items);
    *l = (send_list){ 0 };
    return rc;
}

/* ---- running the user's map function ------------------------------------ */

/*
 * Runs map on [begin, end). Returns the number of tasks that finished; when
 * that is less than end - begin, *err describes the failed task begin + n.
 * A map function that fails without naming a task (or names one outside the
 * range) is taken to have failed at `begin`.
 */
static int64_t run_map(const mpmap_job *job, int64_t begin, int64_t end, void *records,
                       mpmap_task_error *err)
{
    err->task = -1;
    err->code = 0;
    err->message[0] = '\0';
    int rc = job->map(begin, end, records, err, job->context);
    if (rc == 0)
        return end - begin;
    if (rc != MPMAP_ETASK || err->task < begin || err->task >= end) {
        if (err->message[0] == '\0')
            snprintf(err->message, sizeof err->message, "map function returned %d (%s)", rc,
                     mpmap_strerror(rc));
        err->task = begin;
    }
    if (err->code == 0)
        err->code = rc != 0 ? rc : 1;
    return err->task - begin;
}

/* Adapts a slice length so that a slice takes about `target` seconds. */
static int64_t next_slice_length(int64_t length, double elapsed, double target)
{
    if (elapsed < target / 4 && length < (INT64_MAX / 2))
        return length * 2;
    if (elapsed > target * 2 && length > 1)
        return length / 2;
    return length;
}

/* ---- shared state of one run -------------------------------------------- */

typedef struct run_params {
    int64_t ntasks;
    int64_t record_size;
    int32_t prefetch;
    int32_t on_error;
    double flush_interval; /* longest time computed results stay unsent */
} run_params;

typedef struct run {
    MPI_Comm comm;
    int rank, size;
    const mpmap_config *config;
    const mpmap_job *job;
    run_params params;
    double t0;
} run;

static bool interrupted(const run *r)
{
    return r->config->interrupt && *r->config->interrupt;
}

/* ---- worker ------------------------------------------------------------- */

typedef struct assignment {
    int64_t *ranges; /* [n, b0, e0, ...] as received */
} assignment;

typedef struct worker {
    run *r;
    assignment *queue;
    size_t queued, head, capacity;
    int requests;             /* ASSIGN messages still to come: the initial one
                                 counts as requested, then one per request */
    bool stopped;             /* the manager has no more chunks */
    bool cancelled;           /* the manager asked to stop early */
    bool halted;              /* stop computing: cancelled or interrupted */
    double seconds_per_task;  /* running estimate; 0 until measured */
    double asked_at;          /* when the request in flight was sent */
    double reply_latency;     /* running estimate of request -> answer time */
    int64_t current_left;     /* tasks left in the assignment being computed */
    send_list sends;
} worker;

static int64_t assignment_tasks(const int64_t *ranges)
{
    int64_t n = 0;
    for (int64_t k = 0; k < ranges[0]; k++)
        n += ranges[2 + 2 * k] - ranges[1 + 2 * k];
    return n;
}

/* Receives whatever the manager has sent, without blocking. */
static int worker_poll(worker *w)
{
    for (;;) {
        int found = 0;
        MPI_Message msg;
        MPI_Status st;
        if (MPI_Improbe(0, TAG_ASSIGN, w->r->comm, &found, &msg, &st) != MPI_SUCCESS)
            return MPMAP_EMPI;
        if (!found)
            break;
        int count = 0;
        MPI_Get_count(&st, MPI_INT64_T, &count);
        int64_t *ranges = malloc((size_t)(count > 0 ? count : 1) * sizeof *ranges);
        if (!ranges)
            return MPMAP_ENOMEM;
        if (MPI_Mrecv(ranges, count, MPI_INT64_T, &msg, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
            free(ranges);
            return MPMAP_EMPI;
        }
        w->requests--;
        if (w->asked_at > 0) {
            /* Rank 0 answers between slices of its own work, so an answer can
             * take as long as one of its tasks: learn how long it takes. */
            double latency = now() - w->asked_at;
            w->reply_latency = w->reply_latency > 0 ? 0.7 * w->reply_latency + 0.3 * latency
                                                    : latency;
            w->asked_at = 0;
        }
        if (ranges[0] == 0) {
            w->stopped = true;
            free(ranges);
            continue;
        }
        if (w->queued == w->capacity) {
            size_t cap = w->capacity ? 2 * w->capacity : 4;
            assignment *grown = malloc(cap * sizeof *grown);
            if (!grown) {
                free(ranges);
                return MPMAP_ENOMEM;
            }
            for (size_t i = 0; i < w->queued; i++)
                grown[i] = w->queue[(w->head + i) % w->capacity];
            free(w->queue);
            w->queue = grown;
            w->head = 0;
            w->capacity = cap;
        }
        w->queue[(w->head + w->queued) % w->capacity] = (assignment){ ranges };
        w->queued++;
    }
    if (!w->cancelled) {
        int found = 0;
        if (MPI_Iprobe(0, TAG_CANCEL, w->r->comm, &found, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return MPMAP_EMPI;
        if (found) {
            char dummy;
            MPI_Recv(&dummy, 1, MPI_BYTE, 0, TAG_CANCEL, w->r->comm, MPI_STATUS_IGNORE);
            w->cancelled = true;
            w->halted = true;
        }
    }
    if (interrupted(w->r))
        w->halted = true;
    return MPMAP_OK;
}

/*
 * Whether to ask for the next chunk now. A worker asks just early enough
 * that the answer arrives before it runs dry — when the work it holds is
 * estimated to end within max(twice the observed answer time, 1.5 task
 * times, 2 ms) — and no earlier, so that the scheduler sizes that chunk
 * knowing what the other ranks have taken meanwhile. (Asking a long time
 * ahead, e.g. halfway through guided's large first chunk, reserves work
 * that another rank could have done, and leaves it idle at the end.) It
 * holds at most `prefetch` chunks, and asks at once when it holds none.
 */
static bool worker_wants_chunk(const worker *w, bool computing)
{
    if (w->requests > 0 || w->stopped || w->halted)
        return false;
    size_t held = w->queued + (computing ? 1 : 0);
    if (held == 0)
        return true;
    if (held >= (size_t)w->r->params.prefetch || w->seconds_per_task <= 0)
        return false;
    int64_t left = computing ? w->current_left : 0;
    for (size_t i = 0; i < w->queued; i++)
        left += assignment_tasks(w->queue[(w->head + i) % w->capacity].ranges);
    double remaining = w->seconds_per_task * (double)left;
    double threshold = 1.5 * w->seconds_per_task;
    if (threshold < 2 * w->reply_latency)
        threshold = 2 * w->reply_latency;
    if (threshold < 0.002)
        threshold = 0.002;
    return remaining <= threshold;
}

static int worker_request(worker *w, bool ahead)
{
    result_header *h = calloc(1, sizeof *h);
    if (!h)
        return MPMAP_ENOMEM;
    h->flags = RESULT_REQUEST | (ahead ? RESULT_AHEAD : 0);
    w->requests++;
    w->asked_at = now();
    return sends_post(&w->sends, h, (int)sizeof *h, 0, TAG_RESULT, w->r->comm);
}

/* A result message under construction: header, records, statuses. */
typedef struct piece {
    char *buffer;
    int64_t begin;   /* first task of the piece */
    int64_t filled;  /* tasks written so far */
    int64_t room;    /* tasks the buffer holds */
    bool has_status;
    double start;
} piece;

static result_header *piece_header(piece *p) { return (result_header *)p->buffer; }
static char *piece_records(piece *p) { return p->buffer + sizeof(result_header); }
static int32_t *piece_status(piece *p, size_t record_size)
{
    return (int32_t *)(p->buffer + sizeof(result_header) + (size_t)p->room * record_size);
}

static int piece_open(piece *p, int64_t begin, int64_t room, size_t record_size, double start)
{
    size_t bytes = sizeof(result_header) + (size_t)room * (record_size + sizeof(int32_t));
    p->buffer = malloc(bytes);
    if (!p->buffer)
        return MPMAP_ENOMEM;
    memset(p->buffer, 0, sizeof(result_header));
    p->begin = begin;
    p->filled = 0;
    p->room = room;
    p->has_status = false;
    p->start = start;
    return MPMAP_OK;
}

/* Sends the first p->filled tasks of the piece. Records are followed by
 * the statuses only when some task failed, so the common case carries none.
 * A piece that completes an assignment also carries the request for the
 * next chunk when one is due, saving a message. */
static int piece_send(worker *w, piece *p, int32_t flags, const mpmap_task_error *err)
{
    size_t rs = (size_t)w->r->params.record_size;
    if ((flags & RESULT_COMPLETE) && worker_wants_chunk(w, false)) {
        flags |= RESULT_REQUEST | (w->queued > 0 ? RESULT_AHEAD : 0);
        w->requests++;
        w->asked_at = now();
    }
    result_header *h = piece_header(p);
    h->begin = p->begin;
    h->end = p->begin + p->filled;
    h->failed_task = err ? err->task : -1;
    h->start = p->start;
    h->finish = MPI_Wtime() - w->r->t0;
    h->flags = flags | (p->has_status ? RESULT_HAS_STATUS : 0);
    h->error_code = err ? err->code : 0;
    if (err)
        snprintf(h->message, sizeof h->message, "%s", err->message);
    size_t bytes = sizeof(result_header) + (size_t)p->filled * rs;
    if (p->has_status) {
        /* Close the gap between the records written and the status array. */
        memmove(piece_records(p) + (size_t)p->filled * rs, piece_status(p, rs),
                (size_t)p->filled * sizeof(int32_t));
        bytes += (size_t)p->filled * sizeof(int32_t);
    }
    char *buffer = p->buffer;
    p->buffer = NULL;
    return sends_post(&w->sends, buffer, (int)bytes, 0, TAG_RESULT, w->r->comm);
}

/* Computes one assignment, streaming its results back in pieces. */
static int worker_run_assignment(worker *w, const int64_t *ranges, int64_t *slice_len)
{
    run *r = w->r;
    const mpmap_job *job = r->job;
    size_t rs = (size_t)r->params.record_size;
    int64_t nranges = ranges[0];
    w->current_left = assignment_tasks(ranges);
    for (int64_t k = 0; k < nranges; k++) {
        int64_t b = ranges[1 + 2 * k], e = ranges[2 + 2 * k];
        bool last_range = (k == nranges - 1);
        piece p;
        if (piece_open(&p, b, e - b, rs, MPI_Wtime() - r->t0) != MPMAP_OK)
            return MPMAP_ENOMEM;
        int64_t pos = b;
        while (pos < e) {
            int rc = worker_poll(w);
            if (rc == MPMAP_OK && worker_wants_chunk(w, true))
                rc = worker_request(w, true);
            if (rc != MPMAP_OK) {
                free(p.buffer);
                return rc;
            }
            if (w->halted)
                break;
            int64_t slice_end = pos + (*slice_len < e - pos ? *slice_len : e - pos);
            double t = now();
            mpmap_task_error err;
            int64_t ok = run_map(job, pos, slice_end, piece_records(&p) + (size_t)(pos - p.begin) * rs,
                                 &err);
            double elapsed = now() - t;
            if (ok > 0) {
                double per_task = elapsed / (double)ok;
                w->seconds_per_task = w->seconds_per_task > 0
                                          ? 0.7 * w->seconds_per_task + 0.3 * per_task
                                          : per_task;
            }
            *slice_len = next_slice_length(*slice_len, elapsed, WORKER_SLICE_SECONDS);
            p.filled += ok;
            pos += ok;
            w->current_left -= ok;
            if (pos == slice_end) {
                /* A long chunk goes back in pieces, so a killed process loses
                 * at most flush_interval seconds of its work. */
                if (pos < e && MPI_Wtime() - r->t0 - p.start >= r->params.flush_interval) {
                    rc = piece_send(w, &p, 0, NULL);
                    if (rc == MPMAP_OK)
                        rc = piece_open(&p, pos, e - pos, rs, MPI_Wtime() - r->t0);
                    if (rc != MPMAP_OK)
                        return rc;
                }
                continue;
            }
            /* Task `pos` failed. */
            if (r->params.on_error == MPMAP_ON_ERROR_STOP) {
                w->halted = true; /* the manager will cancel everyone */
                return piece_send(w, &p, RESULT_COMPLETE | RESULT_FAILED, &err);
            }
            /* Continue: mark the task, send the piece with the message, go on. */
            if (!p.has_status) {
                memset(piece_status(&p, rs), 0, (size_t)p.room * sizeof(int32_t));
                p.has_status = true;
            }
            memset(piece_records(&p) + (size_t)(pos - p.begin) * rs, 0, rs);
            piece_status(&p, rs)[pos - p.begin] = err.code;
            p.filled++;
            pos++;
            w->current_left--;
            bool done = pos == e && last_range;
            rc = piece_send(w, &p, RESULT_TASK_ERROR | (done ? RESULT_COMPLETE : 0), &err);
            if (rc != MPMAP_OK)
                return rc;
            if (pos < e && piece_open(&p, pos, e - pos, rs, MPI_Wtime() - r->t0) != MPMAP_OK)
                return MPMAP_ENOMEM;
        }
        if (w->halted) {
            /* Keep what is done; the rest of the chunk is left for --resume. */
            return piece_send(w, &p, RESULT_COMPLETE | RESULT_INTERRUPTED, NULL);
        }
        if (p.buffer) {
            int rc = piece_send(w, &p, last_range ? RESULT_COMPLETE : 0, NULL);
            if (rc != MPMAP_OK)
                return rc;
        }
    }
    return MPMAP_OK;
}

static int worker_main(run *r)
{
    worker w = { .r = r, .requests = 1 };
    int rc = MPMAP_OK;
    int64_t slice_len = 1;
    backoff idle = { 0 };
    while (rc == MPMAP_OK) {
        rc = worker_poll(&w);
        if (rc != MPMAP_OK)
            break;
        if (w.queued > 0) {
            assignment a = w.queue[w.head];
            w.head = (w.head + 1) % w.capacity;
            w.queued--;
            if (w.halted) {
                /* Hand the chunk back unstarted. */
                piece p;
                rc = piece_open(&p, a.ranges[1], 0, 0, MPI_Wtime() - r->t0);
                if (rc == MPMAP_OK)
                    rc = piece_send(&w, &p, RESULT_COMPLETE | RESULT_INTERRUPTED, NULL);
            } else {
                rc = worker_run_assignment(&w, a.ranges, &slice_len);
            }
            free(a.ranges);
            sends_reap(&w.sends);
            idle.rounds = 0;
            continue;
        }
        if (w.requests == 0 && (w.stopped || w.halted))
            break; /* nothing held, nothing asked, nothing more to come */
        if (worker_wants_chunk(&w, false)) {
            rc = worker_request(&w, false);
            continue;
        }
        backoff_pause(&idle);
    }
    int finish = sends_finish(&w.sends);
    while (w.queued > 0) {
        free(w.queue[w.head].ranges);
        w.head = (w.head + 1) % w.capacity;
        w.queued--;
    }
    free(w.queue);
    if (rc == MPMAP_OK)
        rc = finish;
    return rc ? rc : (w.cancelled ? 1 : 0);
}

/* ---- manager ------------------------------------------------------------ */

typedef struct held_piece {
    int64_t begin, end;
    char *records;
    int32_t *status; /* NULL when all ok */
} held_piece;

typedef struct manager {
    run *r;
    int workers;           /* remote workers: ranks 1..size-1 */
    int sched_workers;     /* P as the scheduler sees it */
    bool computes;         /* rank 0 takes chunks too */
    bool own_exhausted;    /* the scheduler has nothing more for rank 0 */
    mpmap_scheduler sched;
    mpmap_range *pending;  /* real ranges still to compute (virtual space) */
    int64_t *offsets;
    size_t npending;
    bool *stopped;         /* worker was told STOP (or to cancel) */
    int64_t *open_chunks;  /* chunks handed to a worker, not yet COMPLETE */
    bool *deferred;        /* a request made ahead, answered once that worker is idle */
    send_list sends;
    mpmap_ckpt *ckpt;
    const mpmap_range *restored;
    size_t nrestored, next_restored;
    /* ordered delivery */
    int64_t next_deliver;
    held_piece *held;
    size_t nheld, held_capacity;
    char *reduction;
    /* rank 0's own chunk */
    mpmap_range *own;
    size_t nown, own_index;
    int64_t own_pos;
    char *own_buffer;
    int32_t *own_status;
    int64_t own_room;
    double own_start;      /* when the unflushed part of the range started */
    int64_t own_flushed;   /* tasks of the current range before this are delivered */
    int64_t slice_len;
    double slice_target;   /* seconds; see MANAGER_SLICE_* */
    /* outcome */
    int stopping;          /* 0 or the MPMAP_E* the run will return */
    bool cancel_sent;
    int64_t failed_task;
    char message[MPMAP_MESSAGE_MAX + 64];
    int64_t done, restored_tasks, failed, chunks, computed;
    double last_sync, last_progress;
} manager;

static void manager_stop(manager *m, int code, int64_t task, const char *message)
{
    if (m->stopping == 0) {
        m->stopping = code;
        m->failed_task = task;
        snprintf(m->message, sizeof m->message, "%s", message);
    }
    if (!m->cancel_sent) {
        m->cancel_sent = true;
        for (int w = 1; w <= m->workers; w++) {
            m->stopped[w] = true; /* no chunk goes out any more */
            char *byte = malloc(1);
            if (byte) {
                *byte = 0;
                sends_post(&m->sends, byte, 1, w, TAG_CANCEL, m->r->comm);
            }
        }
    }
}

/* Hands [begin, end) to the user in order: sink, results, status, reduction. */
static void deliver(manager *m, int64_t begin, int64_t end, const char *records,
                    const int32_t *status)
{
    const mpmap_job *job = m->r->job;
    size_t rs = (size_t)m->r->params.record_size;
    int64_t n = end - begin;
    if (n <= 0)
        return;
    if (job->sink && m->stopping != MPMAP_ECALLBACK) {
        if (job->sink(begin, end, records, status, job->context) != 0)
            manager_stop(m, MPMAP_ECALLBACK, -1, "the result sink failed");
    }
    if (job->results && rs > 0)
        memcpy((char *)job->results + (size_t)begin * rs, records, (size_t)n * rs);
    if (job->status) {
        if (status)
            memcpy(job->status + begin, status, (size_t)n * sizeof *status);
        else
            memset(job->status + begin, 0, (size_t)n * sizeof *status);
    }
    for (int64_t i = 0; i < n; i++) {
        if (status && status[i] != 0) {
            m->failed++;
            continue;
        }
        if (job->reduce_op != MPMAP_REDUCE_NONE && rs > 0)
            mpmap_reduce_fold(job->reduce_op, job->reduce_type, rs, records + (size_t)i * rs,
                              m->reduction, job->reduce_fn, job->context);
    }
    m->next_deliver = end;
}

/* Delivers whatever is now contiguous with the delivery point: checkpointed
 * ranges (read back in bounded pieces) and pieces that arrived early. */
static void flush_in_order(manager *m)
{
    size_t rs = (size_t)m->r->params.record_size;
    for (;;) {
        if (m->next_restored < m->nrestored &&
            m->restored[m->next_restored].begin == m->next_deliver) {
            mpmap_range rg = m->restored[m->next_restored++];
            int64_t step = rs > 0 ? (int64_t)(RESTORE_PIECE_BYTES / rs) : rg.end - rg.begin;
            if (step < 1)
                step = 1;
            char *records = malloc((size_t)(step < rg.end - rg.begin ? step : rg.end - rg.begin) * rs + 1);
            int32_t *status = malloc((size_t)(step < rg.end - rg.begin ? step : rg.end - rg.begin) *
                                         sizeof *status + 1);
            for (int64_t b = rg.begin; b < rg.end; b += step) {
                int64_t e = b + step < rg.end ? b + step : rg.end;
                if (!records || !status ||
                    mpmap_ckpt_read(m->ckpt, b, e, records, status) != MPMAP_OK) {
                    manager_stop(m, MPMAP_EIO, -1, "cannot read back the checkpoint");
                    m->next_deliver = rg.end; /* keep the order bookkeeping going */
                    break;
                }
                bool all_ok = true;
                for (int64_t i = 0; i < e - b; i++)
                    all_ok &= status[i] == 0;
                deliver(m, b, e, records, all_ok ? NULL : status);
            }
            free(records);
            free(status);
            continue;
        }
        size_t i;
        for (i = 0; i < m->nheld; i++)
            if (m->held[i].begin == m->next_deliver)
                break;
        if (i == m->nheld)
            return;
        held_piece h = m->held[i];
        m->held[i] = m->held[--m->nheld];
        deliver(m, h.begin, h.end, h.records, h.status);
        free(h.records);
        free(h.status);
    }
}

/* A piece of results has arrived (from any rank, in any order). */
static void accept_piece(manager *m, int64_t begin, int64_t end, const char *records,
                         const int32_t *status)
{
    size_t rs = (size_t)m->r->params.record_size;
    int64_t n = end - begin;
    if (n <= 0)
        return;
    m->done += n;
    m->computed += n;
    if (m->ckpt && mpmap_ckpt_append(m->ckpt, begin, end, records, status) != MPMAP_OK)
        manager_stop(m, MPMAP_EIO, -1, "cannot append to the checkpoint");
    if (begin == m->next_deliver) {
        deliver(m, begin, end, records, status);
        flush_in_order(m);
        return;
    }
    if (m->nheld == m->held_capacity) {
        size_t cap = m->held_capacity ? 2 * m->held_capacity : 16;
        held_piece *grown = realloc(m->held, cap * sizeof *grown);
        if (!grown) {
            manager_stop(m, MPMAP_ENOMEM, -1, "out of memory holding results");
            return;
        }
        m->held = grown;
        m->held_capacity = cap;
    }
    held_piece h = { begin, end, malloc((size_t)n * rs + 1), NULL };
    if (status)
        h.status = malloc((size_t)n * sizeof *status);
    if (!h.records || (status && !h.status)) {
        free(h.records);
        free(h.status);
        manager_stop(m, MPMAP_ENOMEM, -1, "out of memory holding results");
        return;
    }
    memcpy(h.records, records, (size_t)n * rs);
    if (status)
        memcpy(h.status, status, (size_t)n * sizeof *status);
    m->held[m->nheld++] = h;
}

static void trace_piece(manager *m, int64_t begin, int64_t end, int rank, double start,
                        double finish)
{
    const mpmap_job *job = m->r->job;
    if (!job->trace || end <= begin)
        return;
    mpmap_trace_entry e = { begin, end, rank, start, finish };
    if (job->trace(&e, job->context) != 0)
        manager_stop(m, MPMAP_ECALLBACK, -1, "the trace callback failed");
}

/* Next chunk for scheduler slot `slot`, as real ranges. Returns their count
 * (0 when nothing is left) and stores a malloc'd array in *out. */
static size_t next_chunk(manager *m, int slot, mpmap_range **out)
{
    *out = NULL;
    if (m->stopping)
        return 0;
    int64_t vb, ve;
    if (!mpmap_scheduler_next(&m->sched, slot, &vb, &ve))
        return 0;
    size_t n = mpmap_ranges_translate(m->pending, m->offsets, m->npending, vb, ve, NULL, 0);
    mpmap_range *ranges = malloc(n * sizeof *ranges);
    if (!ranges) {
        manager_stop(m, MPMAP_ENOMEM, -1, "out of memory");
        return 0;
    }
    mpmap_ranges_translate(m->pending, m->offsets, m->npending, vb, ve, ranges, n);
    m->chunks++;
    *out = ranges;
    return n;
}

static int slot_of_rank(const manager *m, int rank) { return m->computes ? rank : rank - 1; }

/* Sends worker w its next chunk, or STOP. */
static int assign(manager *m, int w)
{
    mpmap_range *ranges;
    size_t n = next_chunk(m, slot_of_rank(m, w), &ranges);
    int64_t *msg = malloc((1 + 2 * n) * sizeof *msg);
    if (!msg) {
        free(ranges);
        return MPMAP_ENOMEM;
    }
    msg[0] = (int64_t)n;
    for (size_t i = 0; i < n; i++) {
        msg[1 + 2 * i] = ranges[i].begin;
        msg[2 + 2 * i] = ranges[i].end;
    }
    free(ranges);
    if (n == 0)
        m->stopped[w] = true;
    else
        m->open_chunks[w]++;
    return sends_post(&m->sends, msg, (int)((1 + 2 * n) * sizeof *msg), w, TAG_ASSIGN, m->r->comm);
}

/* Few enough tasks left that handing them out ahead would idle a rank at
 * the end: at most one minimum chunk per rank, shared-pool schedules only. */
static bool pool_nearly_empty(const manager *m)
{
    if (m->stopping)
        return false; /* the answer is STOP: give it at once */
    if (m->sched.kind == MPMAP_SCHEDULE_STATIC)
        return false;
    int64_t left = m->sched.total - m->sched.next;
    return left <= (int64_t)m->sched_workers * m->sched.min_chunk;
}

static int handle_result(manager *m, char *buffer, int bytes, int source)
{
    size_t rs = (size_t)m->r->params.record_size;
    if (bytes < (int)sizeof(result_header))
        return MPMAP_EMPI;
    result_header h;
    memcpy(&h, buffer, sizeof h);
    int64_t n = h.end - h.begin;
    const char *records = buffer + sizeof h;
    const int32_t *status = (h.flags & RESULT_HAS_STATUS) ? (const int32_t *)(records + (size_t)n * rs) : NULL;
    accept_piece(m, h.begin, h.end, records, status);
    trace_piece(m, h.begin, h.end, source, h.start, h.finish);
    if (h.flags & RESULT_COMPLETE) {
        /* Half a worker's piece time: the worker still has its prefetched
         * chunk to run while it waits for this reply. */
        double half = 0.5 * (h.finish - h.start);
        double target = 0.8 * m->slice_target + 0.2 * half;
        m->slice_target = target < MANAGER_SLICE_MIN   ? MANAGER_SLICE_MIN
                          : target > MANAGER_SLICE_MAX ? MANAGER_SLICE_MAX
                                                       : target;
    }
    if ((h.flags & RESULT_TASK_ERROR) && m->r->job->task_failed) {
        mpmap_task_error err = { .task = h.failed_task, .code = h.error_code };
        snprintf(err.message, sizeof err.message, "%s", h.message);
        m->r->job->task_failed(&err, m->r->job->context);
    }
    if (h.flags & RESULT_FAILED) {
        char text[MPMAP_MESSAGE_MAX + 64];
        snprintf(text, sizeof text, "task %lld failed: %s", (long long)h.failed_task, h.message);
        manager_stop(m, MPMAP_ETASK, h.failed_task, text);
    }
    if (h.flags & RESULT_INTERRUPTED)
        manager_stop(m, MPMAP_EINTERRUPTED, -1, "interrupted");
    if (h.flags & RESULT_COMPLETE)
        m->open_chunks[source]--;
    if ((h.flags & RESULT_REQUEST) && (h.flags & RESULT_AHEAD) && pool_nearly_empty(m)) {
        /* The last few tasks go to whichever rank runs dry first, not to
         * one that asked while still busy: answer when it is idle. */
        m->deferred[source] = true;
        return MPMAP_OK;
    }
    if ((h.flags & RESULT_REQUEST) || ((h.flags & RESULT_COMPLETE) && m->deferred[source])) {
        m->deferred[source] = false;
        return assign(m, source);
    }
    return MPMAP_OK;
}

/* Serves every message that has arrived. Returns how many were handled. */
static int manager_poll(manager *m, char **buffer, size_t *capacity, int *handled)
{
    *handled = 0;
    for (;;) {
        int found = 0;
        MPI_Message msg;
        MPI_Status st;
        if (MPI_Improbe(MPI_ANY_SOURCE, TAG_RESULT, m->r->comm, &found, &msg, &st) != MPI_SUCCESS)
            return MPMAP_EMPI;
        if (!found)
            return MPMAP_OK;
        int bytes = 0;
        MPI_Get_count(&st, MPI_BYTE, &bytes);
        if ((size_t)bytes > *capacity) {
            char *grown = realloc(*buffer, (size_t)bytes);
            if (!grown)
                return MPMAP_ENOMEM;
            *buffer = grown;
            *capacity = (size_t)bytes;
        }
        if (MPI_Mrecv(*buffer, bytes, MPI_BYTE, &msg, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return MPMAP_EMPI;
        int rc = handle_result(m, *buffer, bytes, st.MPI_SOURCE);
        if (rc != MPMAP_OK)
            return rc;
        (*handled)++;
    }
}

/* Finishes rank 0's current own range: deliver what was computed, trace it. */
/* Hands rank 0's own results [own_flushed, upto) of the current range on:
 * at the end of a range, and every flush_interval seconds within a long
 * one, so they reach the checkpoint as soon as a worker's would. */
static void own_flush(manager *m, int64_t upto)
{
    size_t rs = (size_t)m->r->params.record_size;
    int64_t range_begin = m->own[m->own_index].begin;
    int64_t from = m->own_flushed;
    if (upto > from) {
        const int32_t *status = m->own_status ? m->own_status + (from - range_begin) : NULL;
        double finish = MPI_Wtime() - m->r->t0;
        accept_piece(m, from, upto, m->own_buffer + (size_t)(from - range_begin) * rs, status);
        trace_piece(m, from, upto, 0, m->own_start, finish);
        m->own_flushed = upto;
        m->own_start = finish;
    }
}

static int own_start_range(manager *m)
{
    size_t rs = (size_t)m->r->params.record_size;
    mpmap_range rg = m->own[m->own_index];
    int64_t n = rg.end - rg.begin;
    if (n > m->own_room) {
        free(m->own_buffer);
        free(m->own_status);
        m->own_buffer = malloc((size_t)n * rs + 1);
        m->own_status = NULL;
        if (!m->own_buffer)
            return MPMAP_ENOMEM;
        m->own_room = n;
    }
    free(m->own_status);
    m->own_status = NULL;
    m->own_pos = rg.begin;
    m->own_flushed = rg.begin;
    m->own_start = MPI_Wtime() - m->r->t0;
    return MPMAP_OK;
}

/* Runs one time slice of rank 0's own work. */
static int own_slice(manager *m)
{
    run *r = m->r;
    size_t rs = (size_t)r->params.record_size;
    mpmap_range rg = m->own[m->own_index];
    int64_t len = m->slice_len < rg.end - m->own_pos ? m->slice_len : rg.end - m->own_pos;
    char *out = m->own_buffer + (size_t)(m->own_pos - rg.begin) * rs;
    double t = now();
    mpmap_task_error err;
    int64_t ok = run_map(r->job, m->own_pos, m->own_pos + len, out, &err);
    double target = m->workers > 0 ? m->slice_target : WORKER_SLICE_SECONDS;
    m->slice_len = next_slice_length(m->slice_len, now() - t, target);
    m->own_pos += ok;
    if (ok < len) {
        if (r->params.on_error == MPMAP_ON_ERROR_STOP) {
            own_flush(m, m->own_pos);
            char text[MPMAP_MESSAGE_MAX + 64];
            snprintf(text, sizeof text, "task %lld failed: %s", (long long)err.task, err.message);
            manager_stop(m, MPMAP_ETASK, err.task, text);
            m->own_index = m->nown;
            return MPMAP_OK;
        }
        if (!m->own_status) {
            m->own_status = calloc((size_t)m->own_room, sizeof *m->own_status);
            if (!m->own_status)
                return MPMAP_ENOMEM;
        }
        memset(out + (size_t)ok * rs, 0, rs);
        m->own_status[m->own_pos - rg.begin] = err.code;
        m->own_pos++;
        if (r->job->task_failed)
            r->job->task_failed(&err, r->job->context);
    }
    if (m->own_pos < rg.end &&
        MPI_Wtime() - m->r->t0 - m->own_start >= m->r->params.flush_interval)
        own_flush(m, m->own_pos);
    if (m->own_pos == rg.end) {
        own_flush(m, rg.end);
        m->own_index++;
        if (m->own_index < m->nown)
            return own_start_range(m);
    }
    return MPMAP_OK;
}

static bool own_active(const manager *m) { return m->own_index < m->nown; }

static void progress_report(manager *m, double elapsed)
{
    const mpmap_job *job = m->r->job;
    if (!job->progress)
        return;
    mpmap_progress_info info = { .done = m->done + m->restored_tasks,
                                 .total = m->r->params.ntasks,
                                 .restored = m->restored_tasks,
                                 .elapsed = elapsed };
    info.rate = elapsed > 0 ? (double)m->computed / elapsed : 0;
    int64_t left = info.total - info.done;
    info.eta = info.rate > 0 ? (double)left / info.rate : -1;
    job->progress(&info, job->context);
}

static bool workers_finished(const manager *m)
{
    for (int w = 1; w <= m->workers; w++)
        if (!m->stopped[w] || m->open_chunks[w] > 0)
            return false;
    return true;
}

static int manager_setup(manager *m, run *r, char *err, size_t errlen)
{
    const mpmap_config *cfg = r->config;
    size_t rs = (size_t)r->params.record_size;
    m->r = r;
    m->workers = r->size - 1;
    m->computes = cfg->manager_computes || r->size == 1;
    m->sched_workers = m->computes ? r->size : r->size - 1;
    m->failed_task = -1;
    m->slice_len = 1;
    m->slice_target = MANAGER_SLICE_START;
    m->stopped = calloc((size_t)r->size, sizeof *m->stopped);
    m->open_chunks = calloc((size_t)r->size, sizeof *m->open_chunks);
    m->deferred = calloc((size_t)r->size, sizeof *m->deferred);
    m->reduction = malloc(rs + 1);
    if (!m->stopped || !m->open_chunks || !m->deferred || !m->reduction) {
        snprintf(err, errlen, "out of memory");
        return MPMAP_ENOMEM;
    }
    if (r->job->reduce_op != MPMAP_REDUCE_NONE)
        mpmap_reduce_init(r->job->reduce_op, r->job->reduce_type, rs, r->job->reduction,
                          m->reduction);

    if (cfg->checkpoint_path) {
        int rc = mpmap_ckpt_open(cfg->checkpoint_path, cfg->fingerprint ? cfg->fingerprint : "",
                                 r->params.ntasks, rs, cfg->resume, &m->ckpt, err, errlen);
        if (rc != MPMAP_OK)
            return rc;
        m->nrestored = mpmap_ckpt_restored(m->ckpt, &m->restored);
        m->restored_tasks = mpmap_ckpt_restored_tasks(m->ckpt);
    }
    m->pending = malloc((m->nrestored + 1) * sizeof *m->pending);
    m->offsets = malloc((m->nrestored + 2) * sizeof *m->offsets);
    if (!m->pending || !m->offsets) {
        snprintf(err, errlen, "out of memory");
        return MPMAP_ENOMEM;
    }
    m->npending = mpmap_ranges_complement(m->restored, m->nrestored, r->params.ntasks, m->pending);
    int64_t total = 0;
    for (size_t i = 0; i < m->npending; i++) {
        m->offsets[i] = total;
        total += m->pending[i].end - m->pending[i].begin;
    }
    m->offsets[m->npending] = total;

    int64_t chunk = cfg->chunk > 0 ? cfg->chunk : 1;
    int64_t max_chunk = cfg->max_chunk;
    if (max_chunk == 0 && rs > 0)
        max_chunk = (int64_t)(CHUNK_RECORD_BYTES / rs) > 0 ? (int64_t)(CHUNK_RECORD_BYTES / rs) : 1;
    if (max_chunk > 0 && max_chunk < chunk)
        max_chunk = chunk;
    int rc = mpmap_scheduler_init(&m->sched, cfg->schedule, total,
                                  m->sched_workers > 0 ? m->sched_workers : 1, chunk, max_chunk);
    if (rc != MPMAP_OK) {
        snprintf(err, errlen, "invalid schedule settings");
        return rc;
    }
    return MPMAP_OK;
}

static void manager_teardown(manager *m)
{
    mpmap_scheduler_destroy(&m->sched);
    if (m->ckpt)
        mpmap_ckpt_close(m->ckpt);
    for (size_t i = 0; i < m->nheld; i++) {
        free(m->held[i].records);
        free(m->held[i].status);
    }
    free(m->held);
    free(m->pending);
    free(m->offsets);
    free(m->stopped);
    free(m->open_chunks);
    free(m->deferred);
    free(m->reduction);
    free(m->own);
    free(m->own_buffer);
    free(m->own_status);
}

static int manager_main(manager *m)
{
    run *r = m->r;
    const mpmap_config *cfg = r->config;
    char *buffer = NULL;
    size_t capacity = 0;
    int rc = MPMAP_OK;

    flush_in_order(m); /* restored ranges at the start of the task range */
    for (int w = 1; w <= m->workers && rc == MPMAP_OK; w++)
        rc = assign(m, w); /* one each; workers ask for more */

    backoff idle = { 0 };
    double start = MPI_Wtime();
    m->last_sync = m->last_progress = start;
    while (rc == MPMAP_OK) {
        int handled = 0;
        rc = manager_poll(m, &buffer, &capacity, &handled);
        if (rc != MPMAP_OK)
            break;
        if (interrupted(r))
            manager_stop(m, MPMAP_EINTERRUPTED, -1, "interrupted");
        double t = MPI_Wtime();
        if (m->ckpt && t - m->last_sync >= cfg->checkpoint_interval) {
            if (mpmap_ckpt_sync(m->ckpt) != MPMAP_OK)
                manager_stop(m, MPMAP_EIO, -1, "cannot sync the checkpoint");
            m->last_sync = t;
        }
        if (r->job->progress && t - m->last_progress >= cfg->progress_interval) {
            progress_report(m, t - start);
            m->last_progress = t;
        }
        if (own_active(m)) {
            if (m->stopping == MPMAP_EINTERRUPTED) {
                own_flush(m, m->own_pos); /* keep what this rank finished */
                m->own_index = m->nown;
                continue;
            }
            rc = own_slice(m);
            idle.rounds = 0;
            continue;
        }
        if (m->computes && !m->own_exhausted && !m->stopping) {
            free(m->own);
            m->nown = next_chunk(m, 0, &m->own);
            m->own_index = 0;
            if (m->nown > 0) {
                rc = own_start_range(m);
                continue;
            }
            m->own_exhausted = true;
        }
        if (workers_finished(m))
            break;
        if (handled)
            idle.rounds = 0;
        else
            backoff_pause(&idle);
    }
    free(buffer);
    if (m->ckpt && mpmap_ckpt_sync(m->ckpt) != MPMAP_OK && rc == MPMAP_OK)
        manager_stop(m, MPMAP_EIO, -1, "cannot sync the checkpoint");
    if (r->job->progress)
        progress_report(m, MPI_Wtime() - start);
    return rc;
}

/* ---- entry point -------------------------------------------------------- */

typedef struct final_state {
    int32_t status;
    int32_t cancelled;
    int64_t failed_task;
    int64_t done;
    int64_t restored;
    int64_t failed;
    int64_t chunks;
    char message[MPMAP_MESSAGE_MAX + 64];
} final_state;

void mpmap_config_init(mpmap_config *config)
{
    *config = (mpmap_config){ .schedule = MPMAP_SCHEDULE_GUIDED,
                              .chunk = 1,
                              .prefetch = 2,
                              .manager_computes = 1,
                              .on_error = MPMAP_ON_ERROR_STOP,
                              .checkpoint_interval = 2.0,
                              .progress_interval = 1.0 };
}

/* Checks what rank 0 alone decides; the verdict is shared with every rank. */
static int validate_on_root(const mpmap_config *cfg, const mpmap_job *job, char *err, size_t errlen)
{
    if (job->ntasks < 0) {
        snprintf(err, errlen, "ntasks must be >= 0 (got %lld)", (long long)job->ntasks);
        return MPMAP_EINVAL;
    }
    if (job->record_size > (size_t)1 << 30) {
        snprintf(err, errlen, "record_size %zu is too large", job->record_size);
        return MPMAP_EINVAL;
    }
    if (cfg->chunk < 0 || cfg->max_chunk < 0) {
        snprintf(err, errlen, "chunk sizes must be >= 1");
        return MPMAP_EINVAL;
    }
    if (cfg->prefetch < 1 || cfg->prefetch > 64) {
        snprintf(err, errlen, "prefetch must be between 1 and 64 (got %d)", cfg->prefetch);
        return MPMAP_EINVAL;
    }
    mpmap_schedule check;
    if (mpmap_schedule_from_name(mpmap_schedule_name(cfg->schedule), &check) != MPMAP_OK) {
        snprintf(err, errlen, "unknown schedule %d", (int)cfg->schedule);
        return MPMAP_EINVAL;
    }
    if (cfg->on_error != MPMAP_ON_ERROR_STOP && cfg->on_error != MPMAP_ON_ERROR_CONTINUE) {
        snprintf(err, errlen, "unknown on_error setting %d", (int)cfg->on_error);
        return MPMAP_EINVAL;
    }
    if (mpmap_reduce_check(job->reduce_op, job->reduce_type, job->record_size, job->reduce_fn) !=
        MPMAP_OK) {
        snprintf(err, errlen, "the reduction does not fit the record layout");
        return MPMAP_EINVAL;
    }
    if (job->reduce_op != MPMAP_REDUCE_NONE && !job->reduction) {
        snprintf(err, errlen, "a reduction needs job.reduction");
        return MPMAP_EINVAL;
    }
    if (cfg->resume && !cfg->checkpoint_path) {
        snprintf(err, errlen, "resume needs a checkpoint path");
        return MPMAP_EINVAL;
    }
    return MPMAP_OK;
}

static void fill_report(mpmap_report *report, const final_state *f, const run *r, double start_unix)
{
    if (!report)
        return;
    *report = (mpmap_report){ .status = f->status,
                              .tasks_total = r->params.ntasks,
                              .tasks_done = f->done,
                              .tasks_restored = f->restored,
                              .tasks_failed = f->failed,
                              .chunks = f->chunks,
                              .failed_task = f->failed_task,
                              .wall_time = MPI_Wtime() - r->t0,
                              .start_time = start_unix,
                              .ranks = r->size };
    snprintf(report->message, sizeof report->message, "%s", f->message);
}

int mpmap_run(MPI_Comm comm, const mpmap_config *config, const mpmap_job *job, mpmap_report *report)
{
    mpmap_config defaults;
    if (!config) {
        mpmap_config_init(&defaults);
        config = &defaults;
    }
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    double start_unix = (double)wall.tv_sec + 1e-9 * (double)wall.tv_nsec;

    run r = { .config = config, .job = job };
    if (MPI_Comm_dup(comm, &r.comm) != MPI_SUCCESS)
        return MPMAP_EMPI;
    MPI_Comm_rank(r.comm, &r.rank);
    MPI_Comm_size(r.comm, &r.size);
    r.t0 = MPI_Wtime();

    /* Rank 0's view of the job is authoritative; every rank checks it can
     * follow it, and all agree on one verdict before any work starts. */
    final_state f = { .failed_task = -1 };
    int local = MPMAP_OK;
    char err[MPMAP_MESSAGE_MAX + 64] = "";
    if (r.rank == 0) {
        local = job ? validate_on_root(config, job, err, sizeof err) : MPMAP_EINVAL;
        if (job && local == MPMAP_OK)
            r.params = (run_params){ job->ntasks, (int64_t)job->record_size, config->prefetch,
                                     (int32_t)config->on_error, config->checkpoint_interval };
    }
    MPI_Bcast(&r.params, (int)sizeof r.params, MPI_BYTE, 0, r.comm);
    if (r.rank != 0 && local == MPMAP_OK) {
        if (!job || !job->map) {
            local = MPMAP_EINVAL;
            snprintf(err, sizeof err, "rank %d has no map function", r.rank);
        } else if ((int64_t)job->record_size != r.params.record_size) {
            local = MPMAP_EINVAL;
            snprintf(err, sizeof err, "rank %d has record_size %zu, rank 0 has %lld", r.rank,
                     job->record_size, (long long)r.params.record_size);
        }
    } else if (r.rank == 0 && local == MPMAP_OK && !job->map) {
        local = MPMAP_EINVAL;
        snprintf(err, sizeof err, "no map function");
    }

    manager m = { 0 };
    if (r.rank == 0 && local == MPMAP_OK)
        local = manager_setup(&m, &r, err, sizeof err);

    struct { int code; int rank; } mine = { local, r.rank }, worst;
    MPI_Allreduce(&mine, &worst, 1, MPI_2INT, MPI_MINLOC, r.comm);
    if (worst.code != MPMAP_OK) {
        MPI_Bcast(err, (int)sizeof err, MPI_CHAR, worst.rank, r.comm);
        f.status = worst.code;
        snprintf(f.message, sizeof f.message, "%s", err);
        if (r.rank == 0)
            manager_teardown(&m);
        MPI_Comm_free(&r.comm);
        fill_report(report, &f, &r, start_unix);
        return f.status;
    }

    size_t rs = (size_t)r.params.record_size;
    size_t final_bytes = sizeof f + rs;
    char *final_buffer = calloc(1, final_bytes);
    if (!final_buffer)
        MPI_Abort(r.comm, 1); /* cannot take part in the protocol any more */

    int rc;
    bool worker_saw_cancel = false;
    if (r.rank == 0) {
        rc = manager_main(&m);
        f.status = rc != MPMAP_OK ? rc : m.stopping;
        f.cancelled = m.cancel_sent;
        f.failed_task = m.failed_task;
        f.done = m.done + m.restored_tasks;
        f.restored = m.restored_tasks;
        f.failed = m.failed;
        f.chunks = m.chunks;
        if (f.status == MPMAP_EINTERRUPTED)
            snprintf(f.message, sizeof f.message, "interrupted: %lld/%lld tasks done",
                     (long long)f.done, (long long)r.params.ntasks);
        else if (f.status != MPMAP_OK && m.message[0])
            snprintf(f.message, sizeof f.message, "%s", m.message);
        else if (f.status != MPMAP_OK)
            snprintf(f.message, sizeof f.message, "%s", mpmap_strerror(f.status));
        memcpy(final_buffer, &f, sizeof f);
        memcpy(final_buffer + sizeof f, m.reduction, rs);
    } else {
        rc = worker_main(&r);
        worker_saw_cancel = (rc == 1);
        if (rc == 1)
            rc = MPMAP_OK;
    }

    MPI_Request req;
    MPI_Ibcast(final_buffer, (int)final_bytes, MPI_BYTE, 0, r.comm, &req);
    wait_request(&req);
    memcpy(&f, final_buffer, sizeof f);
    if (r.rank != 0 && f.cancelled && !worker_saw_cancel) {
        /* The manager sent a CANCEL this worker never looked at: take it, so
         * nothing is left unmatched on the communicator. */
        char dummy;
        MPI_Recv(&dummy, 1, MPI_BYTE, 0, TAG_CANCEL, r.comm, MPI_STATUS_IGNORE);
    }
    if (r.rank == 0) {
        sends_finish(&m.sends);
        manager_teardown(&m);
    }
    if (job->reduce_op != MPMAP_REDUCE_NONE && job->reduction && rs > 0)
        memcpy(job->reduction, final_buffer + sizeof f, rs);
    free(final_buffer);
    if (rc != MPMAP_OK && f.status == MPMAP_OK)
        f.status = rc;
    MPI_Comm_free(&r.comm);
    fill_report(report, &f, &r, start_unix);
    return f.status;
}
