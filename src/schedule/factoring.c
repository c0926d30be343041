/*
 * factoring: FAC2 (Hummel, Schonberg, Flynn): batches of P equal chunks,
 * each batch half of what remains; more robust than guided when task costs
 * vary, because early chunks are half the size.
 */
#include "schedule.h"

#include <stdlib.h>

typedef struct factoring_state {
    int64_t batch_chunk; /* chunk size of the current batch */
    int batch_left;      /* chunks left in the current batch */
} factoring_state;

static int factoring_init(mpmap__scheduler *s)
{
    s->state = calloc(1, sizeof(factoring_state));
    return s->state ? MPMAP_OK : MPMAP_ENOMEM;
}

static int factoring_next(mpmap__scheduler *s, int worker, int64_t *begin, int64_t *end)
{
    (void)worker;
    factoring_state *f = s->state;
    int64_t remaining = mpmap__pool_left(s);
    if (remaining <= 0)
        return 0;
    if (f->batch_left == 0) {
        f->batch_chunk =
            mpmap__max64(s->min_chunk, mpmap__ceil_div(remaining, 2 * (int64_t)s->workers));
        f->batch_left = s->workers;
    }
    f->batch_left--;
    return mpmap__pool_take(s, f->batch_chunk, begin, end);
}

static void factoring_destroy(mpmap__scheduler *s) { free(s->state); }

const mpmap__schedule_ops mpmap__schedule_factoring = {
    .name = "factoring",
    .help = "FAC2: batches of P equal chunks, each batch half of what remains",
    .init = factoring_init,
    .next = factoring_next,
    .endgame = mpmap__pool_endgame,
    .destroy = factoring_destroy,
};
