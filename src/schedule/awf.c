/*
 * The AWF engine: adaptive weighted factoring (Banicescu, Velusamy and
 * Devaprasad; the variants of Carino and Banicescu). Factoring hands out
 * batches of half the remaining tasks in P equal chunks; AWF scales each
 * rank's chunk by its weight w_i = P * (1/mu_i) / sum_j (1/mu_j), where mu_i
 * is the rank's time per task averaged over its chunks with chunk k weighted
 * by k (adaptive.c). A rank that runs slower (a slower core, a process
 * sharing its core, rank 0 serving the others) gets proportionally smaller
 * chunks, so that every rank's last chunk ends at about the same time.
 *
 *   batch (awf-b, awf-d): at a batch start, base = max(C, ceil(R / 2P)) and
 *       the batch holds P * base tasks; weights are taken then and kept for
 *       the batch; each chunk is w_i * base (at most what is left of the
 *       batch), and a rest of the batch smaller than C starts a new batch.
 *   chunk (awf-c, awf-e): every chunk is w_i * max(C, ceil(R / 2P)) with the
 *       weights of that moment.
 *   elapsed (awf-d, awf-e): mu_i is measured on the rank's whole time per
 *       chunk (compute plus the wait for the chunk and its messages) rather
 *       than compute time alone, so scheduling overhead counts as slowness.
 *
 * Until any chunk has come back all weights are 1: the first chunks are
 * plain factoring. Every chunk is at least C (the end of the pool aside) and
 * at most max_chunk; the pool hands out each task once.
 */
#include "schedule/adaptive.h"

#include <stdlib.h>

typedef struct awf_state {
    bool per_batch;
    bool elapsed;
    int64_t batch_base;       /* the batch's base chunk (per_batch) */
    int64_t batch_left;       /* tasks left in the batch (per_batch) */
    mpmap__rank_times *times; /* [workers] */
    double *weights;          /* [workers]; the batch's weights when per_batch */
} awf_state;

int mpmap__awf_init(mpmap__scheduler *s, bool per_batch, bool elapsed)
{
    awf_state *a = calloc(1, sizeof *a);
    if (!a)
        return MPMAP_ENOMEM;
    a->per_batch = per_batch;
    a->elapsed = elapsed;
    a->times = calloc((size_t)s->workers, sizeof *a->times);
    a->weights = calloc((size_t)s->workers, sizeof *a->weights);
    s->state = a;
    if (!a->times || !a->weights)
        return MPMAP_ENOMEM; /* destroy frees what was allocated */
    return MPMAP_OK;
}

/* max(C, ceil(R / 2P)) */
static int64_t factoring_base(const mpmap__scheduler *s, int64_t remaining)
{
    return mpmap__max64(s->min_chunk, mpmap__ceil_div(remaining, 2 * (int64_t)s->workers));
}

int mpmap__awf_next(mpmap__scheduler *s, int worker, int64_t *begin, int64_t *end)
{
    awf_state *a = s->state;
    int64_t remaining = mpmap__pool_left(s);
    if (remaining <= 0)
        return 0;
    int64_t ceiling = mpmap__min64(s->max_chunk, remaining);
    if (!a->per_batch) {
        mpmap__awf_weights(a->times, s->workers, a->weights);
        int64_t size = mpmap__weighted_size(a->weights[worker], factoring_base(s, remaining),
                                            mpmap__min64(s->min_chunk, ceiling), ceiling);
        return mpmap__pool_take(s, size, begin, end);
    }
    if (a->batch_left <= 0) {
        a->batch_base = factoring_base(s, remaining);
        /* P * base, but never beyond the pool (and never overflowing). */
        a->batch_left = a->batch_base > remaining / s->workers
                            ? remaining
                            : mpmap__min64(remaining, a->batch_base * s->workers);
        mpmap__awf_weights(a->times, s->workers, a->weights);
    }
    int64_t batch_ceiling = mpmap__min64(ceiling, a->batch_left);
    int64_t size = mpmap__weighted_size(a->weights[worker], a->batch_base,
                                        mpmap__min64(s->min_chunk, batch_ceiling), batch_ceiling);
    int got = mpmap__pool_take(s, size, begin, end);
    a->batch_left -= *end - *begin;
    /* A rest of the batch below C would make a chunk smaller than C: it
     * goes back to the pool, and the next batch is sized with it. */
    if (a->batch_left < s->min_chunk)
        a->batch_left = 0;
    return got;
}

void mpmap__awf_observe(mpmap__scheduler *s, int worker, int64_t tasks, double compute,
                        double elapsed)
{
    awf_state *a = s->state;
    mpmap__rank_times_add(&a->times[worker], tasks, a->elapsed ? elapsed : compute);
}

void mpmap__awf_destroy(mpmap__scheduler *s)
{
    awf_state *a = s->state;
    if (!a)
        return;
    free(a->times);
    free(a->weights);
    free(a);
}
