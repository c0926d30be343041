/*
 * mpmap_cli: the command-line parser shared by every mpmap app.
 *
 * Each app declares its flags in a table of mpmap_option next to the code
 * that uses them, appends the flags every app shares (mpmap_cli_common_options)
 * and calls mpmap_cli_parse. Parsing is pure and deterministic, so every MPI
 * rank parses its own argv and reaches the same result; only rank 0 needs to
 * print the message.
 *
 *     int64_t samples = 10000;
 *     mpmap_cli_range widths = { 1.0, 1.0, 1 };
 *     mpmap_cli_common common;
 *     mpmap_cli_common_init(&common);
 *     mpmap_option opts[2 + MPMAP_CLI_COMMON_COUNT] = {
 *         { .name = "--samples", .kind = MPMAP_OPT_INT64, .target = &samples,
 *           .metavar = "N", .help = "points per estimate", .default_text = "10000",
 *           .min = 1, .max = INFINITY },
 *         { .name = "--widths", .kind = MPMAP_OPT_RANGE, .target = &widths,
 *           .metavar = "START:STOP:COUNT", .help = "kernel widths",
 *           .min = 0, .max = INFINITY, .flags = MPMAP_OPT_EXCLUSIVE_MIN },
 *     };
 *     size_t nopts = 2 + (size_t)mpmap_cli_common_options(&common, opts + 2,
 *                                                          MPMAP_CLI_COMMON_COUNT);
 *     char err[256];
 *     int rc = mpmap_cli_parse("kde_sweep", opts, nopts, argc, argv, err, sizeof err);
 *     if (rc == MPMAP_CLI_HELP) ... mpmap_cli_help(stdout, "kde_sweep", "...", opts, nopts);
 *     if (rc < 0) { if (rank == 0) fprintf(stderr, "%s\n", err); exit(2); }
 *     ...
 *     mpmap_cli_free(opts, nopts);
 *
 * Command-line rules:
 *   --name VALUE and --name=VALUE are both accepted; -k VALUE for options with
 *   a short name. In the separate form a VALUE starting with "--" is taken as
 *   a missing value (write --name=--x to pass such a string); values starting
 *   with a single '-' (negative numbers) are fine.
 *   --help / -h and --version are always recognised (tables do not declare
 *   them) and win over any other error on the line.
 *   "--" ends the options. Positional arguments are an error.
 *   An option other than MPMAP_OPT_STRING_LIST given twice is an error
 *   ("given twice"), since a silently overridden value is a common mistake
 *   in long batch scripts.
 *   argv[0] is skipped, as in main().
 *   Every error is one line, "PROG: --flag: what was wrong, got 'VALUE'".
 */
#ifndef MPMAP_CLI_H
#define MPMAP_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mpmap.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Non-error results of mpmap_cli_parse; errors are negative MPMAP_E* codes. */
#define MPMAP_CLI_HELP 1    /* --help or -h was given: print mpmap_cli_help, exit 0 */
#define MPMAP_CLI_VERSION 2 /* --version was given: print mpmap_cli_version, exit 0 */

/* What an option's value is, and the type its target points to. */
typedef enum mpmap_opt_kind {
    MPMAP_OPT_FLAG = 0,    /* no value; int *target set to 1 */
    MPMAP_OPT_INT64,       /* int64_t *; see mpmap_parse_int64 */
    MPMAP_OPT_DOUBLE,      /* double *; see mpmap_parse_double */
    MPMAP_OPT_STRING,      /* const char * *, pointing into argv; must be non-empty */
    MPMAP_OPT_CHOICE,      /* int *: index of the value in choices (exact match) */
    MPMAP_OPT_CHOICE_NAME, /* const char * *: the matching entry of choices itself */
    MPMAP_OPT_RANGE,       /* mpmap_cli_range *: START:STOP:COUNT */
    MPMAP_OPT_DOUBLE_LIST, /* mpmap_cli_list *: x1,x2,... (allocated) */
    MPMAP_OPT_STRING_LIST, /* mpmap_cli_strings *: repeatable, one item per occurrence */
    MPMAP_OPT_CUSTOM       /* anything: parse(text, target, ...) does the work */
} mpmap_opt_kind;

/* Bits of mpmap_option.flags. Zero gives the common case. */
enum {
    MPMAP_OPT_NO_FINGERPRINT = 1 << 0, /* does not change results: left out of the
                                          fingerprint (--chunk, --output, --quiet...) */
    MPMAP_OPT_REQUIRED = 1 << 1,       /* parsing fails when the option is absent */
    MPMAP_OPT_EXCLUSIVE_MIN = 1 << 2,  /* value must be > min instead of >= min */
    MPMAP_OPT_EXCLUSIVE_MAX = 1 << 3   /* value must be < max instead of <= max */
};

