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

/* One pair (its key's hash h) into the local table: MPMAP_OK or MPMAP_ENOMEM. */
static int emit_once(mpmap_emitter *em, const void *key, size_t keylen, uint64_t h,
                     const void *value)
{
    mpmap__ktab *t = &em->local;
    int64_t e;
    int rc = mpmap__ktab_find(t, key, keylen, h, true, &e);
    if (rc != MPMAP_OK)
        return rc;
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
        return MPMAP_OK;
    }
    return mpmap__ktab_append(t, e, em->task, value, em->job->value_size);
}

/* The local table reached the budget: its partials go to a run, except the
 * running task's when partials of tasks are kept apart (keyed_spill.c says
 * why), which start the emptied table again. */
static int spill_local(mpmap_emitter *em)
{
    size_t vs = em->job->value_size;
    int64_t keep = em->combine ? -1 : em->task;
    int rc = mpmap__kspill_table(&em->spill, &em->local, vs, false, keep);
    if (rc != MPMAP_OK)
        return rc;
    mpmap__ktab *t = &em->local;
    size_t nkeep = 0, bytes = 0;
    for (size_t i = 0; keep >= 0 && i < t->nentries; i++) {
        const mpmap__kentry *k = &t->entries[i];
        if (k->last >= 0 && *MPMAP__REC_TASK(t, k->last) == keep) {
            nkeep++;
            bytes += 8 + k->keylen + vs;
        }
    }
    char *kept = nkeep ? malloc(bytes) : NULL, *p = kept;
    if (nkeep && !kept)
        return MPMAP_ENOMEM;
    for (size_t i = 0; nkeep && i < t->nentries; i++) {
        const mpmap__kentry *k = &t->entries[i];
        if (k->last >= 0 && *MPMAP__REC_TASK(t, k->last) == keep) {
            uint64_t len = k->keylen;
            memcpy(p, &len, 8);
            memcpy(p + 8, t->keys + k->keyoff, len);
            memcpy(p + 8 + len, MPMAP__REC_VALUE(t, k->last), vs);
            p += 8 + len + vs;
        }
    }
    mpmap__ktab_free(t);
    rc = MPMAP_OK;
    for (p = kept; rc == MPMAP_OK && nkeep > 0; nkeep--) {
        uint64_t len;
        memcpy(&len, p, 8);
        int64_t e;
        rc = mpmap__ktab_find(t, p + 8, len, mpmap__keyed_hash(p + 8, len), true, &e);
        if (rc == MPMAP_OK)
            rc = mpmap__ktab_append(t, e, keep, p + 8 + len, vs);
        p += 8 + len + vs;
    }
    free(kept);
    return rc;
}

/* One pair of em->task into the local table, spilling it when it reaches
 * the budget; the first failure is latched in em->error/message. */
int mpmap__keyed_emit_pair(mpmap_emitter *em, const void *key, size_t keylen, uint64_t h,
                           const void *value)
{
    int rc = emit_once(em, key, keylen, h, value);
    if (rc == MPMAP_ENOMEM && em->spill.dir && em->local.nentries > 0) {
        size_t before = mpmap__ktab_bytes(&em->local);
        rc = spill_local(em);
        /* A table the spill could not shrink holds the running task alone. */
        if (rc == MPMAP_OK && mpmap__ktab_bytes(&em->local) < before)
            rc = emit_once(em, key, keylen, h, value);
        else if (rc == MPMAP_OK)
            rc = MPMAP_ENOMEM;
    }
    if (rc != MPMAP_OK) {
        if (!em->error) {
            em->error = rc == MPMAP_EIO ? MPMAP_EIO : MPMAP_ENOMEM;
            if (em->spill.error[0])
                snprintf(em->message, sizeof em->message, "%s", em->spill.error);
            else if (em->spill.dir)
                snprintf(em->message, sizeof em->message,
                         "rank %d: the pairs of task %lld alone exceed the keyed memory budget "
                         "of %zu bytes",
                         em->rank, (long long)em->task, em->mem.budget);
            else
                snprintf(em->message, sizeof em->message,
                         "rank %d: keyed tables exceed the memory budget of %zu bytes (give a "
                         "spill directory, raise the budget or use more ranks)",
                         em->rank, em->mem.budget);
        }
        return em->error;
    }
    return MPMAP_OK;
}

