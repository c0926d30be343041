/*
 * Integration test of store mode (job.store) under mpirun (-n 1, 3, and 5
 * under node dispatch): records stay on the rank that computed them, which
 * writes them into one shared file at offset t * record_size, while only
 * ranges and statuses reach rank 0. For every schedule the file must equal
 * a serial computation bit for bit, every task must be stored exactly once
 * (failed ones never), rank 0's sink must see every task in order with no
 * records, and failures, refusals and resume must behave as documented.
 * Every rank checks; the verdict is combined so all ranks exit alike.
 */
#define _POSIX_C_SOURCE 200809L
#include "mpi_check.h"
#include "store_cases.h"
#include "mpmap.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures, checks, my_rank, nranks;
/* This rank stored records under the static schedule, which gives every
 * rank that computes a block (sub-managers compute nothing). */
static bool computes_here;

#define STORE_FAILURE "cannot write 'out.bin': No space left on device"

typedef struct context {
    int fd;                  /* the shared output file, on every rank */
    int64_t fail_every;      /* tasks with t % fail_every == 5 fail (0: none) */
    int64_t store_fail_task; /* store fails on a range holding this task, or -1 */
    int store_fail_rank;     /* store fails on this rank's first call, or -1 */
    int64_t failed_at;       /* first task of the range whose store failed here, or -1 */
    int64_t interrupt_after; /* rank 0 raises the interrupt after this many tasks, or -1 */
    volatile sig_atomic_t *flag;
    int spin;
    /* every rank: what this rank did */
    int32_t *stored; /* per task: times stored here */
    int64_t mapped;  /* tasks mapped here (failed ones included) */
    int write_errors;
    /* rank 0: what the sink saw */
    int64_t next_expected;
    int order_errors;
    int records_given; /* sink calls with records != NULL */
    int32_t *sink_status;
    int stopping_calls;
    int stopping_status;
} context;

static int map_records(int64_t begin, int64_t end, void *out, mpmap_task_error *err, void *vctx)
{
    context *ctx = vctx;
    record *r = out;
    for (int64_t t = begin; t < end; t++) {
        ctx->mapped++;
        if (ctx->fail_every > 0 && t % ctx->fail_every == 5)
            return mpmap_task_fail(err, t, 7, "task %lld is odd", (long long)t);
        volatile double s = 0;
        for (int i = 0; i < ctx->spin * (int)(1 + t % 5); i++)
            s += i;
        r[t - begin] = expected_record(t);
        if (ctx->interrupt_after >= 0 && my_rank == 0 && ctx->mapped >= ctx->interrupt_after)
            *ctx->flag = 1;
    }
    return 0;
}

static int store_records(int64_t begin, int64_t end, const void *records, char *message, void *vctx)
{
    context *ctx = vctx;
    if ((ctx->store_fail_task >= begin && ctx->store_fail_task < end) ||
        ctx->store_fail_rank == my_rank) {
        ctx->failed_at = begin;
        snprintf(message, MPMAP_MESSAGE_MAX, "%s", STORE_FAILURE);
        return -1;
    }
    size_t bytes = (size_t)(end - begin) * sizeof(record);
    ssize_t put = pwrite(ctx->fd, records, bytes, (off_t)(begin * (int64_t)sizeof(record)));
    if (put != (ssize_t)bytes) {
        ctx->write_errors++;
        snprintf(message, MPMAP_MESSAGE_MAX, "pwrite: %s", strerror(errno));
        return -1;
    }
    for (int64_t t = begin; t < end; t++)
        ctx->stored[t]++;
    return 0;
}

static int sink_ranges(int64_t begin, int64_t end, const void *records, const int32_t *status,
                       void *vctx)
{
    context *ctx = vctx;
    if (begin != ctx->next_expected)
        ctx->order_errors++;
    ctx->next_expected = end;
    if (records)
        ctx->records_given++;
    for (int64_t t = begin; t < end; t++)
        ctx->sink_status[t] = status ? status[t - begin] : 0;
    return 0;
}

static void count_stopping(int status, void *vctx)
{
    context *ctx = vctx;
    ctx->stopping_calls++;
    ctx->stopping_status = status;
}

/* ---- one run ------------------------------------------------------------ */

typedef struct fixture {
    char path[512]; /* the shared output file */
    int64_t n;
    context ctx;
    int32_t *sink_status; /* rank 0 */
    int32_t *stored;      /* this rank */
} fixture;

