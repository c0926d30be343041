/*
 * knn_query: exact k nearest neighbours of many query points, in parallel.
 *
 * One task per query. Every rank builds the same kd-tree over the data once
 * (knn_kernel.h), from the copy its node shares, and answers the chunks of
 * queries it is handed with knn_tree_query_batch. A task's record is its k
 * distances followed by its k row indices; rank 0 streams them in query
 * order into /distance and /index of knn_query.h5. The tree returns exactly
 * what a brute-force search returns (ties go to the lower row), so results
 * are bitwise identical for any rank count, schedule and chunk size.
 */
#define _POSIX_C_SOURCE 200809L
#include "knn_kernel.h"
#include "mpmap_app.h"
#include "mpmap_rng.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Chunks per rank the schedule is capped to. Guided's first chunk is half
 * the queries at -n 2; capped at m/(32 P), results stream to rank 0 and the
 * checkpoint in short pieces, and the last chunks are small enough to even
 * the finish (rank 0, which also serves the workers, answers fewer queries
 * per second than a worker).
 */
#define KNN_CHUNKS_PER_RANK 32
/* The runtime's own cap when max_chunk is 0: about 4 MiB of records. */
#define KNN_MAX_CHUNK_BYTES ((int64_t)4 << 20)

/* Purposes for mpmap_rng_subseed: the synthetic data and the synthetic
 * queries are independent families of streams under one --seed. */
enum { KNN_STREAM_DATA = 1, KNN_STREAM_QUERIES = 2 };

/* A number macro as text, for --help's defaults. */
#define KNN_TEXT_(x) #x
#define KNN_TEXT(x) KNN_TEXT_(x)

/* Longest "FILE.h5:/DATASET" or synthetic description kept for the output. */
#define KNN_SOURCE_MAX 4200

typedef struct knn_problem {
    mpmap_app_problem problem;
    /* flags */
    const char *data_spec, *query_spec;
    int64_t points, queries, dim, seed, k, leaf_size;
    int points_seen, queries_seen, dim_seen, seed_seen;
    /* inputs, on every rank (node-shared, read-only) */
    mpmap_app_shared *data_shared, *query_shared;
    const double *data; /* n x d */
    int64_t n;
    int d;
    const double *queries_data; /* m x d */
    int64_t m;
    knn_tree *tree; /* this rank's own */
    double build_time;
    /* this rank: answers of one batch before they are interleaved into records */
    double *batch_dist;
    int64_t *batch_index;
    int64_t batch_rows;
    char data_source[KNN_SOURCE_MAX], query_source[KNN_SOURCE_MAX];
} knn_problem;

/* Grows the batch buffers to hold `rows` queries; 0 or -1 (out of memory). */
static int knn_reserve(knn_problem *p, int64_t rows)
{
    if (rows <= p->batch_rows)
        return 0;
    size_t count = (size_t)rows * (size_t)p->k;
    double *dist = realloc(p->batch_dist, count * sizeof *dist);
    if (!dist)
        return -1;
    p->batch_dist = dist;
    int64_t *index = realloc(p->batch_index, count * sizeof *index);
    if (!index)
        return -1;
    p->batch_index = index;
    p->batch_rows = rows;
    return 0;
}

/*
 * Record of query t: k doubles (distances, ascending), then k int64 (rows).
 * The whole chunk goes to the tree in one batch, which answers the queries
 * in the order of the leaf they fall in (much better for the cache than the
 * given order); the answers do not depend on the batch.
 */
