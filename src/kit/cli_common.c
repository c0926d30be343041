/*
 * The flags every app shares (--schedule, --chunk, --on-error, ...) and
 * mpmap_cli_common_apply, which turns them into an mpmap_config.
 */
#include "cli_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const cli_on_error_choices[] = { "stop", "continue", NULL };
static const char *const cli_write_choices[] = { "rank0", "ranks", NULL };

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
    common->write = "rank0";
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
    /* clang-format off */
    const mpmap_option table[MPMAP_CLI_COMMON_COUNT] = {
        { .name = "--schedule", .kind = MPMAP_OPT_CHOICE_NAME, .target = &common->schedule_name,
          .help = "how tasks are handed out",
          .default_text = common->schedule_name, .choices = mpmap_schedule_names(),
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
        { .name = "--live", .kind = MPMAP_OPT_FLAG, .target = &common->live,
          .help = "let other programs read OUTPUT.partial while the run writes it (HDF5 "
                  "SWMR; its /tasks_delivered counts the leading tasks done)",
          .flags = MPMAP_OPT_NO_FINGERPRINT },
        /* In the fingerprint through the kit (only "ranks" changes where a
         * checkpoint's results are), not through this table. */
        { .name = "--write", .kind = MPMAP_OPT_CHOICE_NAME, .target = &common->write,
          .metavar = "rank0|ranks",
          .help = "who writes the results: rank 0 (each record passes through it) or every "
                  "rank its own rows, in place (large records on many ranks)",
          .default_text = common->write, .choices = cli_write_choices,
          .flags = MPMAP_OPT_NO_FINGERPRINT },
    };
    /* clang-format on */
    memcpy(out, table, sizeof table);
    return MPMAP_CLI_COMMON_COUNT;
}

int mpmap_cli_common_apply(const char *prog, const mpmap_cli_common *common, mpmap_config *config,
                           char *err, size_t errlen)
{
    char shown[KIT_CLI_SHOW_MAX + 4];
    if (!prog)
        prog = "mpmap";
    if (err && errlen)
        err[0] = '\0';
    if (!common || !config) {
        kit_cli_error(err, errlen, "%s: invalid call to mpmap_cli_common_apply", prog);
        return MPMAP_EINVAL;
    }
    if (common->force && common->resume) {
        kit_cli_error(err, errlen,
                      "%s: --force and --resume cannot be used together (--force starts over, "
                      "--resume continues)",
                      prog);
        return MPMAP_EINVAL;
    }
    mpmap_schedule schedule;
    if (mpmap_schedule_from_name(common->schedule_name, &schedule) != 0) {
        char expected[192];
        kit_cli_choice_list(mpmap_schedule_names(), expected, sizeof expected);
        kit_cli_error(err, errlen, "%s: --schedule: unknown value '%s' (expected %s)", prog,
                      common->schedule_name ? kit_cli_show(common->schedule_name, shown) : "",
                      expected);
        return MPMAP_EINVAL;
    }
    mpmap_on_error on_error;
    if (common->on_error && strcmp(common->on_error, "stop") == 0) {
        on_error = MPMAP_ON_ERROR_STOP;
    } else if (common->on_error && strcmp(common->on_error, "continue") == 0) {
        on_error = MPMAP_ON_ERROR_CONTINUE;
    } else {
        kit_cli_error(err, errlen, "%s: --on-error: unknown value '%s' (expected stop or continue)",
                      prog, common->on_error ? kit_cli_show(common->on_error, shown) : "");
        return MPMAP_EINVAL;
    }
    if (common->chunk < 1) {
        kit_cli_error(err, errlen, "%s: --chunk: expected a positive integer, got '%" PRId64 "'",
                      prog, common->chunk);
        return MPMAP_EINVAL;
    }
    if (!(common->progress_interval > 0) || !isfinite(common->progress_interval)) {
        kit_cli_error(err, errlen, "%s: --progress-interval: expected a number > 0, got '%g'", prog,
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
