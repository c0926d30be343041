/*
 * The scheduler: checks the settings, then hands every call to the schedule
 * chosen from the registry (schedule/registry.c). Every chunk is capped at
 * max_chunk so that result messages and the manager's reorder buffer stay
 * bounded. Also the helpers the shared-pool schedules have in common, and
 * the public name lookups.
 */
#include "schedule.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int mpmap_chunk_validate(int64_t chunk, int64_t max_chunk, char *msg, size_t len)
{
    if (msg && len)
        msg[0] = '\0';
    if (chunk < 0) {
        if (msg && len)
            snprintf(msg, len, "chunk must be >= 1 (got %lld)", (long long)chunk);
        return MPMAP_EINVAL;
    }
    if (max_chunk < 0) {
        if (msg && len)
            snprintf(msg, len, "max_chunk must be >= 1, or 0 for automatic (got %lld)",
                     (long long)max_chunk);
        return MPMAP_EINVAL;
    }
    return MPMAP_OK;
}

void mpmap__chunk_bounds(int64_t chunk, int64_t max_chunk, size_t record_size, int64_t *min_chunk,
                         int64_t *max_out)
{
    *min_chunk = chunk > 0 ? chunk : 1;
    /* Default bound on the records of one chunk: keeps messages and the
     * manager's reorder buffer small whatever the schedule asks for. */
    if (max_chunk == 0 && record_size > 0)
        max_chunk = mpmap__max64((int64_t)(MPMAP_MAX_CHUNK_AUTO_BYTES / record_size), 1);
    if (max_chunk > 0 && max_chunk < *min_chunk)
        max_chunk = *min_chunk;
    *max_out = max_chunk;
}

int mpmap__scheduler_init(mpmap__scheduler *s, mpmap_schedule kind, int64_t total, int workers,
                          int64_t min_chunk, int64_t max_chunk)
{
    if (!s || total < 0 || workers < 1 || min_chunk < 1 || max_chunk < 0)
        return MPMAP_EINVAL;
    const mpmap__schedule_ops *ops = mpmap__schedule_get(kind);
    if (!ops)
        return MPMAP_EINVAL;
    /* clang-format off */
    *s = (mpmap__scheduler){ .ops = ops, .total = total, .workers = workers,
                             .min_chunk = min_chunk,
                             .max_chunk = max_chunk == 0 ? INT64_MAX : mpmap__max64(max_chunk, 1) };
    /* clang-format on */
    return ops->init ? ops->init(s) : MPMAP_OK;
}

const char *mpmap__scheduler_name(const mpmap__scheduler *s)
{
    return s && s->ops ? s->ops->name : "";
}

void mpmap__scheduler_destroy(mpmap__scheduler *s)
{
    if (s && s->ops) {
        if (s->ops->destroy)
            s->ops->destroy(s);
        s->state = NULL;
    }
}

int mpmap__scheduler_next(mpmap__scheduler *s, int worker, int64_t *begin, int64_t *end)
{
    if (worker < 0 || worker >= s->workers)
        return 0;
    return s->ops->next(s, worker, begin, end);
}

void mpmap__scheduler_observe(mpmap__scheduler *s, int worker, int64_t tasks, double compute,
                              double elapsed)
{
    if (!s->ops->observe || worker < 0 || worker >= s->workers || tasks <= 0)
        return;
    /* Clocks of a loaded machine can step; a bad sample would skew every
     * later chunk of an adaptive schedule, so it is dropped here, once. */
    if (!isfinite(compute) || compute < 0 || !isfinite(elapsed))
        return;
    s->ops->observe(s, worker, tasks, compute, elapsed < compute ? compute : elapsed);
}

bool mpmap__scheduler_endgame(const mpmap__scheduler *s)
{
    return s->ops->endgame ? s->ops->endgame(s) : false;
}

int64_t mpmap__pool_left(const mpmap__scheduler *s) { return s->total - s->next; }

int mpmap__pool_take(mpmap__scheduler *s, int64_t size, int64_t *begin, int64_t *end)
{
    int64_t remaining = s->total - s->next;
    if (remaining <= 0)
        return 0;
    size = mpmap__min64(mpmap__min64(size, s->max_chunk), remaining);
    *begin = s->next;
    *end = s->next + size;
    s->next = *end;
    return 1;
}

bool mpmap__pool_endgame(const mpmap__scheduler *s)
{
    return s->total - s->next <= (int64_t)s->workers * s->min_chunk;
}

int mpmap_schedule_from_name(const char *name, mpmap_schedule *out)
{
    const char *const *names = mpmap__schedule_names();
    for (size_t i = 0; name && names[i]; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (mpmap_schedule)i;
            return MPMAP_OK;
        }
    }
    return MPMAP_EINVAL;
}

const char *mpmap_schedule_name(mpmap_schedule schedule)
{
    const mpmap__schedule_ops *ops = mpmap__schedule_get(schedule);
    return ops ? ops->name : "unknown";
}

const char *mpmap_schedule_help(mpmap_schedule schedule)
{
    const mpmap__schedule_ops *ops = mpmap__schedule_get(schedule);
    return ops ? ops->help : "";
}
