/*
 * knn_data: where knn_query's points and queries come from — n x d and
 * m x d datasets (--data, --queries FILE.h5:/DATASET) or synthetic points
 * uniform in [0,1)^D (--points, --queries-count, --dim, --seed; one copy
 * per node) — with the checks of those flags.
 */
#ifndef KNN_DATA_H
#define KNN_DATA_H

#include "mpmap_app.h"

#include <stdint.h>

/* Longest "FILE.h5:/DATASET" or synthetic description kept for the output. */
#define KNN_SOURCE_MAX 4200

typedef struct knn_data {
    /* flags */
    const char *data_spec, *query_spec;
    int64_t points, queries, dim, seed;
    int points_seen, queries_seen, dim_seen, seed_seen;
    /* on every rank after knn_data_load (node-shared, read-only) */
    mpmap_app_shared *data_shared, *query_shared;
    const double *data; /* n x d */
    int64_t n;
    int d;
    const double *queries_data; /* m x d */
    int64_t m;
    char data_source[KNN_SOURCE_MAX], query_source[KNN_SOURCE_MAX];
} knn_data;

/* Rank 0, before anything is read: flags that only apply to synthetic
 * points or queries, and synthetic sizes that cannot fit (the queries
 * with their k distances and k indices each). 0 or MPMAP_APP_USAGE. */
int knn_data_check(mpmap_app *app, const knn_data *data, int64_t k);
/* Collective: the data, then the queries (synthetic queries take the
 * data's dimension; given ones must match it). 0 or an exit code with the
 * message set. */
int knn_data_load(mpmap_app *app, knn_data *data);
void knn_data_free(knn_data *data);

#endif
