/*
 * A user's own sweep with mpmap: the peak amplitude of a damped, driven
 * oscillator x'' + 2ζx' + x = cos(ωt) for 400 driving frequencies ω,
 * written to damped_sweep.h5 with ω as the coordinate.
 *
 *     mpirun -n 4 ./damped_sweep
 */
#include <mpmap.h>
#include <mpmap_h5.h>

#include <math.h>
#include <stdio.h>

#define COUNT 400

static double omega_of(int64_t task) { return 0.2 + 1.6 * (double)task / (COUNT - 1); }

/* One task = one frequency: integrate 100 time units, record the peak |x|
 * over the last 40. */
static int peak_amplitude(int64_t begin, int64_t end, void *records, mpmap_task_error *err,
                          void *context)
{
    (void)err;
    const double zeta = *(const double *)context, dt = 1e-3;
    double *out = records;
    for (int64_t t = begin; t < end; t++) {
        double w = omega_of(t), x = 0, v = 0, peak = 0;
        for (int i = 0; i < 100000; i++) {
            double a = cos(w * i * dt) - 2 * zeta * v - x;
            v += a * dt;
            x += v * dt;
            if (i > 60000 && fabs(x) > peak)
                peak = fabs(x);
        }
        out[t - begin] = peak;
    }
    return 0;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);

    double zeta = 0.1, peaks[COUNT], omega[COUNT];
    mpmap_config config;
    mpmap_config_init(&config); /* guided schedule, rank 0 computes too */
    /* clang-format off */
    mpmap_job job = { .ntasks = COUNT, .record_size = sizeof(double),
                      .map = peak_amplitude, .context = &zeta, .results = peaks };
    /* clang-format on */
    mpmap_report report;
    int rc = mpmap_run(MPI_COMM_WORLD, &config, &job, &report);

    if (rc == MPMAP_OK && rank == 0) {
        char err[MPMAP_H5_ERROR_MAX] = "";
        mpmap_h5 *f = NULL;
        mpmap_h5_dataset *ds;
        const char *dims[] = { "omega" };
        int64_t n = COUNT;
        for (int64_t t = 0; t < COUNT; t++)
            omega[t] = omega_of(t);
        if (mpmap_h5_create("damped_sweep.h5", 1, &f, err, sizeof err) != 0 ||
            mpmap_h5_write_coordinate(f, "/omega", H5T_NATIVE_DOUBLE, n, omega, "rad/s",
                                      "driving frequency") != 0 ||
            mpmap_h5_dataset_create(f, "/peak", H5T_NATIVE_DOUBLE, 1, &n, dims, &ds) != 0 ||
            mpmap_h5_dataset_write_all(ds, peaks) != 0 || mpmap_h5_dataset_close(ds) != 0 ||
            mpmap_h5_commit(f, err, sizeof err) != 0) {
            /* Failures after the file exists are described by the file. */
            fprintf(stderr, "damped_sweep: cannot write damped_sweep.h5: %s\n",
                    err[0] || !f ? err : mpmap_h5_error(f));
            rc = MPMAP_EHDF5;
        } else {
            int best = 0;
            for (int t = 1; t < COUNT; t++)
                if (peaks[t] > peaks[best])
                    best = t;
            printf("resonance at omega = %.4f (peak %.3f), %d ranks, %.2f s\n", omega[best],
                   peaks[best], report.ranks, report.wall_time);
        }
    } else if (rc != MPMAP_OK && rank == 0) {
        fprintf(stderr, "damped_sweep: %s\n", report.message);
    }
    MPI_Finalize();
    return rc == MPMAP_OK ? 0 : 1;
}
