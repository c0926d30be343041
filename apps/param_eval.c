/* One grid point of param_sweep; see param_eval.h. */
#define _POSIX_C_SOURCE 200809L
#include "param_eval.h"
#include "mpmap_app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* /result has one axis per parameter plus the record axis. */
#define PS_MAX_AXES 7

void ps_eval_point_text(const ps_eval *s, int64_t t, char *buf, size_t buflen)
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
static int eval_exec(const ps_eval *s, const double *point, double *record, char *why,
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
    case EXEC_ETIMEOUT: return PS_STATUS_TIMEOUT;
    case EXEC_EOUTPUT:
        return count > (int)s->record_length ? PS_STATUS_COUNT : PS_STATUS_UNPARSABLE;
    default: return PS_STATUS_SYSTEM;
    }
}

static int eval_model(const ps_eval *s, const double *point, double *record, char *why,
                      size_t whylen)
{
    double params[PS_MODEL_MAX_PARAMS];
    param_model_params(s->model, s->source, point, params);
    if (s->model->evaluate(params, &s->options, record, why, whylen) != 0)
        return PS_STATUS_MODEL;
    return PS_STATUS_OK;
}

int ps_eval_point(const ps_eval *s, int64_t t, double *record, char *why, size_t whylen)
{
    double point[PARAM_GRID_MAX_PARAMS];
    param_grid_point(&s->grid, t, point);
    return s->model ? eval_model(s, point, record, why, whylen)
                    : eval_exec(s, point, record, why, whylen);
}

int ps_eval_probe(ps_eval *s, char *msg, size_t msglen)
{
    double point[PARAM_GRID_MAX_PARAMS];
    char why[EXEC_REASON_MAX] = "";
    char where[512];
    param_grid_point(&s->grid, 0, point);
    ps_eval_point_text(s, 0, where, sizeof where);
    char *cmd = exec_template_expand(s->command, s->names, point, s->grid.nparams, why, sizeof why);
    if (!cmd) {
        snprintf(msg, msglen, "%s", why);
        return -1;
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
        return -1;
    }
    if (count < 1 || count > PS_EXEC_MAX_RECORD) {
        snprintf(msg, msglen,
                 "--exec: the command printed %d numbers at the first grid point (%s); "
                 "expected 1 to %lld",
                 count, where[0] ? where : "no parameters", (long long)PS_EXEC_MAX_RECORD);
        return -1;
    }
    s->record_length = count;
    return 0;
}

