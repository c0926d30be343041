/*
 * The manager role on rank 0.
 *
 * Rank 0 computes too: it runs its own chunks in short time slices and
 * serves worker messages between slices. The manager is finished when every
 * worker was told STOP and every chunk it handed out came back COMPLETE, so
 * no message is ever left unmatched.
 *
 * Under node dispatch (topology.h) some of rank 0's workers are
 * sub-managers: a chunk for one covers all the scheduler slots of its node,
 * and its RESULT messages are batches of entries (protocol.h).
 */
#include "core/manager.h"

#include "core/manager_state.h"

#include "core/chunk_cost.h"
#include "core/delivery.h"
#include "core/transport.h"
#include "core/worker.h"
#include "schedule.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds of one manager_poll while messages keep arriving; then rank 0
 * checks interrupts and checkpoints and runs its own slice.
 * Messages: a worker has at most a few messages outstanding (its requests,
 * up to `prefetch`, and its pieces), so MANAGER_POLL_PER_WORKER per worker
 * drains any backlog that was there when the poll began; beyond that the
 * loop would only chase new arrivals, and at -n 2 with tiny tasks rank 0
 * would stop computing its own chunks (a variant without this bound
 * measured about 0.7x the chunks/s there, within a large run-to-run
 * spread; bench/results/scale.md section 10).
 * Time: not less than MANAGER_POLL_MAX, because every time a bound is hit
 * rank 0 runs at least one own task while requests wait; in the simulator
 * (bench/sim_dispatch.py, 10 ms tasks, guided) a 2 ms bound costs
 * 0.96 -> 0.89 at 4096 ranks and 0.80 -> 0.48 at 16384 ranks. */
#define MANAGER_POLL_PER_WORKER 4
#define MANAGER_POLL_MAX 0.05
/* The probe after a miss is skipped while rank 0's own slices are shorter
 * than this: the next poll is then at most that far away, and at -n 2 with
 * tiny tasks that extra probe would be paid once per own (tiny) chunk. */
#define MANAGER_POLL_AGAIN_SLICE 0.00005

/* Whether rank w gets its chunks from rank 0. */
static bool served_here(const mpmap__manager *m, int w) { return m->topo->boss[w] == 0; }

void mpmap__manager_stop(mpmap__manager *m, int code, int64_t task, const char *message)
{
    if (m->stopping == 0) {
        m->stopping = code;
        m->failed_task = task;
        snprintf(m->message, sizeof m->message, "%s", message);
        /* After a failed callback the sink is not called again. */
        if (code == MPMAP_ECALLBACK)
            mpmap__delivery_stop_sink(&m->delivery);
        if (m->r->job->stopping)
            m->r->job->stopping(code, m->r->job->context);
    }
    if (!m->cancel_sent) {
        m->cancel_sent = true;
        for (int w = 1; w < m->r->size; w++) {
            if (!served_here(m, w))
                continue;
            m->stopped[w] = true; /* no chunk goes out any more */
            mpmap__signal_post(&m->sends, w, MPMAP__TAG_CANCEL, m->r->comm);
        }
    }
}

/* Delivery reports failures; the manager decides that they stop the run. */
static void stop_on_failure(mpmap__manager *m, int rc, const char *message)
{
    if (rc != MPMAP_OK)
        mpmap__manager_stop(m, rc, -1, message);
}

/* A piece of results has arrived (from any rank, in any order). */
void mpmap__manager_accept(mpmap__manager *m, int rank, int64_t begin, int64_t end,
                           const char *records, const int32_t *status)
{
    char err[MPMAP_MESSAGE_MAX + 64];
    int rc =
        mpmap__delivery_accept(&m->delivery, rank, begin, end, records, status, err, sizeof err);
    stop_on_failure(m, rc, err);
}

void mpmap__manager_synced(mpmap__manager *m, int rank)
{
    char err[MPMAP_MESSAGE_MAX + 64];
    stop_on_failure(m, mpmap__delivery_synced(&m->delivery, rank, err, sizeof err), err);
}

