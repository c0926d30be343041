/* Schedules: every chunk sequence covers [0, N) exactly once, and each
 * schedule's sizing rule holds, over a grid of (N, P, C); every schedule in
 * the registry is complete; the chunk settings' rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "schedule.h"

static const int64_t task_counts[] = { 0, 1, 2, 3, 7, 10, 63, 64, 100, 1000, 12345 };
static const int worker_counts[] = { 1, 2, 3, 4, 7, 8, 16 };
static const int64_t min_chunks[] = { 1, 2, 5, 64 };
static const int64_t max_chunks[] = { 0, 1, 10, 333 };

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

typedef struct chunk {
    int64_t begin, end;
    int worker;
} chunk;

/* Drains a scheduler with workers asking in round-robin (a worker with nothing
 * left drops out), recording every chunk. */
static size_t drain(mpmap__scheduler *s, int workers, chunk *out, size_t cap)
{
    size_t n = 0;
    int active = workers;
    int *done = calloc((size_t)workers, sizeof *done);
    assert_non_null(done);
    for (int w = 0; active > 0; w = (w + 1) % workers) {
        if (done[w])
            continue;
        int64_t b, e;
        if (!mpmap__scheduler_next(s, w, &b, &e)) {
            done[w] = 1;
            active--;
            continue;
        }
        assert_true(n < cap);
        out[n++] = (chunk){ b, e, w };
    }
    free(done);
    return n;
}

static void assert_exact_cover(const chunk *c, size_t n, int64_t total)
{
    unsigned char *seen = calloc((size_t)total + 1, 1);
    assert_non_null(seen);
    for (size_t i = 0; i < n; i++) {
        assert_true(c[i].begin < c[i].end);
        assert_true(c[i].begin >= 0 && c[i].end <= total);
        for (int64_t t = c[i].begin; t < c[i].end; t++) {
            assert_int_equal(seen[t], 0);
            seen[t] = 1;
        }
    }
    for (int64_t t = 0; t < total; t++)
        assert_int_equal(seen[t], 1);
    free(seen);
}

static void for_each_case(mpmap_schedule kind,
                          void (*check)(const chunk *, size_t, int64_t, int, int64_t, int64_t))
{
    size_t cap = 20000;
    chunk *c = malloc(cap * sizeof *c);
    assert_non_null(c);
    for (size_t a = 0; a < LEN(task_counts); a++)
        for (size_t b = 0; b < LEN(worker_counts); b++)
            for (size_t d = 0; d < LEN(min_chunks); d++)
                for (size_t m = 0; m < LEN(max_chunks); m++) {
                    mpmap__scheduler s;
                    assert_int_equal(mpmap__scheduler_init(&s, kind, task_counts[a],
                                                           worker_counts[b], min_chunks[d],
                                                           max_chunks[m]),
                                     MPMAP_OK);
                    size_t n = drain(&s, worker_counts[b], c, cap);
                    assert_exact_cover(c, n, task_counts[a]);
                    if (check)
                        check(c, n, task_counts[a], worker_counts[b], min_chunks[d], max_chunks[m]);
                    mpmap__scheduler_destroy(&s);
                }
    free(c);
}

static int64_t cap_of(int64_t max_chunk) { return max_chunk == 0 ? INT64_MAX : max_chunk; }

static void check_guided(const chunk *c, size_t n, int64_t total, int workers, int64_t min_chunk,
                         int64_t max_chunk)
{
    int64_t handed = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t size = c[i].end - c[i].begin;
        int64_t remaining = total - handed;
        /* The rule itself: max(C, ceil(R / P)), capped, and never past the end. */
        int64_t rule = (remaining + workers - 1) / workers;
        if (rule < min_chunk)
            rule = min_chunk;
        if (rule > cap_of(max_chunk))
            rule = cap_of(max_chunk);
        if (rule > remaining)
            rule = remaining;
        assert_int_equal(size, rule);
        /* Handed out in order, sizes never grow, and only the last chunk may
         * fall below C (unless the cap itself is below C). */
        assert_int_equal(c[i].begin, handed);
        if (i > 0)
            assert_true(size <= c[i - 1].end - c[i - 1].begin);
        if (i + 1 < n)
            assert_true(size >= (min_chunk < cap_of(max_chunk) ? min_chunk : cap_of(max_chunk)));
        handed += size;
    }
}

static void check_dynamic(const chunk *c, size_t n, int64_t total, int workers, int64_t min_chunk,
                          int64_t max_chunk)
{
    (void)total;
    (void)workers;
    int64_t expect = min_chunk < cap_of(max_chunk) ? min_chunk : cap_of(max_chunk);
    for (size_t i = 0; i + 1 < n; i++)
        assert_int_equal(c[i].end - c[i].begin, expect);
    if (n > 0)
        assert_true(c[n - 1].end - c[n - 1].begin <= expect);
}

