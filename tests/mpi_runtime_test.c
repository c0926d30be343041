/*
 * Integration test of the runtime under mpirun (-n 1, 2, 3, 8): for every
 * schedule, chunk size and rank layout, the records, their order, the
 * reductions and the error paths must match what a serial loop computes.
 * Every rank checks; the verdict is combined so all ranks exit alike.
 *
 * Run with MPMAP_DISPATCH=nodes and MPMAP_NODE_SIZE=k (fake nodes of k
 * ranks), every check holds under node dispatch too (mpi_dispatch_test.c
 * checks that the sub-managers relayed and computed nothing).
 */
#define _POSIX_C_SOURCE 200809L
#include "mpi_check.h"
#include "mpmap.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int failures, checks, my_rank, nranks;

/* A record of three values derived from the task index alone. */
typedef struct record {
    double value;
    int64_t square;
    double noise;
} record;

static record expected_record(int64_t t)
{
    uint64_t x = (uint64_t)t * 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    return (record){ sin((double)t) * 1e3, t * t, (double)(x % 100000) / 7.0 };
}

typedef struct context {
    int64_t fail_task;       /* fail this task, or -1 */
    int64_t interrupt_after; /* rank 0 raises the interrupt after this many tasks, or -1 */
    int64_t seen;
    volatile sig_atomic_t *flag;
    int spin; /* busy work per task, to mix up completion order */
    /* sink bookkeeping on rank 0 */
    int64_t next_expected;
    int order_errors;
    record *sunk;
    struct notice_log *notices; /* job.notice calls (rank 0) */
    int stopping_calls;         /* job.stopping calls (rank 0) */
    int stopping_status;
} context;

static void count_stopping(int status, void *vctx)
{
    context *ctx = vctx;
    ctx->stopping_calls++;
    ctx->stopping_status = status;
}

static int map_records(int64_t begin, int64_t end, void *out, mpmap_task_error *err, void *vctx)
{
    context *ctx = vctx;
    record *r = out;
    for (int64_t t = begin; t < end; t++) {
        if (t == ctx->fail_task)
            return mpmap_task_fail(err, t, 7, "cannot compute task %lld", (long long)t);
        volatile double s = 0;
        for (int i = 0; i < ctx->spin * (int)(1 + t % 7); i++)
            s += i;
        r[t - begin] = expected_record(t);
        if (ctx->interrupt_after >= 0 && my_rank == 0 && ++ctx->seen >= ctx->interrupt_after)
            *ctx->flag = 1;
    }
    return 0;
}

static int sink_records(int64_t begin, int64_t end, const void *records, const int32_t *status,
                        void *vctx)
{
    (void)status;
    context *ctx = vctx;
    if (begin != ctx->next_expected)
        ctx->order_errors++;
    ctx->next_expected = end;
    if (ctx->sunk)
        memcpy(ctx->sunk + begin, records, (size_t)(end - begin) * sizeof(record));
    return 0;
}

static bool same_bits(const void *a, const void *b, size_t n) { return memcmp(a, b, n) == 0; }

/* Every registered schedule: the loops below cover new ones by themselves. */
static int schedule_count(void)
{
    int n = 0;
    while (mpmap_schedule_names()[n])
        n++;
    return n;
}

