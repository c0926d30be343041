/*
 * Rank 0's own work (manager_computes): one chunk at a time, run in short
 * time slices between serving the workers, with its results handed to
 * delivery like a worker's pieces.
 */
#include "core/manager_state.h"

#include "core/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Hands rank 0's own results [flushed, upto) of the current range on:
 * at the end of a range, and every flush_interval seconds within a long
 * one, so they reach the checkpoint as soon as a worker's would. In store
 * mode they are stored first; when that fails they are not done, and the
 * run stops (MPMAP_ECALLBACK returned). With store_sync they are made
 * durable (and logged) when that is due, as a worker's are. */
int mpmap__manager_own_flush(mpmap__manager *m, int64_t upto)
{
    own_chunk *o = &m->own;
    const mpmap_job *job = m->r->job;
    size_t rs = (size_t)m->r->params.map_record_size;
    int64_t range_begin = o->ranges[o->index].begin;
    int64_t from = o->flushed;
    if (upto > from) {
        const int32_t *status = o->status ? o->status + (from - range_begin) : NULL;
        const char *records = o->buffer + (size_t)(from - range_begin) * rs;
        if (job->store) {
            char message[MPMAP_MESSAGE_MAX];
            if (mpmap__store_runs(job, from, upto, records, rs, status, message) != MPMAP_OK) {
                mpmap__manager_stop(m, MPMAP_ECALLBACK, -1, message);
                return MPMAP_ECALLBACK;
            }
        }
        double finish = MPI_Wtime() - m->r->t0;
        mpmap__manager_accept(m, 0, from, upto, records, status);
        mpmap__manager_trace(m, from, upto, 0, o->start, finish);
        o->flushed = upto;
        o->start = finish;
        o->unsynced = true;
    }
    /* A range rank 0 stops on is made durable now, like a worker's. */
    return mpmap__manager_own_sync(m, m->stopping != 0);
}

int mpmap__manager_own_sync(mpmap__manager *m, bool force)
{
    own_chunk *o = &m->own;
    if (!m->r->params.sync_stores || !o->unsynced)
        return MPMAP_OK;
    double now = mpmap__now();
    if (!force && now - o->last_sync < m->r->params.flush_interval)
        return MPMAP_OK;
    char message[MPMAP_MESSAGE_MAX];
    o->unsynced = false; /* once failed, never retried: the run stops */
    if (mpmap__store_sync(m->r->job, message) != MPMAP_OK) {
        mpmap__manager_stop(m, MPMAP_ECALLBACK, -1, message);
        return MPMAP_ECALLBACK;
    }
    o->last_sync = now;
    mpmap__manager_synced(m, 0);
    return MPMAP_OK;
}

int mpmap__manager_own_start(mpmap__manager *m)
{
    own_chunk *o = &m->own;
    size_t rs = (size_t)m->r->params.map_record_size;
    mpmap_range rg = o->ranges[o->index];
    int64_t n = rg.end - rg.begin;
    if (n > o->room) {
        free(o->buffer);
        free(o->status);
        o->buffer = malloc((size_t)n * rs + 1);
        o->status = NULL;
        if (!o->buffer)
            return MPMAP_ENOMEM;
        o->room = n;
    }
    free(o->status);
    o->status = NULL;
    o->pos = rg.begin;
    o->flushed = rg.begin;
    o->start = MPI_Wtime() - m->r->t0;
    return MPMAP_OK;
}

/* Runs one time slice of rank 0's own work. */
int mpmap__manager_own_slice(mpmap__manager *m)
{
    mpmap__run *r = m->r;
    own_chunk *o = &m->own;
    size_t rs = (size_t)r->params.map_record_size;
    mpmap_range rg = o->ranges[o->index];
    int64_t len = o->slice_len < rg.end - o->pos ? o->slice_len : rg.end - o->pos;
    char *out = o->buffer + (size_t)(o->pos - rg.begin) * rs;
    int64_t from = o->pos;
    double t = mpmap__now();
    mpmap_task_error err;
    int64_t ok = mpmap__run_map(r->job, o->pos, o->pos + len, out, &err);
    double target = m->workers > 0 ? o->slice_target : MPMAP__WORKER_SLICE_SECONDS;
    o->last_slice = mpmap__now() - t;
    o->slice_len = mpmap__next_slice_length(o->slice_len, o->last_slice, target);
    o->pos += ok;
    if (ok < len) {
        if (r->params.on_error == MPMAP_ON_ERROR_STOP) {
            (void)mpmap__manager_own_flush(m, o->pos); /* the task's failure stops the run */
            char text[MPMAP_MESSAGE_MAX + 64];
            snprintf(text, sizeof text, "task %lld failed: %s", (long long)err.task, err.message);
            mpmap__manager_stop(m, MPMAP_ETASK, err.task, text);
            o->index = o->count;
            return MPMAP_OK;
        }
        if (!o->status) {
            o->status = calloc((size_t)o->room, sizeof *o->status);
            if (!o->status)
                return MPMAP_ENOMEM;
        }
        memset(out + (size_t)ok * rs, 0, rs);
        o->status[o->pos - rg.begin] = err.code;
        o->pos++;
        if (r->job->task_failed)
            r->job->task_failed(&err, r->job->context);
    }
    mpmap__chunk_cost_add(&m->costs[0], o->pos - from, o->last_slice);
    if ((o->pos < rg.end && MPI_Wtime() - r->t0 - o->start >= r->params.flush_interval) ||
        o->pos == rg.end) {
        if (mpmap__manager_own_flush(m, o->pos) != MPMAP_OK) {
            o->index = o->count; /* the store or its sync failed: rank 0's own work ends here */
            return MPMAP_OK;
        }
    }
    if (o->pos == rg.end) {
        o->index++;
        if (o->index < o->count)
            return mpmap__manager_own_start(m);
        mpmap__manager_chunk_done(m, 0, MPI_Wtime() - r->t0);
    }
    return MPMAP_OK;
}