static void check_static(const chunk *c, size_t n, int64_t total, int workers, int64_t min_chunk,
                         int64_t max_chunk)
{
    (void)min_chunk;
    (void)max_chunk;
    /* Each worker gets only tasks of its own block, and the blocks' sizes
     * differ by at most one. */
    int64_t smallest = INT64_MAX, largest = 0;
    for (int w = 0; w < workers; w++) {
        int64_t b, e;
        mpmap__static_block(total, workers, w, &b, &e);
        int64_t got = 0;
        for (size_t i = 0; i < n; i++)
            if (c[i].worker == w) {
                assert_true(c[i].begin >= b && c[i].end <= e);
                got += c[i].end - c[i].begin;
            }
        assert_int_equal(got, e - b);
        if (e - b < smallest)
            smallest = e - b;
        if (e - b > largest)
            largest = e - b;
    }
    assert_true(largest - smallest <= 1);
}

static void check_factoring(const chunk *c, size_t n, int64_t total, int workers, int64_t min_chunk,
                            int64_t max_chunk)
{
    (void)total;
    (void)max_chunk;
    /* Sizes never grow, and the first chunk is about half of guided's. */
    for (size_t i = 1; i < n; i++)
        assert_true(c[i].end - c[i].begin <= c[i - 1].end - c[i - 1].begin);
    if (n > 0 && max_chunk == 0 && total >= 2 * workers * min_chunk) {
        int64_t first = c[0].end - c[0].begin;
        assert_int_equal(first, (total + 2 * workers - 1) / (2 * workers));
    }
}

static void test_guided_covers_exactly_and_sizes_never_increase(void **state)
{
    (void)state;
    for_each_case(MPMAP_SCHEDULE_GUIDED, check_guided);
}

static void test_dynamic_chunks_are_fixed_size(void **state)
{
    (void)state;
    for_each_case(MPMAP_SCHEDULE_DYNAMIC, check_dynamic);
}

static void test_static_blocks_are_balanced_and_owned(void **state)
{
    (void)state;
    for_each_case(MPMAP_SCHEDULE_STATIC, check_static);
}

static void test_factoring_batches_halve(void **state)
{
    (void)state;
    for_each_case(MPMAP_SCHEDULE_FACTORING, check_factoring);
}

static void test_guided_known_sequence(void **state)
{
    (void)state;
    /* N = 100, P = 4, C = 5: 25, 19, 14, 11, 8, 6, 5, 5, 5, 2. */
    static const int64_t expect[] = { 25, 19, 14, 11, 8, 6, 5, 5, 5, 2 };
    mpmap__scheduler s;
    assert_int_equal(mpmap__scheduler_init(&s, MPMAP_SCHEDULE_GUIDED, 100, 4, 5, 0), MPMAP_OK);
    int64_t b, e;
    for (size_t i = 0; i < LEN(expect); i++) {
        assert_true(mpmap__scheduler_next(&s, (int)(i % 4), &b, &e));
        assert_int_equal(e - b, expect[i]);
    }
    assert_false(mpmap__scheduler_next(&s, 0, &b, &e));
    mpmap__scheduler_destroy(&s);
}

static void test_init_rejects_bad_arguments(void **state)
{
    (void)state;
    mpmap__scheduler s;
    assert_int_equal(mpmap__scheduler_init(&s, MPMAP_SCHEDULE_GUIDED, -1, 2, 1, 0), MPMAP_EINVAL);
    assert_int_equal(mpmap__scheduler_init(&s, MPMAP_SCHEDULE_GUIDED, 10, 0, 1, 0), MPMAP_EINVAL);
    assert_int_equal(mpmap__scheduler_init(&s, MPMAP_SCHEDULE_GUIDED, 10, 2, 0, 0), MPMAP_EINVAL);
    assert_int_equal(mpmap__scheduler_init(&s, (mpmap_schedule)42, 10, 2, 1, 0), MPMAP_EINVAL);
}

