/*
 * Internal side of the output lifecycle (see include/mpmap_output.h).
 *
 * The runtime's checkpoint check should explain a fingerprint mismatch with
 * mpmap_output_fingerprint_diff instead of printing both fingerprints cut
 * at ~100 characters (which read the same when only the input's hash at the
 * end differs): in src/checkpoint.c, open_resume, where it formats
 * "checkpoint '%s' belongs to a different run (arguments differ: ...)", call
 *
 *     char why[256];
 *     mpmap_output_fingerprint_diff((const char *)stored_fp, stored_len, fp, 0,
 *                                   why, sizeof why);
 *     snprintf(err, errlen, "checkpoint '%s' belongs to a different run (%s)", c->path, why);
 */
#ifndef MPMAP_SRC_OUTPUT_H
#define MPMAP_SRC_OUTPUT_H

#include "mpmap_output.h"

#endif
