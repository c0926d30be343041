/* Tests of the checkpoint log's appends and resumes: round trips in any
 * completion order, a second interruption, record size 0, overlapping
 * entries, a failed write, removal, torn tails and a SIGKILLed writer, with
 * the documented on-disk sizes. What the log refuses to open is in
 * test_checkpoint_validate.c. */
#define _GNU_SOURCE /* mkdtemp, kill, ftruncate under -std=c17 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint_fixture.h"

static int any_failed(int64_t begin, int64_t end)
{
    for (int64_t t = begin; t < end; t++)
        if (status_of(t) != 0)
            return 1;
    return 0;
}

/* ---- round trips ---------------------------------------------------------- */

static void test_resume_restores_out_of_order_appends_coalesced(void **state)
{
    fixture *f = *state;
    mpmap_ckpt *c = open_ok(f->path, 100, 8, 0);
    assert_int_equal(mpmap__ckpt_restored(c, NULL), 0);
    assert_int_equal(mpmap__ckpt_restored_tasks(c), 0);
    /* Completion order differs from task order; [10,25) passes an all-zero
     * status array, [0,10) none. */
    append_chunk(c, 40, 60, 1);
    append_chunk(c, 0, 10, 0);
    int32_t zeros[15] = { 0 };
    uint64_t rec[15];
    fill(10, 25, rec, NULL);
    assert_int_equal(mpmap__ckpt_append(c, 10, 25, rec, zeros), MPMAP_OK);
    append_chunk(c, 70, 100, 1);
    append_chunk(c, 25, 40, 1);
    assert_int_equal(mpmap__ckpt_sync(c), MPMAP_OK);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);

    /* Size from the documented format: statuses only where some is non-zero. */
    const int64_t chunks[][2] = { { 40, 60 }, { 0, 10 }, { 10, 25 }, { 70, 100 }, { 25, 40 } };
    int64_t want = (int64_t)MPMAP_CKPT_HEADER_SIZE(strlen(FP));
    for (size_t i = 0; i < 5; i++) {
        int64_t n = chunks[i][1] - chunks[i][0];
        int st = i != 1 && i != 2 && any_failed(chunks[i][0], chunks[i][1]);
        want += MPMAP_CKPT_ENTRY_HEADER_SIZE + n * 8 + (st ? n * 4 : 0);
    }
    assert_int_equal(file_size(f->path), want);

    c = open_ok(f->path, 100, 8, 1);
    const int64_t ranges[][2] = { { 0, 60 }, { 70, 100 } };
    expect_ranges(c, 2, ranges);
    assert_int_equal(mpmap__ckpt_discarded_bytes(c), 0);
    expect_tasks(c, 0, 25, 0);   /* spans two entries without statuses */
    expect_tasks(c, 25, 60, 1);  /* spans two entries with statuses */
    expect_tasks(c, 45, 50, 1);  /* inside one entry */
    expect_tasks(c, 70, 100, 1); /* a whole entry */

    /* Mixed: [5, 30) spans three entries, the last one with statuses. */
    uint64_t r[25];
    int32_t s[25];
    assert_int_equal(mpmap__ckpt_read(c, 5, 30, r, s), MPMAP_OK);
    for (int64_t t = 5; t < 30; t++) {
        assert_true(r[t - 5] == record_of(t));
        assert_int_equal(s[t - 5], t >= 25 ? status_of(t) : 0);
    }
    /* Records only, statuses only. */
    assert_int_equal(mpmap__ckpt_read(c, 50, 52, r, NULL), MPMAP_OK);
    assert_true(r[0] == record_of(50) && r[1] == record_of(51));
    assert_int_equal(mpmap__ckpt_read(c, 52, 53, NULL, s), MPMAP_OK);
    assert_int_equal(s[0], status_of(52));

    /* Not restored. */
    assert_int_equal(mpmap__ckpt_read(c, 55, 75, r, s), MPMAP_EINVAL);
    assert_int_equal(mpmap__ckpt_read(c, 60, 61, r, s), MPMAP_EINVAL);
    assert_non_null(strstr(mpmap__ckpt_error(c), "not restored"));
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
}

