/*
 * Internals of the keyed map-reduce (mpmap_keyed.h), shared by
 * keyed.c (the run: map phase, gather, result API), keyed_table.c (the hash
 * table of keys and partials, budget accounting) and keyed_shuffle.c
 * (routing to owners, Alltoallv rounds, owner fold in task order).
 */
#ifndef MPMAP_KEYED_INTERNAL_H
#define MPMAP_KEYED_INTERNAL_H

#include "mpmap_keyed.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- hash table of keys with (task, partial) lists ---------------------- */

/* One key: its bytes in the key arena and its partials, a linked list of
 * records in the partial arena (first..last, ascending insertion). */
typedef struct mpmap__kentry {
    uint64_t hash;
    size_t keyoff;
    size_t keylen;
    int64_t first;
    int64_t last;
    int64_t npartials;
} mpmap__kentry;

/* Bytes in use across a rank's tables, against the budget. */
typedef struct mpmap__kmem {
    size_t used;
    size_t peak;
    size_t budget;
} mpmap__kmem;

/* A slot of the hash index: the key's hash beside its entry, so probing
 * past other keys touches the index alone. entry -1 = empty. */
typedef struct mpmap__kslot {
    uint64_t hash;
    int64_t entry;
} mpmap__kslot;

typedef struct mpmap__ktab {
    mpmap__kentry *entries;
    size_t nentries, capentries;
    char *keys;
    size_t nkeys_bytes, capkeys;
    char *recs; /* records: int64 task, int64 next, value (rec_size bytes) */
    size_t nrecs, caprecs, rec_size;
    mpmap__kslot *index; /* open addressing, linear probing */
    size_t capindex;
    mpmap__kmem *mem;
} mpmap__ktab;

#define MPMAP__REC_TASK(t, i) ((int64_t *)((t)->recs + (size_t)(i) * (t)->rec_size))
#define MPMAP__REC_NEXT(t, i) ((int64_t *)((t)->recs + (size_t)(i) * (t)->rec_size + 8))
#define MPMAP__REC_VALUE(t, i) ((void *)((t)->recs + (size_t)(i) * (t)->rec_size + 16))

/* ---- keyed_table.c ------------------------------------------------------- */

/* FNV-1a with murmur3's finaliser: the owner is (hash >> 32) % ranks. */
uint64_t mpmap__keyed_hash(const void *key, size_t len);
/* Bytewise order of keys, a shorter prefix first. */
int mpmap__keyed_cmp(const char *a, size_t alen, const char *b, size_t blen);
void mpmap__ktab_init(mpmap__ktab *t, size_t value_size, mpmap__kmem *mem);
/* Frees the table's arrays and gives their bytes back to the budget. */
void mpmap__ktab_free(mpmap__ktab *t);
/* Finds key, or adds it (with no partials) when add; *e gets its index or
 * -1. MPMAP_ENOMEM when over budget. */
int mpmap__ktab_find(mpmap__ktab *t, const void *key, size_t len, uint64_t h, bool add, int64_t *e);
/* Appends a (task, value) partial to entry e. */
int mpmap__ktab_append(mpmap__ktab *t, int64_t e, int64_t task, const void *value,
                       size_t value_size);
/* acc = acc (op) x, the job's fold. */
void mpmap__keyed_fold(const mpmap_keyed_job *job, const void *x, void *acc);

/* ---- keyed_shuffle.c ----------------------------------------------------- */

/* Agrees on the worst code across ranks (codes are <= 0). Collective. */
int mpmap__keyed_agree(MPI_Comm comm, int code);
/* Shuffles loc to the owners in rounds of job->round_bytes; fills own,
 * merging partials of different tasks when combine. Collective. */
int mpmap__keyed_shuffle(MPI_Comm comm, const mpmap_keyed_job *job, mpmap__ktab *loc, bool combine,
                         mpmap__ktab *own, mpmap_keyed_result *res, char *msg, size_t msglen);
/* Folds every owned key's partials in task order and serialises the keys
 * sorted as (u64 keylen, key, value). *out is malloc'd. */
int mpmap__keyed_fold_and_pack(mpmap__ktab *own, const mpmap_keyed_job *job, char **out,
                               size_t *outlen);

#endif
