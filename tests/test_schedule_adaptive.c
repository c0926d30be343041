/* Adaptive schedules (awf-b, awf-c, awf-d, awf-e, af) and auto: every task
 * handed out once under random and hostile feedback, the chunk bounds, the
 * factoring they start from, smaller chunks for a slow rank, AF's answer to
 * variance, and auto's pick. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "schedule.h"

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

static const mpmap_schedule adaptive[] = { MPMAP_SCHEDULE_AWF_B, MPMAP_SCHEDULE_AWF_C,
                                           MPMAP_SCHEDULE_AWF_D, MPMAP_SCHEDULE_AWF_E,
                                           MPMAP_SCHEDULE_AF,    MPMAP_SCHEDULE_AUTO };

/* xorshift64*: the tests' own reproducible stream. */
static uint64_t rnd(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545f4914f6cdd1dull;
}
static double rnd01(uint64_t *x) { return (double)(rnd(x) >> 11) * 0x1.0p-53; }

/* A per-task time, often hostile: zero, tiny, huge, negative, not a number,
 * or a heavy-tailed ordinary value. */
static double hostile_seconds(uint64_t *x)
{
    switch (rnd(x) % 10) {
    case 0: return 0.0;
    case 1: return 1e-300;
    case 2: return 1e300;
    case 3: return -1.0;
    case 4: return NAN;
    case 5: return INFINITY;
    default: return 1e-3 * pow(1.0 - rnd01(x), -1.0 / 1.5); /* Pareto 1.5 */
    }
}

typedef struct pending {
    int worker;
    int64_t tasks;
} pending;

/*
 * Drains a scheduler with requests from random workers, each chunk's
 * feedback arriving after a random delay (possibly after the worker's next
 * requests, as with prefetching), and checks: every task exactly once, no
 * chunk above max_chunk, and none below min(C, max_chunk) except the last.
 */
static void drain_with_feedback(mpmap_schedule kind, int64_t total, int workers, int64_t min_chunk,
                                int64_t max_chunk, uint64_t *seed, bool hostile)
{
    mpmap__scheduler s;
    assert_int_equal(mpmap__scheduler_init(&s, kind, total, workers, min_chunk, max_chunk),
                     MPMAP_OK);
    unsigned char *seen = calloc((size_t)total + 1, 1);
    pending *queue = calloc((size_t)total + 1, sizeof *queue);
    bool *done = calloc((size_t)workers, sizeof *done);
    assert_true(seen && queue && done);
    double *speed = malloc((size_t)workers * sizeof *speed);
    assert_non_null(speed);
    for (int w = 0; w < workers; w++)
        speed[w] = 1e-4 * (1 + (double)(rnd(seed) % 100)); /* ranks differ up to 100x */
    int64_t cap = max_chunk == 0 ? INT64_MAX : max_chunk;
    int64_t floor = min_chunk < cap ? min_chunk : cap;
    int64_t handed = 0;
    size_t queued = 0;
    int active = workers;
    bool small_seen = false;
    while (active > 0) {
        if (queued > 0 && rnd(seed) % 2) {
            size_t i = rnd(seed) % queued;
            pending p = queue[i];
            queue[i] = queue[--queued];
            double per_task =
                hostile ? hostile_seconds(seed) : speed[p.worker] * (0.5 + rnd01(seed));
            double compute = per_task * (double)p.tasks;
            double elapsed = compute * (hostile ? hostile_seconds(seed) : 1.0 + rnd01(seed));
            mpmap__scheduler_observe(&s, p.worker, p.tasks, compute, elapsed);
            continue;
        }
        int w = (int)(rnd(seed) % (uint64_t)workers);
        if (done[w])
            continue;
        int64_t b, e;
        if (!mpmap__scheduler_next(&s, w, &b, &e)) {
            done[w] = true;
            active--;
            continue;
        }
        assert_true(b >= 0 && b < e && e <= total);
        assert_true(e - b <= cap);
        /* Only the pool's last chunk may be small. */
        assert_false(small_seen);
        if (e - b < floor)
            small_seen = true;
        for (int64_t t = b; t < e; t++) {
            assert_int_equal(seen[t], 0);
            seen[t] = 1;
        }
        handed += e - b;
        queue[queued++] = (pending){ w, e - b };
    }
    assert_int_equal(handed, total);
    mpmap__scheduler_destroy(&s);
    free(speed);
    free(done);
    free(queue);
    free(seen);
}

