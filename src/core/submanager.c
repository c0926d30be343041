/*
 * The sub-manager role (see submanager.h).
 *
 * Bookkeeping: every chunk rank 0 sends ("super-chunk") must come back
 * COMPLETE exactly once, when all its tasks were either returned by a
 * worker or dropped (a failure or an interrupt leaves the rest for
 * --resume). Its tasks first sit in the pool, then in a worker's chunk; a
 * worker's pieces of a chunk arrive in order, ending with the COMPLETE
 * one, so each worker's chunks are tracked oldest first.
 */
#include "core/submanager.h"

#include "core/protocol.h"
#include "core/transport.h"
#include "schedule.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Results wait at most this long, or until BATCH_BYTES have gathered,
 * before they go to rank 0 in one message; requests, completions and
 * failures go at once. Short next to a task, long next to a message. */
#define BATCH_SECONDS 0.002
#define BATCH_BYTES ((size_t)256 << 10)
/* Worker messages handled per worker in one poll before the loop turns to
 * rank 0's messages again (see manager_poll in manager.c). */
#define POLL_PER_WORKER 4

enum { WAIT_NONE = 0, WAIT_AHEAD, WAIT_IDLE };

typedef struct span {
    int64_t begin, end;
    size_t super; /* the super-chunk it belongs to */
} span;

typedef struct local_worker {
    int rank;
    span *chunks; /* handed out, not COMPLETE yet, oldest first */
    size_t nchunks, capacity;
    int64_t returned; /* tasks of chunks[0] returned so far */
    int waiting;      /* a request to answer: WAIT_* */
    bool stopped;     /* told STOP, or cancelled */
    bool final_due;   /* sync_stores: its FINAL message has not come yet */
} local_worker;

typedef struct submanager {
    mpmap__run *r;
    size_t rs;
    local_worker *workers;
    int nworkers;
    int *index_of;        /* rank -> index in workers, -1 */
    int64_t *outstanding; /* per super-chunk: tasks neither returned nor dropped */
    size_t nsupers, supers_capacity, open_supers;
    span *pool; /* tasks not handed out yet, in arrival order */
    size_t pool_head, pool_count, pool_capacity;
    int64_t pool_tasks;
    int up_requests; /* ASSIGNs still to come from rank 0 */
    bool up_stopped; /* rank 0 has no more */
    bool cancelled;  /* rank 0's CANCEL arrived (and was passed on) */
    bool halted;     /* cancelled or interrupted: nothing more goes out */
    double seconds_per_task, asked_at, reply_latency;
    char *batch; /* entries for rank 0 not sent yet */
    size_t batch_bytes, batch_capacity;
    double batch_since;
    mpmap__sends sends;
} submanager;

static double run_clock(const submanager *s) { return MPI_Wtime() - s->r->t0; }

/* ---- the batch to rank 0 ------------------------------------------------ */

static int batch_append(submanager *s, const void *entry, size_t bytes)
{
    if (s->batch_bytes + bytes > s->batch_capacity) {
        size_t cap = s->batch_capacity ? 2 * s->batch_capacity : 16384;
        while (cap < s->batch_bytes + bytes)
            cap *= 2;
        char *grown = realloc(s->batch, cap);
        if (!grown)
            return MPMAP_ENOMEM;
        s->batch = grown;
        s->batch_capacity = cap;
    }
    if (s->batch_bytes == 0)
        s->batch_since = mpmap__now();
    memcpy(s->batch + s->batch_bytes, entry, bytes);
    s->batch_bytes += bytes;
    return MPMAP_OK;
}

/* Sends the batch; the send list owns its buffer from now on. */
static int batch_flush(submanager *s)
{
    if (s->batch_bytes == 0)
        return MPMAP_OK;
    char *message = s->batch;
    int bytes = (int)s->batch_bytes;
    s->batch = NULL;
    s->batch_bytes = s->batch_capacity = 0;
    return mpmap__sends_post(&s->sends, message, bytes, 0, MPMAP__TAG_RESULT, s->r->comm);
}

/* A bare entry of the sub-manager's own (COMPLETE, REQUEST, INTERRUPTED),
 * sent at once with whatever results are waiting. */
static int send_control(submanager *s, int32_t flags)
{
    mpmap__result_header h = { .failed_task = -1, .flags = flags, .rank = s->r->rank };
    h.start = h.finish = run_clock(s);
    int rc = batch_append(s, &h, sizeof h);
    return rc == MPMAP_OK ? batch_flush(s) : rc;
}