/*
 * One option. Designed for designated initialisers: every field left out
 * means "none". Bounds: min and max are inclusive limits on INT64 and DOUBLE
 * values, on START and STOP of a RANGE and on every DOUBLE_LIST element;
 * min == max (e.g. both 0) means unbounded, and a one-sided bound uses
 * INFINITY / -INFINITY for the open side. Error messages describe the bounds
 * ("a positive integer", "a number > 0", "an integer from 1 to 64").
 */
typedef struct mpmap_option {
    const char *name; /* "--samples" (with the dashes) */
    char short_name;  /* 'k' for -k, or 0 */
    mpmap_opt_kind kind;
    void *target;               /* where the value goes; type given by kind */
    const char *metavar;        /* "N" in --help; NULL = derived from kind/choices */
    const char *help;           /* one line for --help */
    const char *default_text;   /* "10000" shown as (default: 10000); NULL = none */
    double min, max;            /* bounds, see above */
    const char *const *choices; /* NULL-terminated, for CHOICE and CHOICE_NAME */
    /* CUSTOM: parse text into target; on failure return non-zero and write
     * what was expected (e.g. "expected a prime number") to err. The parser
     * then reports "PROG: --name: <err>, got 'TEXT'". */
    int (*parse)(const char *text, void *target, char *err, size_t errlen);
    unsigned flags; /* MPMAP_OPT_* bits */
    int *seen;      /* optional: set to 1 when the option is given */
} mpmap_option;

/* START:STOP:COUNT, COUNT evenly spaced values from START to STOP inclusive. */
typedef struct mpmap_cli_range {
    double start;
    double stop;
    int64_t count; /* >= 1 */
} mpmap_cli_range;

/*
 * A list of numbers. values is malloc'ed by the parser when owned != 0.
 * A default may point at static storage with owned = 0: when the option is
 * given the default is replaced (never freed); mpmap_cli_free frees only
 * owned storage.
 */
typedef struct mpmap_cli_list {
    double *values;
    size_t count;
    int owned;
} mpmap_cli_list;

/* Every occurrence of a STRING_LIST option, in argv order. The strings
 * point into argv; the items array is owned like mpmap_cli_list.values. */
typedef struct mpmap_cli_strings {
    const char **items;
    size_t count;
    int owned;
} mpmap_cli_strings;

/*
 * Parses argv against the table. Returns 0, MPMAP_CLI_HELP, MPMAP_CLI_VERSION,
 * MPMAP_EINVAL (bad command line) or MPMAP_ENOMEM, with a one-line message
 * starting with "PROG: " in err (no trailing newline) on a negative return.
 * Targets of options that are not given keep their values (the defaults).
 * Targets may be partly written when parsing fails. List targets must start
 * zeroed or as an unowned default; call mpmap_cli_free afterwards whatever
 * the result. err may be NULL.
 */
int mpmap_cli_parse(const char *prog, const mpmap_option *opts, size_t nopts, int argc, char **argv,
                    char *err, size_t errlen);

/* Frees the lists the parser allocated in the targets of the table and
 * resets them to empty. Safe to call twice. */
void mpmap_cli_free(const mpmap_option *opts, size_t nopts);

/*
 * Prints "Usage: PROG [options]", the summary (may be NULL) and one aligned
 * line per option with its metavar, help and default, then -h/--help and
 * --version.
 */
void mpmap_cli_help(FILE *out, const char *prog, const char *summary, const mpmap_option *opts,
                    size_t nopts);

/* Prints "PROG (mpmap VERSION)". */
void mpmap_cli_version(FILE *out, const char *prog);

/*
 * The fingerprint of a run from the options' values after parsing: every
 * option without MPMAP_OPT_NO_FINGERPRINT, given or not, in table order, as
 * "--name=value" separated by single spaces. Defaults are included, so a
 * default that changes between versions is noticed by --resume; the same
 * values written differently (1e4, 10000) give the same text. Doubles use
 * %.17g; strings write space, '%' and control characters as %XX. CUSTOM
 * options have no generic text and are left out: put what they mean into
 * the app's own fingerprint. A text longer than outlen keeps its start and
 * ends in " ...#HASH" of the whole. Returns 0, MPMAP_EINVAL or MPMAP_ENOMEM.
 */
int mpmap_cli_fingerprint_values(const mpmap_option *opts, size_t nopts, char *out, size_t outlen);

/*
 * The canonical text of the result-affecting options that argv gives: every
 * option without MPMAP_OPT_NO_FINGERPRINT that was given, in table order, as
 * "--name=value" separated by single spaces (a FLAG as "--name"). Numbers are
 * normalised (1e4 and 10000 give "--samples=10000"; doubles are printed with
 * %.17g, so the text names the exact value); STRING, CUSTOM and STRING_LIST
 * values are the text given, with space, '%' and control characters written
 * as %XX. Options not given are left out, so changing an app's default does
 * not change the fingerprint. Returns 0, MPMAP_EINVAL when argv does not
 * parse to 0 (--help included) or the text does not fit in outlen bytes, or
 * MPMAP_ENOMEM. Targets are not written; CUSTOM values are not re-validated,
 * so call mpmap_cli_parse first.
 */
