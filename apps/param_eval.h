/*
 * param_eval: one grid point of param_sweep, computed by a built-in model
 * (param_models.h) or by running a command (exec_runner.h), and the checks
 * of the flags that choose between them. No MPI, no HDF5.
 */
#ifndef PARAM_EVAL_H
#define PARAM_EVAL_H

#include "exec_runner.h"
#include "mpmap_cli.h"
#include "param_grid.h"
#include "param_models.h"

#include <stddef.h>
#include <stdint.h>

/* Codes stored in /status. Exit codes of the command keep their value so a
 * user can match them against the program's own documentation; the app's
 * own failure kinds are negative so they never collide with them. */
enum {
    PS_STATUS_OK = 0,
    PS_STATUS_SYSTEM = -1,     /* the command could not be run (spawn, memory) */
    PS_STATUS_TIMEOUT = -2,    /* --timeout expired */
    PS_STATUS_UNPARSABLE = -3, /* stdout is not whitespace-separated finite numbers */
    PS_STATUS_COUNT = -4,      /* stdout has the wrong number of values */
    PS_STATUS_MODEL = -5       /* the model could not compute the point */
};
#define PS_STATUS_SIGNAL_BASE 128 /* killed by signal N: 128 + N, as shells report it */

#define PS_STATUS_DOC                                                                              \
    "0 ok; 1..255 exit code of the command; 128+N killed by signal N; -1 command could not be "    \
    "run; -2 timed out (--timeout); -3 unparsable output; -4 wrong number of values; -5 model "    \
    "could not compute the point"

/* Longest record accepted from --exec. */
#define PS_EXEC_MAX_RECORD ((int64_t)1 << 20)
/* Longest parameter vector of a built-in model (the table has 2 and 3). */
#define PS_MODEL_MAX_PARAMS 16

/* What is computed at every point; the same on every rank. */
typedef struct ps_eval {
    param_grid grid;
    const char *names[PARAM_GRID_MAX_PARAMS]; /* axis names, for --exec templates */
    const param_model *model;                 /* NULL with --exec */
    param_model_options options;
    int source[PS_MODEL_MAX_PARAMS]; /* model parameter -> grid axis or -1 */
    const char *command;             /* --exec template, or NULL */
    double timeout;                  /* seconds, <= 0 = none */
    int64_t record_length;           /* doubles per record */
} ps_eval;

/* Which flags were given, for the checks of ps_eval_configure. */
typedef struct ps_flags_seen {
    int length, record, dt, timeout, record_length;
} ps_flags_seen;

/* Builds the grid from the --param specs and checks --model/--exec and the
 * flags that only apply to one of them. 0 or -1 with msg. */
int ps_eval_configure(ps_eval *s, const mpmap_cli_strings *specs, const char *model_name,
                      const ps_flags_seen *seen, char *msg, size_t msglen);
/* --exec without --record-length: runs point 0 once to learn the record
 * length; a broken command fails here, before any output exists. 0 or -1. */
int ps_eval_probe(ps_eval *s, char *msg, size_t msglen);
/* Computes point t into record (record_length doubles): a /status code,
 * 0 = ok, with the reason in why otherwise. */
int ps_eval_point(const ps_eval *s, int64_t t, double *record, char *why, size_t whylen);
/* "a=1, b=0.5" for point t, for messages; always NUL-terminated. */
void ps_eval_point_text(const ps_eval *s, int64_t t, char *buf, size_t buflen);

/* Name of record field i: the model's, or value_i for --exec. */
void ps_eval_field_name(const ps_eval *s, int64_t i, char *buf, size_t buflen);
/* The field names, "mean_z,max_z,..." (malloc'd, or NULL). */
char *ps_eval_fields_text(const ps_eval *e);
/* "a=1:3:3; b=0,1" from the --param specs (malloc'd, or NULL). */
char *ps_specs_text(const mpmap_cli_strings *specs);
/* param_sweep's --help summary: the models from their table, the codes. */
void ps_help_text(char *buf, size_t len);

#endif
