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
#include "app_common.h"
#include "knn_kernel.h"
#include "mpmap_rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of each output dataset rank 0 gathers before one write: small
 * chunks (--schedule dynamic --chunk 1) must not turn into one HDF5 write
 * per query. */
#define KNN_SINK_BLOCK_BYTES ((int64_t)1 << 20)

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

/* Longest "FILE.h5:/DATASET" or synthetic description kept for the output. */
#define KNN_SOURCE_MAX 4200

typedef struct knn_problem {
    app *a; /* first: the shared job callbacks (app_job_progress/trace) find it here */
    /* inputs, on every rank (node-shared, read-only) */
    const double *data; /* n x d */
    int64_t n;
    int d;
    const double *queries; /* m x d */
    int64_t m;
    int k;
    int leaf_size;
    knn_tree *tree; /* this rank's own */
    size_t record_size;
    /* this rank: answers of one batch before they are interleaved into records */
    double *batch_dist;
    int64_t *batch_index;
    int64_t batch_rows;
    /* rank 0: output */
    mpmap_h5_dataset *dist_ds, *index_ds;
    double *block_dist;    /* block_rows x k distances of queries block_first.. */
    int64_t *block_index;  /* block_rows x k indices */
    int64_t block_rows;    /* capacity in queries */
    int64_t block_first;   /* query of row 0 */
    int64_t block_count;   /* queries held */
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
        return mpmap_task_fail(err, begin, 1, "out of memory for %lld queries of %d neighbours",
                               (long long)rows, p->k);
    int rc = knn_tree_query_batch(p->tree, p->queries + begin * p->d, rows, p->k, p->batch_dist,
                                  p->batch_index);
    if (rc != KNN_OK) /* only on arguments the validation has ruled out */
        return mpmap_task_fail(err, begin, 1, "cannot answer queries %lld-%lld (%s)",
                               (long long)begin, (long long)(end - 1), mpmap_strerror(rc));
    size_t row_bytes = (size_t)p->k * sizeof(double);
    char *out = records;
    for (int64_t r = 0; r < rows; r++) {
        char *rec = out + (size_t)r * p->record_size;
        memcpy(rec, p->batch_dist + r * p->k, row_bytes);
        memcpy(rec + row_bytes, p->batch_index + r * p->k, (size_t)p->k * sizeof(int64_t));
    }
    return 0;
}

/* Rank 0: writes the held block to /distance and /index and empties it. */
static int knn_flush(knn_problem *p)
{
    if (p->block_count == 0)
        return 0;
    if (mpmap_h5_dataset_write_rows(p->dist_ds, p->block_first, p->block_count, p->block_dist) != 0 ||
        mpmap_h5_dataset_write_rows(p->index_ds, p->block_first, p->block_count, p->block_index) != 0)
        return -1;
    p->block_first += p->block_count;
    p->block_count = 0;
    return 0;
}

/*
 * Rank 0: records arrive in ascending query order, each once, so the block
 * always holds one contiguous run of queries; records are split into the
 * two datasets as they are copied in.
 */
static int knn_sink(int64_t begin, int64_t end, const void *records, const int32_t *status,
                    void *ctx)
{
    (void)status; /* a failed task stops the run (--on-error stop); its record is zeros otherwise */
    knn_problem *p = ctx;
    if (p->block_count > 0 && p->block_first + p->block_count != begin)
        return -1; /* out of order: the library's contract is broken */
    if (p->block_count == 0)
        p->block_first = begin;
    size_t row_bytes = (size_t)p->k * sizeof(double);
    const char *in = records;
    for (int64_t t = begin; t < end; t++) {
        const char *rec = in + (size_t)(t - begin) * p->record_size;
        memcpy(p->block_dist + p->block_count * p->k, rec, row_bytes);
        memcpy(p->block_index + p->block_count * p->k, rec + row_bytes,
               (size_t)p->k * sizeof(int64_t));
        p->block_count++;
        if (p->block_count == p->block_rows && knn_flush(p) != 0)
            return -1;
    }
    return 0;
}