/* ---- rank 0's side ------------------------------------------------------ */

static bool more_may_come(const submanager *s)
{
    return !s->halted && !(s->up_stopped && s->up_requests == 0);
}

/* Asks rank 0 for the next super-chunk just early enough that it arrives
 * before the node runs dry: when what the pool holds would last the node's
 * workers less than twice rank 0's answer time (at least 2 ms). One
 * request at a time, as a worker: rank 0 is done with a rank once it told
 * it STOP and has every chunk back, and would not answer a second one. */
static int maybe_request(submanager *s, int32_t extra_flags)
{
    bool ask = false;
    if (!s->halted && !s->up_stopped && s->up_requests == 0) {
        double left = s->seconds_per_task * (double)s->pool_tasks / s->nworkers;
        double threshold = 2 * s->reply_latency > 0.002 ? 2 * s->reply_latency : 0.002;
        ask = s->pool_tasks == 0 || (s->seconds_per_task > 0 && left <= threshold);
    }
    if (!ask)
        return extra_flags ? send_control(s, extra_flags) : MPMAP_OK;
    s->up_requests++;
    s->asked_at = mpmap__now();
    /* Ahead (rank 0 may hold it back until a COMPLETE) only while a
     * COMPLETE will follow and no worker here is idle. */
    bool ahead = s->open_supers > 0;
    for (int i = 0; i < s->nworkers && ahead; i++)
        ahead = s->workers[i].waiting != WAIT_IDLE;
    int32_t flags = MPMAP__RESULT_REQUEST | (ahead ? MPMAP__RESULT_AHEAD : 0);
    return send_control(s, flags | extra_flags);
}

/* Super-chunk k lost `tasks` (returned or dropped); tells rank 0 when it is
 * complete. */
static int super_account(submanager *s, size_t k, int64_t tasks)
{
    if (tasks == 0)
        return MPMAP_OK;
    s->outstanding[k] -= tasks;
    if (s->outstanding[k] > 0)
        return MPMAP_OK;
    s->open_supers--;
    return maybe_request(s, MPMAP__RESULT_COMPLETE);
}

static int pool_push(submanager *s, span x)
{
    if (s->pool_head + s->pool_count == s->pool_capacity) {
        if (s->pool_count > 0) /* the pool may not exist yet: memmove(NULL) is not allowed */
            memmove(s->pool, s->pool + s->pool_head, s->pool_count * sizeof *s->pool);
        s->pool_head = 0;
        if (s->pool_count == s->pool_capacity) {
            size_t cap = s->pool_capacity ? 2 * s->pool_capacity : 16;
            span *grown = realloc(s->pool, cap * sizeof *grown);
            if (!grown)
                return MPMAP_ENOMEM;
            s->pool = grown;
            s->pool_capacity = cap;
        }
    }
    s->pool[s->pool_head + s->pool_count++] = x;
    s->pool_tasks += x.end - x.begin;
    return MPMAP_OK;
}

/* Drops what the pool holds (the run stops: it stays for --resume). */
static int pool_drop(submanager *s)
{
    int rc = MPMAP_OK;
    while (s->pool_count > 0 && rc == MPMAP_OK) {
        span x = s->pool[s->pool_head++];
        s->pool_count--;
        s->pool_tasks -= x.end - x.begin;
        rc = super_account(s, x.super, x.end - x.begin);
    }
    return rc;
}

static int take_super_chunk(submanager *s, int64_t *msg)
{
    if (s->nsupers == s->supers_capacity) {
        size_t cap = s->supers_capacity ? 2 * s->supers_capacity : 64;
        int64_t *grown = realloc(s->outstanding, cap * sizeof *grown);
        if (!grown)
            return MPMAP_ENOMEM;
        s->outstanding = grown;
        s->supers_capacity = cap;
    }
    size_t k = s->nsupers++;
    s->outstanding[k] = mpmap__assign_tasks(msg);
    s->open_supers++;
    for (int64_t i = 0; i < mpmap__assign_count(msg); i++) {
        span x = { mpmap__assign_begin(msg, i), mpmap__assign_end(msg, i), k };
        if (x.end > x.begin) {
            int rc = pool_push(s, x);
            if (rc != MPMAP_OK)
                return rc;
        }
    }
    if (s->outstanding[k] == 0) {
        s->open_supers--;
        return maybe_request(s, MPMAP__RESULT_COMPLETE);
    }
    return s->halted ? pool_drop(s) : MPMAP_OK;
}

