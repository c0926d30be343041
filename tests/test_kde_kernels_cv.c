/*
 * Tests of the kde_sweep K-fold cross-validated log-likelihood against
 * double-loop and long-double log-sum-exp references: the choice between the
 * direct and the expanded exponent, tiny widths, higher dimensions, the
 * bitwise reproducibility of batched scores, and bad fold counts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>

#include "kde_kernels.h"
#include "kde_test_data.h"
#include "mpmap.h"

/* Rows [begin, begin + len) form fold f: the first n mod K folds are one row longer. */
static void fold_bounds(int64_t n, int k, int f, int64_t *begin, int64_t *len)
{
    *len = n / k + (f < n % k ? 1 : 0);
    *begin = (int64_t)f * (n / k) + (f < n % k ? f : n % k);
}

/* Straightforward definition: log of the mean of Gaussian kernel values. */
static double cv_reference_direct(const double *x, int64_t n, int d, int k, double h)
{
    const double two_pi = 6.283185307179586476925;
    double total = 0.0;
    for (int f = 0; f < k; f++) {
        int64_t b, len;
        fold_bounds(n, k, f, &b, &len);
        double score = 0.0;
        for (int64_t i = b; i < b + len; i++) {
            double mean = 0.0;
            for (int64_t y = 0; y < n; y++) {
                if (y >= b && y < b + len)
                    continue;
                double s = 0.0;
                for (int j = 0; j < d; j++)
                    s += (x[i * d + j] - x[y * d + j]) * (x[i * d + j] - x[y * d + j]);
                mean += pow(two_pi * h * h, -0.5 * d) * exp(-s / (2.0 * h * h));
            }
            score += log(mean / (double)(n - len));
        }
        total += score;
    }
    return total / k;
}

/* Long-double log-sum-exp around each row's own largest term: finite for any h. */
static double cv_reference_lse(const double *x, int64_t n, int d, int k, double h)
{
    const long double two_pi = 6.283185307179586476925286766559L;
    const long double hh = (long double)h * h;
    long double total = 0.0L;
    for (int f = 0; f < k; f++) {
        int64_t b, len;
        fold_bounds(n, k, f, &b, &len);
        for (int64_t i = b; i < b + len; i++) {
            long double m = INFINITY;
            for (int64_t y = 0; y < n; y++) {
                if (y >= b && y < b + len)
                    continue;
                long double s = 0.0L;
                for (int j = 0; j < d; j++) {
                    const long double u = (long double)x[i * d + j] - x[y * d + j];
                    s += u * u;
                }
                m = s < m ? s : m;
            }
            long double acc = 0.0L;
            for (int64_t y = 0; y < n; y++) {
                if (y >= b && y < b + len)
                    continue;
                long double s = 0.0L;
                for (int j = 0; j < d; j++) {
                    const long double u = (long double)x[i * d + j] - x[y * d + j];
                    s += u * u;
                }
                acc += expl(-(s - m) / (2.0L * hh));
            }
            total += logl(acc) - m / (2.0L * hh) - logl((long double)(n - len)) -
                     0.5L * d * logl(two_pi * hh);
        }
    }
    return (double)(total / k);
}

/* ------------------------------------------------------------------ CV */

/* Largest squared distance of a row from the mean of the rows. */
static double max_centred_norm2(const double *x, int64_t n, int d)
{
    double mean[8] = { 0 };
    for (int j = 0; j < d; j++) {
        for (int64_t i = 0; i < n; i++)
            mean[j] += x[i * d + j];
        mean[j] /= (double)n;
    }
    double r2 = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double s = 0.0;
        for (int j = 0; j < d; j++)
            s += (x[i * d + j] - mean[j]) * (x[i * d + j] - mean[j]);
        r2 = s > r2 ? s : r2;
    }
    return r2;
}

