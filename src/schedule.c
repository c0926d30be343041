/*
 * Chunk schedules as pure functions of (tasks left, workers, chunk bounds).
 *
 * guided:    chunk = max(C, ceil(remaining / P)): large chunks early keep the
 *            dispatch count low, small chunks at the end balance the finish.
 * dynamic:   fixed chunks of C tasks.
 * static:    worker w owns one contiguous block; blocks differ by at most one.
 * factoring: FAC2 (Hummel, Schonberg, Flynn): batches of P equal chunks, each
 *            batch half of what remains; more robust than guided when task
 *            costs vary, because early chunks are half the size.
 * Every chunk is additionally capped at max_chunk so that result messages
 * and the manager's reorder buffer stay bounded.
 */
#include "schedule.h"

#include <stdlib.h>

static int64_t ceil_div(int64_t a, int64_t b) { return a / b + (a % b != 0); }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

void mpmap_static_block(int64_t total, int workers, int w, int64_t *begin, int64_t *end)
{
    int64_t base = total / workers, extra = total % workers;
    *begin = (int64_t)w * base + min64(w, extra);
    *end = *begin + base + (w < extra ? 1 : 0);
}

int mpmap_scheduler_init(mpmap_scheduler *s, mpmap_schedule kind, int64_t total, int workers,
                         int64_t min_chunk, int64_t max_chunk)
{
    if (!s || total < 0 || workers < 1 || min_chunk < 1 || max_chunk < 0)
        return MPMAP_EINVAL;
    if (kind != MPMAP_SCHEDULE_GUIDED && kind != MPMAP_SCHEDULE_STATIC &&
        kind != MPMAP_SCHEDULE_DYNAMIC && kind != MPMAP_SCHEDULE_FACTORING)
        return MPMAP_EINVAL;
    *s = (mpmap_scheduler){ .kind = kind, .total = total, .workers = workers,
                            .min_chunk = min_chunk,
                            .max_chunk = max_chunk == 0 ? INT64_MAX : max64(max_chunk, 1) };
    if (kind == MPMAP_SCHEDULE_STATIC) {
        s->static_next = malloc((size_t)workers * sizeof *s->static_next);
        if (!s->static_next)
            return MPMAP_ENOMEM;
        for (int w = 0; w < workers; w++) {
            int64_t e;
            mpmap_static_block(total, workers, w, &s->static_next[w], &e);
        }
    }
    return MPMAP_OK;
}

void mpmap_scheduler_destroy(mpmap_scheduler *s)
{
    if (s) {
        free(s->static_next);
        s->static_next = NULL;
    }
}

static int64_t shared_pool_chunk(mpmap_scheduler *s, int64_t remaining)
{
    switch (s->kind) {
    case MPMAP_SCHEDULE_DYNAMIC:
        return s->min_chunk;
    case MPMAP_SCHEDULE_FACTORING:
        if (s->batch_left == 0) {
            s->batch_chunk = max64(s->min_chunk, ceil_div(remaining, 2 * (int64_t)s->workers));
            s->batch_left = s->workers;
        }
        s->batch_left--;
        return s->batch_chunk;
    case MPMAP_SCHEDULE_GUIDED:
    default:
        return max64(s->min_chunk, ceil_div(remaining, s->workers));
    }
}

int mpmap_scheduler_next(mpmap_scheduler *s, int worker, int64_t *begin, int64_t *end)
{
    if (worker < 0 || worker >= s->workers)
        return 0;
    if (s->kind == MPMAP_SCHEDULE_STATIC) {
        int64_t b, e;
        mpmap_static_block(s->total, s->workers, worker, &b, &e);
        int64_t from = s->static_next[worker];
        if (from >= e)
            return 0;
        *begin = from;
        *end = from + min64(e - from, s->max_chunk);
        s->static_next[worker] = *end;
        return 1;
    }
    int64_t remaining = s->total - s->next;
    if (remaining <= 0)
        return 0;
    int64_t size = min64(min64(shared_pool_chunk(s, remaining), s->max_chunk), remaining);
    *begin = s->next;
    *end = s->next + size;
    s->next = *end;
    return 1;
}

size_t mpmap_ranges_translate(const mpmap_range *pending, const int64_t *offsets, size_t n,
                              int64_t vbegin, int64_t vend, mpmap_range *out, size_t outcap)
{
    /* Binary search for the pending range holding vbegin. */
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (offsets[mid] <= vbegin)
            lo = mid;
        else
            hi = mid;
    }
    size_t count = 0;
    for (size_t i = lo; i < n && vbegin < vend; i++) {
        int64_t skip = vbegin - offsets[i];
        int64_t avail = (pending[i].end - pending[i].begin) - skip;
        if (avail <= 0)
            continue;
        int64_t take = min64(avail, vend - vbegin);
        if (count < outcap)
            out[count] = (mpmap_range){ pending[i].begin + skip, pending[i].begin + skip + take };
        count++;
        vbegin += take;
    }
    return count;
}

size_t mpmap_ranges_complement(const mpmap_range *done, size_t ndone, int64_t total,
                               mpmap_range *out)
{
    size_t count = 0;
    int64_t at = 0;
    for (size_t i = 0; i < ndone; i++) {
        if (done[i].begin > at)
            out[count++] = (mpmap_range){ at, done[i].begin };
        if (done[i].end > at)
            at = done[i].end;
    }
    if (at < total)
        out[count++] = (mpmap_range){ at, total };
    return count;
}
