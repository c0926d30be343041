/*
 * The manager role on rank 0: hands out chunks, answers the workers'
 * requests, and computes chunks itself in short slices between them. Its
 * results and the workers' go through ordered delivery (delivery.h).
 */
#ifndef MPMAP_CORE_MANAGER_H
#define MPMAP_CORE_MANAGER_H

#include "core/protocol.h"
#include "core/run.h"

#include <stddef.h>

typedef struct mpmap__manager mpmap__manager;

/* Prepares rank 0's side of run r: checkpoint, restored ranges, scheduler.
 * Returns 0 or MPMAP_E* with the reason in err; *out is set either way
 * (NULL only when out of memory) and goes to mpmap__manager_destroy. */
int mpmap__manager_create(mpmap__run *r, mpmap__manager **out, char *err, size_t errlen);

/* Runs the manager loop until every chunk handed out came back. Returns 0
 * or the MPMAP_E* that broke the protocol; why the run stopped early (task
 * failure, interrupt, I/O) is in the outcome. */
int mpmap__manager_main(mpmap__manager *m);

/* The run's outcome after mpmap__manager_main returned rc: status,
 * counts, first failed task and the stop message (f->message, may be ""). */
void mpmap__manager_outcome(const mpmap__manager *m, int rc, mpmap__final_state *f);

/* The folded reduction (record_size bytes). */
const void *mpmap__manager_reduction(const mpmap__manager *m);

/* Completes outstanding sends, closes the checkpoint, frees m (NULL ok). */
void mpmap__manager_destroy(mpmap__manager *m);

#endif
