/*
 * mpmap_run: checks the configuration, sets the run up, dispatches rank 0
 * to the manager, sub-managers (node dispatch) to theirs and the other
 * ranks to the worker, and gathers one report that every rank returns.
 * Also mpmap_config_init.
 *
 * Every rank agrees on one verdict before any work starts, and on the
 * outcome at the end (broadcast from rank 0), so mpmap_run returns the same
 * status everywhere.
 */
#define _POSIX_C_SOURCE 200809L
#include "mpmap.h"

#include "core/manager.h"
#include "core/protocol.h"
#include "core/run.h"
#include "core/submanager.h"
#include "core/transport.h"
#include "core/worker.h"
#include "reduce.h"
#include "schedule.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/*
 * Rank 0: the dispatch mode and fake node size, from the config and the
 * environment (MPMAP_DISPATCH=flat|nodes overrides the config, so a run's
 * dispatch can change without touching the program; MPMAP_NODE_SIZE=k is a
 * testing knob that makes nodes of k consecutive ranks on one machine).
 * AUTO is flat until measurements on real nodes say where nodes pays off.
 */
static int choose_dispatch(const mpmap_config *cfg, int32_t *dispatch, int32_t *node_size,
                           char *err, size_t errlen)
{
    int mode = cfg->dispatch;
    const char *env = getenv("MPMAP_DISPATCH");
    if (env && *env) {
        if (strcmp(env, "flat") == 0)
            mode = MPMAP_DISPATCH_FLAT;
        else if (strcmp(env, "nodes") == 0)
            mode = MPMAP_DISPATCH_NODES;
        else if (strcmp(env, "auto") == 0)
            mode = MPMAP_DISPATCH_AUTO;
        else {
            snprintf(err, errlen, "MPMAP_DISPATCH must be flat, nodes or auto (got '%s')", env);
            return MPMAP_EINVAL;
        }
    }
    if (mode != MPMAP_DISPATCH_AUTO && mode != MPMAP_DISPATCH_FLAT &&
        mode != MPMAP_DISPATCH_NODES) {
        snprintf(err, errlen, "unknown dispatch setting %d", mode);
        return MPMAP_EINVAL;
    }
    *dispatch = mode == MPMAP_DISPATCH_NODES ? MPMAP_DISPATCH_NODES : MPMAP_DISPATCH_FLAT;
    *node_size = 0;
    const char *size = getenv("MPMAP_NODE_SIZE");
    if (size && *size) {
        char *end;
        long k = strtol(size, &end, 10);
        if (*end != '\0' || k < 1 || k > 1 << 20) {
            snprintf(err, errlen, "MPMAP_NODE_SIZE must be a rank count >= 1 (got '%s')", size);
            return MPMAP_EINVAL;
        }
        *node_size = (int32_t)k;
    }
    return MPMAP_OK;
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
    if (mpmap_chunk_validate(cfg->chunk, cfg->max_chunk, err, errlen) != MPMAP_OK)
        return MPMAP_EINVAL;
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
    /* With store the records never reach rank 0, so nothing there can
     * hold or fold them. */
    if (job->store && job->results) {
        snprintf(err, errlen, "job.store keeps records on the ranks: job.results cannot be filled");
        return MPMAP_EINVAL;
    }
    if (job->store && job->reduce_op != MPMAP_REDUCE_NONE) {
        snprintf(err, errlen, "job.store keeps records on the ranks: they cannot be reduced");
        return MPMAP_EINVAL;
    }
    if (job->store_sync && !job->store) {
        snprintf(err, errlen, "job.store_sync needs job.store");
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

static void fill_report(mpmap_report *report, const mpmap__final_state *f, const mpmap__run *r,
                        double start_unix)
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
    snprintf(report->schedule, sizeof report->schedule, "%s", f->schedule);
    snprintf(report->message, sizeof report->message, "%s", f->message);
}

/* Rank 0: the final state from the manager's outcome, with the message the
 * report carries. */
static void final_from_manager(const mpmap__manager *m, int rc, int64_t ntasks,
                               mpmap__final_state *f)
{
    char stop_message[sizeof f->message];
    mpmap__manager_outcome(m, rc, f);
    snprintf(stop_message, sizeof stop_message, "%s", f->message);
    if (f->status == MPMAP_EINTERRUPTED)
        snprintf(f->message, sizeof f->message, "interrupted: %lld/%lld tasks done",
                 (long long)f->done, (long long)ntasks);
    else if (f->status != MPMAP_OK && stop_message[0])
        snprintf(f->message, sizeof f->message, "%s", stop_message);
    else if (f->status != MPMAP_OK)
        snprintf(f->message, sizeof f->message, "%s", mpmap_strerror(f->status));
    else
        f->message[0] = '\0';
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

    mpmap__run r = { .config = config, .job = job };
    if (MPI_Comm_dup(comm, &r.comm) != MPI_SUCCESS)
        return MPMAP_EMPI;
    MPI_Comm_rank(r.comm, &r.rank);
    MPI_Comm_size(r.comm, &r.size);
    r.t0 = MPI_Wtime();

    /* Rank 0's view of the job is authoritative; every rank checks it can
     * follow it, and all agree on one verdict before any work starts. */
    mpmap__final_state f = { .failed_task = -1 };
    int local = MPMAP_OK;
    char err[MPMAP_MESSAGE_MAX + 64] = "";
    if (r.rank == 0) {
        local = job ? validate_on_root(config, job, err, sizeof err) : MPMAP_EINVAL;
        int32_t dispatch = MPMAP_DISPATCH_FLAT, node_size = 0;
        if (local == MPMAP_OK)
            local = choose_dispatch(config, &dispatch, &node_size, err, sizeof err);
        if (job && local == MPMAP_OK) {
            /* In store mode no record travels: the wire, delivery and
             * checkpoint record size is 0, the map's stays the job's. */
            r.params =
                (mpmap__run_params){ .ntasks = job->ntasks,
                                     .record_size = job->store ? 0 : (int64_t)job->record_size,
                                     .map_record_size = (int64_t)job->record_size,
                                     .store = job->store != NULL,
                                     .store_sync = job->store_sync != NULL,
                                     .sync_stores = job->store_sync && config->checkpoint_path,
                                     .prefetch = config->prefetch,
                                     .on_error = (int32_t)config->on_error,
                                     .flush_interval = config->checkpoint_interval,
                                     .dispatch = dispatch,
                                     .node_size = node_size,
                                     .schedule = (int32_t)config->schedule };
            mpmap__chunk_bounds(config->chunk, config->max_chunk, job->record_size,
                                &r.params.min_chunk, &r.params.max_chunk);
        }
    }
    MPI_Bcast(&r.params, (int)sizeof r.params, MPI_BYTE, 0, r.comm);
    /* Collective on every rank, whatever the verdicts so far. */
    if (mpmap__topology_build(&r.topo, r.comm, r.rank, r.size, r.params.dispatch,
                              r.params.node_size) != MPMAP_OK &&
        local == MPMAP_OK) {
        local = MPMAP_EMPI;
        snprintf(err, sizeof err, "rank %d cannot find its node", r.rank);
    }
    r.boss = r.rank == 0 ? 0 : r.topo.boss[r.rank];
    if (r.rank != 0 && local == MPMAP_OK) {
        if (!job || !job->map) {
            local = MPMAP_EINVAL;
            snprintf(err, sizeof err, "rank %d has no map function", r.rank);
        } else if ((int64_t)job->record_size != r.params.map_record_size) {
            local = MPMAP_EINVAL;
            snprintf(err, sizeof err, "rank %d has record_size %zu, rank 0 has %lld", r.rank,
                     job->record_size, (long long)r.params.map_record_size);
        } else if ((job->store != NULL) != (r.params.store != 0)) {
            local = MPMAP_EINVAL;
            snprintf(err, sizeof err, "rank %d has %s store function, rank 0 has %s", r.rank,
                     job->store ? "a" : "no", r.params.store ? "one" : "none");
        } else if ((job->store_sync != NULL) != (r.params.store_sync != 0)) {
            local = MPMAP_EINVAL;
            snprintf(err, sizeof err, "rank %d has %s store_sync function, rank 0 has %s", r.rank,
                     job->store_sync ? "a" : "no", r.params.store_sync ? "one" : "none");
        }
    } else if (r.rank == 0 && local == MPMAP_OK && !job->map) {
        local = MPMAP_EINVAL;
        snprintf(err, sizeof err, "no map function");
    }

    mpmap__manager *m = NULL;
    if (r.rank == 0 && local == MPMAP_OK)
        local = mpmap__manager_create(&r, &m, err, sizeof err);

    struct {
        int code;
        int rank;
    } mine = { local, r.rank }, worst;
    MPI_Allreduce(&mine, &worst, 1, MPI_2INT, MPI_MINLOC, r.comm);
    if (worst.code != MPMAP_OK) {
        MPI_Bcast(err, (int)sizeof err, MPI_CHAR, worst.rank, r.comm);
        f.status = worst.code;
        snprintf(f.message, sizeof f.message, "%s", err);
        mpmap__manager_destroy(m);
        mpmap__topology_destroy(&r.topo);
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
    bool sub = mpmap__topology_is_sub(&r.topo, r.rank);
    if (r.rank == 0) {
        rc = mpmap__manager_main(m);
        final_from_manager(m, rc, r.params.ntasks, &f);
        memcpy(final_buffer, &f, sizeof f);
        memcpy(final_buffer + sizeof f, mpmap__manager_reduction(m), rs);
    } else if (sub) {
        rc = mpmap__submanager_main(&r);
        worker_saw_cancel = (rc == 1);
        if (rc == 1)
            rc = MPMAP_OK;
    } else {
        rc = mpmap__worker_main(&r);
        worker_saw_cancel = (rc == 1);
        if (rc == 1)
            rc = MPMAP_OK;
    }

    MPI_Request req;
    MPI_Ibcast(final_buffer, (int)final_bytes, MPI_BYTE, 0, r.comm, &req);
    mpmap__wait(&req);
    memcpy(&f, final_buffer, sizeof f);
    if (r.rank != 0 && f.cancelled && !worker_saw_cancel) {
        /* The manager sent a CANCEL this worker never looked at: take it, so
         * nothing is left unmatched on the communicator. A sub-manager
         * passes it on to its workers only on seeing it, so it does so now. */
        mpmap__signal_take(r.comm, r.boss, MPMAP__TAG_CANCEL);
        if (sub)
            mpmap__submanager_late_cancel(&r);
    }
    if (r.rank == 0)
        mpmap__manager_destroy(m);
    if (job->reduce_op != MPMAP_REDUCE_NONE && job->reduction && rs > 0)
        memcpy(job->reduction, final_buffer + sizeof f, rs);
    free(final_buffer);
    if (rc != MPMAP_OK && f.status == MPMAP_OK)
        f.status = rc;
    mpmap__topology_destroy(&r.topo);
    MPI_Comm_free(&r.comm);
    fill_report(report, &f, &r, start_unix);
    return f.status;
}
