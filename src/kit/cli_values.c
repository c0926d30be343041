/*
 * Strict value parsers of the command-line module: int64 and double with
 * no silent rounding or overflow, START:STOP:COUNT ranges, comma lists; and
 * the one-line message helpers every part of the module uses.
 */
#include "cli_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Formats an error message, kept to one line whatever the input held. */
__attribute__((format(printf, 3, 4))) void kit_cli_error(char *err, size_t errlen, const char *fmt,
                                                         ...)
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
const char *kit_cli_show(const char *s, char buf[KIT_CLI_SHOW_MAX + 4])
{
    size_t n = 0;
    for (; s[n] && n < KIT_CLI_SHOW_MAX; n++) {
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

static int cli_is_digit(char c) { return c >= '0' && c <= '9'; }

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
