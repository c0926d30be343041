/*
 * af: adaptive factoring (Banicescu and Liu). Each rank's time per task has
 * a mean mu_i and a standard deviation sigma_i, estimated from its finished
 * chunks (adaptive.c). With R tasks left,
 *
 *     D = sum_i sigma_i^2 / mu_i,     T = 1 / sum_i (1 / mu_i),
 *     chunk_i = (D + 2 T R - sqrt(D^2 + 4 D T R)) / (2 mu_i),
 *
 * the largest chunk that rank i most likely finishes before the other ranks
 * finish their share of the rest: a fast rank gets more, and the more the
 * task times vary the smaller every chunk.
 *
 * Estimates: a rank with no chunk back yet counts with the mean mu of those
 * that have one; sigma_i needs two chunks, and until then sigma_i / mu_i is
 * the mean ratio of the ranks that have it, or 1. Before any chunk is back
 * a chunk is C tasks: a probe.
 *
 * With no variance at all the formula hands a rank its whole share of the
 * rest (R mu_i^-1 T); one slow-down after that (another process taking the
 * core) could not be balanced any more. So chunk_i is capped at what
 * weighted factoring would give, ceil(R / 2P) * P T / mu_i. Every chunk is
 * at least C (the end of the pool aside) and at most max_chunk.
 */
#include "schedule/adaptive.h"

#include <math.h>
#include <stdlib.h>

static int af_init(mpmap__scheduler *s)
{
    s->state = calloc((size_t)s->workers, sizeof(mpmap__rank_times));
    return s->state ? MPMAP_OK : MPMAP_ENOMEM;
}

/* The rank's mu (plain mean per task: AF's estimate). */
static double af_mu(const mpmap__rank_times *r)
{
    return r->mean > MPMAP__ADAPTIVE_MIN_TASK_SECONDS ? r->mean : MPMAP__ADAPTIVE_MIN_TASK_SECONDS;
}

/* The chunk for `worker` with R tasks left, in tasks (not yet rounded);
 * negative when no rank has a chunk back. */
static double af_chunk(const mpmap__scheduler *s, int worker, int64_t remaining)
{
    const mpmap__rank_times *t = s->state;
    int known = 0, spread_known = 0;
    double mu_sum = 0, ratio_sum = 0;
    for (int i = 0; i < s->workers; i++) {
        if (t[i].chunks == 0)
            continue;
        known++;
        mu_sum += af_mu(&t[i]);
        if (t[i].chunks >= 2) {
            spread_known++;
            ratio_sum += mpmap__rank_times_variance(&t[i]) / (af_mu(&t[i]) * af_mu(&t[i]));
        }
    }
    if (known == 0)
        return -1;
    double mu_unknown = mu_sum / known;
    double cv2_unknown = spread_known ? ratio_sum / spread_known : 1.0; /* (sigma / mu)^2 */

    double d = 0, inv_t = 0, mu_w = 0;
    for (int i = 0; i < s->workers; i++) {
        double mu = t[i].chunks > 0 ? af_mu(&t[i]) : mu_unknown;
        double var = t[i].chunks >= 2 ? mpmap__rank_times_variance(&t[i]) : cv2_unknown * mu * mu;
        d += var / mu;
        inv_t += 1.0 / mu;
        if (i == worker)
            mu_w = mu;
    }
    double big_t = 1.0 / inv_t, r = (double)remaining;
    /* D + 2TR - sqrt(D^2 + 4DTR) is the difference of two nearly equal
     * terms when D << TR; its algebraic equal 4 T^2 R^2 / (D + 2TR + sqrt(...))
     * keeps the digits (R > 0, so the divisor is > 0). */
    double root = sqrt(d * d + 4.0 * d * big_t * r);
    double numerator = 4.0 * big_t * big_t * r * r / (d + 2.0 * big_t * r + root);
    double chunk = numerator / (2.0 * mu_w);
    double cap = (double)mpmap__ceil_div(remaining, 2 * (int64_t)s->workers) * (double)s->workers *
                 big_t / mu_w;
    return chunk < cap ? chunk : cap;
}

static int af_next(mpmap__scheduler *s, int worker, int64_t *begin, int64_t *end)
{
    int64_t remaining = mpmap__pool_left(s);
    if (remaining <= 0)
        return 0;
    int64_t ceiling = mpmap__min64(s->max_chunk, remaining);
    double chunk = af_chunk(s, worker, remaining);
    int64_t size =
        chunk < 0 ? s->min_chunk
                  : mpmap__weighted_size(chunk, 1, mpmap__min64(s->min_chunk, ceiling), ceiling);
    return mpmap__pool_take(s, size, begin, end);
}

static void af_observe(mpmap__scheduler *s, int worker, int64_t tasks, double compute,
                       double elapsed)
{
    (void)elapsed;
    mpmap__rank_times *t = s->state;
    mpmap__rank_times_add(&t[worker], tasks, compute);
}

static void af_destroy(mpmap__scheduler *s) { free(s->state); }

const mpmap__schedule_ops mpmap__schedule_af = {
    .name = "af",
    .help = "adaptive factoring: chunks from each rank's mean and variance of task time",
    .init = af_init,
    .next = af_next,
    .endgame = mpmap__pool_endgame,
    .observe = af_observe,
    .destroy = af_destroy,
};
