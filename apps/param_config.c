/* What param_sweep computes, from its flags; see param_config.h. */
#define _POSIX_C_SOURCE 200809L
#include "param_config.h"

#include <math.h>
#include <mpi.h>
#include <string.h>

/*
 * Task order is C order of the grid, so the tasks of one index along the
 * first axis (a "row") form one contiguous run: the app kit streams whole
 * rows into /result and /status. A single row may hold at most this many
 * bytes of records.
 */
#define PS_ROW_MAX_BYTES ((int64_t)256 << 20)

int ps_configure(mpmap_app *app, const ps_args *a, ps_eval *e)
{
    char msg[1024] = "";
    param_grid_init(&e->grid);
    param_model_options_init(&e->options);
    e->options.length = a->length;
    e->options.record = (param_record_kind)a->record;
    e->options.dt = a->dt;
    e->command = a->command;
    e->timeout = a->seen.timeout ? a->timeout : 0;
    if (ps_eval_configure(e, &a->specs, a->model_name, &a->seen, msg, sizeof msg) != 0)
        return mpmap_app_usage(app, "%s", msg);
    int64_t answer[2] = { 0, e->record_length };
    if (mpmap_app_rank(app) == 0 && e->command) {
        if (a->seen.record_length)
            answer[1] = a->record_length;
        else if (ps_eval_probe(e, msg, sizeof msg) != 0)
            answer[0] = 1;
        else
            answer[1] = e->record_length;
    }
    MPI_Bcast(answer, 2, MPI_INT64_T, 0, mpmap_app_comm(app));
    e->record_length = answer[1];
    if (answer[0])
        return mpmap_app_usage(app, "%s", mpmap_app_rank(app) == 0 ? msg : "");
    /* /result and /status: a record of doubles and a status per point. */
    if (!mpmap_app_fits_in_memory(e->grid.npoints,
                                  (size_t)e->record_length * sizeof(double) + sizeof(int32_t)))
        return mpmap_app_usage(app,
                               "--param: %lld grid points x %lld values per point do not "
                               "fit in memory",
                               (long long)e->grid.npoints, (long long)e->record_length);
    int64_t rows = e->grid.nparams > 0 ? e->grid.axes[0].count : 1;
    int64_t row_points = e->grid.npoints / rows;
    if (row_points > PS_ROW_MAX_BYTES / 8 / e->record_length)
        return mpmap_app_usage(app,
                               "--param: one index of the first parameter spans %lld points x %lld "
                               "values, more than the %lld MiB write buffer; put the longest "
                               "parameter first",
                               (long long)row_points, (long long)e->record_length,
                               (long long)(PS_ROW_MAX_BYTES >> 20));
    if (e->command && !mpmap_app_on_error_given(app))
        mpmap_app_config(app)->on_error = MPMAP_ON_ERROR_CONTINUE;
    return 0;
}

static const char *const record_names[] = { "vector", "summary", NULL };

size_t ps_flags(ps_args *a, mpmap_option *out)
{
    /* clang-format off */
    const mpmap_option flags[] = {
        { .name = "--param", .kind = MPMAP_OPT_STRING_LIST, .target = &a->specs,
          .metavar = "NAME=A:B:N|NAME=v1,v2,...",
          .help = "one grid axis: N values evenly spaced from A to B, or the listed values; "
                  "repeat for more axes (the first varies slowest)" },
        { .name = "--model", .kind = MPMAP_OPT_STRING, .target = &a->model_name,
          .metavar = "NAME",
          .help = "built-in model to evaluate (listed above); or --exec" },
        { .name = "--exec", .kind = MPMAP_OPT_STRING, .target = &a->command,
          .metavar = "'COMMAND {NAME}...'",
          .help = "shell command run at every point, {NAME} replaced by the parameter's value; it "
                  "prints the record as whitespace-separated numbers; failed points go to "
                  "/status and the sweep continues unless --on-error stop" },
        { .name = "--length", .kind = MPMAP_OPT_INT64, .target = &a->length, .metavar = "M",
          .help = "model length: linear values, lorenz steps",
          .default_text = "linear 100, lorenz 10000", .min = 1, .max = INFINITY,
          .seen = &a->seen.length },
        { .name = "--record", .kind = MPMAP_OPT_CHOICE, .target = &a->record,
          .help = "linear: all M values, or mean,min,max,last", .default_text = "vector",
          .choices = record_names, .seen = &a->seen.record },
        { .name = "--dt", .kind = MPMAP_OPT_DOUBLE, .target = &a->dt, .metavar = "DT",
          .help = "lorenz: RK4 time step", .default_text = "0.01", .min = 0, .max = INFINITY,
          .flags = MPMAP_OPT_EXCLUSIVE_MIN, .seen = &a->seen.dt },
        { .name = "--record-length", .kind = MPMAP_OPT_INT64, .target = &a->record_length,
          .metavar = "N",
          .help = "--exec: numbers per point (default: what the first point prints; it is run "
                  "once beforehand to learn it)",
          .min = 1, .max = (double)PS_EXEC_MAX_RECORD, .seen = &a->seen.record_length },
        { .name = "--timeout", .kind = MPMAP_OPT_DOUBLE, .target = &a->timeout, .metavar = "S",
          .help = "--exec: seconds a point may run before it is killed and fails",
          .default_text = "none", .min = 0, .max = INFINITY, .flags = MPMAP_OPT_EXCLUSIVE_MIN,
          .seen = &a->seen.timeout },
    };
    /* clang-format on */
    _Static_assert(sizeof flags / sizeof flags[0] <= PS_MAX_FLAGS, "raise PS_MAX_FLAGS");
    memcpy(out, flags, sizeof flags);
    return sizeof flags / sizeof flags[0];
}
