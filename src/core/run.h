/*
 * What every part of one mpmap_run shares: the communicator, the caller's
 * config and job, the broadcast parameters and the start time. Set up by
 * mpmap_run (run.c) and read by the worker and the manager.
 */
#ifndef MPMAP_CORE_RUN_H
#define MPMAP_CORE_RUN_H

#include "core/protocol.h"
#include "core/topology.h"
#include "mpmap.h"

#include <stdbool.h>

typedef struct mpmap__run {
    MPI_Comm comm; /* private duplicate of the caller's communicator */
    int rank, size;
    const mpmap_config *config;
    const mpmap_job *job;
    mpmap__run_params params;
    double t0;            /* MPI_Wtime at the start; trace times are relative to it */
    mpmap__topology topo; /* who serves whom (flat: rank 0 serves everyone) */
    int boss;             /* the rank this one gets chunks from (topo.boss[rank]) */
} mpmap__run;

static inline bool mpmap__interrupted(const mpmap__run *r)
{
    return r->config->interrupt && *r->config->interrupt;
}

#endif
