/*
 * awf-e: awf-c measured on each rank's whole time per chunk, so scheduling
 * overhead (the wait for a chunk, its messages) counts. The engine is awf.c.
 */
#include "schedule/adaptive.h"

static int awf_e_init(mpmap__scheduler *s) { return mpmap__awf_init(s, false, true); }

const mpmap__schedule_ops mpmap__schedule_awf_e = {
    .name = "awf-e",
    .help = "as awf-c, speed from each rank's whole time per chunk (overhead included)",
    .init = awf_e_init,
    .next = mpmap__awf_next,
    .endgame = mpmap__pool_endgame,
    .observe = mpmap__awf_observe,
    .destroy = mpmap__awf_destroy,
};
