/*
 * The checkpoint of mpmap_keyed under mpirun (-n 1, 2, 3): a run
 * interrupted through its interrupt flag (a rank raises it after some tasks,
 * as its SIGTERM handler would) saves its state; it is resumed on one rank
 * fewer, interrupted again, and resumed on every rank to the end, which must
 * give the serial bits (keyed_cases.h) — for a double sum, an integer sum
 * and a non-commutative fold, with and without spilling. Also: another
 * job's fingerprint or size, and a missing checkpoint, are refused; a leg's
 * files replace the previous leg's; nothing is left once removed.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include "keyed_cases.h"

#include <signal.h>
#include <unistd.h>

/* A case whose rank raises the run's interrupt flag once it has run
 * stop_after tasks in this leg (0: never), as a SIGTERM handler would. */
typedef struct stop_ctx {
    tcase c;
    volatile sig_atomic_t flag;
    int64_t stop_after;
    int64_t ran;
} stop_ctx;

static int stop_map(int64_t task, mpmap_emitter *e, mpmap_task_error *err, void *ctx)
{
    stop_ctx *s = ctx;
    int rc = keyed_map(task, e, err, &s->c);
    if (s->stop_after > 0 && ++s->ran >= s->stop_after)
        s->flag = 1;
    return rc;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* One leg on comm: a fresh run (resume 0) or a resume, interrupted after
 * stop_after tasks of a rank unless 0. */
static int leg(MPI_Comm comm, stop_ctx *s, mpmap_keyed_job job, const char *path, int resume,
               const char *fingerprint, int64_t stop_after, mpmap_keyed_result *res,
               mpmap_report *rep)
{
    s->flag = 0;
    s->ran = 0;
    s->stop_after = stop_after;
    job.map = stop_map;
    job.context = s;
    mpmap_config cfg;
    mpmap_config_init(&cfg);
    cfg.schedule = MPMAP_SCHEDULE_DYNAMIC;
    cfg.chunk = 3;
    cfg.interrupt = &s->flag;
    cfg.checkpoint_path = path;
    cfg.fingerprint = fingerprint;
    cfg.resume = resume;
    return mpmap_keyed_run(comm, &cfg, &job, res, rep);
}

static void checkpoint_case(const tcase *tc, const char *dir, int spill, MPI_Comm fewer)
{
    stop_ctx s = { .c = *tc };
    mpmap_keyed_job job = make_job(&s.c);
    if (spill) {
        job.budget = 24 << 10;
        job.round_bytes = 4096;
        job.spill_dir = dir;
    }
    char what[96], path[160], file[200];
    snprintf(what, sizeof what, "checkpoint kind %d%s", tc->kind, spill ? " spilling" : "");
    snprintf(path, sizeof path, "%s/k.ckpt", dir);
    expected ex = { 0 };
    if (rank_ == 0)
        ex = serial(&s.c, &job);
    MPI_Bcast(&ex.n, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
    const char *fp = "mpi_keyed_test --case=1 data=abc";

    /* Leg 0 on every rank, stopped early. */
    mpmap_keyed_result res;
    mpmap_report rep;
    /* Spilling: late enough that ranks save run files besides their table. */
    int64_t stop = spill ? 100 : 10;
    int rc = leg(MPI_COMM_WORLD, &s, job, path, 0, fp, stop, &res, &rep);
    CHECK(rc == MPMAP_EINTERRUPTED, "%s leg 0: %s (%s)", what, mpmap_strerror(rc), rep.message);
    long long spills = res.spills, all = 0;
    MPI_Allreduce(&spills, &all, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    CHECK(!spill || all > 0, "%s leg 0: nothing spilled", what);
    int64_t done0 = rep.tasks_done;
    CHECK(done0 > 0 && done0 < tc->ntasks, "%s leg 0: %lld tasks done", what, (long long)done0);
    CHECK(res.keys == NULL, "%s leg 0: a result", what);
    mpmap_keyed_result_free(&res);
    snprintf(file, sizeof file, "%s.leg0.rank0", path);
    if (rank_ == 0)
        CHECK(exists(path) && exists(file), "%s leg 0: no manifest or state file", what);

    /* Another job's fingerprint, and a job of another size, are refused. */
    rc = leg(MPI_COMM_WORLD, &s, job, path, 1, "mpi_keyed_test --case=2 data=abc", 0, &res, &rep);
    CHECK(rc == MPMAP_ERESUME && strstr(rep.message, "different run") &&
              strstr(rep.message, "--case: was 1, now 2"),
          "%s other fingerprint: %s (%s)", what, mpmap_strerror(rc), rep.message);
    mpmap_keyed_job bigger = job;
    bigger.ntasks++;
    rc = leg(MPI_COMM_WORLD, &s, bigger, path, 1, fp, 0, &res, &rep);
    CHECK(rc == MPMAP_ERESUME && strstr(rep.message, "different run"), "%s other ntasks: %s (%s)",
          what, mpmap_strerror(rc), rep.message);

    /* Leg 1 on fewer ranks (one fewer, or the one), stopped early again. */
    int64_t done1 = 0;
    if (fewer != MPI_COMM_NULL) {
        rc = leg(fewer, &s, job, path, 1, fp, stop, &res, &rep);
        CHECK(rc == MPMAP_EINTERRUPTED, "%s leg 1: %s (%s)", what, mpmap_strerror(rc), rep.message);
        CHECK(rep.tasks_restored == done0, "%s leg 1: %lld restored, %lld saved", what,
              (long long)rep.tasks_restored, (long long)done0);
        done1 = rep.tasks_done;
        CHECK(done1 > done0 && done1 < tc->ntasks, "%s leg 1: %lld done", what, (long long)done1);
        mpmap_keyed_result_free(&res);
    }
    MPI_Bcast(&done1, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
    if (rank_ == 0) {
        char leg1[200];
        snprintf(leg1, sizeof leg1, "%s.leg1.rank0", path);
        CHECK(exists(leg1) && !exists(file), "%s leg 1: leg 0's files not replaced", what);
    }

    /* Leg 2 on every rank, to the end: the serial bits. */
    rc = leg(MPI_COMM_WORLD, &s, job, path, 1, fp, 0, &res, &rep);
    CHECK(rc == MPMAP_OK, "%s leg 2: %s (%s)", what, mpmap_strerror(rc), rep.message);
    CHECK(rep.tasks_restored == done1 && rep.tasks_done == tc->ntasks &&
              rep.tasks_total == tc->ntasks,
          "%s leg 2: %lld restored (saved %lld), %lld/%lld done", what,
          (long long)rep.tasks_restored, (long long)done1, (long long)rep.tasks_done,
          (long long)rep.tasks_total);
    if (rc == MPMAP_OK)
        compare(what, &ex, &res, tc->value_size);
    mpmap_keyed_result_free(&res);

    /* The checkpoint stays until removed; then nothing is left. */
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank_ == 0) {
        CHECK(exists(path), "%s: the checkpoint went before it was removed", what);
        CHECK(mpmap_keyed_checkpoint_remove(path) == MPMAP_OK, "%s: remove failed", what);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s)\"", dir);
        CHECK(system(cmd) == 0, "%s: files left in %s", what, dir);
        expected_free(&ex);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

static void test_checkpoint(void)
{
    char dir[64];
    shared_scratch_dir(dir, "ckpt");
    if (!dir[0])
        return;
    /* The resumes' other rank count: one rank fewer (one rank alone runs
     * every leg on itself). */
    MPI_Comm fewer;
    int keep = size_ == 1 || rank_ < size_ - 1;
    MPI_Comm_split(MPI_COMM_WORLD, keep ? 0 : MPI_UNDEFINED, rank_, &fewer);
    const tcase cases[] = {
        { .kind = CASE_DSUM, .ntasks = 800, .value_size = 8, .fail_task = -1 },
        { .kind = CASE_ISUM, .ntasks = 800, .value_size = 8, .fail_task = -1 },
        { .kind = CASE_USER, .ntasks = 800, .value_size = 8, .fail_task = -1 },
    };
    for (int spill = 0; spill < 2; spill++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            checkpoint_case(&cases[i], dir, spill, fewer);

    /* Resuming from nothing is refused. */
    char path[160];
    snprintf(path, sizeof path, "%s/none.ckpt", dir);
    stop_ctx s = { .c = cases[1] };
    mpmap_keyed_result res;
    mpmap_report rep;
    int rc = leg(MPI_COMM_WORLD, &s, make_job(&s.c), path, 1, "x", 0, &res, &rep);
    CHECK(rc == MPMAP_ERESUME && strstr(rep.message, "no checkpoint"),
          "resume without a checkpoint: %s (%s)", mpmap_strerror(rc), rep.message);
    if (fewer != MPI_COMM_NULL)
        MPI_Comm_free(&fewer);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank_ == 0)
        rmdir(dir);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    test_checkpoint();
    int total = 0;
    MPI_Allreduce(&failures_, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank_ == 0)
        printf("mpi_keyed_checkpoint_test: %s (%d failed checks)\n", total ? "FAILED" : "ok",
               total);
    MPI_Finalize();
    return total ? 1 : 0;
}
