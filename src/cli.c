/*
 * Shared command-line parsing for the mpmap apps: strict value parsers, the
 * table-driven option parser, --help text, the job fingerprint used to refuse
 * --resume with other arguments, and the flags every app shares.
 *
 * Everything here is a pure function of its arguments (no global mutable
 * state, no locale changes), so every MPI rank parses argv to the same result.
 */
#include "mpmap_cli.h"
#include "schedule.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Longest part of a user's value quoted back in an error message. */
#define CLI_SHOW_MAX 64

/* ------------------------------------------------------------------------
 * Messages
 */

/* Formats an error message, kept to one line whatever the input held. */
__attribute__((format(printf, 3, 4))) static void cli_error(char *err, size_t errlen,
                                                            const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list args;
    va_start(args, fmt);
    vsnprintf(err, errlen, fmt, args);
    va_end(args);
    for (char *c = err; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
}

/* Copies a user-supplied value for quoting: control bytes become '?' so the
 * message stays one printable line, and long values are cut with "...". */
static const char *cli_show(const char *s, char buf[CLI_SHOW_MAX + 4])
{
    size_t n = 0;
    for (; s[n] && n < CLI_SHOW_MAX; n++) {
        unsigned char c = (unsigned char)s[n];
        buf[n] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (s[n]) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

static int cli_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ------------------------------------------------------------------------
 * Strict value parsers
 */

/* A decimal number split into its parts: [sign] INT [. FRAC] [e [sign] EXP]. */
typedef struct cli_decimal {
    int negative;
    const char *int_digits;
    size_t nint;
    const char *frac_digits;
    size_t nfrac;
    int64_t exponent; /* saturated to +-CLI_EXP_LIMIT */
} cli_decimal;

/* Beyond this, any non-zero value is out of range for int64 and double. */
#define CLI_EXP_LIMIT 100000

/* Returns 0 when s[0..len) is exactly one decimal number with at least one
 * mantissa digit; hex, inf, nan and spaces do not match. */
static int cli_scan_decimal(const char *s, size_t len, cli_decimal *d)
{
    size_t i = 0;
    memset(d, 0, sizeof *d);
    if (i < len && (s[i] == '+' || s[i] == '-')) {
        d->negative = s[i] == '-';
        i++;
    }
    d->int_digits = s + i;
    while (i < len && cli_is_digit(s[i]))
        i++;
    d->nint = (size_t)(s + i - d->int_digits);
    d->frac_digits = s + i;
    if (i < len && s[i] == '.') {
        i++;
        d->frac_digits = s + i;
        while (i < len && cli_is_digit(s[i]))
            i++;
        d->nfrac = (size_t)(s + i - d->frac_digits);
    }
    if (d->nint + d->nfrac == 0)
        return -1;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int negexp = 0;
        if (i < len && (s[i] == '+' || s[i] == '-')) {
            negexp = s[i] == '-';
            i++;
        }
        if (i == len || !cli_is_digit(s[i]))
            return -1;
        int64_t e = 0;
        for (; i < len && cli_is_digit(s[i]); i++)
            if (e < CLI_EXP_LIMIT)
                e = e * 10 + (s[i] - '0');
        if (e > CLI_EXP_LIMIT)
            e = CLI_EXP_LIMIT;
        d->exponent = negexp ? -e : e;
    }
    return i == len ? 0 : -1;
}

/* The k-th mantissa digit, counting integer then fraction digits. */
static char cli_mantissa_digit(const cli_decimal *d, size_t k)
{
    return k < d->nint ? d->int_digits[k] : d->frac_digits[k - d->nint];
}

/*
 * Exact integer value of a decimal, without rounding through double: the
 * significant digits M (between the first and last non-zero digit) and the
 * power of ten they are scaled by. Rejects fractions and int64 overflow.
 */
static int cli_parse_int64_n(const char *s, size_t len, int64_t *out)
{
    cli_decimal d;
    if (cli_scan_decimal(s, len, &d) != 0)
        return MPMAP_EINVAL;
    size_t ndigits = d.nint + d.nfrac;
    size_t first = 0;
    while (first < ndigits && cli_mantissa_digit(&d, first) == '0')
        first++;
    if (first == ndigits) {
        *out = 0;
        return MPMAP_OK;
    }
    size_t last = ndigits - 1;
    while (cli_mantissa_digit(&d, last) == '0')
        last--;
    /* 20 significant digits already exceed 2^63 whatever the scale, as long
     * as the value is an integer at all. */
    if (last - first + 1 > 19)
        return MPMAP_EINVAL;
    /* value = M * 10^scale with scale = exponent - nfrac + trailing zeros;
     * ndigits is bounded by the string length, far below int64 limits. */
    int64_t scale = d.exponent - (int64_t)d.nfrac + (int64_t)(ndigits - 1 - last);
    if (scale < 0)
        return MPMAP_EINVAL;
    uint64_t limit = d.negative ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
    uint64_t m = 0;
    for (size_t k = first; k <= last; k++)
        m = m * 10u + (uint64_t)(cli_mantissa_digit(&d, k) - '0');
    for (int64_t k = 0; k < scale; k++) {
        if (m > limit / 10u)
            return MPMAP_EINVAL;
        m *= 10u;
    }
    if (m > limit)
        return MPMAP_EINVAL;
    /* -(2^63) is representable only through INT64_MIN. */
    if (d.negative)
        *out = m == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)m;
    else
        *out = (int64_t)m;
    return MPMAP_OK;
}

int mpmap_parse_int64(const char *s, int64_t *out)
{
    if (!s || !out)
        return MPMAP_EINVAL;
    return cli_parse_int64_n(s, strlen(s), out);
}

/* The syntax is checked first, so strtod (which would also take hex, inf,
 * nan and leading spaces) only ever sees a plain decimal, and stops exactly
 * at len because no delimiter used here (':', ',', NUL) extends a number. */
static int cli_parse_double_n(const char *s, size_t len, double *out)
{
    cli_decimal d;
    if (cli_scan_decimal(s, len, &d) != 0)
        return MPMAP_EINVAL;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end != s + len || !isfinite(v))
        return MPMAP_EINVAL;
    *out = v;
    return MPMAP_OK;
}

