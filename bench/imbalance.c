/*
 * Imbalanced tasks: N tasks whose costs follow a Pareto(alpha) law (heavy
 * tail, fixed seed), scaled so they add up to TOTAL seconds.
 * Each task spins on the monotonic clock for its cost, so its duration is
 * exactly known and the makespan can be compared with the lower bound
 * max(total / P, largest task) without measuring tasks one by one. Wall
 * time rather than CPU time keeps the figure about the schedule: on a
 * shared machine, other processes would otherwise stretch every task.
 *
 *     mpirun -n 2 imbalance [--prefetch=P] [--steal=START:LENGTH] SCHEDULE CHUNK NTASKS TOTAL
 *                           SEED ALPHA [TRACE.csv]
 *
 * --prefetch sets mpmap_config.prefetch (chunks a worker holds), which
 * decides how much of a guided job the first worker takes up front.
 *
 * --steal makes another thread take part of a core for part of the run, as
 * a second job landing on a node does: rank 0 starts a thread that spins
 * from START to START + LENGTH seconds after the run begins, on rank 0's
 * core (it inherits the rank's binding; mpirun binds -n 2 to cores), so
 * rank 0 gets half its core meanwhile. The tasks then spin on their
 * thread's CPU time instead of the wall clock, so a rank that shares its
 * core really is slower. The capacity the thread takes (LENGTH / 2 core
 * seconds with a fair share) is the caller's to add to the bound.
 *
 * Rank 0 prints one JSON line (wall_time from mpmap_report, total, max,
 * lower_bound) and, with TRACE.csv, writes one line per chunk:
 * rank,begin,end,start,finish.
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

typedef struct bench_costs {
    double *seconds; /* per task */
    int64_t n;
} bench_costs;

typedef struct bench_trace {
    mpmap_trace_entry *entries;
    size_t count, capacity;
} bench_trace;

/* The job's one context: the map reads the costs and spins on `clock`, the
 * trace callback (rank 0) appends to the trace. */
typedef struct bench_context {
    bench_costs costs;
    bench_trace trace;
    clockid_t clock; /* CLOCK_MONOTONIC, or CLOCK_THREAD_CPUTIME_ID with --steal */
} bench_context;

static int bench_costs_make(int64_t n, double total, uint64_t seed, double alpha, bench_costs *out)
{
    out->n = n;
    out->seconds = malloc((size_t)n * sizeof *out->seconds);
    if (!out->seconds)
        return MPMAP_ENOMEM;
    double sum = 0;
    for (int64_t t = 0; t < n; t++) {
        uint64_t bits = bench_mix(seed * 0x100000001b3ull ^ (uint64_t)t) >> 11;
        double u = 1.0 - (double)bits * 0x1.0p-53; /* (0, 1] */
        out->seconds[t] = pow(u, -1.0 / alpha);
        sum += out->seconds[t];
    }
    for (int64_t t = 0; t < n; t++)
        out->seconds[t] *= total / sum;
    return 0;
}

static int bench_spin_map(int64_t begin, int64_t end, void *records, mpmap_task_error *err,
                          void *context)
{
    (void)records;
    const bench_context *ctx = context;
    const bench_costs *c = &ctx->costs;
    for (int64_t t = begin; t < end; t++) {
        double start = bench_clock(ctx->clock);
        if (start < 0)
            return mpmap_task_fail(err, t, 1, "clock_gettime failed");
        while (bench_clock(ctx->clock) - start < c->seconds[t]) {
        }
    }
    return 0;
}

static int bench_trace_add(const mpmap_trace_entry *entry, void *context)
{
    bench_trace *tr = &((bench_context *)context)->trace;
    if (tr->count == tr->capacity) {
        size_t cap = tr->capacity ? 2 * tr->capacity : 1024;
        mpmap_trace_entry *grown = realloc(tr->entries, cap * sizeof *grown);
        if (!grown)
            return -1;
        tr->entries = grown;
        tr->capacity = cap;
    }
    tr->entries[tr->count++] = *entry;
    return 0;
}

