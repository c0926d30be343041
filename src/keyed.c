/*
 * Keyed map-reduce (mpmap_keyed.h): local combine, hash routing by
 * MPI_Alltoallv in bounded rounds, per-key folds in task order at the
 * owner, sorted gather to rank 0. Built on mpmap_run; the runtime is not
 * touched.
 *
 * Why the result does not depend on the rank count or the schedule: a
 * key's value is defined by task order alone (mpmap_keyed.h). A rank keeps,
 * per key, a list of (task, partial) where partial folds that task's values
 * in emission order (a task runs on one rank, start to end, so its pairs
 * arrive there in order). Only when the fold is insensitive to order
 * (integer SUM/MIN/MAX, a USER fold declared commutative) are the partials
 * of different tasks merged early. The owner of a key receives every
 * (task, partial) of it, sorts them by task and folds them left to right:
 * exactly the serial definition, whichever rank ran which task.
 *
 * Double MIN/MAX are treated as order-sensitive too: with x < acc ? x : acc,
 * -0.0 vs +0.0 and NaNs give the first one seen, so merging partials of
 * arbitrary task sets could change the bits.
 */
#include "keyed_internal.h"

#include "reduce.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the run ------------------------------------------------------------ */

struct mpmap_emitter {
    const mpmap_keyed_job *job;
    mpmap__ktab local;
    mpmap__kmem mem;
    bool combine; /* merge partials of different tasks */
    bool sum64;   /* one int64 summed: emit folds inline */
    int64_t task;
    int64_t pairs;
    int error; /* first emit failure: MPMAP_ENOMEM / MPMAP_EINVAL */
    char message[MPMAP_MESSAGE_MAX];
    int rank;
};

int mpmap_emit(mpmap_emitter *em, const void *key, size_t keylen, const void *value)
{
    if ((!key && keylen > 0) || keylen > MPMAP_KEYED_KEY_MAX || !value) {
        if (!em->error) {
            em->error = MPMAP_EINVAL;
            snprintf(em->message, sizeof em->message, "mpmap_emit: invalid key or value");
        }
        return MPMAP_EINVAL;
    }
    mpmap__ktab *t = &em->local;
    uint64_t h = mpmap__keyed_hash(key, keylen);
    int64_t e;
    int rc = mpmap__ktab_find(t, key, keylen, h, true, &e);
    if (rc == MPMAP_OK) {
        const mpmap__kentry *k = &t->entries[e];
        if (k->last >= 0 && (em->combine || *MPMAP__REC_TASK(t, k->last) == em->task)) {
            if (em->sum64) { /* the common case (counting), without the generic fold */
                uint64_t x, acc;
                memcpy(&x, value, 8);
                memcpy(&acc, MPMAP__REC_VALUE(t, k->last), 8);
                acc += x; /* wraps, as two's complement int64 does */
                memcpy(MPMAP__REC_VALUE(t, k->last), &acc, 8);
            } else {
                mpmap__keyed_fold(em->job, value, MPMAP__REC_VALUE(t, k->last));
            }
            *MPMAP__REC_TASK(t, k->last) = em->task;
        } else {
            rc = mpmap__ktab_append(t, e, em->task, value, em->job->value_size);
        }
    }
    if (rc != MPMAP_OK) {
        if (!em->error) {
            em->error = MPMAP_ENOMEM;
            snprintf(em->message, sizeof em->message,
                     "rank %d: keyed tables exceed the memory budget of %zu bytes (spilling to "
                     "disk is not implemented; raise the budget or use more ranks)",
                     em->rank, em->mem.budget);
        }
        return MPMAP_ENOMEM;
    }
    em->pairs++;
    return MPMAP_OK;
}

/* mpmap_run's map: runs the user's map task by task; records are empty. */
static int keyed_map(int64_t begin, int64_t end, void *records, mpmap_task_error *err, void *ctx)
{
    (void)records;
    mpmap_emitter *em = ctx;
    for (int64_t t = begin; t < end; t++) {
        em->task = t;
        int rc = em->job->map(t, em, err, em->job->context);
        if (rc == MPMAP_ETASK)
            return rc;
        if (rc != 0)
            return mpmap_task_fail(err, t, rc, "%s", em->error ? em->message : mpmap_strerror(rc));
        if (em->error) /* an emit failed and the map went on regardless */
            return mpmap_task_fail(err, t, em->error, "%s", em->message);
    }
    return 0;
}

static void set_msg(mpmap_report *rep, const char *fmt, const char *a)
{
    if (rep)
        snprintf(rep->message, sizeof rep->message, fmt, a);
}