static void test_adaptive_schedules_hand_out_every_task_once_under_any_feedback(void **state)
{
    (void)state;
    static const int64_t totals[] = { 0, 1, 2, 7, 64, 100, 1000, 12345, 40000 };
    static const int workers[] = { 1, 2, 3, 4, 8, 16, 61 };
    static const int64_t mins[] = { 1, 2, 5, 64 };
    static const int64_t maxes[] = { 0, 1, 10, 333 };
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (size_t k = 0; k < LEN(adaptive); k++)
        for (size_t a = 0; a < LEN(totals); a++)
            for (size_t b = 0; b < LEN(workers); b++)
                for (size_t c = 0; c < LEN(mins); c++)
                    for (size_t d = 0; d < LEN(maxes); d++)
                        for (int hostile = 0; hostile <= 1; hostile++)
                            drain_with_feedback(adaptive[k], totals[a], workers[b], mins[c],
                                                maxes[d], &seed, hostile);
}

/* The chunk sizes a scheduler gives workers asking in turn, no feedback. */
static size_t sizes_without_feedback(mpmap_schedule kind, int64_t total, int workers, int64_t c,
                                     int64_t m, int64_t *out, size_t cap)
{
    mpmap__scheduler s;
    assert_int_equal(mpmap__scheduler_init(&s, kind, total, workers, c, m), MPMAP_OK);
    size_t n = 0;
    int64_t b, e;
    while (mpmap__scheduler_next(&s, (int)(n % (size_t)workers), &b, &e)) {
        assert_true(n < cap);
        out[n++] = e - b;
    }
    mpmap__scheduler_destroy(&s);
    return n;
}

static void test_awf_without_feedback_is_factoring(void **state)
{
    (void)state;
    static const int64_t totals[] = { 1, 10, 100, 1000, 12345 };
    static const int workers[] = { 1, 2, 3, 8 };
    static const int64_t mins[] = { 1, 5, 64 };
    static const int64_t maxes[] = { 0, 10, 333 };
    size_t cap = 20000;
    int64_t *want = malloc(cap * sizeof *want), *got = malloc(cap * sizeof *got);
    assert_true(want && got);
    for (size_t a = 0; a < LEN(totals); a++)
        for (size_t b = 0; b < LEN(workers); b++)
            for (size_t c = 0; c < LEN(mins); c++)
                for (size_t d = 0; d < LEN(maxes); d++) {
                    int64_t n = totals[a], C = mins[c], M = maxes[d];
                    int P = workers[b];
                    /* Batched variants: exactly FAC2's sequence. (With a
                     * max_chunk below the base they differ: a FAC2 batch is
                     * P chunks, an AWF batch P * base tasks, since its
                     * chunks are not all alike.) */
                    size_t nw =
                        sizes_without_feedback(MPMAP_SCHEDULE_FACTORING, n, P, C, M, want, cap);
                    for (int v = 0; v < 2 && M == 0; v++) {
                        mpmap_schedule kind = v ? MPMAP_SCHEDULE_AWF_D : MPMAP_SCHEDULE_AWF_B;
                        size_t ng = sizes_without_feedback(kind, n, P, C, M, got, cap);
                        assert_int_equal(ng, nw);
                        assert_memory_equal(got, want, nw * sizeof *want);
                    }
                    /* Per-chunk variants: max(C, ceil(R / 2P)), capped, never growing. */
                    for (int v = 0; v < 2; v++) {
                        mpmap_schedule kind = v ? MPMAP_SCHEDULE_AWF_E : MPMAP_SCHEDULE_AWF_C;
                        size_t ng = sizes_without_feedback(kind, n, P, C, M, got, cap);
                        int64_t left = n;
                        for (size_t i = 0; i < ng; i++) {
                            int64_t rule = (left + 2 * P - 1) / (2 * P);
                            rule = rule < C ? C : rule;
                            rule = M && rule > M ? M : rule;
                            rule = rule > left ? left : rule;
                            assert_int_equal(got[i], rule);
                            if (i > 0)
                                assert_true(got[i] <= got[i - 1]);
                            left -= got[i];
                        }
                        assert_int_equal(left, 0);
                    }
                }
    free(want);
    free(got);
}

