/*
 * auto: picks a schedule when the run starts, from what is known then (the
 * number of ranks P, the tasks N, the smallest chunk C), and hands every
 * later call to it:
 *
 *   P = 1, or N <= 4 P C   guided: nothing to balance, or too few tasks for
 *                          measurements to arrive before the pool is empty;
 *   otherwise              awf-c: factoring whose chunks follow each rank's
 *                          measured speed, so a slow or shared core, or rank
 *                          0's time serving the others, is balanced out.
 *
 * Task costs are unknown at the start; awf-c starts as plain factoring and
 * turns adaptive as chunks come back, which is why it is the default pick.
 */
#include "schedule.h"

static mpmap_schedule auto_pick(const mpmap__scheduler *s)
{
    if (s->workers == 1)
        return MPMAP_SCHEDULE_GUIDED;
    /* N <= 4 P C, as ceil(N / 4P) <= C: cannot overflow */
    if (mpmap__ceil_div(s->total, 4 * (int64_t)s->workers) <= s->min_chunk)
        return MPMAP_SCHEDULE_GUIDED;
    return MPMAP_SCHEDULE_AWF_C;
}

/* The scheduler becomes the picked schedule: its ops replace these, so
 * next, observe and destroy go straight to it. */
static int auto_init(mpmap__scheduler *s)
{
    const mpmap__schedule_ops *ops = mpmap__schedule_get(auto_pick(s));
    if (!ops)
        return MPMAP_EINVAL;
    s->ops = ops;
    return ops->init ? ops->init(s) : MPMAP_OK;
}

/* Never called: init replaces the ops. A complete table all the same. */
static int auto_next(mpmap__scheduler *s, int worker, int64_t *begin, int64_t *end)
{
    (void)worker;
    return mpmap__pool_take(s, s->min_chunk, begin, end);
}

const mpmap__schedule_ops mpmap__schedule_auto = {
    .name = "auto",
    .help = "guided for 1 rank or N <= 4*P*C tasks, else awf-c (picked at the start)",
    .init = auto_init,
    .next = auto_next,
    .endgame = mpmap__pool_endgame,
};
