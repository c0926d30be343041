/*
 * Helpers for setup's filling in of mpmap_app_problem: the task grid's axes
 * and their values, the chunk cap of apps with many cheap tasks, and the
 * input data's part of the fingerprint.
 */
#define _POSIX_C_SOURCE 200809L
#include "mpmap_app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double *mpmap_app_range_values(const mpmap_cli_range *range)
{
    double *values = malloc((size_t)(range->count > 0 ? range->count : 1) * sizeof *values);
    for (int64_t i = 0; values && i < range->count; i++)
        values[i] = mpmap_cli_range_value(range, i);
    return values;
}

int mpmap_app_task_axis(mpmap_app *app, mpmap_app_problem *p, const mpmap_app_coord *coord)
{
    /* task_rank counts the axes added so far; the kit reads one axis as
     * task_dim and ntasks, more as the grid. */
    int k = p->task_rank;
    if (k >= MPMAP_APP_MAX_DIMS || p->ncoords >= MPMAP_APP_MAX_COORDS)
        return mpmap_app_usage(app, "at most %d task axes; '%s' would be axis %d",
                               MPMAP_APP_MAX_DIMS, coord->name, k + 1);
    p->task_shape[k] = coord->n;
    p->task_dims[k] = coord->name;
    p->task_rank = k + 1;
    p->task_dim = p->task_dims[0];
    p->ntasks = 1;
    for (int j = 0; j <= k; j++)
        p->ntasks *= p->task_shape[j];
    p->coords[p->ncoords++] = *coord;
    return 0;
}

void mpmap_app_spread_chunks(const mpmap_app *app, mpmap_app_problem *p, int64_t chunks_per_rank,
                             size_t record_bytes)
{
    int64_t pieces = (int64_t)mpmap_app_size(app) * chunks_per_rank;
    int64_t cap = (p->ntasks + pieces - 1) / pieces;
    int64_t records = (int64_t)(MPMAP_MAX_CHUNK_AUTO_BYTES / (record_bytes > 0 ? record_bytes : 1));
    if (records < 1)
        records = 1;
    p->max_chunk = cap < records ? cap : records;
}

int mpmap_app_fingerprint_matrix(mpmap_app *app, mpmap_app_problem *p, const char *label,
                                 const double *data, int64_t rows, int64_t cols)
{
    size_t used = strlen(p->fingerprint), room = sizeof p->fingerprint - used;
    uint64_t hash = 0;
    if (mpmap_app_rank(app) == 0)
        hash = mpmap_app_hash(data, (size_t)(rows * cols) * sizeof(double));
    MPI_Bcast(&hash, 1, MPI_UINT64_T, 0, mpmap_app_comm(app));
    int n = snprintf(p->fingerprint + used, room, "%s%s=%lldx%lld:%016llx", used ? " " : "", label,
                     (long long)rows, (long long)cols, (unsigned long long)hash);
    return n < 0 || (size_t)n >= room ? -1 : 0;
}