int mpmap_parse_double(const char *s, double *out)
{
    if (!s || !out)
        return MPMAP_EINVAL;
    return cli_parse_double_n(s, strlen(s), out);
}

int mpmap_parse_range(const char *s, mpmap_cli_range *out)
{
    if (!s || !out)
        return MPMAP_EINVAL;
    const char *c1 = strchr(s, ':');
    const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2 || strchr(c2 + 1, ':'))
        return MPMAP_EINVAL;
    mpmap_cli_range r;
    if (cli_parse_double_n(s, (size_t)(c1 - s), &r.start) != 0 ||
        cli_parse_double_n(c1 + 1, (size_t)(c2 - c1 - 1), &r.stop) != 0 ||
        mpmap_parse_int64(c2 + 1, &r.count) != 0)
        return MPMAP_EINVAL;
    /* A finite STOP - START keeps every value of mpmap_cli_range_value finite. */
    if (r.count < 1 || !(r.start <= r.stop) || !isfinite(r.stop - r.start))
        return MPMAP_EINVAL;
    *out = r;
    return MPMAP_OK;
}

int mpmap_parse_double_list(const char *s, mpmap_cli_list *out)
{
    if (!s || !out)
        return MPMAP_EINVAL;
    size_t n = 1;
    for (const char *p = s; *p; p++)
        n += *p == ',';
    double *values = malloc(n * sizeof *values);
    if (!values)
        return MPMAP_ENOMEM;
    const char *p = s;
    for (size_t i = 0; i < n; i++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (cli_parse_double_n(p, len, &values[i]) != 0) {
            free(values);
            return MPMAP_EINVAL;
        }
        p += len + 1;
    }
    out->values = values;
    out->count = n;
    out->owned = 1;
    return MPMAP_OK;
}

void mpmap_cli_list_free(mpmap_cli_list *list)
{
    if (!list)
        return;
    if (list->owned)
        free(list->values);
    list->values = NULL;
    list->count = 0;
    list->owned = 0;
}

double mpmap_cli_range_value(const mpmap_cli_range *r, int64_t i)
{
    if (!r)
        return 0.0;
    if (r->count <= 1 || i <= 0)
        return r->start;
    if (i >= r->count - 1)
        return r->stop;
    double v = r->start + (double)i * (r->stop - r->start) / (double)(r->count - 1);
    /* Rounding can put an inner value a hair above STOP; clamping keeps the
     * sequence non-decreasing, which apps rely on for coordinates. */
    return v > r->stop ? r->stop : v;
}

/* ------------------------------------------------------------------------
 * Bounds and their description
 */

/* Which bounds an option has; min == max means none. */
static void cli_bounds(const mpmap_option *o, int *has_lo, int *has_hi)
{
    int any = o->min != o->max;
    *has_lo = any && isfinite(o->min);
    *has_hi = any && isfinite(o->max);
}

static int cli_double_in_bounds(const mpmap_option *o, double v)
{
    int has_lo, has_hi;
    cli_bounds(o, &has_lo, &has_hi);
    if (has_lo && ((o->flags & MPMAP_OPT_EXCLUSIVE_MIN) ? !(v > o->min) : !(v >= o->min)))
        return 0;
    if (has_hi && ((o->flags & MPMAP_OPT_EXCLUSIVE_MAX) ? !(v < o->max) : !(v <= o->max)))
        return 0;
    return 1;
}