static int knn_map(int64_t begin, int64_t end, void *records, mpmap_task_error *err, void *ctx)
{
    knn_problem *p = ctx;
    int64_t rows = end - begin;
    if (knn_reserve(p, rows) != 0)
        return mpmap_task_fail(err, begin, 1, "out of memory for %lld queries of %lld neighbours",
                               (long long)rows, (long long)p->k);
    int rc = knn_tree_query_batch(p->tree, p->queries_data + begin * p->d, rows, (int)p->k, p->batch_dist,
                                  p->batch_index);
    if (rc != KNN_OK) /* only on arguments the validation has ruled out */
        return mpmap_task_fail(err, begin, 1, "cannot answer queries %lld-%lld (%s)",
                               (long long)begin, (long long)(end - 1), mpmap_strerror(rc));
    size_t row_bytes = (size_t)p->k * sizeof(double);
    char *out = records;
    for (int64_t r = 0; r < rows; r++) {
        char *rec = out + (size_t)r * p->problem.record_size;
        memcpy(rec, p->batch_dist + r * p->k, row_bytes);
        memcpy(rec + row_bytes, p->batch_index + r * p->k, (size_t)p->k * sizeof(int64_t));
    }
    return 0;
}

/* Rank 0: flags that only apply to synthetic points. */
static int knn_check(mpmap_app *app, void *ctx)
{
    const knn_problem *p = ctx;
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
        return mpmap_app_usage(app, "--points: %lld points x %lld dimensions (one copy per rank "
                                    "for its kd-tree) do not fit in memory",
                               (long long)p->points, (long long)p->dim);
    if (!p->query_spec &&
        !mpmap_app_fits_in_memory(p->queries, (size_t)(p->dim + 2 * p->k) * sizeof(double)))
        return mpmap_app_usage(app, "--queries-count: %lld queries x %lld neighbours (-k) do not "
                                    "fit in memory",
                               (long long)p->queries, (long long)p->k);
    return 0;
}

static void describe_source(char *buf, const char *spec, int d, int64_t seed)
{
    if (spec)
        snprintf(buf, KNN_SOURCE_MAX, "%s", spec);
    else
        snprintf(buf, KNN_SOURCE_MAX, "synthetic uniform [0,1)^%d, seed %lld", d, (long long)seed);
}

/* Every rank: data first (synthetic queries take its dimension), then the
 * queries, then this rank's kd-tree. */
