/*
 * mpmap_cli_fingerprint: the job named by its argv, in canonical form, so
 * --resume can refuse a run with other arguments.
 */
#include "cli_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    int rc = kit_cli_apply(prog, &check, first, value, err, errlen);
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

static void cli_append_str(cli_text *t, const char *s) { cli_append(t, s, strlen(s)); }

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
    cli_append_str(t, kit_cli_name(o, nb));
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

int mpmap_cli_fingerprint(const mpmap_option *opts, size_t nopts, int argc, char **argv, char *out,
                          size_t outlen)
{
    if (!out || outlen == 0 || (!opts && nopts) || argc < 0 || (!argv && argc > 0))
        return MPMAP_EINVAL;
    out[0] = '\0';
    cli_collect c = { calloc((size_t)argc + 1, sizeof *c.items), 0 };
    if (!c.items)
        return MPMAP_ENOMEM;
    char err[256];
    int rc = kit_cli_walk("", opts, nopts, argc, argv, cli_visit_collect, &c, err, sizeof err);
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