/* The bounds as int64 limits [*lo, *hi]; exclusive and fractional bounds
 * are rounded inwards. Returns 0 when no integer satisfies them. */
static int cli_int_limits(const mpmap_option *o, int64_t *lo, int64_t *hi)
{
    int has_lo, has_hi;
    cli_bounds(o, &has_lo, &has_hi);
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
static void cli_int_phrase(const mpmap_option *o, char *buf, size_t n)
{
    int64_t lo, hi;
    cli_int_limits(o, &lo, &hi);
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
static void cli_double_phrase(const mpmap_option *o, const char *noun, char *buf, size_t n)
{
    int has_lo, has_hi;
    cli_bounds(o, &has_lo, &has_hi);
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

static const char *cli_name(const mpmap_option *o, char buf[4])
{
    if (o->name)
        return o->name;
    buf[0] = '-';
    buf[1] = o->short_name;
    buf[2] = '\0';
    return buf;
}

static const mpmap_option *cli_find_long(const mpmap_option *opts, size_t nopts, const char *word,
                                         size_t len)
{
    for (size_t i = 0; i < nopts; i++)
        if (opts[i].name && strlen(opts[i].name) == len && memcmp(opts[i].name, word, len) == 0)
            return &opts[i];
    return NULL;
}

static const mpmap_option *cli_find_short(const mpmap_option *opts, size_t nopts, char c)
{
    for (size_t i = 0; i < nopts; i++)
        if (opts[i].short_name != 0 && opts[i].short_name == c)
            return &opts[i];
    return NULL;
}

/* "a", "a or b", "a, b or c". */
static void cli_choice_list(const char *const *choices, char *buf, size_t n)
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
static const char *cli_metavar(const mpmap_option *o, char *buf, size_t n)
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

/* ------------------------------------------------------------------------
 * Applying one value
 */

/*
 * Parses value for option o and stores it in o->target. A NULL target only
 * validates (the fingerprint uses that). first is non-zero for the first
 * occurrence of the option on this command line.
 */
static int cli_apply(const char *prog, const mpmap_option *o, int first, const char *value,
                     char *err, size_t errlen)
{
    char nb[4], shown[CLI_SHOW_MAX + 4], what[192];
    const char *name = cli_name(o, nb);
    switch (o->kind) {
    case MPMAP_OPT_FLAG:
        if (o->target)
            *(int *)o->target = 1;
        break;
    case MPMAP_OPT_INT64: {
        int64_t v, lo, hi;
        int ok = mpmap_parse_int64(value, &v) == 0 && cli_int_limits(o, &lo, &hi) && v >= lo &&
                 v <= hi;
        if (!ok) {
            cli_int_phrase(o, what, sizeof what);
            cli_error(err, errlen, "%s: %s: expected %s, got '%s'", prog, name, what,
                      cli_show(value, shown));
            return MPMAP_EINVAL;
        }
        if (o->target)
            *(int64_t *)o->target = v;
        break;
    }
    case MPMAP_OPT_DOUBLE: {
        double v;
        if (mpmap_parse_double(value, &v) != 0 || !cli_double_in_bounds(o, v)) {
            cli_double_phrase(o, "a number", what, sizeof what);
            cli_error(err, errlen, "%s: %s: expected %s, got '%s'", prog, name, what,
                      cli_show(value, shown));
            return MPMAP_EINVAL;
        }
        if (o->target)
            *(double *)o->target = v;
        break;
    }
    case MPMAP_OPT_STRING:
        if (value[0] == '\0') {
            cli_error(err, errlen, "%s: %s: expected a non-empty value, got ''", prog, name);
            return MPMAP_EINVAL;
        }
        if (o->target)
            *(const char **)o->target = value;
        break;
    case MPMAP_OPT_CHOICE:
    case MPMAP_OPT_CHOICE_NAME: {
        size_t i = 0;
        while (o->choices && o->choices[i] && strcmp(o->choices[i], value) != 0)
            i++;
        if (!o->choices || !o->choices[i]) {
            cli_choice_list(o->choices, what, sizeof what);
            cli_error(err, errlen, "%s: %s: unknown value '%s' (expected %s)", prog, name,
                      cli_show(value, shown), what);
            return MPMAP_EINVAL;
        }
        if (o->target && o->kind == MPMAP_OPT_CHOICE)
            *(int *)o->target = (int)i;
        else if (o->target)
            *(const char **)o->target = o->choices[i];
        break;
    }
    case MPMAP_OPT_RANGE: {
        mpmap_cli_range r;
        int has_lo, has_hi;
        cli_bounds(o, &has_lo, &has_hi);
        if (mpmap_parse_range(value, &r) != 0 || !cli_double_in_bounds(o, r.start) ||
            !cli_double_in_bounds(o, r.stop)) {
            char bound[128];
            cli_double_phrase(o, "values", bound, sizeof bound);
            cli_error(err, errlen,
                      "%s: %s: expected START:STOP:COUNT with COUNT >= 1%s START <= STOP%s%s, "
                      "got '%s'",
                      prog, name, (has_lo || has_hi) ? "," : " and",
                      (has_lo || has_hi) ? " and " : "", (has_lo || has_hi) ? bound : "",
                      cli_show(value, shown));
            return MPMAP_EINVAL;
        }
        if (o->target)
            *(mpmap_cli_range *)o->target = r;
        break;
    }
    case MPMAP_OPT_DOUBLE_LIST: {
        mpmap_cli_list list = { 0 };
        int rc = mpmap_parse_double_list(value, &list);
        if (rc == MPMAP_ENOMEM) {
            cli_error(err, errlen, "%s: %s: out of memory", prog, name);
            return rc;
        }
        for (size_t i = 0; rc == 0 && i < list.count; i++)
            if (!cli_double_in_bounds(o, list.values[i]))
                rc = MPMAP_EINVAL;
        if (rc != 0) {
            mpmap_cli_list_free(&list);
            cli_double_phrase(o, "numbers", what, sizeof what);
            cli_error(err, errlen, "%s: %s: expected a comma-separated list of %s, got '%s'",
                      prog, name, what, cli_show(value, shown));
            return MPMAP_EINVAL;
        }
        if (o->target) {
            mpmap_cli_list_free(o->target);
            *(mpmap_cli_list *)o->target = list;
        } else {
            mpmap_cli_list_free(&list);
        }
        break;
    }
    case MPMAP_OPT_STRING_LIST: {
        if (value[0] == '\0') {
            cli_error(err, errlen, "%s: %s: expected a non-empty value, got ''", prog, name);
            return MPMAP_EINVAL;
        }
        mpmap_cli_strings *list = o->target;
        if (!list)
            break;
        /* The first occurrence replaces the default instead of adding to it. */
        if (first) {
            if (list->owned)
                free(list->items);
            list->items = NULL;
            list->count = 0;
            list->owned = 0;
        }
        const char **items = realloc(list->owned ? list->items : NULL,
                                     (list->count + 1) * sizeof *items);
        if (!items) {
            cli_error(err, errlen, "%s: %s: out of memory", prog, name);
            return MPMAP_ENOMEM;
        }
        items[list->count] = value;
        list->items = items;
        list->count++;
        list->owned = 1;
        break;
    }
    case MPMAP_OPT_CUSTOM: {
        if (!o->parse) {
            cli_error(err, errlen, "%s: %s: option has no parser", prog, name);
            return MPMAP_EINVAL;
        }
        if (!o->target)
            break; /* a custom parser's target type is unknown here */
        what[0] = '\0';
        if (o->parse(value, o->target, what, sizeof what) != 0) {
            what[sizeof what - 1] = '\0';
            cli_error(err, errlen, "%s: %s: %s, got '%s'", prog, name,
                      what[0] ? what : "invalid value", cli_show(value, shown));
            return MPMAP_EINVAL;
        }
        break;
    }
    default:
        cli_error(err, errlen, "%s: %s: option of unknown kind", prog, name);
        return MPMAP_EINVAL;
    }
    if (o->seen)
        *o->seen = 1;
    return MPMAP_OK;
}

/* ------------------------------------------------------------------------
 * Walking argv
 */

/* Called for every option occurrence, in argv order. */
typedef int (*cli_visit_fn)(void *ctx, const char *prog, const mpmap_option *o, int first,
                            const char *value, char *err, size_t errlen);

/*
 * Splits argv into option occurrences and hands each to visit. After the
 * first error it keeps walking (skipping values the same way) only to find
 * --help or --version, which take precedence: a user who asks for help gets
 * it even on a line with mistakes. Returns 0, MPMAP_CLI_HELP,
 * MPMAP_CLI_VERSION or the first error.
 */
static int cli_walk(const char *prog, const mpmap_option *opts, size_t nopts, int argc,
                    char **argv, cli_visit_fn visit, void *ctx, char *err, size_t errlen)
{
    unsigned char *given = calloc(nopts ? nopts : 1, 1);
    if (!given) {
        cli_error(err, errlen, "%s: out of memory", prog);
        return MPMAP_ENOMEM;
    }
    int rc = MPMAP_OK, special = 0, ended = 0;
    char nb[4], shown[CLI_SHOW_MAX + 4], mv[128];
    for (int i = 1; i < argc && argv[i]; i++) {
        const char *word = argv[i];
        if (ended) {
            if (rc == 0)
                rc = MPMAP_EINVAL, cli_error(err, errlen,
                                             "%s: unexpected argument '%s' (see --help)", prog,
                                             cli_show(word, shown));
            continue;
        }
        if (strcmp(word, "--") == 0) {
            ended = 1;
            continue;
        }
        if (strcmp(word, "--help") == 0 || strcmp(word, "-h") == 0) {
            special = special ? special : MPMAP_CLI_HELP;
            continue;
        }
        if (strcmp(word, "--version") == 0) {
            special = special ? special : MPMAP_CLI_VERSION;
            continue;
        }
        const mpmap_option *o = NULL;
        const char *value = NULL;
        if (word[0] == '-' && word[1] == '-') {
            const char *eq = strchr(word, '=');
            size_t len = eq ? (size_t)(eq - word) : strlen(word);
            o = cli_find_long(opts, nopts, word, len);
            if (!o) {
                if (rc == 0) {
                    rc = MPMAP_EINVAL;
                    if ((len == 6 && memcmp(word, "--help", 6) == 0) ||
                        (len == 9 && memcmp(word, "--version", 9) == 0))
                        cli_error(err, errlen, "%s: %.*s: does not take a value", prog,
                                  (int)len, word);
                    else
                        cli_error(err, errlen, "%s: unknown option '%.*s' (see --help)", prog,
                                  (int)(len > CLI_SHOW_MAX ? CLI_SHOW_MAX : len),
                                  cli_show(word, shown));
                }
                continue;
            }
            if (eq)
                value = eq + 1;
        } else if (word[0] == '-' && word[1] != '\0') {
            o = word[2] == '\0' ? cli_find_short(opts, nopts, word[1]) : NULL;
            if (!o) {
                if (rc == 0)
                    rc = MPMAP_EINVAL, cli_error(err, errlen,
                                                 "%s: unknown option '%s' (see --help)", prog,
                                                 cli_show(word, shown));
                continue;
            }
        } else {
            if (rc == 0)
                rc = MPMAP_EINVAL, cli_error(err, errlen,
                                             "%s: unexpected argument '%s' (see --help)", prog,
                                             cli_show(word, shown));
            continue;
        }

        const char *name = cli_name(o, nb);
        if (o->kind == MPMAP_OPT_FLAG) {
            if (value) {
                if (rc == 0)
                    rc = MPMAP_EINVAL, cli_error(err, errlen,
                                                 "%s: %s: does not take a value, got '%s'",
                                                 prog, name, cli_show(value, shown));
                continue;
            }
        } else if (!value) {
            const char *next = i + 1 < argc ? argv[i + 1] : NULL;
            if (!next) {
                if (rc == 0)
                    rc = MPMAP_EINVAL,
                    cli_error(err, errlen, "%s: %s: missing value %s at the end of the arguments",
                              prog, name, cli_metavar(o, mv, sizeof mv));
                continue;
            }
            /* "--samples --widths 1:2:3" forgot the value; do not eat the
             * next option as one. */
            if (next[0] == '-' && next[1] == '-') {
                if (rc == 0)
                    rc = MPMAP_EINVAL,
                    cli_error(err, errlen, "%s: %s: missing value %s before '%s'", prog, name,
                              cli_metavar(o, mv, sizeof mv), cli_show(next, shown));
                continue;
            }
            value = next;
            i++;
        }
        if (rc != 0)
            continue;
        size_t index = (size_t)(o - opts);
        if (given[index] && o->kind != MPMAP_OPT_STRING_LIST) {
            rc = MPMAP_EINVAL;
            cli_error(err, errlen, "%s: %s: given twice (give each option once)", prog, name);
            continue;
        }
        int first = !given[index];
        given[index] = 1;
        rc = visit(ctx, prog, o, first, value, err, errlen);
    }
    if (special) {
        rc = special;
        if (err && errlen)
            err[0] = '\0';
    } else if (rc == 0) {
        for (size_t k = 0; k < nopts; k++) {
            if ((opts[k].flags & MPMAP_OPT_REQUIRED) && !given[k]) {
                rc = MPMAP_EINVAL;
                cli_error(err, errlen, "%s: missing required option %s (see --help)", prog,
                          cli_name(&opts[k], nb));
                break;
            }
        }
    }
    free(given);
    return rc;
}

static int cli_visit_apply(void *ctx, const char *prog, const mpmap_option *o, int first,
                           const char *value, char *err, size_t errlen)
{
    (void)ctx;
    return cli_apply(prog, o, first, value, err, errlen);
}

int mpmap_cli_parse(const char *prog, const mpmap_option *opts, size_t nopts, int argc,
                    char **argv, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!prog)
        prog = "mpmap";
    if ((!opts && nopts) || argc < 0 || (!argv && argc > 0)) {
        cli_error(err, errlen, "%s: invalid call to the command-line parser", prog);
        return MPMAP_EINVAL;
    }
    return cli_walk(prog, opts, nopts, argc, argv, cli_visit_apply, NULL, err, errlen);
}

void mpmap_cli_free(const mpmap_option *opts, size_t nopts)
{
    for (size_t i = 0; opts && i < nopts; i++) {
        if (!opts[i].target)
            continue;
        if (opts[i].kind == MPMAP_OPT_DOUBLE_LIST) {
            mpmap_cli_list_free(opts[i].target);
        } else if (opts[i].kind == MPMAP_OPT_STRING_LIST) {
            mpmap_cli_strings *list = opts[i].target;
            if (list->owned)
                free(list->items);
            list->items = NULL;
            list->count = 0;
            list->owned = 0;
        }
    }
}

/* ------------------------------------------------------------------------
 * Help and version
 */

/* Options longer than this get their help text on the next line. */
#define CLI_HELP_COLUMN 30

static void cli_help_left(const mpmap_option *o, char *buf, size_t n)
{
    char mv[128], nb[4];
    const char *metavar = cli_metavar(o, mv, sizeof mv);
    const char *name = o->name ? o->name : "";
    if (o->short_name && o->name)
        snprintf(buf, n, "  -%c, %s%s%s", o->short_name, name, *metavar ? " " : "", metavar);
    else if (o->name)
        snprintf(buf, n, "      %s%s%s", name, *metavar ? " " : "", metavar);
    else
        snprintf(buf, n, "  %s%s%s", cli_name(o, nb), *metavar ? " " : "", metavar);
}

static void cli_help_line(FILE *out, const char *left, int width, const char *help,
                          const char *extra, const char *default_text)
{
    int len = (int)strlen(left);
    if (len > width)
        fprintf(out, "%s\n%*s", left, width + 2, "");
    else
        fprintf(out, "%-*s", width + 2, left);
    fprintf(out, "%s", help ? help : "");
    if (extra)
        fprintf(out, "%s%s", help ? " " : "", extra);
    if (default_text)
        fprintf(out, " (default: %s)", default_text);
    fputc('\n', out);
}

void mpmap_cli_help(FILE *out, const char *prog, const char *summary, const mpmap_option *opts,
                    size_t nopts)
{
    if (!out)
        return;
    char left[256];
    int width = (int)strlen("  -h, --help");
    for (size_t i = 0; opts && i < nopts; i++) {
        cli_help_left(&opts[i], left, sizeof left);
        int len = (int)strlen(left);
        if (len <= CLI_HELP_COLUMN && len > width)
            width = len;
    }
    fprintf(out, "Usage: %s [options]\n", prog ? prog : "mpmap");
    if (summary)
        fprintf(out, "%s\n", summary);
    fprintf(out, "\nOptions:\n");
    for (size_t i = 0; opts && i < nopts; i++) {
        const mpmap_option *o = &opts[i];
        const char *extra = (o->flags & MPMAP_OPT_REQUIRED) ? "(required)"
                            : o->kind == MPMAP_OPT_STRING_LIST ? "(repeatable)"
                                                               : NULL;
        cli_help_left(o, left, sizeof left);
        cli_help_line(out, left, width, o->help, extra, o->default_text);
    }
    cli_help_line(out, "  -h, --help", width, "print this help and exit", NULL, NULL);
    cli_help_line(out, "      --version", width, "print the version and exit", NULL, NULL);
}

void mpmap_cli_version(FILE *out, const char *prog)
{
    if (out)
        fprintf(out, "%s (mpmap %s)\n", prog ? prog : "mpmap", MPMAP_VERSION_STRING);
}

/* ------------------------------------------------------------------------
 * Fingerprint
 */

typedef struct cli_occurrence {
    const mpmap_option *option;
    const char *value;
} cli_occurrence;

typedef struct cli_collect {
    cli_occurrence *items;
    size_t count;
} cli_collect;

/* Validates like the parser (without writing targets) and remembers the
 * occurrence for cli_fingerprint_text. */
static int cli_visit_collect(void *ctx, const char *prog, const mpmap_option *o, int first,
                             const char *value, char *err, size_t errlen)
{
    cli_collect *c = ctx;
    mpmap_option check = *o;
    check.target = NULL;
    check.seen = NULL;
    int rc = cli_apply(prog, &check, first, value, err, errlen);
    if (rc != 0)
        return rc;
    c->items[c->count].option = o;
    c->items[c->count].value = value;
    c->count++;
    return MPMAP_OK;
}

/* A bounded string builder that notices when the text does not fit. */
typedef struct cli_text {
    char *buf;
    size_t cap;
    size_t len;
    int overflow;
} cli_text;

static void cli_append(cli_text *t, const char *s, size_t n)
{
    if (t->overflow || n >= t->cap - t->len) {
        t->overflow = 1;
        return;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static void cli_append_str(cli_text *t, const char *s)
{
    cli_append(t, s, strlen(s));
}

/* %.17g names the exact double; -0 is folded into 0 so both spellings of
 * zero give the same fingerprint. */
static void cli_append_double(cli_text *t, double v)
{
    char num[40];
    snprintf(num, sizeof num, "%.17g", v == 0.0 ? 0.0 : v);
    cli_append_str(t, num);
}

/* Free text with the separators of the fingerprint escaped, so distinct
 * command lines never give the same text. */
static void cli_append_escaped(cli_text *t, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c == 0x7f || c == '%') {
            char hex[4];
            snprintf(hex, sizeof hex, "%%%02X", c);
            cli_append(t, hex, 3);
        } else {
            cli_append(t, s, 1);
        }
    }
}

/* The canonical "--name=value" of one validated occurrence. */
static int cli_append_occurrence(cli_text *t, const cli_occurrence *occ)
{
    const mpmap_option *o = occ->option;
    char nb[4];
    cli_append_str(t, cli_name(o, nb));
    if (o->kind == MPMAP_OPT_FLAG)
        return MPMAP_OK;
    cli_append_str(t, "=");
    switch (o->kind) {
    case MPMAP_OPT_INT64: {
        int64_t v = 0;
        if (mpmap_parse_int64(occ->value, &v) != 0)
            return MPMAP_EINVAL;
        char num[24];
        snprintf(num, sizeof num, "%" PRId64, v);
        cli_append_str(t, num);
        break;
    }
    case MPMAP_OPT_DOUBLE: {
        double v = 0;
        if (mpmap_parse_double(occ->value, &v) != 0)
            return MPMAP_EINVAL;
        cli_append_double(t, v);
        break;
    }
    case MPMAP_OPT_RANGE: {
        mpmap_cli_range r;
        if (mpmap_parse_range(occ->value, &r) != 0)
            return MPMAP_EINVAL;
        char num[24];
        cli_append_double(t, r.start);
        cli_append_str(t, ":");
        cli_append_double(t, r.stop);
        snprintf(num, sizeof num, ":%" PRId64, r.count);
        cli_append_str(t, num);
        break;
    }
    case MPMAP_OPT_DOUBLE_LIST: {
        mpmap_cli_list list = { 0 };
        int rc = mpmap_parse_double_list(occ->value, &list);
        if (rc != 0)
            return rc;
        for (size_t i = 0; i < list.count; i++) {
            if (i)
                cli_append_str(t, ",");
            cli_append_double(t, list.values[i]);
        }
        mpmap_cli_list_free(&list);
        break;
    }
    default: /* choices are canonical already; text kinds are kept as given */
        cli_append_escaped(t, occ->value);
        break;
    }
    return MPMAP_OK;
}

int mpmap_cli_fingerprint(const mpmap_option *opts, size_t nopts, int argc, char **argv,
                          char *out, size_t outlen)
{
    if (!out || outlen == 0 || (!opts && nopts) || argc < 0 || (!argv && argc > 0))
        return MPMAP_EINVAL;
    out[0] = '\0';
    cli_collect c = { calloc((size_t)argc + 1, sizeof *c.items), 0 };
    if (!c.items)
        return MPMAP_ENOMEM;
    char err[256];
    int rc = cli_walk("", opts, nopts, argc, argv, cli_visit_collect, &c, err, sizeof err);
    if (rc > 0)
        rc = MPMAP_EINVAL; /* --help or --version: not a run to name */
    cli_text t = { out, outlen, 0, 0 };
    /* Table order, so reordering flags on the command line changes nothing. */
    for (size_t k = 0; rc == 0 && k < nopts; k++) {
        if (opts[k].flags & MPMAP_OPT_NO_FINGERPRINT)
            continue;
        for (size_t j = 0; rc == 0 && j < c.count; j++) {
            if (c.items[j].option != &opts[k])
                continue;
            if (t.len > 0)
                cli_append_str(&t, " ");
            rc = cli_append_occurrence(&t, &c.items[j]);
        }
    }
    free(c.items);
    if (rc == 0 && t.overflow)
        rc = MPMAP_EINVAL;
    if (rc != 0)
        out[0] = '\0';
    return rc;
}

/* ------------------------------------------------------------------------
 * Flags every app shares
 */

static const char *const cli_on_error_choices[] = { "stop", "continue", NULL };

void mpmap_cli_common_init(mpmap_cli_common *common)
{
    if (!common)
        return;
    memset(common, 0, sizeof *common);
    common->schedule_name = "guided";
    common->chunk = 1;
    common->output = NULL;
    common->on_error = "stop";
    common->progress_interval = 1.0;
}

int mpmap_cli_common_options(mpmap_cli_common *common, mpmap_option *out, size_t cap)
{
    if (!common || !out || cap < MPMAP_CLI_COMMON_COUNT)
        return MPMAP_EINVAL;
    /* The defaults shown by --help are the values in *common now, so an app
     * that changes a default before building its table shows the right one. */
    snprintf(common->chunk_default, sizeof common->chunk_default, "%" PRId64, common->chunk);
    snprintf(common->interval_default, sizeof common->interval_default, "%g",
             common->progress_interval);
    const mpmap_option table[MPMAP_CLI_COMMON_COUNT] = {
        { .name = "--schedule", .kind = MPMAP_OPT_CHOICE_NAME, .target = &common->schedule_name,
          .help = "how tasks are handed out",
          .default_text = common->schedule_name, .choices = mpmap__schedule_names(),
          .flags = MPMAP_OPT_NO_FINGERPRINT },
        { .name = "--chunk", .kind = MPMAP_OPT_INT64, .target = &common->chunk, .metavar = "N",
          .help = "smallest chunk of tasks (fixed chunk for dynamic)",
          .default_text = common->chunk_default, .min = 1, .max = INFINITY,
          .flags = MPMAP_OPT_NO_FINGERPRINT },
        { .name = "--output", .kind = MPMAP_OPT_STRING,
          .target = &common->output, .metavar = "FILE", .help = "HDF5 file to write",
          .default_text = common->output, .flags = MPMAP_OPT_NO_FINGERPRINT },
        { .name = "--force", .kind = MPMAP_OPT_FLAG, .target = &common->force,
          .help = "overwrite an existing output file", .flags = MPMAP_OPT_NO_FINGERPRINT },
        { .name = "--resume", .kind = MPMAP_OPT_FLAG, .target = &common->resume,
          .help = "continue an interrupted run from its checkpoint (same arguments)",
          .flags = MPMAP_OPT_NO_FINGERPRINT },
        { .name = "--quiet", .kind = MPMAP_OPT_FLAG,
          .target = &common->quiet, .help = "print no progress lines",
          .flags = MPMAP_OPT_NO_FINGERPRINT },
        { .name = "--on-error", .kind = MPMAP_OPT_CHOICE_NAME, .target = &common->on_error,
          .metavar = "stop|continue",
          .help = "when a task fails: stop the run, or record it and go on",
          .default_text = common->on_error, .choices = cli_on_error_choices },
        { .name = "--progress-interval", .kind = MPMAP_OPT_DOUBLE,
          .target = &common->progress_interval, .metavar = "SECONDS",
          .help = "seconds between progress lines", .default_text = common->interval_default,
          .min = 0, .max = INFINITY,
          .flags = MPMAP_OPT_EXCLUSIVE_MIN | MPMAP_OPT_NO_FINGERPRINT },
    };
    memcpy(out, table, sizeof table);
    return MPMAP_CLI_COMMON_COUNT;
}

int mpmap_cli_common_apply(const char *prog, const mpmap_cli_common *common,
                           mpmap_config *config, char *err, size_t errlen)
{
    char shown[CLI_SHOW_MAX + 4];
    if (!prog)
        prog = "mpmap";
    if (err && errlen)
        err[0] = '\0';
    if (!common || !config) {
        cli_error(err, errlen, "%s: invalid call to mpmap_cli_common_apply", prog);
        return MPMAP_EINVAL;
    }
    if (common->force && common->resume) {
        cli_error(err, errlen,
                  "%s: --force and --resume cannot be used together (--force starts over, "
                  "--resume continues)",
                  prog);
        return MPMAP_EINVAL;
    }
    mpmap_schedule schedule;
    if (mpmap_schedule_from_name(common->schedule_name, &schedule) != 0) {
        char expected[192];
        cli_choice_list(mpmap__schedule_names(), expected, sizeof expected);
        cli_error(err, errlen, "%s: --schedule: unknown value '%s' (expected %s)", prog,
                  common->schedule_name ? cli_show(common->schedule_name, shown) : "", expected);
        return MPMAP_EINVAL;
    }
    mpmap_on_error on_error;
    if (common->on_error && strcmp(common->on_error, "stop") == 0) {
        on_error = MPMAP_ON_ERROR_STOP;
    } else if (common->on_error && strcmp(common->on_error, "continue") == 0) {
        on_error = MPMAP_ON_ERROR_CONTINUE;
    } else {
        cli_error(err, errlen, "%s: --on-error: unknown value '%s' (expected stop or continue)",
                  prog, common->on_error ? cli_show(common->on_error, shown) : "");
        return MPMAP_EINVAL;
    }
    if (common->chunk < 1) {
        cli_error(err, errlen, "%s: --chunk: expected a positive integer, got '%" PRId64 "'",
                  prog, common->chunk);
        return MPMAP_EINVAL;
    }
    if (!(common->progress_interval > 0) || !isfinite(common->progress_interval)) {
        cli_error(err, errlen, "%s: --progress-interval: expected a number > 0, got '%g'", prog,
                  common->progress_interval);
        return MPMAP_EINVAL;
    }
    config->schedule = schedule;
    config->chunk = common->chunk;
    config->on_error = on_error;
    config->resume = common->resume;
    config->progress_interval = common->progress_interval;
    return MPMAP_OK;
}
