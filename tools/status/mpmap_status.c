/*
 * mpmap-status OUTPUT [--watch SECONDS] [--json]: how far the run writing
 * OUTPUT is (live), what its checkpoint holds (interrupted), or what it made
 * (complete). See status_tool.h. Exit codes: 0 something was found (with
 * --watch: the run has ended), 2 bad usage or nothing there.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include "status_tool.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define USAGE "usage: mpmap-status OUTPUT [--watch SECONDS] [--json]"

static void help(void)
{
    printf("%s\n"
           "Shows the state of the mpmap run writing OUTPUT:\n"
           "  running      done/total, rate, ETA, failures and one line per rank, from\n"
           "               OUTPUT.status (rewritten every --progress-interval seconds)\n"
           "  interrupted  what its checkpoint OUTPUT.ckpt holds; rerun with --resume\n"
           "  complete     the task count recorded in OUTPUT\n"
           "Options:\n"
           "  --watch SECONDS  show it again every SECONDS until the run ends\n"
           "  --json           one JSON object per look, on one line\n"
           "Exit codes: 0 shown, 2 bad usage or no run at OUTPUT.\n",
           USAGE);
}

static int usage_error(const char *what)
{
    fprintf(stderr, "mpmap-status: %s (%s)\n", what, USAGE);
    return 2;
}

static bool is_live(status_state s)
{
    return s == STATUS_STARTING || s == STATUS_SETUP || s == STATUS_RUNNING;
}

static void sleep_seconds(double s)
{
    struct timespec ts = { (time_t)s, (long)(fmod(s, 1.0) * 1e9) };
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
    const char *output = NULL;
    double watch = 0;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help();
            return 0;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--watch") == 0) {
            char *end = NULL;
            if (i + 1 < argc)
                watch = strtod(argv[++i], &end);
            if (!end || end == argv[i] || *end || !(watch > 0) || !isfinite(watch))
                return usage_error("--watch needs a number of seconds > 0");
        } else if (argv[i][0] == '-' && argv[i][1]) {
            char what[256];
            snprintf(what, sizeof what, "unknown option '%.200s'", argv[i]);
            return usage_error(what);
        } else if (output) {
            return usage_error("one OUTPUT only");
        } else {
            output = argv[i];
        }
    }
    if (!output)
        return usage_error("no OUTPUT given");

    /* A terminal gets each look in place of the last; a pipe gets them all. */
    bool redraw = watch > 0 && !json && isatty(STDOUT_FILENO);
    for (int look = 0;; look++) {
        status_view v;
        status_probe(output, &v);
        if (v.state == STATUS_NONE) {
            fprintf(stderr, "mpmap-status: %s\n", v.message);
            status_view_free(&v);
            return 2;
        }
        if (redraw)
            fputs("\033[H\033[J", stdout);
        else if (look > 0 && !json)
            fputc('\n', stdout);
        if (json)
            status_print_json(stdout, &v);
        else
            status_print_text(stdout, &v);
        fflush(stdout);
        bool live = is_live(v.state);
        status_view_free(&v);
        if (watch <= 0 || !live)
            return 0;
        sleep_seconds(watch);
    }
}
