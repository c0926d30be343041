/*
 * Dispatch overhead of mpmap: a job of empty tasks that return nothing, so
 * the run time is the cost of handing out chunks and collecting them.
 *
 *     mpirun -n 2 dispatch SCHEDULE CHUNK NTASKS
 *
 * Rank 0 prints one JSON line: tasks, chunks, wall_time (mpmap_report) and
 * the rates derived from them.
 */
#include <mpmap.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

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
    if (argc != 4 || mpmap_schedule_from_name(argv[1], &config.schedule) != 0 ||
        bench_parse_count(argv[2], &chunk) != 0 || chunk < 1 ||
        bench_parse_count(argv[3], &ntasks) != 0) {
        if (rank == 0)
            fprintf(stderr, "usage: dispatch static|dynamic|guided|factoring CHUNK NTASKS\n");
        MPI_Finalize();
        return 2;
    }
    config.chunk = chunk;

    mpmap_job job = { .ntasks = ntasks, .record_size = 0, .map = bench_empty_map };
    mpmap_report report;
    int rc = mpmap_run(MPI_COMM_WORLD, &config, &job, &report);
    if (rank == 0) {
        if (rc != 0) {
            fprintf(stderr, "dispatch: %s (%s)\n", mpmap_strerror(rc), report.message);
        } else {
            double wall = report.wall_time > 0 ? report.wall_time : 1e-9;
            printf("{\"schedule\": \"%s\", \"chunk\": %lld, \"tasks\": %lld, \"chunks\": %lld, "
                   "\"ranks\": %d, \"wall_time\": %.9g, \"tasks_per_s\": %.6g, "
                   "\"chunks_per_s\": %.6g}\n",
                   mpmap_schedule_name(config.schedule), (long long)chunk, (long long)ntasks,
                   (long long)report.chunks, report.ranks, report.wall_time,
                   (double)ntasks / wall, (double)report.chunks / wall);
        }
    }
    MPI_Finalize();
    return rc == 0 ? 0 : 1;
}