/* Rank 0: merges the owners' sorted lists into the result. */
static int merge_sorted(const char *buf, const int *counts, const int *displs, int P, int64_t nkeys,
                        size_t vs, mpmap_keyed_result *res)
{
    size_t keybytes = 0;
    for (int d = 0; d < P; d++)
        keybytes += (size_t)counts[d];
    keybytes -= (size_t)nkeys * (8 + vs);
    res->keys = malloc(keybytes + 1);
    res->key_offset = malloc(((size_t)nkeys + 1) * sizeof(size_t));
    res->values = malloc((size_t)nkeys * vs + 1);
    const char **pos = malloc((size_t)P * sizeof *pos);
    if (!res->keys || !res->key_offset || !res->values || !pos) {
        free(pos);
        return MPMAP_ENOMEM;
    }
    for (int d = 0; d < P; d++)
        pos[d] = buf + displs[d];
    size_t off = 0;
    for (int64_t i = 0; i < nkeys; i++) {
        int best = -1;
        uint64_t blen = 0;
        for (int d = 0; d < P; d++) {
            if (pos[d] >= buf + displs[d] + counts[d])
                continue;
            uint64_t len;
            memcpy(&len, pos[d], 8);
            if (best < 0 || mpmap__keyed_cmp(pos[d] + 8, len, pos[best] + 8, blen) < 0) {
                best = d;
                blen = len;
            }
        }
        res->key_offset[i] = off;
        memcpy(res->keys + off, pos[best] + 8, blen);
        off += blen;
        memcpy((char *)res->values + (size_t)i * vs, pos[best] + 8 + blen, vs);
        pos[best] += 8 + blen + vs;
    }
    res->key_offset[nkeys] = off;
    free(pos);
    return MPMAP_OK;
}

static int check_job(const mpmap_keyed_job *job)
{
    if (!job || !job->map || job->ntasks < 0 || job->value_size == 0)
        return MPMAP_EINVAL;
    if (job->op == MPMAP_REDUCE_NONE)
        return MPMAP_EINVAL;
    return mpmap_reduce_check(job->op, job->type, job->value_size, job->fold);
}