static void test_schedules(void)
{
    const int64_t ntasks_list[] = { 0, 1, 5, 997, 20000 };
    const int64_t chunks[] = { 1, 3, 64 };
    for (size_t a = 0; a < sizeof ntasks_list / sizeof *ntasks_list; a++)
        for (int s = 0; s < schedule_count(); s++)
            for (size_t c = 0; c < 3; c++)
                for (int computes = 0; computes <= 1; computes++) {
                    int64_t n = ntasks_list[a];
                    record *results = my_rank == 0 ? calloc((size_t)n + 1, sizeof *results) : NULL;
                    record *sunk = my_rank == 0 ? calloc((size_t)n + 1, sizeof *sunk) : NULL;
                    context ctx = {
                        .fail_task = -1, .interrupt_after = -1, .spin = 20, .sunk = sunk
                    };
                    mpmap_config cfg;
                    mpmap_config_init(&cfg);
                    cfg.schedule = (mpmap_schedule)s;
                    cfg.chunk = chunks[c];
                    cfg.manager_computes = computes;
                    cfg.max_chunk = (c == 2) ? 100 : 0;
                    mpmap_job job = { .ntasks = n,
                                      .record_size = sizeof(record),
                                      .map = map_records,
                                      .context = &ctx,
                                      .sink = sink_records,
                                      .results = results };
                    mpmap_report rep;
                    int rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
                    CHECK(rc == MPMAP_OK, "n=%lld schedule=%s chunk=%lld rc=%d %s", (long long)n,
                          mpmap_schedule_name((mpmap_schedule)s), (long long)chunks[c], rc,
                          rep.message);
                    CHECK(rep.tasks_done == n, "done %lld of %lld", (long long)rep.tasks_done,
                          (long long)n);
                    /* The report names the schedule that ran: auto names its pick. */
                    if (s == MPMAP_SCHEDULE_AUTO)
                        CHECK(strcmp(rep.schedule, "guided") == 0 ||
                                  strcmp(rep.schedule, "awf-c") == 0,
                              "auto ran '%s'", rep.schedule);
                    else
                        CHECK(strcmp(rep.schedule, mpmap_schedule_name((mpmap_schedule)s)) == 0,
                              "%s reported as '%s'", mpmap_schedule_name((mpmap_schedule)s),
                              rep.schedule);
                    if (my_rank == 0) {
                        bool ok = true;
                        for (int64_t t = 0; t < n; t++) {
                            record e = expected_record(t);
                            ok &= same_bits(&results[t], &e, sizeof e) &&
                                  same_bits(&sunk[t], &e, sizeof e);
                        }
                        CHECK(ok, "records differ from the serial ones (n=%lld, %s)", (long long)n,
                              mpmap_schedule_name((mpmap_schedule)s));
                        CHECK(ctx.order_errors == 0 && ctx.next_expected == n,
                              "sink saw tasks out of order (%d errors, ended at %lld)",
                              ctx.order_errors, (long long)ctx.next_expected);
                    }
                    free(results);
                    free(sunk);
                }
}

static void user_max_abs(const void *rec, void *acc, void *vctx)
{
    (void)vctx;
    const record *r = rec;
    record *a = acc;
    if (fabs(r->value) > a->value)
        a->value = fabs(r->value);
    a->square += 1; /* counts the records folded */
    a->noise += r->noise;
}

static void test_reductions(void)
{
    const int64_t n = 5000;
    /* Serial references in task order: the runtime folds in task order too,
     * so floating-point sums must match bit for bit. */
    double sum_value = 0, min_value = INFINITY, max_value = -INFINITY;
    for (int64_t t = 0; t < n; t++) {
        record e = expected_record(t);
        sum_value += e.value;
        if (e.value < min_value)
            min_value = e.value;
        if (e.value > max_value)
            max_value = e.value;
    }
    const mpmap_reduce_op ops[] = { MPMAP_REDUCE_SUM, MPMAP_REDUCE_MIN, MPMAP_REDUCE_MAX };
    const double want[] = { sum_value, min_value, max_value };
    for (int schedule = 0; schedule < schedule_count(); schedule++)
        for (int k = 0; k < 3; k++) {
            context ctx = { .fail_task = -1, .interrupt_after = -1, .spin = 5 };
            double acc[3];
            mpmap_config cfg;
            mpmap_config_init(&cfg);
            cfg.schedule = (mpmap_schedule)schedule;
            /* The record is three 8-byte words reduced element-wise as
             * doubles; only the first word is a real double worth checking. */
            mpmap_job job = { .ntasks = n,
                              .record_size = sizeof(record),
                              .map = map_records,
                              .context = &ctx,
                              .reduce_op = ops[k],
                              .reduce_type = MPMAP_DOUBLE,
                              .reduction = acc };
            int rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, NULL);
            CHECK(rc == MPMAP_OK, "reduction run failed: %d", rc);
            CHECK(same_bits(&acc[0], &want[k], sizeof(double)),
                  "reduction %d on every rank: got %.17g want %.17g", k, acc[0], want[k]);
        }
    /* A user operation over the mixed record. */
    context ctx = { .fail_task = -1, .interrupt_after = -1 };
    record acc = { 0, 0, 0 };
    mpmap_config cfg;
    mpmap_config_init(&cfg);
    mpmap_job job = { .ntasks = n,
                      .record_size = sizeof(record),
                      .map = map_records,
                      .context = &ctx,
                      .reduce_op = MPMAP_REDUCE_USER,
                      .reduce_fn = user_max_abs,
                      .reduction = &acc };
    int rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, NULL);
    double max_abs = 0, noise = 0;
    for (int64_t t = 0; t < n; t++) {
        record e = expected_record(t);
        if (fabs(e.value) > max_abs)
            max_abs = fabs(e.value);
        noise += e.noise;
    }
    CHECK(rc == MPMAP_OK, "user reduction failed: %d", rc);
    CHECK(acc.value == max_abs && acc.square == n && same_bits(&acc.noise, &noise, 8),
          "user reduction: got (%g, %lld, %.17g)", acc.value, (long long)acc.square, acc.noise);
}