static void test_cv_form_switches_at_documented_width(void **state)
{
    (void)state;
    /* Expanded exponent iff c R^2 <= 128 with c = 1 / (2 h^2): h >= R / 16. */
    const int64_t n = 300;
    double *x = normal_samples(n, 2, 8080);
    kde_cv_plan *plan = NULL;
    assert_int_equal(kde_cv_plan_create(x, n, 2, 5, &plan), 0);
    const double hswitch = sqrt(max_centred_norm2(x, n, 2)) / 16.0;
    assert_int_equal(kde_cv_plan_expanded(plan, hswitch * 0.99), 0);
    assert_int_equal(kde_cv_plan_expanded(plan, hswitch * 1.01), 1);
    assert_int_equal(kde_cv_plan_expanded(plan, 1e-3), 0);
    assert_int_equal(kde_cv_plan_expanded(plan, 1e3), 1);
    assert_int_equal(kde_cv_plan_expanded(plan, 0.0), 0);
    assert_int_equal(kde_cv_plan_expanded(plan, NAN), 0);
    /* The choice is a function of h: asking again, or in another order, agrees. */
    for (double h = 0.01; h < 10.0; h *= 1.1)
        assert_int_equal(kde_cv_plan_expanded(plan, h), kde_cv_plan_expanded(plan, h));
    kde_cv_plan_free(plan);
    free(x);
}

static void test_cv_score_exact_on_both_sides_of_form_switch(void **state)
{
    (void)state;
    /* Data far from the origin: the expanded form must centre it, or c |x|^2
     * (here ~1e6 c) would cancel catastrophically. */
    const int64_t n = 240;
    for (int shifted = 0; shifted < 2; shifted++) {
        double *x = normal_samples(n, 2, 9090);
        for (int64_t i = 0; i < 2 * n; i++)
            x[i] = shifted ? 1000.0 + 2.0 * x[i] : x[i];
        kde_cv_plan *plan = NULL;
        assert_int_equal(kde_cv_plan_create(x, n, 2, 4, &plan), 0);
        const double hswitch = sqrt(max_centred_norm2(x, n, 2)) / 16.0;
        const double hs[] = { 0.9 * hswitch, 0.999 * hswitch, 1.001 * hswitch,
                              1.1 * hswitch, 3.0 * hswitch,   50.0 * hswitch };
        int forms = 0;
        for (int i = 0; i < 6; i++) {
            forms |= 1 << kde_cv_plan_expanded(plan, hs[i]);
            assert_rel(kde_cv_score(plan, hs[i]), cv_reference_lse(x, n, 2, 4, hs[i]), 1e-12);
        }
        assert_int_equal(forms, 3); /* both forms ran */
        kde_cv_plan_free(plan);
        free(x);
    }
}

static void test_cv_expanded_form_exact_with_ragged_folds(void **state)
{
    (void)state;
    /* The expanded form sums each cross-fold pair once, for both rows: n not
     * a multiple of K leaves folds of unequal length whose last group has
     * fewer than 8 rows and whose last vector fewer than 8 lanes (padding
     * that must add to neither row), in the specialised dimensions and the
     * generic one, on both sides of the form switch. */
    const int ds[] = { 1, 2, 3, 6 };
    for (int di = 0; di < 4; di++) {
        const int d = ds[di];
        const int64_t n = 203 + d; /* folds of 41/42 rows: 41 = 5 * 8 + 1 */
        double *x = normal_samples(n, d, 5150 + (uint64_t)d);
        kde_cv_plan *plan = NULL;
        assert_int_equal(kde_cv_plan_create(x, n, d, 5, &plan), 0);
        const double hswitch = sqrt(max_centred_norm2(x, n, d)) / 16.0;
        const double f[] = { 0.98, 1.02, 1.3, 3.0, 30.0 };
        for (int i = 0; i < 5; i++) {
            const double h = f[i] * hswitch;
            assert_int_equal(kde_cv_plan_expanded(plan, h), i > 0);
            assert_rel(kde_cv_score(plan, h), cv_reference_lse(x, n, d, 5, h), 1e-12);
        }
        kde_cv_plan_free(plan);
        free(x);
    }
    /* Leave-one-out: every fold, group and vector is a single row. */
    const int64_t n = 29;
    double *x = normal_samples(n, 2, 77);
    kde_cv_plan *plan = NULL;
    assert_int_equal(kde_cv_plan_create(x, n, 2, (int)n, &plan), 0);
    for (double h = 0.4; h < 20.0; h *= 3.0) {
        assert_int_equal(kde_cv_plan_expanded(plan, h), 1);
        assert_rel(kde_cv_score(plan, h), cv_reference_lse(x, n, 2, (int)n, h), 1e-12);
    }
    kde_cv_plan_free(plan);
    free(x);
}

