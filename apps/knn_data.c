/* Where knn_query's points and queries come from; see knn_data.h. */
#define _POSIX_C_SOURCE 200809L
#include "knn_data.h"
#include "mpmap_rng.h"

#include <stdio.h>

/* Purposes for mpmap_rng_subseed: the synthetic data and the synthetic
 * queries are independent families of streams under one --seed. */
enum { KNN_STREAM_DATA = 1, KNN_STREAM_QUERIES = 2 };

int knn_data_check(mpmap_app *app, const knn_data *p, int64_t k)
{
    if (p->data_spec && p->points_seen)
        return mpmap_app_usage(app, "--points: only applies to synthetic data, not with --data");
    if (p->query_spec && p->queries_seen)
        return mpmap_app_usage(app, "--queries-count: only applies to synthetic queries, not "
                                    "with --queries");
    if (p->data_spec && p->dim_seen)
        return mpmap_app_usage(app, "--dim: only applies to synthetic points, not with --data");
    if (p->data_spec && p->query_spec && p->seed_seen)
        return mpmap_app_usage(app, "--seed: only applies to synthetic points, not with --data "
                                    "and --queries");
    /* Sizes before anything is allocated: the synthetic points once per node
     * plus one private kd-tree copy per rank; the synthetic queries plus
     * their results, k distances and k indices each (/distance, /index). */
    size_t ranks = (size_t)mpmap_app_size(app);
    if (!p->data_spec &&
        !mpmap_app_fits_in_memory(p->points, (size_t)p->dim * sizeof(double) * (1 + ranks) + 8))
        return mpmap_app_usage(app,
                               "--points: %lld points x %lld dimensions (one copy per rank "
                               "for its kd-tree) do not fit in memory",
                               (long long)p->points, (long long)p->dim);
    if (!p->query_spec &&
        !mpmap_app_fits_in_memory(p->queries, (size_t)(p->dim + 2 * k) * sizeof(double)))
        return mpmap_app_usage(app,
                               "--queries-count: %lld queries x %lld neighbours (-k) do not "
                               "fit in memory",
                               (long long)p->queries, (long long)k);
    return 0;
}

static void describe_source(char *buf, const char *spec, int d, int64_t seed)
{
    if (spec)
        snprintf(buf, KNN_SOURCE_MAX, "%s", spec);
    else
        snprintf(buf, KNN_SOURCE_MAX, "synthetic uniform [0,1)^%d, seed %lld", d, (long long)seed);
}

int knn_data_load(mpmap_app *app, knn_data *p)
{
    int64_t rows = 0, cols = 0, qrows = 0, qcols = 0;
    /* Synthetic points are uniform in [0,1)^D, one copy per node. */
    int code = mpmap_app_input_matrix(app, p->data_spec ? "--data" : "--points", p->data_spec,
                                      mpmap_rng_rows_uniform,
                                      mpmap_rng_subseed((uint64_t)p->seed, KNN_STREAM_DATA),
                                      p->points, p->dim, &p->data_shared, &rows, &cols);
    if (code == 0)
        code = mpmap_app_input_matrix(app, p->query_spec ? "--queries" : "--queries-count",
                                      p->query_spec, mpmap_rng_rows_uniform,
                                      mpmap_rng_subseed((uint64_t)p->seed, KNN_STREAM_QUERIES),
                                      p->queries, cols, &p->query_shared, &qrows, &qcols);
    if (code != 0)
        return code;
    p->data = mpmap_app_shared_data(p->data_shared);
    p->n = rows;
    p->d = (int)cols;
    p->queries_data = mpmap_app_shared_data(p->query_shared);
    p->m = qrows;
    if (qcols != cols)
        return mpmap_app_usage(app,
                               "--queries: the queries are %lld x %lld but the data is %lld x "
                               "%lld; both need the same number of columns",
                               (long long)qrows, (long long)qcols, (long long)rows,
                               (long long)cols);
    describe_source(p->data_source, p->data_spec, p->d, p->seed);
    describe_source(p->query_source, p->query_spec, p->d, p->seed);
    return 0;
}

void knn_data_free(knn_data *p)
{
    mpmap_app_shared_free(p->query_shared);
    mpmap_app_shared_free(p->data_shared);
}
