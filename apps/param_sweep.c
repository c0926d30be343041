/*
 * param_sweep: a built-in model (--model) or an external command (--exec)
 * evaluated at every point of a parameter grid (--param, repeatable).
 *
 * One task per grid point, in C order of the grid (first parameter
 * slowest). Each task yields a fixed-length record of doubles; records
 * stream to rank 0 in task order and into /result, whose shape is the grid
 * shape plus one record axis, with one coordinate per parameter. A point
 * that fails is recorded in /status and, under --on-error continue (the
 * default with --exec), its record is NaN and the sweep goes on. What is
 * computed comes from the flags through param_config.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "mpmap_app.h"
#include "param_config.h"
#include "param_eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest field name in /field. */
#define PS_FIELD_NAME_MAX 64

typedef struct ps_sweep {
    mpmap_app_problem problem;
    ps_args args; /* the flags */
    ps_eval eval; /* what is computed, from them */
    /* coordinates */
    double *axis_values[PARAM_GRID_MAX_PARAMS];
    char **field_names, *field_text;
    char summary[2048]; /* --help's text: the models from their table */
    char axis_long_names[PARAM_GRID_MAX_PARAMS][PARAM_NAME_MAX + 16];
} ps_sweep;

static int ps_map(int64_t begin, int64_t end, void *records, mpmap_task_error *err, void *ctx)
{
    const ps_sweep *s = ctx;
    /* The record goes through a scratch buffer: the library does not
     * promise that records inside its buffers are aligned for double. */
    size_t size = (size_t)s->eval.record_length * sizeof(double);
    double *scratch = malloc(size);
    if (!scratch)
        return mpmap_task_fail(err, begin, PS_STATUS_SYSTEM, "out of memory for a record");
    for (int64_t t = begin; t < end; t++) {
        char why[EXEC_REASON_MAX] = "";
        int code = ps_eval_point(&s->eval, t, scratch, why, sizeof why);
        if (code != PS_STATUS_OK) {
            free(scratch);
            return mpmap_task_fail(err, t, code, "%s", why[0] ? why : "failed");
        }
        memcpy((char *)records + (size_t)(t - begin) * size, scratch, size);
    }
    free(scratch);
    return 0;
}

static void ps_task_name(int64_t task, char *buf, size_t len, void *ctx)
{
    char where[512];
    ps_eval_point_text(&((const ps_sweep *)ctx)->eval, task, where, sizeof where);
    snprintf(buf, len, "point %lld (%s)", (long long)task, where[0] ? where : "no parameters");
}

/* Rank 0, under --on-error continue: one log line per failed point. */
static void ps_task_failed(mpmap_app *app, const mpmap_task_error *err, void *ctx)
{
    (void)app;
    char name[600];
    ps_task_name(err->task, name, sizeof name, ctx);
    fprintf(stderr, "param_sweep: %s failed: %s\n", name, err->message);
    fflush(stderr);
}

static int ps_setup(mpmap_app *app, void *ctx)
{
    ps_sweep *s = ctx;
    int code = ps_configure(app, &s->args, &s->eval);
    if (code != 0)
        return code;
    const ps_eval *e = &s->eval;
    mpmap_app_problem *p = &s->problem;
    /* Without parameters the single point still gets an axis, so /status is
     * a dataset (the output has no 0-D datasets). */
    p->ntasks = 1;
    p->task_dim = "point";
    for (int k = 0; k < e->grid.nparams; k++) {
        const param_axis *axis = &e->grid.axes[k];
        s->axis_values[k] = malloc((size_t)axis->count * sizeof(double));
        if (!s->axis_values[k])
            return mpmap_app_usage(app, "--param: %lld values of '%s' do not fit in memory",
                                   (long long)axis->count, axis->name);
        for (int64_t j = 0; j < axis->count; j++)
            s->axis_values[k][j] = param_axis_value(axis, j);
        snprintf(s->axis_long_names[k], sizeof s->axis_long_names[k], "parameter %s", axis->name);
        /* clang-format off */
        code = mpmap_app_task_axis(app, p, &(mpmap_app_coord){
            .name = axis->name, .type = MPMAP_DOUBLE, .n = axis->count,
            .values = s->axis_values[k], .long_name = s->axis_long_names[k] });
        /* clang-format on */
        if (code != 0)
            return code;
    }
    /* /field names the record's fields, so xarray selects by name:
     * ds.result.sel(field="max_z"). */
    s->field_names = calloc((size_t)e->record_length, sizeof *s->field_names);
    s->field_text = malloc((size_t)e->record_length * PS_FIELD_NAME_MAX);
    if (!s->field_names || !s->field_text)
        return mpmap_app_failure(app, "out of memory");
    for (int64_t i = 0; i < e->record_length; i++) {
        s->field_names[i] = s->field_text + i * PS_FIELD_NAME_MAX;
        ps_eval_field_name(e, i, s->field_names[i], PS_FIELD_NAME_MAX);
    }
    /* clang-format off */
    p->coords[p->ncoords++] = (mpmap_app_coord){ .name = "field", .n = e->record_length,
                                                 .strings = (const char *const *)s->field_names,
                                                 .long_name = "name of the record's field" };
    p->fields[p->nfields++] = (mpmap_app_field){
        .name = "result", .type = MPMAP_DOUBLE, .rank = 1, .shape = { e->record_length },
        .dims = { "field" },
        .long_name = e->model ? "model record at each grid point (NaN where /status != 0)"
                              : "numbers printed by the command at each grid point (NaN where "
                                "/status != 0)" };
    /* clang-format on */
    p->status = true;
    p->status_codes = PS_STATUS_DOC;
    /* The record length of --exec comes from running the command, not from
     * the flags, so a resumed run must agree on it too. */
    snprintf(p->fingerprint, sizeof p->fingerprint, "record=%lld", (long long)e->record_length);
    return 0;
}

