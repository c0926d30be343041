/*
 * awf-b: adaptive weighted factoring with weights from each rank's compute
 * time, taken at the start of every batch. The engine is awf.c.
 */
#include "schedule/adaptive.h"

static int awf_b_init(mpmap__scheduler *s) { return mpmap__awf_init(s, true, false); }

const mpmap__schedule_ops mpmap__schedule_awf_b = {
    .name = "awf-b",
    .help =
        "factoring chunks scaled by each rank's speed (compute time), weights updated every batch",
    .init = awf_b_init,
    .next = mpmap__awf_next,
    .endgame = mpmap__pool_endgame,
    .observe = mpmap__awf_observe,
    .destroy = mpmap__awf_destroy,
};
