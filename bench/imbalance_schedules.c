/*
 * Every schedule on the same heavy-tailed job, optionally with a CPU hog.
 *
 *     mpirun -n P --bind-to none imbalance_schedules MODE NTASKS TOTAL SEED ALPHA
 *            HOG_START HOG_LENGTH REPS SCHEDULE...
 *     imbalance_schedules --list      (every schedule's name, one a line)
 *
 * NTASKS tasks with Pareto(ALPHA) costs (a deterministic function of the
 * task index and SEED, splitmix64), scaled to add up to TOTAL seconds. MODE:
 *   spin   a task burns its cost in CPU time of its thread
 *          (CLOCK_THREAD_CPUTIME_ID): a rank that shares its core with
 *          another process takes longer in wall time, as real work would;
 *   sleep  a task sleeps its cost (no CPU): many ranks on few cores stand
 *          for as many cores. The time actually slept is measured (sleeps
 *          overshoot by tens of microseconds) and summed over the ranks.
 * HOG_LENGTH > 0: for each run, rank 0 starts a thread that spins on the
 * CPU from HOG_START to HOG_START + HOG_LENGTH seconds after the run began,
 * taking a core (as another user's process would) for part of the run.
 *
 * Each SCHEDULE (a name of mpmap_schedule_names, optionally NAME:CHUNK,
 * and/or a ":pure" suffix for manager_computes = 0: rank 0 only manages)
 * runs REPS times, in turn, in one MPI job, with a barrier before each run.
 * Rank 0 prints one JSON line per run: wall_time (mpmap_report), total and
 * max task cost, the largest task's index, actual (slept or spun) total and
 * per rank, chunks; with IMBALANCE_TRACE=1 in the environment also "trace",
 * every chunk as [begin, end, rank, start, finish] (mpmap_job.trace).
 */
#define _POSIX_C_SOURCE 200809L
#include <mpmap.h>

#include "bench_util.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct bench_job {
    double *cost; /* seconds per task */
    int64_t n;
    int sleep;                 /* 1: sleep, 0: spin on thread CPU time */
    double actual;             /* this rank's measured time in tasks */
    struct bench_trace *trace; /* rank 0 with IMBALANCE_TRACE=1, else NULL */
} bench_job;

/* Rank 0's record of the chunks of one run, from mpmap_job.trace. */
typedef struct bench_trace {
    mpmap_trace_entry *items;
    size_t count, capacity;
} bench_trace;

static int bench_trace_add(const mpmap_trace_entry *entry, void *context)
{
    bench_trace *t = ((bench_job *)context)->trace;
    if (t->count == t->capacity) {
        size_t cap = t->capacity ? 2 * t->capacity : 256;
        mpmap_trace_entry *grown = realloc(t->items, cap * sizeof *grown);
        if (!grown)
            return 1;
        t->items = grown;
        t->capacity = cap;
    }
    t->items[t->count++] = *entry;
    return 0;
}