void mpmap__manager_trace(mpmap__manager *m, int64_t begin, int64_t end, int rank, double start,
                          double finish)
{
    const mpmap_job *job = m->r->job;
    if (!job->trace || end <= begin)
        return;
    mpmap_trace_entry e = { begin, end, rank, start, finish };
    if (job->trace(&e, job->context) != 0)
        mpmap__manager_stop(m, MPMAP_ECALLBACK, -1, "the trace callback failed");
}

/* Next chunk for scheduler slot `slot`, as real ranges. Returns their count
 * (0 when nothing is left) and stores a malloc'd array in *out. */
size_t mpmap__manager_next_chunk(mpmap__manager *m, int slot, mpmap_range **out)
{
    *out = NULL;
    if (m->stopping)
        return 0;
    int64_t vb, ve;
    if (!mpmap__scheduler_next(&m->sched, slot, &vb, &ve))
        return 0;
    size_t n = mpmap__ranges_translate(m->pending, m->offsets, m->npending, vb, ve, NULL, 0);
    mpmap_range *ranges = malloc(n * sizeof *ranges);
    if (!ranges) {
        mpmap__manager_stop(m, MPMAP_ENOMEM, -1, "out of memory");
        return 0;
    }
    mpmap__ranges_translate(m->pending, m->offsets, m->npending, vb, ve, ranges, n);
    m->chunks++;
    *out = ranges;
    return n;
}

static int slot_of_rank(const mpmap__manager *m, int rank) { return m->topo->slot_first[rank]; }

/* The rank's chunk is complete at `finish` (its clock): the scheduler hears
 * what it cost before it picks that rank's next chunk. A sub-manager's
 * cost is its node's: each of its slots hears an equal share of the tasks
 * and of the compute time (the workers ran in parallel). */
void mpmap__manager_chunk_done(mpmap__manager *m, int rank, double finish)
{
    int k = m->topo->slot_count[rank];
    mpmap__chunk_cost *c = &m->costs[rank];
    if (k > 1 && !m->stopping) {
        for (int i = 1; i < k; i++)
            mpmap__scheduler_observe(&m->sched, slot_of_rank(m, rank) + i, c->tasks / k,
                                     c->compute / k, finish - c->last_finish);
        c->tasks /= k;
        c->compute /= k;
    }
    mpmap__chunk_cost_complete(c, &m->sched, slot_of_rank(m, rank), finish, !m->stopping);
}

/* The next chunk of every slot of rank w (one for a worker, its node's for
 * a sub-manager), as real ranges with neighbours merged. Returns their
 * count (0 when nothing is left) and a malloc'd array in *out. */
static size_t next_chunks(mpmap__manager *m, int w, mpmap_range **out)
{
    int k = m->topo->slot_count[w];
    size_t n = mpmap__manager_next_chunk(m, slot_of_rank(m, w), out);
    for (int i = 1; i < k && !m->stopping; i++) {
        mpmap_range *more;
        size_t add = mpmap__manager_next_chunk(m, slot_of_rank(m, w) + i, &more);
        if (add == 0)
            continue;
        mpmap_range *all = realloc(*out, (n + add) * sizeof *all);
        if (!all) {
            free(more);
            mpmap__manager_stop(m, MPMAP_ENOMEM, -1, "out of memory");
            break;
        }
        for (size_t j = 0; j < add; j++) {
            if (n > 0 && all[n - 1].end == more[j].begin)
                all[n - 1].end = more[j].end;
            else
                all[n++] = more[j];
        }
        *out = all;
        free(more);
    }
    if (m->stopping) {
        /* Nothing goes out once the run stops; the chunks taken are dropped. */
        free(*out);
        *out = NULL;
        return 0;
    }
    return n;
}

/* Sends worker w its next chunk, or STOP. */
static int assign(mpmap__manager *m, int w)
{
    mpmap_range *ranges;
    size_t n = next_chunks(m, w, &ranges);
    int64_t *msg = mpmap__assign_encode(ranges, n);
    free(ranges);
    if (!msg)
        return MPMAP_ENOMEM;
    if (n == 0)
        m->stopped[w] = true;
    else
        m->open_chunks[w]++;
    return mpmap__sends_post(&m->sends, msg, (int)(mpmap__assign_length(n) * sizeof *msg), w,
                             MPMAP__TAG_ASSIGN, m->r->comm);
}

