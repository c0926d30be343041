/*
 * param_sweep: a built-in model (--model) or an external command (--exec)
 * evaluated at every point of a parameter grid (--param, repeatable).
 *
 * One task per grid point, in C order of the grid (first parameter
 * slowest). Each task yields a fixed-length record of doubles; records
 * stream to rank 0 in task order and into /result, whose shape is the grid
 * shape plus one record axis, with one coordinate per parameter. A point
 * that fails is recorded in /status and, under --on-error continue (the
 * default with --exec), its record is NaN and the sweep goes on.
 *
 * Output writing streams: task order is C order of the grid, so the tasks
 * of one index along the first axis (a "row") form one contiguous run and
 * one hyperslab of /result. Rank 0 buffers whole rows (about 4 MiB at a
 * time) and writes them as they complete; a single row may hold at most
 * PS_ROW_MAX_BYTES of records.
 */
#define _POSIX_C_SOURCE 200809L
#include "app_common.h"
#include "exec_runner.h"
#include "param_grid.h"
#include "param_models.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Codes stored in /status. Exit codes of the command keep their value so a
 * user can match them against the program's own documentation; the app's
 * own failure kinds are negative so they never collide with them. */
enum {
    PS_STATUS_OK = 0,
    PS_STATUS_SYSTEM = -1,     /* the command could not be run (spawn, memory) */
    PS_STATUS_TIMEOUT = -2,    /* --timeout expired */
    PS_STATUS_UNPARSABLE = -3, /* stdout is not whitespace-separated finite numbers */
    PS_STATUS_COUNT = -4,      /* stdout has the wrong number of values */
    PS_STATUS_MODEL = -5       /* the model could not compute the point */
};
#define PS_STATUS_SIGNAL_BASE 128 /* killed by signal N: 128 + N, as shells report it */

#define PS_STATUS_DOC                                                                             \
    "0 ok; 1..255 exit code of the command; 128+N killed by signal N; -1 command could not be "  \
    "run; -2 timed out (--timeout); -3 unparsable output; -4 wrong number of values; -5 model "   \
    "could not compute the point"

/* Largest run of records buffered for one index of the first axis. */
#define PS_ROW_MAX_BYTES ((int64_t)256 << 20)
/* Records gathered before a write to /result. */
#define PS_BLOCK_BYTES ((int64_t)4 << 20)
/* Longest record accepted from --exec. */
#define PS_EXEC_MAX_RECORD ((int64_t)1 << 20)
/* Longest parameter vector of a built-in model (the table has 2 and 3). */
#define PS_MODEL_MAX_PARAMS 16
/* /result has one axis per parameter plus the record axis. */
#define PS_MAX_AXES (MPMAP_H5_MAX_RANK - 1)

typedef struct ps_sweep {
    app *a; /* first: the shared job callbacks (app_job_progress/trace) find it here */
    /* on every rank */
    param_grid grid;
    const char *names[PARAM_GRID_MAX_PARAMS]; /* axis names, for --exec templates */
    const param_model *model;                 /* NULL with --exec */
    param_model_options options;
    int source[PS_MODEL_MAX_PARAMS];          /* model parameter -> grid axis or -1 */
    const char *command;                      /* --exec template, or NULL */
    double timeout;                           /* seconds, <= 0 = none */
    int64_t record_length;                    /* doubles per record */
    size_t record_size;

    /* rank 0: streaming into /result and /status */
    int64_t nrows;       /* length of the first axis (1 without parameters) */
    int64_t row_points;  /* grid points per row */
    int64_t block_rows;  /* rows gathered per write */
    int64_t block_first; /* first row of the block being filled */
    double *block_result;
    int32_t *block_status;
    mpmap_h5_dataset *result_ds, *status_ds;
    int64_t failed;
} ps_sweep;

