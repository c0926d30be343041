/* Half-open ranges of task indices, shared by the scheduler, the runtime and
 * the checkpoint. Internal to the library. */
#ifndef MPMAP_RANGES_H
#define MPMAP_RANGES_H

#include <stddef.h>
#include <stdint.h>

typedef struct mpmap_range {
    int64_t begin;
    int64_t end; /* exclusive */
} mpmap_range;

/*
 * Virtual-to-real translation for resumed runs. `pending` holds n sorted,
 * disjoint ranges; `offsets[i]` is the number of pending tasks before
 * pending[i] (offsets has n + 1 entries, the last one the total). Writes the
 * real ranges covering virtual tasks [vbegin, vend) to out (at most outcap)
 * and returns how many there are (which may exceed outcap: call again with
 * more room).
 */
size_t mpmap__ranges_translate(const mpmap_range *pending, const int64_t *offsets, size_t n,
                               int64_t vbegin, int64_t vend, mpmap_range *out, size_t outcap);

/* The complement of the sorted disjoint `done` ranges within [0, total):
 * writes it to out (room for ndone + 1 ranges) and returns its length. */
size_t mpmap__ranges_complement(const mpmap_range *done, size_t ndone, int64_t total,
                                mpmap_range *out);

#endif
