/* Ordered delivery, reductions and the checkpoint on rank 0 (see delivery.h). */
#include "core/delivery.h"

#include "reduce.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest piece read back from a checkpoint at once. */
#define RESTORE_PIECE_BYTES (1u << 20)

/* The first failure met in one call: its code (0 while none) and message. */
typedef struct outcome {
    int code;
    char message[MPMAP_MESSAGE_MAX + 64];
} outcome;

static void note(outcome *o, int code, const char *message)
{
    if (o->code == MPMAP_OK) {
        o->code = code;
        snprintf(o->message, sizeof o->message, "%s", message);
    }
}

/* Returns the outcome's code, its message in err when it is a failure. */
static int report(const outcome *o, char *err, size_t errlen)
{
    if (o->code != MPMAP_OK && err && errlen)
        snprintf(err, errlen, "%s", o->message);
    return o->code;
}

/* The checkpoint's own account of its last failure, else `fallback`. */
static const char *ckpt_reason(const mpmap__delivery *d, const char *fallback)
{
    const char *detail = mpmap__ckpt_error(d->ckpt);
    return detail && detail[0] ? detail : fallback;
}

/*
 * A checkpoint refused for its record size (mpmap__ckpt_open's "record
 * size was N bytes, now M") because one run kept its records on the ranks
 * (job.store, records of 0 bytes in the log) and the other did not: say
 * that, as "8 bytes, now 0" alone would leave the user guessing.
 */
static void explain_store_mismatch(const char *path, const mpmap_job *job, char *err, size_t errlen)
{
    const char *at = err ? strstr(err, "record size was ") : NULL;
    unsigned long long was;
    if (!at || sscanf(at, "record size was %llu", &was) != 1)
        return;
    if (job->store && was > 0)
        snprintf(err, errlen,
                 "checkpoint '%s' holds %llu-byte records; this run keeps records on the "
                 "ranks (store)",
                 path, was);
    else if (!job->store && was == 0 && job->record_size > 0)
        snprintf(err, errlen,
                 "checkpoint '%s' holds no records (its run kept them on the ranks, store); "
                 "this run collects %zu-byte records on rank 0",
                 path, job->record_size);
}

int mpmap__delivery_init(mpmap__delivery *d, const mpmap_config *config, const mpmap_job *job,
                         int64_t ntasks, size_t record_size, int nranks, char *err, size_t errlen)
{
    *d = (mpmap__delivery){ .job = job, .record_size = record_size, .nranks = nranks };
    /* A stored range may be logged only once durable: with store_sync
     * that is when its rank says so, not when it arrives. */
    bool log_when_synced = job->store && job->store_sync && config->checkpoint_path;
    d->reduction = malloc(record_size + 1);
    if (log_when_synced)
        d->unlogged = calloc((size_t)nranks, sizeof *d->unlogged);
    if (!d->reduction || (log_when_synced && !d->unlogged)) {
        snprintf(err, errlen, "out of memory");
        return MPMAP_ENOMEM;
    }
    if (job->reduce_op != MPMAP_REDUCE_NONE)
        mpmap_reduce_init(job->reduce_op, job->reduce_type, record_size, job->reduction,
                          d->reduction);
    if (config->checkpoint_path) {
        int rc = mpmap__ckpt_open(config->checkpoint_path,
                                  config->fingerprint ? config->fingerprint : "", ntasks,
                                  record_size, config->resume, &d->ckpt, err, errlen);
        if (rc == MPMAP_ERESUME)
            explain_store_mismatch(config->checkpoint_path, job, err, errlen);
        if (rc != MPMAP_OK)
            return rc;
        d->nrestored = mpmap__ckpt_restored(d->ckpt, &d->restored);
        d->restored_tasks = mpmap__ckpt_restored_tasks(d->ckpt);
        /* A damaged or torn log costs recomputation: say so once, before
         * any work, rather than let the run be silently slower. */
        const char *notice = mpmap__ckpt_notice(d->ckpt);
        if (notice[0] && job->notice)
            job->notice(notice, job->context);
    }
    return MPMAP_OK;
}

