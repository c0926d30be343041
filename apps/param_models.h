/*
 * param_models: the built-in models of param_sweep (--model NAME).
 *
 * A model maps a parameter vector to a fixed-length record of doubles. Each
 * model declares the parameters it reads, by name and with an optional
 * default, so the grid's axes are matched by NAME, not by position:
 * param_model_bind fails when a required parameter has no --param axis and
 * when an axis names a parameter the model does not have (a typo would
 * otherwise silently sweep nothing).
 *
 *   linear  parameters p1, p2 (both required).
 *           y(ctr) = p1*ctr - p2^2 for ctr = 0..M-1, M = --length (default 100).
 *           --record vector: the M values y_0..y_{M-1} (default);
 *           --record summary: (mean, min, max, last) of those values.
 *   lorenz  parameters sigma, rho, beta (defaults 10, 28, 8/3).
 *           Lorenz-63 from (1, 1, 1), classic RK4 with step --dt (default
 *           0.01) for --length steps (default 10000); the first 1000 steps
 *           are burn-in and excluded from the statistics.
 *           Record: (mean_z, max_z, mean_x2, lyapunov) where lyapunov is the
 *           largest Lyapunov exponent by Benettin's method: a twin
 *           trajectory 1e-8 away, renormalised after every step (it aligns
 *           with the most unstable direction during the burn-in), exponent
 *           = mean log growth per unit time after the burn-in. About 0.88
 *           for the classic parameters; the Jacobian's largest eigenvalue
 *           at the origin when rho < 1. A diverging trajectory fails the
 *           point.
 *
 * Adding a model is one entry in the table in param_models.c. Pure module:
 * no MPI, no I/O, no global mutable state.
 */
#ifndef PARAM_MODELS_H
#define PARAM_MODELS_H

#include <stddef.h>
#include <stdint.h>

#include "param_grid.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the linear model stores per point. */
typedef enum param_record_kind {
    PARAM_RECORD_VECTOR = 0, /* all M values */
    PARAM_RECORD_SUMMARY     /* mean, min, max, last */
} param_record_kind;

/* Model settings from the command line; start from param_model_options_init. */
typedef struct param_model_options {
    int64_t length;           /* --length: linear M, lorenz steps; 0 = model default */
    param_record_kind record; /* --record (linear); default PARAM_RECORD_VECTOR */
    double dt;                /* --dt (lorenz); default 0.01 */
    int64_t burn_in;          /* lorenz steps left out of the statistics; default 1000 */
} param_model_options;

/* One parameter a model reads. */
typedef struct param_model_param {
    const char *name;
    int required; /* 1: needs a --param axis; 0: default_value is used */
    double default_value;
} param_model_param;

typedef struct param_model {
    const char *name;
    const char *summary; /* one line for --help */
    int nparams;
    const param_model_param *params;
    int64_t default_length;
    /* Checks the options (length, dt, ...); 0 or PARAM_EINVAL with a message. */
    int (*check)(const param_model_options *options, char *err, size_t errlen);
    /* Doubles per record for these (checked) options. */
    int64_t (*record_length)(const param_model_options *options);
    /* Name of record field i, for the output's `field` coordinate. */
    void (*field_name)(const param_model_options *options, int64_t field, char *buf, size_t buflen);
    /* params: nparams values in the order of `params`. Writes record_length
     * doubles; returns 0, or PARAM_EINVAL with a one-line message when the
     * point cannot be computed (e.g. the trajectory diverges). */
    int (*evaluate)(const double *params, const param_model_options *options, double *record,
                    char *err, size_t errlen);
} param_model;

/* Defaults: length 0 (model default), vector record, dt 0.01, burn-in 1000. */
void param_model_options_init(param_model_options *options);

/* The model called name, or NULL with "--model: unknown model 'x' (available:
 * linear, lorenz)" in err. */
const param_model *param_model_find(const char *name, char *err, size_t errlen);

/* The table, for --help: models 0..param_model_count()-1. */
int param_model_count(void);
const param_model *param_model_at(int i);

/*
 * Fills in the model's defaults (length 0 -> default_length) and checks the
 * options; returns 0 or PARAM_EINVAL with a one-line message. The table's
 * check/record_length/field_name/evaluate functions expect prepared options.
 */
int param_model_prepare(const param_model *model, param_model_options *options, char *err,
                        size_t errlen);

/*
 * Matches the grid's axes to the model's parameters: source[j] (model->nparams
 * entries) becomes the grid axis of parameter j, or -1 when it takes its
 * default. Fails with PARAM_EINVAL when a required parameter has no axis or
 * an axis is not a parameter of the model.
 */
int param_model_bind(const param_model *model, const param_grid *grid, int *source, char *err,
                     size_t errlen);

/* The model's parameter vector (model->nparams values) for a grid point
 * (grid->nparams values, from param_grid_point) under a binding. */
void param_model_params(const param_model *model, const int *source, const double *point,
                        double *params);

/* One classic RK4 step of Lorenz-63, in place. */
void lorenz_rk4_step(double state[3], double sigma, double rho, double beta, double dt);

#ifdef __cplusplus
}
#endif

#endif /* PARAM_MODELS_H */