/* Feeds `rounds` chunks per worker, worker w taking per_task[w] seconds per
 * task (compute) and elapsed_factor[w] times that in all. */
static void feed(mpmap__scheduler *s, const double *per_task, const double *elapsed_factor,
                 int rounds)
{
    for (int r = 0; r < rounds; r++)
        for (int w = 0; w < s->workers; w++) {
            int64_t b, e;
            assert_true(mpmap__scheduler_next(s, w, &b, &e));
            double compute = per_task[w] * (double)(e - b);
            mpmap__scheduler_observe(s, w, e - b, compute, compute * elapsed_factor[w]);
        }
}

static int64_t next_size(mpmap__scheduler *s, int w)
{
    int64_t b, e;
    assert_true(mpmap__scheduler_next(s, w, &b, &e));
    return e - b;
}

static void test_awf_gives_a_slow_rank_smaller_chunks(void **state)
{
    (void)state;
    /* Rank 0 takes 4x as long per task as ranks 1-3. */
    const double per_task[] = { 4e-3, 1e-3, 1e-3, 1e-3 };
    const double overhead[] = { 1, 1, 1, 1 };
    const mpmap_schedule kinds[] = { MPMAP_SCHEDULE_AWF_B, MPMAP_SCHEDULE_AWF_C,
                                     MPMAP_SCHEDULE_AWF_D, MPMAP_SCHEDULE_AWF_E };
    for (size_t k = 0; k < LEN(kinds); k++) {
        mpmap__scheduler s;
        assert_int_equal(mpmap__scheduler_init(&s, kinds[k], 1000000, 4, 1, 0), MPMAP_OK);
        feed(&s, per_task, overhead, 1); /* every weight is known after one chunk each */
        int64_t left = mpmap__pool_left(&s);
        int64_t slow = next_size(&s, 0), fast = next_size(&s, 1);
        /* Weights 4 * rate / sum(rates): 4/13 and 16/13, times the base
         * ceil(R / 2P): R of the batch start (awf-b, awf-d) or of each chunk. */
        bool batch = kinds[k] == MPMAP_SCHEDULE_AWF_B || kinds[k] == MPMAP_SCHEDULE_AWF_D;
        int64_t base = (left + 7) / 8;
        int64_t base2 = batch ? base : (left - slow + 7) / 8;
        assert_int_equal(slow, (int64_t)(4.0 / 13.0 * (double)base + 0.5));
        assert_int_equal(fast, (int64_t)(16.0 / 13.0 * (double)base2 + 0.5));
        if (batch)
            assert_true(llabs(fast - 4 * slow) <= 2);
        mpmap__scheduler_destroy(&s);
    }
}

