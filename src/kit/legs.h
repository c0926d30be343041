/* The legs of an interrupted and resumed run, for provenance (legs.c).
 * Rank 0 only, under the output's lock. */
#ifndef MPMAP_KIT_LEGS_H
#define MPMAP_KIT_LEGS_H

#include "mpmap_h5.h"

#include <stdint.h>

typedef struct kit_leg {
    double start_time; /* Unix time */
    double wall_time;  /* seconds */
    int ranks;
    int64_t tasks; /* computed in this leg (not restored) */
} kit_leg;

/* A leg that ends without a result: kept in OUT.legs for the next one. */
void kit_legs_append(const char *output, const kit_leg *leg);
/* The committing leg: every earlier leg and `last` as root attributes
 * mpmap_legs, mpmap_leg_start_time/_wall_time/_ranks/_tasks and
 * mpmap_total_wall_time. 0 or an error of the file. */
int kit_legs_write(mpmap_h5 *h5, const char *output, const kit_leg *last);
/* Removes OUT.legs: after the commit, or when a run starts over. */
void kit_legs_forget(const char *output);

#endif
