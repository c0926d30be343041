/*
 * The OpenMP reference for the Gaussian cross-validation sweep: the same
 * kernel as kde_sweep (kde_cv_score from apps/kde_kernels.c), one width per
 * loop iteration, schedule(runtime) — OMP_SCHEDULE picks it: guided, the
 * loop users write, or dynamic,1 — on one node. Only the loop is timed, as
 * mpmap_wall_time in kde_sweep's output covers only mpmap_run (the plan is
 * built before it in both programs).
 *
 *     OMP_NUM_THREADS=2 OMP_SCHEDULE=guided omp_kde_cv DATA.f64 N D FOLDS A:B:K
 *
 * DATA.f64 holds N x D float64 values, row-major, native byte order. Prints
 * one JSON line: plan_seconds, loop_seconds, threads and the K scores.
 */
#define _POSIX_C_SOURCE 200809L
#include "kde_kernels.h"
#include "mpmap_cli.h"

#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

static int bench_read_doubles(const char *path, double *out, size_t count)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t got = fread(out, sizeof *out, count, f);
    int rc = got == count ? 0 : -1;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: omp_kde_cv DATA.f64 N D FOLDS A:B:K\n");
        return 2;
    }
    char *end = NULL;
    errno = 0;
    long long n = strtoll(argv[2], &end, 10);
    long long d = strtoll(argv[3], NULL, 10);
    long long folds = strtoll(argv[4], NULL, 10);
    mpmap_cli_range widths;
    if (errno != 0 || n < 2 || d < 1 || d > KDE_CV_MAX_DIM || folds < 2 ||
        mpmap_parse_range(argv[5], &widths) != 0) {
        fprintf(stderr, "omp_kde_cv: bad arguments\n");
        return 2;
    }
    double *data = malloc((size_t)(n * d) * sizeof *data);
    double *scores = malloc((size_t)widths.count * sizeof *scores);
    if (!data || !scores || bench_read_doubles(argv[1], data, (size_t)(n * d)) != 0) {
        fprintf(stderr, "omp_kde_cv: cannot read %lld x %lld doubles from %s\n", n, d, argv[1]);
        return 1;
    }

    double t0 = omp_get_wtime();
    kde_cv_plan *plan = NULL;
    if (kde_cv_plan_create(data, n, (int)d, (int)folds, &plan) != 0) {
        fprintf(stderr, "omp_kde_cv: cannot build the cross-validation plan\n");
        return 1;
    }
    double t1 = omp_get_wtime();
    int threads = 1;
#pragma omp parallel
    {
#pragma omp single
        threads = omp_get_num_threads();
#pragma omp for schedule(runtime)
        for (int64_t t = 0; t < widths.count; t++)
            scores[t] = kde_cv_score(plan, mpmap_cli_range_value(&widths, t));
    }
    double t2 = omp_get_wtime();

    printf("{\"threads\": %d, \"plan_seconds\": %.9g, \"loop_seconds\": %.9g, \"scores\": [",
           threads, t1 - t0, t2 - t1);
    for (int64_t t = 0; t < widths.count; t++)
        printf("%s%.17g", t ? ", " : "", scores[t]);
    printf("]}\n");
    kde_cv_plan_free(plan);
    free(data);
    free(scores);
    return 0;
}
