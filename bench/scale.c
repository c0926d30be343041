/*
 * Dispatch at scale: tasks that SLEEP for a known time, so that many ranks
 * (up to 128 on a 2-core machine) stand for as many cores. A sleeping task
 * uses no CPU; what the run measures is how well the manager keeps every
 * rank busy: efficiency = ideal makespan / measured makespan, where the
 * ideal is max(sum of task times / P, largest task) and the makespan is
 * mpmap_report.wall_time.
 *
 *     mpirun -n P --bind-to none scale [--target S] [--reps R] CASE...
 *     mpirun -n P --bind-to none scale --pingpong N
 *
 * CASE is KIND:SCHEDULE[:CHUNK] with KIND one of
 *   1ms, 10ms, 100ms  every task sleeps that long
 *   pareto            Pareto(alpha 1.5) with mean 10 ms, a deterministic
 *                     function of the task index (splitmix64)
 *   empty:N           N empty tasks (dispatch cost only; for calibration)
 * and SCHEDULE guided|dynamic|factoring|static (CHUNK default 1);
 * KIND:SCHEDULE:CHUNK:pure runs with manager_computes = 0 (rank 0 only
 * manages; the ideal then still counts P ranks).
 * A sleeping case gets round(P * target / mean) tasks (target default 1 s),
 * so the ideal makespan is about `target` at every rank count.
 *
 * All cases run in one MPI job (one mpirun start-up per rank count), with a
 * barrier before each run. Rank 0 prints one JSON line per run, including
 * the actual time slept (sum over tasks, measured around each nanosleep:
 * sleeps overshoot their request by tens of microseconds on a loaded
 * machine) and the 1-minute load average when the run started.
 *
 * MPMAP_DISPATCH=flat|nodes and MPMAP_NODE_SIZE=k (read by the library)
 * choose the dispatch; each JSON line names them ("dispatch", "node_size").
 * Under nodes dispatch the sub-managers compute nothing, and efficiency
 * still counts all P ranks in the ideal.
 *
 * With SCALE_TRACE=PREFIX rank 0 writes PREFIX.KIND.SCHEDULE.P.REP.csv per
 * run: one line per piece of results (rank,begin,end,start,finish).
 *
 * --pingpong N: rank 0 and rank 1 bounce an 8-byte message N times with
 * blocking MPI_Send/MPI_Recv; prints the one-way latency.
 */
#define _POSIX_C_SOURCE 200809L
#include <mpmap.h>

#include "bench_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCALE_PARETO_ALPHA 1.5
#define SCALE_PARETO_MEAN 0.010

typedef struct scale_case {
    char kind[16];
    double mean; /* seconds per task; 0 for empty */
    int pareto;
    int64_t ntasks; /* for empty */
    mpmap_schedule schedule;
    int64_t chunk;
    int pure; /* ":pure": rank 0 only manages (manager_computes = 0) */
} scale_case;

typedef struct scale_ctx {
    const scale_case *c;
    FILE *trace;   /* rank 0, optional (SCALE_TRACE=FILE): one line per piece */
    double slept;  /* this rank: seconds actually spent in task sleeps */
    int64_t tasks; /* this rank: tasks run */
} scale_ctx;

/* Seconds task t sleeps (same on every rank). */
static double scale_cost(const scale_case *c, int64_t t)
{
    if (!c->pareto)
        return c->mean;
    uint64_t bits = bench_mix(0x5ca1ab1eull ^ (uint64_t)t) >> 11;
    double u = 1.0 - (double)bits * 0x1.0p-53; /* (0, 1] */
    double xm = SCALE_PARETO_MEAN * (SCALE_PARETO_ALPHA - 1.0) / SCALE_PARETO_ALPHA;
    return xm * pow(u, -1.0 / SCALE_PARETO_ALPHA);
}

static int scale_map(int64_t begin, int64_t end, void *records, mpmap_task_error *err,
                     void *context)
{
    (void)records;
    (void)err;
    scale_ctx *x = context;
    if (x->c->mean <= 0) {
        x->tasks += end - begin;
        return 0;
    }
    for (int64_t t = begin; t < end; t++) {
        double s = scale_cost(x->c, t);
        double t0 = bench_clock(CLOCK_MONOTONIC);
        struct timespec ts = { (time_t)s, (long)((s - floor(s)) * 1e9) };
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        x->slept += bench_clock(CLOCK_MONOTONIC) - t0;
        x->tasks++;
    }
    return 0;
}