/* Few enough tasks left that handing them out ahead would idle a rank at
 * the end: at most one minimum chunk per rank, shared-pool schedules only
 * (the scheduler's endgame). */
static bool pool_nearly_empty(const mpmap__manager *m)
{
    if (m->stopping)
        return false; /* the answer is STOP: give it at once */
    return mpmap__scheduler_endgame(&m->sched);
}

/* One RESULT from `source`: a worker's message, or one entry of a
 * sub-manager's batch (then h.rank names the rank that computed it). */
static int handle_entry(mpmap__manager *m, const char *buffer, int bytes, int source, bool relayed)
{
    size_t rs = (size_t)m->r->params.record_size;
    mpmap__result_header h;
    const char *records;
    const int32_t *status;
    if (mpmap__result_decode(buffer, bytes, rs, &h, &records, &status) != MPMAP_OK)
        return MPMAP_EMPI;
    int rank = relayed ? h.rank : source; /* the rank that computed (and stored) it */
    if (rank < 1 || rank >= m->r->size)
        return MPMAP_EMPI;
    mpmap__manager_accept(m, rank, h.begin, h.end, records, status);
    if (h.flags & MPMAP__RESULT_SYNCED)
        mpmap__manager_synced(m, rank);
    mpmap__manager_trace(m, h.begin, h.end, rank, h.start, h.finish);
    if ((h.flags & MPMAP__RESULT_COMPLETE) && !relayed) {
        /* Half a worker's piece time: the worker still has its prefetched
         * chunk to run while it waits for this reply. */
        double half = 0.5 * (h.finish - h.start);
        double target = 0.8 * m->own.slice_target + 0.2 * half;
        m->own.slice_target = target < MANAGER_SLICE_MIN   ? MANAGER_SLICE_MIN
                              : target > MANAGER_SLICE_MAX ? MANAGER_SLICE_MAX
                                                           : target;
    }
    if ((h.flags & MPMAP__RESULT_TASK_ERROR) && m->r->job->task_failed) {
        mpmap_task_error err = { .task = h.failed_task, .code = h.error_code };
        snprintf(err.message, sizeof err.message, "%s", h.message);
        m->r->job->task_failed(&err, m->r->job->context);
    }
    if (h.flags & MPMAP__RESULT_STORE_FAILED)
        mpmap__manager_stop(m, MPMAP_ECALLBACK, -1, h.message);
    if (h.flags & MPMAP__RESULT_FAILED) {
        char text[MPMAP_MESSAGE_MAX + 64];
        snprintf(text, sizeof text, "task %lld failed: %s", (long long)h.failed_task, h.message);
        mpmap__manager_stop(m, MPMAP_ETASK, h.failed_task, text);
    }
    if (h.flags & MPMAP__RESULT_INTERRUPTED)
        mpmap__manager_stop(m, MPMAP_EINTERRUPTED, -1, "interrupted");
    if (h.flags & MPMAP__RESULT_FINAL)
        m->final_due[source] = false; /* a sub-manager passes on no worker's FINAL */
    mpmap__chunk_cost_add(&m->costs[source], h.end - h.begin, h.finish - h.start);
    if (h.flags & MPMAP__RESULT_COMPLETE) {
        mpmap__manager_chunk_done(m, source, h.finish);
        m->open_chunks[source]--;
    }
    if ((h.flags & MPMAP__RESULT_REQUEST) && (h.flags & MPMAP__RESULT_AHEAD) &&
        pool_nearly_empty(m)) {
        /* The last few tasks go to whichever rank runs dry first, not to
         * one that asked while still busy: answer when it is idle. */
        m->deferred[source] = true;
        return MPMAP_OK;
    }
    if ((h.flags & MPMAP__RESULT_REQUEST) ||
        ((h.flags & MPMAP__RESULT_COMPLETE) && m->deferred[source])) {
        m->deferred[source] = false;
        return assign(m, source);
    }
    return MPMAP_OK;
}

