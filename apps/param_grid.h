/*
 * param_grid: the N-dimensional parameter grid of param_sweep.
 *
 * Each repeatable `--param` flag adds one axis:
 *
 *     --param NAME=START:STOP:COUNT   COUNT evenly spaced values,
 *                                     value i = START + i*(STOP-START)/(COUNT-1),
 *                                     the last one exactly STOP. COUNT = 1 is
 *                                     only accepted with START == STOP (a
 *                                     range whose STOP would be ignored is
 *                                     almost certainly a typo); use NAME=v to
 *                                     fix a parameter at one value.
 *     --param NAME=v1,v2,...          explicit values in the given order
 *                                     (NAME=v is a one-value axis).
 *
 * Numbers are parsed strictly: finite decimal (or C hexadecimal) floating
 * point only, so "1x", "nan", "inf" and "" are rejected. Blanks around a
 * number are allowed. NAME matches [A-Za-z_][A-Za-z0-9_]*, is at most
 * PARAM_NAME_MAX - 1 characters, is unique in the grid and is not one of the
 * output file's own dataset names (result, status, trace, field).
 *
 * The grid is the cartesian product of the axes with the first axis varying
 * slowest (C order): task t <-> multi-index (i_1, ..., i_k) with
 * t = ((i_1 * n_2 + i_2) * n_3 + i_3) ... . A grid with no axes has one point
 * (the empty product), so a model can be run once at its default parameters.
 *
 * Range axes are not materialised (a 2^40-point axis costs nothing);
 * param_axis_value computes any value on demand. Pure module: no MPI, no I/O,
 * no global state.
 */
#ifndef PARAM_GRID_H
#define PARAM_GRID_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest parameter name plus its terminating NUL. */
#define PARAM_NAME_MAX 64

/* Upper bound on the number of grid points (2^40): beyond it the task index
 * space, the output datasets and the run time stop being sensible. */
#define PARAM_GRID_MAX_POINTS ((int64_t)1 << 40)

/* Upper bound on the number of axes. */
#define PARAM_GRID_MAX_PARAMS 64

/* Return codes; the values match MPMAP_EINVAL and MPMAP_ENOMEM. */
enum { PARAM_OK = 0, PARAM_EINVAL = -1, PARAM_ENOMEM = -2 };

typedef enum param_axis_kind {
    PARAM_AXIS_RANGE = 0, /* NAME=START:STOP:COUNT */
    PARAM_AXIS_LIST       /* NAME=v1,v2,... */
} param_axis_kind;

typedef struct param_axis {
    char name[PARAM_NAME_MAX];
    param_axis_kind kind;
    int64_t count;  /* number of values, >= 1 */
    double start;   /* RANGE: first value; LIST: values[0] */
    double stop;    /* RANGE: last value; LIST: values[count - 1] */
    double *values; /* LIST only: count values, owned by the grid; NULL for RANGE */
} param_axis;

typedef struct param_grid {
    int nparams;      /* number of axes, in --param order */
    param_axis *axes; /* nparams axes, owned by the grid */
    int64_t npoints;  /* product of the axis counts; 1 when nparams == 0 */
} param_grid;

/* An empty grid (no axes, one point). */
void param_grid_init(param_grid *grid);

/*
 * Parses one --param value ("NAME=...") and appends its axis. Returns
 * PARAM_OK, or PARAM_EINVAL / PARAM_ENOMEM with a one-line message in err
 * (naming the flag and the offending text) and the grid unchanged.
 */
int param_grid_add(param_grid *grid, const char *spec, char *err, size_t errlen);

/* Value i (0 <= i < axis->count) of an axis. */
double param_axis_value(const param_axis *axis, int64_t i);

/* Multi-index of point t (0 <= t < npoints): index[k] for axis k. */
void param_grid_index(const param_grid *grid, int64_t t, int64_t *index);

/* Parameter values of point t (0 <= t < npoints): values[k] for axis k. */
void param_grid_point(const param_grid *grid, int64_t t, double *values);

/* Position of the axis called name, or -1. */
int param_grid_find(const param_grid *grid, const char *name);

/* Frees the axes; the grid is empty (as after param_grid_init) afterwards. */
void param_grid_free(param_grid *grid);

/*
 * Strict number parsing shared by the grid and the app's other numeric
 * flags: the whole of text (blanks around it allowed) must be one finite
 * double. Returns PARAM_OK or PARAM_EINVAL.
 */
int param_parse_double(const char *text, double *out);

/* Writes a printf-style one-line message to err (when err is non-NULL) and
 * returns PARAM_EINVAL, so parsers can `return param_fail(err, errlen, ...)`. */
int param_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 1 if name matches [A-Za-z_][A-Za-z0-9_]* and fits PARAM_NAME_MAX, else 0. */
int param_name_valid(const char *name);

/* 1 if name is reserved for the output file's own datasets, else 0. */
int param_name_reserved(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* PARAM_GRID_H */
