/*
 * Internals of the keyed map-reduce (mpmap_keyed.h), shared by
 * keyed.c (the run: map phase, gather, result API), keyed_table.c (the hash
 * table of keys and partials, budget accounting), keyed_combine.c (the
 * map's combiner when counting) and keyed_shuffle.c
 * (routing to owners, Alltoallv rounds, owner fold in task order) and
 * keyed_spill.c (run files when a table reaches the budget, merged by key)
 * and keyed_checkpoint.c (the state of an interrupted run, and --resume;
 * keyed_checkpoint_file.c its files).
 */
#ifndef MPMAP_KEYED_INTERNAL_H
#define MPMAP_KEYED_INTERNAL_H

#include "mpmap_keyed.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

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

/* ---- the key hash (inline: it runs once per emitted pair) ---------------- */

static inline uint64_t mpmap__load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t mpmap__load32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* A key's word: with the length it determines a key of up to 8 bytes
 * (overlapping loads, no byte loop); a longer key's first 8 bytes. */
static inline uint64_t mpmap__key_word(const void *key, size_t len)
{
    const unsigned char *p = key;
    if (len >= 8)
        return mpmap__load64(p);
    if (len >= 4)
        return (uint64_t)mpmap__load32(p) | (uint64_t)mpmap__load32(p + len - 4) << 32;
    if (len > 0)
        return (uint64_t)p[0] | (uint64_t)p[len >> 1] << 8 | (uint64_t)p[len - 1] << 16;
    return 0;
}

/* murmur3's finaliser: every bit of the input reaches every bit. */
static inline uint64_t mpmap__fmix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* The hash of a key of up to 16 bytes from its words (mpmap__key_hash's
 * value, without the bytes). */
static inline uint64_t mpmap__key_hash_words(uint64_t w0, uint64_t w1, size_t len)
{
    uint64_t h = (uint64_t)len * 0x9e3779b97f4a7c15ull ^ w0;
    if (len > 8)
        h = (h ^ w1) * 0x94d049bb133111ebull;
    return mpmap__fmix64(h);
}

/* A key's hash: 8 bytes at a time, a multiply and shift per word, then the
 * finaliser (the owner is (hash >> 32) % ranks, a table's slot its low
 * bits). */
static inline uint64_t mpmap__key_hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = (uint64_t)len * 0x9e3779b97f4a7c15ull ^ mpmap__key_word(p, len);
    if (len > 8) {
        for (size_t i = 8; i + 8 < len; i += 8) {
            h = (h ^ mpmap__load64(p + i)) * 0xbf58476d1ce4e5b9ull;
            h ^= h >> 31;
        }
        h = (h ^ mpmap__load64(p + len - 8)) * 0x94d049bb133111ebull;
    }
    return mpmap__fmix64(h);
}

/* ---- keyed_table.c ------------------------------------------------------- */

/* mpmap__key_hash of the key's bytes. */
uint64_t mpmap__keyed_hash(const void *key, size_t len);
/* Bytewise order of keys, a shorter prefix first. */
int mpmap__keyed_cmp(const char *a, size_t alen, const char *b, size_t blen);
void mpmap__ktab_init(mpmap__ktab *t, size_t value_size, mpmap__kmem *mem);
/* Bytes the table holds against the budget. */
size_t mpmap__ktab_bytes(const mpmap__ktab *t);
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

/* Grows t's index, if the budget allows, so that n more keys cause no
 * rehash. */
void mpmap__ktab_reserve(mpmap__ktab *t, size_t n);
/* A hash index's array (on 2 MiB pages when large); free() releases it. */
void *mpmap__index_alloc(size_t bytes);

/* ---- keyed_spill.c ------------------------------------------------------- */

/* One run file (unnamed: gone once closed) and its read cursor. */
typedef struct mpmap__krun {
    FILE *f;
    int64_t entries;
    size_t bytes;
    int64_t left; /* entries not yet read back */
} mpmap__krun;

/* A rank's runs of one kind (its local table's, or its owned keys'). */
typedef struct mpmap__kspill {
    const char *dir; /* NULL: spilling is off */
    int rank;
    mpmap__krun *runs;
    size_t nruns, capruns;
    int64_t written; /* runs ever written, merges included */
    size_t bytes;    /* bytes ever written */
    char error[MPMAP_MESSAGE_MAX];
} mpmap__kspill;

/* One entry read back: key bytes, then n x (i64 task, value). */
typedef struct mpmap__kentry_buf {
    char *data;
    size_t cap;
    size_t keylen;
    size_t n;
} mpmap__kentry_buf;

