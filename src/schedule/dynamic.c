/* dynamic: fixed chunks of C tasks, first come first served. */
#include "schedule.h"

static int dynamic_next(mpmap__scheduler *s, int worker, int64_t *begin, int64_t *end)
{
    (void)worker;
    return mpmap__pool_take(s, s->min_chunk, begin, end);
}

const mpmap__schedule_ops mpmap__schedule_dynamic = {
    .name = "dynamic",
    .help = "fixed chunks of C tasks, first come first served",
    .next = dynamic_next,
    .endgame = mpmap__pool_endgame,
};
