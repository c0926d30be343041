/* Which swept width is best, and whether it lies on the edge; see kde_best.h. */
#include "kde_best.h"
#include "kde_kernels.h"

#include <math.h>

int64_t kde_best_reference(const double *points, int64_t m, int d, const double *density, int64_t k,
                           double *ref, double *err, double *mean_error)
{
    for (int64_t j = 0; j < m; j++)
        ref[j] = kde_standard_normal_density(points + j * d, d);
    int64_t best = 0;
    *mean_error = INFINITY;
    for (int64_t t = 0; t < k; t++) {
        double mean = 0;
        for (int64_t j = 0; j < m; j++) {
            err[t * m + j] = fabs(density[t * m + j] - ref[j]);
            mean += err[t * m + j] / (double)m;
        }
        if (!isnan(mean) && mean < *mean_error) {
            *mean_error = mean;
            best = t;
        }
    }
    return best;
}

int64_t kde_best_cv(const double *cv, int64_t k)
{
    int64_t best = 0;
    for (int64_t t = 1; t < k; t++)
        if (!isnan(cv[t]) && (isnan(cv[best]) || cv[t] > cv[best]))
            best = t;
    return best;
}

void kde_best_print(FILE *out, const kde_best *best, const mpmap_cli_range *widths, int folds)
{
    if (!isnan(best->reference))
        fprintf(out, "  best width (closest to the true density): %.6g, abs error %.3g\n",
                best->reference, best->reference_error);
    if (!isnan(best->cv))
        fprintf(out, "  best width (%d-fold cross-validation): %.6g\n", folds, best->cv);
    /* A best width on the first or last swept width may only be the best
     * of a range that stops too early. */
    const double edges[] = { best->reference, best->cv };
    const char *const what[] = { "closest to the true density", "cross-validation" };
    double first = mpmap_cli_range_value(widths, 0);
    double last = mpmap_cli_range_value(widths, widths->count - 1);
    for (int i = 0; i < 2; i++)
        if (!isnan(edges[i]) && widths->count > 1 && (edges[i] == first || edges[i] == last))
            fprintf(out,
                    "  warning: the best width (%s) %.6g is at the %s edge of the swept range "
                    "%g..%g; the optimum may lie outside it (widen --widths)\n",
                    what[i], edges[i], edges[i] == first ? "lower" : "upper", widths->start,
                    widths->stop);
}
