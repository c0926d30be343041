/*
 * mpmap_keyed: keyed map-reduce on top of mpmap_run (core library, MPI only).
 *
 * The map function of task t emits (key, value) pairs through an emitter:
 * keys are byte strings of any length, values are value_size bytes. Values
 * of one key are combined by SUM/MIN/MAX (element-wise over int64, int32 or
 * double, as mpmap_reduce_op) or by a user fold, and rank 0 receives every
 * key once, sorted bytewise (memcmp order, a prefix before longer keys).
 *
 *     static int words(int64_t task, mpmap_emitter *e, mpmap_task_error *err, void *ctx)
 *     {
 *         int64_t one = 1;
 *         ... for each word w of task's text: mpmap_emit(e, w, len, &one) ...
 *         return 0;
 *     }
 *     mpmap_keyed_job job = { .ntasks = n, .value_size = 8, .map = words,
 *                             .op = MPMAP_REDUCE_SUM, .type = MPMAP_INT64 };
 *     mpmap_keyed_result res;
 *     int rc = mpmap_keyed_run(MPI_COMM_WORLD, &config, &job, &res, &report);
 *     ... rank 0: res.nkeys keys, mpmap_keyed_key(&res, i, &len), mpmap_keyed_value(&res, i)
 *     mpmap_keyed_result_free(&res);
 *
 * Semantics (what "the value of a key" is, so that it is bitwise the same
 * for any rank count, schedule and chunk size):
 *   partial(key, t) = the values task t emitted for key, folded in emission
 *                     order, starting from the first one;
 *   value(key)      = partial(key, t1), folded with partial(key, t2), ... for
 *                     the tasks t1 < t2 < ... that emitted the key.
 * The fold is acc = fold(acc, x): for SUM acc + x, MIN x < acc ? x : acc, MAX
 * x > acc ? x : acc (mpmap_reduce_fold), for USER job.fold(x, acc, context).
 * There is no initial value: a key's first partial starts its fold.
 *
 * How (see src/keyed.c): the tasks run under mpmap_run with the caller's
 * schedule (records of 0 bytes); each rank combines its emitted pairs in a
 * local hash table — into one partial per key when the fold is insensitive
 * to order (integer SUM/MIN/MAX, or a USER fold declared associative and
 * commutative), else one partial per (key, task). The table is then shuffled
 * to the key's owner rank (a hash of the key) by MPI_Alltoallv in rounds of
 * at most round_bytes per rank; the owner folds each key's partials in task
 * order, sorts its keys, and rank 0 merges the owners' sorted lists.
 *
 * Memory: budget bounds the bytes of a rank's tables (keys, partials, hash
 * index) — its local table and, during the shuffle, the table of the keys
 * it owns. With a spill_dir, a table that reaches the budget is written to
 * a run file there (unnamed: nothing is left behind, even by a killed run)
 * and starts again empty; the shuffle reads the runs back in pieces of a
 * quarter of the budget, and an owner whose keys outgrow it merges its sorted runs by
 * key for the fold. The result is bitwise the same as without spilling (a
 * spill never splits one task's partial of a key). Without a spill_dir a
 * run that would exceed the budget fails with MPMAP_ENOMEM on every rank
 * and a message naming the rank and the budget. Outside the budget: two
 * shuffle buffers of about round_bytes each, the partials of the running
 * task (they stay in memory through a spill), and the sorted result (on its
 * owner while packing, then all of it on rank 0, gathered in one
 * MPI_Gatherv: at most 2 GiB).
 *
 * Checkpoint (see src/keyed_checkpoint.c): with config->checkpoint_path, a
 * run stopped by config->interrupt saves what it has — each rank its
 * partials (with their tasks) in PATH.legL.rankR, then rank 0 the manifest
 * PATH with the completed tasks and config->fingerprint — and returns
 * MPMAP_EINTERRUPTED. config->resume then maps only the other tasks, puts
 * the saved partials back into the ranks' tables (any rank count) and gives
 * the bits of an uninterrupted run. Each file is written whole, synced and
 * renamed, the manifest last, so a run killed while saving leaves the
 * previous checkpoint intact. A fresh run (resume 0) removes an old one.
 */
#ifndef MPMAP_KEYED_H
#define MPMAP_KEYED_H

#include "mpmap.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Default budget of a rank's tables and default bytes per shuffle round. */
#define MPMAP_KEYED_BUDGET_DEFAULT ((size_t)1 << 30)
#define MPMAP_KEYED_ROUND_DEFAULT ((size_t)16 << 20)
/* Longest key accepted by mpmap_emit. */
#define MPMAP_KEYED_KEY_MAX ((size_t)1 << 30)