/* Rank 0, after a successful run: what was swept and how each field is called. */
static int ps_finish(mpmap_app *app, const mpmap_report *report, void *ctx)
{
    (void)report;
    const ps_sweep *s = ctx;
    const ps_eval *e = &s->eval;
    char *fields = ps_eval_fields_text(e);
    char *parameters = ps_specs_text(&s->args.specs);
    bool linear = e->model && strcmp(e->model->name, "linear") == 0;
    bool lorenz = e->model && strcmp(e->model->name, "lorenz") == 0;
    const mpmap_app_attr none = MPMAP_APP_NO_ATTR, attrs[] = {
        MPMAP_APP_STRING("fields", fields),
        MPMAP_APP_STRING("parameters", parameters),
        MPMAP_APP_INT64("record_length", e->record_length),
        e->model ? MPMAP_APP_STRING("model", e->model->name) : none,
        e->model ? MPMAP_APP_INT64("model_length", e->options.length) : none,
        linear ? MPMAP_APP_STRING("model_record",
                                  e->options.record == PARAM_RECORD_SUMMARY ? "summary" : "vector")
               : none,
        lorenz ? MPMAP_APP_DOUBLE("model_dt", e->options.dt) : none,
        lorenz ? MPMAP_APP_INT64("model_burn_in", e->options.burn_in) : none,
        e->command ? MPMAP_APP_STRING("command", e->command) : none,
        e->command && e->timeout > 0 ? MPMAP_APP_DOUBLE("timeout", e->timeout) : none,
        MPMAP_APP_INT64("failed_points", mpmap_app_failed_tasks(app)),
        MPMAP_APP_STRING("param_sweep_mode", e->model ? "model" : "exec"),
    };
    int rc = fields && parameters ? mpmap_app_attrs(app, attrs, sizeof attrs / sizeof *attrs) : -1;
    free(fields);
    free(parameters);
    return rc;
}

static void ps_print(mpmap_app *app, const mpmap_report *report, void *ctx)
{
    (void)report;
    const ps_eval *e = &((const ps_sweep *)ctx)->eval;
    printf("param_sweep: %lld point%s", (long long)e->grid.npoints,
           e->grid.npoints == 1 ? "" : "s");
    for (int k = 0; k < e->grid.nparams; k++)
        printf("%s%s[%lld]", k ? " x " : " over ", e->grid.axes[k].name,
               (long long)e->grid.axes[k].count);
    printf(e->model ? ", model %s" : ", command", e->model ? e->model->name : "");
    printf(", %lld value%s per point\n", (long long)e->record_length,
           e->record_length == 1 ? "" : "s");
    int64_t failed = mpmap_app_failed_tasks(app);
    if (failed > 0)
        printf("  %lld point%s failed (NaN in /result, codes in /status)\n", (long long)failed,
               failed == 1 ? "" : "s");
}

static void ps_cleanup(void *ctx)
{
    ps_sweep *s = ctx;
    for (int k = 0; k < PARAM_GRID_MAX_PARAMS; k++)
        free(s->axis_values[k]);
    free(s->field_names);
    free(s->field_text);
    param_grid_free(&s->eval.grid);
}

int main(int argc, char **argv)
{
    ps_sweep s = { .args = { .record = PARAM_RECORD_VECTOR, .dt = 0.01 } };
    mpmap_option options[PS_MAX_FLAGS];
    size_t noptions = ps_flags(&s.args, options);
    ps_help_text(s.summary, sizeof s.summary);
    /* clang-format off */
    mpmap_app_def def = {
        .name = "param_sweep", .default_output = "param_sweep.h5", .summary = s.summary,
        .options = options, .noptions = noptions, .context = &s,
        .problem = &s.problem, .setup = ps_setup, .map = ps_map, .task_failed = ps_task_failed,
        .task_name = ps_task_name, .finish = ps_finish, .print = ps_print, .cleanup = ps_cleanup,
        .task_noun = "points", .on_error_default = "stop with --model, continue with --exec" };
    /* clang-format on */
    return mpmap_app_main(argc, argv, &def);
}