static int handle_result(mpmap__manager *m, const char *buffer, int bytes, int source)
{
    if (!mpmap__topology_is_sub(m->topo, source))
        return handle_entry(m, buffer, bytes, source, false);
    size_t rs = (size_t)m->r->params.record_size;
    size_t at = 0;
    while (at < (size_t)bytes) {
        size_t size = mpmap__result_entry_size(buffer + at, (size_t)bytes - at, rs);
        if (size == 0)
            return MPMAP_EMPI;
        int rc = handle_entry(m, buffer + at, (int)size, source, true);
        if (rc != MPMAP_OK)
            return rc;
        at += size;
    }
    return MPMAP_OK;
}

/*
 * Serves every message that has arrived. Returns how many were handled.
 *
 * A probe that finds nothing is not proof that nothing is there: Open MPI's
 * MPI_Improbe runs one progress pass on a miss (ob1: opal_progress; ucx:
 * ucp_worker_progress), which pulls waiting messages in from shared memory
 * or the network, and still reports "not found". Stopping at the first
 * miss left those messages until the next poll, after rank 0's next own
 * slice (at least one task), so rank 0 answered only about one progress
 * batch (~50 messages) per own task and efficiency collapsed at 64-128
 * ranks (bench/results/scale.md). So the loop stops only at a miss that
 * follows a miss: the first miss's progress pass has then been matched
 * against, and the second pass found nothing new either. (Except while
 * rank 0's own slices are very short, see MANAGER_POLL_AGAIN_SLICE: then
 * the first miss ends the poll, as the next poll comes right after.)
 *
 * Bounded: when messages keep coming, rank 0 returns to its interrupt,
 * checkpoint and progress checks and its own slice after
 * MANAGER_POLL_PER_WORKER messages per worker or MANAGER_POLL_MAX seconds,
 * and resumes draining right after that slice. The loop never waits: an
 * idle rank 0 still sleeps in the caller's back-off.
 */
static int manager_poll(mpmap__manager *m, char **buffer, size_t *capacity, int *handled)
{
    *handled = 0;
    /* rank 0 runs an own slice right after this poll, and its slices are short */
    bool quick_return = m->computes && !m->own.exhausted && !m->stopping && m->own.last_slice > 0 &&
                        m->own.last_slice < MANAGER_POLL_AGAIN_SLICE;
    int misses_to_stop = quick_return ? 1 : 2;
    int misses = 0;
    double deadline = 0;
    for (;;) {
        int bytes = 0, source = 0;
        int got = mpmap__try_recv_into(m->r->comm, MPI_ANY_SOURCE, MPMAP__TAG_RESULT, buffer,
                                       capacity, &bytes, &source);
        if (got < 0)
            return got;
        if (got == 0) {
            if (++misses == misses_to_stop)
                return MPMAP_OK;
            continue;
        }
        misses = 0;
        int rc = handle_result(m, *buffer, bytes, source);
        if (rc != MPMAP_OK)
            return rc;
        (*handled)++;
        if (*handled >= MANAGER_POLL_PER_WORKER * (m->workers + 1))
            return MPMAP_OK;
        /* The clock is read every 64 messages only: cheap, and bounded. */
        if ((*handled & 63) == 1) {
            double now = mpmap__now();
            if (*handled == 1)
                deadline = now + MANAGER_POLL_MAX;
            else if (now >= deadline)
                return MPMAP_OK;
        }
    }
}

/* ---- the loop ----------------------------------------------------------- */

static void progress_report(mpmap__manager *m, double elapsed)
{
    const mpmap_job *job = m->r->job;
    if (!job->progress)
        return;
    const mpmap__delivery *d = &m->delivery;
    mpmap_progress_info info = { .done = d->computed + d->restored_tasks,
                                 .total = m->r->params.ntasks,
                                 .restored = d->restored_tasks,
                                 .elapsed = elapsed };
    info.rate = elapsed > 0 ? (double)d->computed / elapsed : 0;
    int64_t left = info.total - info.done;
    info.eta = info.rate > 0 ? (double)left / info.rate : -1;
    job->progress(&info, job->context);
}