int mpmap_emit(mpmap_emitter *em, const void *key, size_t keylen, const void *value)
{
    if ((!key && keylen > 0) || keylen > MPMAP_KEYED_KEY_MAX || !value) {
        if (!em->error) {
            em->error = MPMAP_EINVAL;
            snprintf(em->message, sizeof em->message, "mpmap_emit: invalid key or value");
        }
        return MPMAP_EINVAL;
    }
    if (em->use_comb && keylen <= MPMAP__KCOMB_KEY_MAX) {
        int rc = mpmap__kcomb_emit(em, key, keylen, value);
        if (rc == MPMAP_OK)
            em->pairs++;
        return rc;
    }
    uint64_t h = mpmap__keyed_hash(key, keylen);
    int rc = mpmap__keyed_emit_pair(em, key, keylen, h, value);
    if (rc == MPMAP_OK)
        em->pairs++;
    return rc;
}

/* A saved partial is one more pair of its task: in a table that keeps the
 * tasks apart it stays its own record (no task of this leg has its
 * number), in a combining one it merges as any pair would. */
int mpmap__keyed_seed(mpmap_emitter *em, const void *key, size_t keylen, int64_t task,
                      const void *value)
{
    em->task = task;
    return mpmap__keyed_emit_pair(em, key, keylen, mpmap__keyed_hash(key, keylen), value);
}

/* mpmap_run's map: runs the user's map task by task; records are empty.
 * The run's tasks are this leg's (virtual) ones: each maps to a task of the
 * job, whose number the map and the partials see. */
static int keyed_map(int64_t begin, int64_t end, void *records, mpmap_task_error *err, void *ctx)
{
    (void)records;
    mpmap_emitter *em = ctx;
    for (int64_t v = begin; v < end;) {
        int64_t n;
        int64_t first = mpmap__kplan_task(&em->plan, v, end - v, &n);
        for (int64_t i = 0; i < n; i++) {
            int64_t t = first + i;
            em->task = t;
            int rc = em->job->map(t, em, err, em->job->context);
            /* the task's pairs are all in before its end (its failure is
             * its own) */
            int frc = mpmap__kcomb_flush(em);
            if (rc == 0 && frc != MPMAP_OK)
                rc = frc;
            if (rc == MPMAP_ETASK) {
                /* the runtime counts in this leg's numbering */
                err->task =
                    err->task >= first && err->task < t + 1 ? v + (err->task - first) : v + i;
                return rc;
            }
            if (rc != 0)
                return mpmap_task_fail(err, v + i, rc, "%s",
                                       em->error ? em->message : mpmap_strerror(rc));
            if (em->error) /* an emit failed and the map went on regardless */
                return mpmap_task_fail(err, v + i, em->error, "%s", em->message);
        }
        if (mpmap__kplan_done(&em->plan, first, first + n) != MPMAP_OK)
            return mpmap_task_fail(err, v + n - 1, MPMAP_ENOMEM, "out of memory");
        v += n;
    }
    return 0;
}

/* The report in the job's numbering: all its tasks, the ones restored from
 * the checkpoint, a failed task's own number. */
