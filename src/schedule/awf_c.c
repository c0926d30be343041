/*
 * awf-c: adaptive weighted factoring with weights from each rank's compute
 * time, taken at every chunk. The engine is awf.c.
 */
#include "schedule/adaptive.h"

static int awf_c_init(mpmap__scheduler *s) { return mpmap__awf_init(s, false, false); }

const mpmap__schedule_ops mpmap__schedule_awf_c = {
    .name = "awf-c",
    .help =
        "factoring chunks scaled by each rank's speed (compute time), weights updated every chunk",
    .init = awf_c_init,
    .next = mpmap__awf_next,
    .endgame = mpmap__pool_endgame,
    .observe = mpmap__awf_observe,
    .destroy = mpmap__awf_destroy,
};
