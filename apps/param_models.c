/*
 * param_models: the model table of param_sweep and the built-in models
 * (linear, lorenz). See param_models.h for what each model computes.
 */
#include "param_models.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Longest linear vector record: 2^20 doubles (8 MiB) per grid point is
 * already more than a chunk of records should hold. */
#define LINEAR_MAX_VECTOR ((int64_t)1 << 20)
/* Longest loop of one point; beyond it a single task would run for hours. */
#define MODEL_MAX_LENGTH ((int64_t)1 << 40)

#define LORENZ_SEPARATION 1e-8

void param_model_options_init(param_model_options *options)
{
    options->length = 0;
    options->record = PARAM_RECORD_VECTOR;
    options->dt = 0.01;
    options->burn_in = 1000;
}

/* ---- linear ---------------------------------------------------------- */

enum { LINEAR_P1, LINEAR_P2 };

static const param_model_param linear_params[] = {
    { "p1", 1, 0.0 },
    { "p2", 1, 0.0 },
};

static const char *const linear_summary_fields[] = { "mean", "min", "max", "last" };

static int linear_check(const param_model_options *options, char *err, size_t errlen)
{
    int64_t m = options->length;
    if (options->record == PARAM_RECORD_VECTOR && (m < 1 || m > LINEAR_MAX_VECTOR))
        return param_fail(err, errlen,
                          "--length: model 'linear' with --record vector needs 1..%lld, got %lld",
                          (long long)LINEAR_MAX_VECTOR, (long long)m);
    if (options->record == PARAM_RECORD_SUMMARY && (m < 1 || m > MODEL_MAX_LENGTH))
        return param_fail(err, errlen,
                          "--length: model 'linear' with --record summary needs 1..%lld, got %lld",
                          (long long)MODEL_MAX_LENGTH, (long long)m);
    if (options->record != PARAM_RECORD_VECTOR && options->record != PARAM_RECORD_SUMMARY)
        return param_fail(err, errlen, "--record: expected vector or summary");
    return PARAM_OK;
}

static int64_t linear_record_length(const param_model_options *options)
{
    return options->record == PARAM_RECORD_SUMMARY ? 4 : options->length;
}

static void linear_field_name(const param_model_options *options, int64_t field, char *buf,
                              size_t buflen)
{
    if (options->record == PARAM_RECORD_SUMMARY)
        snprintf(buf, buflen, "%s", field >= 0 && field < 4 ? linear_summary_fields[field] : "?");
    else
        snprintf(buf, buflen, "y_%lld", (long long)field);
}

static int linear_evaluate(const double *params, const param_model_options *options, double *record,
                           char *err, size_t errlen)
{
    const double p1 = params[LINEAR_P1];
    const double offset = params[LINEAR_P2] * params[LINEAR_P2];
    const int64_t m = options->length;
    if (options->record == PARAM_RECORD_VECTOR) {
        for (int64_t ctr = 0; ctr < m; ctr++)
            record[ctr] = p1 * (double)ctr - offset;
        return PARAM_OK;
    }
    /* Neumaier summation keeps the mean accurate for long loops, where the
     * terms grow linearly and plain summation loses digits. */
    double sum = 0.0, compensation = 0.0;
    double lo = INFINITY, hi = -INFINITY, value = 0.0;
    for (int64_t ctr = 0; ctr < m; ctr++) {
        value = p1 * (double)ctr - offset;
        double t = sum + value;
        compensation += fabs(sum) >= fabs(value) ? (sum - t) + value : (value - t) + sum;
        sum = t;
        lo = value < lo ? value : lo;
        hi = value > hi ? value : hi;
    }
    record[0] = (sum + compensation) / (double)m;
    record[1] = lo;
    record[2] = hi;
    record[3] = value;
    if (!isfinite(record[0]))
        return param_fail(err, errlen, "linear: mean overflows for p1=%.17g p2=%.17g", p1,
                          params[LINEAR_P2]);
    return PARAM_OK;
}

/* ---- lorenz ---------------------------------------------------------- */

enum { LORENZ_SIGMA, LORENZ_RHO, LORENZ_BETA };

static const param_model_param lorenz_params[] = {
    { "sigma", 0, 10.0 },
    { "rho", 0, 28.0 },
    { "beta", 0, 8.0 / 3.0 },
};

