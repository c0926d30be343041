/*
 * What the adaptive schedules (awf-b, awf-c, awf-d, awf-e, af) share: the
 * per-rank record of how long its chunks took, the relative speeds drawn
 * from it, and the AWF engine the four AWF variants are settings of.
 * Internal to src/schedule/; pure like every schedule (times come in
 * through observe, never from a clock).
 */
#ifndef MPMAP_SCHEDULE_ADAPTIVE_H
#define MPMAP_SCHEDULE_ADAPTIVE_H

#include "schedule.h"

#include <stdbool.h>
#include <stdint.h>

/* A per-task time below this (a clock tick on the fastest machines) is
 * taken as this, so a rank with instant tasks has a finite speed. */
#define MPMAP__ADAPTIVE_MIN_TASK_SECONDS 1e-9

/* One rank's finished chunks. */
typedef struct mpmap__rank_times {
    int64_t chunks; /* chunks observed */
    /* AWF's weighted average: chunk k (1, 2, ...) of the rank counts k
     * times, so the latest chunks say most about the rank's speed now. */
    double weighted_seconds; /* sum of k * t_k */
    double weighted_tasks;   /* sum of k * n_k */
    /* AF's running mean and spread of the time of one task, from chunk
     * means x_k = t_k / n_k weighted by n_k (West's weighted Welford). */
    double tasks; /* sum of n_k */
    double mean;  /* seconds per task */
    double m2;    /* sum of n_k (x_k - mean)^2 */
} mpmap__rank_times;

/* Adds one finished chunk of n tasks that took `seconds`. */
void mpmap__rank_times_add(mpmap__rank_times *r, int64_t n, double seconds);

/* AWF's weighted average time per task of a rank with chunks > 0. */
double mpmap__rank_times_awf_mean(const mpmap__rank_times *r);

/* Estimated variance of one task's time (s^2) of a rank with chunks >= 2:
 * the chunk means scatter around the mean with variance sigma^2 / n_k, so
 * sum n_k (x_k - mean)^2 / (chunks - 1) estimates sigma^2 without timing
 * tasks one by one. */
double mpmap__rank_times_variance(const mpmap__rank_times *r);

/*
 * Relative speeds for P ranks, weights[i] = P * (1/mu_i) / sum_j (1/mu_j),
 * so the weights add up to P and equal ranks get 1. mu_i is the AWF
 * weighted mean of rank i; a rank with no chunk yet counts at the mean
 * speed of the ranks that have one; with no chunk at all every weight is 1.
 * Returns how many ranks have a chunk.
 */
int mpmap__awf_weights(const mpmap__rank_times *times, int workers, double *weights);

/* A chunk size w * base rounded to the nearest task, at least `floor` and
 * at most `ceiling` (1 <= floor <= ceiling); `floor` when w is not a
 * number, `ceiling` when w * base is too large for any chunk. */
int64_t mpmap__weighted_size(double w, int64_t base, int64_t floor, int64_t ceiling);

/* ---- the AWF engine (awf.c) ---------------------------------------------- */

/* per_batch: weights are taken at the start of each batch (AWF-B, AWF-D)
 * rather than at every chunk (AWF-C, AWF-E); elapsed: a chunk's time is the
 * rank's whole time for it (AWF-D, AWF-E) rather than its compute time. */
int mpmap__awf_init(mpmap__scheduler *s, bool per_batch, bool elapsed);
int mpmap__awf_next(mpmap__scheduler *s, int worker, int64_t *begin, int64_t *end);
void mpmap__awf_observe(mpmap__scheduler *s, int worker, int64_t tasks, double compute,
                        double elapsed);
void mpmap__awf_destroy(mpmap__scheduler *s);

#endif
