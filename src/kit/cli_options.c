/*
 * What an option-table entry says: its printed name, its value placeholder,
 * its bounds and how to phrase them in help and errors; and the lookups by
 * long and short name.
 */
#include "cli_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Which bounds an option has; min == max means none. */
void kit_cli_bounds(const mpmap_option *o, int *has_lo, int *has_hi)
{
    int any = o->min != o->max;
    *has_lo = any && isfinite(o->min);
    *has_hi = any && isfinite(o->max);
}

int kit_cli_double_in_bounds(const mpmap_option *o, double v)
{
    int has_lo, has_hi;
    kit_cli_bounds(o, &has_lo, &has_hi);
    if (has_lo && ((o->flags & MPMAP_OPT_EXCLUSIVE_MIN) ? !(v > o->min) : !(v >= o->min)))
        return 0;
    if (has_hi && ((o->flags & MPMAP_OPT_EXCLUSIVE_MAX) ? !(v < o->max) : !(v <= o->max)))
        return 0;
    return 1;
}

/* The bounds as int64 limits [*lo, *hi]; exclusive and fractional bounds
 * are rounded inwards. Returns 0 when no integer satisfies them. */
int kit_cli_int_limits(const mpmap_option *o, int64_t *lo, int64_t *hi)
{
    int has_lo, has_hi;
    kit_cli_bounds(o, &has_lo, &has_hi);
    *lo = INT64_MIN;
    *hi = INT64_MAX;
    if (has_lo) {
        double m = (o->flags & MPMAP_OPT_EXCLUSIVE_MIN) ? floor(o->min) + 1.0 : ceil(o->min);
        if (m >= 0x1p63)
            return 0;
        if (m > -0x1p63)
            *lo = (int64_t)m;
    }
    if (has_hi) {
        double m = (o->flags & MPMAP_OPT_EXCLUSIVE_MAX) ? ceil(o->max) - 1.0 : floor(o->max);
        if (m < -0x1p63)
            return 0;
        if (m < 0x1p63)
            *hi = (int64_t)m;
    }
    return *lo <= *hi;
}

/* "a positive integer", "an integer >= 0", "an integer from 1 to 64"... */
void kit_cli_int_phrase(const mpmap_option *o, char *buf, size_t n)
{
    int64_t lo, hi;
    kit_cli_int_limits(o, &lo, &hi);
    if (lo == INT64_MIN && hi == INT64_MAX)
        snprintf(buf, n, "an integer");
    else if (hi == INT64_MAX && lo == 1)
        snprintf(buf, n, "a positive integer");
    else if (hi == INT64_MAX)
        snprintf(buf, n, "an integer >= %" PRId64, lo);
    else if (lo == INT64_MIN)
        snprintf(buf, n, "an integer <= %" PRId64, hi);
    else
        snprintf(buf, n, "an integer from %" PRId64 " to %" PRId64, lo, hi);
}

/* "NOUN", "NOUN >= 0", "NOUN > 0", "NOUN in (0, 1]"... */
void kit_cli_double_phrase(const mpmap_option *o, const char *noun, char *buf, size_t n)
{
    int has_lo, has_hi;
    kit_cli_bounds(o, &has_lo, &has_hi);
    int xlo = (o->flags & MPMAP_OPT_EXCLUSIVE_MIN) != 0;
    int xhi = (o->flags & MPMAP_OPT_EXCLUSIVE_MAX) != 0;
    if (has_lo && has_hi)
        snprintf(buf, n, "%s in %c%g, %g%c", noun, xlo ? '(' : '[', o->min, o->max,
                 xhi ? ')' : ']');
    else if (has_lo)
        snprintf(buf, n, "%s %s %g", noun, xlo ? ">" : ">=", o->min);
    else if (has_hi)
        snprintf(buf, n, "%s %s %g", noun, xhi ? "<" : "<=", o->max);
    else
        snprintf(buf, n, "%s", noun);
}

/* ------------------------------------------------------------------------
 * Option table helpers
 */

const char *kit_cli_name(const mpmap_option *o, char buf[4])
{
    if (o->name)
        return o->name;
    buf[0] = '-';
    buf[1] = o->short_name;
    buf[2] = '\0';
    return buf;
}

const mpmap_option *kit_cli_find_long(const mpmap_option *opts, size_t nopts, const char *word,
                                      size_t len)
{
    for (size_t i = 0; i < nopts; i++)
        if (opts[i].name && strlen(opts[i].name) == len && memcmp(opts[i].name, word, len) == 0)
            return &opts[i];
    return NULL;
}

const mpmap_option *kit_cli_find_short(const mpmap_option *opts, size_t nopts, char c)
{
    for (size_t i = 0; i < nopts; i++)
        if (opts[i].short_name != 0 && opts[i].short_name == c)
            return &opts[i];
    return NULL;
}

/* "a", "a or b", "a, b or c". */
void kit_cli_choice_list(const char *const *choices, char *buf, size_t n)
{
    size_t count = 0;
    while (choices && choices[count])
        count++;
    buf[0] = '\0';
    if (count == 0) {
        snprintf(buf, n, "no value is accepted");
        return;
    }
    size_t used = 0;
    for (size_t i = 0; i < count && used < n; i++) {
        const char *sep = i == 0 ? "" : (i + 1 == count ? " or " : ", ");
        int w = snprintf(buf + used, n - used, "%s%s", sep, choices[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* The placeholder shown for an option's value in --help and errors. */
const char *kit_cli_metavar(const mpmap_option *o, char *buf, size_t n)
{
    if (o->metavar)
        return o->metavar;
    switch (o->kind) {
    case MPMAP_OPT_FLAG: return "";
    case MPMAP_OPT_INT64: return "N";
    case MPMAP_OPT_DOUBLE: return "X";
    case MPMAP_OPT_RANGE: return "START:STOP:COUNT";
    case MPMAP_OPT_DOUBLE_LIST: return "X1,X2,...";
    case MPMAP_OPT_CHOICE:
    case MPMAP_OPT_CHOICE_NAME: {
        size_t used = 0;
        buf[0] = '\0';
        for (size_t i = 0; o->choices && o->choices[i] && used < n; i++) {
            int w = snprintf(buf + used, n - used, "%s%s", i ? "|" : "", o->choices[i]);
            if (w < 0)
                break;
            used += (size_t)w;
        }
        return buf;
    }
    case MPMAP_OPT_STRING:
    case MPMAP_OPT_STRING_LIST: return "TEXT";
    case MPMAP_OPT_CUSTOM: return "VALUE";
    }
    return "VALUE";
}
