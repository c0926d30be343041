/* Half-open ranges of task indices, shared by the scheduler, the runtime and
 * the checkpoint. Internal to the library. */
#ifndef MPMAP_RANGES_H
#define MPMAP_RANGES_H

#include <stdint.h>

typedef struct mpmap_range {
    int64_t begin;
    int64_t end; /* exclusive */
} mpmap_range;

#endif