static void test_awf_batch_variants_keep_weights_for_the_batch(void **state)
{
    (void)state;
    const double equal[] = { 1e-3, 1e-3 }, one[] = { 1, 1 };
    for (int per_chunk = 0; per_chunk <= 1; per_chunk++) {
        mpmap__scheduler s;
        mpmap_schedule kind = per_chunk ? MPMAP_SCHEDULE_AWF_C : MPMAP_SCHEDULE_AWF_B;
        assert_int_equal(mpmap__scheduler_init(&s, kind, 100000, 2, 1, 0), MPMAP_OK);
        feed(&s, equal, one, 1);
        /* Equal weights: rank 0 gets the base chunk, then reports that it
         * has become 300x slower. */
        int64_t left = mpmap__pool_left(&s);
        int64_t first = next_size(&s, 0);
        assert_int_equal(first, (left + 3) / 4);
        mpmap__scheduler_observe(&s, 0, first, (double)first * 0.3, (double)first * 0.3);
        int64_t second = next_size(&s, 1);
        if (per_chunk) /* awf-c: rank 1 is the fast one now, nearly 2x the base */
            assert_true(second > 3 * ((left - first + 3) / 4) / 2);
        else /* awf-b: the batch's weights stay until it ends */
            assert_int_equal(second, first);
        mpmap__scheduler_destroy(&s);
    }
}

static void test_awf_d_and_e_count_scheduling_overhead(void **state)
{
    (void)state;
    /* Same compute time everywhere, but rank 1 waits 3x its compute time
     * for every chunk: only the elapsed-time variants see it. */
    const double per_task[] = { 1e-3, 1e-3 }, overhead[] = { 1, 4 }, none[] = { 1, 1 };
    const mpmap_schedule compute_only[] = { MPMAP_SCHEDULE_AWF_B, MPMAP_SCHEDULE_AWF_C };
    const mpmap_schedule with_overhead[] = { MPMAP_SCHEDULE_AWF_D, MPMAP_SCHEDULE_AWF_E };
    for (size_t k = 0; k < 2; k++) {
        mpmap__scheduler a, ref, b;
        assert_int_equal(mpmap__scheduler_init(&a, compute_only[k], 100000, 2, 1, 0), MPMAP_OK);
        assert_int_equal(mpmap__scheduler_init(&ref, compute_only[k], 100000, 2, 1, 0), MPMAP_OK);
        assert_int_equal(mpmap__scheduler_init(&b, with_overhead[k], 100000, 2, 1, 0), MPMAP_OK);
        feed(&a, per_task, overhead, 2);
        feed(&ref, per_task, none, 2);
        feed(&b, per_task, overhead, 2);
        /* awf-b/c: the overhead changes nothing */
        for (int i = 0; i < 6; i++)
            assert_int_equal(next_size(&a, i % 2), next_size(&ref, i % 2));
        /* awf-d/e: rank 1 counts at a quarter of rank 0's speed */
        int64_t b0 = next_size(&b, 0), b1 = next_size(&b, 1);
        assert_true(b1 * 3 < b0);
        mpmap__scheduler_destroy(&a);
        mpmap__scheduler_destroy(&ref);
        mpmap__scheduler_destroy(&b);
    }
}

static void test_adaptive_chunks_shrink_towards_the_minimum(void **state)
{
    (void)state;
    /* Rank 2 is the slow one (weight below 1), and drains the pool alone. */
    const double per_task[] = { 1e-3, 1e-3, 2e-3 }, one[] = { 1, 1, 1 };
    for (size_t k = 0; k + 1 < LEN(adaptive); k++) { /* auto is awf-c here */
        mpmap__scheduler s;
        assert_int_equal(mpmap__scheduler_init(&s, adaptive[k], 50000, 3, 4, 0), MPMAP_OK);
        feed(&s, per_task, one, 2);
        bool batch = adaptive[k] == MPMAP_SCHEDULE_AWF_B || adaptive[k] == MPMAP_SCHEDULE_AWF_D;
        int64_t prev = INT64_MAX, prev2 = INT64_MAX, first = 0, b, e, last_full = 0;
        while (mpmap__scheduler_next(&s, 2, &b, &e)) {
            double compute = per_task[2] * (double)(e - b);
            mpmap__scheduler_observe(&s, 2, e - b, compute, compute);
            if (first == 0)
                first = e - b;
            /* Never growing; a batch's rest may be smaller than the first
             * chunk of the next batch, never larger than the one before. */
            assert_true(e - b <= (batch && prev2 > prev ? prev2 : prev));
            if (mpmap__pool_left(&s) > 0)
                last_full = e - b;
            if (mpmap__pool_left(&s) < 50000 / 16 && mpmap__pool_left(&s) > 100)
                assert_true(2 * (e - b) <= first); /* it shrinks with the pool */
            prev2 = prev;
            prev = e - b;
        }
        assert_int_equal(last_full, 4); /* the end goes in chunks of C */
        mpmap__scheduler_destroy(&s);
    }
}