static void test_cv_score_matches_double_loop_reference(void **state)
{
    (void)state;
    const int ks[] = { 2, 3, 5, 7 };
    const int64_t ns[] = { 50, 97, 200 };
    const double hs[] = { 0.08, 0.3, 1.0, 4.0 };
    for (int d = 1; d <= 3; d++) {
        for (int ni = 0; ni < 3; ni++) {
            const int64_t n = ns[ni];
            double *x = normal_samples(n, d, (uint64_t)(d * 100 + ni));
            for (int ki = 0; ki < 4; ki++) {
                kde_cv_plan *plan = NULL;
                assert_int_equal(kde_cv_plan_create(x, n, d, ks[ki], &plan), 0);
                assert_int_equal(kde_cv_plan_rows(plan), n);
                assert_int_equal(kde_cv_plan_dim(plan), d);
                assert_int_equal(kde_cv_plan_folds(plan), ks[ki]);
                for (int hi = 0; hi < 4; hi++)
                    assert_rel(kde_cv_score(plan, hs[hi]),
                               cv_reference_direct(x, n, d, ks[ki], hs[hi]), 1e-10);
                kde_cv_plan_free(plan);
            }
            free(x);
        }
    }
}

static void test_cv_score_handles_higher_dimensions(void **state)
{
    (void)state;
    /* d = 6 runs the generic (non-specialised) kernel. */
    const int64_t n = 83;
    double *x = normal_samples(n, 6, 606);
    kde_cv_plan *plan = NULL;
    assert_int_equal(kde_cv_plan_create(x, n, 6, 4, &plan), 0);
    for (double h = 0.3; h < 5.0; h *= 2.5)
        assert_rel(kde_cv_score(plan, h), cv_reference_direct(x, n, 6, 4, h), 1e-10);
    kde_cv_plan_free(plan);
    free(x);
}

static void test_cv_score_is_finite_and_exact_for_tiny_widths(void **state)
{
    (void)state;
    /* Direct exp underflows to 0 for all pairs here; log-sum-exp must not. */
    const double hs[] = { 1e-3, 1e-4, 1e-6 };
    for (int d = 1; d <= 3; d++) {
        const int64_t n = 150;
        double *x = normal_samples(n, d, 4242 + (uint64_t)d);
        /* Near-duplicate rows across folds: the nearest-row term dominates. */
        x[(n - 1) * d] = x[0] + 1e-7;
        kde_cv_plan *plan = NULL;
        assert_int_equal(kde_cv_plan_create(x, n, d, 5, &plan), 0);
        for (int i = 0; i < 3; i++) {
            const double got = kde_cv_score(plan, hs[i]);
            assert_true(isfinite(got));
            assert_rel(got, cv_reference_lse(x, n, d, 5, hs[i]), 1e-12);
        }
        kde_cv_plan_free(plan);
        free(x);
    }
}

/* Double-precision log-sum-exp reference with a brute-force nearest row. */
static double cv_reference_lse_double(const double *x, int64_t n, int d, int k, double h)
{
    const double inv = 1.0 / (2.0 * h * h);
    double total = 0.0;
    for (int f = 0; f < k; f++) {
        int64_t b, len;
        fold_bounds(n, k, f, &b, &len);
        for (int64_t i = b; i < b + len; i++) {
            double m = INFINITY;
            for (int64_t y = 0; y < n; y++) {
                if (y >= b && y < b + len)
                    continue;
                double s = 0.0;
                for (int j = 0; j < d; j++)
                    s += (x[i * d + j] - x[y * d + j]) * (x[i * d + j] - x[y * d + j]);
                m = s < m ? s : m;
            }
            double acc = 0.0;
            for (int64_t y = 0; y < n; y++) {
                if (y >= b && y < b + len)
                    continue;
                double s = 0.0;
                for (int j = 0; j < d; j++)
                    s += (x[i * d + j] - x[y * d + j]) * (x[i * d + j] - x[y * d + j]);
                acc += exp((m - s) * inv);
            }
            total += log(acc) - m * inv - log((double)(n - len)) -
                     0.5 * d * log(6.283185307179586476925 * h * h);
        }
    }
    return total / k;
}

static void test_cv_score_stable_for_tiny_width_on_large_data(void **state)
{
    (void)state;
    /* The app's stress case: n = 10000, d = 2, h = 1e-3, where every plain
     * exp(-d2 / (2 h^2)) underflows to 0. */
    const int64_t n = 10000;
    double *x = normal_samples(n, 2, 31337);
    kde_cv_plan *plan = NULL;
    assert_int_equal(kde_cv_plan_create(x, n, 2, 5, &plan), 0);
    const double s = kde_cv_score(plan, 1e-3);
    assert_true(isfinite(s));
    assert_rel(s, cv_reference_lse_double(x, n, 2, 5, 1e-3), 1e-12);
    kde_cv_plan_free(plan);
    free(x);
}

