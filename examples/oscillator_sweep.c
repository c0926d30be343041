/* A user's own sweep on the mpmap app kit: peak amplitude of a damped, driven
 * oscillator x'' + 2ζx' + x = cos(ωt) over damping ratios ζ (one task each) and
 * driving frequencies ω. The kit adds --schedule, --resume, progress, exit codes
 * and oscillator_sweep.h5 with /peak(zeta, omega) and its coordinates (xarray).
 *     mpirun -n 4 ./oscillator_sweep --zetas 0.05:0.5:10 --omegas 0.2:1.8:200 */
#include <mpmap_app.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct sweep {
    mpmap_app_problem problem;
    mpmap_cli_range zetas, omegas;
    double duration;
    double *zeta, *omega;
} sweep;

/* Task t: every driving frequency at damping zeta[t]; one row of /peak. */
static int peaks(int64_t begin, int64_t end, void *records, mpmap_task_error *err, void *ctx)
{
    (void)err;
    const sweep *s = ctx;
    const double dt = 1e-3;
    const int64_t steps = (int64_t)(s->duration / dt), settled = steps * 6 / 10;
    double *out = records;
    for (int64_t t = begin; t < end; t++)
        for (int64_t j = 0; j < s->omegas.count; j++) {
            double w = s->omega[j], x = 0, v = 0, peak = 0;
            for (int64_t i = 0; i < steps; i++) {
                v += (cos(w * (double)i * dt) - 2 * s->zeta[t] * v - x) * dt;
                x += v * dt;
                peak = i > settled && fabs(x) > peak ? fabs(x) : peak;
            }
            *out++ = peak;
        }
    return 0;
}

static int setup(mpmap_app *app, void *ctx)
{
    sweep *s = ctx;
    s->zeta = mpmap_app_range_values(&s->zetas);
    s->omega = mpmap_app_range_values(&s->omegas);
    if (!s->zeta || !s->omega)
        return mpmap_app_usage(app, "the grid does not fit in memory");
    mpmap_app_problem *p = &s->problem;
    p->ntasks = s->zetas.count;
    p->task_dim = "zeta";
    /* clang-format off */
    p->coords[p->ncoords++] = (mpmap_app_coord){ .name = "zeta", .n = s->zetas.count,
                                                 .values = s->zeta, .long_name = "damping ratio" };
    p->coords[p->ncoords++] = (mpmap_app_coord){ .name = "omega", .n = s->omegas.count,
                                                 .values = s->omega, .units = "rad/s",
                                                 .long_name = "driving frequency" };
    p->fields[p->nfields++] = (mpmap_app_field){ .name = "peak", .type = MPMAP_DOUBLE, .rank = 1,
                                                 .shape = { s->omegas.count }, .dims = { "omega" },
                                                 .long_name = "peak |x| once settled",
                                                 .keep = true };
    /* clang-format on */
    return 0;
}

static void print(mpmap_app *app, const mpmap_report *report, void *ctx)
{
    (void)report;
    const sweep *s = ctx;
    const double *peak = mpmap_app_field_data(app, "peak");
    int64_t best = 0, n = s->zetas.count * s->omegas.count;
    for (int64_t k = 1; k < n; k++)
        best = peak[k] > peak[best] ? k : best;
    printf("resonance at omega = %.4f for zeta = %.3f (peak %.3f)\n",
           s->omega[best % s->omegas.count], s->zeta[best / s->omegas.count], peak[best]);
}

static void cleanup(void *ctx)
{
    free(((sweep *)ctx)->zeta);
    free(((sweep *)ctx)->omega);
}

int main(int argc, char **argv)
{
    sweep s = { .zetas = { 0.05, 0.5, 10 }, .omegas = { 0.2, 1.8, 200 }, .duration = 100 };
    /* clang-format off */
    mpmap_option options[] = {
        { .name = "--zetas", .kind = MPMAP_OPT_RANGE, .target = &s.zetas, .metavar = "A:B:K",
          .help = "damping ratios", .default_text = "0.05:0.5:10", .max = INFINITY },
        { .name = "--omegas", .kind = MPMAP_OPT_RANGE, .target = &s.omegas, .metavar = "A:B:K",
          .help = "driving frequencies", .default_text = "0.2:1.8:200", .max = INFINITY },
        { .name = "--duration", .kind = MPMAP_OPT_DOUBLE, .target = &s.duration, .metavar = "T",
          .help = "time integrated per point", .default_text = "100", .min = 1, .max = 1e5 },
    };
    mpmap_app_def def = { .name = "oscillator_sweep", .default_output = "oscillator_sweep.h5",
                          .summary = "Peak amplitude of a damped, driven oscillator over a grid.",
                          .options = options, .noptions = 3, .context = &s,
                          .problem = &s.problem, .setup = setup, .map = peaks, .print = print,
                          .cleanup = cleanup };
    /* clang-format on */
    return mpmap_app_main(argc, argv, &def);
}
