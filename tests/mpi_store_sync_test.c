/*
 * Integration test of store mode with job.store_sync under mpirun (-n 1, 3,
 * and 5 under node dispatch). The test's store only stages a rank's records
 * in memory; its store_sync is what writes them into the shared file, so a
 * record reaches the file (is "durable") only through a store_sync, and a
 * checkpoint that logs a range before its rank synced it leaves a hole that
 * resume never fills. Checked: syncs are batched (far fewer than stores),
 * never made without a checkpoint, a failing store_sync stops every rank
 * with its message, and after a stopped run (interrupt, failed sync) the
 * ranges a resume restores are all durable and the file ends equal to a
 * serial computation bit for bit. Every rank checks; the verdict is
 * combined so all ranks exit alike.
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

#define SYNC_FAILURE "cannot sync 'out.bin': Input/output error"

typedef struct span {
    int64_t begin, end;
} span;

typedef struct context {
    int fd; /* the shared output file, on every rank */
    int64_t n;
    int spin;
    int sync_fail_rank;      /* store_sync fails on this rank ... */
    int64_t sync_fail_call;  /* ... at its call number (1-based), or never (-1) */
    int64_t interrupt_after; /* rank 0 raises the interrupt after this many tasks, or -1 */
    volatile sig_atomic_t *flag;
    /* every rank */
    record *staged; /* n records: stored, not yet written to the file */
    span *spans;    /* the staged ranges */
    size_t nspans, spans_capacity;
    int32_t *durable; /* per task: written to the file by a store_sync here */
    int32_t *mapped;  /* per task: times mapped here */
    int64_t mapped_total;
    int64_t store_calls, sync_calls;
    bool sync_failed;
    int io_errors;
} context;

static int map_records(int64_t begin, int64_t end, void *out, mpmap_task_error *err, void *vctx)
{
    (void)err;
    context *ctx = vctx;
    record *r = out;
    for (int64_t t = begin; t < end; t++) {
        ctx->mapped[t]++;
        ctx->mapped_total++;
        volatile double s = 0;
        for (int i = 0; i < ctx->spin * (int)(1 + t % 5); i++)
            s += i;
        r[t - begin] = expected_record(t);
        if (ctx->interrupt_after >= 0 && my_rank == 0 && ctx->mapped_total >= ctx->interrupt_after)
            *ctx->flag = 1;
    }
    return 0;
}

/* Stages the records: nothing reaches the file before store_sync. */
static int stage_records(int64_t begin, int64_t end, const void *records, char *message, void *vctx)
{
    context *ctx = vctx;
    ctx->store_calls++;
    if (ctx->nspans == ctx->spans_capacity) {
        size_t cap = ctx->spans_capacity ? 2 * ctx->spans_capacity : 64;
        span *grown = realloc(ctx->spans, cap * sizeof *grown);
        if (!grown) {
            snprintf(message, MPMAP_MESSAGE_MAX, "out of memory");
            return -1;
        }
        ctx->spans = grown;
        ctx->spans_capacity = cap;
    }
    ctx->spans[ctx->nspans++] = (span){ begin, end };
    memcpy(ctx->staged + begin, records, (size_t)(end - begin) * sizeof(record));
    return 0;
}

/* Writes every staged range into the file: they are durable from here on. */
static int sync_staged(char *message, void *vctx)
{
    context *ctx = vctx;
    ctx->sync_calls++;
    if (my_rank == ctx->sync_fail_rank && ctx->sync_calls == ctx->sync_fail_call) {
        ctx->sync_failed = true;
        snprintf(message, MPMAP_MESSAGE_MAX, "%s", SYNC_FAILURE);
        return -1;
    }
    for (size_t i = 0; i < ctx->nspans; i++) {
        span s = ctx->spans[i];
        size_t bytes = (size_t)(s.end - s.begin) * sizeof(record);
        if (pwrite(ctx->fd, ctx->staged + s.begin, bytes,
                   (off_t)(s.begin * (int64_t)sizeof(record))) != (ssize_t)bytes) {
            ctx->io_errors++;
            snprintf(message, MPMAP_MESSAGE_MAX, "pwrite: %s", strerror(errno));
            return -1;
        }
        for (int64_t t = s.begin; t < s.end; t++)
            ctx->durable[t] = 1;
    }
    ctx->nspans = 0;
    return 0;
}

/* ---- one run ------------------------------------------------------------ */

typedef struct fixture {
    char path[512], ckpt[512];
    context ctx;
} fixture;

/* Empties the output file and the checkpoint (rank 0) and opens the file
 * on every rank. */