static void test_cv_scores_bitwise_equal_to_single_width(void **state)
{
    (void)state;
    const int64_t n = 157;
    double *x = normal_samples(n, 2, 2024);
    kde_cv_plan *plan = NULL;
    assert_int_equal(kde_cv_plan_create(x, n, 2, 3, &plan), 0);
    enum { W = 7 };
    const double widths[W] = { 0.5, 1e-3, 0.07, 2.0, 0.2, 0.011, 30.0 };
    double single[W];
    for (int i = W - 1; i >= 0; i--) /* reverse order on purpose */
        single[i] = kde_cv_score(plan, widths[i]);

    /* The widths cover both forms of the exponent. */
    assert_int_equal(kde_cv_plan_expanded(plan, 1e-3), 0);
    assert_int_equal(kde_cv_plan_expanded(plan, 30.0), 1);

    double all[W];
    kde_cv_scores(plan, widths, W, all);
    assert_memory_equal(all, single, sizeof all);

    /* Other groupings and orders: pairs, singletons, a shuffled batch. */
    for (int i = 0; i + 1 < W; i += 2) {
        double two[2];
        kde_cv_scores(plan, widths + i, 2, two);
        assert_memory_equal(two, single + i, sizeof two);
    }
    const int perm[W] = { 3, 6, 0, 5, 1, 4, 2 };
    double shuffled_w[W], shuffled_s[W];
    for (int i = 0; i < W; i++)
        shuffled_w[i] = widths[perm[i]];
    kde_cv_scores(plan, shuffled_w, W, shuffled_s);
    for (int i = 0; i < W; i++)
        assert_memory_equal(&shuffled_s[i], &single[perm[i]], sizeof(double));
    /* Repeating a call gives the same bits. */
    const double again = kde_cv_score(plan, widths[2]);
    assert_memory_equal(&again, &single[2], sizeof again);
    kde_cv_plan_free(plan);
    free(x);
}

static void test_cv_plan_rejects_bad_fold_counts(void **state)
{
    (void)state;
    double *x = normal_samples(10, 2, 1);
    kde_cv_plan *plan = NULL;
    assert_int_equal(kde_cv_plan_create(x, 10, 2, 1, &plan), MPMAP_EINVAL);
    assert_int_equal(kde_cv_plan_create(x, 10, 2, 0, &plan), MPMAP_EINVAL);
    assert_int_equal(kde_cv_plan_create(x, 10, 2, 11, &plan), MPMAP_EINVAL);
    assert_int_equal(kde_cv_plan_create(x, 10, 0, 2, &plan), MPMAP_EINVAL);
    assert_int_equal(kde_cv_plan_create(NULL, 10, 2, 2, &plan), MPMAP_EINVAL);
    assert_null(plan);
    x[3] = NAN;
    assert_int_equal(kde_cv_plan_create(x, 10, 2, 2, &plan), MPMAP_EINVAL);
    x[3] = 0.5;
    /* folds == n is allowed: leave-one-out. */
    assert_int_equal(kde_cv_plan_create(x, 10, 2, 10, &plan), 0);
    assert_rel(kde_cv_score(plan, 0.7), cv_reference_direct(x, 10, 2, 10, 0.7), 1e-10);
    assert_true(isnan(kde_cv_score(plan, 0.0)));
    assert_true(isnan(kde_cv_score(plan, -1.0)));
    kde_cv_plan_free(plan);
    kde_cv_plan_free(NULL);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cv_form_switches_at_documented_width),
        cmocka_unit_test(test_cv_score_exact_on_both_sides_of_form_switch),
        cmocka_unit_test(test_cv_expanded_form_exact_with_ragged_folds),
        cmocka_unit_test(test_cv_score_matches_double_loop_reference),
        cmocka_unit_test(test_cv_score_handles_higher_dimensions),
        cmocka_unit_test(test_cv_score_is_finite_and_exact_for_tiny_widths),
        cmocka_unit_test(test_cv_score_stable_for_tiny_width_on_large_data),
        cmocka_unit_test(test_cv_scores_bitwise_equal_to_single_width),
        cmocka_unit_test(test_cv_plan_rejects_bad_fold_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
