/*
 * The fingerprint of a run from its parsed options: what --resume compares
 * to tell "the same job" from "another job".
 *
 * It is built from the values the options hold after parsing — defaults
 * included — not from the command line's text, so "--widths 1:2:3" and
 * "--widths=1.0:2:3" name the same job, flag order does not matter, and a
 * default that changes between versions is noticed. Options marked
 * MPMAP_OPT_NO_FINGERPRINT (speed or output settings) are left out.
 */
#define _POSIX_C_SOURCE 200809L
#include "mpmap_cli.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct text {
    char *buf;
    size_t len, cap;
    int failed;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        t->failed = 1;
        return;
    }
    if ((size_t)n >= t->cap - t->len) {
        size_t cap = 2 * t->cap + (size_t)n + 1;
        char *grown = realloc(t->buf, cap);
        if (!grown) {
            t->failed = 1;
            return;
        }
        t->buf = grown;
        t->cap = cap;
        va_start(ap, fmt);
        vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
    }
    t->len += (size_t)n;
}

/* Strings with space, '%' and control characters as %XX, so the text
 * splits into options at its spaces. */
static void put_escaped(text *t, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c == '%' || c == 127)
            put(t, "%%%02X", c);
        else
            put(t, "%c", c);
    }
}

/* %.17g: every double prints back to the same bits. */
static void put_value(text *t, const mpmap_option *o)
{
    const void *v = o->target;
    switch (o->kind) {
    case MPMAP_OPT_FLAG: put(t, "%d", *(const int *)v); break;
    case MPMAP_OPT_INT64: put(t, "%" PRId64, *(const int64_t *)v); break;
    case MPMAP_OPT_DOUBLE: put(t, "%.17g", *(const double *)v); break;
    case MPMAP_OPT_STRING:
    case MPMAP_OPT_CHOICE_NAME: {
        const char *s = *(const char *const *)v;
        put_escaped(t, s ? s : "(none)");
        break;
    }
    case MPMAP_OPT_CHOICE: put(t, "%s", o->choices[*(const int *)v]); break;
    case MPMAP_OPT_RANGE: {
        const mpmap_cli_range *r = v;
        put(t, "%.17g:%.17g:%" PRId64, r->start, r->stop, r->count);
        break;
    }
    case MPMAP_OPT_DOUBLE_LIST: {
        const mpmap_cli_list *l = v;
        for (size_t i = 0; i < l->count; i++)
            put(t, "%s%.17g", i ? "," : "", l->values[i]);
        break;
    }
    case MPMAP_OPT_STRING_LIST: {
        const mpmap_cli_strings *l = v;
        for (size_t i = 0; i < l->count; i++) {
            put(t, "%s", i ? "|" : "");
            put_escaped(t, l->items[i]);
        }
        break;
    }
    case MPMAP_OPT_CUSTOM: /* no generic text: see mpmap_cli.h */ break;
    }
}

int mpmap_cli_fingerprint_values(const mpmap_option *opts, size_t nopts, char *out, size_t outlen)
{
    if (!out || outlen < 32 || (!opts && nopts))
        return MPMAP_EINVAL;
    text t = { malloc(256), 0, 256, 0 };
    if (!t.buf)
        return MPMAP_ENOMEM;
    t.buf[0] = '\0';
    for (size_t k = 0; k < nopts; k++) {
        const mpmap_option *o = &opts[k];
        if ((o->flags & MPMAP_OPT_NO_FINGERPRINT) || o->kind == MPMAP_OPT_CUSTOM || !o->target)
            continue;
        if (o->name)
            put(&t, "%s%s=", t.len ? " " : "", o->name);
        else
            put(&t, "%s-%c=", t.len ? " " : "", o->short_name);
        put_value(&t, o);
    }
    if (t.failed) {
        free(t.buf);
        return MPMAP_ENOMEM;
    }
    /* Too long to keep whole (thousands of --point values): a prefix that
     * still shows what differs in the common case, and a hash of all of it. */
    if (t.len < outlen) {
        memcpy(out, t.buf, t.len + 1);
    } else {
        uint64_t h = 0xcbf29ce484222325ull;
        for (size_t i = 0; i < t.len; i++)
            h = (h ^ (unsigned char)t.buf[i]) * 0x100000001b3ull;
        int tail = snprintf(NULL, 0, " ...#%016" PRIx64, h);
        size_t keep = outlen - 1 - (size_t)tail;
        memcpy(out, t.buf, keep);
        snprintf(out + keep, outlen - keep, " ...#%016" PRIx64, h);
    }
    free(t.buf);
    return MPMAP_OK;
}
