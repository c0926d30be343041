/*
 * mpmap_keyed under mpirun (-n 1, 2, 3): every case is compared bitwise with
 * a serial computation of the documented semantics (per-task partials in
 * emission order, folded over tasks in task order), for every schedule and
 * several chunk sizes and shuffle round sizes, so the results are the same
 * for any rank count. Doubles are summed with magnitudes chosen so that the
 * order of additions changes the bits; a non-commutative user fold pins the
 * task order exactly (the cases and the reference: keyed_cases.h).
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include "keyed_cases.h"

#include <unistd.h>

static void run_case(tcase *c, const char *name)
{
    mpmap_keyed_job job = make_job(c);
    expected ex = { 0 };
    if (rank_ == 0)
        ex = serial(c, &job);
    MPI_Bcast(&ex.n, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
    const int64_t chunks[] = { 1, 7 };
    const size_t rounds[] = { 0, 64 };
    for (int s = 0; s < 4; s++)
        for (int ci = 0; ci < 2; ci++)
            for (int ri = 0; ri < 2; ri++) {
                mpmap_config cfg;
                mpmap_config_init(&cfg);
                cfg.schedule = (mpmap_schedule)s;
                cfg.chunk = chunks[ci];
                job.round_bytes = rounds[ri];
                mpmap_keyed_result res;
                mpmap_report rep;
                int rc = mpmap_keyed_run(MPI_COMM_WORLD, &cfg, &job, &res, &rep);
                char what[160];
                snprintf(what, sizeof what, "%s %s chunk %lld round %zu", name,
                         mpmap_schedule_name(cfg.schedule), (long long)chunks[ci], rounds[ri]);
                CHECK(rc == MPMAP_OK, "%s: %s (%s)", what, mpmap_strerror(rc), rep.message);
                if (rc == MPMAP_OK)
                    compare(what, &ex, &res, c->value_size);
                if (ri == 1 && size_ > 1)
                    CHECK(res.rounds > 1 || c->ntasks == 0, "%s: %lld rounds", what,
                          (long long)res.rounds);
                mpmap_keyed_result_free(&res);
            }
    if (rank_ == 0)
        expected_free(&ex);
}

static void test_budget(void)
{
    tcase c = { .kind = CASE_ISUM, .ntasks = 200, .value_size = 8, .fail_task = -1 };
    mpmap_keyed_job job = make_job(&c);
    c.kind = CASE_DSUM; /* per-task partials: the table grows with the tasks */
    job = make_job(&c);
    job.budget = 8192;
    mpmap_config cfg;
    mpmap_config_init(&cfg);
    mpmap_keyed_result res;
    mpmap_report rep;
    int rc = mpmap_keyed_run(MPI_COMM_WORLD, &cfg, &job, &res, &rep);
    CHECK(rc == MPMAP_ENOMEM, "budget: got %s", mpmap_strerror(rc));
    CHECK(strstr(rep.message, "budget") != NULL, "budget message: '%s'", rep.message);
    CHECK(res.keys == NULL, "budget: no result");
    mpmap_keyed_result_free(&res);
}

/* Tables over a small budget spill to run files: the results stay bitwise
 * those of the serial definition for every fold, the spill directory is
 * left empty, and a spill that cannot be written fails on every rank with
 * a message naming the directory. */
