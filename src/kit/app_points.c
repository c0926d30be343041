/*
 * Points given on the command line: a repeatable flag of comma-separated
 * numbers ("--point 1,2.5 --point 0,0"), one row each, checked against the
 * data's dimension.
 */
#define _POSIX_C_SOURCE 200809L
#include "mpmap_app.h"

#include <stdlib.h>
#include <string.h>

int mpmap_app_points(mpmap_app *app, const char *flag, const mpmap_cli_strings *specs, int64_t cols,
                     double **out, int64_t *m)
{
    *m = specs->count > 0 ? (int64_t)specs->count : 1;
    *out = calloc((size_t)(*m * cols), sizeof **out);
    if (!*out)
        return mpmap_app_failure(app, "out of memory");
    for (size_t i = 0; i < specs->count; i++) {
        mpmap_cli_list list = { 0 };
        const char *spec = specs->items[i];
        int bad = mpmap_parse_double_list(spec, &list) != 0;
        int64_t got = (int64_t)list.count;
        if (!bad && got == cols)
            memcpy(*out + (int64_t)i * cols, list.values, (size_t)cols * sizeof(double));
        mpmap_cli_list_free(&list);
        if (bad)
            return mpmap_app_usage(app, "%s: expected comma-separated numbers, got '%s'", flag,
                                   spec);
        if (got != cols)
            return mpmap_app_usage(app,
                                   "%s: expected %lld coordinates (the data has %lld "
                                   "dimensions), got '%s'",
                                   flag, (long long)cols, (long long)cols, spec);
    }
    return 0;
}
