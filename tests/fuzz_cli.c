/*
 * libFuzzer target for the command-line module. The input is split at
 * newlines into argv words and parsed against a table with every option
 * kind; the raw input (up to its first NUL) also goes through each strict
 * value parser. Besides memory errors (ASan/UBSan), it checks invariants the
 * apps rely on: one-line messages naming the program, a fingerprint for
 * every accepted command line, ranges whose values stay within START..STOP
 * and never decrease, and integer parsing that agrees with strtod.
 *
 * Build with -DMPMAP_FUZZ=ON and clang; run: fuzz_cli CORPUS_DIR
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpmap_cli.h"

#define FUZZ_MAX_WORDS 256

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fuzz_kernels[] = { "hypercube", "gaussian", NULL };
static const char *const fuzz_modes[] = { "a", "bb", "ccc", NULL };

static int fuzz_parse_even(const char *text, void *target, char *err, size_t errlen)
{
    int64_t v;
    if (mpmap_parse_int64(text, &v) != 0 || v % 2 != 0) {
        /* Deliberately long and with a newline: the parser must keep its
         * message on one line and inside the buffer. */
        for (size_t i = 0; i + 1 < errlen; i++)
            err[i] = i % 50 == 49 ? '\n' : 'e';
        if (errlen)
            err[errlen - 1] = '\0';
        return -1;
    }
    *(int64_t *)target = v;
    return 0;
}

/* Range invariants: START first, STOP last, non-decreasing, within bounds. */
static void fuzz_check_range(const mpmap_cli_range *r)
{
    FUZZ_CHECK(r->count >= 1 && r->start <= r->stop && isfinite(r->start) && isfinite(r->stop));
    FUZZ_CHECK(mpmap_cli_range_value(r, 0) == r->start);
    if (r->count > 1)
        FUZZ_CHECK(mpmap_cli_range_value(r, r->count - 1) == r->stop);
    int64_t probes[] = { 1, 2, r->count / 3, r->count / 2, r->count - 2, r->count - 1 };
    double prev = r->start;
    for (size_t k = 0; k < sizeof probes / sizeof probes[0]; k++) {
        int64_t i = probes[k];
        if (i < 0 || i >= r->count)
            continue;
        double v = mpmap_cli_range_value(r, i);
        FUZZ_CHECK(v >= r->start && v <= r->stop);
        if (k > 0 && i >= probes[k - 1])
            FUZZ_CHECK(v >= prev);
        prev = v;
    }
}