static void test_spill(void)
{
    char dir[64] = "";
    if (rank_ == 0) {
        snprintf(dir, sizeof dir, "/tmp/mpmap-keyed-spill-XXXXXX");
        if (!mkdtemp(dir))
            dir[0] = '\0';
    }
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    CHECK(dir[0] != '\0', "mkdtemp failed");
    if (!dir[0])
        return;
    tcase cases[] = {
        { .kind = CASE_DSUM, .ntasks = 800, .value_size = 8, .fail_task = -1 },
        { .kind = CASE_ISUM, .ntasks = 800, .value_size = 8, .fail_task = -1 },
        { .kind = CASE_DMINMAX, .ntasks = 800, .value_size = 8, .fail_task = -1 },
        { .kind = CASE_USER, .ntasks = 800, .value_size = 8, .fail_task = -1 },
        { .kind = CASE_VEC, .ntasks = 400, .value_size = 16, .fail_task = -1 },
    };
    const size_t budgets[] = { 64 << 10, 192 << 10 };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tcase *c = &cases[i];
        mpmap_keyed_job job = make_job(c);
        expected ex = { 0 };
        if (rank_ == 0)
            ex = serial(c, &job);
        MPI_Bcast(&ex.n, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
        for (size_t b = 0; b < 2; b++) {
            mpmap_config cfg;
            mpmap_config_init(&cfg);
            cfg.schedule = MPMAP_SCHEDULE_DYNAMIC;
            cfg.chunk = 3;
            job.budget = budgets[b];
            job.round_bytes = 4096;
            job.spill_dir = dir;
            mpmap_keyed_result res;
            mpmap_report rep;
            int rc = mpmap_keyed_run(MPI_COMM_WORLD, &cfg, &job, &res, &rep);
            char what[96];
            snprintf(what, sizeof what, "spill case %zu budget %zu", i, budgets[b]);
            CHECK(rc == MPMAP_OK, "%s: %s (%s)", what, mpmap_strerror(rc), rep.message);
            if (rc == MPMAP_OK)
                compare(what, &ex, &res, c->value_size);
            long long spills = res.spills, all = 0;
            MPI_Allreduce(&spills, &all, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
            CHECK(all > 0 || b > 0, "%s: nothing was spilled", what);
            CHECK(res.peak_bytes <= budgets[b], "%s: peak %zu over the budget", what,
                  res.peak_bytes);
            mpmap_keyed_result_free(&res);
        }
        if (rank_ == 0)
            expected_free(&ex);
    }
    /* Unnamed run files: nothing is left in the directory. */
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank_ == 0) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s)\"", dir);
        CHECK(system(cmd) == 0, "files left in the spill directory %s", dir);
    }
    /* A spill directory that does not exist. */
    tcase c = { .kind = CASE_DSUM, .ntasks = 800, .value_size = 8, .fail_task = -1 };
    mpmap_keyed_job job = make_job(&c);
    job.budget = 64 << 10;
    char missing[96];
    snprintf(missing, sizeof missing, "%s/not-there", dir);
    job.spill_dir = missing;
    mpmap_config cfg;
    mpmap_config_init(&cfg);
    mpmap_keyed_result res;
    mpmap_report rep;
    int rc = mpmap_keyed_run(MPI_COMM_WORLD, &cfg, &job, &res, &rep);
    CHECK(rc == MPMAP_EIO, "missing spill dir: got %s", mpmap_strerror(rc));
    CHECK(strstr(rep.message, "not-there") != NULL, "missing spill dir message: '%s'", rep.message);
    mpmap_keyed_result_free(&res);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank_ == 0)
        rmdir(dir);
}

static void test_task_failure(void)
{
    tcase c = { .kind = CASE_ISUM, .ntasks = 100, .value_size = 8, .fail_task = 42 };
    mpmap_keyed_job job = make_job(&c);
    mpmap_config cfg;
    mpmap_config_init(&cfg);
    mpmap_keyed_result res;
    mpmap_report rep;
    int rc = mpmap_keyed_run(MPI_COMM_WORLD, &cfg, &job, &res, &rep);
    CHECK(rc == MPMAP_ETASK, "failure: got %s", mpmap_strerror(rc));
    CHECK(strstr(rep.message, "refuses") != NULL, "failure message: '%s'", rep.message);
    mpmap_keyed_result_free(&res);
}

static void test_invalid(void)
{
    tcase c = { .kind = CASE_ISUM, .ntasks = 10, .value_size = 8, .fail_task = -1 };
    mpmap_keyed_job job = make_job(&c);
    job.op = MPMAP_REDUCE_NONE;
    mpmap_config cfg;
    mpmap_config_init(&cfg);
    mpmap_keyed_result res;
    int rc = mpmap_keyed_run(MPI_COMM_WORLD, &cfg, &job, &res, NULL);
    CHECK(rc == MPMAP_EINVAL, "op NONE: got %s", mpmap_strerror(rc));
    job = make_job(&c);
    job.value_size = 12; /* not a whole number of int64 */
    rc = mpmap_keyed_run(MPI_COMM_WORLD, &cfg, &job, &res, NULL);
    CHECK(rc == MPMAP_EINVAL, "value_size 12: got %s", mpmap_strerror(rc));
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    tcase cases[] = {
        { .kind = CASE_DSUM, .ntasks = 300, .value_size = 8, .fail_task = -1 },
        { .kind = CASE_ISUM, .ntasks = 300, .value_size = 8, .fail_task = -1 },
        { .kind = CASE_DMINMAX, .ntasks = 300, .value_size = 8, .fail_task = -1 },
        { .kind = CASE_USER, .ntasks = 300, .value_size = 8, .fail_task = -1 },
        { .kind = CASE_VEC, .ntasks = 150, .value_size = 16, .fail_task = -1 },
        { .kind = CASE_ISUM, .ntasks = 0, .value_size = 8, .fail_task = -1 },
    };
    const char *names[] = { "double sum", "int64 sum",     "double min",
                            "user fold",  "double[2] sum", "no tasks" };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i], names[i]);
    test_budget();
    test_spill();
    test_task_failure();
    test_invalid();

    /* The double sum really depends on the order (else the test proves little). */
    if (rank_ == 0) {
        double a = 0.1, b = 0.2, c2 = 0.3;
        CHECK((a + b) + c2 != a + (b + c2), "order-sensitive doubles");
    }
    int total = 0;
    MPI_Allreduce(&failures_, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank_ == 0)
        printf("mpi_keyed_test: %s (%d failed checks)\n", total ? "FAILED" : "ok", total);
    MPI_Finalize();
    return total ? 1 : 0;
}