void mpmap__kspill_init(mpmap__kspill *s, const char *dir, int rank);
/* Writes t's entries as a new run, sorted by key when sorted; a key's
 * partial of task keep_task (>= 0) is left out (the caller keeps it).
 * MPMAP_EIO/ENOMEM with s->error set. */
int mpmap__kspill_table(mpmap__kspill *s, const mpmap__ktab *t, size_t value_size, bool sorted,
                        int64_t keep_task);
/* Reading run i from its start: next gives 1 and the entry, 0 at the end,
 * or a negative MPMAP_E* code. */
int mpmap__krun_rewind(mpmap__kspill *s, size_t i);
int mpmap__krun_next(mpmap__kspill *s, size_t i, size_t value_size, mpmap__kentry_buf *b);
void mpmap__kspill_close_run(mpmap__kspill *s, size_t i);
/* Merges all (sorted) runs, calling emit once per key in key order with
 * every partial of it. */
int mpmap__kspill_merge(mpmap__kspill *s, size_t vs,
                        int (*emit)(const char *key, size_t len, const char *partials, size_t n,
                                    void *ctx),
                        void *ctx);
void mpmap__kspill_free(mpmap__kspill *s);

/* Where a rank is in reading its runs back for the shuffle. */
typedef struct mpmap__kpiece_reader {
    size_t run;
    mpmap__kentry_buf pend; /* an entry read but not yet taken */
    bool has_pend;
} mpmap__kpiece_reader;
/* The next piece of sp's runs (up to `limit` table bytes) into loc, in run
 * order; when the keys this rank owns leave no room, they go to own_spill
 * first. Returns 1 when loc got anything; *code gets a failure. */
int mpmap__kspill_load_piece(mpmap__kspill *sp, size_t limit, size_t vs, mpmap__kpiece_reader *pr,
                             mpmap__ktab *loc, mpmap__ktab *own, mpmap__kspill *own_spill,
                             int *code);

/* The owner's fold after a spill: mpmap__kspill_merge's emit, packing each
 * key as mpmap__keyed_fold_and_pack does. */
typedef struct mpmap__kpart_ref {
    int64_t task;
    size_t index;
} mpmap__kpart_ref;
typedef struct mpmap__kpack {
    const mpmap_keyed_job *job;
    char *buf; /* the packed keys (the caller frees it) */
    size_t len, cap;
    int64_t keys;
    mpmap__kpart_ref *refs;
    size_t refcap;
    void *x, *acc; /* value_size bytes each, aligned for a user's fold */
} mpmap__kpack;
int mpmap__kspill_fold_packed(const char *key, size_t len, const char *partials, size_t n,
                              void *ctx);

/* ---- keyed_checkpoint.c -------------------------------------------------- */

typedef struct mpmap__krange {
    int64_t begin, end;
} mpmap__krange;

/*
 * Which tasks a leg of the run maps. A resumed leg runs only the tasks no
 * earlier leg completed: they are numbered 0..remaining-1 for mpmap_run (the
 * "virtual" tasks) and mapped back to the job's tasks, which label every
 * partial, so the owners' fold in task order is unchanged.
 */
typedef struct mpmap__kplan {
    mpmap__krange *todo; /* the job's tasks still to run, ascending */
    int64_t *todo_start; /* virtual index of each todo range's first task */
    size_t ntodo;
    int64_t remaining;   /* tasks to run in this leg */
    int64_t restored;    /* tasks completed by earlier legs */
    mpmap__krange *prev; /* those tasks, ascending (every rank) */
    size_t nprev;
    mpmap__krange *done; /* tasks this rank completed in this leg */
    size_t ndone, capdone;
    int leg; /* this leg's number: 0 unless resumed */
} mpmap__kplan;

/* The job's task for virtual task v, and in *n how many of the following
 * (at most max) are consecutive in both numberings. */
int64_t mpmap__kplan_task(const mpmap__kplan *p, int64_t v, int64_t max, int64_t *n);
/* Records tasks [begin, end) as completed by this rank. */
int mpmap__kplan_done(mpmap__kplan *p, int64_t begin, int64_t end);
void mpmap__kplan_free(mpmap__kplan *p);

/* ---- keyed_combine.c ----------------------------------------------------- */

/*
 * The map's combiner for one int64 summed over keys whose partials merge
 * (counting): open addressing whose 32-byte slot holds the key's first and
 * last 8 bytes, its length and the running sum, so a pair of a key of up to
 * 16 bytes costs one probe in one cache line (and no memcmp) where the
 * general table walks index, entry, key and record. Longer keys keep their
 * bytes in an arena. It is bounded (max_bytes, and the rank's budget, which
 * counts it); when full, or once a map ends, its sums go to the local table
 * as partials (keyed.c). Integer sums are exact in any order, so the result
 * is that of the table alone.
 */