static void test_task_failure_stops_every_rank(void)
{
    for (int schedule = 0; schedule < schedule_count(); schedule++) {
        context ctx = { .fail_task = 1234, .interrupt_after = -1, .spin = 2 };
        mpmap_config cfg;
        mpmap_config_init(&cfg);
        cfg.schedule = (mpmap_schedule)schedule;
        mpmap_job job = { .ntasks = 3000,
                          .record_size = sizeof(record),
                          .map = map_records,
                          .context = &ctx,
                          .stopping = count_stopping };
        mpmap_report rep;
        int rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
        CHECK(rc == MPMAP_ETASK, "expected MPMAP_ETASK, got %d", rc);
        /* Told once, on rank 0 only, with the status the run returns. */
        CHECK(my_rank == 0 ? ctx.stopping_calls == 1 && ctx.stopping_status == MPMAP_ETASK
                           : ctx.stopping_calls == 0,
              "stopping: %d calls, status %d", ctx.stopping_calls, ctx.stopping_status);
        CHECK(rep.failed_task == 1234, "failed task %lld", (long long)rep.failed_task);
        CHECK(strcmp(rep.message, "task 1234 failed: cannot compute task 1234") == 0,
              "message '%s'", rep.message);
        CHECK(rep.tasks_done < 3000, "done %lld", (long long)rep.tasks_done);
    }
}

static void test_task_failure_continue_records_status(void)
{
    const int64_t n = 2000;
    context ctx = { .fail_task = 777, .interrupt_after = -1, .spin = 2 };
    record *results = my_rank == 0 ? calloc((size_t)n, sizeof *results) : NULL;
    int32_t *status = my_rank == 0 ? calloc((size_t)n, sizeof *status) : NULL;
    mpmap_config cfg;
    mpmap_config_init(&cfg);
    cfg.on_error = MPMAP_ON_ERROR_CONTINUE;
    mpmap_job job = { .ntasks = n,
                      .record_size = sizeof(record),
                      .map = map_records,
                      .context = &ctx,
                      .results = results,
                      .status = status,
                      .stopping = count_stopping };
    mpmap_report rep;
    int rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    CHECK(rc == MPMAP_OK, "continue mode returned %d (%s)", rc, rep.message);
    CHECK(ctx.stopping_calls == 0, "stopping called %d times in a run that did not stop",
          ctx.stopping_calls);
    CHECK(rep.tasks_failed == 1, "tasks_failed = %lld", (long long)rep.tasks_failed);
    CHECK(rep.tasks_done == n, "done %lld", (long long)rep.tasks_done);
    if (my_rank == 0) {
        bool ok = true;
        for (int64_t t = 0; t < n; t++) {
            record e = expected_record(t);
            if (t == 777)
                ok &= status[t] == 7;
            else
                ok &= status[t] == 0 && same_bits(&results[t], &e, sizeof e);
        }
        CHECK(ok, "records or status wrong in continue mode");
    }
    free(results);
    free(status);
}

