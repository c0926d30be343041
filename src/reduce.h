/*
 * Element-wise reductions over fixed-size records (sum, min, max over
 * double/int64/int32 elements, or the user's fold). Pure: the runtime folds
 * records into the accumulator in task order, which makes floating-point
 * sums identical for any rank count and schedule.
 */
#ifndef MPMAP_REDUCE_H
#define MPMAP_REDUCE_H

#include "mpmap.h"

#include <stddef.h>

/* 0, or MPMAP_EINVAL when the operation does not fit the record layout. */
int mpmap_reduce_check(mpmap_reduce_op op, mpmap_datatype type, size_t record_size,
                       mpmap_reduce_fn fn);

/* Sets acc (record_size bytes) to the identity of op: 0 for sum, the
 * largest value for min, the smallest for max; for MPMAP_REDUCE_USER a copy
 * of `initial` (or zeros when it is NULL). */
void mpmap_reduce_init(mpmap_reduce_op op, mpmap_datatype type, size_t record_size,
                       const void *initial, void *acc);

/* acc = acc (op) record, element by element. NaN never wins min or max. */
void mpmap_reduce_fold(mpmap_reduce_op op, mpmap_datatype type, size_t record_size,
                       const void *record, void *acc, mpmap_reduce_fn fn, void *context);

#endif