/* AF's chunk for worker w from its formula, as the test computes it. */
static double af_formula(const double *mu, const double *var, int p, int w, double r)
{
    double d = 0, inv = 0;
    for (int i = 0; i < p; i++) {
        d += var[i] / mu[i];
        inv += 1 / mu[i];
    }
    double t = 1 / inv;
    return (d + 2 * t * r - sqrt(d * d + 4 * d * t * r)) / (2 * mu[w]);
}

static void test_af_chunks_follow_the_variance_of_task_times(void **state)
{
    (void)state;
    /* Two ranks, 1 ms per task on average. Calm: every chunk at 1 ms per
     * task. Noisy: chunk means alternate 0.1 / 1.9 ms per task. */
    mpmap__scheduler calm, noisy;
    const int64_t total = 40;
    assert_int_equal(mpmap__scheduler_init(&calm, MPMAP_SCHEDULE_AF, total, 2, 1, 0), MPMAP_OK);
    assert_int_equal(mpmap__scheduler_init(&noisy, MPMAP_SCHEDULE_AF, total, 2, 1, 0), MPMAP_OK);
    /* Before any feedback: probes of C tasks. */
    assert_int_equal(next_size(&calm, 0), 1);
    assert_int_equal(next_size(&noisy, 0), 1);
    for (int k = 0; k < 4; k++)
        for (int w = 0; w < 2; w++) {
            mpmap__scheduler_observe(&calm, w, 10, 10 * 1e-3, 10 * 1e-3);
            mpmap__scheduler_observe(&noisy, w, 10, 10 * (k % 2 ? 1.9e-3 : 0.1e-3), 0);
        }
    /* The per-task variance from the chunk means: sum n (x - mean)^2 / (K - 1)
     * = 4 * 10 * (0.9e-3)^2 / 3. With few tasks left the formula, not the
     * cap, decides. */
    double var = 4.0 * 10.0 * 0.81e-6 / 3.0;
    const double mu[] = { 1e-3, 1e-3 }, noisy_var[] = { var, var };
    int64_t left = mpmap__pool_left(&noisy);
    assert_int_equal(left, total - 1);
    int64_t n_noisy = next_size(&noisy, 0);
    double want = af_formula(mu, noisy_var, 2, 0, (double)left);
    assert_true(want > 2 && want < (double)(left + 3) / 4);
    assert_int_equal(n_noisy, (int64_t)(want + 0.5));
    int64_t n_calm = next_size(&calm, 0);
    /* No variance: AF would hand the whole half; the cap of weighted
     * factoring keeps it to ceil(R / 4) * 2 * T / mu = ceil(R / 4). */
    assert_int_equal(n_calm, (left + 3) / 4);
    assert_true(n_noisy < n_calm);
    mpmap__scheduler_destroy(&calm);
    mpmap__scheduler_destroy(&noisy);
}

static void test_af_gives_a_slow_rank_smaller_chunks(void **state)
{
    (void)state;
    mpmap__scheduler s;
    assert_int_equal(mpmap__scheduler_init(&s, MPMAP_SCHEDULE_AF, 100000, 3, 1, 0), MPMAP_OK);
    const double per_task[] = { 3e-3, 1e-3, 1e-3 }, one[] = { 1, 1, 1 };
    feed(&s, per_task, one, 3);
    int64_t slow = next_size(&s, 0), fast = next_size(&s, 1);
    assert_true(slow * 2 < fast);
    mpmap__scheduler_destroy(&s);
}