static void test_second_interruption_keeps_both_runs(void **state)
{
    fixture *f = *state;
    mpmap_ckpt *c = open_ok(f->path, 100, 8, 0);
    append_chunk(c, 0, 50, 1);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);

    c = open_ok(f->path, 100, 8, 1);
    const int64_t first[][2] = { { 0, 50 } };
    expect_ranges(c, 1, first);
    append_chunk(c, 80, 100, 1);
    append_chunk(c, 50, 60, 1);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);

    c = open_ok(f->path, 100, 8, 1);
    const int64_t both[][2] = { { 0, 60 }, { 80, 100 } };
    expect_ranges(c, 2, both);
    expect_tasks(c, 0, 60, 1);
    expect_tasks(c, 80, 100, 1);
    /* A fresh open discards the log. */
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    c = open_ok(f->path, 100, 8, 0);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    c = open_ok(f->path, 100, 8, 1);
    assert_int_equal(mpmap__ckpt_restored(c, NULL), 0);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
}

static void test_record_size_zero_keeps_ranges_and_statuses(void **state)
{
    fixture *f = *state;
    mpmap_ckpt *c = open_ok(f->path, 1000, 0, 0);
    assert_int_equal(mpmap__ckpt_append(c, 500, 1000, NULL, NULL), MPMAP_OK);
    int32_t st[100];
    for (int64_t t = 0; t < 100; t++)
        st[t] = status_of(t);
    assert_int_equal(mpmap__ckpt_append(c, 0, 100, NULL, st), MPMAP_OK);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    assert_int_equal(file_size(f->path), (int64_t)MPMAP_CKPT_HEADER_SIZE(strlen(FP)) +
                                             2 * MPMAP_CKPT_ENTRY_HEADER_SIZE + 100 * 4);

    c = open_ok(f->path, 1000, 0, 1);
    const int64_t ranges[][2] = { { 0, 100 }, { 500, 1000 } };
    expect_ranges(c, 2, ranges);
    int32_t got[600];
    assert_int_equal(mpmap__ckpt_read(c, 0, 100, NULL, got), MPMAP_OK);
    for (int64_t t = 0; t < 100; t++)
        assert_int_equal(got[t], status_of(t));
    memset(got, 1, sizeof got);
    assert_int_equal(mpmap__ckpt_read(c, 500, 1000, NULL, got), MPMAP_OK);
    for (int i = 0; i < 500; i++)
        assert_int_equal(got[i], 0);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
}

static void test_overlapping_entry_is_ignored_whole(void **state)
{
    fixture *f = *state;
    mpmap_ckpt *c = open_ok(f->path, 100, 8, 0);
    append_chunk(c, 0, 10, 1);
    /* Overlaps [0,10): ignored as a whole, though [10,15) is new. Its
     * records differ so reading them back would show. */
    uint64_t bogus[20];
    for (int i = 0; i < 20; i++)
        bogus[i] = ~record_of(5 + i);
    assert_int_equal(mpmap__ckpt_append(c, 5, 15, bogus, NULL), MPMAP_OK);
    append_chunk(c, 30, 40, 1);
    append_chunk(c, 10, 20, 1);
    assert_int_equal(mpmap__ckpt_append(c, 35, 36, bogus, NULL), MPMAP_OK); /* inside [30,40) */
    assert_int_equal(mpmap__ckpt_append(c, 15, 35, bogus, NULL), MPMAP_OK); /* spans two */
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);

    c = open_ok(f->path, 100, 8, 1);
    const int64_t ranges[][2] = { { 0, 20 }, { 30, 40 } };
    expect_ranges(c, 2, ranges);
    expect_tasks(c, 0, 20, 1);
    expect_tasks(c, 30, 40, 1);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
}

/* ---- a failed write, removal ------------------------------------------------ */

/* A write that fails (the disk full, or here a file size limit) is reported
 * with its cause, and leaves the log as it was: the runtime passes this text
 * on to the run's report. */