static void test_translate_maps_virtual_chunks_onto_pending_ranges(void **state)
{
    (void)state;
    /* Pending tasks: [2,5) [10,11) [20,30) -> 14 virtual tasks. */
    const mpmap_range pending[] = { { 2, 5 }, { 10, 11 }, { 20, 30 } };
    const int64_t offsets[] = { 0, 3, 4, 14 };
    mpmap_range out[4];
    size_t n = mpmap__ranges_translate(pending, offsets, 3, 1, 6, out, 4);
    assert_int_equal(n, 3);
    assert_int_equal(out[0].begin, 3);
    assert_int_equal(out[0].end, 5);
    assert_int_equal(out[1].begin, 10);
    assert_int_equal(out[1].end, 11);
    assert_int_equal(out[2].begin, 20);
    assert_int_equal(out[2].end, 22);
    n = mpmap__ranges_translate(pending, offsets, 3, 13, 14, out, 4);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].begin, 29);
    assert_int_equal(out[0].end, 30);
    /* Too little room: the count still tells how many are needed. */
    assert_int_equal(mpmap__ranges_translate(pending, offsets, 3, 0, 14, out, 1), 3);

    /* Every virtual task maps to the pending task of the same rank. */
    for (int64_t v = 0; v < 14; v++) {
        assert_int_equal(mpmap__ranges_translate(pending, offsets, 3, v, v + 1, out, 4), 1);
        int64_t expect = v < 3 ? 2 + v : v < 4 ? 10 : 20 + (v - 4);
        assert_int_equal(out[0].begin, expect);
    }
}

static void test_complement_of_done_ranges(void **state)
{
    (void)state;
    const mpmap_range done[] = { { 0, 3 }, { 5, 8 }, { 8, 9 }, { 12, 20 } };
    mpmap_range out[5];
    size_t n = mpmap__ranges_complement(done, 4, 25, out);
    assert_int_equal(n, 3);
    assert_int_equal(out[0].begin, 3);
    assert_int_equal(out[0].end, 5);
    assert_int_equal(out[1].begin, 9);
    assert_int_equal(out[1].end, 12);
    assert_int_equal(out[2].begin, 20);
    assert_int_equal(out[2].end, 25);
    assert_int_equal(mpmap__ranges_complement(NULL, 0, 7, out), 1);
    assert_int_equal(out[0].end, 7);
    const mpmap_range all[] = { { 0, 7 } };
    assert_int_equal(mpmap__ranges_complement(all, 1, 7, out), 0);
}

static void test_schedule_names_round_trip(void **state)
{
    (void)state;
    const char *names[] = { "guided", "static", "dynamic", "factoring", "awf-b",
                            "awf-c",  "awf-d",  "awf-e",   "af",        "auto" };
    for (size_t i = 0; i < LEN(names); i++) {
        mpmap_schedule s;
        assert_int_equal(mpmap_schedule_from_name(names[i], &s), MPMAP_OK);
        assert_string_equal(mpmap_schedule_name(s), names[i]);
    }
    mpmap_schedule s;
    assert_int_equal(mpmap_schedule_from_name("fast", &s), MPMAP_EINVAL);
}

static void test_every_registered_schedule_is_complete_and_covers_exactly(void **state)
{
    (void)state;
    const char *const *names = mpmap__schedule_names();
    size_t count = mpmap__schedule_count();
    assert_true(count >= 4);
    assert_null(names[count]);
    size_t cap = 20000;
    chunk *c = malloc(cap * sizeof *c);
    assert_non_null(c);
    for (size_t k = 0; k < count; k++) {
        const mpmap__schedule_ops *ops = mpmap__schedule_get((mpmap_schedule)k);
        assert_non_null(ops);
        assert_true(ops->name[0] != '\0');
        assert_non_null(ops->help);
        assert_true(ops->help[0] != '\0');
        assert_non_null(ops->next);
        assert_string_equal(names[k], ops->name);
        assert_string_equal(mpmap_schedule_name((mpmap_schedule)k), ops->name);
        assert_string_equal(mpmap_schedule_help((mpmap_schedule)k), ops->help);
        mpmap_schedule back;
        assert_int_equal(mpmap_schedule_from_name(ops->name, &back), MPMAP_OK);
        assert_int_equal((size_t)back, k);
        for (int workers = 1; workers <= 9; workers++)
            for (size_t a = 0; a < LEN(task_counts); a++)
                for (size_t d = 0; d < LEN(min_chunks); d++)
                    for (size_t m = 0; m < LEN(max_chunks); m++) {
                        mpmap__scheduler s;
                        assert_int_equal(mpmap__scheduler_init(&s, (mpmap_schedule)k,
                                                               task_counts[a], workers,
                                                               min_chunks[d], max_chunks[m]),
                                         MPMAP_OK);
                        size_t n = drain(&s, workers, c, cap);
                        assert_exact_cover(c, n, task_counts[a]);
                        mpmap__scheduler_destroy(&s);
                    }
    }
    free(c);
    assert_null(mpmap__schedule_get((mpmap_schedule)count));
}