/*
 * The points of one input: FILE.h5:/DATASET read by rank 0, or `rows`
 * uniform rows in [0,1)^cols drawn by each node's first rank (row i is
 * random stream i, so they never depend on the rank count). Either way one
 * copy per node. Returns 0 or an exit code, the same on every rank.
 */
static int knn_load(app *a, const char *flag, const char *spec, uint64_t seed, int64_t rows,
                    int64_t cols, app_shared *out, int64_t *out_rows, int64_t *out_cols)
{
    if (spec)
        return app_load_matrix(a, flag, spec, out, out_rows, out_cols);
    if (app_shared_alloc(a, rows * cols, out) != 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s: %lld x %lld points do not fit in memory", flag,
                 (long long)rows, (long long)cols);
        return app_agree(a, APP_EXIT_USAGE, msg);
    }
    if (out->node_leader)
        mpmap_rng_rows_uniform(seed, 0, (size_t)rows, (size_t)cols, out->data);
    app_shared_publish(a, out, false);
    *out_rows = rows;
    *out_cols = cols;
    return 0;
}

/* Rank 0: the output file and the datasets that stream during the run. */
static int create_outputs(knn_problem *p, app *a, char *msg, size_t msglen)
{
    if (app_create_output(a, msg, msglen) != 0)
        return APP_EXIT_FAILED;
    int64_t row_bytes = (int64_t)p->k * (int64_t)sizeof(double);
    p->block_rows = KNN_SINK_BLOCK_BYTES / row_bytes > 0 ? KNN_SINK_BLOCK_BYTES / row_bytes : 1;
    if (p->block_rows > p->m)
        p->block_rows = p->m;
    p->block_dist = malloc((size_t)(p->block_rows * p->k) * sizeof *p->block_dist);
    p->block_index = malloc((size_t)(p->block_rows * p->k) * sizeof *p->block_index);
    if (!p->block_dist || !p->block_index) {
        snprintf(msg, msglen, "out of memory");
        return APP_EXIT_FAILED;
    }
    /* The writer creates the int64 index coordinates /query and /neighbour. */
    const char *dims[] = { "query", "neighbour" };
    int64_t shape[] = { p->m, p->k };
    mpmap_h5 *f = a->h5;
    int rc = mpmap_h5_dataset_create(f, "/distance", H5T_NATIVE_DOUBLE, 2, shape, dims, &p->dist_ds);
    if (rc == 0)
        rc = mpmap_h5_attr_string(f, "/distance", "long_name",
                                  "Euclidean distance from the query to its neighbour, ascending");
    if (rc == 0)
        rc = mpmap_h5_dataset_create(f, "/index", H5T_NATIVE_INT64, 2, shape, dims, &p->index_ds);
    if (rc == 0)
        rc = mpmap_h5_attr_string(f, "/index", "long_name",
                                  "row of the data (0-based) of the neighbour; equal distances "
                                  "go to the lower row");
    if (rc == 0)
        rc = mpmap_h5_attr_string(f, "/query", "long_name", "row of the queries (0-based)");
    if (rc == 0)
        rc = mpmap_h5_attr_string(f, "/neighbour", "long_name",
                                  "rank of the neighbour, 0 = nearest");
    return rc != 0 ? app_output_failed(a, msg, msglen) : 0;
}

/* Rank 0: closes the result datasets if they are open (before the output is
 * committed or removed). */
static void close_outputs(knn_problem *p)
{
    if (p->dist_ds)
        mpmap_h5_dataset_close(p->dist_ds);
    if (p->index_ds)
        mpmap_h5_dataset_close(p->index_ds);
    p->dist_ds = p->index_ds = NULL;
}

