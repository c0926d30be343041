/*
 * --help and --version text of the command-line module.
 */
#include "cli_internal.h"

#include <stdio.h>
#include <string.h>

/* Options longer than this get their help text on the next line. */
#define CLI_HELP_COLUMN 30

static void cli_help_left(const mpmap_option *o, char *buf, size_t n)
{
    char mv[128], nb[4];
    const char *metavar = kit_cli_metavar(o, mv, sizeof mv);
    const char *name = o->name ? o->name : "";
    if (o->short_name && o->name)
        snprintf(buf, n, "  -%c, %s%s%s", o->short_name, name, *metavar ? " " : "", metavar);
    else if (o->name)
        snprintf(buf, n, "      %s%s%s", name, *metavar ? " " : "", metavar);
    else
        snprintf(buf, n, "  %s%s%s", kit_cli_name(o, nb), *metavar ? " " : "", metavar);
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
        const char *extra = (o->flags & MPMAP_OPT_REQUIRED)    ? "(required)"
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