static int scale_trace(const mpmap_trace_entry *e, void *context)
{
    scale_ctx *x = context;
    fprintf(x->trace, "%d,%lld,%lld,%.6f,%.6f\n", (int)e->rank, (long long)e->begin,
            (long long)e->end, e->start, e->finish);
    return 0;
}

static double scale_loadavg(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

static int scale_parse_case(const char *text, scale_case *c)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", text);
    memset(c, 0, sizeof *c);
    c->chunk = 1;
    char *kind = strtok(buf, ":");
    if (!kind)
        return -1;
    snprintf(c->kind, sizeof c->kind, "%s", kind);
    if (strcmp(kind, "1ms") == 0)
        c->mean = 0.001;
    else if (strcmp(kind, "10ms") == 0)
        c->mean = 0.010;
    else if (strcmp(kind, "100ms") == 0)
        c->mean = 0.100;
    else if (strcmp(kind, "pareto") == 0) {
        c->mean = SCALE_PARETO_MEAN;
        c->pareto = 1;
    } else if (strcmp(kind, "empty") == 0) {
        char *n = strtok(NULL, ":");
        if (!n)
            return -1;
        c->ntasks = (int64_t)strtod(n, NULL);
        if (c->ntasks < 1)
            return -1;
    } else
        return -1;
    char *sched = strtok(NULL, ":");
    if (!sched || mpmap_schedule_from_name(sched, &c->schedule) != 0)
        return -1;
    char *chunk = strtok(NULL, ":");
    if (chunk) {
        c->chunk = (int64_t)strtod(chunk, NULL);
        if (c->chunk < 1)
            return -1;
        char *pure = strtok(NULL, ":");
        if (pure && strcmp(pure, "pure") == 0)
            c->pure = 1;
        else if (pure)
            return -1;
    }
    return 0;
}

