/*
 * param_config: what param_sweep computes, from its flags — the grid of
 * --param, the model (--model, --length, --record, --dt) or the command
 * (--exec, --timeout, --record-length) — the same on every rank, and the
 * limits of the output it leads to. With --exec and no --record-length,
 * rank 0 runs the first point once and tells the others the record length.
 */
#ifndef PARAM_CONFIG_H
#define PARAM_CONFIG_H

#include "mpmap_app.h"
#include "param_eval.h"

/* The values of param_sweep's own flags. */
typedef struct ps_args {
    mpmap_cli_strings specs;
    const char *model_name, *command;
    int64_t length, record_length;
    int record; /* param_record_kind */
    double dt, timeout;
    ps_flags_seen seen;
} ps_args;

/* The most flags ps_flags writes. */
#define PS_MAX_FLAGS 8

/* param_sweep's own flags (out: room for PS_MAX_FLAGS), with their targets
 * in a; returns how many. */
size_t ps_flags(ps_args *a, mpmap_option *out);

/* Collective: fills *eval from the flags, or returns an exit code with the
 * message set (bad flags, a command that fails at the first point, a
 * grid whose results cannot fit). Picks --on-error continue for --exec
 * unless it was given. */
int ps_configure(mpmap_app *app, const ps_args *args, ps_eval *eval);

#endif