static void test_interrupt_then_resume_is_bitwise_identical(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/resume.ckpt", dir);
    const int64_t n = 30000;
    volatile sig_atomic_t flag = 0;
    context ctx = { .fail_task = -1, .interrupt_after = 4000, .flag = &flag, .spin = 30 };
    mpmap_config cfg;
    mpmap_config_init(&cfg);
    cfg.checkpoint_path = path;
    cfg.fingerprint = "runtime-test n=30000";
    cfg.interrupt = &flag;
    cfg.chunk = 50;
    cfg.schedule = MPMAP_SCHEDULE_DYNAMIC;
    mpmap_job job = { .ntasks = n,
                      .record_size = sizeof(record),
                      .map = map_records,
                      .context = &ctx,
                      .stopping = count_stopping };
    mpmap_report rep;
    int rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    CHECK(rc == MPMAP_EINTERRUPTED, "expected interruption, got %d (%s)", rc, rep.message);
    CHECK(my_rank == 0 ? ctx.stopping_calls == 1 && ctx.stopping_status == MPMAP_EINTERRUPTED
                       : ctx.stopping_calls == 0,
          "stopping: %d calls, status %d", ctx.stopping_calls, ctx.stopping_status);
    CHECK(rep.tasks_done >= 4000 && rep.tasks_done < n, "done %lld", (long long)rep.tasks_done);
    int64_t first_done = rep.tasks_done;

    /* A different fingerprint is refused on every rank. */
    cfg.fingerprint = "runtime-test n=30001";
    cfg.resume = 1;
    cfg.interrupt = NULL;
    rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    CHECK(rc == MPMAP_ERESUME, "expected MPMAP_ERESUME, got %d", rc);
    CHECK(strstr(rep.message, "different") != NULL, "message '%s'", rep.message);

    /* Resume with another schedule: only the missing tasks are computed. */
    cfg.fingerprint = "runtime-test n=30000";
    cfg.schedule = MPMAP_SCHEDULE_GUIDED;
    cfg.chunk = 7;
    record *results = my_rank == 0 ? calloc((size_t)n, sizeof *results) : NULL;
    double acc[3];
    ctx = (context){ .fail_task = -1, .interrupt_after = -1, .spin = 1 };
    job.results = results;
    job.reduce_op = MPMAP_REDUCE_SUM;
    job.reduce_type = MPMAP_DOUBLE;
    job.reduction = acc;
    rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    CHECK(rc == MPMAP_OK, "resume failed: %d (%s)", rc, rep.message);
    CHECK(rep.tasks_restored == first_done, "restored %lld, first run did %lld",
          (long long)rep.tasks_restored, (long long)first_done);
    CHECK(rep.tasks_done == n, "done %lld", (long long)rep.tasks_done);
    double want[3] = { 0, 0, 0 };
    bool ok = true;
    for (int64_t t = 0; t < n; t++) {
        record e = expected_record(t);
        want[0] += e.value;
        double sq;
        memcpy(&sq, &e.square, 8);
        want[1] += sq;
        want[2] += e.noise;
        if (my_rank == 0)
            ok &= same_bits(&results[t], &e, sizeof e);
    }
    CHECK(ok, "resumed records differ from an uninterrupted run");
    CHECK(same_bits(acc, want, sizeof acc), "resumed reduction differs");
    free(results);
    if (my_rank == 0)
        unlink(path);
}

/* job.notice: what a resumed run is told about its checkpoint. */
typedef struct notice_log {
    int calls;
    char message[512];
} notice_log;

static void record_notice(const char *message, void *vctx)
{
    notice_log *log = ((context *)vctx)->notices;
    log->calls++;
    snprintf(log->message, sizeof log->message, "%s", message);
}

/* A checkpoint torn part-way (a crash mid-write, a damaged disk block) drops
 * the tasks after the damage: the resumed run must say so once, on rank 0,
 * with how many tasks it will recompute, and still produce every record. */