static void test_endgame_only_when_the_pool_is_nearly_empty(void **state)
{
    (void)state;
    /* Shared pools: at most one minimum chunk per worker left. */
    const mpmap_schedule pools[] = { MPMAP_SCHEDULE_GUIDED,    MPMAP_SCHEDULE_DYNAMIC,
                                     MPMAP_SCHEDULE_FACTORING, MPMAP_SCHEDULE_AWF_B,
                                     MPMAP_SCHEDULE_AWF_C,     MPMAP_SCHEDULE_AWF_D,
                                     MPMAP_SCHEDULE_AWF_E,     MPMAP_SCHEDULE_AF,
                                     MPMAP_SCHEDULE_AUTO };
    for (size_t i = 0; i < LEN(pools); i++) {
        mpmap__scheduler s;
        assert_int_equal(mpmap__scheduler_init(&s, pools[i], 100, 4, 5, 0), MPMAP_OK);
        int64_t b, e;
        while (!mpmap__scheduler_endgame(&s)) {
            assert_true(mpmap__scheduler_next(&s, 0, &b, &e));
        }
        /* Once in the endgame, the tasks left fit in P minimum chunks. */
        int64_t left = 0;
        while (mpmap__scheduler_next(&s, 0, &b, &e))
            left += e - b;
        assert_true(left <= 4 * 5);
        assert_true(mpmap__scheduler_endgame(&s));
        mpmap__scheduler_destroy(&s);
    }
    /* Static: every worker owns its block, nothing is held back. */
    mpmap__scheduler s;
    assert_int_equal(mpmap__scheduler_init(&s, MPMAP_SCHEDULE_STATIC, 10, 4, 5, 0), MPMAP_OK);
    assert_false(mpmap__scheduler_endgame(&s));
    mpmap__scheduler_destroy(&s);
}

static void test_chunk_settings_are_checked_and_resolved_in_one_place(void **state)
{
    (void)state;
    char msg[128];
    assert_int_equal(mpmap_chunk_validate(1, 0, msg, sizeof msg), MPMAP_OK);
    assert_string_equal(msg, "");
    assert_int_equal(mpmap_chunk_validate(0, 0, msg, sizeof msg), MPMAP_OK);
    assert_int_equal(mpmap_chunk_validate(64, 8, NULL, 0), MPMAP_OK);
    assert_int_equal(mpmap_chunk_validate(-1, 0, msg, sizeof msg), MPMAP_EINVAL);
    assert_non_null(strstr(msg, "chunk"));
    assert_int_equal(mpmap_chunk_validate(1, -5, msg, sizeof msg), MPMAP_EINVAL);
    assert_non_null(strstr(msg, "max_chunk"));

    int64_t lo, hi;
    mpmap__chunk_bounds(0, 0, 0, &lo, &hi); /* empty records: unbounded */
    assert_int_equal(lo, 1);
    assert_int_equal(hi, 0);
    mpmap__chunk_bounds(3, 0, 8, &lo, &hi); /* automatic: about 4 MiB of records */
    assert_int_equal(lo, 3);
    assert_int_equal(hi, (int64_t)(MPMAP_MAX_CHUNK_AUTO_BYTES / 8));
    mpmap__chunk_bounds(1, 0, (size_t)1 << 30, &lo, &hi); /* never below one task */
    assert_int_equal(hi, 1);
    mpmap__chunk_bounds(50, 10, 8, &lo, &hi); /* the chunk wins over a smaller cap */
    assert_int_equal(lo, 50);
    assert_int_equal(hi, 50);
    mpmap__chunk_bounds(5, 10, 8, &lo, &hi);
    assert_int_equal(hi, 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guided_covers_exactly_and_sizes_never_increase),
        cmocka_unit_test(test_dynamic_chunks_are_fixed_size),
        cmocka_unit_test(test_static_blocks_are_balanced_and_owned),
        cmocka_unit_test(test_factoring_batches_halve),
        cmocka_unit_test(test_guided_known_sequence),
        cmocka_unit_test(test_init_rejects_bad_arguments),
        cmocka_unit_test(test_translate_maps_virtual_chunks_onto_pending_ranges),
        cmocka_unit_test(test_complement_of_done_ranges),
        cmocka_unit_test(test_schedule_names_round_trip),
        cmocka_unit_test(test_every_registered_schedule_is_complete_and_covers_exactly),
        cmocka_unit_test(test_endgame_only_when_the_pool_is_nearly_empty),
        cmocka_unit_test(test_chunk_settings_are_checked_and_resolved_in_one_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
