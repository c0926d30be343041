/*
 * static: worker w owns one contiguous block; blocks differ by at most one.
 * A block longer than max_chunk goes out in several chunks, still to w.
 */
#include "schedule.h"

#include <stdlib.h>

void mpmap__static_block(int64_t total, int workers, int w, int64_t *begin, int64_t *end)
{
    int64_t base = total / workers, extra = total % workers;
    *begin = (int64_t)w * base + mpmap__min64(w, extra);
    *end = *begin + base + (w < extra ? 1 : 0);
}

/* state: int64_t[workers], the next task of each worker's block. */
static int static_init(mpmap__scheduler *s)
{
    int64_t *next = malloc((size_t)s->workers * sizeof *next);
    if (!next)
        return MPMAP_ENOMEM;
    for (int w = 0; w < s->workers; w++) {
        int64_t e;
        mpmap__static_block(s->total, s->workers, w, &next[w], &e);
    }
    s->state = next;
    return MPMAP_OK;
}

static int static_next(mpmap__scheduler *s, int worker, int64_t *begin, int64_t *end)
{
    int64_t *next = s->state;
    int64_t b, e;
    mpmap__static_block(s->total, s->workers, worker, &b, &e);
    int64_t from = next[worker];
    if (from >= e)
        return 0;
    *begin = from;
    *end = from + mpmap__min64(e - from, s->max_chunk);
    next[worker] = *end;
    return 1;
}

/* Every worker already owns its block: there is no pool to hold back. */
static bool static_endgame(const mpmap__scheduler *s)
{
    (void)s;
    return false;
}

static void static_destroy(mpmap__scheduler *s) { free(s->state); }

const mpmap__schedule_ops mpmap__schedule_static = {
    .name = "static",
    .help = "one contiguous block per rank, sizes differ by at most one",
    .init = static_init,
    .next = static_next,
    .endgame = static_endgame,
    .destroy = static_destroy,
};