/* Where a map function sends its pairs; valid only during that call. */
typedef struct mpmap_emitter mpmap_emitter;

/*
 * Emits one pair for the task being run. value points to value_size bytes
 * (any alignment). Returns 0, MPMAP_EINVAL (key NULL with keylen > 0, key
 * too long), or MPMAP_ENOMEM when the rank's budget is exceeded: the map
 * function should then return it (a non-zero return fails the task with
 * the emitter's message).
 */
int mpmap_emit(mpmap_emitter *e, const void *key, size_t keylen, const void *value);

/*
 * The user's work for ONE task: emit its pairs. Return 0, or the value of
 * mpmap_task_fail(err, task, ...) / mpmap_emit's error. The pairs of a task
 * must depend only on the task.
 */
typedef int (*mpmap_keyed_map_fn)(int64_t task, mpmap_emitter *e, mpmap_task_error *err,
                                  void *context);

typedef struct mpmap_keyed_job {
    int64_t ntasks;
    size_t value_size;      /* bytes per value, >= 1 */
    mpmap_keyed_map_fn map; /* required, on every rank */
    void *context;          /* passed to map and fold */

    mpmap_reduce_op op;   /* SUM, MIN, MAX or USER (NONE is invalid) */
    mpmap_datatype type;  /* element type for SUM/MIN/MAX */
    mpmap_reduce_fn fold; /* USER: fold(value, accumulator, context) */
    int fold_commutative; /* USER: the fold is associative and commutative
                             (bitwise), so a rank may combine any values of a
                             key at once; otherwise per-task partials are kept */

    size_t budget;         /* bytes of a rank's tables; 0 = MPMAP_KEYED_BUDGET_DEFAULT */
    size_t round_bytes;    /* bytes a rank sends per shuffle round; 0 = default */
    const char *spill_dir; /* where tables over budget go (a directory every
                              rank can write, node-local is best); NULL = no
                              spilling: over budget is MPMAP_ENOMEM */
} mpmap_keyed_job;

/* The result: on rank 0 the keys and values, sorted by key; elsewhere empty
 * arrays, with nkeys still set. */
typedef struct mpmap_keyed_result {
    int64_t nkeys;
    size_t value_size;
    char *keys;         /* rank 0: the keys back to back */
    size_t *key_offset; /* rank 0: nkeys + 1 offsets into keys */
    void *values;       /* rank 0: nkeys * value_size bytes */
    /* Statistics, on every rank (the rank's own figures). */
    int64_t pairs_emitted; /* mpmap_emit calls on this rank */
    int64_t partials_sent; /* (key, partial) entries this rank shuffled */
    int64_t keys_owned;    /* keys this rank owned and folded */
    int64_t rounds;        /* shuffle rounds (the same on every rank) */
    size_t peak_bytes;     /* largest size of this rank's tables */
    int64_t spills;        /* run files this rank wrote (merges included) */
    size_t spill_bytes;    /* bytes this rank wrote to them */
} mpmap_keyed_result;

/*
 * Runs the keyed job on every rank of comm (collective): the tasks as
 * mpmap_run(comm, config, ...) would (config NULL = mpmap_config_init's
 * defaults; on_error is ignored: a keyed run stops at the first failing
 * task), then the shuffle, the folds and the gather to rank 0. With
 * config->checkpoint_path an interrupted run is saved there and
 * config->resume continues it (above); resuming another job (fingerprint,
 * ntasks, value_size, op or type) or a missing or damaged checkpoint is
 * MPMAP_ERESUME. Like mpmap_run's, the checkpoint stays when the run ends:
 * remove it with mpmap_keyed_checkpoint_remove once the result is stored.
 * report counts the job's tasks (tasks_restored: those of earlier legs).
 * Returns the same status on every rank, with report->message saying why
 * on failure (report may be NULL). *result is always initialised; free it
 * with mpmap_keyed_result_free.
 */
int mpmap_keyed_run(MPI_Comm comm, const mpmap_config *config, const mpmap_keyed_job *job,
                    mpmap_keyed_result *result, mpmap_report *report);

/* Rank 0: key i (its length in *len) and its value. */
const char *mpmap_keyed_key(const mpmap_keyed_result *r, int64_t i, size_t *len);
const void *mpmap_keyed_value(const mpmap_keyed_result *r, int64_t i);

void mpmap_keyed_result_free(mpmap_keyed_result *r);

/* Removes the checkpoint `path` of a keyed run: its manifest, then every
 * state file beside it (call it on one rank). 0, MPMAP_EINVAL (NULL) or
 * MPMAP_EIO when something could not be removed. */
int mpmap_keyed_checkpoint_remove(const char *path);

#ifdef __cplusplus
}
#endif

#endif /* MPMAP_KEYED_H */