static void fixture_open(fixture *f, const char *dir, int64_t n)
{
    snprintf(f->path, sizeof f->path, "%s/out.bin", dir);
    snprintf(f->ckpt, sizeof f->ckpt, "%s/sync.ckpt", dir);
    if (my_rank == 0) {
        unlink(f->path);
        unlink(f->ckpt);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    f->ctx = (context){ .fd = open(f->path, O_WRONLY | O_CREAT, 0644),
                        .n = n,
                        .sync_fail_rank = -1,
                        .sync_fail_call = -1,
                        .interrupt_after = -1,
                        .staged = calloc((size_t)n + 1, sizeof(record)),
                        .durable = calloc((size_t)n + 1, sizeof(int32_t)),
                        .mapped = calloc((size_t)n + 1, sizeof(int32_t)) };
    CHECK(f->ctx.fd >= 0, "cannot open %s: %s", f->path, strerror(errno));
}

/* Empties the file (rank 0) before a run from scratch, so that a record
 * no store_sync wrote reads as zeros. */
static void fixture_truncate(fixture *f)
{
    if (my_rank == 0)
        CHECK(ftruncate(f->ctx.fd, 0) == 0, "cannot truncate %s: %s", f->path, strerror(errno));
    MPI_Barrier(MPI_COMM_WORLD);
}

/* Clears what one run counted, keeping the file and the checkpoint. */
static void fixture_reset(fixture *f)
{
    context *c = &f->ctx;
    memset(c->durable, 0, (size_t)c->n * sizeof *c->durable);
    memset(c->mapped, 0, (size_t)c->n * sizeof *c->mapped);
    c->nspans = 0;
    c->mapped_total = c->store_calls = c->sync_calls = 0;
    c->sync_fail_rank = -1;
    c->sync_fail_call = -1;
    c->interrupt_after = -1;
    c->sync_failed = false;
}

static void fixture_close(fixture *f)
{
    if (f->ctx.fd >= 0)
        close(f->ctx.fd);
    free(f->ctx.staged);
    free(f->ctx.spans);
    free(f->ctx.durable);
    free(f->ctx.mapped);
    MPI_Barrier(MPI_COMM_WORLD);
    if (my_rank == 0) {
        unlink(f->path);
        unlink(f->ckpt);
    }
}

static mpmap_job sync_job(fixture *f)
{
    return (mpmap_job){ .ntasks = f->ctx.n,
                        .record_size = sizeof(record),
                        .map = map_records,
                        .context = &f->ctx,
                        .store = stage_records,
                        .store_sync = sync_staged };
}

static mpmap_config sync_config(fixture *f, const char *fingerprint)
{
    mpmap_config cfg;
    mpmap_config_init(&cfg);
    cfg.checkpoint_path = f->ckpt;
    cfg.fingerprint = fingerprint;
    cfg.checkpoint_interval = 0.05;
    cfg.schedule = MPMAP_SCHEDULE_DYNAMIC;
    cfg.chunk = 1;
    return cfg;
}

/* Per task over all ranks on rank 0 (NULL elsewhere): op of the values. */
static int32_t *reduce_tasks(const int32_t *mine, int64_t n, MPI_Op op)
{
    int32_t *all = my_rank == 0 ? calloc((size_t)n + 1, sizeof *all) : NULL;
    MPI_Reduce(mine, all, (int)n, MPI_INT32_T, op, 0, MPI_COMM_WORLD);
    return all;
}

/* Rank 0: tasks of the file that differ from the serial computation; -1
 * when the file cannot be read. */
static int64_t file_mismatches(const fixture *f)
{
    FILE *in = fopen(f->path, "rb");
    if (!in)
        return -1;
    int64_t bad = 0;
    for (int64_t t = 0; t < f->ctx.n; t++) {
        record got = { 0, 0, 0 }, want = expected_record(t);
        if (fread(&got, sizeof got, 1, in) != 1)
            memset(&got, 0xee, sizeof got); /* short file */
        bad += memcmp(&got, &want, sizeof got) != 0;
    }
    fclose(in);
    return bad;
}

/*
 * Resumes the stopped run whose per-task durable union (rank 0) is
 * `durable` with store_sync working: the tasks it restores (maps none of)
 * must all have been durable, it must report them as restored, and the file
 * must end equal to the serial one. `what` names the case.
 */
static void resume_and_check(fixture *f, mpmap_config cfg, const int32_t *durable,
                             int64_t first_done, const char *what)
{
    fixture_reset(f);
    f->ctx.spin = 1;
    cfg.resume = 1;
    cfg.interrupt = NULL;
    mpmap_job job = sync_job(f);
    mpmap_report rep;
    int rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    CHECK(rc == MPMAP_OK, "%s, resume: rc %d (%s)", what, rc, rep.message);
    CHECK(rep.tasks_restored <= first_done, "%s: restored %lld, the stopped run did %lld", what,
          (long long)rep.tasks_restored, (long long)first_done);
    int32_t *mapped = reduce_tasks(f->ctx.mapped, f->ctx.n, MPI_SUM);
    if (my_rank == 0) {
        int64_t restored = 0, not_durable = 0, twice = 0;
        for (int64_t t = 0; t < f->ctx.n; t++) {
            restored += mapped[t] == 0;
            not_durable += mapped[t] == 0 && !durable[t];
            twice += mapped[t] > 1;
        }
        CHECK(not_durable == 0, "%s: %lld restored tasks were never synced", what,
              (long long)not_durable);
        CHECK(restored == rep.tasks_restored && twice == 0,
              "%s: %lld tasks not mapped (%lld twice), %lld reported restored", what,
              (long long)restored, (long long)twice, (long long)rep.tasks_restored);
        int64_t bad = file_mismatches(f);
        CHECK(bad == 0, "%s: %lld records of the file differ from the serial ones", what,
              (long long)bad);
    }
    free(mapped);
}

/* ---- the tests ---------------------------------------------------------- */

/* One store per task (dynamic, chunk 1), syncs at most every 0.05 s per
 * rank: far fewer syncs than stores, the file is right, and a run that
 * ends normally leaves every task in the checkpoint (a resume restores all
 * and maps none). Without a checkpoint store_sync is never called. */
static void test_syncs_are_batched(const char *dir)
{
    fixture f;
    fixture_open(&f, dir, 2000);
    fixture_reset(&f);
    f.ctx.spin = 5000; /* the run lasts several sync intervals */
    mpmap_config cfg = sync_config(&f, "sync-test batched");
    mpmap_job job = sync_job(&f);
    mpmap_report rep;
    int rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    CHECK(rc == MPMAP_OK, "batched: rc %d (%s)", rc, rep.message);
    int64_t stores = sum_over_ranks(f.ctx.store_calls);
    int64_t syncs = sum_over_ranks(f.ctx.sync_calls);
    if (my_rank == 0)
        printf("batched: %lld stores, %lld syncs on %d ranks in %.3f s\n", (long long)stores,
               (long long)syncs, nranks, rep.wall_time);
    CHECK(stores >= f.ctx.n / 2, "batched: only %lld stores", (long long)stores);
    CHECK(syncs >= 1 && syncs * 10 <= stores, "batched: %lld syncs for %lld stores",
          (long long)syncs, (long long)stores);
    CHECK(f.ctx.nspans == 0, "batched: %zu ranges stored here were never synced", f.ctx.nspans);
    if (my_rank == 0) {
        int64_t bad = file_mismatches(&f);
        CHECK(bad == 0, "batched: %lld records of the file differ", (long long)bad);
    }

    /* Everything is in the checkpoint: nothing left to compute. */
    fixture_reset(&f);
    cfg.resume = 1;
    rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    CHECK(rc == MPMAP_OK && rep.tasks_restored == f.ctx.n,
          "batched, resume: rc %d, restored %lld of %lld (%s)", rc, (long long)rep.tasks_restored,
          (long long)f.ctx.n, rep.message);
    CHECK(sum_over_ranks(f.ctx.mapped_total) == 0, "batched, resume: %lld tasks mapped again",
          (long long)sum_over_ranks(f.ctx.mapped_total));

    /* No checkpoint: store must sync itself, store_sync is never called. */
    fixture_reset(&f);
    f.ctx.spin = 1;
    cfg.checkpoint_path = NULL;
    cfg.resume = 0;
    rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    CHECK(rc == MPMAP_OK, "no checkpoint: rc %d (%s)", rc, rep.message);
    CHECK(sum_over_ranks(f.ctx.sync_calls) == 0, "no checkpoint: %lld store_sync calls",
          (long long)sum_over_ranks(f.ctx.sync_calls));
    fixture_close(&f);
}

/* The highest rank at or below `at_most` that made at least 3 store_sync
 * calls in the last run (so that a failure at the second one falls
 * mid-run), or -1. */
static int syncing_rank(const fixture *f, int at_most)
{
    int mine = f->ctx.sync_calls >= 3 && my_rank <= at_most ? my_rank : -1, highest = -1;
    MPI_Allreduce(&mine, &highest, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return highest;
}

/* store_sync fails (at its second call) on rank 0, then on another rank:
 * MPMAP_ECALLBACK with its message on every rank, and the ranges that rank
 * stored since its last sync never reach the checkpoint: a resume
 * restores durable tasks only and ends with the right file. */
static void test_failed_sync_stops_and_loses_nothing(const char *dir)
{
    fixture f;
    fixture_open(&f, dir, 2000);
    fixture_reset(&f);
    f.ctx.spin = 5000;
    mpmap_config cfg = sync_config(&f, "sync-test failure");
    cfg.checkpoint_interval = 0.02; /* every rank that computes syncs more than once */
    mpmap_job job = sync_job(&f);
    mpmap_report rep;
    (void)mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep); /* which ranks sync */
    int other = syncing_rank(&f, nranks - 1);
    const int fail_ranks[] = { syncing_rank(&f, 0), other > 0 ? other : -1 };
    CHECK(fail_ranks[0] == 0 || fail_ranks[1] > 0, "no rank synced 3 times: nothing to fail");
    for (int i = 0; i < 2; i++) {
        if (fail_ranks[i] < 0)
            continue;
        fixture_reset(&f);
        f.ctx.spin = 5000;
        f.ctx.sync_fail_rank = fail_ranks[i];
        f.ctx.sync_fail_call = 2;
        cfg.resume = 0;
        fixture_truncate(&f);
        int rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
        char what[64];
        snprintf(what, sizeof what, "sync failure on rank %d", fail_ranks[i]);
        CHECK(rc == MPMAP_ECALLBACK, "%s: rc %d (%s)", what, rc, rep.message);
        CHECK(strcmp(rep.message, SYNC_FAILURE) == 0, "%s: message '%s'", what, rep.message);
        int failed = f.ctx.sync_failed, any = 0;
        MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        CHECK(any, "%s: no store_sync failed", what);
        int32_t *durable = reduce_tasks(f.ctx.durable, f.ctx.n, MPI_MAX);
        resume_and_check(&f, cfg, durable, rep.tasks_done, what);
        free(durable);
    }
    fixture_close(&f);
}

/* Interrupted, then resumed: the restored tasks were all durable and the
 * file ends right. */
static void test_interrupt_then_resume(const char *dir)
{
    fixture f;
    fixture_open(&f, dir, 6000);
    fixture_reset(&f);
    volatile sig_atomic_t flag = 0;
    f.ctx.interrupt_after = 300;
    f.ctx.flag = &flag;
    f.ctx.spin = 200;
    mpmap_config cfg = sync_config(&f, "sync-test interrupt");
    cfg.chunk = 20;
    cfg.interrupt = &flag;
    mpmap_job job = sync_job(&f);
    mpmap_report rep;
    int rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    CHECK(rc == MPMAP_EINTERRUPTED, "expected an interruption, got %d (%s)", rc, rep.message);
    CHECK(rep.tasks_done >= 300 && rep.tasks_done < f.ctx.n, "interrupted after %lld tasks",
          (long long)rep.tasks_done);
    /* A rank that stops early syncs what it stored. */
    CHECK(f.ctx.nspans == 0, "interrupt: %zu ranges stored here were never synced", f.ctx.nspans);
    int32_t *durable = reduce_tasks(f.ctx.durable, f.ctx.n, MPI_MAX);
    resume_and_check(&f, cfg, durable, rep.tasks_done, "interrupt");
    free(durable);
    fixture_close(&f);
}

/* store_sync without store, or on some ranks only, is refused. */
static void test_sync_conflicts_are_refused(const char *dir)
{
    fixture f;
    fixture_open(&f, dir, 100);
    fixture_reset(&f);
    mpmap_config cfg = sync_config(&f, "sync-test refused");
    mpmap_job job = sync_job(&f);
    job.store = NULL;
    mpmap_report rep;
    int rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
    CHECK(rc == MPMAP_EINVAL && strstr(rep.message, "store_sync needs job.store") != NULL,
          "store_sync without store: rc %d, '%s'", rc, rep.message);
    if (nranks > 1) {
        job = sync_job(&f);
        if (my_rank == nranks - 1)
            job.store_sync = NULL;
        rc = mpmap_run(MPI_COMM_WORLD, &cfg, &job, &rep);
        char want[128];
        snprintf(want, sizeof want, "rank %d has no store_sync function, rank 0 has one",
                 nranks - 1);
        CHECK(rc == MPMAP_EINVAL && strcmp(rep.message, want) == 0,
              "store_sync on some ranks: rc %d, '%s'", rc, rep.message);
    }
    CHECK(sum_over_ranks(f.ctx.mapped_total) == 0, "a refused job ran %lld tasks",
          (long long)sum_over_ranks(f.ctx.mapped_total));
    fixture_close(&f);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    char dir[] = "/tmp/mpmap-store-sync-XXXXXX";
    mpi_check_scratch(dir, (int)sizeof dir);

    test_syncs_are_batched(dir);
    test_failed_sync_stops_and_loses_nothing(dir);
    test_interrupt_then_resume(dir);
    test_sync_conflicts_are_refused(dir);

    return mpi_check_finish("mpi_store_sync_test", dir, failures, checks);
}