static const char *const lorenz_fields[] = { "mean_z", "max_z", "mean_x2", "lyapunov" };

static void lorenz_rhs(const double s[3], double sigma, double rho, double beta, double d[3])
{
    d[0] = sigma * (s[1] - s[0]);
    d[1] = s[0] * (rho - s[2]) - s[1];
    d[2] = s[0] * s[1] - beta * s[2];
}

void lorenz_rk4_step(double state[3], double sigma, double rho, double beta, double dt)
{
    double k1[3], k2[3], k3[3], k4[3], tmp[3];
    lorenz_rhs(state, sigma, rho, beta, k1);
    for (int i = 0; i < 3; i++)
        tmp[i] = state[i] + 0.5 * dt * k1[i];
    lorenz_rhs(tmp, sigma, rho, beta, k2);
    for (int i = 0; i < 3; i++)
        tmp[i] = state[i] + 0.5 * dt * k2[i];
    lorenz_rhs(tmp, sigma, rho, beta, k3);
    for (int i = 0; i < 3; i++)
        tmp[i] = state[i] + dt * k3[i];
    lorenz_rhs(tmp, sigma, rho, beta, k4);
    for (int i = 0; i < 3; i++)
        state[i] += dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
}

static int lorenz_check(const param_model_options *options, char *err, size_t errlen)
{
    if (!(options->dt > 0.0) || !isfinite(options->dt))
        return param_fail(err, errlen, "--dt: expected a finite number > 0, got %g", options->dt);
    if (options->burn_in < 0)
        return param_fail(err, errlen, "lorenz: burn-in must be >= 0, got %lld",
                          (long long)options->burn_in);
    if (options->length <= options->burn_in || options->length > MODEL_MAX_LENGTH)
        return param_fail(err, errlen,
                          "--length: model 'lorenz' needs more steps than its burn-in of %lld "
                          "(and at most %lld), got %lld",
                          (long long)options->burn_in, (long long)MODEL_MAX_LENGTH,
                          (long long)options->length);
    return PARAM_OK;
}

static int64_t lorenz_record_length(const param_model_options *options)
{
    (void)options;
    return 4;
}

static void lorenz_field_name(const param_model_options *options, int64_t field, char *buf,
                              size_t buflen)
{
    (void)options;
    snprintf(buf, buflen, "%s", field >= 0 && field < 4 ? lorenz_fields[field] : "?");
}

static int state_finite(const double s[3])
{
    return isfinite(s[0]) && isfinite(s[1]) && isfinite(s[2]);
}

static int lorenz_evaluate(const double *params, const param_model_options *options, double *record,
                           char *err, size_t errlen)
{
    const double sigma = params[LORENZ_SIGMA], rho = params[LORENZ_RHO];
    const double beta = params[LORENZ_BETA], dt = options->dt;
    /* Benettin: follow a twin trajectory and pull it back to the initial
     * separation after every step, so it measures the linearised growth
     * along the most unstable direction without ever saturating. The twin
     * runs through the burn-in too: by the time growth is accumulated the
     * separation has turned onto the most unstable direction, instead of
     * charging the initial projection onto it (log of a small factor) to
     * the exponent. */
    double state[3] = { 1.0, 1.0, 1.0 };
    double twin[3] = { 1.0 + LORENZ_SEPARATION, 1.0, 1.0 };
    double sum_z = 0.0, max_z = -INFINITY, sum_x2 = 0.0, sum_log = 0.0;
    for (int64_t s = 0; s < options->length; s++) {
        lorenz_rk4_step(state, sigma, rho, beta, dt);
        lorenz_rk4_step(twin, sigma, rho, beta, dt);
        double delta[3] = { twin[0] - state[0], twin[1] - state[1], twin[2] - state[2] };
        double d = sqrt(delta[0] * delta[0] + delta[1] * delta[1] + delta[2] * delta[2]);
        if (!state_finite(state) || !(d > 0.0) || !isfinite(d))
            return param_fail(err, errlen,
                              "lorenz: trajectory diverged at step %lld for "
                              "sigma=%.17g rho=%.17g beta=%.17g",
                              (long long)(s + 1), sigma, rho, beta);
        double scale = LORENZ_SEPARATION / d;
        for (int i = 0; i < 3; i++)
            twin[i] = state[i] + delta[i] * scale;
        if (s < options->burn_in)
            continue;
        sum_log += log(d / LORENZ_SEPARATION);
        sum_z += state[2];
        max_z = state[2] > max_z ? state[2] : max_z;
        sum_x2 += state[0] * state[0];
    }
    const int64_t n = options->length - options->burn_in;
    record[0] = sum_z / (double)n;
    record[1] = max_z;
    record[2] = sum_x2 / (double)n;
    record[3] = sum_log / ((double)n * dt);
    return PARAM_OK;
}