static void scale_pingpong(int rank, int size, long n)
{
    if (size < 2) {
        if (rank == 0)
            fprintf(stderr, "scale: --pingpong needs 2 ranks\n");
        return;
    }
    double buf = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (long i = 0; i < n && rank < 2; i++) {
        if (rank == 0) {
            MPI_Send(&buf, 1, MPI_DOUBLE, 1, 7, MPI_COMM_WORLD);
            MPI_Recv(&buf, 1, MPI_DOUBLE, 1, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else {
            MPI_Recv(&buf, 1, MPI_DOUBLE, 0, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(&buf, 1, MPI_DOUBLE, 0, 7, MPI_COMM_WORLD);
        }
    }
    double t = MPI_Wtime() - t0;
    if (rank == 0)
        printf("{\"pingpong\": %ld, \"ranks\": %d, \"one_way_latency\": %.9g, \"load1\": %.2f}\n",
               n, size, t / (2.0 * (double)n), scale_loadavg());
}

int main(int argc, char **argv)
{
    if (MPI_Init(&argc, &argv) != MPI_SUCCESS)
        return 1;
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    double target = 1.0;
    int reps = 1;
    int first = 1;
    while (first < argc && strncmp(argv[first], "--", 2) == 0) {
        if (strcmp(argv[first], "--target") == 0 && first + 1 < argc) {
            target = strtod(argv[first + 1], NULL);
            first += 2;
        } else if (strcmp(argv[first], "--reps") == 0 && first + 1 < argc) {
            reps = atoi(argv[first + 1]);
            first += 2;
        } else if (strcmp(argv[first], "--pingpong") == 0 && first + 1 < argc) {
            scale_pingpong(rank, size, atol(argv[first + 1]));
            MPI_Finalize();
            return 0;
        } else {
            break;
        }
    }
    if (first >= argc || target <= 0 || reps < 1) {
        if (rank == 0)
            fprintf(stderr, "usage: scale [--target S] [--reps R] KIND:SCHEDULE[:CHUNK]...\n"
                            "       scale --pingpong N\n");
        MPI_Finalize();
        return 2;
    }
    int status = 0;
    for (int rep = 0; rep < reps; rep++) {
        for (int a = first; a < argc; a++) {
            scale_case c;
            if (scale_parse_case(argv[a], &c) != 0) {
                if (rank == 0)
                    fprintf(stderr, "scale: bad case '%s'\n", argv[a]);
                MPI_Finalize();
                return 2;
            }
            int64_t n = c.mean > 0 ? (int64_t)llround((double)size * target / c.mean) : c.ntasks;
            if (n < 1)
                n = 1;
            double sum = 0, largest = 0;
            for (int64_t t = 0; t < n && c.mean > 0; t++) {
                double s = scale_cost(&c, t);
                sum += s;
                largest = s > largest ? s : largest;
            }
            mpmap_config config;
            mpmap_config_init(&config);
            config.schedule = c.schedule;
            config.chunk = c.chunk;
            config.manager_computes = !c.pure;
            scale_ctx ctx = { .c = &c };
            mpmap_job job = { .ntasks = n, .record_size = 0, .map = scale_map, .context = &ctx };
            const char *trace_path = getenv("SCALE_TRACE");
            if (rank == 0 && trace_path && *trace_path) {
                char path[512];
                snprintf(path, sizeof path, "%s.%s.%s.%d.%d.csv", trace_path, c.kind,
                         mpmap_schedule_name(c.schedule), size, rep);
                ctx.trace = fopen(path, "w");
                if (ctx.trace) {
                    fprintf(ctx.trace, "rank,begin,end,start,finish\n");
                    job.trace = scale_trace;
                }
            }
            double load = rank == 0 ? scale_loadavg() : 0;
            MPI_Barrier(MPI_COMM_WORLD);
            mpmap_report report;
            int rc = mpmap_run(MPI_COMM_WORLD, &config, &job, &report);
            if (ctx.trace)
                fclose(ctx.trace);
            double slept = 0, rank0_slept = ctx.slept;
            int64_t ran = 0;
            MPI_Reduce(&ctx.slept, &slept, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
            MPI_Reduce(&ctx.tasks, &ran, 1, MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
            if (rank == 0) {
                if (rc != 0 || ran != n) {
                    fprintf(stderr, "scale: %s on %d ranks: %s (%s), %lld/%lld tasks\n", argv[a],
                            size, mpmap_strerror(rc), report.message, (long long)ran, (long long)n);
                    status = 1;
                    continue;
                }
                double wall = report.wall_time > 0 ? report.wall_time : 1e-9;
                double ideal = c.mean > 0 ? fmax(sum / size, largest) : 0;
                /* MPMAP_DISPATCH / MPMAP_NODE_SIZE, as the library reads them */
                const char *dispatch = getenv("MPMAP_DISPATCH");
                const char *node_size = getenv("MPMAP_NODE_SIZE");
                printf(
                    "{\"kind\": \"%s\", \"schedule\": \"%s\", \"chunk\": %lld, \"ranks\": %d, "
                    "\"rep\": %d, \"tasks\": %lld, \"chunks\": %lld, \"wall_time\": %.9g, "
                    "\"work\": %.9g, \"max_task\": %.9g, \"ideal\": %.9g, "
                    "\"efficiency\": %.6g, \"pure\": %d, \"chunks_per_s\": %.6g, \"slept\": %.9g, "
                    "\"rank0_slept\": %.9g, \"overshoot_per_task\": %.6g, \"load1\": %.2f, "
                    "\"dispatch\": \"%s\", \"node_size\": %d}\n",
                    c.kind, mpmap_schedule_name(c.schedule), (long long)c.chunk, size, rep,
                    (long long)n, (long long)report.chunks, report.wall_time, sum, largest, ideal,
                    c.mean > 0 ? ideal / wall : 0, c.pure, (double)report.chunks / wall, slept,
                    rank0_slept, c.mean > 0 ? (slept - sum) / (double)n : 0, load,
                    dispatch && *dispatch ? dispatch : "auto", node_size ? atoi(node_size) : 0);
                fflush(stdout);
            }
        }
    }
    MPI_Finalize();
    return status;
}