static void report_job_tasks(mpmap_report *rep, const mpmap_emitter *em)
{
    const mpmap__kplan *p = &em->plan;
    rep->tasks_total = em->job->ntasks;
    rep->tasks_restored = p->restored;
    rep->tasks_done += p->restored;
    if (rep->failed_task >= 0 && rep->failed_task < p->remaining) {
        int64_t n, v = rep->failed_task;
        rep->failed_task = mpmap__kplan_task(p, v, 1, &n);
        char was[48], now[48];
        size_t wl = (size_t)snprintf(was, sizeof was, "task %lld failed: ", (long long)v);
        size_t nl =
            (size_t)snprintf(now, sizeof now, "task %lld failed: ", (long long)rep->failed_task);
        if (strncmp(rep->message, was, wl) == 0) {
            size_t rest = strlen(rep->message + wl);
            if (nl + rest >= sizeof rep->message)
                rest = sizeof rep->message - 1 - nl;
            memmove(rep->message + nl, rep->message + wl, rest);
            memcpy(rep->message, now, nl);
            rep->message[nl + rest] = '\0';
        }
    }
    if (rep->status == MPMAP_EINTERRUPTED)
        snprintf(rep->message, sizeof rep->message, "interrupted: %lld/%lld tasks done",
                 (long long)rep->tasks_done, (long long)rep->tasks_total);
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
    mpmap__kspill_init(&em->spill, job->spill_dir, rank);
    /* A quarter of the budget at most for the combiner: the table it
     * drains into keeps the rest; a budget too small for a useful one
     * goes without. */
    mpmap__kcomb_init(&em->comb, em->mem.budget / 4, &em->mem);
    em->use_comb = em->combine && em->sum64 && em->comb.max_bytes >= 1024 * sizeof(mpmap__kcslot);

    /* 0. With a checkpoint path: a resumed run's saved state and the tasks
     * left (keyed_checkpoint.c). */
    char msg[MPMAP_MESSAGE_MAX] = "";
    code = mpmap__kckpt_begin(comm, config, em, msg, sizeof msg);

    /* 1. The map: the caller's schedule, no records; the runtime's own
     * checkpoint is off (the keyed one holds partials, not records). */
    mpmap_config cfg;
    if (config)
        cfg = *config;
    else
        mpmap_config_init(&cfg);
    cfg.checkpoint_path = NULL;
    cfg.fingerprint = NULL;
    cfg.resume = 0;
    cfg.on_error = MPMAP_ON_ERROR_STOP;
    /* clang-format off */
    mpmap_job mj = { .ntasks = em->plan.remaining, .record_size = 0, .map = keyed_map,
                     .context = em };
    /* clang-format on */
    if (code == MPMAP_OK) {
        code = mpmap_run(comm, &cfg, &mj, rep);
        report_job_tasks(rep, em);
    }
    /* The combiner's sums go to the table before anything reads it (the
     * checkpoint of an interrupted run, the shuffle). */
    if (code == MPMAP_OK || code == MPMAP_EINTERRUPTED) {
        int rc = mpmap__kcomb_drain(em);
        mpmap__kcomb_free(&em->comb);
        int worst = mpmap__keyed_agree(comm, rc);
        if (worst != MPMAP_OK) {
            code = worst;
            if (rc != MPMAP_OK)
                snprintf(msg, sizeof msg, "%s", em->message);
        }
    }
    mpmap__kcomb_free(&em->comb);
    result->pairs_emitted = em->pairs;
    if (code == MPMAP_ETASK) {
        /* Over budget or a failed spill on some rank: say so with the right code. */
        int mine = em->error == MPMAP_ENOMEM || em->error == MPMAP_EIO ? em->error : MPMAP_OK;
        int worst = mpmap__keyed_agree(comm, mine);
        if (worst != MPMAP_OK)
            code = worst;
    }
    if (code == MPMAP_EINTERRUPTED && config && config->checkpoint_path) {
        int64_t done = 0;
        int rc = mpmap__kckpt_save(comm, config, em, &done, msg, sizeof msg);
        if (rc != MPMAP_OK) {
            code = rc;
        } else {
            /* what the checkpoint holds: a task the manager had not heard of
             * yet when the run stopped is saved all the same */
            rep->tasks_done = done;
            snprintf(msg, sizeof msg, "interrupted: %lld/%lld tasks done", (long long)done,
                     (long long)job->ntasks);
        }
    }

    /* 2. The shuffle to the owners: the local table as it stands, or, once
     * any rank has spilled, every rank's runs piece by piece. */
    mpmap__ktab own;
    mpmap__ktab_init(&own, job->value_size, &em->mem);
    mpmap__kspill own_spill;
    mpmap__kspill_init(&own_spill, job->spill_dir, rank);
    /* Pieces of a quarter of the budget leave the owner's table the rest:
     * once spilling is on, a local table larger than that is read back in
     * pieces too. */
    size_t piece = em->mem.budget / 4;
    int spilled = 0;
    int big = em->spill.dir && mpmap__ktab_bytes(&em->local) > piece;
    if (code == MPMAP_OK)
        MPI_Allreduce(&(int){ em->spill.nruns > 0 || big }, &spilled, 1, MPI_INT, MPI_MAX, comm);
    if (code == MPMAP_OK && P == 1 && !spilled) {
        /* One rank owns every key: its table is the owner's, as it stands
         * (partials already in insertion order, sorted by task below). */
        result->partials_sent = (int64_t)em->local.nrecs;
        own = em->local;
        mpmap__ktab_init(&em->local, job->value_size, &em->mem);
    } else if (code == MPMAP_OK && !spilled) {
        code = mpmap__keyed_shuffle(comm, job, &em->local, em->combine, &own, &own_spill, result,
                                    msg, sizeof msg);
    } else if (code == MPMAP_OK) {
        int rc = MPMAP_OK;
        if (em->spill.nruns > 0 || big) {
            rc = mpmap__kspill_table(&em->spill, &em->local, job->value_size, false, -1);
            mpmap__ktab_free(&em->local);
            if (rc == MPMAP_OK && em->spill.nruns > 0)
                rc = mpmap__krun_rewind(&em->spill, 0);
        }
        mpmap__kpiece_reader pr = { 0 };
        for (bool first = true;; first = false) {
            /* A piece is bounded by its run bytes, outside the budget,
             * which is the owner's table's alone now. */
            mpmap__kmem piece_mem = { .budget = SIZE_MAX };
            mpmap__ktab loc;
            mpmap__ktab_init(&loc, job->value_size, &piece_mem);
            int more = 0;
            if (rc == MPMAP_OK && em->spill.nruns == 0 && first) {
                loc = em->local; /* this rank never spilled: its table is one piece */
                mpmap__ktab_init(&em->local, job->value_size, &em->mem);
                more = loc.nentries > 0;
            } else if (rc == MPMAP_OK) {
                more = mpmap__kspill_load_piece(&em->spill, piece, job->value_size, &pr, &loc, &own,
                                                &own_spill, &rc);
            }
            code = mpmap__keyed_agree(comm, rc);
            int any = 0;
            if (code == MPMAP_OK)
                MPI_Allreduce(&more, &any, 1, MPI_INT, MPI_MAX, comm);
            if (code == MPMAP_OK && any)
                code = mpmap__keyed_shuffle(comm, job, &loc, em->combine, &own, &own_spill, result,
                                            msg, sizeof msg);
            mpmap__ktab_free(&loc);
            if (code != MPMAP_OK || !any)
                break;
        }
        free(pr.pend.data);
        if (rc != MPMAP_OK && !msg[0])
            snprintf(msg, sizeof msg, "%s",
                     em->spill.error[0] ? em->spill.error
                                        : "a key's partials alone exceed the keyed memory budget");
    }
    mpmap__ktab_free(&em->local);
    mpmap__kspill_free(&em->spill);

    /* 3. The owners fold and sort (merging their runs by key if they
     * spilled); 4. rank 0 gathers and merges. */
    char *packed = NULL;
    size_t packed_len = 0;
    int64_t owned = (int64_t)own.nentries;
    if (code == MPMAP_OK) {
        int rc;
        if (own_spill.nruns > 0) {
            rc = mpmap__kspill_table(&own_spill, &own, job->value_size, true, -1);
            mpmap__ktab_free(&own);
            /* clang-format off */
            mpmap__kpack pc = { .job = job, .x = malloc(job->value_size),
                            .acc = malloc(job->value_size) };
            /* clang-format on */
            if (rc == MPMAP_OK)
                rc = pc.x && pc.acc ? mpmap__kspill_merge(&own_spill, job->value_size,
                                                          mpmap__kspill_fold_packed, &pc)
                                    : MPMAP_ENOMEM;
            free(pc.refs);
            free(pc.x);
            free(pc.acc);
            packed = pc.buf;
            packed_len = pc.len;
            owned = pc.keys;
            if (rc != MPMAP_OK && own_spill.error[0])
                snprintf(msg, sizeof msg, "%s", own_spill.error);
        } else {
            rc = mpmap__keyed_fold_and_pack(&own, job, &packed, &packed_len);
        }
        if (rc == MPMAP_OK && packed_len > (size_t)INT_MAX)
            rc = MPMAP_EINVAL;
        if (rc != MPMAP_OK && !msg[0])
            snprintf(msg, sizeof msg, "rank %d: %s folding its %lld keys", rank,
                     rc == MPMAP_EINVAL ? "more than 2 GiB of results" : "out of memory",
                     (long long)owned);
        code = mpmap__keyed_agree(comm, rc);
    }
    result->spills = em->spill.written + own_spill.written;
    result->spill_bytes = em->spill.bytes + own_spill.bytes;
    mpmap__kspill_free(&own_spill);
    result->keys_owned = owned;
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
    mpmap__kplan_free(&em->plan);
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