/* Empties the output file (rank 0) and opens it on every rank. */
static void fixture_open(fixture *f, const char *dir, int64_t n)
{
    snprintf(f->path, sizeof f->path, "%s/out.bin", dir);
    f->n = n;
    if (my_rank == 0)
        unlink(f->path);
    MPI_Barrier(MPI_COMM_WORLD);
    f->stored = calloc((size_t)n + 1, sizeof *f->stored);
    f->sink_status = calloc((size_t)n + 1, sizeof *f->sink_status);
    f->ctx = (context){ .fd = open(f->path, O_WRONLY | O_CREAT, 0644),
                        .store_fail_task = -1,
                        .store_fail_rank = -1,
                        .failed_at = -1,
                        .interrupt_after = -1,
                        .spin = 10,
                        .stored = f->stored,
                        .sink_status = f->sink_status };
    CHECK(f->ctx.fd >= 0, "cannot open %s: %s", f->path, strerror(errno));
}

/* Clears what one run counted, keeping the file. */
static void fixture_reset(fixture *f)
{
    memset(f->stored, 0, ((size_t)f->n + 1) * sizeof *f->stored);
    memset(f->sink_status, 0xff, ((size_t)f->n + 1) * sizeof *f->sink_status);
    context c = f->ctx;
    f->ctx = (context){ .fd = c.fd,
                        .store_fail_task = -1,
                        .store_fail_rank = -1,
                        .failed_at = -1,
                        .interrupt_after = -1,
                        .spin = c.spin,
                        .stored = f->stored,
                        .sink_status = f->sink_status };
}

static void fixture_close(fixture *f)
{
    if (f->ctx.fd >= 0)
        close(f->ctx.fd);
    free(f->stored);
    free(f->sink_status);
    MPI_Barrier(MPI_COMM_WORLD);
    if (my_rank == 0)
        unlink(f->path);
}

static mpmap_job store_job(fixture *f)
{
    return (mpmap_job){ .ntasks = f->n,
                        .record_size = sizeof(record),
                        .map = map_records,
                        .context = &f->ctx,
                        .sink = sink_ranges,
                        .stopping = count_stopping,
                        .store = store_records };
}

/* Times each task was stored over all ranks (rank 0; NULL elsewhere), and
 * how many stores ranks other than 0 made. */