typedef struct mpmap__kcslot {
    uint64_t w0, w1; /* mpmap__kckey's */
    uint64_t sum;    /* two's complement: wraps as int64 addition does */
    uint32_t len;    /* MPMAP__KCOMB_EMPTY: a free slot */
    uint32_t off;    /* keys over 16 bytes: their bytes in the arena */
} mpmap__kcslot;

/* A key as the combiner compares it: with len, w0 and w1 determine a key of
 * up to 16 bytes (w0 its word, w1 its last 8 bytes, 0 up to 8 bytes). */
typedef struct mpmap__kckey {
    uint64_t w0, w1, hash;
    size_t len;
} mpmap__kckey;

static inline mpmap__kckey mpmap__kckey_of(const void *key, size_t len)
{
    mpmap__kckey k = { .w0 = mpmap__key_word(key, len), .len = len };
    if (len > 8)
        k.w1 = mpmap__load64((const unsigned char *)key + len - 8);
    k.hash = len <= 16 ? mpmap__key_hash_words(k.w0, k.w1, len) : mpmap__key_hash(key, len);
    return k;
}

#define MPMAP__KCOMB_EMPTY UINT32_MAX
/* Longest key the combiner holds (longer ones go to the table at once). */
#define MPMAP__KCOMB_KEY_MAX ((size_t)1 << 16)
/* mpmap__kcomb_add: no room without a drain. */
#define MPMAP__KCOMB_FULL 1

typedef struct mpmap__kcomb {
    mpmap__kcslot *slots;
    size_t cap, n; /* cap: a power of two, or 0 */
    char *arena;
    size_t narena, caparena;
    size_t max_bytes;
    mpmap__kmem *mem;
} mpmap__kcomb;

void mpmap__kcomb_init(mpmap__kcomb *c, size_t max_bytes, mpmap__kmem *mem);
/* Adds x to key k's sum (bytes: the key, read only when over 16 bytes):
 * MPMAP_OK, or MPMAP__KCOMB_FULL. */
int mpmap__kcomb_add(mpmap__kcomb *c, const mpmap__kckey *k, const void *bytes, uint64_t x);
/* Slot i's key bytes (in buf for keys of up to 16 bytes) and hash; NULL
 * for a free slot. */
const char *mpmap__kcomb_key(const mpmap__kcomb *c, size_t i, char buf[16], uint64_t *hash);
/* The bytes of a key of up to 16 bytes from its words. */
void mpmap__kckey_bytes(uint64_t w0, uint64_t w1, size_t len, char buf[16]);
/* Empties it, keeping its arrays. */
void mpmap__kcomb_clear(mpmap__kcomb *c);
/* Frees its arrays and gives their bytes back to the budget. */
void mpmap__kcomb_free(mpmap__kcomb *c);
/* ---- keyed.c: the emitter, shared with the checkpoint ------------------- */

#define MPMAP__KRING 16

struct mpmap_emitter {
    const mpmap_keyed_job *job;
    mpmap__ktab local;
    mpmap__kmem mem;
    bool combine;  /* merge partials of different tasks */
    bool sum64;    /* one int64 summed: emit folds inline */
    bool use_comb; /* combine && sum64, and a budget with room for it */
    mpmap__kcomb comb;
    /* Pairs on their way to the combiner: their slots are prefetched when
     * they arrive and summed MPMAP__KRING pairs later, so the cache misses
     * of a table larger than the cache overlap. Empty between tasks. */
    struct {
        mpmap__kckey k;
        uint64_t x;
    } ring[MPMAP__KRING];
    size_t nring, rhead; /* pairs in it, the oldest's place */
    int64_t task;
    int64_t pairs;
    int error; /* first emit failure: MPMAP_ENOMEM / MPMAP_EINVAL */
    char message[MPMAP_MESSAGE_MAX];
    int rank;
    mpmap__kspill spill; /* the local table's runs */
    mpmap__kplan plan;
};

/* One pair (its key's hash h) of em->task into the local table, spilling
 * it when it reaches the budget; the first failure is latched in
 * em->error/message. */
int mpmap__keyed_emit_pair(mpmap_emitter *em, const void *key, size_t keylen, uint64_t h,
                           const void *value);
/* mpmap_emit's way when em->use_comb (a key of up to MPMAP__KCOMB_KEY_MAX
 * bytes). */
int mpmap__kcomb_emit(mpmap_emitter *em, const void *key, size_t keylen, const void *value);
/* Sums the pairs waiting in the ring (at the end of every task). */
int mpmap__kcomb_flush(mpmap_emitter *em);
/* The combiner's sums into the local table as partials of the running
 * task (they merge with any partial there: the combiner serves merging
 * tables only), then an empty combiner. MPMAP_OK or the latched failure. */