int main(int argc, char **argv)
{
    if (MPI_Init(&argc, &argv) != MPI_SUCCESS)
        return 1;
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    mpmap_config config;
    mpmap_config_init(&config);
    bench_busy steal = { 0, 0, 0 };
    int bad_option = 0;
    while (argc > 1 && strncmp(argv[1], "--", 2) == 0) {
        if (strncmp(argv[1], "--prefetch=", 11) == 0)
            config.prefetch = atoi(argv[1] + 11);
        else if (strncmp(argv[1], "--steal=", 8) != 0 ||
                 sscanf(argv[1] + 8, "%lf:%lf", &steal.start, &steal.length) != 2 ||
                 !(steal.start >= 0) || !(steal.length > 0))
            bad_option = 1;
        argv++;
        argc--;
    }
    double chunk = 0, ntasks = 0, total = 0, seed = 0, alpha = 0;
    if (bad_option || (argc != 7 && argc != 8) ||
        mpmap_schedule_from_name(argv[1], &config.schedule) != 0 ||
        bench_parse_double(argv[2], &chunk) != 0 || chunk < 1 ||
        bench_parse_double(argv[3], &ntasks) != 0 || ntasks < 1 ||
        bench_parse_double(argv[4], &total) != 0 || total <= 0 ||
        bench_parse_double(argv[5], &seed) != 0 || seed < 0 ||
        bench_parse_double(argv[6], &alpha) != 0 || alpha <= 0) {
        if (rank == 0)
            fprintf(stderr, "usage: imbalance [--prefetch=P] [--steal=START:LENGTH] SCHEDULE CHUNK "
                            "NTASKS TOTAL_S SEED ALPHA [TRACE.csv]\n");
        MPI_Finalize();
        return 2;
    }
    config.chunk = (int64_t)chunk;

    bench_context ctx = { .clock = steal.length > 0 ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC };
    if (bench_costs_make((int64_t)ntasks, total, (uint64_t)seed, alpha, &ctx.costs) != 0) {
        fprintf(stderr, "imbalance: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    double sum = 0, largest = 0;
    for (int64_t t = 0; t < ctx.costs.n; t++) {
        sum += ctx.costs.seconds[t];
        largest = ctx.costs.seconds[t] > largest ? ctx.costs.seconds[t] : largest;
    }

    /* clang-format off */
    mpmap_job job = { .ntasks = ctx.costs.n, .record_size = 0, .map = bench_spin_map,
                      .context = &ctx, .trace = argc == 8 ? bench_trace_add : NULL };
    /* clang-format on */
    mpmap_report report;
    pthread_t stealer;
    steal.t0 = bench_clock(CLOCK_MONOTONIC);
    const int stealing = rank == 0 && steal.length > 0 &&
                         pthread_create(&stealer, NULL, bench_busy_main, &steal) == 0;
    if (rank == 0 && steal.length > 0 && !stealing) {
        fprintf(stderr, "imbalance: cannot start the --steal thread\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    int rc = mpmap_run(MPI_COMM_WORLD, &config, &job, &report);
    if (stealing)
        pthread_join(stealer, NULL);
    if (rank == 0 && rc != 0)
        fprintf(stderr, "imbalance: %s (%s)\n", mpmap_strerror(rc), report.message);
    if (rank == 0 && rc == 0) {
        double bound = fmax(sum / size, largest);
        printf("{\"schedule\": \"%s\", \"prefetch\": %d, \"chunk\": %lld, \"tasks\": %lld, "
               "\"ranks\": %d, \"chunks\": %lld, \"wall_time\": %.9g, \"total\": %.9g, "
               "\"max\": %.9g, \"lower_bound\": %.9g, \"steal_start\": %g, \"steal_length\": %g}\n",
               mpmap_schedule_name(config.schedule), config.prefetch, (long long)config.chunk,
               (long long)ctx.costs.n, size, (long long)report.chunks, report.wall_time, sum,
               largest, bound, steal.start, steal.length);
        if (argc == 8) {
            FILE *f = fopen(argv[7], "w");
            if (!f) {
                fprintf(stderr, "imbalance: cannot write %s\n", argv[7]);
                rc = MPMAP_EIO;
            } else {
                fprintf(f, "rank,begin,end,start,finish\n");
                for (size_t i = 0; i < ctx.trace.count; i++) {
                    const mpmap_trace_entry *e = &ctx.trace.entries[i];
                    fprintf(f, "%d,%lld,%lld,%.9f,%.9f\n", (int)e->rank, (long long)e->begin,
                            (long long)e->end, e->start, e->finish);
                }
                if (fclose(f) != 0)
                    rc = MPMAP_EIO;
            }
        }
    }
    free(ctx.costs.seconds);
    free(ctx.trace.entries);
    MPI_Finalize();
    return rc == 0 ? 0 : 1;
}