static int knn_setup(mpmap_app *app, void *ctx)
{
    knn_problem *p = ctx;
    int64_t rows = 0, cols = 0, qrows = 0, qcols = 0;
    /* Synthetic points are uniform in [0,1)^D, one copy per node. */
    int code = mpmap_app_input_matrix(app, p->data_spec ? "--data" : "--points", p->data_spec,
                                      mpmap_rng_rows_uniform,
                                      mpmap_rng_subseed((uint64_t)p->seed, KNN_STREAM_DATA),
                                      p->points, p->dim, &p->data_shared, &rows, &cols);
    if (code == 0)
        code = mpmap_app_input_matrix(
            app, p->query_spec ? "--queries" : "--queries-count", p->query_spec,
            mpmap_rng_rows_uniform, mpmap_rng_subseed((uint64_t)p->seed, KNN_STREAM_QUERIES),
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
    if (p->k > rows)
        return mpmap_app_usage(app, "-k: %lld neighbours but the data has only %lld point%s",
                               (long long)p->k, (long long)rows, rows == 1 ? "" : "s");
    if (!mpmap_app_fits_in_memory(qrows, (size_t)p->k * (sizeof(double) + sizeof(int64_t))))
        return mpmap_app_usage(app, "-k: %lld neighbours for each of %lld queries do not fit in "
                                    "memory",
                               (long long)p->k, (long long)qrows);
    describe_source(p->data_source, p->data_spec, p->d, p->seed);
    describe_source(p->query_source, p->query_spec, p->d, p->seed);

    mpmap_app_problem *q = &p->problem;
    q->ntasks = p->m;
    q->task_dim = "query";
    q->fields[q->nfields++] = (mpmap_app_field){
        .name = "distance", .type = MPMAP_DOUBLE, .rank = 1, .shape = { p->k },
        .dims = { "neighbour" },
        .long_name = "Euclidean distance from the query to its neighbour, ascending" };
    q->fields[q->nfields++] = (mpmap_app_field){
        .name = "index", .type = MPMAP_INT64, .rank = 1, .shape = { p->k }, .dims = { "neighbour" },
        .long_name = "row of the data (0-based) of the neighbour; equal distances go to the "
                     "lower row" };
    q->coords[q->ncoords++] = (mpmap_app_coord){ .name = "query", .type = MPMAP_INT64, .n = p->m,
                                                 .long_name = "row of the queries (0-based)" };
    q->coords[q->ncoords++] = (mpmap_app_coord){ .name = "neighbour", .type = MPMAP_INT64,
                                                 .n = p->k,
                                                 .long_name = "rank of the neighbour, 0 = nearest" };
    /* Resuming needs the same points: the fingerprint covers the shapes and
     * bytes of both inputs, and the effective k (a default may change). Rank
     * 0 hashes, so the other ranks need not read the data once more. */
    if (mpmap_app_rank(app) == 0)
        snprintf(q->fingerprint, sizeof q->fingerprint,
                 "data=%lldx%d:%016llx queries=%lldx%d:%016llx k=%lld", (long long)p->n, p->d,
                 (unsigned long long)mpmap_app_hash(p->data, (size_t)(p->n * p->d) * 8),
                 (long long)p->m, p->d,
                 (unsigned long long)mpmap_app_hash(p->queries_data, (size_t)(p->m * p->d) * 8),
                 (long long)p->k);
    MPI_Bcast(q->fingerprint, (int)sizeof q->fingerprint, MPI_CHAR, 0, mpmap_app_comm(app));
    /* Results do not depend on chunking, so this only changes the balance. */
    int64_t ranks = mpmap_app_size(app);
    int64_t cap = (p->m + ranks * KNN_CHUNKS_PER_RANK - 1) / (ranks * KNN_CHUNKS_PER_RANK);
    int64_t records_cap = KNN_MAX_CHUNK_BYTES / (p->k * 16) > 0 ? KNN_MAX_CHUNK_BYTES / (p->k * 16)
                                                                 : 1;
    q->max_chunk = cap < records_cap ? cap : records_cap;

    /* Every rank its own tree: the private copy of the points in leaf order
     * answers about twice as fast as reading the shared array through a
     * permutation, for n * d * 8 bytes per rank. */
    double start = MPI_Wtime();
    if (knn_tree_build_ex(p->data, p->n, p->d, (int)p->leaf_size, KNN_TREE_COPY_POINTS,
                          &p->tree) != KNN_OK)
        return mpmap_app_failure(app, "cannot build the kd-tree over %lld x %d points: out of "
                                      "memory",
                                 (long long)p->n, p->d);
    p->build_time = MPI_Wtime() - start;
    return 0;
}

/* Rank 0, after a successful run: sizes and sources as root attributes. */
static int knn_finish(mpmap_app *app, const mpmap_report *report, void *ctx)
{
    (void)report;
    const knn_problem *p = ctx;
    int rc = mpmap_app_attr_int64(app, "k", p->k);
    if (rc == 0)
        rc = mpmap_app_attr_int64(app, "points", p->n);
    if (rc == 0)
        rc = mpmap_app_attr_int64(app, "queries", p->m);
    if (rc == 0)
        rc = mpmap_app_attr_int64(app, "dim", p->d);
    if (rc == 0)
        rc = mpmap_app_attr_int64(app, "leaf_size", p->leaf_size);
    if (rc == 0)
        rc = mpmap_app_attr_string(app, "data_source", p->data_source);
    if (rc == 0)
        rc = mpmap_app_attr_string(app, "query_source", p->query_source);
    return rc;
}

static void knn_print(mpmap_app *app, const mpmap_report *report, void *ctx)
{
    (void)app;
    const knn_problem *p = ctx;
    double computed = (double)(report->tasks_done - report->tasks_restored);
    printf("knn_query: %lld nearest of %lld points in %d-D for %lld queries\n", (long long)p->k,
           (long long)p->n, p->d, (long long)p->m);
    printf("  data: %s\n  queries: %s\n", p->data_source, p->query_source);
    printf("  kd-tree (leaf size %lld) built in %.3f s on each rank, %.3g queries/s\n",
           (long long)p->leaf_size, p->build_time,
           report->wall_time > 0 ? computed / report->wall_time : 0.0);
}

static void knn_cleanup(void *ctx)
{
    knn_problem *p = ctx;
    free(p->batch_dist);
    free(p->batch_index);
    knn_tree_free(p->tree);
    mpmap_app_shared_free(p->query_shared);
    mpmap_app_shared_free(p->data_shared);
}

int main(int argc, char **argv)
{
    knn_problem p = { .points = 100000, .queries = 10000, .dim = 8, .seed = 1, .k = 5,
                      .leaf_size = KNN_DEFAULT_LEAF_SIZE };
    mpmap_option options[] = {
        { .name = "--data", .kind = MPMAP_OPT_STRING, .target = &p.data_spec,
          .metavar = "FILE.h5:/DATASET",
          .help = "points searched: an n x d float64 dataset (default: synthetic uniform)" },
        { .name = "--queries", .kind = MPMAP_OPT_STRING, .target = &p.query_spec,
          .metavar = "FILE.h5:/DATASET",
          .help = "query points: an m x d float64 dataset (default: synthetic uniform)" },
        { .name = "--points", .kind = MPMAP_OPT_INT64, .target = &p.points, .metavar = "N",
          .help = "synthetic data points, uniform in [0,1)^D", .default_text = "100000",
          .min = 1, .max = 1e12, .seen = &p.points_seen },
        { .name = "--queries-count", .kind = MPMAP_OPT_INT64, .target = &p.queries,
          .metavar = "M", .help = "synthetic query points, uniform in [0,1)^D",
          .default_text = "10000", .min = 1, .max = 1e12, .seen = &p.queries_seen },
        { .name = "--dim", .kind = MPMAP_OPT_INT64, .target = &p.dim, .metavar = "D",
          .help = "dimension of the synthetic points", .default_text = "8", .min = 1,
          .max = 4096, .seen = &p.dim_seen },
        { .name = "--seed", .kind = MPMAP_OPT_INT64, .target = &p.seed, .metavar = "S",
          .help = "seed of the synthetic points", .default_text = "1", .min = 0, .max = 9.2e18,
          .seen = &p.seed_seen },
        { .short_name = 'k', .kind = MPMAP_OPT_INT64, .target = &p.k, .metavar = "K",
          .help = "neighbours per query (at most the data's points)", .default_text = "5",
          .min = 1, .max = 1e6 },
        /* The tree's shape changes speed, never results: resuming with another
         * leaf size is fine, so it is left out of the fingerprint. */
        { .name = "--leaf-size", .kind = MPMAP_OPT_INT64, .target = &p.leaf_size,
          .metavar = "L", .help = "most points in a kd-tree leaf (speed only)",
          .default_text = KNN_TEXT(KNN_DEFAULT_LEAF_SIZE), .min = 1, .max = 1e9, .flags = MPMAP_OPT_NO_FINGERPRINT },
    };
    mpmap_app_def def = {
        .name = "knn_query", .default_output = "knn_query.h5",
        .summary = "Exact k nearest neighbours of many query points (kd-tree), in parallel.",
        .options = options, .noptions = sizeof options / sizeof options[0], .context = &p,
        .problem = &p.problem, .check = knn_check, .setup = knn_setup, .map = knn_map,
        .finish = knn_finish, .print = knn_print, .cleanup = knn_cleanup, .task_noun = "queries" };
    return mpmap_app_main(argc, argv, &def);
}