static void test_failed_append_names_the_cause_and_keeps_the_log_clean(void **state)
{
    fixture *f = *state;
    mpmap_ckpt *c = open_ok(f->path, 1000, 8, 0);
    uint64_t rec[1000] = { 0 };
    assert_int_equal(mpmap__ckpt_append(c, 0, 10, rec, NULL), MPMAP_OK);
    int64_t before = file_size(f->path);
    struct rlimit saved;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = { (rlim_t)before + 100, saved.rlim_max };
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    int rc = mpmap__ckpt_append(c, 10, 1000, rec, NULL);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(rc, MPMAP_EIO);
    assert_non_null(strstr(mpmap__ckpt_error(c), strerror(EFBIG)));
    assert_non_null(strstr(mpmap__ckpt_error(c), f->path));
    assert_int_equal(file_size(f->path), before);
    /* The log goes on once there is room again. */
    assert_int_equal(mpmap__ckpt_append(c, 10, 20, rec, NULL), MPMAP_OK);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
}

static void test_remove_unlinks_and_close_keeps(void **state)
{
    fixture *f = *state;
    mpmap_ckpt *c = open_ok(f->path, 10, 8, 0);
    append_chunk(c, 0, 10, 1);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    c = open_ok(f->path, 10, 8, 1);
    assert_int_equal(mpmap__ckpt_remove(c), MPMAP_OK);
    assert_int_equal(stat(f->path, &st), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(mpmap__ckpt_close(NULL), MPMAP_OK);
}

/* ---- torn tails ------------------------------------------------------------ */

/* The notice of a log cut after `kept` of 100 tasks at byte `at`. */
static void expect_notice(const mpmap_ckpt *c, const char *path, int64_t kept, int64_t at)
{
    char want[512];
    snprintf(want, sizeof want,
             "checkpoint '%s' is damaged after %lld of 100 tasks (byte %lld); the other %lld "
             "tasks will be recomputed",
             path, (long long)kept, (long long)at, (long long)(100 - kept));
    assert_string_equal(mpmap__ckpt_notice(c), want);
}

static void test_torn_last_entry_is_dropped_and_log_continues(void **state)
{
    fixture *f = *state;
    mpmap_ckpt *c = open_ok(f->path, 100, 8, 0);
    append_chunk(c, 0, 10, 1);
    append_chunk(c, 20, 30, 1);
    int64_t good_end = file_size(f->path);
    append_chunk(c, 10, 20, 1); /* the entry that will be torn */
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    int64_t size;
    unsigned char *orig = slurp(f->path, &size);
    int64_t last = size - good_end;
    assert_int_equal(last, MPMAP_CKPT_ENTRY_HEADER_SIZE + 10 * 8 + 10 * 4);

    const int64_t cuts[] = { 1,
                             20,
                             MPMAP_CKPT_ENTRY_HEADER_SIZE - 1,
                             MPMAP_CKPT_ENTRY_HEADER_SIZE,
                             MPMAP_CKPT_ENTRY_HEADER_SIZE + 1,
                             last / 2 + 3,
                             last - 1 };
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        spit(f->path, orig, good_end + cuts[k]);
        c = open_ok(f->path, 100, 8, 1);
        const int64_t before[][2] = { { 0, 10 }, { 20, 30 } };
        expect_ranges(c, 2, before);
        assert_int_equal(mpmap__ckpt_discarded_bytes(c), cuts[k]);
        expect_notice(c, f->path, 20, good_end);
        assert_int_equal(file_size(f->path), good_end); /* torn bytes truncated away */
        expect_tasks(c, 0, 10, 1);
        expect_tasks(c, 20, 30, 1);
        append_chunk(c, 10, 20, 1);
        assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);

        c = open_ok(f->path, 100, 8, 1);
        const int64_t after[][2] = { { 0, 30 } };
        expect_ranges(c, 1, after);
        assert_int_equal(mpmap__ckpt_discarded_bytes(c), 0);
        assert_string_equal(mpmap__ckpt_notice(c), ""); /* a clean log says nothing */
        expect_tasks(c, 0, 30, 1);
        assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    }

    /* One flipped bit anywhere in the last entry: payload (status part,
     * record part), or header fields. */
    const int64_t flips[] = { MPMAP_CKPT_ENTRY_HEADER_SIZE + 5,
                              MPMAP_CKPT_ENTRY_HEADER_SIZE + 60,
                              last - 1,
                              0,
                              9,
                              25,
                              33,
                              37 };
    for (size_t k = 0; k < sizeof flips / sizeof flips[0]; k++) {
        orig[good_end + flips[k]] ^= 0x10;
        spit(f->path, orig, size);
        orig[good_end + flips[k]] ^= 0x10;
        c = open_ok(f->path, 100, 8, 1);
        const int64_t before[][2] = { { 0, 10 }, { 20, 30 } };
        expect_ranges(c, 2, before);
        assert_int_equal(mpmap__ckpt_discarded_bytes(c), last);
        assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    }

    /* Damage in a middle entry ends the log there (documented): later
     * entries cannot be trusted to start on an entry boundary. */
    int64_t first_end = (int64_t)MPMAP_CKPT_HEADER_SIZE(strlen(FP)) + MPMAP_CKPT_ENTRY_HEADER_SIZE +
                        10 * 8 + 10 * 4;
    orig[first_end + MPMAP_CKPT_ENTRY_HEADER_SIZE + 7] ^= 0x01;
    spit(f->path, orig, size);
    c = open_ok(f->path, 100, 8, 1);
    const int64_t only[][2] = { { 0, 10 } };
    expect_ranges(c, 1, only);
    expect_notice(c, f->path, 10, first_end); /* told, not dropped silently */
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    free(orig);
}