void mpmap__delivery_destroy(mpmap__delivery *d)
{
    if (d->ckpt)
        mpmap__ckpt_close(d->ckpt);
    d->ckpt = NULL;
    for (size_t i = 0; i < d->nheld; i++) {
        free(d->held[i].records);
        free(d->held[i].status);
    }
    free(d->held);
    for (int r = 0; d->unlogged && r < d->nranks; r++) {
        /* Never said durable: left out of the checkpoint, recomputed on resume. */
        for (size_t i = 0; i < d->unlogged[r].count; i++)
            free(d->unlogged[r].ranges[i].status);
        free(d->unlogged[r].ranges);
    }
    free(d->unlogged);
    d->unlogged = NULL;
    free(d->reduction);
    d->held = NULL;
    d->reduction = NULL;
    d->nheld = 0;
}

size_t mpmap__delivery_restored(const mpmap__delivery *d, const mpmap_range **ranges)
{
    *ranges = d->restored;
    return d->nrestored;
}

void mpmap__delivery_stop_sink(mpmap__delivery *d) { d->sink_off = true; }

/* Hands [begin, end) to the user in order: sink, results, status, reduction. */
static void deliver(mpmap__delivery *d, int64_t begin, int64_t end, const char *records,
                    const int32_t *status, outcome *o)
{
    const mpmap_job *job = d->job;
    size_t rs = d->record_size;
    int64_t n = end - begin;
    if (n <= 0)
        return;
    if (job->sink && !d->sink_off) {
        /* In store mode the records are on the ranks that computed them. */
        if (job->sink(begin, end, job->store ? NULL : records, status, job->context) != 0) {
            d->sink_off = true;
            note(o, MPMAP_ECALLBACK, "the result sink failed");
        }
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
            d->failed++;
            continue;
        }
        if (job->reduce_op != MPMAP_REDUCE_NONE && rs > 0)
            mpmap_reduce_fold(job->reduce_op, job->reduce_type, rs, records + (size_t)i * rs,
                              d->reduction, job->reduce_fn, job->context);
    }
    d->next_deliver = end;
}

/* Reads back restored range rg and delivers it in bounded pieces. */
static void deliver_restored(mpmap__delivery *d, mpmap_range rg, outcome *o)
{
    size_t rs = d->record_size;
    int64_t step = (int64_t)(RESTORE_PIECE_BYTES / (rs > 0 ? rs : sizeof(int32_t)));
    if (step < 1)
        step = 1;
    int64_t most = step < rg.end - rg.begin ? step : rg.end - rg.begin;
    char *records = malloc((size_t)most * rs + 1);
    int32_t *status = malloc((size_t)most * sizeof *status + 1);
    for (int64_t b = rg.begin; b < rg.end; b += step) {
        int64_t e = b + step < rg.end ? b + step : rg.end;
        if (!records || !status || mpmap__ckpt_read(d->ckpt, b, e, records, status) != MPMAP_OK) {
            note(o, MPMAP_EIO,
                 records && status ? ckpt_reason(d, "cannot read back the checkpoint")
                                   : "cannot read back the checkpoint");
            d->next_deliver = rg.end; /* keep the order bookkeeping going */
            break;
        }
        bool all_ok = true;
        for (int64_t i = 0; i < e - b; i++)
            all_ok &= status[i] == 0;
        deliver(d, b, e, records, all_ok ? NULL : status, o);
    }
    free(records);
    free(status);
}

static void flush_in_order(mpmap__delivery *d, outcome *o)
{
    for (;;) {
        if (d->next_restored < d->nrestored &&
            d->restored[d->next_restored].begin == d->next_deliver) {
            deliver_restored(d, d->restored[d->next_restored++], o);
            continue;
        }
        size_t i;
        for (i = 0; i < d->nheld; i++)
            if (d->held[i].begin == d->next_deliver)
                break;
        if (i == d->nheld)
            return;
        mpmap__held_piece h = d->held[i];
        d->held[i] = d->held[--d->nheld];
        deliver(d, h.begin, h.end, h.records, h.status, o);
        free(h.records);
        free(h.status);
    }
}

int mpmap__delivery_flush(mpmap__delivery *d, char *err, size_t errlen)
{
    outcome o = { 0 };
    flush_in_order(d, &o);
    return report(&o, err, errlen);
}