static void test_observe_ignores_bad_samples(void **state)
{
    (void)state;
    /* A scheduler fed only bad samples hands out what one never fed does. */
    for (size_t k = 0; k < LEN(adaptive); k++) {
        mpmap__scheduler fed, clean;
        assert_int_equal(mpmap__scheduler_init(&fed, adaptive[k], 5000, 3, 2, 0), MPMAP_OK);
        assert_int_equal(mpmap__scheduler_init(&clean, adaptive[k], 5000, 3, 2, 0), MPMAP_OK);
        int64_t b1, e1, b2, e2;
        for (int i = 0;; i++) {
            int w = i % 3;
            mpmap__scheduler_observe(&fed, w, 10, NAN, 1.0);
            mpmap__scheduler_observe(&fed, w, 10, -1.0, 1.0);
            mpmap__scheduler_observe(&fed, w, 10, 1.0, INFINITY);
            mpmap__scheduler_observe(&fed, w, 0, 1.0, 1.0);
            mpmap__scheduler_observe(&fed, 3, 10, 1.0, 1.0);
            mpmap__scheduler_observe(&fed, -1, 10, 1.0, 1.0);
            int got1 = mpmap__scheduler_next(&fed, w, &b1, &e1);
            int got2 = mpmap__scheduler_next(&clean, w, &b2, &e2);
            assert_int_equal(got1, got2);
            if (!got1)
                break;
            assert_int_equal(b1, b2);
            assert_int_equal(e1, e2);
        }
        mpmap__scheduler_destroy(&fed);
        mpmap__scheduler_destroy(&clean);
    }
}

static void test_auto_picks_guided_or_awf_c(void **state)
{
    (void)state;
    struct {
        int64_t total;
        int workers;
        int64_t chunk;
        mpmap_schedule want;
    } cases[] = {
        { 100000, 1, 1, MPMAP_SCHEDULE_GUIDED }, /* one rank: nothing to balance */
        { 32, 8, 1, MPMAP_SCHEDULE_GUIDED },     /* N = 4 P C */
        { 33, 8, 1, MPMAP_SCHEDULE_AWF_C },      { 4000, 2, 500, MPMAP_SCHEDULE_GUIDED },
        { 4001, 2, 500, MPMAP_SCHEDULE_AWF_C },  { INT64_MAX, 16, 1, MPMAP_SCHEDULE_AWF_C },
        { 0, 4, 1, MPMAP_SCHEDULE_GUIDED },
    };
    for (size_t i = 0; i < LEN(cases); i++) {
        mpmap__scheduler s;
        assert_int_equal(mpmap__scheduler_init(&s, MPMAP_SCHEDULE_AUTO, cases[i].total,
                                               cases[i].workers, cases[i].chunk, 0),
                         MPMAP_OK);
        assert_ptr_equal(s.ops, mpmap__schedule_get(cases[i].want));
        mpmap__scheduler_destroy(&s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adaptive_schedules_hand_out_every_task_once_under_any_feedback),
        cmocka_unit_test(test_awf_without_feedback_is_factoring),
        cmocka_unit_test(test_awf_gives_a_slow_rank_smaller_chunks),
        cmocka_unit_test(test_awf_batch_variants_keep_weights_for_the_batch),
        cmocka_unit_test(test_awf_d_and_e_count_scheduling_overhead),
        cmocka_unit_test(test_adaptive_chunks_shrink_towards_the_minimum),
        cmocka_unit_test(test_af_chunks_follow_the_variance_of_task_times),
        cmocka_unit_test(test_af_gives_a_slow_rank_smaller_chunks),
        cmocka_unit_test(test_observe_ignores_bad_samples),
        cmocka_unit_test(test_auto_picks_guided_or_awf_c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