int mpmap_cli_fingerprint(const mpmap_option *opts, size_t nopts, int argc, char **argv, char *out,
                          size_t outlen);

/*
 * Strict value parsers: the whole string must be the value, no spaces.
 * Each returns 0, or MPMAP_EINVAL leaving *out unchanged.
 *
 * mpmap_parse_int64: decimal, optional sign; also any decimal or exponent
 *   form whose value is an exact integer ("1e9", "2.5e3", "100.0"), computed
 *   exactly without going through double. Rejects "", " 5", "12x", "1.5",
 *   "0x10" and values outside int64_t.
 * mpmap_parse_double: [sign] digits [. digits] [e [sign] digits] (at least
 *   one digit before the exponent), finite only: rejects nan, inf, hex
 *   floats, "1.0abc" and overflow ("1e999"). Uses the "C" decimal point
 *   (the library never calls setlocale).
 * mpmap_parse_range: "START:STOP:COUNT", START and STOP doubles, COUNT an
 *   int64 >= 1, START <= STOP, and STOP - START finite. COUNT 1 is allowed
 *   with any START <= STOP and stands for the single value START.
 * mpmap_parse_double_list: "x1,x2,...": one or more doubles separated by
 *   commas, no empty element. On success out->values is malloc'ed and
 *   out->owned = 1 (free with mpmap_cli_list_free); MPMAP_ENOMEM if that
 *   allocation fails.
 */
int mpmap_parse_int64(const char *s, int64_t *out);
int mpmap_parse_double(const char *s, double *out);
int mpmap_parse_range(const char *s, mpmap_cli_range *out);
int mpmap_parse_double_list(const char *s, mpmap_cli_list *out);
void mpmap_cli_list_free(mpmap_cli_list *list);

/*
 * The i-th of the COUNT values of a range (0 <= i < COUNT):
 *     START + i * (STOP - START) / (COUNT - 1)
 * evaluated in double in that order, with i = 0 giving START exactly and
 * i = COUNT - 1 giving STOP exactly; a result that rounds above STOP is
 * clamped to STOP so the values never decrease. COUNT 1 gives START.
 * i outside [0, COUNT) is clamped to that interval.
 */
double mpmap_cli_range_value(const mpmap_cli_range *r, int64_t i);

/* ------------------------------------------------------------------------
 * Flags every app shares.
 */

/* Values of the shared flags. mpmap_cli_common_init sets the defaults. */
typedef struct mpmap_cli_common {
    const char *schedule_name; /* --schedule guided|static|dynamic|factoring (default guided) */
    int64_t chunk;             /* --chunk N, >= 1 (default 1) */
    const char *output;        /* --output FILE (default NULL: the app picks one) */
    int force;                 /* --force: overwrite an existing output */
    int resume;                /* --resume: continue from the checkpoint */
    int quiet;                 /* --quiet: no progress lines */
    const char *on_error;      /* --on-error stop|continue (default stop) */
    double progress_interval;  /* --progress-interval SECONDS, > 0 (default 1) */
    int live;                  /* --live: the output readable while it is written */
    const char *write;         /* --write rank0|ranks: who writes the results (default rank0) */

    /* Text of the defaults shown by --help; filled by mpmap_cli_common_options. */
    char chunk_default[24];
    char interval_default[32];
} mpmap_cli_common;

/* Number of table entries mpmap_cli_common_options writes. */
#define MPMAP_CLI_COMMON_COUNT 10

void mpmap_cli_common_init(mpmap_cli_common *common);

/*
 * Writes the MPMAP_CLI_COMMON_COUNT shared options, targeting the fields of
 * *common, to out[0..]. They have no short names, so an app's own -x never
 * clashes. --help shows the values in *common at this call as defaults: set
 * e.g. common->output to the app's default file name first. Only --on-error is part of
 * the fingerprint; the others do not change results. Returns the number of
 * entries written, or MPMAP_EINVAL when cap < MPMAP_CLI_COMMON_COUNT.
 */
int mpmap_cli_common_options(mpmap_cli_common *common, mpmap_option *out, size_t cap);

/*
 * Checks the shared flags together (--force with --resume is an error) and
 * copies them into config: schedule, chunk, on_error, resume and
 * progress_interval. The checkpoint path and fingerprint are the app's to
 * set. Returns 0 or MPMAP_EINVAL with a one-line "PROG: ..." message in err.
 */
int mpmap_cli_common_apply(const char *prog, const mpmap_cli_common *common, mpmap_config *config,
                           char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* MPMAP_CLI_H */
