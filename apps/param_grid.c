/*
 * param_grid: parsing of --param axes and the C-order mapping between task
 * indices and grid points. See param_grid.h for the accepted syntax.
 */
#include "param_grid.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest piece of user text quoted back in an error message. */
#define QUOTE_MAX 200

static const char *const reserved_names[] = { "result", "status", "trace", "field" };

int param_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list args;
        va_start(args, fmt);
        vsnprintf(err, errlen, fmt, args);
        va_end(args);
    }
    return PARAM_EINVAL;
}

void param_grid_init(param_grid *grid)
{
    grid->nparams = 0;
    grid->axes = NULL;
    grid->npoints = 1;
}

void param_grid_free(param_grid *grid)
{
    if (!grid)
        return;
    for (int k = 0; k < grid->nparams; k++)
        free(grid->axes[k].values);
    free(grid->axes);
    param_grid_init(grid);
}

int param_name_valid(const char *name)
{
    if (!name || !(isalpha((unsigned char)name[0]) || name[0] == '_'))
        return 0;
    size_t n = 1;
    for (; name[n]; n++)
        if (!(isalnum((unsigned char)name[n]) || name[n] == '_'))
            return 0;
    return n < PARAM_NAME_MAX;
}

int param_name_reserved(const char *name)
{
    for (size_t i = 0; i < sizeof reserved_names / sizeof reserved_names[0]; i++)
        if (strcmp(name, reserved_names[i]) == 0)
            return 1;
    return 0;
}

static int is_blank(char c) { return c == ' ' || c == '\t'; }

/* Strips blanks in place; returns the start of the trimmed text. */
static char *trim(char *text)
{
    while (is_blank(*text))
        text++;
    size_t n = strlen(text);
    while (n > 0 && is_blank(text[n - 1]))
        text[--n] = '\0';
    return text;
}

int param_parse_double(const char *text, double *out)
{
    if (!text)
        return PARAM_EINVAL;
    while (is_blank(*text))
        text++;
    /* strtod would skip other white space (newlines) too: keep it strict. */
    if (*text == '\0' || isspace((unsigned char)*text))
        return PARAM_EINVAL;
    char *end = NULL;
    double value = strtod(text, &end);
    if (end == text)
        return PARAM_EINVAL;
    while (is_blank(*end))
        end++;
    if (*end != '\0')
        return PARAM_EINVAL;
    /* ERANGE also flags harmless underflow to a subnormal or zero; only an
     * overflow (or nan/inf spelled out) is an error. */
    if (!isfinite(value))
        return PARAM_EINVAL;
    *out = value;
    return PARAM_OK;
}

/* Strict non-negative integer (no sign, no exponent), blanks allowed. */
static int parse_count(const char *text, int64_t *out)
{
    while (is_blank(*text))
        text++;
    if (!isdigit((unsigned char)*text))
        return PARAM_EINVAL;
    char *end = NULL;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno == ERANGE)
        return PARAM_EINVAL;
    while (is_blank(*end))
        end++;
    if (*end != '\0')
        return PARAM_EINVAL;
    *out = (int64_t)value;
    return PARAM_OK;
}

double param_axis_value(const param_axis *axis, int64_t i)
{
    if (axis->kind == PARAM_AXIS_LIST)
        return axis->values[i];
    /* Pin the last value to STOP: the formula may miss it by an ulp. */
    if (axis->count == 1 || i == 0)
        return axis->start;
    if (i == axis->count - 1)
        return axis->stop;
    return axis->start + ((double)i * (axis->stop - axis->start)) / (double)(axis->count - 1);
}

int param_grid_find(const param_grid *grid, const char *name)
{
    for (int k = 0; k < grid->nparams; k++)
        if (strcmp(grid->axes[k].name, name) == 0)
            return k;
    return -1;
}

#define FORMAT_ERROR "--param: expected NAME=START:STOP:COUNT or NAME=v1,v2,..., got '%.*s'"

/* Fills axis->start/stop/count from "START:STOP:COUNT" (modified in place). */
static int parse_range(char *text, const char *spec, param_axis *axis, char *err, size_t errlen)
{
    char *fields[3];
    int n = 0;
    for (char *p = text;; p++) {
        if (n == 3)
            return param_fail(err, errlen, FORMAT_ERROR, QUOTE_MAX, spec);
        fields[n++] = p;
        p = strchr(p, ':');
        if (!p)
            break;
        *p = '\0';
    }
    if (n != 3)
        return param_fail(err, errlen, FORMAT_ERROR, QUOTE_MAX, spec);
    double start, stop;
    int64_t count;
    if (param_parse_double(fields[0], &start) != PARAM_OK)
        return param_fail(err, errlen,
                          "--param: invalid START '%.*s' in '%.*s' (expected a finite number)",
                          QUOTE_MAX, trim(fields[0]), QUOTE_MAX, spec);
    if (param_parse_double(fields[1], &stop) != PARAM_OK)
        return param_fail(err, errlen,
                          "--param: invalid STOP '%.*s' in '%.*s' (expected a finite number)",
                          QUOTE_MAX, trim(fields[1]), QUOTE_MAX, spec);
    if (parse_count(fields[2], &count) != PARAM_OK || count < 1 || count > PARAM_GRID_MAX_POINTS)
        return param_fail(
            err, errlen,
            "--param: invalid COUNT '%.*s' in '%.*s' (expected an integer from 1 to %lld)",
            QUOTE_MAX, trim(fields[2]), QUOTE_MAX, spec, (long long)PARAM_GRID_MAX_POINTS);
    if (!isfinite(stop - start))
        return param_fail(err, errlen, "--param: STOP - START overflows in '%.*s'", QUOTE_MAX,
                          spec);
    if (count == 1 && start != stop)
        return param_fail(
            err, errlen,
            "--param: COUNT 1 needs START == STOP in '%.*s' (use NAME=v for one value)", QUOTE_MAX,
            spec);
    axis->kind = PARAM_AXIS_RANGE;
    axis->start = start;
    axis->stop = stop;
    axis->count = count;
    axis->values = NULL;
    return PARAM_OK;
}