static void test_damaged_checkpoint_is_told_once(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/torn.ckpt", dir);
    const int64_t n = 5000;
    notice_log log = { 0 };
    context ctx = { .fail_task = -1, .interrupt_after = -1, .spin = 1, .notices = &log };
    mpmap_config cfg;
    mpmap_config_init(&cfg);
    cfg.checkpoint_path = path;
    cfg.fingerprint = "runtime-test torn";
    cfg.chunk = 50;
    cfg.schedule = MPMAP_SCHEDULE_DYNAMIC;
    mpmap_job job = { .ntasks = n,
                      .record_size = sizeof(record),
                      .map = map_records,
                      .context = &ctx,
                      .notice = record_notice };
    mpmap_report rep;
    int rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    CHECK(rc == MPMAP_OK && log.calls == 0, "clean run: rc %d, %d notices", rc, log.calls);
    if (my_rank == 0) {
        struct stat st;
        /* Cut in the middle of an entry: everything from it on is lost. */
        if (stat(path, &st) != 0 || truncate(path, st.st_size / 2 + 7) != 0)
            CHECK(0, "cannot tear %s", path);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    cfg.resume = 1;
    record *results = my_rank == 0 ? calloc((size_t)n, sizeof *results) : NULL;
    job.results = results;
    rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    CHECK(rc == MPMAP_OK, "resume failed: %d (%s)", rc, rep.message);
    CHECK(rep.tasks_restored > 0 && rep.tasks_restored < n, "restored %lld",
          (long long)rep.tasks_restored);
    if (my_rank == 0) {
        char want[256];
        snprintf(want, sizeof want, "is damaged after %lld of %lld tasks (byte ",
                 (long long)rep.tasks_restored, (long long)n);
        CHECK(log.calls == 1, "%d notices", log.calls);
        CHECK(strstr(log.message, want) && strstr(log.message, "torn.ckpt"), "notice '%s'",
              log.message);
        snprintf(want, sizeof want, "; the other %lld tasks will be recomputed",
                 (long long)(n - rep.tasks_restored));
        CHECK(strstr(log.message, want), "notice '%s' lacks '%s'", log.message, want);
        bool ok = true;
        for (int64_t t = 0; t < n; t++) {
            record e = expected_record(t);
            ok &= same_bits(&results[t], &e, sizeof e);
        }
        CHECK(ok, "records after a torn checkpoint differ");
        unlink(path);
    } else {
        CHECK(log.calls == 0, "rank %d was notified", my_rank);
    }
    free(results);
}

/* A checkpoint that cannot grow (here a file size limit on rank 0, as a full
 * disk would do) stops the run with MPMAP_EIO on every rank, and the report
 * says why in the checkpoint's own words rather than generically. */
static void test_checkpoint_write_failure_reports_the_cause(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/full.ckpt", dir);
    context ctx = { .fail_task = -1, .interrupt_after = -1, .spin = 1 };
    mpmap_config cfg;
    mpmap_config_init(&cfg);
    cfg.checkpoint_path = path;
    cfg.fingerprint = "runtime-test full disk";
    cfg.chunk = 50;
    cfg.schedule = MPMAP_SCHEDULE_DYNAMIC;
    mpmap_job job = {
        .ntasks = 20000, .record_size = sizeof(record), .map = map_records, .context = &ctx
    };
    struct rlimit saved = { 0 };
    void (*old_handler)(int) = SIG_DFL;
    if (my_rank == 0) {
        /* Writing past the limit fails with EFBIG instead of raising SIGXFSZ. */
        old_handler = signal(SIGXFSZ, SIG_IGN);
        getrlimit(RLIMIT_FSIZE, &saved);
        struct rlimit small = { 4096, saved.rlim_max };
        setrlimit(RLIMIT_FSIZE, &small);
    }
    mpmap_report rep;
    int rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    if (my_rank == 0) {
        setrlimit(RLIMIT_FSIZE, &saved);
        signal(SIGXFSZ, old_handler);
    }
    CHECK(rc == MPMAP_EIO, "expected MPMAP_EIO, got %d (%s)", rc, rep.message);
    CHECK(strstr(rep.message, strerror(EFBIG)) != NULL && strstr(rep.message, "full.ckpt") != NULL,
          "message '%s' does not carry the checkpoint's reason", rep.message);
    CHECK(rep.tasks_done < job.ntasks, "done %lld", (long long)rep.tasks_done);
    if (my_rank == 0)
        unlink(path);
}

static void test_invalid_jobs_fail_everywhere(void)
{
    context ctx = { .fail_task = -1, .interrupt_after = -1 };
    mpmap_config cfg;
    mpmap_config_init(&cfg);
    mpmap_job job = { .ntasks = -3, .record_size = 8, .map = map_records, .context = &ctx };
    mpmap_report rep;
    int rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    CHECK(rc == MPMAP_EINVAL && strstr(rep.message, "ntasks") != NULL, "rc %d '%s'", rc,
          rep.message);
    job.ntasks = 10;
    cfg.prefetch = 0;
    rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    CHECK(rc == MPMAP_EINVAL && strstr(rep.message, "prefetch") != NULL, "rc %d '%s'", rc,
          rep.message);
    cfg.prefetch = 2;
    cfg.resume = 1;
    rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    CHECK(rc == MPMAP_EINVAL, "resume without a checkpoint path: rc %d", rc);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    char dir[] = "/tmp/mpmap-runtime-XXXXXX";
    mpi_check_scratch(dir, (int)sizeof dir);

    /* --stops-only: failures and interrupt + resume only, the paths where
     * a CANCEL has to reach every rank (the emulated cluster test runs
     * them under node dispatch across nodes). */
    bool stops_only = argc > 1 && strcmp(argv[1], "--stops-only") == 0;
    if (!stops_only) {
        test_schedules();
        test_reductions();
    }
    test_task_failure_stops_every_rank();
    test_task_failure_continue_records_status();
    test_interrupt_then_resume_is_bitwise_identical(dir);
    if (!stops_only) {
        test_checkpoint_write_failure_reports_the_cause(dir);
        test_damaged_checkpoint_is_told_once(dir);
        test_invalid_jobs_fail_everywhere();
    }

    return mpi_check_finish("mpi_runtime_test", dir, failures, checks);
}