static int cancel_workers(submanager *s)
{
    int rc = MPMAP_OK;
    for (int i = 0; i < s->nworkers; i++) {
        s->workers[i].stopped = true;
        int sent = mpmap__signal_post(&s->sends, s->workers[i].rank, MPMAP__TAG_CANCEL, s->r->comm);
        if (rc == MPMAP_OK)
            rc = sent;
    }
    return rc;
}

/* Takes rank 0's answers and its CANCEL; notices an interrupt. */
static int poll_upstream(submanager *s, int *handled)
{
    for (;;) {
        void *message = NULL;
        int bytes = 0;
        int got = mpmap__try_recv_new(s->r->comm, 0, MPMAP__TAG_ASSIGN, &message, &bytes);
        if (got <= 0) {
            if (got < 0)
                return got;
            break;
        }
        (*handled)++;
        s->up_requests--;
        if (s->asked_at > 0 && s->up_requests == 0) {
            double latency = mpmap__now() - s->asked_at;
            s->reply_latency =
                s->reply_latency > 0 ? 0.7 * s->reply_latency + 0.3 * latency : latency;
        }
        int rc = MPMAP_OK;
        if (mpmap__assign_is_stop(message))
            s->up_stopped = true;
        else
            rc = take_super_chunk(s, message);
        free(message);
        if (rc != MPMAP_OK)
            return rc;
    }
    if (!s->cancelled) {
        int got = mpmap__signal_try_take(s->r->comm, 0, MPMAP__TAG_CANCEL);
        if (got < 0)
            return got;
        if (got) {
            (*handled)++;
            s->cancelled = s->halted = true;
            int rc = cancel_workers(s);
            if (rc == MPMAP_OK)
                rc = pool_drop(s);
            if (rc != MPMAP_OK)
                return rc;
        }
    }
    if (!s->halted && mpmap__interrupted(s->r)) {
        /* Rank 0 hears of it and cancels everyone; meanwhile nothing more
         * goes out from here. */
        s->halted = true;
        int rc = send_control(s, MPMAP__RESULT_INTERRUPTED);
        if (rc == MPMAP_OK)
            rc = pool_drop(s);
        if (rc != MPMAP_OK)
            return rc;
    }
    return MPMAP_OK;
}

/* ---- the node's side ---------------------------------------------------- */

static int send_assign(submanager *s, local_worker *w, const span *x)
{
    mpmap_range range = { x ? x->begin : 0, x ? x->end : 0 };
    int64_t *msg = mpmap__assign_encode(&range, x ? 1 : 0);
    if (!msg)
        return MPMAP_ENOMEM;
    w->waiting = WAIT_NONE;
    if (!x) {
        w->stopped = true;
    } else {
        if (w->nchunks == w->capacity) {
            size_t cap = w->capacity ? 2 * w->capacity : 4;
            span *grown = realloc(w->chunks, cap * sizeof *grown);
            if (!grown) {
                free(msg);
                return MPMAP_ENOMEM;
            }
            w->chunks = grown;
            w->capacity = cap;
        }
        w->chunks[w->nchunks++] = *x;
    }
    return mpmap__sends_post(&s->sends, msg, (int)(mpmap__assign_length(x ? 1 : 0) * sizeof *msg),
                             w->rank, MPMAP__TAG_ASSIGN, s->r->comm);
}

/* The next worker chunk from the front of the pool: dynamic keeps its
 * fixed chunk, every other schedule is split guided-like (an equal share
 * of what is held per worker), within the run's chunk bounds. */
static span pool_carve(submanager *s)
{
    const mpmap__run_params *p = &s->r->params;
    span *front = &s->pool[s->pool_head];
    int64_t size = p->min_chunk;
    if (p->schedule != MPMAP_SCHEDULE_DYNAMIC)
        size = mpmap__max64(size, mpmap__ceil_div(s->pool_tasks, s->nworkers));
    if (p->max_chunk > 0)
        size = mpmap__min64(size, p->max_chunk);
    size = mpmap__min64(size, front->end - front->begin);
    span x = { front->begin, front->begin + size, front->super };
    front->begin += size;
    s->pool_tasks -= size;
    if (front->begin == front->end) {
        s->pool_head++;
        s->pool_count--;
    }
    return x;
}