int ps_eval_configure(ps_eval *s, const mpmap_cli_strings *specs, const char *model_name,
                      const ps_flags_seen *seen, char *msg, size_t msglen)
{
    char err[1024];
    if (model_name && s->command) {
        snprintf(msg, msglen, "--model and --exec exclude each other; give one");
        return -1;
    }
    if (!model_name && !s->command) {
        snprintf(msg, msglen, "give --model NAME or --exec COMMAND (see --help)");
        return -1;
    }
    for (size_t i = 0; i < specs->count; i++) {
        if (param_grid_add(&s->grid, specs->items[i], err, sizeof err) != PARAM_OK) {
            snprintf(msg, msglen, "%s", err);
            return -1;
        }
    }
    if (s->grid.nparams > PS_MAX_AXES) {
        snprintf(msg, msglen, "--param: at most %d parameters (one axis each in /result), got %d",
                 PS_MAX_AXES, s->grid.nparams);
        return -1;
    }
    for (int k = 0; k < s->grid.nparams; k++)
        s->names[k] = s->grid.axes[k].name;
    /* Each axis becomes a coordinate held in memory before it is written. */
    for (int k = 0; k < s->grid.nparams; k++) {
        if (!mpmap_app_fits_in_memory(s->grid.axes[k].count, sizeof(double))) {
            snprintf(msg, msglen, "--param: %lld values of '%s' do not fit in memory",
                     (long long)s->grid.axes[k].count, s->grid.axes[k].name);
            return -1;
        }
    }

    if (s->command) {
        const char *stray = seen->length   ? "--length"
                            : seen->record ? "--record"
                            : seen->dt     ? "--dt"
                                           : NULL;
        if (stray) {
            snprintf(msg, msglen, "%s: only applies to --model, not --exec", stray);
            return -1;
        }
        if (exec_template_validate(s->command, s->names, s->grid.nparams, err, sizeof err) != 0) {
            snprintf(msg, msglen, "%s", err);
            return -1;
        }
        return 0;
    }
    if (seen->timeout || seen->record_length) {
        snprintf(msg, msglen, "%s: only applies to --exec, not --model",
                 seen->timeout ? "--timeout" : "--record-length");
        return -1;
    }
    s->model = param_model_find(model_name, err, sizeof err);
    if (!s->model) {
        snprintf(msg, msglen, "%s", err);
        return -1;
    }
    if (seen->record && strcmp(s->model->name, "linear") != 0) {
        snprintf(msg, msglen, "--record: only applies to model 'linear', not '%s'", s->model->name);
        return -1;
    }
    if (seen->dt && strcmp(s->model->name, "lorenz") != 0) {
        snprintf(msg, msglen, "--dt: only applies to model 'lorenz', not '%s'", s->model->name);
        return -1;
    }
    if (s->model->nparams > PS_MODEL_MAX_PARAMS) {
        snprintf(msg, msglen, "--model: '%s' has more than %d parameters", s->model->name,
                 PS_MODEL_MAX_PARAMS);
        return -1;
    }
    if (param_model_prepare(s->model, &s->options, err, sizeof err) != 0 ||
        param_model_bind(s->model, &s->grid, s->source, err, sizeof err) != 0) {
        snprintf(msg, msglen, "%s", err);
        return -1;
    }
    s->record_length = s->model->record_length(&s->options);
    return 0;
}

/* Name of record field i: the model's, or value_i for --exec. */
void ps_eval_field_name(const ps_eval *s, int64_t i, char *buf, size_t buflen)
{
    if (s->model)
        s->model->field_name(&s->options, i, buf, buflen);
    else
        snprintf(buf, buflen, "value_%lld", (long long)i);
}

char *ps_eval_fields_text(const ps_eval *e)
{
    size_t cap = 64, used = 0;
    char *fields = malloc(cap);
    for (int64_t i = 0; fields && i < e->record_length; i++) {
        char name[64];
        ps_eval_field_name(e, i, name, sizeof name);
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
    return fields;
}

char *ps_specs_text(const mpmap_cli_strings *specs)
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

void ps_help_text(char *buf, size_t len)
{
    /* The help text lists the models from their table and the /status codes. */
    int used = snprintf(buf, len,
                        "Evaluates a model or a command at every point of a parameter grid, in "
                        "parallel.\nResults: /result (grid shape x record), /status (grid shape).\n"
                        "Models (parameters, default in brackets):");
    for (int i = 0; i < param_model_count() && used > 0 && (size_t)used < len; i++) {
        const param_model *m = param_model_at(i);
        used += snprintf(buf + used, len - (size_t)used, "\n  %-7s", m->name);
        for (int j = 0; j < m->nparams && (size_t)used < len; j++)
            used += m->params[j].required
                        ? snprintf(buf + used, len - (size_t)used, " %s", m->params[j].name)
                        : snprintf(buf + used, len - (size_t)used, " %s[%g]", m->params[j].name,
                                   m->params[j].default_value);
        if ((size_t)used < len)
            used += snprintf(buf + used, len - (size_t)used, ": %s", m->summary);
    }
    if (used > 0 && (size_t)used < len)
        snprintf(buf + used, len - (size_t)used,
                 "\n/status codes: " PS_STATUS_DOC ".\n"
                 "--on-error defaults to continue with --exec (NaN records for failed points), "
                 "stop with --model.");
}