static bool workers_finished(const mpmap__manager *m)
{
    for (int w = 1; w < m->r->size; w++)
        if (served_here(m, w) && (!m->stopped[w] || m->open_chunks[w] > 0 || m->final_due[w]))
            return false;
    return true;
}

static int manager_setup(mpmap__manager *m, mpmap__run *r, char *err, size_t errlen)
{
    const mpmap_config *cfg = r->config;
    size_t rs = (size_t)r->params.record_size;
    m->r = r;
    m->topo = &r->topo;
    m->workers = 0;
    for (int w = 1; w < r->size; w++)
        m->workers += served_here(m, w);
    m->computes = cfg->manager_computes || r->size == 1;
    if (mpmap__topology_number_slots(&r->topo, m->computes) != MPMAP_OK) {
        snprintf(err, errlen, "out of memory");
        return MPMAP_ENOMEM;
    }
    m->sched_workers = r->topo.slots;
    m->failed_task = -1;
    m->own.slice_len = 1;
    m->own.slice_target = MANAGER_SLICE_START;
    m->own.last_sync = mpmap__now();
    m->stopped = calloc((size_t)r->size, sizeof *m->stopped);
    m->open_chunks = calloc((size_t)r->size, sizeof *m->open_chunks);
    m->deferred = calloc((size_t)r->size, sizeof *m->deferred);
    m->costs = calloc((size_t)r->size, sizeof *m->costs);
    m->final_due = calloc((size_t)r->size, sizeof *m->final_due);
    if (!m->stopped || !m->open_chunks || !m->deferred || !m->costs || !m->final_due) {
        snprintf(err, errlen, "out of memory");
        return MPMAP_ENOMEM;
    }
    for (int w = 1; w < r->size; w++)
        m->final_due[w] = r->params.sync_stores && served_here(m, w);
    int rc =
        mpmap__delivery_init(&m->delivery, cfg, r->job, r->params.ntasks, rs, r->size, err, errlen);
    if (rc != MPMAP_OK)
        return rc;

    const mpmap_range *restored;
    size_t nrestored = mpmap__delivery_restored(&m->delivery, &restored);
    m->pending = malloc((nrestored + 1) * sizeof *m->pending);
    m->offsets = malloc((nrestored + 2) * sizeof *m->offsets);
    if (!m->pending || !m->offsets) {
        snprintf(err, errlen, "out of memory");
        return MPMAP_ENOMEM;
    }
    m->npending = mpmap__ranges_complement(restored, nrestored, r->params.ntasks, m->pending);
    int64_t total = 0;
    for (size_t i = 0; i < m->npending; i++) {
        m->offsets[i] = total;
        total += m->pending[i].end - m->pending[i].begin;
    }
    m->offsets[m->npending] = total;

    int64_t chunk, max_chunk;
    /* Chunks are bounded by the records the map writes, wherever they go. */
    mpmap__chunk_bounds(cfg->chunk, cfg->max_chunk, (size_t)r->params.map_record_size, &chunk,
                        &max_chunk);
    rc = mpmap__scheduler_init(&m->sched, cfg->schedule, total,
                               m->sched_workers > 0 ? m->sched_workers : 1, chunk, max_chunk);
    if (rc != MPMAP_OK) {
        snprintf(err, errlen, "invalid schedule settings");
        return rc;
    }
    return MPMAP_OK;
}

int mpmap__manager_create(mpmap__run *r, mpmap__manager **out, char *err, size_t errlen)
{
    mpmap__manager *m = calloc(1, sizeof *m);
    *out = m;
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return MPMAP_ENOMEM;
    }
    return manager_setup(m, r, err, errlen);
}

