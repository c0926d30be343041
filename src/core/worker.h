/*
 * The worker role (ranks 1..size-1), and running the user's map function,
 * which rank 0 does too between hand-outs.
 */
#ifndef MPMAP_CORE_WORKER_H
#define MPMAP_CORE_WORKER_H

#include "core/run.h"

/* Target length of one time slice of work between polls on a worker, and
 * on rank 0 when it has no workers to serve. */
#define MPMAP__WORKER_SLICE_SECONDS 0.02

/*
 * The worker loop: computes chunks until told STOP or to cancel. Returns 0,
 * 1 when the manager's CANCEL was received, or MPMAP_E*.
 */
int mpmap__worker_main(mpmap__run *r);

/*
 * Runs map on [begin, end). Returns the number of tasks that finished; when
 * that is less than end - begin, *err describes the failed task begin + n.
 * A map function that fails without naming a task (or names one outside the
 * range) is taken to have failed at `begin`.
 */
int64_t mpmap__run_map(const mpmap_job *job, int64_t begin, int64_t end, void *records,
                       mpmap_task_error *err);

/*
 * Store mode: hands the records of tasks [begin, end) (record_size bytes
 * each, from `records`) to job.store, one call per maximal run of tasks
 * whose status is 0 (status NULL: all are). Returns 0, or MPMAP_ECALLBACK
 * at the first failing call, with its reason in message
 * (MPMAP_MESSAGE_MAX bytes).
 */
int mpmap__store_runs(const mpmap_job *job, int64_t begin, int64_t end, const char *records,
                      size_t record_size, const int32_t *status, char *message);

/*
 * Store mode with store_sync: calls job.store_sync. Returns 0, or
 * MPMAP_ECALLBACK with its reason in message (MPMAP_MESSAGE_MAX bytes).
 */
int mpmap__store_sync(const mpmap_job *job, char *message);

/* Adapts a slice length so that a slice takes about `target` seconds. */
int64_t mpmap__next_slice_length(int64_t length, double elapsed, double target);

#endif
