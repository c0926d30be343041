/*
 * guided: chunk = max(C, ceil(remaining / P)): large chunks early keep the
 * dispatch count low, small chunks at the end balance the finish.
 */
#include "schedule.h"

static int guided_next(mpmap__scheduler *s, int worker, int64_t *begin, int64_t *end)
{
    (void)worker;
    int64_t remaining = mpmap__pool_left(s);
    if (remaining <= 0)
        return 0;
    int64_t size = mpmap__max64(s->min_chunk, mpmap__ceil_div(remaining, s->workers));
    return mpmap__pool_take(s, size, begin, end);
}

const mpmap__schedule_ops mpmap__schedule_guided = {
    .name = "guided",
    .help = "chunk = max(C, ceil(remaining / P)): few large chunks first, small ones at the end",
    .next = guided_next,
    .endgame = mpmap__pool_endgame,
};