/* Answers the requests it can: idle workers first; a worker that asked
 * ahead gets nothing from the last few tasks while others may run dry
 * (the same endgame as rank 0's). */
static int serve_workers(submanager *s)
{
    bool endgame = s->up_stopped && s->pool_tasks <= (int64_t)s->nworkers * s->r->params.min_chunk;
    for (int pass = WAIT_IDLE; pass >= WAIT_AHEAD; pass--)
        for (int i = 0; i < s->nworkers; i++) {
            local_worker *w = &s->workers[i];
            if (w->waiting != pass)
                continue;
            int rc = MPMAP_OK;
            if (s->pool_tasks > 0 && !s->halted) {
                if (pass == WAIT_AHEAD && endgame)
                    continue;
                span x = pool_carve(s);
                rc = send_assign(s, w, &x);
            } else if (!more_may_come(s)) {
                rc = send_assign(s, w, NULL); /* STOP */
            }
            if (rc != MPMAP_OK)
                return rc;
        }
    return MPMAP_OK;
}

/* One RESULT from a worker: pass the piece on, account for its tasks. */
static int handle_piece(submanager *s, char *buffer, int bytes, int from)
{
    mpmap__result_header h;
    const char *records;
    const int32_t *status;
    if (from < 0 || from >= s->r->size || s->index_of[from] < 0 ||
        mpmap__result_decode(buffer, bytes, s->rs, &h, &records, &status) != MPMAP_OK)
        return MPMAP_EMPI;
    local_worker *w = &s->workers[s->index_of[from]];
    int64_t n = h.end - h.begin;
    const int32_t urgent = MPMAP__RESULT_FAILED | MPMAP__RESULT_INTERRUPTED |
                           MPMAP__RESULT_TASK_ERROR | MPMAP__RESULT_STORE_FAILED;
    int rc = MPMAP_OK;
    if (n > 0 || (h.flags & (urgent | MPMAP__RESULT_SYNCED))) {
        /* Passed on as it is (rank and SYNCED included: rank 0 logs the
         * computing rank's ranges once it synced), without the flags that
         * speak of the worker's own chunks and requests. */
        mpmap__result_header *out = (mpmap__result_header *)buffer;
        out->flags &= ~(MPMAP__RESULT_COMPLETE | MPMAP__RESULT_REQUEST | MPMAP__RESULT_AHEAD |
                        MPMAP__RESULT_FINAL);
        rc = batch_append(s, buffer, (size_t)bytes);
        if (rc == MPMAP_OK && (h.flags & urgent))
            rc = batch_flush(s);
    }
    if (n > 0 && h.finish > h.start) {
        double per_task = (h.finish - h.start) / (double)n;
        s->seconds_per_task =
            s->seconds_per_task > 0 ? 0.7 * s->seconds_per_task + 0.3 * per_task : per_task;
    }
    if (rc == MPMAP_OK && (n > 0 || (h.flags & MPMAP__RESULT_COMPLETE))) {
        if (w->nchunks == 0)
            return MPMAP_EMPI; /* a piece of no chunk handed out */
        span head = w->chunks[0];
        w->returned += n;
        rc = super_account(s, head.super, n);
        if (rc == MPMAP_OK && (h.flags & MPMAP__RESULT_COMPLETE)) {
            int64_t dropped = (head.end - head.begin) - w->returned;
            memmove(w->chunks, w->chunks + 1, --w->nchunks * sizeof *w->chunks);
            w->returned = 0;
            if (w->waiting == WAIT_AHEAD)
                w->waiting = WAIT_IDLE;
            if (dropped > 0)
                rc = super_account(s, head.super, dropped);
        }
    }
    if (h.flags & MPMAP__RESULT_REQUEST)
        w->waiting = (h.flags & MPMAP__RESULT_AHEAD) ? WAIT_AHEAD : WAIT_IDLE;
    if (h.flags & MPMAP__RESULT_FINAL)
        w->final_due = false;
    return rc;
}

/* Handles the workers' messages that have arrived (probing until a miss
 * follows a miss, as manager_poll does), at most POLL_PER_WORKER each. */
