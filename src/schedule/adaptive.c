/*
 * Per-rank chunk times and the relative speeds the adaptive schedules draw
 * from them (see adaptive.h).
 */
#include "schedule/adaptive.h"

#include <math.h>

void mpmap__rank_times_add(mpmap__rank_times *r, int64_t n, double seconds)
{
    r->chunks++;
    double k = (double)r->chunks;
    r->weighted_seconds += k * seconds;
    r->weighted_tasks += k * (double)n;

    double x = seconds / (double)n;
    r->tasks += (double)n;
    double delta = x - r->mean;
    r->mean += delta * (double)n / r->tasks;
    r->m2 += (double)n * delta * (x - r->mean);
}

double mpmap__rank_times_awf_mean(const mpmap__rank_times *r)
{
    double mu = r->weighted_seconds / r->weighted_tasks;
    return mu > MPMAP__ADAPTIVE_MIN_TASK_SECONDS ? mu : MPMAP__ADAPTIVE_MIN_TASK_SECONDS;
}

double mpmap__rank_times_variance(const mpmap__rank_times *r)
{
    double v = r->m2 / (double)(r->chunks - 1);
    return v > 0 ? v : 0;
}

int mpmap__awf_weights(const mpmap__rank_times *times, int workers, double *weights)
{
    int known = 0;
    double rate_sum = 0;
    for (int i = 0; i < workers; i++)
        if (times[i].chunks > 0) {
            weights[i] = 1.0 / mpmap__rank_times_awf_mean(&times[i]);
            rate_sum += weights[i];
            known++;
        }
    if (known == 0) {
        for (int i = 0; i < workers; i++)
            weights[i] = 1.0;
        return 0;
    }
    double unknown_rate = rate_sum / known;
    double total = rate_sum + (double)(workers - known) * unknown_rate;
    for (int i = 0; i < workers; i++) {
        double rate = times[i].chunks > 0 ? weights[i] : unknown_rate;
        weights[i] = (double)workers * rate / total;
    }
    return known;
}

int64_t mpmap__weighted_size(double w, int64_t base, int64_t floor, int64_t ceiling)
{
    double size = w * (double)base + 0.5;
    if (isnan(size))
        return floor; /* weights from unusable times: the safe small chunk */
    /* Compared as doubles first: w * base may not fit an int64_t. */
    if (size >= (double)ceiling)
        return ceiling;
    int64_t n = (int64_t)size;
    return n < floor ? floor : n;
}