/* Rank 0, after a successful run: sizes, sources and provenance as root attributes. */
static int write_summary(const knn_problem *p, app *a, const mpmap_report *report,
                         const char *data_source, const char *query_source)
{
    mpmap_h5 *f = a->h5;
    int rc = mpmap_h5_attr_int64(f, "/", "k", p->k);
    if (rc == 0)
        rc = mpmap_h5_attr_int64(f, "/", "points", p->n);
    if (rc == 0)
        rc = mpmap_h5_attr_int64(f, "/", "queries", p->m);
    if (rc == 0)
        rc = mpmap_h5_attr_int64(f, "/", "dim", p->d);
    if (rc == 0)
        rc = mpmap_h5_attr_int64(f, "/", "leaf_size", p->leaf_size);
    if (rc == 0)
        rc = mpmap_h5_attr_string(f, "/", "data_source", data_source);
    if (rc == 0)
        rc = mpmap_h5_attr_string(f, "/", "query_source", query_source);
    if (rc == 0)
        rc = app_write_provenance(a, report, 0, NULL, NULL);
    return rc;
}

int main(int argc, char **argv)
{
    app a;
    app_init(&a, "knn_query", &argc, &argv);

    const char *data_spec = NULL, *query_spec = NULL;
    int64_t points = 100000, queries = 10000, dim = 8, seed = 1, k = 5,
            leaf_size = KNN_DEFAULT_LEAF_SIZE;
    int points_seen = 0, queries_seen = 0, dim_seen = 0, seed_seen = 0;
    char leaf_default[16];
    snprintf(leaf_default, sizeof leaf_default, "%d", KNN_DEFAULT_LEAF_SIZE);

    app_add_option(&a, (mpmap_option){ .name = "--data", .kind = MPMAP_OPT_STRING, .target = &data_spec,
                                       .metavar = "FILE.h5:/DATASET",
                                       .help = "points searched: an n x d float64 dataset (default: synthetic uniform)" });
    app_add_option(&a, (mpmap_option){ .name = "--queries", .kind = MPMAP_OPT_STRING,
                                       .target = &query_spec, .metavar = "FILE.h5:/DATASET",
                                       .help = "query points: an m x d float64 dataset (default: synthetic uniform)" });
    app_add_option(&a, (mpmap_option){ .name = "--points", .kind = MPMAP_OPT_INT64, .target = &points,
                                       .metavar = "N", .help = "synthetic data points, uniform in [0,1)^D",
                                       .default_text = "100000", .min = 1, .max = 1e12,
                                       .seen = &points_seen });
    app_add_option(&a, (mpmap_option){ .name = "--queries-count", .kind = MPMAP_OPT_INT64,
                                       .target = &queries, .metavar = "M",
                                       .help = "synthetic query points, uniform in [0,1)^D",
                                       .default_text = "10000", .min = 1, .max = 1e12,
                                       .seen = &queries_seen });
    app_add_option(&a, (mpmap_option){ .name = "--dim", .kind = MPMAP_OPT_INT64, .target = &dim,
                                       .metavar = "D", .help = "dimension of the synthetic points",
                                       .default_text = "8", .min = 1, .max = 4096, .seen = &dim_seen });
    app_add_option(&a, (mpmap_option){ .name = "--seed", .kind = MPMAP_OPT_INT64, .target = &seed,
                                       .metavar = "S", .help = "seed of the synthetic points",
                                       .default_text = "1", .min = 0, .max = 9.2e18, .seen = &seed_seen });
    app_add_option(&a, (mpmap_option){ .short_name = 'k', .kind = MPMAP_OPT_INT64, .target = &k,
                                       .metavar = "K", .help = "neighbours per query (at most the data's points)",
                                       .default_text = "5", .min = 1, .max = 1e6 });
    /* The tree's shape changes speed, never results: resuming with another
     * leaf size is fine, so it is left out of the fingerprint. */
    app_add_option(&a, (mpmap_option){ .name = "--leaf-size", .kind = MPMAP_OPT_INT64,
                                       .target = &leaf_size, .metavar = "L",
                                       .help = "most points in a kd-tree leaf (speed only)",
                                       .default_text = leaf_default, .min = 1, .max = 1e9,
                                       .flags = MPMAP_OPT_NO_FINGERPRINT });

    int code = app_parse(&a, "knn_query.h5",
                         "Exact k nearest neighbours of many query points (kd-tree), in parallel.");
    if (code >= 0)
        return app_exit(&a, code);

    /* Checks that need no data; rank 0 decides for everyone. */
    char msg[APP_MESSAGE_MAX] = "";
    code = 0;
    const char *misplaced = NULL;
    if (data_spec && points_seen)
        misplaced = "--points: only applies to synthetic data, not with --data";
    else if (query_spec && queries_seen)
        misplaced = "--queries-count: only applies to synthetic queries, not with --queries";
    else if (data_spec && dim_seen)
        misplaced = "--dim: only applies to synthetic points, not with --data";
    else if (data_spec && query_spec && seed_seen)
        misplaced = "--seed: only applies to synthetic points, not with --data and --queries";
    if (misplaced) {
        snprintf(msg, sizeof msg, "%s", misplaced);
        code = APP_EXIT_USAGE;
    }
    if (code == 0 && a.rank == 0)
        code = app_check_output(&a, NULL, msg, sizeof msg);
    code = app_agree(&a, code, msg);
    if (code != 0)
        return app_exit(&a, code);

    /* Data first: synthetic queries take the data's dimension. */
    knn_problem p = { .a = &a, .k = (int)k, .leaf_size = (int)leaf_size };
    app_shared data = { .window = MPI_WIN_NULL, .node = MPI_COMM_NULL, .leaders = MPI_COMM_NULL };
    app_shared qs = { .window = MPI_WIN_NULL, .node = MPI_COMM_NULL, .leaders = MPI_COMM_NULL };
    int64_t rows = 0, cols = 0, qrows = 0, qcols = 0;
    code = knn_load(&a, data_spec ? "--data" : "--points", data_spec,
                    mpmap_rng_subseed((uint64_t)seed, KNN_STREAM_DATA), points, dim, &data, &rows,
                    &cols);
    if (code != 0)
        return app_exit(&a, code);
    code = knn_load(&a, query_spec ? "--queries" : "--queries-count", query_spec,
                    mpmap_rng_subseed((uint64_t)seed, KNN_STREAM_QUERIES), queries, cols, &qs,
                    &qrows, &qcols);
    if (code != 0) {
        app_shared_free(&data);
        return app_exit(&a, code);
    }
    p.data = data.data;
    p.n = rows;
    p.d = (int)cols;
    p.queries = qs.data;
    p.m = qrows;

    code = 0;
    if (qcols != cols) {
        snprintf(msg, sizeof msg,
                 "--queries: the queries are %lld x %lld but the data is %lld x %lld; "
                 "both need the same number of columns",
                 (long long)qrows, (long long)qcols, (long long)rows, (long long)cols);
        code = APP_EXIT_USAGE;
    } else if (k > rows) {
        snprintf(msg, sizeof msg, "-k: %lld neighbours but the data has only %lld point%s",
                 (long long)k, (long long)rows, rows == 1 ? "" : "s");
        code = APP_EXIT_USAGE;
    }
    code = app_agree(&a, code, msg);
    if (code != 0)
        goto done;

    /* Resuming needs the same points: the fingerprint covers the shapes and
     * bytes of both inputs, and the effective k (a default may change). Rank
     * 0 hashes, so the other ranks need not read the data once more. */
    char extra[192] = "";
    if (a.rank == 0) {
        uint64_t hd = app_hash_bytes(p.data, (size_t)(p.n * p.d) * sizeof(double));
        uint64_t hq = app_hash_bytes(p.queries, (size_t)(p.m * p.d) * sizeof(double));
        snprintf(extra, sizeof extra, "data=%lldx%d:%016llx queries=%lldx%d:%016llx k=%d",
                 (long long)p.n, p.d, (unsigned long long)hd, (long long)p.m, p.d,
                 (unsigned long long)hq, p.k);
    }
    MPI_Bcast(extra, (int)sizeof extra, MPI_CHAR, 0, a.comm);
    app_configure(&a, extra);
    /* Results do not depend on chunking, so this only changes the balance. */
    int64_t cap = (p.m + (int64_t)a.size * KNN_CHUNKS_PER_RANK - 1) /
                  ((int64_t)a.size * KNN_CHUNKS_PER_RANK);
    int64_t record_bytes = (int64_t)p.k * (int64_t)(sizeof(double) + sizeof(int64_t));
    int64_t records_cap = KNN_MAX_CHUNK_BYTES / record_bytes > 0 ? KNN_MAX_CHUNK_BYTES / record_bytes : 1;
    a.config.max_chunk = cap < records_cap ? cap : records_cap;

    /* Every rank its own tree: the private copy of the points in leaf order
     * answers about twice as fast as reading the shared array through a
     * permutation, for n * d * 8 bytes per rank. */
    double build_start = MPI_Wtime();
    int built = knn_tree_build_ex(p.data, p.n, p.d, p.leaf_size, KNN_TREE_COPY_POINTS, &p.tree) ==
                KNN_OK;
    int all_built = 0;
    MPI_Allreduce(&built, &all_built, 1, MPI_INT, MPI_MIN, a.comm);
    double build_time = MPI_Wtime() - build_start;
    p.record_size = (size_t)p.k * (sizeof(double) + sizeof(int64_t));

    code = all_built ? 0 : APP_EXIT_FAILED;
    snprintf(msg, sizeof msg, "cannot build the kd-tree over %lld x %d points: out of memory",
             (long long)p.n, p.d);
    if (code == 0 && a.rank == 0)
        code = create_outputs(&p, &a, msg, sizeof msg);
    code = app_agree(&a, code, msg);
    if (code != 0)
        goto done;

    mpmap_job job = { .ntasks = p.m, .record_size = p.record_size, .map = knn_map, .context = &p,
                      .sink = knn_sink, .trace = app_job_trace, .progress = app_job_progress };
    mpmap_report report;
    int status = mpmap_run(a.comm, &a.config, &job, &report);

    char data_source[KNN_SOURCE_MAX], query_source[KNN_SOURCE_MAX];
    if (data_spec)
        snprintf(data_source, sizeof data_source, "%s", data_spec);
    else
        snprintf(data_source, sizeof data_source, "synthetic uniform [0,1)^%d, seed %lld", p.d,
                 (long long)seed);
    if (query_spec)
        snprintf(query_source, sizeof query_source, "%s", query_spec);
    else
        snprintf(query_source, sizeof query_source, "synthetic uniform [0,1)^%d, seed %lld", p.d,
                 (long long)seed);
    if (status == MPMAP_OK && a.rank == 0) {
        if (knn_flush(&p) != 0 || mpmap_h5_dataset_close(p.dist_ds) != 0 ||
            mpmap_h5_dataset_close(p.index_ds) != 0 ||
            write_summary(&p, &a, &report, data_source, query_source) != 0) {
            status = MPMAP_EHDF5;
            app_output_failed(&a, report.message, sizeof report.message);
        }
        p.dist_ds = p.index_ds = NULL;
    } else {
        close_outputs(&p);
    }
    MPI_Bcast(&status, 1, MPI_INT, 0, a.comm);
    code = app_finish(&a, status, &report);

    if (code == APP_EXIT_OK && a.rank == 0 && !a.common.quiet) {
        double computed = (double)(report.tasks_done - report.tasks_restored);
        printf("knn_query: %d nearest of %lld points in %d-D for %lld queries\n", p.k,
               (long long)p.n, p.d, (long long)p.m);
        printf("  data: %s\n  queries: %s\n", data_source, query_source);
        printf("  kd-tree (leaf size %d) built in %.3f s on each rank\n", p.leaf_size, build_time);
        printf("  %d rank%s, %s schedule, %.3f s, %.3g queries/s", a.size, a.size == 1 ? "" : "s",
               mpmap_schedule_name(a.config.schedule), report.wall_time,
               report.wall_time > 0 ? computed / report.wall_time : 0.0);
        if (report.tasks_restored > 0)
            printf(" (%lld queries resumed from checkpoint)", (long long)report.tasks_restored);
        printf("\n  wrote %s\n", a.common.output);
    }
done:
    close_outputs(&p);
    free(p.batch_dist);
    free(p.batch_index);
    free(p.block_dist);
    free(p.block_index);
    knn_tree_free(p.tree);
    app_shared_free(&qs);
    app_shared_free(&data);
    return app_exit(&a, code);
}