/* Fills axis->values/count from "v1,v2,..." (modified in place). */
static int parse_list(char *text, const char *spec, param_axis *axis, char *err, size_t errlen)
{
    int64_t count = 1;
    for (const char *p = text; *p; p++)
        count += *p == ',';
    double *values = malloc((size_t)count * sizeof *values);
    if (!values) {
        param_fail(err, errlen, "--param: out of memory for '%.*s'", QUOTE_MAX, spec);
        return PARAM_ENOMEM;
    }
    char *field = text;
    for (int64_t i = 0; i < count; i++) {
        char *comma = strchr(field, ',');
        if (comma)
            *comma = '\0';
        if (param_parse_double(field, &values[i]) != PARAM_OK) {
            free(values);
            char *shown = trim(field);
            if (*shown == '\0')
                return param_fail(err, errlen, "--param: empty value in '%.*s'", QUOTE_MAX, spec);
            return param_fail(err, errlen,
                              "--param: invalid value '%.*s' in '%.*s' (expected a finite number)",
                              QUOTE_MAX, shown, QUOTE_MAX, spec);
        }
        field = comma ? comma + 1 : field;
    }
    axis->kind = PARAM_AXIS_LIST;
    axis->count = count;
    axis->values = values;
    axis->start = values[0];
    axis->stop = values[count - 1];
    return PARAM_OK;
}

int param_grid_add(param_grid *grid, const char *spec, char *err, size_t errlen)
{
    if (err && errlen > 0)
        err[0] = '\0';
    if (!grid || !spec)
        return param_fail(err, errlen, "--param: missing value");
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || eq[1] == '\0')
        return param_fail(err, errlen, FORMAT_ERROR, QUOTE_MAX, spec);

    param_axis axis;
    memset(&axis, 0, sizeof axis);
    size_t namelen = (size_t)(eq - spec);
    if (namelen >= PARAM_NAME_MAX)
        return param_fail(err, errlen, "--param: name longer than %d characters in '%.*s'",
                          PARAM_NAME_MAX - 1, QUOTE_MAX, spec);
    memcpy(axis.name, spec, namelen);
    axis.name[namelen] = '\0';
    if (!param_name_valid(axis.name))
        return param_fail(
            err, errlen,
            "--param: invalid name '%s' in '%.*s' (names match [A-Za-z_][A-Za-z0-9_]*)", axis.name,
            QUOTE_MAX, spec);
    if (param_name_reserved(axis.name))
        return param_fail(err, errlen,
                          "--param: '%s' is reserved for an output dataset "
                          "(result, status, trace, field), got '%.*s'",
                          axis.name, QUOTE_MAX, spec);
    if (param_grid_find(grid, axis.name) >= 0)
        return param_fail(err, errlen, "--param: duplicate parameter '%s' in '%.*s'", axis.name,
                          QUOTE_MAX, spec);
    if (grid->nparams >= PARAM_GRID_MAX_PARAMS)
        return param_fail(err, errlen, "--param: more than %d parameters at '%.*s'",
                          PARAM_GRID_MAX_PARAMS, QUOTE_MAX, spec);

    char *text = malloc(strlen(eq + 1) + 1);
    if (!text) {
        param_fail(err, errlen, "--param: out of memory for '%.*s'", QUOTE_MAX, spec);
        return PARAM_ENOMEM;
    }
    strcpy(text, eq + 1);
    int rc = strchr(text, ':') ? parse_range(text, spec, &axis, err, errlen)
                               : parse_list(text, spec, &axis, err, errlen);
    free(text);
    if (rc != PARAM_OK)
        return rc;

    /* Both factors are <= 2^40, so test before multiplying. */
    if (axis.count > PARAM_GRID_MAX_POINTS / grid->npoints) {
        free(axis.values);
        return param_fail(
            err, errlen,
            "--param: grid too large: %lld x %lld points exceeds the limit of %lld at '%.*s'",
            (long long)grid->npoints, (long long)axis.count, (long long)PARAM_GRID_MAX_POINTS,
            QUOTE_MAX, spec);
    }
    param_axis *axes = realloc(grid->axes, (size_t)(grid->nparams + 1) * sizeof *axes);
    if (!axes) {
        free(axis.values);
        param_fail(err, errlen, "--param: out of memory for '%.*s'", QUOTE_MAX, spec);
        return PARAM_ENOMEM;
    }
    axes[grid->nparams] = axis;
    grid->axes = axes;
    grid->nparams++;
    grid->npoints *= axis.count;
    return PARAM_OK;
}

void param_grid_index(const param_grid *grid, int64_t t, int64_t *index)
{
    /* C order: the last axis varies fastest. */
    for (int k = grid->nparams - 1; k >= 0; k--) {
        int64_t n = grid->axes[k].count;
        index[k] = t % n;
        t /= n;
    }
}

void param_grid_point(const param_grid *grid, int64_t t, double *values)
{
    for (int k = grid->nparams - 1; k >= 0; k--) {
        const param_axis *axis = &grid->axes[k];
        values[k] = param_axis_value(axis, t % axis->count);
        t /= axis->count;
    }
}