int mpmap_keyed_run(MPI_Comm comm, const mpmap_config *config, const mpmap_keyed_job *job,
                    mpmap_keyed_result *result, mpmap_report *report)
{
    int P, rank;
    MPI_Comm_size(comm, &P);
    MPI_Comm_rank(comm, &rank);
    *result = (mpmap_keyed_result){ .value_size = job ? job->value_size : 0 };
    mpmap_report local_report;
    mpmap_report *rep = report ? report : &local_report;
    memset(rep, 0, sizeof *rep);
    rep->failed_task = -1;
    rep->ranks = P;

    int code = mpmap__keyed_agree(comm, check_job(job));
    if (code != MPMAP_OK) {
        rep->status = code;
        set_msg(rep, "%s", "keyed job: invalid map, value_size, op, type or fold");
        return code;
    }

    mpmap_emitter *em = calloc(1, sizeof *em);
    code = mpmap__keyed_agree(comm, em ? MPMAP_OK : MPMAP_ENOMEM);
    if (code != MPMAP_OK) {
        free(em);
        rep->status = code;
        set_msg(rep, "%s", "out of memory");
        return code;
    }
    em->job = job;
    em->rank = rank;
    em->mem.budget = job->budget ? job->budget : MPMAP_KEYED_BUDGET_DEFAULT;
    em->combine =
        (job->op == MPMAP_REDUCE_USER) ? job->fold_commutative != 0 : job->type != MPMAP_DOUBLE;
    em->sum64 = job->op == MPMAP_REDUCE_SUM && job->type == MPMAP_INT64 && job->value_size == 8;
    mpmap__ktab_init(&em->local, job->value_size, &em->mem);

    /* 1. The map: the caller's schedule, no records, no checkpoint. */
    mpmap_config cfg;
    if (config)
        cfg = *config;
    else
        mpmap_config_init(&cfg);
    cfg.checkpoint_path = NULL;
    cfg.fingerprint = NULL;
    cfg.resume = 0;
    cfg.on_error = MPMAP_ON_ERROR_STOP;
    mpmap_job mj = { .ntasks = job->ntasks, .record_size = 0, .map = keyed_map, .context = em };
    code = mpmap_run(comm, &cfg, &mj, rep);
    result->pairs_emitted = em->pairs;
    if (code == MPMAP_ETASK) {
        /* Over budget on some rank: say so with the right code. */
        int over = em->error == MPMAP_ENOMEM, any = 0;
        MPI_Allreduce(&over, &any, 1, MPI_INT, MPI_MAX, comm);
        if (any)
            code = MPMAP_ENOMEM;
    }

    /* 2. The shuffle to the owners. */
    mpmap__ktab own;
    mpmap__ktab_init(&own, job->value_size, &em->mem);
    char msg[MPMAP_MESSAGE_MAX] = "";
    if (code == MPMAP_OK && P == 1) {
        /* One rank owns every key: its table is the owner's, as it stands
         * (partials already in insertion order, sorted by task below). */
        result->partials_sent = (int64_t)em->local.nrecs;
        own = em->local;
        mpmap__ktab_init(&em->local, job->value_size, &em->mem);
    } else if (code == MPMAP_OK) {
        code =
            mpmap__keyed_shuffle(comm, job, &em->local, em->combine, &own, result, msg, sizeof msg);
    }
    mpmap__ktab_free(&em->local);

    /* 3. The owners fold and sort; 4. rank 0 gathers and merges. */
    char *packed = NULL;
    size_t packed_len = 0;
    if (code == MPMAP_OK) {
        int rc = mpmap__keyed_fold_and_pack(&own, job, &packed, &packed_len);
        if (rc == MPMAP_OK && packed_len > (size_t)INT_MAX)
            rc = MPMAP_EINVAL;
        if (rc != MPMAP_OK)
            snprintf(msg, sizeof msg, "rank %d: %s folding its %zu keys", rank,
                     rc == MPMAP_EINVAL ? "more than 2 GiB of results" : "out of memory",
                     own.nentries);
        code = mpmap__keyed_agree(comm, rc);
    }
    result->keys_owned = (int64_t)own.nentries;
    result->peak_bytes = em->mem.peak;
    mpmap__ktab_free(&own);
    if (code == MPMAP_OK) {
        int len = (int)packed_len;
        long long nk = result->keys_owned, total = 0;
        MPI_Allreduce(&nk, &total, 1, MPI_LONG_LONG, MPI_SUM, comm);
        result->nkeys = total;
        int *counts = NULL, *displs = NULL;
        char *all = NULL;
        int rc = MPMAP_OK;
        if (rank == 0) {
            counts = malloc((size_t)P * sizeof *counts);
            displs = malloc((size_t)P * sizeof *displs);
            if (!counts || !displs)
                rc = MPMAP_ENOMEM;
        }
        rc = mpmap__keyed_agree(comm, rc);
        if (rc == MPMAP_OK) {
            MPI_Gather(&len, 1, MPI_INT, counts, 1, MPI_INT, 0, comm);
            long long sum = 0;
            if (rank == 0) {
                for (int d = 0; d < P; d++) {
                    displs[d] = (int)sum;
                    sum += counts[d];
                }
                if (sum > INT_MAX)
                    rc = MPMAP_EINVAL;
                else if (!(all = malloc((size_t)sum + 1)))
                    rc = MPMAP_ENOMEM;
            }
            rc = mpmap__keyed_agree(comm, rc);
            if (rc == MPMAP_OK) {
                MPI_Gatherv(packed, len, MPI_BYTE, all, counts, displs, MPI_BYTE, 0, comm);
                if (rank == 0)
                    rc = merge_sorted(all, counts, displs, P, total, job->value_size, result);
                rc = mpmap__keyed_agree(comm, rc);
            }
            if (rc != MPMAP_OK)
                snprintf(msg, sizeof msg, "rank 0: %s gathering %lld keys",
                         rc == MPMAP_EINVAL ? "more than 2 GiB of results" : "out of memory",
                         total);
        }
        code = rc;
        free(counts);
        free(displs);
        free(all);
    }
    free(packed);
    free(em);

    /* One message everywhere: the first failing rank's, or mpmap_run's. */
    if (code != MPMAP_OK) {
        int has = msg[0] != '\0', who = has ? rank : P, first = P;
        MPI_Allreduce(&who, &first, 1, MPI_INT, MPI_MIN, comm);
        if (first < P) {
            MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, first, comm);
            snprintf(rep->message, sizeof rep->message, "%s", msg);
        }
        mpmap_keyed_result_free(result);
    }
    rep->status = code;
    return code;
}

const char *mpmap_keyed_key(const mpmap_keyed_result *r, int64_t i, size_t *len)
{
    if (!r->keys || i < 0 || i >= r->nkeys)
        return NULL;
    if (len)
        *len = r->key_offset[i + 1] - r->key_offset[i];
    return r->keys + r->key_offset[i];
}

const void *mpmap_keyed_value(const mpmap_keyed_result *r, int64_t i)
{
    if (!r->values || i < 0 || i >= r->nkeys)
        return NULL;
    return (const char *)r->values + (size_t)i * r->value_size;
}

void mpmap_keyed_result_free(mpmap_keyed_result *r)
{
    if (!r)
        return;
    free(r->keys);
    free(r->key_offset);
    free(r->values);
    r->keys = NULL;
    r->key_offset = NULL;
    r->values = NULL;
}