/* Keeps a copy of a piece that arrived before its turn. */
static void hold(mpmap__delivery *d, int64_t begin, int64_t end, const char *records,
                 const int32_t *status, outcome *o)
{
    size_t rs = d->record_size;
    int64_t n = end - begin;
    if (d->nheld == d->held_capacity) {
        size_t cap = d->held_capacity ? 2 * d->held_capacity : 16;
        mpmap__held_piece *grown = realloc(d->held, cap * sizeof *grown);
        if (!grown) {
            note(o, MPMAP_ENOMEM, "out of memory holding results");
            return;
        }
        d->held = grown;
        d->held_capacity = cap;
    }
    mpmap__held_piece h = { begin, end, malloc((size_t)n * rs + 1), NULL };
    if (status)
        h.status = malloc((size_t)n * sizeof *status);
    if (!h.records || (status && !h.status)) {
        free(h.records);
        free(h.status);
        note(o, MPMAP_ENOMEM, "out of memory holding results");
        return;
    }
    memcpy(h.records, records, (size_t)n * rs);
    if (status)
        memcpy(h.status, status, (size_t)n * sizeof *status);
    d->held[d->nheld++] = h;
}

/* Keeps [begin, end) of `rank` (its statuses copied: the message they
 * came in is freed) until the rank says it is durable. */
static void keep_unlogged(mpmap__delivery *d, int rank, int64_t begin, int64_t end,
                          const int32_t *status, outcome *o)
{
    mpmap__unlogged *u = &d->unlogged[rank];
    if (u->count == u->capacity) {
        size_t cap = u->capacity ? 2 * u->capacity : 16;
        mpmap__unlogged_range *grown = realloc(u->ranges, cap * sizeof *grown);
        if (!grown) {
            note(o, MPMAP_ENOMEM, "out of memory keeping results for the checkpoint");
            return;
        }
        u->ranges = grown;
        u->capacity = cap;
    }
    mpmap__unlogged_range x = { begin, end, NULL };
    if (status) {
        x.status = malloc((size_t)(end - begin) * sizeof *status);
        if (!x.status) {
            note(o, MPMAP_ENOMEM, "out of memory keeping results for the checkpoint");
            return;
        }
        memcpy(x.status, status, (size_t)(end - begin) * sizeof *status);
    }
    u->ranges[u->count++] = x;
}

int mpmap__delivery_synced(mpmap__delivery *d, int rank, char *err, size_t errlen)
{
    outcome o = { 0 };
    if (!d->unlogged || rank < 0 || rank >= d->nranks)
        return MPMAP_OK;
    mpmap__unlogged *u = &d->unlogged[rank];
    for (size_t i = 0; i < u->count; i++) {
        mpmap__unlogged_range *x = &u->ranges[i];
        /* No record bytes in store mode: the log holds ranges and statuses. */
        if (o.code == MPMAP_OK &&
            mpmap__ckpt_append(d->ckpt, x->begin, x->end, "", x->status) != MPMAP_OK)
            note(&o, MPMAP_EIO, ckpt_reason(d, "cannot append to the checkpoint"));
        free(x->status);
    }
    u->count = 0;
    return report(&o, err, errlen);
}

int mpmap__delivery_accept(mpmap__delivery *d, int rank, int64_t begin, int64_t end,
                           const char *records, const int32_t *status, char *err, size_t errlen)
{
    outcome o = { 0 };
    if (end - begin <= 0)
        return MPMAP_OK;
    d->computed += end - begin;
    if (d->unlogged && rank >= 0 && rank < d->nranks)
        keep_unlogged(d, rank, begin, end, status, &o);
    /* The checkpoint says why it failed (e.g. the disk is full): pass that on. */
    else if (d->ckpt && mpmap__ckpt_append(d->ckpt, begin, end, records, status) != MPMAP_OK)
        note(&o, MPMAP_EIO, ckpt_reason(d, "cannot append to the checkpoint"));
    if (begin == d->next_deliver) {
        deliver(d, begin, end, records, status, &o);
        flush_in_order(d, &o);
    } else {
        hold(d, begin, end, records, status, &o);
    }
    return report(&o, err, errlen);
}

int mpmap__delivery_sync(mpmap__delivery *d, char *err, size_t errlen)
{
    outcome o = { 0 };
    if (d->ckpt && mpmap__ckpt_sync(d->ckpt) != MPMAP_OK)
        note(&o, MPMAP_EIO, ckpt_reason(d, "cannot sync the checkpoint"));
    return report(&o, err, errlen);
}