void mpmap__manager_destroy(mpmap__manager *m)
{
    if (!m)
        return;
    mpmap__sends_finish(&m->sends);
    mpmap__scheduler_destroy(&m->sched);
    mpmap__delivery_destroy(&m->delivery);
    free(m->pending);
    free(m->offsets);
    free(m->stopped);
    free(m->open_chunks);
    free(m->deferred);
    free(m->final_due);
    free(m->costs);
    free(m->own.ranges);
    free(m->own.buffer);
    free(m->own.status);
    free(m);
}

int mpmap__manager_main(mpmap__manager *m)
{
    mpmap__run *r = m->r;
    const mpmap_config *cfg = r->config;
    own_chunk *o = &m->own;
    char *buffer = NULL;
    size_t capacity = 0;
    int rc = MPMAP_OK;
    char err[MPMAP_MESSAGE_MAX + 64];

    /* restored ranges at the start of the task range */
    stop_on_failure(m, mpmap__delivery_flush(&m->delivery, err, sizeof err), err);
    for (int w = 1; w < r->size && rc == MPMAP_OK; w++)
        if (served_here(m, w))
            rc = assign(m, w); /* one each; workers ask for more */

    mpmap__backoff idle = { 0 };
    double start = MPI_Wtime();
    m->last_sync = m->last_progress = start;
    while (rc == MPMAP_OK) {
        int handled = 0;
        rc = manager_poll(m, &buffer, &capacity, &handled);
        if (rc != MPMAP_OK)
            break;
        if (mpmap__interrupted(r))
            mpmap__manager_stop(m, MPMAP_EINTERRUPTED, -1, "interrupted");
        double t = MPI_Wtime();
        if (t - m->last_sync >= cfg->checkpoint_interval) {
            stop_on_failure(m, mpmap__delivery_sync(&m->delivery, err, sizeof err), err);
            m->last_sync = t;
        }
        if (r->job->progress && t - m->last_progress >= cfg->progress_interval) {
            progress_report(m, t - start);
            m->last_progress = t;
        }
        if (m->own.index < m->own.count) { /* rank 0 holds work of its own */
            if (m->stopping == MPMAP_EINTERRUPTED) {
                (void)mpmap__manager_own_flush(m, o->pos); /* keep what this rank finished */
                o->index = o->count;
                continue;
            }
            rc = mpmap__manager_own_slice(m);
            idle.rounds = 0;
            continue;
        }
        if (m->computes && !o->exhausted && !m->stopping) {
            free(o->ranges);
            o->count = mpmap__manager_next_chunk(m, 0, &o->ranges);
            o->index = 0;
            if (o->count > 0) {
                rc = mpmap__manager_own_start(m);
                continue;
            }
            o->exhausted = true;
        }
        if (workers_finished(m))
            break;
        if (handled)
            idle.rounds = 0;
        else
            mpmap__backoff_pause(&idle);
    }
    free(buffer);
    /* Rank 0's own stored ranges not yet synced: made durable and logged,
     * whatever the outcome (the workers did theirs before their FINAL). */
    if (rc == MPMAP_OK)
        (void)mpmap__manager_own_sync(m, true);
    if (mpmap__delivery_sync(&m->delivery, err, sizeof err) != MPMAP_OK && rc == MPMAP_OK)
        mpmap__manager_stop(m, MPMAP_EIO, -1, err);
    if (r->job->progress)
        progress_report(m, MPI_Wtime() - start);
    return rc;
}

void mpmap__manager_outcome(const mpmap__manager *m, int rc, mpmap__final_state *f)
{
    const mpmap__delivery *d = &m->delivery;
    f->status = rc != MPMAP_OK ? rc : m->stopping;
    f->cancelled = m->cancel_sent;
    f->failed_task = m->failed_task;
    f->done = d->computed + d->restored_tasks;
    f->restored = d->restored_tasks;
    f->failed = d->failed;
    f->chunks = m->chunks;
    snprintf(f->schedule, sizeof f->schedule, "%s", mpmap__scheduler_name(&m->sched));
    snprintf(f->message, sizeof f->message, "%s", m->message);
}

const void *mpmap__manager_reduction(const mpmap__manager *m) { return m->delivery.reduction; }
