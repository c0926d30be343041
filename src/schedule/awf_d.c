/*
 * awf-d: awf-b measured on each rank's whole time per chunk, so scheduling
 * overhead (the wait for a chunk, its messages) counts. The engine is awf.c.
 */
#include "schedule/adaptive.h"

static int awf_d_init(mpmap__scheduler *s) { return mpmap__awf_init(s, true, true); }

const mpmap__schedule_ops mpmap__schedule_awf_d = {
    .name = "awf-d",
    .help = "as awf-b, speed from each rank's whole time per chunk (overhead included)",
    .init = awf_d_init,
    .next = mpmap__awf_next,
    .endgame = mpmap__pool_endgame,
    .observe = mpmap__awf_observe,
    .destroy = mpmap__awf_destroy,
};
