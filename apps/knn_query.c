/*
 * knn_query: exact k nearest neighbours of many query points, in parallel.
 *
 * One task per query. Every rank builds the same kd-tree over the data once
 * (knn_kernel.h), from the copy its node shares (knn_data.h), and answers
 * the chunks of queries it is handed with knn_tree_query_batch. A task's
 * record is its k distances followed by its k row indices; rank 0 streams
 * them in query order into /distance and /index of knn_query.h5. The tree
 * returns exactly what a brute-force search returns (ties go to the lower
 * row), so results are bitwise identical for any rank count, schedule and
 * chunk size.
 */
#define _POSIX_C_SOURCE 200809L
#include "knn_data.h"
#include "knn_kernel.h"
#include "mpmap_app.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Chunks per rank the schedule is capped to (mpmap_app_spread_chunks):
 * rank 0, which also serves the workers, answers fewer queries per second
 * than a worker, and small last chunks even the finish. */
#define KNN_CHUNKS_PER_RANK 32

/* A number macro as text, for --help's defaults. */
#define KNN_TEXT_(x) #x
#define KNN_TEXT(x) KNN_TEXT_(x)

typedef struct knn_problem {
    mpmap_app_problem problem;
    knn_data in;
    /* flags */
    int64_t k, leaf_size;
    /* this rank */
    knn_tree *tree; /* its own */
    double build_time;
    /* answers of one batch before they are interleaved into records */
    double *batch_dist;
    int64_t *batch_index;
    int64_t batch_rows;
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
    int rc = knn_tree_query_batch(p->tree, p->in.queries_data + begin * p->in.d, rows, (int)p->k,
                                  p->batch_dist, p->batch_index);
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

/* Rank 0: flags that only apply to synthetic points, and sizes. */
static int knn_check(mpmap_app *app, void *ctx)
{
    const knn_problem *p = ctx;
    return knn_data_check(app, &p->in, p->k);
}

/* Every rank: the data and queries, the fields, then this rank's kd-tree. */
static int knn_setup(mpmap_app *app, void *ctx)
{
    knn_problem *p = ctx;
    const knn_data *x = &p->in;
    int code = knn_data_load(app, &p->in);
    if (code != 0)
        return code;
    if (p->k > x->n)
        return mpmap_app_usage(app, "-k: %lld neighbours but the data has only %lld point%s",
                               (long long)p->k, (long long)x->n, x->n == 1 ? "" : "s");
    if (!mpmap_app_fits_in_memory(x->m, (size_t)p->k * (sizeof(double) + sizeof(int64_t))))
        return mpmap_app_usage(app,
                               "-k: %lld neighbours for each of %lld queries do not fit in "
                               "memory",
                               (long long)p->k, (long long)x->m);

    mpmap_app_problem *q = &p->problem;
    /* clang-format off */
    mpmap_app_task_axis(app, q, &(mpmap_app_coord){ .name = "query", .type = MPMAP_INT64,
                                                    .n = x->m,
                                                    .long_name = "row of the queries (0-based)" });
    q->fields[q->nfields++] = (mpmap_app_field){
        .name = "distance", .type = MPMAP_DOUBLE, .rank = 1, .shape = { p->k },
        .dims = { "neighbour" },
        .long_name = "Euclidean distance from the query to its neighbour, ascending" };
    q->fields[q->nfields++] = (mpmap_app_field){
        .name = "index", .type = MPMAP_INT64, .rank = 1, .shape = { p->k }, .dims = { "neighbour" },
        .long_name = "row of the data (0-based) of the neighbour; equal distances go to the "
                     "lower row" };
    q->coords[q->ncoords++] = (mpmap_app_coord){ .name = "neighbour", .type = MPMAP_INT64,
                                                 .n = p->k,
                                                 .long_name = "rank of the neighbour, 0 = nearest" };
    /* clang-format on */
    /* Resuming needs the same points: the fingerprint covers the shapes and
     * bytes of both inputs, and the effective k (a default may change). */
    mpmap_app_fingerprint_matrix(app, q, "data", x->data, x->n, x->d);
    mpmap_app_fingerprint_matrix(app, q, "queries", x->queries_data, x->m, x->d);
    size_t used = strlen(q->fingerprint);
    snprintf(q->fingerprint + used, sizeof q->fingerprint - used, " k=%lld", (long long)p->k);
    mpmap_app_spread_chunks(app, q, KNN_CHUNKS_PER_RANK, (size_t)p->k * 16);

    /* Every rank its own tree: the private copy of the points in leaf order
     * answers about twice as fast as reading the shared array through a
     * permutation, for n * d * 8 bytes per rank. */
    double start = MPI_Wtime();
    if (knn_tree_build_ex(x->data, x->n, x->d, (int)p->leaf_size, KNN_TREE_COPY_POINTS, &p->tree) !=
        KNN_OK)
        return mpmap_app_failure(app,
                                 "cannot build the kd-tree over %lld x %d points: out of "
                                 "memory",
                                 (long long)x->n, x->d);
    p->build_time = MPI_Wtime() - start;
    return 0;
}

/* Rank 0, after a successful run: sizes and sources as root attributes. */
static int knn_finish(mpmap_app *app, const mpmap_report *report, void *ctx)
{
    (void)report;
    const knn_problem *p = ctx;
    const mpmap_app_attr attrs[] = {
        MPMAP_APP_INT64("k", p->k),
        MPMAP_APP_INT64("points", p->in.n),
        MPMAP_APP_INT64("queries", p->in.m),
        MPMAP_APP_INT64("dim", p->in.d),
        MPMAP_APP_INT64("leaf_size", p->leaf_size),
        MPMAP_APP_STRING("data_source", p->in.data_source),
        MPMAP_APP_STRING("query_source", p->in.query_source),
    };
    return mpmap_app_attrs(app, attrs, sizeof attrs / sizeof attrs[0]);
}

static void knn_print(mpmap_app *app, const mpmap_report *report, void *ctx)
{
    (void)app;
    const knn_problem *p = ctx;
    double computed = (double)(report->tasks_done - report->tasks_restored);
    printf("knn_query: %lld nearest of %lld points in %d-D for %lld queries\n", (long long)p->k,
           (long long)p->in.n, p->in.d, (long long)p->in.m);
    printf("  data: %s\n  queries: %s\n", p->in.data_source, p->in.query_source);
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
    knn_data_free(&p->in);
}

int main(int argc, char **argv)
{
    /* clang-format off */
    knn_problem p = { .in = { .points = 100000, .queries = 10000, .dim = 8, .seed = 1 }, .k = 5,
                      .leaf_size = KNN_DEFAULT_LEAF_SIZE };
    knn_data *x = &p.in;
    mpmap_option options[] = {
        { .name = "--data", .kind = MPMAP_OPT_STRING, .target = &x->data_spec,
          .metavar = "FILE.h5:/DATASET",
          .help = "points searched: an n x d float64 dataset (default: synthetic uniform)" },
        { .name = "--queries", .kind = MPMAP_OPT_STRING, .target = &x->query_spec,
          .metavar = "FILE.h5:/DATASET",
          .help = "query points: an m x d float64 dataset (default: synthetic uniform)" },
        { .name = "--points", .kind = MPMAP_OPT_INT64, .target = &x->points, .metavar = "N",
          .help = "synthetic data points, uniform in [0,1)^D", .default_text = "100000",
          .min = 1, .max = 1e12, .seen = &x->points_seen },
        { .name = "--queries-count", .kind = MPMAP_OPT_INT64, .target = &x->queries,
          .metavar = "M", .help = "synthetic query points, uniform in [0,1)^D",
          .default_text = "10000", .min = 1, .max = 1e12, .seen = &x->queries_seen },
        { .name = "--dim", .kind = MPMAP_OPT_INT64, .target = &x->dim, .metavar = "D",
          .help = "dimension of the synthetic points", .default_text = "8", .min = 1,
          .max = 4096, .seen = &x->dim_seen },
        { .name = "--seed", .kind = MPMAP_OPT_INT64, .target = &x->seed, .metavar = "S",
          .help = "seed of the synthetic points", .default_text = "1", .min = 0, .max = 9.2e18,
          .seen = &x->seed_seen },
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
    /* clang-format on */
    return mpmap_app_main(argc, argv, &def);
}