static int poll_workers(submanager *s, char **buffer, size_t *capacity, int *handled)
{
    int misses = 0, count = 0;
    while (misses < 2 && count < POLL_PER_WORKER * s->nworkers) {
        int bytes = 0, from = -1;
        int got = mpmap__try_recv_into(s->r->comm, MPI_ANY_SOURCE, MPMAP__TAG_RESULT, buffer,
                                       capacity, &bytes, &from);
        if (got < 0)
            return got;
        if (got == 0) {
            misses++;
            continue;
        }
        misses = 0;
        count++;
        int rc = handle_piece(s, *buffer, bytes, from);
        if (rc != MPMAP_OK)
            return rc;
    }
    *handled += count;
    return MPMAP_OK;
}

/* ---- the loop ----------------------------------------------------------- */

static bool finished(const submanager *s)
{
    if (more_may_come(s) || s->up_requests > 0 || s->open_supers > 0)
        return false;
    for (int i = 0; i < s->nworkers; i++) {
        const local_worker *w = &s->workers[i];
        if (!w->stopped || w->nchunks > 0 || w->waiting != WAIT_NONE || w->final_due)
            return false;
    }
    return true;
}

static int setup(submanager *s, mpmap__run *r)
{
    *s = (submanager){ .r = r, .rs = (size_t)r->params.record_size, .up_requests = 1 };
    s->index_of = malloc((size_t)r->size * sizeof *s->index_of);
    s->workers = calloc((size_t)r->topo.served[r->rank], sizeof *s->workers);
    if (!s->index_of || !s->workers)
        return MPMAP_ENOMEM;
    for (int q = 0; q < r->size; q++) {
        s->index_of[q] = -1;
        if (r->topo.boss[q] == r->rank) {
            s->index_of[q] = s->nworkers;
            /* Every worker is owed its first chunk without asking. */
            s->workers[s->nworkers++] = (local_worker){ .rank = q,
                                                        .waiting = WAIT_IDLE,
                                                        .final_due = r->params.sync_stores != 0 };
        }
    }
    return s->nworkers > 0 ? MPMAP_OK : MPMAP_EINVAL;
}

static void teardown(submanager *s)
{
    for (int i = 0; s->workers && i < s->nworkers; i++)
        free(s->workers[i].chunks);
    free(s->workers);
    free(s->index_of);
    free(s->outstanding);
    free(s->pool);
    free(s->batch);
}

int mpmap__submanager_main(mpmap__run *r)
{
    submanager s;
    int rc = setup(&s, r);
    char *buffer = NULL;
    size_t capacity = 0;
    mpmap__backoff idle = { 0 };
    while (rc == MPMAP_OK) {
        int handled = 0;
        rc = poll_upstream(&s, &handled);
        if (rc == MPMAP_OK)
            rc = poll_workers(&s, &buffer, &capacity, &handled);
        if (rc == MPMAP_OK)
            rc = serve_workers(&s);
        if (rc == MPMAP_OK)
            rc = maybe_request(&s, 0);
        if (rc == MPMAP_OK && s.batch_bytes > 0 &&
            (s.batch_bytes >= BATCH_BYTES || mpmap__now() - s.batch_since >= BATCH_SECONDS ||
             !more_may_come(&s)))
            rc = batch_flush(&s);
        if (rc != MPMAP_OK || finished(&s))
            break;
        mpmap__sends_reap(&s.sends);
        if (handled)
            idle.rounds = 0;
        else
            mpmap__backoff_pause(&idle);
    }
    if (rc == MPMAP_OK)
        rc = batch_flush(&s);
    /* Its workers' FINALs are passed on as plain entries; this is its own. */
    if (rc == MPMAP_OK && r->params.sync_stores)
        rc = send_control(&s, MPMAP__RESULT_FINAL);
    int sent = mpmap__sends_finish(&s.sends);
    free(buffer);
    bool cancelled = s.cancelled;
    teardown(&s);
    if (rc == MPMAP_OK)
        rc = sent;
    return rc != MPMAP_OK ? rc : (cancelled ? 1 : 0);
}

void mpmap__submanager_late_cancel(mpmap__run *r)
{
    mpmap__sends sends = { 0 };
    for (int q = 0; q < r->size; q++)
        if (r->topo.boss[q] == r->rank)
            mpmap__signal_post(&sends, q, MPMAP__TAG_CANCEL, r->comm);
    mpmap__sends_finish(&sends);
}