static int bench_map(int64_t begin, int64_t end, void *records, mpmap_task_error *err,
                     void *context)
{
    (void)records;
    (void)err;
    bench_job *job = context;
    for (int64_t t = begin; t < end; t++) {
        double c = job->cost[t];
        if (job->sleep) {
            double t0 = bench_clock(CLOCK_MONOTONIC);
            struct timespec ts = { (time_t)c, (long)((c - floor(c)) * 1e9) };
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            }
            job->actual += bench_clock(CLOCK_MONOTONIC) - t0;
        } else {
            double t0 = bench_clock(CLOCK_THREAD_CPUTIME_ID);
            while (bench_clock(CLOCK_THREAD_CPUTIME_ID) - t0 < c) {
            }
            job->actual += c;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (MPI_Init(&argc, &argv) != MPI_SUCCESS)
        return 1;
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (const char *const *n = mpmap_schedule_names(); rank == 0 && *n; n++)
            printf("%s\n", *n);
        MPI_Finalize();
        return 0;
    }
    double ntasks, total, seed, alpha, hog_start, hog_length, reps;
    if (argc < 10 || (strcmp(argv[1], "spin") != 0 && strcmp(argv[1], "sleep") != 0) ||
        bench_parse_double(argv[2], &ntasks) || ntasks < 1 || bench_parse_double(argv[3], &total) ||
        total <= 0 || bench_parse_double(argv[4], &seed) || bench_parse_double(argv[5], &alpha) ||
        alpha <= 0 || bench_parse_double(argv[6], &hog_start) ||
        bench_parse_double(argv[7], &hog_length) || bench_parse_double(argv[8], &reps) ||
        reps < 1) {
        if (rank == 0)
            fprintf(stderr, "usage: imbalance_schedules spin|sleep NTASKS TOTAL SEED ALPHA "
                            "HOG_START HOG_LENGTH REPS SCHEDULE[:CHUNK]...\n");
        MPI_Finalize();
        return 2;
    }
    bench_job job = { .n = (int64_t)ntasks, .sleep = strcmp(argv[1], "sleep") == 0 };
    job.cost = malloc((size_t)job.n * sizeof *job.cost);
    if (!job.cost)
        MPI_Abort(MPI_COMM_WORLD, 1);
    double sum = 0, largest = 0;
    int64_t largest_task = 0;
    for (int64_t t = 0; t < job.n; t++) {
        uint64_t bits = bench_mix((uint64_t)seed * 0x100000001b3ull ^ (uint64_t)t) >> 11;
        job.cost[t] = pow(1.0 - (double)bits * 0x1.0p-53, -1.0 / alpha);
        sum += job.cost[t];
    }
    for (int64_t t = 0; t < job.n; t++) {
        job.cost[t] *= total / sum;
        if (job.cost[t] > largest) {
            largest = job.cost[t];
            largest_task = t;
        }
    }

    const char *trace_env = getenv("IMBALANCE_TRACE");
    bench_trace trace = { 0 };
    if (rank == 0 && trace_env && strcmp(trace_env, "1") == 0)
        job.trace = &trace;
    double *per_rank = malloc((size_t)size * sizeof *per_rank);
    if (!per_rank)
        MPI_Abort(MPI_COMM_WORLD, 1);
    int rc = 0;
    for (int r = 0; r < (int)reps && rc == 0; r++)
        for (int a = 9; a < argc && rc == 0; a++) {
            char name[64];
            snprintf(name, sizeof name, "%s", argv[a]);
            mpmap_config config;
            mpmap_config_init(&config);
            int pure = 0;
            for (char *colon = strrchr(name, ':'); colon; colon = strrchr(name, ':')) {
                *colon = '\0';
                if (strcmp(colon + 1, "pure") == 0)
                    pure = 1;
                else
                    config.chunk = atoll(colon + 1);
            }
            config.manager_computes = !pure;
            if (mpmap_schedule_from_name(name, &config.schedule) != 0) {
                if (rank == 0)
                    fprintf(stderr, "imbalance_schedules: unknown schedule '%s'\n", name);
                rc = 2;
                break;
            }
            job.actual = 0;
            trace.count = 0;
            mpmap_job mj = { .ntasks = job.n,
                             .record_size = 0,
                             .map = bench_map,
                             .context = &job,
                             .trace = job.trace ? bench_trace_add : NULL };
            MPI_Barrier(MPI_COMM_WORLD);
            bench_busy hog = { hog_start, hog_length, bench_clock(CLOCK_MONOTONIC) };
            pthread_t hog_thread;
            int hogging = rank == 0 && hog_length > 0 &&
                          pthread_create(&hog_thread, NULL, bench_busy_main, &hog) == 0;
            mpmap_report report;
            int run_rc = mpmap_run(MPI_COMM_WORLD, &config, &mj, &report);
            if (hogging)
                pthread_join(hog_thread, NULL);
            double actual = 0;
            MPI_Reduce(&job.actual, &actual, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
            MPI_Gather(&job.actual, 1, MPI_DOUBLE, per_rank, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
            if (run_rc != 0) {
                if (rank == 0)
                    fprintf(stderr, "imbalance_schedules: %s: %s\n", argv[a], report.message);
                rc = 1;
                break;
            }
            if (rank == 0) {
                double load[1] = { 0 };
                FILE *f = fopen("/proc/loadavg", "r");
                if (f) {
                    if (fscanf(f, "%lf", &load[0]) != 1)
                        load[0] = -1;
                    fclose(f);
                }
                printf("{\"schedule\": \"%s\", \"chunk\": %lld, \"mode\": \"%s\", \"ranks\": %d, "
                       "\"tasks\": %lld, \"rep\": %d, \"hog_start\": %g, \"hog_length\": %g, "
                       "\"wall_time\": %.9g, \"total\": %.9g, \"actual\": %.9g, \"max\": %.9g, "
                       "\"chunks\": %lld, \"load1\": %.2f, \"pure\": %d, \"largest_task\": %lld, "
                       "\"actual_per_rank\": [",
                       name, (long long)config.chunk, argv[1], size, (long long)job.n, r, hog_start,
                       hog_length, report.wall_time, total, actual, largest,
                       (long long)report.chunks, load[0], pure, (long long)largest_task);
                for (int k = 0; k < size; k++)
                    printf("%s%.6f", k ? ", " : "", per_rank[k]);
                printf("]");
                if (job.trace) {
                    printf(", \"trace\": [");
                    for (size_t k = 0; k < trace.count; k++) {
                        const mpmap_trace_entry *e = &trace.items[k];
                        printf("%s[%lld, %lld, %d, %.6f, %.6f]", k ? ", " : "", (long long)e->begin,
                               (long long)e->end, (int)e->rank, e->start, e->finish);
                    }
                    printf("]");
                }
                printf("}\n");
                fflush(stdout);
            }
        }
    free(trace.items);
    free(per_rank);
    free(job.cost);
    MPI_Finalize();
    return rc;
}
