/* Element-wise reductions over records; see reduce.h. */
#include "reduce.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static size_t element_size(mpmap_datatype type) { return type == MPMAP_INT32 ? 4 : 8; }

int mpmap_reduce_check(mpmap_reduce_op op, mpmap_datatype type, size_t record_size,
                       mpmap_reduce_fn fn)
{
    switch (op) {
    case MPMAP_REDUCE_NONE: return MPMAP_OK;
    case MPMAP_REDUCE_USER: return fn ? MPMAP_OK : MPMAP_EINVAL;
    case MPMAP_REDUCE_SUM:
    case MPMAP_REDUCE_MIN:
    case MPMAP_REDUCE_MAX:
        if (type != MPMAP_DOUBLE && type != MPMAP_INT64 && type != MPMAP_INT32)
            return MPMAP_EINVAL;
        return record_size > 0 && record_size % element_size(type) == 0 ? MPMAP_OK : MPMAP_EINVAL;
    default: return MPMAP_EINVAL;
    }
}

/* One loop per element type; memcpy keeps unaligned records legal. */
#define MPMAP_REDUCE_INIT(T, LOWEST, HIGHEST)                                                      \
    for (size_t off = 0; off + sizeof(T) <= record_size; off += sizeof(T)) {                       \
        T v = op == MPMAP_REDUCE_MIN ? (HIGHEST) : op == MPMAP_REDUCE_MAX ? (LOWEST) : (T)0;       \
        memcpy((char *)acc + off, &v, sizeof v);                                                   \
    }

/* Sums are taken in U: the unsigned type of an integer T, so an integer
 * sum wraps as two's complement (the same bits on every machine) instead of
 * overflowing, which C leaves undefined. */
#define MPMAP_REDUCE_FOLD(T, U)                                                                    \
    for (size_t off = 0; off + sizeof(T) <= record_size; off += sizeof(T)) {                       \
        T x, a;                                                                                    \
        memcpy(&x, (const char *)record + off, sizeof x);                                          \
        memcpy(&a, (char *)acc + off, sizeof a);                                                   \
        if (op == MPMAP_REDUCE_SUM)                                                                \
            a = (T)((U)a + (U)x);                                                                  \
        else if (op == MPMAP_REDUCE_MIN ? x < a : x > a)                                           \
            a = x;                                                                                 \
        memcpy((char *)acc + off, &a, sizeof a);                                                   \
    }

void mpmap_reduce_init(mpmap_reduce_op op, mpmap_datatype type, size_t record_size,
                       const void *initial, void *acc)
{
    if (op == MPMAP_REDUCE_USER) {
        if (initial)
            memmove(acc, initial, record_size);
        else
            memset(acc, 0, record_size);
        return;
    }
    if (type == MPMAP_DOUBLE) {
        MPMAP_REDUCE_INIT(double, -INFINITY, INFINITY)
    } else if (type == MPMAP_INT64) {
        MPMAP_REDUCE_INIT(int64_t, INT64_MIN, INT64_MAX)
    } else {
        MPMAP_REDUCE_INIT(int32_t, INT32_MIN, INT32_MAX)
    }
}

void mpmap_reduce_fold(mpmap_reduce_op op, mpmap_datatype type, size_t record_size,
                       const void *record, void *acc, mpmap_reduce_fn fn, void *context)
{
    if (op == MPMAP_REDUCE_NONE)
        return;
    if (op == MPMAP_REDUCE_USER) {
        fn(record, acc, context);
        return;
    }
    if (type == MPMAP_DOUBLE) {
        MPMAP_REDUCE_FOLD(double, double)
    } else if (type == MPMAP_INT64) {
        MPMAP_REDUCE_FOLD(int64_t, uint64_t)
    } else {
        MPMAP_REDUCE_FOLD(int32_t, uint32_t)
    }
}
