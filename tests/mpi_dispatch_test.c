/*
 * Node dispatch under mpirun: with MPMAP_DISPATCH=nodes the lowest rank of
 * each node but rank 0's (when the node has another rank) computes
 * nothing, every other rank computes, the trace names the rank that ran
 * each piece, and the records and reductions are those of a serial loop,
 * for every schedule. Nodes are MPMAP_NODE_SIZE consecutive ranks when that
 * is set, else MPI's shared-memory groups (the emulated cluster). Also: an
 * unknown MPMAP_DISPATCH is refused on every rank. The runtime's other
 * guarantees under node dispatch are mpi_runtime_test's, run with the same
 * environment.
 */
#define _POSIX_C_SOURCE 200809L
#include "mpi_check.h"
#include "mpmap.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures, checks, my_rank, nranks;

/* A record from the task index alone, with some work to spread the tasks. */
static double expected(int64_t t) { return sin((double)t) * 1e3 + (double)(t % 97) / 7.0; }

static int map_values(int64_t begin, int64_t end, void *out, mpmap_task_error *err, void *ctx)
{
    (void)err;
    (void)ctx;
    double *v = out;
    for (int64_t t = begin; t < end; t++) {
        volatile double s = 0;
        for (int i = 0; i < 2000; i++)
            s += i;
        v[t - begin] = expected(t);
    }
    return 0;
}

static int tally_trace(const mpmap_trace_entry *e, void *ctx)
{
    int64_t *tasks = ctx; /* tasks[nranks]: bad ranks */
    if (e->rank < 0 || e->rank >= nranks)
        tasks[nranks]++;
    else
        tasks[e->rank] += e->end - e->begin;
    return 0;
}

/* Each rank's node, named by its lowest rank. */
static void node_leaders(int *leaders)
{
    const char *size = getenv("MPMAP_NODE_SIZE");
    if (size && atoi(size) > 0) {
        for (int q = 0; q < nranks; q++)
            leaders[q] = q / atoi(size) * atoi(size);
        return;
    }
    MPI_Comm node;
    int leader;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, my_rank, MPI_INFO_NULL, &node);
    MPI_Allreduce(&my_rank, &leader, 1, MPI_INT, MPI_MIN, node);
    MPI_Comm_free(&node);
    MPI_Allgather(&leader, 1, MPI_INT, leaders, 1, MPI_INT, MPI_COMM_WORLD);
}

static void test_roles_and_records_every_schedule(void)
{
    int *leaders = calloc((size_t)nranks, sizeof *leaders);
    int *members = calloc((size_t)nranks, sizeof *members);
    node_leaders(leaders);
    for (int q = 0; q < nranks; q++)
        members[leaders[q]]++;
    const int64_t n = 6000;
    double want = 0;
    for (int64_t t = 0; t < n; t++)
        want += expected(t);
    int subs = 0;
    for (int s = 0; mpmap_schedule_names()[s]; s++) {
        const char *name = mpmap_schedule_names()[s];
        int64_t *tasks = calloc((size_t)nranks + 1, sizeof *tasks);
        double *results = my_rank == 0 ? calloc((size_t)n, sizeof *results) : NULL;
        double sum = 0;
        mpmap_config cfg;
        mpmap_config_init(&cfg);
        cfg.schedule = (mpmap_schedule)s;
        cfg.chunk = 2;
        mpmap_job job = { .ntasks = n,
                          .record_size = sizeof(double),
                          .map = map_values,
                          .context = tasks,
                          .results = results,
                          .trace = tally_trace,
                          .reduce_op = MPMAP_REDUCE_SUM,
                          .reduce_type = MPMAP_DOUBLE,
                          .reduction = &sum };
        mpmap_report rep;
        int rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
        CHECK(rc == MPMAP_OK, "%s: rc %d %s", name, rc, rep.message);
        CHECK(memcmp(&sum, &want, sizeof sum) == 0, "%s: sum %.17g, serial %.17g", name, sum, want);
        if (my_rank == 0) {
            int64_t total = 0;
            subs = 0;
            for (int q = 0; q < nranks; q++) {
                bool sub = q == leaders[q] && leaders[q] != leaders[0] && members[q] > 1;
                subs += sub;
                CHECK(sub ? tasks[q] == 0 : tasks[q] > 0, "%s: rank %d (%s) ran %lld tasks", name,
                      q, sub ? "sub-manager" : "worker", (long long)tasks[q]);
                total += tasks[q];
            }
            CHECK(total == n && tasks[nranks] == 0, "%s: trace covers %lld tasks, %lld bad ranks",
                  name, (long long)total, (long long)tasks[nranks]);
            bool ok = true;
            for (int64_t t = 0; t < n; t++) {
                double e = expected(t);
                ok &= memcmp(&results[t], &e, sizeof e) == 0;
            }
            CHECK(ok, "%s: records differ from the serial ones", name);
        }
        free(tasks);
        free(results);
    }
    if (my_rank == 0)
        printf("node dispatch: %d sub-managers checked\n", subs);
    free(leaders);
    free(members);
}

/* A dispatch setting rank 0 does not know is refused on every rank. */
static void test_unknown_dispatch_fails_everywhere(void)
{
    const char *saved = getenv("MPMAP_DISPATCH");
    char keep[32] = "";
    if (saved)
        snprintf(keep, sizeof keep, "%s", saved);
    if (my_rank == 0)
        setenv("MPMAP_DISPATCH", "tree", 1);
    mpmap_job job = { .ntasks = 10, .record_size = sizeof(double), .map = map_values };
    mpmap_report rep;
    int rc = mpmap_run(MPI_COMM_WORLD, NULL, &job, &rep);
    CHECK(rc == MPMAP_EINVAL && strstr(rep.message, "MPMAP_DISPATCH") != NULL, "rc %d '%s'", rc,
          rep.message);
    if (my_rank == 0) {
        if (saved)
            setenv("MPMAP_DISPATCH", keep, 1);
        else
            unsetenv("MPMAP_DISPATCH");
    }
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    const char *mode = getenv("MPMAP_DISPATCH");
    if (mode && strcmp(mode, "nodes") == 0)
        test_roles_and_records_every_schedule();
    else if (my_rank == 0)
        printf("MPMAP_DISPATCH is not nodes: only the refusal is checked\n");
    test_unknown_dispatch_fails_everywhere();
    int total_failures = 0, total_checks = 0;
    MPI_Allreduce(&failures, &total_failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(&checks, &total_checks, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (my_rank == 0)
        printf("mpi_dispatch_test on %d ranks: %d passed, %d failed\n", nranks,
               total_checks - total_failures, total_failures);
    MPI_Finalize();
    return total_failures == 0 ? 0 : 1;
}