/* ---- SIGKILL ---------------------------------------------------------------- */

#define CRASH_TASKS 1000000
#define CRASH_CHUNKS 2000

/* A fixed plan of chunks: boundaries and the order the "workers" finish
 * them, from a seed, so parent and child agree. */
typedef struct crash_plan {
    int64_t bound[CRASH_CHUNKS + 1];
    int order[CRASH_CHUNKS];
} crash_plan;

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static void make_plan(crash_plan *p, uint64_t seed)
{
    /* Distinct cut points: sorted random picks, deduplicated by spacing. */
    for (int i = 0; i <= CRASH_CHUNKS; i++)
        p->bound[i] = (int64_t)((double)i * CRASH_TASKS / CRASH_CHUNKS);
    for (int i = 1; i < CRASH_CHUNKS; i++) {
        int64_t room = p->bound[i + 1] - p->bound[i - 1] - 2;
        p->bound[i] = p->bound[i - 1] + 1 + (int64_t)(lcg(&seed) % (uint64_t)(room / 2 + 1));
    }
    for (int i = 0; i < CRASH_CHUNKS; i++)
        p->order[i] = i;
    /* Local swaps only: completion order stays near task order, as with
     * guided scheduling. */
    for (int i = CRASH_CHUNKS - 1; i > 0; i--) {
        int j = i - (int)(lcg(&seed) % 8);
        if (j < 0)
            j = 0;
        int tmp = p->order[i];
        p->order[i] = p->order[j];
        p->order[j] = tmp;
    }
}

/* Child: resumes (or starts) the log and appends every planned chunk not
 * yet restored, then waits to be killed. Never returns. */
static void crash_child(const char *path, const crash_plan *p, int resume, int ready_fd)
{
    mpmap_ckpt *c = NULL;
    if (mpmap__ckpt_open(path, FP, CRASH_TASKS, 8, resume, &c, NULL, 0) != MPMAP_OK)
        _exit(2);
    const mpmap_range *r;
    size_t nr = mpmap__ckpt_restored(c, &r);
    if (write(ready_fd, "x", 1) != 1)
        _exit(3);
    uint64_t *rec = malloc(sizeof(uint64_t) * CRASH_TASKS / 10);
    int32_t *st = malloc(sizeof(int32_t) * CRASH_TASKS / 10);
    if (rec == NULL || st == NULL)
        _exit(4);
    for (int k = 0; k < CRASH_CHUNKS; k++) {
        int64_t b = p->bound[p->order[k]], e = p->bound[p->order[k] + 1];
        int done = 0;
        for (size_t i = 0; i < nr; i++)
            done |= r[i].begin <= b && e <= r[i].end;
        if (done)
            continue;
        fill(b, e, rec, st);
        if (mpmap__ckpt_append(c, b, e, rec, st) != MPMAP_OK)
            _exit(5);
        if (mpmap__ckpt_sync_if_due(c, 0.005) != MPMAP_OK)
            _exit(6);
    }
    if (mpmap__ckpt_close(c) != MPMAP_OK)
        _exit(7);
    _exit(0);
}