static void fuzz_pure_parsers(const char *s)
{
    int64_t i64;
    double d;
    int int_ok = mpmap_parse_int64(s, &i64) == 0;
    int dbl_ok = mpmap_parse_double(s, &d) == 0;
    if (dbl_ok)
        FUZZ_CHECK(isfinite(d));
    /* Same grammar, exact value: strtod's rounding of that integer must be
     * the same double as converting the integer. */
    if (int_ok)
        FUZZ_CHECK(dbl_ok && d == (double)i64);

    mpmap_cli_range r;
    if (mpmap_parse_range(s, &r) == 0)
        fuzz_check_range(&r);

    mpmap_cli_list list = { 0 };
    if (mpmap_parse_double_list(s, &list) == 0) {
        FUZZ_CHECK(list.count >= 1 && list.owned);
        for (size_t k = 0; k < list.count; k++)
            FUZZ_CHECK(isfinite(list.values[k]));
        mpmap_cli_list_free(&list);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    fuzz_pure_parsers(text);

    /* argv: newline-separated words (a NUL inside a word ends it). */
    char *words = malloc(size + 1);
    if (!words) {
        free(text);
        return 0;
    }
    memcpy(words, data, size);
    words[size] = '\0';
    char *argv[FUZZ_MAX_WORDS + 2];
    int argc = 0;
    argv[argc++] = "fuzz";
    char *p = words;
    while (argc < FUZZ_MAX_WORDS + 1 && p <= words + size) {
        argv[argc++] = p;
        char *nl = memchr(p, '\n', (size_t)(words + size - p));
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }
    argv[argc] = NULL;

    int64_t samples = 10, even = 0;
    double shift = 0;
    int kernel = 0, seen = 0;
    const char *mode = "a", *label = NULL;
    mpmap_cli_range widths = { 1, 1, 1 };
    double default_weights[] = { 1.0, 2.0 };
    mpmap_cli_list weights = { default_weights, 2, 0 };
    mpmap_cli_strings tags = { 0 };
    mpmap_cli_common common;
    mpmap_cli_common_init(&common);
    /* clang-format off */
    mpmap_option opts[11 + MPMAP_CLI_COMMON_COUNT] = {
        { .name = "--samples", .short_name = 'n', .kind = MPMAP_OPT_INT64, .target = &samples,
          .min = 1, .max = INFINITY, .seen = &seen },
        { .name = "--small", .kind = MPMAP_OPT_INT64, .target = &samples, .min = -3.5, .max = 7.5,
          .flags = MPMAP_OPT_EXCLUSIVE_MIN | MPMAP_OPT_EXCLUSIVE_MAX },
        { .name = "--shift", .kind = MPMAP_OPT_DOUBLE, .target = &shift, .min = 0, .max = 1 },
        { .name = "--widths", .kind = MPMAP_OPT_RANGE, .target = &widths, .min = 0,
          .max = INFINITY, .flags = MPMAP_OPT_EXCLUSIVE_MIN },
        { .name = "--grid", .kind = MPMAP_OPT_RANGE, .target = &widths },
        { .name = "--kernel", .short_name = 'k', .kind = MPMAP_OPT_CHOICE, .target = &kernel,
          .choices = fuzz_kernels },
        { .name = "--mode", .kind = MPMAP_OPT_CHOICE_NAME, .target = &mode,
          .choices = fuzz_modes },
        { .name = "--weights", .kind = MPMAP_OPT_DOUBLE_LIST, .target = &weights, .min = -1,
          .max = 1 },
        { .name = "--tag", .short_name = 't', .kind = MPMAP_OPT_STRING_LIST, .target = &tags },
        { .name = "--label", .kind = MPMAP_OPT_STRING, .target = &label },
        { .name = "--even", .short_name = 'e', .kind = MPMAP_OPT_CUSTOM, .target = &even,
          .parse = fuzz_parse_even },
    };
    /* clang-format on */
    int added = mpmap_cli_common_options(&common, opts + 11, MPMAP_CLI_COMMON_COUNT);
    FUZZ_CHECK(added == MPMAP_CLI_COMMON_COUNT);
    size_t nopts = 11 + (size_t)added;

    char err[200];
    int rc = mpmap_cli_parse("fuzz", opts, nopts, argc, argv, err, sizeof err);
    FUZZ_CHECK(rc == 0 || rc == MPMAP_CLI_HELP || rc == MPMAP_CLI_VERSION || rc == MPMAP_EINVAL ||
               rc == MPMAP_ENOMEM);
    if (rc < 0) {
        FUZZ_CHECK(strncmp(err, "fuzz: ", 6) == 0);
        FUZZ_CHECK(strchr(err, '\n') == NULL && strchr(err, '\r') == NULL);
    }

    /* A fingerprint exists for every accepted line; its size is bounded by
     * the longest canonical spelling of each input byte. */
    size_t fplen = 32 * size + 1024;
    char *fp = malloc(fplen);
    if (fp) {
        int frc = mpmap_cli_fingerprint(opts, nopts, argc, argv, fp, fplen);
        if (rc == 0)
            FUZZ_CHECK(frc == 0 && strchr(fp, '\n') == NULL);
        else if (rc > 0)
            FUZZ_CHECK(frc != 0); /* --help/--version name no run */
        free(fp);
    }

    if (rc == 0) {
        fuzz_check_range(&widths);
        FUZZ_CHECK(weights.count >= 1);
        FUZZ_CHECK(even % 2 == 0);
        mpmap_config config;
        memset(&config, 0, sizeof config);
        int arc = mpmap_cli_common_apply("fuzz", &common, &config, err, sizeof err);
        FUZZ_CHECK(arc == 0 || (common.force && common.resume));
    } else if (rc == MPMAP_CLI_HELP) {
        FILE *devnull = fopen("/dev/null", "w");
        if (devnull) {
            mpmap_cli_help(devnull, "fuzz", "summary", opts, nopts);
            fclose(devnull);
        }
    }

    mpmap_cli_free(opts, nopts);
    FUZZ_CHECK(weights.values == NULL && tags.items == NULL);
    free(words);
    free(text);
    return 0;
}
