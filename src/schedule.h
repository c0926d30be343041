/*
 * Chunk scheduling: which tasks the next chunk covers. Pure: no MPI, no I/O,
 * no clocks, so every schedule is unit-tested exhaustively.
 *
 * A scheduler hands out the tasks [0, total) of a "virtual" index space.
 * On a fresh run that is the job's task range; on a resumed run it is the
 * tasks still missing, and mpmap__ranges_translate maps a virtual chunk back
 * onto the real task ranges it covers.
 *
 * Each schedule is a table of functions (mpmap__schedule_ops) in its own
 * file under schedule/, listed once in schedule/registry.c at the index of
 * its mpmap_schedule value. The runtime only talks to the mpmap__scheduler_*
 * functions below and never reads a scheduler's fields.
 */
#ifndef MPMAP_SCHEDULE_H
#define MPMAP_SCHEDULE_H

#include "mpmap.h"
#include "ranges.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mpmap__schedule_ops mpmap__schedule_ops;

/* State of one scheduler. The common fields are set before ops->init runs;
 * `state` belongs to the schedule (allocated by init, freed by destroy). */
typedef struct mpmap__scheduler {
    const mpmap__schedule_ops *ops;
    int64_t total;     /* tasks to hand out */
    int64_t next;      /* first task not yet handed out (shared-pool schedules) */
    int workers;       /* P */
    int64_t min_chunk; /* C */
    int64_t max_chunk; /* upper bound on any chunk (INT64_MAX = unbounded) */
    void *state;       /* the schedule's own state, or NULL */
} mpmap__scheduler;

/*
 * One schedule. name is what --schedule and mpmap_schedule_from_name take;
 * help is one line for --help and the docs.
 *   init:    set up s->state (may be NULL: nothing to set up); 0 or MPMAP_E*.
 *   next:    the next chunk for `worker`: 1 and [*begin, *end), or 0 when
 *            nothing is left for that worker.
 *   endgame: whether so few tasks are left that handing them to a rank that
 *            asks while still busy could idle another rank at the end.
 *   observe: feedback on a finished chunk of `worker` (may be NULL: the
 *            schedule does not adapt). `tasks` were computed in `compute`
 *            seconds of the worker's own time; `elapsed` (>= compute) is
 *            the worker's time since its previous chunk finished, so it
 *            also holds the wait for this chunk and the messages around it.
 *            Times come in as arguments: schedules never read a clock.
 *   destroy: free s->state (may be NULL: nothing to free).
 */
struct mpmap__schedule_ops {
    char name[16];
    const char *help;
    int (*init)(mpmap__scheduler *s);
    int (*next)(mpmap__scheduler *s, int worker, int64_t *begin, int64_t *end);
    bool (*endgame)(const mpmap__scheduler *s);
    void (*observe)(mpmap__scheduler *s, int worker, int64_t tasks, double compute, double elapsed);
    void (*destroy)(mpmap__scheduler *s);
};

/* ---- the registry (schedule/registry.c) --------------------------------- */

/* Number of registered schedules; their indices are mpmap_schedule values. */
size_t mpmap__schedule_count(void);
/* The schedule registered at `schedule`, or NULL. */
const mpmap__schedule_ops *mpmap__schedule_get(mpmap_schedule schedule);
/* Every schedule's name in registry order, NULL-terminated (for option
 * tables and messages). */
const char *const *mpmap__schedule_names(void);

/* ---- the scheduler ------------------------------------------------------- */

/* The scheduler's (min_chunk, max_chunk) for a run's settings, which
 * mpmap_chunk_validate accepted: chunk 0 is 1, max_chunk 0 is about
 * MPMAP_MAX_CHUNK_AUTO_BYTES of records (unbounded when records are empty),
 * and a max_chunk below the chunk is raised to it. */
void mpmap__chunk_bounds(int64_t chunk, int64_t max_chunk, size_t record_size, int64_t *min_chunk,
                         int64_t *max_out);

/* min_chunk >= 1; max_chunk 0 means unbounded. Returns 0 or MPMAP_E*. */
int mpmap__scheduler_init(mpmap__scheduler *s, mpmap_schedule kind, int64_t total, int workers,
                          int64_t min_chunk, int64_t max_chunk);
void mpmap__scheduler_destroy(mpmap__scheduler *s);
/* The name of the schedule that runs: for auto, the one it picked. */
const char *mpmap__scheduler_name(const mpmap__scheduler *s);

/* The next chunk for `worker` (0..P-1): returns 1 and sets [*begin, *end),
 * or 0 when nothing is left for that worker. */
int mpmap__scheduler_next(mpmap__scheduler *s, int worker, int64_t *begin, int64_t *end);

/* Feedback on a finished chunk (see the ops' observe); called by the
 * manager for every chunk that came back complete, before the worker's next
 * chunk is chosen. Ignored for a worker out of range, no tasks, or times
 * that are negative or not finite; an elapsed below compute counts as
 * compute. */
void mpmap__scheduler_observe(mpmap__scheduler *s, int worker, int64_t tasks, double compute,
                              double elapsed);

/* Few enough tasks left that a request made ahead (by a rank still busy)
 * is better answered once that rank is idle; see the ops' endgame. */
bool mpmap__scheduler_endgame(const mpmap__scheduler *s);

/* ---- helpers for the schedules' files ------------------------------------ */

/* Shared-pool schedules (one pool of tasks, first come first served): hand
 * out `size` tasks from the pool, capped at max_chunk and at what is left.
 * Returns 0 when the pool is empty. */
int mpmap__pool_take(mpmap__scheduler *s, int64_t size, int64_t *begin, int64_t *end);
/* Tasks left in the pool. */
int64_t mpmap__pool_left(const mpmap__scheduler *s);
/* The shared-pool endgame: at most one minimum chunk left per worker. */
bool mpmap__pool_endgame(const mpmap__scheduler *s);

/* First and last task of worker w's block under the static schedule. */
void mpmap__static_block(int64_t total, int workers, int w, int64_t *begin, int64_t *end);

static inline int64_t mpmap__ceil_div(int64_t a, int64_t b) { return a / b + (a % b != 0); }
static inline int64_t mpmap__min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t mpmap__max64(int64_t a, int64_t b) { return a > b ? a : b; }

#endif