/* ---- the table ------------------------------------------------------- */

static const param_model models[] = {
    {
        .name = "linear",
        .summary = "y(ctr) = p1*ctr - p2^2 for ctr < --length; record: the values or a summary",
        .nparams = 2,
        .params = linear_params,
        .default_length = 100,
        .check = linear_check,
        .record_length = linear_record_length,
        .field_name = linear_field_name,
        .evaluate = linear_evaluate,
    },
    {
        .name = "lorenz",
        .summary = "Lorenz-63 by RK4 (sigma, rho, beta); record: mean z, max z, mean x^2, "
                   "largest Lyapunov exponent",
        .nparams = 3,
        .params = lorenz_params,
        .default_length = 10000,
        .check = lorenz_check,
        .record_length = lorenz_record_length,
        .field_name = lorenz_field_name,
        .evaluate = lorenz_evaluate,
    },
};

#define NMODELS ((int)(sizeof models / sizeof models[0]))

/* clang-format off */
int param_model_count(void)
{
    return NMODELS;
}

const param_model *param_model_at(int i)
{
    return i >= 0 && i < NMODELS ? &models[i] : NULL;
}

const param_model *param_model_find(const char *name, char *err, size_t errlen)
{
    for (int i = 0; name && i < NMODELS; i++)
        if (strcmp(name, models[i].name) == 0)
            return &models[i];
    if (err && errlen > 0) {
        int used = snprintf(err, errlen, "--model: unknown model '%.100s' (available:",
                            name ? name : "");
        for (int i = 0; i < NMODELS && used >= 0 && (size_t)used < errlen; i++)
            used += snprintf(err + used, errlen - (size_t)used, "%s %s", i ? "," : "",
                             models[i].name);
        if (used >= 0 && (size_t)used < errlen)
            snprintf(err + used, errlen - (size_t)used, ")");
    }
    return NULL;
}

int param_model_prepare(const param_model *model, param_model_options *options, char *err,
                        size_t errlen)
{
    if (options->length < 0)
        return param_fail(err, errlen, "--length: expected a positive integer, got %lld",
                    (long long)options->length);
    if (options->length == 0)
        options->length = model->default_length;
    return model->check(options, err, errlen);
}

/* "p1, p2" into buf, for error messages. */
static void list_params(const param_model *model, char *buf, size_t buflen)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int j = 0; j < model->nparams && used < buflen; j++) {
        int n = snprintf(buf + used, buflen - used, "%s%s", j ? ", " : "", model->params[j].name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

int param_model_bind(const param_model *model, const param_grid *grid, int *source, char *err,
                     size_t errlen)
{
    char names[256];
    list_params(model, names, sizeof names);
    for (int k = 0; k < grid->nparams; k++) {
        int found = 0;
        for (int j = 0; j < model->nparams; j++)
            found |= strcmp(grid->axes[k].name, model->params[j].name) == 0;
        if (!found)
            return param_fail(err, errlen, "--param: model '%s' has no parameter '%s' (parameters: %s)",
                        model->name, grid->axes[k].name, names);
    }
    for (int j = 0; j < model->nparams; j++) {
        source[j] = param_grid_find(grid, model->params[j].name);
        if (source[j] < 0 && model->params[j].required)
            return param_fail(err, errlen, "--model: '%s' needs --param %s=... (parameters: %s)",
                        model->name, model->params[j].name, names);
    }
    return PARAM_OK;
}

void param_model_params(const param_model *model, const int *source, const double *point,
                        double *params)
{
    for (int j = 0; j < model->nparams; j++)
        params[j] = source[j] >= 0 ? point[source[j]] : model->params[j].default_value;
}
/* clang-format on */