int mpmap__kcomb_drain(mpmap_emitter *em);

/* Puts one saved partial of `task` into the local table as an emit would
 * (spilling over the budget). MPMAP_OK, or the failure with em->message. */
int mpmap__keyed_seed(mpmap_emitter *em, const void *key, size_t keylen, int64_t task,
                      const void *value);

/*
 * Collective, before the map: with config->checkpoint_path, a resume reads
 * the manifest on rank 0, plans the remaining tasks and puts the saved state
 * files into the ranks' local tables (file i on rank i mod ranks); a fresh
 * run removes an old checkpoint. Without a path the plan is every task.
 * Returns the agreed code; a failing rank's reason is in msg.
 */
int mpmap__kckpt_begin(MPI_Comm comm, const mpmap_config *config, mpmap_emitter *em, char *msg,
                       size_t msglen);
/*
 * Collective, after an interrupted map: every rank writes its local state
 * (its runs and its table) to PATH.legL.rankR, then rank 0 the manifest
 * PATH naming them and the completed tasks; the previous leg's files go
 * once the new manifest is in place. Returns the agreed code; *done gets
 * the tasks completed in all.
 */
int mpmap__kckpt_save(MPI_Comm comm, const mpmap_config *config, mpmap_emitter *em, int64_t *done,
                      char *msg, size_t msglen);
/* ---- keyed_checkpoint_file.c ----------------------------------------------- */

/* A state file as the manifest names it. */
typedef struct mpmap__kfile {
    uint64_t bytes;
    uint32_t crc; /* CRC32C of the whole file */
    uint32_t zero;
} mpmap__kfile;

/* The manifest: what names the job, the completed tasks, the leg's files. */
typedef struct mpmap__kmanifest {
    char *fingerprint;
    uint32_t fplen;
    int64_t ntasks;
    uint64_t value_size;
    int32_t op, type, leg, nfiles;
    uint64_t nranges;
    mpmap__krange *ranges;
    mpmap__kfile *files;
} mpmap__kmanifest;

/* PATH.legL.rankR */
void mpmap__kstate_name(char *buf, size_t len, const char *path, int leg, int rank);
/* Removes path's state files but leg keep's first `files` (keep -1: all).
 * 0 or MPMAP_EIO. */
int mpmap__kstate_remove(const char *path, int keep, int files);
/* Writes em's runs and table to `file`, synced; its size and CRC. 0, or
 * MPMAP_EIO with msg. */
int mpmap__kstate_write(mpmap_emitter *em, const char *file, uint64_t *bytes, uint32_t *crc,
                        char *msg, size_t msglen);
/* Puts the partials of `file` (checked against want) into em's table. 0,
 * MPMAP_ERESUME (missing, damaged) or the table's failure, with msg. */
int mpmap__kstate_seed(mpmap_emitter *em, const char *file, const mpmap__kfile *want, char *msg,
                       size_t msglen);
int mpmap__kmanifest_write(const char *path, const mpmap__kmanifest *m, char *msg, size_t msglen);
/* Rank 0: reads the manifest of a resume and checks it against the job
 * (fingerprint, ntasks, value_size, op, type). 0 or MPMAP_ERESUME/EIO/ENOMEM
 * with msg. */
int mpmap__kmanifest_check(const char *path, const mpmap_config *cfg, const mpmap_keyed_job *job,
                           mpmap__kmanifest *m, char *msg, size_t msglen);
void mpmap__kmanifest_free(mpmap__kmanifest *m);
/* What a manifest says, without resuming (mpmap-status): 0, or -1 with err. */
int mpmap__kckpt_inspect(const char *path, int64_t *ntasks, int64_t *done, int *leg, char *err,
                         size_t errlen);

/* ---- keyed_shuffle.c ----------------------------------------------------- */

/* Agrees on the worst code across ranks (codes are <= 0). Collective. */
int mpmap__keyed_agree(MPI_Comm comm, int code);
/* Shuffles loc to the owners in rounds of job->round_bytes; fills own,
 * merging partials of different tasks when combine. Collective. */
int mpmap__keyed_shuffle(MPI_Comm comm, const mpmap_keyed_job *job, mpmap__ktab *loc, bool combine,
                         mpmap__ktab *own, mpmap__kspill *own_spill, mpmap_keyed_result *res,
                         char *msg, size_t msglen);
/* Folds every owned key's partials in task order and serialises the keys
 * sorted as (u64 keylen, key, value). *out is malloc'd. */
int mpmap__keyed_fold_and_pack(mpmap__ktab *own, const mpmap_keyed_job *job, char **out,
                               size_t *outlen);

#endif
