/*
 * The table-driven option parser: applying one value to an option, the walk
 * over argv (shared with the fingerprint), mpmap_cli_parse and mpmap_cli_free.
 */
#include "cli_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Parses value for option o and stores it in o->target. A NULL target only
 * validates (the fingerprint uses that). first is non-zero for the first
 * occurrence of the option on this command line.
 */
int kit_cli_apply(const char *prog, const mpmap_option *o, int first, const char *value, char *err,
                  size_t errlen)
{
    char nb[4], shown[KIT_CLI_SHOW_MAX + 4], what[192];
    const char *name = kit_cli_name(o, nb);
    switch (o->kind) {
    case MPMAP_OPT_FLAG:
        if (o->target)
            *(int *)o->target = 1;
        break;
    case MPMAP_OPT_INT64: {
        int64_t v, lo, hi;
        int ok = mpmap_parse_int64(value, &v) == 0 && kit_cli_int_limits(o, &lo, &hi) && v >= lo &&
                 v <= hi;
        if (!ok) {
            kit_cli_int_phrase(o, what, sizeof what);
            kit_cli_error(err, errlen, "%s: %s: expected %s, got '%s'", prog, name, what,
                          kit_cli_show(value, shown));
            return MPMAP_EINVAL;
        }
        if (o->target)
            *(int64_t *)o->target = v;
        break;
    }
    case MPMAP_OPT_DOUBLE: {
        double v;
        if (mpmap_parse_double(value, &v) != 0 || !kit_cli_double_in_bounds(o, v)) {
            kit_cli_double_phrase(o, "a number", what, sizeof what);
            kit_cli_error(err, errlen, "%s: %s: expected %s, got '%s'", prog, name, what,
                          kit_cli_show(value, shown));
            return MPMAP_EINVAL;
        }
        if (o->target)
            *(double *)o->target = v;
        break;
    }
    case MPMAP_OPT_STRING:
        if (value[0] == '\0') {
            kit_cli_error(err, errlen, "%s: %s: expected a non-empty value, got ''", prog, name);
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
            kit_cli_choice_list(o->choices, what, sizeof what);
            kit_cli_error(err, errlen, "%s: %s: unknown value '%s' (expected %s)", prog, name,
                          kit_cli_show(value, shown), what);
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
        kit_cli_bounds(o, &has_lo, &has_hi);
        if (mpmap_parse_range(value, &r) != 0 || !kit_cli_double_in_bounds(o, r.start) ||
            !kit_cli_double_in_bounds(o, r.stop)) {
            char bound[128];
            kit_cli_double_phrase(o, "values", bound, sizeof bound);
            kit_cli_error(err, errlen,
                          "%s: %s: expected START:STOP:COUNT with COUNT >= 1%s START <= STOP%s%s, "
                          "got '%s'",
                          prog, name, (has_lo || has_hi) ? "," : " and",
                          (has_lo || has_hi) ? " and " : "", (has_lo || has_hi) ? bound : "",
                          kit_cli_show(value, shown));
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
            kit_cli_error(err, errlen, "%s: %s: out of memory", prog, name);
            return rc;
        }
        for (size_t i = 0; rc == 0 && i < list.count; i++)
            if (!kit_cli_double_in_bounds(o, list.values[i]))
                rc = MPMAP_EINVAL;
        if (rc != 0) {
            mpmap_cli_list_free(&list);
            kit_cli_double_phrase(o, "numbers", what, sizeof what);
            kit_cli_error(err, errlen, "%s: %s: expected a comma-separated list of %s, got '%s'",
                          prog, name, what, kit_cli_show(value, shown));
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
            kit_cli_error(err, errlen, "%s: %s: expected a non-empty value, got ''", prog, name);
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
        const char **items =
            realloc(list->owned ? list->items : NULL, (list->count + 1) * sizeof *items);
        if (!items) {
            kit_cli_error(err, errlen, "%s: %s: out of memory", prog, name);
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
            kit_cli_error(err, errlen, "%s: %s: option has no parser", prog, name);
            return MPMAP_EINVAL;
        }
        if (!o->target)
            break; /* a custom parser's target type is unknown here */
        what[0] = '\0';
        if (o->parse(value, o->target, what, sizeof what) != 0) {
            what[sizeof what - 1] = '\0';
            kit_cli_error(err, errlen, "%s: %s: %s, got '%s'", prog, name,
                          what[0] ? what : "invalid value", kit_cli_show(value, shown));
            return MPMAP_EINVAL;
        }
        break;
    }
    default:
        kit_cli_error(err, errlen, "%s: %s: option of unknown kind", prog, name);
        return MPMAP_EINVAL;
    }
    if (o->seen)
        *o->seen = 1;
    return MPMAP_OK;
}

/* ------------------------------------------------------------------------
 * Walking argv
 */

/*
 * Splits argv into option occurrences and hands each to visit. After the
 * first error it keeps walking (skipping values the same way) only to find
 * --help or --version, which take precedence: a user who asks for help gets
 * it even on a line with mistakes. Returns 0, MPMAP_CLI_HELP,
 * MPMAP_CLI_VERSION or the first error.
 */
int kit_cli_walk(const char *prog, const mpmap_option *opts, size_t nopts, int argc, char **argv,
                 kit_cli_visit_fn visit, void *ctx, char *err, size_t errlen)
{
    unsigned char *given = calloc(nopts ? nopts : 1, 1);
    if (!given) {
        kit_cli_error(err, errlen, "%s: out of memory", prog);
        return MPMAP_ENOMEM;
    }
    int rc = MPMAP_OK, special = 0, ended = 0;
    char nb[4], shown[KIT_CLI_SHOW_MAX + 4], mv[128];
    for (int i = 1; i < argc && argv[i]; i++) {
        const char *word = argv[i];
        if (ended) {
            if (rc == 0)
                rc = MPMAP_EINVAL,
                kit_cli_error(err, errlen, "%s: unexpected argument '%s' (see --help)", prog,
                              kit_cli_show(word, shown));
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
            o = kit_cli_find_long(opts, nopts, word, len);
            if (!o) {
                if (rc == 0) {
                    rc = MPMAP_EINVAL;
                    if ((len == 6 && memcmp(word, "--help", 6) == 0) ||
                        (len == 9 && memcmp(word, "--version", 9) == 0))
                        kit_cli_error(err, errlen, "%s: %.*s: does not take a value", prog,
                                      (int)len, word);
                    else
                        kit_cli_error(err, errlen, "%s: unknown option '%.*s' (see --help)", prog,
                                      (int)(len > KIT_CLI_SHOW_MAX ? KIT_CLI_SHOW_MAX : len),
                                      kit_cli_show(word, shown));
                }
                continue;
            }
            if (eq)
                value = eq + 1;
        } else if (word[0] == '-' && word[1] != '\0') {
            o = word[2] == '\0' ? kit_cli_find_short(opts, nopts, word[1]) : NULL;
            if (!o) {
                if (rc == 0)
                    rc = MPMAP_EINVAL,
                    kit_cli_error(err, errlen, "%s: unknown option '%s' (see --help)", prog,
                                  kit_cli_show(word, shown));
                continue;
            }
        } else {
            if (rc == 0)
                rc = MPMAP_EINVAL,
                kit_cli_error(err, errlen, "%s: unexpected argument '%s' (see --help)", prog,
                              kit_cli_show(word, shown));
            continue;
        }

        const char *name = kit_cli_name(o, nb);
        if (o->kind == MPMAP_OPT_FLAG) {
            if (value) {
                if (rc == 0)
                    rc = MPMAP_EINVAL,
                    kit_cli_error(err, errlen, "%s: %s: does not take a value, got '%s'", prog,
                                  name, kit_cli_show(value, shown));
                continue;
            }
        } else if (!value) {
            const char *next = i + 1 < argc ? argv[i + 1] : NULL;
            if (!next) {
                if (rc == 0)
                    rc = MPMAP_EINVAL,
                    kit_cli_error(err, errlen,
                                  "%s: %s: missing value %s at the end of the arguments", prog,
                                  name, kit_cli_metavar(o, mv, sizeof mv));
                continue;
            }
            /* "--samples --widths 1:2:3" forgot the value; do not eat the
             * next option as one. */
            if (next[0] == '-' && next[1] == '-') {
                if (rc == 0)
                    rc = MPMAP_EINVAL,
                    kit_cli_error(err, errlen, "%s: %s: missing value %s before '%s'", prog, name,
                                  kit_cli_metavar(o, mv, sizeof mv), kit_cli_show(next, shown));
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
            kit_cli_error(err, errlen, "%s: %s: given twice (give each option once)", prog, name);
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
                kit_cli_error(err, errlen, "%s: missing required option %s (see --help)", prog,
                              kit_cli_name(&opts[k], nb));
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
    return kit_cli_apply(prog, o, first, value, err, errlen);
}

int mpmap_cli_parse(const char *prog, const mpmap_option *opts, size_t nopts, int argc, char **argv,
                    char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!prog)
        prog = "mpmap";
    if ((!opts && nopts) || argc < 0 || (!argv && argc > 0)) {
        kit_cli_error(err, errlen, "%s: invalid call to the command-line parser", prog);
        return MPMAP_EINVAL;
    }
    return kit_cli_walk(prog, opts, nopts, argc, argv, cli_visit_apply, NULL, err, errlen);
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
