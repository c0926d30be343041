/*
 * The worker role: receive chunks, run them, stream the results back.
 *
 * Demand-driven hand-out: every worker gets one chunk at the start and then
 * asks for the next one while it still has work (see worker_wants_chunk), so
 * it never waits for the round trip, yet the size of that next chunk is
 * decided as late as possible. A worker has at most one request in flight;
 * it is finished when it holds no chunk, has no request in flight, and was
 * told STOP (or to cancel). "The manager" is the rank it was given
 * (run.boss): rank 0, or under node dispatch its node's sub-manager, which
 * speaks the same protocol.
 */
#include "core/worker.h"

#include "core/protocol.h"
#include "core/transport.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- running the user's map function ------------------------------------ */

int64_t mpmap__run_map(const mpmap_job *job, int64_t begin, int64_t end, void *records,
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

int mpmap__store_runs(const mpmap_job *job, int64_t begin, int64_t end, const char *records,
                      size_t record_size, const int32_t *status, char *message)
{
    int64_t t = begin;
    while (t < end) {
        if (status && status[t - begin] != 0) {
            t++; /* a failed task's record is never stored */
            continue;
        }
        int64_t run_end = status ? t + 1 : end;
        while (run_end < end && status[run_end - begin] == 0)
            run_end++;
        message[0] = '\0';
        if (job->store(t, run_end, records + (size_t)(t - begin) * record_size, message,
                       job->context) != 0) {
            message[MPMAP_MESSAGE_MAX - 1] = '\0';
            if (message[0] == '\0')
                snprintf(message, MPMAP_MESSAGE_MAX, "storing tasks %lld..%lld failed",
                         (long long)t, (long long)run_end - 1);
            return MPMAP_ECALLBACK;
        }
        t = run_end;
    }
    return MPMAP_OK;
}

int mpmap__store_sync(const mpmap_job *job, char *message)
{
    message[0] = '\0';
    if (job->store_sync(message, job->context) == 0)
        return MPMAP_OK;
    message[MPMAP_MESSAGE_MAX - 1] = '\0';
    if (message[0] == '\0')
        snprintf(message, MPMAP_MESSAGE_MAX, "making the stored results durable failed");
    return MPMAP_ECALLBACK;
}

int64_t mpmap__next_slice_length(int64_t length, double elapsed, double target)
{
    if (elapsed < target / 4 && length < (INT64_MAX / 2))
        return length * 2;
    if (elapsed > target * 2 && length > 1)
        return length / 2;
    return length;
}

/* ---- worker ------------------------------------------------------------- */

typedef struct assignment {
    int64_t *ranges; /* the ASSIGN message as received */
} assignment;

typedef struct worker {
    mpmap__run *r;
    assignment *queue;
    size_t queued, head, capacity;
    int requests;            /* ASSIGN messages still to come: the initial one
                                counts as requested, then one per request */
    bool stopped;            /* the manager has no more chunks */
    bool cancelled;          /* the manager asked to stop early */
    bool halted;             /* stop computing: cancelled or interrupted */
    double seconds_per_task; /* running estimate; 0 until measured */
    double asked_at;         /* when the request in flight was sent */
    double reply_latency;    /* running estimate of request -> answer time */
    int64_t current_left;    /* tasks left in the assignment being computed */
    bool store_failed;       /* job.store failed: the assignment ended with it */
    bool unsynced;           /* a range was reported since the last SYNCED piece */
    double last_sync;        /* when job.store_sync last ran (mpmap__now) */
    mpmap__sends sends;
} worker;

/* Queues an assignment (taking ownership of its ranges). */
static int worker_enqueue(worker *w, int64_t *ranges)
{
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
    return MPMAP_OK;
}

/* Receives whatever the manager has sent, without blocking. */
static int worker_poll(worker *w)
{
    for (;;) {
        void *message = NULL;
        int bytes = 0;
        int got = mpmap__try_recv_new(w->r->comm, w->r->boss, MPMAP__TAG_ASSIGN, &message, &bytes);
        if (got < 0)
            return got;
        if (got == 0)
            break;
        int64_t *ranges = message;
        w->requests--;
        if (w->asked_at > 0) {
            /* Rank 0 answers between slices of its own work, so an answer can
             * take as long as one of its tasks: learn how long it takes. */
            double latency = mpmap__now() - w->asked_at;
            w->reply_latency =
                w->reply_latency > 0 ? 0.7 * w->reply_latency + 0.3 * latency : latency;
            w->asked_at = 0;
        }
        if (mpmap__assign_is_stop(ranges)) {
            w->stopped = true;
            free(ranges);
            continue;
        }
        int rc = worker_enqueue(w, ranges);
        if (rc != MPMAP_OK)
            return rc;
    }
    if (!w->cancelled) {
        int got = mpmap__signal_try_take(w->r->comm, w->r->boss, MPMAP__TAG_CANCEL);
        if (got < 0)
            return got;
        if (got) {
            w->cancelled = true;
            w->halted = true;
        }
    }
    if (mpmap__interrupted(w->r))
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
        left += mpmap__assign_tasks(w->queue[(w->head + i) % w->capacity].ranges);
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
    mpmap__result_header *h = calloc(1, sizeof *h);
    if (!h)
        return MPMAP_ENOMEM;
    h->flags = MPMAP__RESULT_REQUEST | (ahead ? MPMAP__RESULT_AHEAD : 0);
    h->rank = w->r->rank;
    w->requests++;
    w->asked_at = mpmap__now();
    return mpmap__sends_post(&w->sends, h, (int)sizeof *h, w->r->boss, MPMAP__TAG_RESULT,
                             w->r->comm);
}

/* A result message under construction: header, records, statuses. */
typedef struct piece {
    char *buffer;
    int64_t begin;  /* first task of the piece */
    int64_t filled; /* tasks written so far */
    int64_t room;   /* tasks the buffer holds */
    bool has_status;
    double start;
} piece;

static char *piece_records(piece *p) { return mpmap__result_records(p->buffer); }
static int32_t *piece_status(piece *p, size_t record_size)
{
    return mpmap__result_status_area(p->buffer, p->room, record_size);
}

static int piece_open(piece *p, int64_t begin, int64_t room, size_t record_size, double start)
{
    p->buffer = malloc(mpmap__result_capacity(room, record_size));
    if (!p->buffer)
        return MPMAP_ENOMEM;
    memset(p->buffer, 0, sizeof(mpmap__result_header));
    p->begin = begin;
    p->filled = 0;
    p->room = room;
    p->has_status = false;
    p->start = start;
    return MPMAP_OK;
}

/*
 * Whether the piece about to be sent (flags) should make this rank's stored
 * ranges durable first (sync_stores). Rank 0 logs a rank's ranges in the
 * checkpoint only once a piece says they are durable, so a sync is due
 * every flush_interval seconds (the checkpoint's own cadence) and when the
 * rank stops early (what it did is kept). Otherwise the ranges wait for
 * the next sync, however many pieces that takes, at the latest the one
 * before the worker's FINAL message (worker_final).
 */
static bool sync_due(const worker *w, const piece *p, int32_t flags)
{
    if (w->store_failed || (!w->unsynced && p->filled == 0))
        return false; /* after a failure the rank reports nothing more as durable */
    if (w->halted || (flags & (MPMAP__RESULT_INTERRUPTED | MPMAP__RESULT_FAILED)))
        return true;
    return mpmap__now() - w->last_sync >= w->r->params.flush_interval;
}

/* Sends the first p->filled tasks of the piece. Records are followed by
 * the statuses only when some task failed, so the common case carries none.
 * A piece that completes an assignment also carries the request for the
 * next chunk when one is due, saving a message. In store mode the records
 * are stored first and, when due, made durable (the piece is then flagged
 * SYNCED). */
static int piece_send(worker *w, piece *p, int32_t flags, const mpmap_task_error *err)
{
    const mpmap_job *job = w->r->job;
    size_t rs = (size_t)w->r->params.map_record_size;
    char stored[MPMAP_MESSAGE_MAX]; /* set when the store or its sync fails */
    int store_rc = MPMAP_OK;
    if (job->store && p->filled > 0)
        store_rc = mpmap__store_runs(job, p->begin, p->begin + p->filled, piece_records(p), rs,
                                     p->has_status ? piece_status(p, rs) : NULL, stored);
    if (store_rc == MPMAP_OK && w->r->params.sync_stores && sync_due(w, p, flags)) {
        store_rc = mpmap__store_sync(job, stored);
        if (store_rc == MPMAP_OK) {
            flags |= MPMAP__RESULT_SYNCED;
            w->unsynced = false;
            w->last_sync = mpmap__now();
        }
    } else if (p->filled > 0) {
        w->unsynced = true;
    }
    if (store_rc != MPMAP_OK) {
        /* Not stored (or not durable), so not done: the piece reports no
         * task, ends the assignment, and the manager stops the run. */
        w->halted = true;
        w->store_failed = true;
        p->filled = 0;
        p->has_status = false;
        flags = MPMAP__RESULT_COMPLETE | MPMAP__RESULT_STORE_FAILED;
        err = NULL;
    }
    bool just_failed = (flags & MPMAP__RESULT_STORE_FAILED) != 0;
    if ((flags & MPMAP__RESULT_COMPLETE) && worker_wants_chunk(w, false)) {
        flags |= MPMAP__RESULT_REQUEST | (w->queued > 0 ? MPMAP__RESULT_AHEAD : 0);
        w->requests++;
        w->asked_at = mpmap__now();
    }
    mpmap__result_header *h = (mpmap__result_header *)p->buffer;
    h->begin = p->begin;
    h->end = p->begin + p->filled;
    h->failed_task = err ? err->task : -1;
    h->start = p->start;
    h->finish = MPI_Wtime() - w->r->t0;
    h->flags = flags | (p->has_status ? MPMAP__RESULT_HAS_STATUS : 0);
    h->error_code = err ? err->code : 0;
    h->rank = w->r->rank;
    if (err)
        snprintf(h->message, sizeof h->message, "%s", err->message);
    else if (just_failed)
        snprintf(h->message, sizeof h->message, "%s", stored);
    size_t bytes = job->store
                       ? mpmap__result_pack_stored(p->buffer, p->filled, p->room, rs, p->has_status)
                       : mpmap__result_pack(p->buffer, p->filled, p->room, rs, p->has_status);
    char *buffer = p->buffer;
    p->buffer = NULL;
    return mpmap__sends_post(&w->sends, buffer, (int)bytes, w->r->boss, MPMAP__TAG_RESULT,
                             w->r->comm);
}

/* Computes one assignment, streaming its results back in pieces. */
static int worker_run_assignment(worker *w, const int64_t *ranges, int64_t *slice_len)
{
    mpmap__run *r = w->r;
    const mpmap_job *job = r->job;
    size_t rs = (size_t)r->params.map_record_size;
    int64_t nranges = mpmap__assign_count(ranges);
    w->current_left = mpmap__assign_tasks(ranges);
    for (int64_t k = 0; k < nranges; k++) {
        int64_t b = mpmap__assign_begin(ranges, k), e = mpmap__assign_end(ranges, k);
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
            double t = mpmap__now();
            mpmap_task_error err;
            int64_t ok = mpmap__run_map(job, pos, slice_end,
                                        piece_records(&p) + (size_t)(pos - p.begin) * rs, &err);
            double elapsed = mpmap__now() - t;
            if (ok > 0) {
                double per_task = elapsed / (double)ok;
                w->seconds_per_task =
                    w->seconds_per_task > 0 ? 0.7 * w->seconds_per_task + 0.3 * per_task : per_task;
            }
            *slice_len = mpmap__next_slice_length(*slice_len, elapsed, MPMAP__WORKER_SLICE_SECONDS);
            p.filled += ok;
            pos += ok;
            w->current_left -= ok;
            if (pos == slice_end) {
                /* A long chunk goes back in pieces, so a killed process loses
                 * at most flush_interval seconds of its work. */
                if (pos < e && MPI_Wtime() - r->t0 - p.start >= r->params.flush_interval) {
                    rc = piece_send(w, &p, 0, NULL);
                    if (rc != MPMAP_OK || w->store_failed)
                        return rc;
                    rc = piece_open(&p, pos, e - pos, rs, MPI_Wtime() - r->t0);
                    if (rc != MPMAP_OK)
                        return rc;
                }
                continue;
            }
            /* Task `pos` failed. */
            if (r->params.on_error == MPMAP_ON_ERROR_STOP) {
                w->halted = true; /* the manager will cancel everyone */
                return piece_send(w, &p, MPMAP__RESULT_COMPLETE | MPMAP__RESULT_FAILED, &err);
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
            rc = piece_send(w, &p, MPMAP__RESULT_TASK_ERROR | (done ? MPMAP__RESULT_COMPLETE : 0),
                            &err);
            if (rc != MPMAP_OK || w->store_failed)
                return rc;
            if (pos < e && piece_open(&p, pos, e - pos, rs, MPI_Wtime() - r->t0) != MPMAP_OK)
                return MPMAP_ENOMEM;
        }
        if (w->halted) {
            /* Keep what is done; the rest of the chunk is left for --resume. */
            return piece_send(w, &p, MPMAP__RESULT_COMPLETE | MPMAP__RESULT_INTERRUPTED, NULL);
        }
        if (p.buffer) {
            int rc = piece_send(w, &p, last_range ? MPMAP__RESULT_COMPLETE : 0, NULL);
            if (rc != MPMAP_OK || w->store_failed)
                return rc;
        }
    }
    return MPMAP_OK;
}

/* Under sync_stores, the worker's last message: after a last store_sync
 * when ranges it reported are not durable yet (after a failure, none). */
static int worker_final(worker *w, bool healthy)
{
    mpmap__result_header *h = calloc(1, sizeof *h);
    if (!h)
        return MPMAP_ENOMEM;
    h->flags = MPMAP__RESULT_FINAL;
    h->failed_task = -1;
    h->rank = w->r->rank;
    h->start = h->finish = MPI_Wtime() - w->r->t0;
    if (healthy && w->unsynced && !w->store_failed) {
        if (mpmap__store_sync(w->r->job, h->message) == MPMAP_OK)
            h->flags |= MPMAP__RESULT_SYNCED;
        else
            h->flags |= MPMAP__RESULT_STORE_FAILED;
        w->unsynced = false;
    }
    return mpmap__sends_post(&w->sends, h, (int)sizeof *h, w->r->boss, MPMAP__TAG_RESULT,
                             w->r->comm);
}

int mpmap__worker_main(mpmap__run *r)
{
    worker w = { .r = r, .requests = 1, .last_sync = mpmap__now() };
    int rc = MPMAP_OK;
    int64_t slice_len = 1;
    mpmap__backoff idle = { 0 };
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
                rc = piece_open(&p, mpmap__assign_begin(a.ranges, 0), 0, 0, MPI_Wtime() - r->t0);
                if (rc == MPMAP_OK)
                    rc = piece_send(&w, &p, MPMAP__RESULT_COMPLETE | MPMAP__RESULT_INTERRUPTED,
                                    NULL);
            } else {
                rc = worker_run_assignment(&w, a.ranges, &slice_len);
            }
            free(a.ranges);
            mpmap__sends_reap(&w.sends);
            idle.rounds = 0;
            continue;
        }
        if (w.requests == 0 && (w.stopped || w.halted))
            break; /* nothing held, nothing asked, nothing more to come */
        if (worker_wants_chunk(&w, false)) {
            rc = worker_request(&w, false);
            continue;
        }
        mpmap__backoff_pause(&idle);
    }
    if (r->params.sync_stores) {
        int final = worker_final(&w, rc == MPMAP_OK);
        if (rc == MPMAP_OK)
            rc = final;
    }
    int finish = mpmap__sends_finish(&w.sends);
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
