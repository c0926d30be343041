/*
 * Dispatch overhead of mpmap: a job of empty tasks, so the run time is the
 * cost of handing out chunks and collecting them.
 *
 *     mpirun -n 2 dispatch SCHEDULE CHUNK NTASKS [--records]
 *
 * Without --records the tasks return nothing. With it every task returns an
 * 8-byte record (its own index), which travels to rank 0 and reaches a sink
 * in task order: the per-task cost of gathering ordered results. The sink
 * checks that every index arrives once and in order.
 *
 * Rank 0 prints one JSON line: tasks, chunks, wall_time (mpmap_report) and
 * the rates derived from them.
 */
#include <mpmap.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bench_empty_map(int64_t begin, int64_t end, void *records, mpmap_task_error *err,
                           void *context)
{
    (void)begin;
    (void)end;
    (void)records;
    (void)err;
    (void)context;
    return 0;
}

static int bench_index_map(int64_t begin, int64_t end, void *records, mpmap_task_error *err,
                           void *context)
{
    (void)err;
    (void)context;
    int64_t *out = records;
    for (int64_t t = begin; t < end; t++)
        out[t - begin] = t;
    return 0;
}

/* Rank 0: the next index expected; any gap or repeat stops the run. */
static int bench_check_sink(int64_t begin, int64_t end, const void *records, const int32_t *status,
                            void *context)
{
    int64_t *next = context;
    const int64_t *in = records;
    if (status != NULL || begin != *next)
        return -1;
    for (int64_t t = begin; t < end; t++)
        if (in[t - begin] != t)
            return -1;
    *next = end;
    return 0;
}

/* Accepts "2e6" as well as "2000000": task counts are easier to read that way. */
static int bench_parse_count(const char *text, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || v < 0 || v > 9.0e18)
        return -1;
    *out = (int64_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    if (MPI_Init(&argc, &argv) != MPI_SUCCESS)
        return 1;
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);

    mpmap_config config;
    mpmap_config_init(&config);
    int64_t chunk = 0, ntasks = 0;
    const int records = argc == 5 && strcmp(argv[4], "--records") == 0;
    if ((argc != 4 && !records) || mpmap_schedule_from_name(argv[1], &config.schedule) != 0 ||
        bench_parse_count(argv[2], &chunk) != 0 || chunk < 1 ||
        bench_parse_count(argv[3], &ntasks) != 0) {
        if (rank == 0)
            fprintf(stderr,
                    "usage: dispatch static|dynamic|guided|factoring CHUNK NTASKS [--records]\n");
        MPI_Finalize();
        return 2;
    }
    config.chunk = chunk;

    int64_t next = 0;
    mpmap_job job = { .ntasks = ntasks, .record_size = 0, .map = bench_empty_map };
    if (records) {
        job.record_size = sizeof(int64_t);
        job.map = bench_index_map;
        job.sink = bench_check_sink;
        job.context = &next;
    }
    mpmap_report report;
    int rc = mpmap_run(MPI_COMM_WORLD, &config, &job, &report);
    if (rank == 0) {
        if (rc == 0 && records && next != ntasks) {
            fprintf(stderr, "dispatch: the sink saw %lld of %lld records\n", (long long)next,
                    (long long)ntasks);
            rc = MPMAP_ECALLBACK;
        }
        if (rc != 0) {
            fprintf(stderr, "dispatch: %s (%s)\n", mpmap_strerror(rc), report.message);
        } else {
            double wall = report.wall_time > 0 ? report.wall_time : 1e-9;
            printf("{\"schedule\": \"%s\", \"chunk\": %lld, \"tasks\": %lld, \"chunks\": %lld, "
                   "\"record_bytes\": %zu, \"ranks\": %d, \"wall_time\": %.9g, "
                   "\"tasks_per_s\": %.6g, \"chunks_per_s\": %.6g}\n",
                   mpmap_schedule_name(config.schedule), (long long)chunk, (long long)ntasks,
                   (long long)report.chunks, job.record_size, report.ranks, report.wall_time,
                   (double)ntasks / wall, (double)report.chunks / wall);
        }
    }
    MPI_Finalize();
    return rc == 0 ? 0 : 1;
}