/* Parent's check after a kill: everything restored reads back exactly, and
 * restored ranges are unions of whole planned chunks. */
static int64_t check_recovered(const char *path, const crash_plan *p, int64_t before)
{
    mpmap_ckpt *c = open_ok(path, CRASH_TASKS, 8, 1);
    if (mpmap__ckpt_discarded_bytes(c) > 0)
        print_message("torn tail of %lld bytes dropped\n",
                      (long long)mpmap__ckpt_discarded_bytes(c));
    const mpmap_range *r;
    size_t nr = mpmap__ckpt_restored(c, &r);
    int64_t total = mpmap__ckpt_restored_tasks(c);
    assert_true(total >= before); /* a crash never loses synced-or-not complete entries */
    uint64_t *rec = malloc(sizeof(uint64_t) * 65536);
    int32_t *st = malloc(sizeof(int32_t) * 65536);
    assert_non_null(rec);
    assert_non_null(st);
    for (size_t i = 0; i < nr; i++) {
        int found_b = 0, found_e = 0;
        for (int k = 0; k <= CRASH_CHUNKS; k++) {
            found_b |= p->bound[k] == r[i].begin;
            found_e |= p->bound[k] == r[i].end;
        }
        assert_true(found_b && found_e);
        for (int64_t b = r[i].begin; b < r[i].end; b += 65536) {
            int64_t e = b + 65536 < r[i].end ? b + 65536 : r[i].end;
            assert_int_equal(mpmap__ckpt_read(c, b, e, rec, st), MPMAP_OK);
            for (int64_t t = b; t < e; t++) {
                if (rec[t - b] != record_of(t) || st[t - b] != status_of(t))
                    fail_msg("task %lld reads back wrong", (long long)t);
            }
        }
    }
    free(rec);
    free(st);
    assert_int_equal(mpmap__ckpt_close(c), MPMAP_OK);
    return total;
}

static void test_sigkill_during_appends_keeps_every_complete_entry(void **state)
{
    fixture *f = *state;
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
    print_message("crash seed %llu\n", (unsigned long long)seed);
    crash_plan *plan = malloc(sizeof *plan);
    assert_non_null(plan);
    make_plan(plan, seed);
    uint64_t rng = seed ^ 0xABCDEFull;

    int64_t restored = 0;
    int rounds = 0;
    for (; rounds < 6 && restored < CRASH_TASKS; rounds++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            crash_child(f->path, plan, rounds > 0, fds[1]);
        }
        close(fds[1]);
        char byte;
        assert_int_equal(read(fds[0], &byte, 1), 1);
        close(fds[0]);
        /* Kill somewhere inside the stream of appends (the full pass takes
         * tens of milliseconds). The last round runs to completion. */
        if (rounds < 5) {
            struct timespec delay = { 0, (long)(lcg(&rng) % 15000000u) };
            nanosleep(&delay, NULL);
            kill(pid, SIGKILL);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
                    (WIFEXITED(status) && WEXITSTATUS(status) == 0));
        restored = check_recovered(f->path, plan, restored);
        print_message("round %d: %lld tasks recovered\n", rounds, (long long)restored);
    }
    assert_int_equal(restored, CRASH_TASKS);
    free(plan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_resume_restores_out_of_order_appends_coalesced,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_second_interruption_keeps_both_runs, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_record_size_zero_keeps_ranges_and_statuses, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_overlapping_entry_is_ignored_whole, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_failed_append_names_the_cause_and_keeps_the_log_clean,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_remove_unlinks_and_close_keeps, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_torn_last_entry_is_dropped_and_log_continues,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_sigkill_during_appends_keeps_every_complete_entry,
                                        setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