/* "a=1, b=0.5" for point t, for messages; always NUL-terminated. */
static void point_text(const ps_sweep *s, int64_t t, char *buf, size_t buflen)
{
    double values[PARAM_GRID_MAX_PARAMS];
    param_grid_point(&s->grid, t, values);
    size_t used = 0;
    buf[0] = '\0';
    for (int k = 0; k < s->grid.nparams && used < buflen; k++) {
        char num[40];
        exec_format_double(values[k], num, sizeof num);
        int n = snprintf(buf + used, buflen - used, "%s%s=%s", k ? ", " : "", s->grid.axes[k].name,
                         num);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* Runs the command for one point; returns a /status code (0 = ok). */
static int eval_exec(const ps_sweep *s, const double *point, double *record, char *why,
                     size_t whylen)
{
    char *cmd = exec_template_expand(s->command, s->names, point, s->grid.nparams, why, whylen);
    if (!cmd)
        return PS_STATUS_SYSTEM;
    int count = -1;
    exec_outcome outcome;
    int rc = exec_run(cmd, s->timeout, record, (int)s->record_length, &count, &outcome);
    free(cmd);
    snprintf(why, whylen, "%s", outcome.reason);
    switch (rc) {
    case EXEC_OK:
        if (count == (int)s->record_length)
            return PS_STATUS_OK;
        snprintf(why, whylen, "output has %d numbers, expected %lld", count,
                 (long long)s->record_length);
        return PS_STATUS_COUNT;
    case EXEC_EFAILED:
        if (outcome.signal > 0)
            return PS_STATUS_SIGNAL_BASE + outcome.signal;
        return outcome.exit_code > 0 ? outcome.exit_code : PS_STATUS_SYSTEM;
    case EXEC_ETIMEOUT:
        return PS_STATUS_TIMEOUT;
    case EXEC_EOUTPUT:
        return count > (int)s->record_length ? PS_STATUS_COUNT : PS_STATUS_UNPARSABLE;
    default:
        return PS_STATUS_SYSTEM;
    }
}

static int eval_model(const ps_sweep *s, const double *point, double *record, char *why,
                      size_t whylen)
{
    double params[PS_MODEL_MAX_PARAMS];
    param_model_params(s->model, s->source, point, params);
    if (s->model->evaluate(params, &s->options, record, why, whylen) != 0)
        return PS_STATUS_MODEL;
    return PS_STATUS_OK;
}

/* The record goes through a scratch buffer: the library does not promise
 * that records inside its buffers are aligned for double. */
static int ps_map(int64_t begin, int64_t end, void *records, mpmap_task_error *err, void *ctx)
{
    const ps_sweep *s = ctx;
    double *scratch = malloc(s->record_size);
    if (!scratch)
        return mpmap_task_fail(err, begin, PS_STATUS_SYSTEM, "out of memory for a record");
    char *out = records;
    for (int64_t t = begin; t < end; t++) {
        double point[PARAM_GRID_MAX_PARAMS];
        char why[EXEC_REASON_MAX] = "";
        param_grid_point(&s->grid, t, point);
        int code = s->model ? eval_model(s, point, scratch, why, sizeof why)
                            : eval_exec(s, point, scratch, why, sizeof why);
        if (code != PS_STATUS_OK) {
            free(scratch);
            return mpmap_task_fail(err, t, code, "%s", why[0] ? why : "failed");
        }
        memcpy(out + (size_t)(t - begin) * s->record_size, scratch, s->record_size);
    }
    free(scratch);
    return 0;
}

/* Rank 0: writes the block of rows gathered so far. */
static int flush_block(ps_sweep *s, int64_t rows)
{
    if (mpmap_h5_dataset_write_rows(s->result_ds, s->block_first, rows, s->block_result) != 0 ||
        mpmap_h5_dataset_write_rows(s->status_ds, s->block_first, rows, s->block_status) != 0)
        return -1;
    s->block_first += rows;
    return 0;
}

/* Rank 0: gathers records (NaN for failed points) into whole rows and
 * writes each block of rows once its last point has arrived. */
static int ps_sink(int64_t begin, int64_t end, const void *records, const int32_t *status,
                   void *ctx)
{
    ps_sweep *s = ctx;
    const char *in = records;
    int64_t r = s->record_length;
    for (int64_t t = begin; t < end; t++) {
        int64_t at = t - s->block_first * s->row_points;
        int32_t code = status ? status[t - begin] : 0;
        double *dst = s->block_result + at * r;
        if (code == 0) {
            memcpy(dst, in + (size_t)(t - begin) * s->record_size, s->record_size);
        } else {
            for (int64_t i = 0; i < r; i++)
                dst[i] = NAN;
            s->failed++;
        }
        s->block_status[at] = code;
        int64_t rows = s->nrows - s->block_first < s->block_rows ? s->nrows - s->block_first
                                                                 : s->block_rows;
        if (t + 1 == (s->block_first + rows) * s->row_points && flush_block(s, rows) != 0)
            return -1;
    }
    return 0;
}

/* Rank 0, under --on-error continue: one log line per failed point. */
static void ps_task_failed(const mpmap_task_error *err, void *ctx)
{
    const ps_sweep *s = ctx;
    char where[512];
    point_text(s, err->task, where, sizeof where);
    fprintf(stderr, "%s: point %lld (%s) failed: %s\n", s->a->name, (long long)err->task,
            where[0] ? where : "no parameters", err->message);
    fflush(stderr);
}

/* Name of record field i: the model's, or value_i for --exec. */
static void field_name(const ps_sweep *s, int64_t i, char *buf, size_t buflen)
{
    if (s->model)
        s->model->field_name(&s->options, i, buf, buflen);
    else
        snprintf(buf, buflen, "value_%lld", (long long)i);
}

/* "a=1:3:3; b=0,1" from the --param specs (malloc'd, or NULL). */
static char *join_specs(const mpmap_cli_strings *specs)
{
    size_t need = 16;
    for (size_t i = 0; i < specs->count; i++)
        need += strlen(specs->items[i]) + 2;
    char *text = malloc(need);
    if (!text)
        return NULL;
    text[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < specs->count; i++)
        used += (size_t)snprintf(text + used, need - used, "%s%s", i ? "; " : "", specs->items[i]);
    if (specs->count == 0)
        snprintf(text, need, "(none)");
    return text;
}

/* Rank 0: coordinates, /result and /status (open for streaming), and the
 * attributes that describe them. */
static int create_outputs(ps_sweep *s, app *a, const mpmap_cli_strings *specs, char *msg,
                          size_t msglen)
{
    if (app_create_output(a, msg, msglen) != 0)
        return APP_EXIT_FAILED;
    mpmap_h5 *f = a->h5;
    int k = s->grid.nparams;
    int rc = 0;
    int64_t dims[MPMAP_H5_MAX_RANK];
    const char *dim_names[MPMAP_H5_MAX_RANK];
    char path[PARAM_NAME_MAX + 1];
    for (int i = 0; rc == 0 && i < k; i++) {
        const param_axis *axis = &s->grid.axes[i];
        double *values = malloc((size_t)axis->count * sizeof *values);
        if (!values) {
            snprintf(msg, msglen, "--param: %lld values of '%s' do not fit in memory",
                     (long long)axis->count, axis->name);
            return APP_EXIT_FAILED;
        }
        for (int64_t j = 0; j < axis->count; j++)
            values[j] = param_axis_value(axis, j);
        char long_name[PARAM_NAME_MAX + 32];
        snprintf(long_name, sizeof long_name, "parameter %s", axis->name);
        snprintf(path, sizeof path, "/%s", axis->name);
        rc = mpmap_h5_write_coordinate(f, path, H5T_NATIVE_DOUBLE, axis->count, values, NULL,
                                       long_name);
        free(values);
        dims[i] = axis->count;
        dim_names[i] = axis->name;
    }
    /* Without parameters the single point still gets an axis, so /status is
     * a dataset (the output module has no 0-D datasets). */
    if (k == 0) {
        dims[0] = 1;
        dim_names[0] = "point";
        k = 1;
    }
    int64_t *field_index = malloc((size_t)s->record_length * sizeof *field_index);
    if (!field_index) {
        snprintf(msg, msglen, "out of memory");
        return APP_EXIT_FAILED;
    }
    for (int64_t i = 0; i < s->record_length; i++)
        field_index[i] = i;
    if (rc == 0)
        rc = mpmap_h5_write_coordinate(f, "/field", H5T_NATIVE_INT64, s->record_length,
                                       field_index, NULL,
                                       "index into the record; names in the root attribute 'fields'");
    free(field_index);
    dims[k] = s->record_length;
    dim_names[k] = "field";
    if (rc == 0)
        rc = mpmap_h5_dataset_create(f, "/result", H5T_NATIVE_DOUBLE, k + 1, dims, dim_names,
                                     &s->result_ds);
    if (rc == 0)
        rc = mpmap_h5_attr_string(f, "/result", "long_name",
                                  s->model ? "model record at each grid point (NaN where /status != 0)"
                                           : "numbers printed by the command at each grid point "
                                             "(NaN where /status != 0)");
    if (rc == 0)
        rc = mpmap_h5_dataset_create(f, "/status", H5T_NATIVE_INT32, k, dims, dim_names,
                                     &s->status_ds);
    if (rc == 0)
        rc = mpmap_h5_attr_string(f, "/status", "long_name", "outcome of each grid point (0 = ok)");
    if (rc == 0)
        rc = mpmap_h5_attr_string(f, "/status", "codes", PS_STATUS_DOC);

    /* Root attributes: what was swept and how each field is called. */
    size_t cap = 64, used = 0;
    char *fields = malloc(cap);
    for (int64_t i = 0; fields && i < s->record_length; i++) {
        char name[64];
        field_name(s, i, name, sizeof name);
        size_t n = strlen(name) + 2;
        if (used + n >= cap) {
            char *grown = realloc(fields, 2 * cap + n);
            if (!grown) {
                free(fields);
                fields = NULL;
                break;
            }
            fields = grown;
            cap = 2 * cap + n;
        }
        used += (size_t)snprintf(fields + used, cap - used, "%s%s", i ? "," : "", name);
    }
    char *parameters = join_specs(specs);
    if (!fields || !parameters) {
        free(fields);
        free(parameters);
        snprintf(msg, msglen, "out of memory");
        return APP_EXIT_FAILED;
    }
    if (rc == 0)
        rc = mpmap_h5_attr_string(f, "/", "fields", fields);
    if (rc == 0)
        rc = mpmap_h5_attr_string(f, "/", "parameters", parameters);
    free(fields);
    free(parameters);
    if (rc == 0)
        rc = mpmap_h5_attr_int64(f, "/", "record_length", s->record_length);
    if (rc == 0 && s->model) {
        rc = mpmap_h5_attr_string(f, "/", "model", s->model->name);
        if (rc == 0)
            rc = mpmap_h5_attr_int64(f, "/", "model_length", s->options.length);
        if (rc == 0 && strcmp(s->model->name, "linear") == 0)
            rc = mpmap_h5_attr_string(f, "/", "model_record",
                                      s->options.record == PARAM_RECORD_SUMMARY ? "summary"
                                                                                : "vector");
        if (rc == 0 && strcmp(s->model->name, "lorenz") == 0) {
            rc = mpmap_h5_attr_double(f, "/", "model_dt", s->options.dt);
            if (rc == 0)
                rc = mpmap_h5_attr_int64(f, "/", "model_burn_in", s->options.burn_in);
        }
    }
    if (rc == 0 && s->command) {
        rc = mpmap_h5_attr_string(f, "/", "command", s->command);
        if (rc == 0 && s->timeout > 0)
            rc = mpmap_h5_attr_double(f, "/", "timeout", s->timeout);
    }
    return rc != 0 ? app_output_failed(a, msg, msglen) : 0;
}

/* Rank 0, --exec without --record-length: runs grid point 0 to learn how
 * many numbers the command prints; a broken command fails here, before any
 * output exists. */
static int probe_exec(ps_sweep *s, char *msg, size_t msglen)
{
    double point[PARAM_GRID_MAX_PARAMS];
    char why[EXEC_REASON_MAX] = "";
    char where[512];
    param_grid_point(&s->grid, 0, point);
    point_text(s, 0, where, sizeof where);
    char *cmd = exec_template_expand(s->command, s->names, point, s->grid.nparams, why, sizeof why);
    if (!cmd) {
        snprintf(msg, msglen, "%s", why);
        return APP_EXIT_USAGE;
    }
    int count = 0;
    exec_outcome outcome;
    int rc = exec_run(cmd, s->timeout, NULL, 0, &count, &outcome);
    free(cmd);
    if (rc != EXEC_OK) {
        snprintf(msg, msglen,
                 "--exec: the command failed at the first grid point (%s): %s (fix it, or give "
                 "--record-length to let that point fail)",
                 where[0] ? where : "no parameters", outcome.reason);
        return APP_EXIT_USAGE;
    }
    if (count < 1 || count > PS_EXEC_MAX_RECORD) {
        snprintf(msg, msglen, "--exec: the command printed %d numbers at the first grid point (%s); "
                              "expected 1 to %lld", count, where[0] ? where : "no parameters",
                 (long long)PS_EXEC_MAX_RECORD);
        return APP_EXIT_USAGE;
    }
    s->record_length = count;
    return 0;
}

/* Checks that need no command to run; the same on every rank. */
static int setup(ps_sweep *s, const mpmap_cli_strings *specs, const char *model_name,
                 int length_seen, int record_seen, int dt_seen, int timeout_seen,
                 int record_length_seen, char *msg, size_t msglen)
{
    char err[APP_MESSAGE_MAX];
    if (model_name && s->command) {
        snprintf(msg, msglen, "--model and --exec exclude each other; give one");
        return APP_EXIT_USAGE;
    }
    if (!model_name && !s->command) {
        snprintf(msg, msglen, "give --model NAME or --exec COMMAND (see --help)");
        return APP_EXIT_USAGE;
    }
    for (size_t i = 0; i < specs->count; i++) {
        if (param_grid_add(&s->grid, specs->items[i], err, sizeof err) != PARAM_OK) {
            snprintf(msg, msglen, "%s", err);
            return APP_EXIT_USAGE;
        }
    }
    if (s->grid.nparams > PS_MAX_AXES) {
        snprintf(msg, msglen, "--param: at most %d parameters (one axis each in /result), got %d",
                 PS_MAX_AXES, s->grid.nparams);
        return APP_EXIT_USAGE;
    }
    for (int k = 0; k < s->grid.nparams; k++)
        s->names[k] = s->grid.axes[k].name;

    if (s->command) {
        const char *stray = length_seen ? "--length" : record_seen ? "--record" : dt_seen ? "--dt" : NULL;
        if (stray) {
            snprintf(msg, msglen, "%s: only applies to --model, not --exec", stray);
            return APP_EXIT_USAGE;
        }
        if (exec_template_validate(s->command, s->names, s->grid.nparams, err, sizeof err) != 0) {
            snprintf(msg, msglen, "%s", err);
            return APP_EXIT_USAGE;
        }
        return 0;
    }
    if (timeout_seen || record_length_seen) {
        snprintf(msg, msglen, "%s: only applies to --exec, not --model",
                 timeout_seen ? "--timeout" : "--record-length");
        return APP_EXIT_USAGE;
    }
    s->model = param_model_find(model_name, err, sizeof err);
    if (!s->model) {
        snprintf(msg, msglen, "%s", err);
        return APP_EXIT_USAGE;
    }
    if (record_seen && strcmp(s->model->name, "linear") != 0) {
        snprintf(msg, msglen, "--record: only applies to model 'linear', not '%s'", s->model->name);
        return APP_EXIT_USAGE;
    }
    if (dt_seen && strcmp(s->model->name, "lorenz") != 0) {
        snprintf(msg, msglen, "--dt: only applies to model 'lorenz', not '%s'", s->model->name);
        return APP_EXIT_USAGE;
    }
    if (s->model->nparams > PS_MODEL_MAX_PARAMS) {
        snprintf(msg, msglen, "--model: '%s' has more than %d parameters", s->model->name,
                 PS_MODEL_MAX_PARAMS);
        return APP_EXIT_USAGE;
    }
    if (param_model_prepare(s->model, &s->options, err, sizeof err) != 0 ||
        param_model_bind(s->model, &s->grid, s->source, err, sizeof err) != 0) {
        snprintf(msg, msglen, "%s", err);
        return APP_EXIT_USAGE;
    }
    s->record_length = s->model->record_length(&s->options);
    return 0;
}

/* Rank 0: sizes the row buffer; refuses rows beyond PS_ROW_MAX_BYTES. */
static int plan_rows(ps_sweep *s, char *msg, size_t msglen)
{
    s->nrows = s->grid.nparams > 0 ? s->grid.axes[0].count : 1;
    s->row_points = s->grid.npoints / s->nrows;
    if (s->row_points > PS_ROW_MAX_BYTES / 8 / s->record_length) {
        snprintf(msg, msglen,
                 "--param: one index of the first parameter spans %lld points x %lld values, more "
                 "than the %lld MiB write buffer; put the longest parameter first",
                 (long long)s->row_points, (long long)s->record_length,
                 (long long)(PS_ROW_MAX_BYTES >> 20));
        return APP_EXIT_USAGE;
    }
    int64_t row_bytes = s->row_points * s->record_length * 8;
    s->block_rows = PS_BLOCK_BYTES / row_bytes;
    if (s->block_rows < 1)
        s->block_rows = 1;
    if (s->block_rows > s->nrows)
        s->block_rows = s->nrows;
    return 0;
}

int main(int argc, char **argv)
{
    app a;
    app_init(&a, "param_sweep", &argc, &argv);

    mpmap_cli_strings specs = { 0 };
    const char *model_name = NULL, *command = NULL;
    int64_t length = 0, record_length = 0;
    int record = PARAM_RECORD_VECTOR;
    double dt = 0.01, timeout = 0;
    int length_seen = 0, record_seen = 0, dt_seen = 0, timeout_seen = 0, record_length_seen = 0;
    static const char *const record_names[] = { "vector", "summary", NULL };

    app_add_option(&a, (mpmap_option){ .name = "--param", .kind = MPMAP_OPT_STRING_LIST,
                                       .target = &specs, .metavar = "NAME=A:B:N|NAME=v1,v2,...",
                                       .help = "one grid axis: N values evenly spaced from A to B, "
                                               "or the listed values; repeat for more axes (the "
                                               "first varies slowest)" });
    app_add_option(&a, (mpmap_option){ .name = "--model", .kind = MPMAP_OPT_STRING,
                                       .target = &model_name, .metavar = "NAME",
                                       .help = "built-in model to evaluate (listed above); or --exec" });
    app_add_option(&a, (mpmap_option){ .name = "--exec", .kind = MPMAP_OPT_STRING, .target = &command,
                                       .metavar = "'COMMAND {NAME}...'",
                                       .help = "shell command run at every point, {NAME} replaced by "
                                               "the parameter's value; it prints the record as "
                                               "whitespace-separated numbers; failed points go to "
                                               "/status and the sweep continues unless --on-error stop" });
    app_add_option(&a, (mpmap_option){ .name = "--length", .kind = MPMAP_OPT_INT64, .target = &length,
                                       .metavar = "M", .help = "model length: linear values, lorenz steps",
                                       .default_text = "linear 100, lorenz 10000", .min = 1,
                                       .max = INFINITY, .seen = &length_seen });
    app_add_option(&a, (mpmap_option){ .name = "--record", .kind = MPMAP_OPT_CHOICE, .target = &record,
                                       .help = "linear: all M values, or mean,min,max,last",
                                       .default_text = "vector", .choices = record_names,
                                       .seen = &record_seen });
    app_add_option(&a, (mpmap_option){ .name = "--dt", .kind = MPMAP_OPT_DOUBLE, .target = &dt,
                                       .metavar = "DT", .help = "lorenz: RK4 time step",
                                       .default_text = "0.01", .min = 0, .max = INFINITY,
                                       .flags = MPMAP_OPT_EXCLUSIVE_MIN, .seen = &dt_seen });
    app_add_option(&a, (mpmap_option){ .name = "--record-length", .kind = MPMAP_OPT_INT64,
                                       .target = &record_length, .metavar = "N",
                                       .help = "--exec: numbers per point (default: what the first "
                                               "point prints; it is run once beforehand to learn it)",
                                       .min = 1, .max = (double)PS_EXEC_MAX_RECORD,
                                       .seen = &record_length_seen });
    app_add_option(&a, (mpmap_option){ .name = "--timeout", .kind = MPMAP_OPT_DOUBLE, .target = &timeout,
                                       .metavar = "S", .help = "--exec: seconds a point may run "
                                                               "before it is killed and fails",
                                       .default_text = "none", .min = 0, .max = INFINITY,
                                       .flags = MPMAP_OPT_EXCLUSIVE_MIN, .seen = &timeout_seen });

    /* The help text lists the models from their table and the /status codes. */
    char summary[2048];
    int used = snprintf(summary, sizeof summary,
                        "Evaluates a model or a command at every point of a parameter grid, in "
                        "parallel.\nResults: /result (grid shape x record), /status (grid shape).\n"
                        "Models (parameters, default in brackets):");
    for (int i = 0; i < param_model_count() && used > 0 && (size_t)used < sizeof summary; i++) {
        const param_model *m = param_model_at(i);
        used += snprintf(summary + used, sizeof summary - (size_t)used, "\n  %-7s", m->name);
        for (int j = 0; j < m->nparams && (size_t)used < sizeof summary; j++)
            used += m->params[j].required
                        ? snprintf(summary + used, sizeof summary - (size_t)used, " %s",
                                   m->params[j].name)
                        : snprintf(summary + used, sizeof summary - (size_t)used, " %s[%g]",
                                   m->params[j].name, m->params[j].default_value);
        if ((size_t)used < sizeof summary)
            used += snprintf(summary + used, sizeof summary - (size_t)used, ": %s", m->summary);
    }
    if (used > 0 && (size_t)used < sizeof summary)
        snprintf(summary + used, sizeof summary - (size_t)used,
                 "\n/status codes: " PS_STATUS_DOC ".\n"
                 "--on-error defaults to continue with --exec (NaN records for failed points), "
                 "stop with --model.");

    /* --on-error's default differs between --model (stop) and --exec
     * (continue). The shared flag stores the matching entry of its choice
     * table, so a default that is a distinct object tells "not given"
     * apart from an explicit "--on-error stop". */
    const char on_error_unset[] = "stop";
    a.common.on_error = on_error_unset;
    int code = app_parse(&a, "param_sweep.h5", summary);
    if (code >= 0)
        return app_exit(&a, code);
    bool on_error_given = a.common.on_error != on_error_unset;

    ps_sweep s = { .a = &a, .command = command, .timeout = timeout_seen ? timeout : 0 };
    param_grid_init(&s.grid);
    param_model_options_init(&s.options);
    s.options.length = length;
    s.options.record = (param_record_kind)record;
    s.options.dt = dt;

    char msg[APP_MESSAGE_MAX] = "";
    code = setup(&s, &specs, model_name, length_seen, record_seen, dt_seen, timeout_seen,
                 record_length_seen, msg, sizeof msg);
    if (code == 0 && a.rank == 0)
        code = app_check_output(&a, NULL, msg, sizeof msg);
    if (code == 0 && a.rank == 0 && s.command) {
        if (record_length_seen)
            s.record_length = record_length;
        else
            code = probe_exec(&s, msg, sizeof msg);
    }
    if (code == 0 && a.rank == 0)
        code = plan_rows(&s, msg, sizeof msg);
    code = app_agree(&a, code, msg);
    if (code != 0) {
        param_grid_free(&s.grid);
        return app_exit(&a, code);
    }
    if (MPI_Bcast(&s.record_length, 1, MPI_INT64_T, 0, a.comm) != MPI_SUCCESS) {
        param_grid_free(&s.grid);
        return app_exit(&a, APP_EXIT_FAILED);
    }
    s.record_size = (size_t)s.record_length * sizeof(double);
    if (s.command && !on_error_given)
        a.config.on_error = MPMAP_ON_ERROR_CONTINUE;

    /* The record length of --exec comes from running the command, not from
     * the flags, so a resumed run must agree on it too. */
    char extra[64];
    snprintf(extra, sizeof extra, "record=%lld", (long long)s.record_length);
    app_configure(&a, extra);

    code = 0;
    if (a.rank == 0) {
        int64_t block = s.block_rows * s.row_points;
        s.block_result = malloc((size_t)(block * s.record_length) * sizeof(double));
        s.block_status = malloc((size_t)block * sizeof(int32_t));
        if (!s.block_result || !s.block_status) {
            snprintf(msg, sizeof msg, "out of memory for the write buffer");
            code = APP_EXIT_FAILED;
        } else {
            code = create_outputs(&s, &a, &specs, msg, sizeof msg);
        }
    }
    code = app_agree(&a, code, msg);
    if (code != 0) {
        free(s.block_result);
        free(s.block_status);
        param_grid_free(&s.grid);
        return app_exit(&a, code);
    }

    mpmap_job job = { .ntasks = s.grid.npoints, .record_size = s.record_size, .map = ps_map,
                      .context = &s, .sink = ps_sink, .trace = app_job_trace,
                      .task_failed = ps_task_failed, .progress = app_job_progress };
    mpmap_report report;
    int status = mpmap_run(a.comm, &a.config, &job, &report);

    if (a.rank == 0) {
        int close_rc = mpmap_h5_dataset_close(s.result_ds);
        close_rc |= mpmap_h5_dataset_close(s.status_ds);
        s.result_ds = s.status_ds = NULL;
        if (status == MPMAP_OK) {
            const char *mode = s.model ? "model" : "exec";
            const char *keys[] = { "param_sweep_mode" };
            const char *values[] = { mode };
            if (close_rc != 0 || s.block_first != s.nrows ||
                mpmap_h5_attr_int64(a.h5, "/", "failed_points", s.failed) != 0 ||
                app_write_provenance(&a, &report, 1, keys, values) != 0) {
                status = MPMAP_EHDF5;
                app_output_failed(&a, report.message, sizeof report.message);
            }
        } else if (status == MPMAP_ETASK && report.failed_task >= 0) {
            /* Name the point, not only its task number. */
            const char *reason = strstr(report.message, "failed: ");
            char where[256], text[1024];
            point_text(&s, report.failed_task, where, sizeof where);
            snprintf(text, sizeof text, "point %lld (%s) failed: %s", (long long)report.failed_task,
                     where[0] ? where : "no parameters", reason ? reason + 8 : report.message);
            size_t n = strlen(text);
            if (n >= sizeof report.message)
                n = sizeof report.message - 1;
            memcpy(report.message, text, n);
            report.message[n] = '\0';
        }
    }
    MPI_Bcast(&status, 1, MPI_INT, 0, a.comm);
    code = app_finish(&a, status, &report);

    if (code == APP_EXIT_OK && a.rank == 0 && !a.common.quiet) {
        printf("param_sweep: %lld point%s", (long long)s.grid.npoints, s.grid.npoints == 1 ? "" : "s");
        for (int k = 0; k < s.grid.nparams; k++)
            printf("%s%s[%lld]", k ? " x " : " over ", s.grid.axes[k].name,
                   (long long)s.grid.axes[k].count);
        if (s.model)
            printf(", model %s", s.model->name);
        else
            printf(", command");
        printf(", %lld value%s per point\n", (long long)s.record_length,
               s.record_length == 1 ? "" : "s");
        if (s.failed > 0)
            printf("  %lld point%s failed (NaN in /result, codes in /status)\n",
                   (long long)s.failed, s.failed == 1 ? "" : "s");
        app_print_run_summary(&a, &report);
    }
    free(s.block_result);
    free(s.block_status);
    param_grid_free(&s.grid);
    return app_exit(&a, code);
}
