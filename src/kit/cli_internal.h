/*
 * Internal pieces of the command-line module (include/mpmap_cli.h), shared
 * by its files and not installed:
 *
 *   cli_values.c       strict number, range and list parsers; message helpers
 *   cli_options.c      what an option-table entry says: name, metavar, bounds
 *   cli_parse.c        applying one value, the argv walk, mpmap_cli_parse/free
 *   cli_help.c         --help and --version text
 *   cli_fingerprint.c  mpmap_cli_fingerprint (the job named by its argv)
 *   cli_common.c       the flags every app shares, mpmap_cli_common_apply
 *
 * Everything here is a pure function of its arguments (no global mutable
 * state, no locale changes), so every MPI rank parses argv to the same result.
 */
#ifndef MPMAP_KIT_CLI_INTERNAL_H
#define MPMAP_KIT_CLI_INTERNAL_H

#include "mpmap_cli.h"

#include <stddef.h>
#include <stdint.h>

/* Longest part of a user's value quoted back in an error message. */
#define KIT_CLI_SHOW_MAX 64

/* ---- messages (cli_values.c) ---- */

/* printf into err (may be NULL/0), kept to one line whatever the input held. */
__attribute__((format(printf, 3, 4))) void kit_cli_error(char *err, size_t errlen, const char *fmt,
                                                         ...);
/* buf holds a printable, length-capped copy of a user's value; returns buf. */
const char *kit_cli_show(const char *s, char buf[KIT_CLI_SHOW_MAX + 4]);

/* ---- the option table (cli_options.c) ---- */

/* Which bounds an option has; min == max means none. */
void kit_cli_bounds(const mpmap_option *o, int *has_lo, int *has_hi);
/* 1 when v lies within o's bounds (exclusive ones honoured). */
int kit_cli_double_in_bounds(const mpmap_option *o, double v);
/* o's bounds as int64 limits [*lo, *hi]; 0 when no integer satisfies them. */
int kit_cli_int_limits(const mpmap_option *o, int64_t *lo, int64_t *hi);
/* "a positive integer", "an integer >= 0", "an integer from 1 to 64"... */
void kit_cli_int_phrase(const mpmap_option *o, char *buf, size_t n);
/* "NOUN", "NOUN >= 0", "NOUN > 0", "NOUN in (0, 1]"... */
void kit_cli_double_phrase(const mpmap_option *o, const char *noun, char *buf, size_t n);
/* "--name", or "-k" (in buf) for a short-only option. */
const char *kit_cli_name(const mpmap_option *o, char buf[4]);
const mpmap_option *kit_cli_find_long(const mpmap_option *opts, size_t nopts, const char *word,
                                      size_t len);
const mpmap_option *kit_cli_find_short(const mpmap_option *opts, size_t nopts, char c);
/* "a", "a or b", "a, b or c". */
void kit_cli_choice_list(const char *const *choices, char *buf, size_t n);
/* The placeholder shown for an option's value in --help and errors. */
const char *kit_cli_metavar(const mpmap_option *o, char *buf, size_t n);

/* ---- parsing (cli_parse.c) ---- */

/* Parses value for option o into o->target; a NULL target only validates. */
int kit_cli_apply(const char *prog, const mpmap_option *o, int first, const char *value, char *err,
                  size_t errlen);

/* Called for every option occurrence, in argv order. */
typedef int (*kit_cli_visit_fn)(void *ctx, const char *prog, const mpmap_option *o, int first,
                                const char *value, char *err, size_t errlen);

/* Splits argv into option occurrences and hands each to visit, in argv
 * order. Returns 0, MPMAP_CLI_HELP, MPMAP_CLI_VERSION or the first error. */
int kit_cli_walk(const char *prog, const mpmap_option *opts, size_t nopts, int argc, char **argv,
                 kit_cli_visit_fn visit, void *ctx, char *err, size_t errlen);

#endif