static int32_t *gather_stored(const fixture *f, int64_t *elsewhere)
{
    int32_t *sum = my_rank == 0 ? calloc((size_t)f->n + 1, sizeof *sum) : NULL;
    MPI_Reduce(f->stored, sum, (int)f->n, MPI_INT32_T, MPI_SUM, 0, MPI_COMM_WORLD);
    int64_t mine = 0;
    if (my_rank != 0)
        for (int64_t t = 0; t < f->n; t++)
            mine += f->stored[t];
    *elsewhere = 0;
    MPI_Reduce(&mine, elsewhere, 1, MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
    return sum;
}

/* Rank 0: tasks of the file that differ from the serial computation (a
 * failed task, failed(t), must have been left as zeros). -1 when the file
 * cannot be read. */
static int64_t file_mismatches(const fixture *f, int64_t fail_every)
{
    FILE *in = fopen(f->path, "rb");
    if (!in)
        return -1;
    int64_t bad = 0;
    for (int64_t t = 0; t < f->n; t++) {
        record got = { 0, 0, 0 }, want = { 0, 0, 0 };
        if (fread(&got, sizeof got, 1, in) != 1)
            memset(&got, 0xee, sizeof got); /* short file */
        if (!(fail_every > 0 && t % fail_every == 5))
            want = expected_record(t);
        bad += memcmp(&got, &want, sizeof got) != 0;
    }
    fclose(in);
    return bad;
}

/* ---- the tests ---------------------------------------------------------- */

static int schedule_count(void)
{
    int n = 0;
    while (mpmap_schedule_names()[n])
        n++;
    return n;
}

/* Every schedule: the file equals the serial computation bitwise, each task
 * is stored once, the sink sees every task in order without records. */
static void test_every_schedule_stores_each_task_once(const char *dir)
{
    int64_t elsewhere_total = 0;
    for (int s = 0; s < schedule_count(); s++) {
        const char *name = mpmap_schedule_names()[s];
        fixture f;
        fixture_open(&f, dir, 3000);
        fixture_reset(&f);
        mpmap_config cfg;
        mpmap_config_init(&cfg);
        mpmap_schedule_from_name(name, &cfg.schedule);
        cfg.chunk = 4;
        int32_t *status = my_rank == 0 ? calloc((size_t)f.n, sizeof *status) : NULL;
        mpmap_job job = store_job(&f);
        job.status = status;
        mpmap_report rep;
        int rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
        CHECK(rc == MPMAP_OK, "%s: rc %d (%s)", name, rc, rep.message);
        CHECK(rep.tasks_done == f.n, "%s: done %lld", name, (long long)rep.tasks_done);
        int64_t elsewhere;
        int32_t *stored = gather_stored(&f, &elsewhere);
        if (my_rank == 0) {
            CHECK(f.ctx.next_expected == f.n && f.ctx.order_errors == 0,
                  "%s: sink reached %lld with %d order errors", name,
                  (long long)f.ctx.next_expected, f.ctx.order_errors);
            CHECK(f.ctx.records_given == 0, "%s: the sink got records %d times", name,
                  f.ctx.records_given);
            int64_t not_once = 0, bad_status = 0;
            for (int64_t t = 0; t < f.n; t++) {
                not_once += stored[t] != 1;
                bad_status += status[t] != 0 || f.sink_status[t] != 0;
            }
            CHECK(not_once == 0, "%s: %lld tasks not stored exactly once", name,
                  (long long)not_once);
            CHECK(bad_status == 0, "%s: %lld tasks with a status", name, (long long)bad_status);
            int64_t bad = file_mismatches(&f, 0);
            CHECK(bad == 0, "%s: %lld records of the file differ from the serial ones", name,
                  (long long)bad);
            if (nranks > 1 && strcmp(name, "static") == 0)
                CHECK(elsewhere > 0, "static: no rank but 0 stored anything");
            elsewhere_total += elsewhere;
        }
        if (strcmp(name, "static") == 0)
            for (int64_t t = 0; t < f.n; t++)
                computes_here |= f.stored[t] > 0;
        CHECK(f.ctx.write_errors == 0, "%s: %d failed writes", name, f.ctx.write_errors);
        free(stored);
        free(status);
        fixture_close(&f);
    }
    if (my_rank == 0 && nranks > 1)
        CHECK(elsewhere_total > 0, "no rank but 0 ever stored a record");
}

/* MPMAP_ON_ERROR_CONTINUE: a failed task is never stored, its status
 * reaches the sink, the others are stored once. */
static void test_failed_tasks_are_never_stored(const char *dir)
{
    fixture f;
    fixture_open(&f, dir, 2000);
    fixture_reset(&f);
    f.ctx.fail_every = 97;
    mpmap_config cfg;
    mpmap_config_init(&cfg);
    cfg.on_error = MPMAP_ON_ERROR_CONTINUE;
    cfg.chunk = 8;
    int32_t *status = my_rank == 0 ? calloc((size_t)f.n, sizeof *status) : NULL;
    mpmap_job job = store_job(&f);
    job.status = status;
    mpmap_report rep;
    int rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    int64_t nfailed = 0;
    for (int64_t t = 0; t < f.n; t++)
        nfailed += t % 97 == 5;
    CHECK(rc == MPMAP_OK, "continue: rc %d (%s)", rc, rep.message);
    CHECK(rep.tasks_failed == nfailed, "continue: %lld failed, want %lld",
          (long long)rep.tasks_failed, (long long)nfailed);
    int64_t elsewhere;
    int32_t *stored = gather_stored(&f, &elsewhere);
    if (my_rank == 0) {
        CHECK(f.ctx.next_expected == f.n && f.ctx.order_errors == 0 && f.ctx.records_given == 0,
              "continue: sink reached %lld, %d order errors, records given %d",
              (long long)f.ctx.next_expected, f.ctx.order_errors, f.ctx.records_given);
        int64_t wrong = 0;
        for (int64_t t = 0; t < f.n; t++) {
            bool failed = t % 97 == 5;
            wrong += stored[t] != (failed ? 0 : 1);
            wrong += status[t] != (failed ? 7 : 0) || f.sink_status[t] != status[t];
        }
        CHECK(wrong == 0, "continue: %lld wrong stores or statuses", (long long)wrong);
        int64_t bad = file_mismatches(&f, 97);
        CHECK(bad == 0, "continue: %lld records of the file differ", (long long)bad);
    }
    free(stored);
    free(status);
    fixture_close(&f);
}

/* The highest rank below `below` that computes, or -1. */
static int computing_rank_below(int below)
{
    int mine = computes_here && my_rank < below ? my_rank : -1, highest = -1;
    MPI_Allreduce(&mine, &highest, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return highest;
}

/* A store that fails stops the run on every rank with its message; the
 * range it held is never reported done. Under static every rank that
 * computes stores: the failure is met on rank 0 itself, on the highest
 * rank that computes and on the next one below it (under node dispatch
 * in fake nodes, one a sub-manager serves), then at a task. */
static void test_store_failure_stops_every_rank(const char *dir)
{
    const int64_t n = 2000;
    int highest = computing_rank_below(nranks);
    int next = highest > 0 ? computing_rank_below(highest) : -1;
    const int fail_ranks[] = { 0, highest > 0 ? highest : -1, next > 0 ? next : -1, -1 };
    const int64_t fail_tasks[] = { -1, -1, -1, n - 2 };
    for (size_t i = 0; i < 4; i++) {
        if (fail_ranks[i] < 0 && fail_tasks[i] < 0)
            continue;
        fixture f;
        fixture_open(&f, dir, n);
        fixture_reset(&f);
        f.ctx.store_fail_task = fail_tasks[i];
        f.ctx.store_fail_rank = fail_ranks[i];
        mpmap_config cfg;
        mpmap_config_init(&cfg);
        cfg.schedule = MPMAP_SCHEDULE_STATIC;
        mpmap_job job = store_job(&f);
        mpmap_report rep;
        int rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
        CHECK(rc == MPMAP_ECALLBACK, "store failure %zu: rc %d (%s)", i, rc, rep.message);
        CHECK(strcmp(rep.message, STORE_FAILURE) == 0, "store failure: message '%s'", rep.message);
        CHECK(rep.tasks_done < n, "store failure: %lld tasks done", (long long)rep.tasks_done);
        int64_t failed_at = -1;
        MPI_Allreduce(&f.ctx.failed_at, &failed_at, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
        CHECK(failed_at >= 0, "store failure %zu: no store failed", i);
        if (my_rank == 0) {
            CHECK(f.ctx.next_expected <= failed_at,
                  "the sink got task %lld whose store failed (reached %lld)", (long long)failed_at,
                  (long long)f.ctx.next_expected);
            CHECK(f.ctx.stopping_calls == 1 && f.ctx.stopping_status == MPMAP_ECALLBACK,
                  "stopping: %d calls, status %d", f.ctx.stopping_calls, f.ctx.stopping_status);
        }
        fixture_close(&f);
    }
}

/* Store with results or a reduction, or on some ranks only, is refused
 * everywhere before any work. */
static void test_store_conflicts_are_refused(const char *dir)
{
    fixture f;
    fixture_open(&f, dir, 100);
    fixture_reset(&f);
    mpmap_config cfg;
    mpmap_config_init(&cfg);
    mpmap_report rep;
    record results[100];
    mpmap_job job = store_job(&f);
    job.results = my_rank == 0 ? results : NULL;
    int rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    CHECK(rc == MPMAP_EINVAL && strstr(rep.message, "job.results") != NULL,
          "store + results: rc %d, '%s'", rc, rep.message);

    double acc[3] = { 0, 0, 0 };
    job = store_job(&f);
    job.reduce_op = MPMAP_REDUCE_SUM;
    job.reduce_type = MPMAP_DOUBLE;
    job.reduction = acc;
    rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    CHECK(rc == MPMAP_EINVAL && strstr(rep.message, "reduced") != NULL,
          "store + reduction: rc %d, '%s'", rc, rep.message);

    if (nranks > 1) {
        job = store_job(&f);
        if (my_rank == nranks - 1)
            job.store = NULL;
        rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
        char want[128];
        snprintf(want, sizeof want, "rank %d has no store function, rank 0 has one", nranks - 1);
        CHECK(rc == MPMAP_EINVAL && strcmp(rep.message, want) == 0,
              "store on some ranks: rc %d, '%s'", rc, rep.message);

        job = store_job(&f);
        if (my_rank == 0)
            job.store = NULL;
        rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
        CHECK(rc == MPMAP_EINVAL && strstr(rep.message, "has a store function, rank 0 has none"),
              "store on all but rank 0: rc %d, '%s'", rc, rep.message);
    }
    CHECK(sum_over_ranks(f.ctx.mapped) == 0, "a refused job ran %lld tasks",
          (long long)sum_over_ranks(f.ctx.mapped));
    fixture_close(&f);
}

/* Interrupt, then resume: the restored ranges reach the sink without
 * records, only the missing tasks are mapped and stored, and the file
 * ends equal to the serial one. A checkpoint of the other mode is
 * refused with a message that says so. */
static void test_interrupt_then_resume(const char *dir)
{
    char ckpt[512];
    snprintf(ckpt, sizeof ckpt, "%s/store.ckpt", dir);
    fixture f;
    fixture_open(&f, dir, 6000);
    fixture_reset(&f);
    volatile sig_atomic_t flag = 0;
    f.ctx.interrupt_after = 800;
    f.ctx.flag = &flag;
    f.ctx.spin = 40;
    mpmap_config cfg;
    mpmap_config_init(&cfg);
    cfg.checkpoint_path = ckpt;
    cfg.fingerprint = "store-test n=6000";
    cfg.interrupt = &flag;
    cfg.schedule = MPMAP_SCHEDULE_DYNAMIC;
    cfg.chunk = 20;
    mpmap_job job = store_job(&f);
    mpmap_report rep;
    int rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    CHECK(rc == MPMAP_EINTERRUPTED, "expected an interruption, got %d (%s)", rc, rep.message);
    CHECK(rep.tasks_done >= 800 && rep.tasks_done < f.n, "interrupted after %lld tasks",
          (long long)rep.tasks_done);
    int64_t first_done = rep.tasks_done;

    /* The same checkpoint without store: it holds no records to give. */
    cfg.resume = 1;
    cfg.interrupt = NULL;
    fixture_reset(&f);
    job = store_job(&f);
    job.store = NULL;
    rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    CHECK(rc == MPMAP_ERESUME && strstr(rep.message, "holds no records") != NULL,
          "funnel resume of a store checkpoint: rc %d, '%s'", rc, rep.message);

    fixture_reset(&f);
    f.ctx.spin = 1;
    job = store_job(&f);
    rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    CHECK(rc == MPMAP_OK, "resume: rc %d (%s)", rc, rep.message);
    CHECK(rep.tasks_restored == first_done, "restored %lld, first run did %lld",
          (long long)rep.tasks_restored, (long long)first_done);
    int64_t missing = f.n - first_done;
    int64_t mapped = sum_over_ranks(f.ctx.mapped);
    CHECK(mapped == missing, "resume mapped %lld tasks, %lld were missing", (long long)mapped,
          (long long)missing);
    int64_t elsewhere;
    int32_t *stored = gather_stored(&f, &elsewhere);
    if (my_rank == 0) {
        CHECK(f.ctx.next_expected == f.n && f.ctx.order_errors == 0 && f.ctx.records_given == 0,
              "resume: sink reached %lld, %d order errors, records given %d",
              (long long)f.ctx.next_expected, f.ctx.order_errors, f.ctx.records_given);
        int64_t stores = 0, twice = 0;
        for (int64_t t = 0; t < f.n; t++) {
            stores += stored[t];
            twice += stored[t] > 1;
        }
        CHECK(stores == missing && twice == 0,
              "resume stored %lld tasks (%lld twice), %lld missing", (long long)stores,
              (long long)twice, (long long)missing);
        int64_t bad = file_mismatches(&f, 0);
        CHECK(bad == 0, "resume: %lld records of the file differ", (long long)bad);
    }
    free(stored);

    /* A checkpoint with records, resumed with store. */
    cfg.resume = 0;
    cfg.fingerprint = "store-test funnel";
    fixture_reset(&f);
    job = store_job(&f);
    job.store = NULL;
    rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    CHECK(rc == MPMAP_OK, "funnel run: rc %d (%s)", rc, rep.message);
    cfg.resume = 1;
    job = store_job(&f);
    rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    CHECK(rc == MPMAP_ERESUME && strstr(rep.message, "holds 24-byte records") != NULL &&
              strstr(rep.message, "(store)") != NULL,
          "store resume of a funnel checkpoint: rc %d, '%s'", rc, rep.message);
    fixture_close(&f);
    if (my_rank == 0)
        unlink(ckpt);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    char dir[] = "/tmp/mpmap-store-XXXXXX";
    mpi_check_scratch(dir, (int)sizeof dir);

    test_every_schedule_stores_each_task_once(dir);
    test_failed_tasks_are_never_stored(dir);
    test_store_failure_stops_every_rank(dir);
    test_store_conflicts_are_refused(dir);
    test_interrupt_then_resume(dir);

    return mpi_check_finish("mpi_store_test", dir, failures, checks);
}
