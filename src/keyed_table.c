/*
 * The keyed map-reduce's hash table (keyed_internal.h): keys with their
 * (task, partial) lists, every byte counted against the rank's budget.
 */
#define _DEFAULT_SOURCE /* madvise */
#include "keyed_internal.h"

#include "reduce.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* A hash index's array: probed at random, so beyond the cache every probe
 * of a large one would also miss the TLB on 4 KiB pages; on 2 MiB pages
 * (where the kernel grants them) it does not. free() releases it. */
void *mpmap__index_alloc(size_t bytes)
{
    const size_t huge = (size_t)2 << 20;
    if (bytes < huge)
        return malloc(bytes);
    void *p = NULL;
    if (posix_memalign(&p, huge, bytes) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint: 4 KiB pages work too */
#endif
    return p;
}

uint64_t mpmap__keyed_hash(const void *key, size_t len) { return mpmap__key_hash(key, len); }

int mpmap__keyed_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* Grows *buf (cap elements of size sz) to hold need elements, counting the
 * bytes against the budget. MPMAP_ENOMEM when over budget or malloc fails. */
static int grow(mpmap__kmem *m, void **buf, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap)
        return MPMAP_OK;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap = ncap / 2 * 3 + 1;
    size_t extra = (ncap - *cap) * sz;
    if (m->used + extra > m->budget) {
        /* the exact need may still fit */
        ncap = need;
        extra = (ncap - *cap) * sz;
        if (m->used + extra > m->budget)
            return MPMAP_ENOMEM;
    }
    void *p = realloc(*buf, ncap * sz);
    if (!p)
        return MPMAP_ENOMEM;
    *buf = p;
    *cap = ncap;
    m->used += extra;
    if (m->used > m->peak)
        m->peak = m->used;
    return MPMAP_OK;
}

void mpmap__ktab_init(mpmap__ktab *t, size_t value_size, mpmap__kmem *mem)
{
    *t = (mpmap__ktab){ .rec_size = 16 + (value_size + 7) / 8 * 8, .mem = mem };
}

size_t mpmap__ktab_bytes(const mpmap__ktab *t)
{
    return t->capentries * sizeof(mpmap__kentry) + t->capkeys + t->caprecs * t->rec_size +
           t->capindex * sizeof(mpmap__kslot);
}

void mpmap__ktab_free(mpmap__ktab *t)
{
    if (t->mem)
        t->mem->used -= mpmap__ktab_bytes(t);
    free(t->entries);
    free(t->keys);
    free(t->recs);
    free(t->index);
    mpmap__kmem *m = t->mem;
    *t = (mpmap__ktab){ .rec_size = t->rec_size, .mem = m };
}

static int ktab_rehash(mpmap__ktab *t, size_t ncap)
{
    mpmap__kmem *m = t->mem;
    size_t extra = ncap * sizeof(mpmap__kslot);
    if (m->used + extra > m->budget)
        return MPMAP_ENOMEM;
    mpmap__kslot *idx = mpmap__index_alloc(extra);
    if (!idx)
        return MPMAP_ENOMEM;
    for (size_t i = 0; i < ncap; i++)
        idx[i] = (mpmap__kslot){ 0, -1 };
    for (size_t e = 0; e < t->nentries; e++) {
        uint64_t h = t->entries[e].hash;
        size_t s = (size_t)h & (ncap - 1);
        while (idx[s].entry >= 0)
            s = (s + 1) & (ncap - 1);
        idx[s] = (mpmap__kslot){ h, (int64_t)e };
    }
    m->used += extra;
    m->used -= t->capindex * sizeof(mpmap__kslot);
    if (m->used > m->peak)
        m->peak = m->used;
    free(t->index);
    t->index = idx;
    t->capindex = ncap;
    return MPMAP_OK;
}

void mpmap__ktab_reserve(mpmap__ktab *t, size_t n)
{
    size_t cap = t->capindex ? t->capindex : 1024;
    while ((t->nentries + n + 1) * 10 > cap * 7)
        cap *= 2;
    if (cap > t->capindex)
        (void)ktab_rehash(t, cap); /* over the budget: the table grows as it goes */
}

/* Finds key, or adds it (with no partials) when add; *e gets its index or -1. */
int mpmap__ktab_find(mpmap__ktab *t, const void *key, size_t len, uint64_t h, bool add, int64_t *e)
{
    *e = -1;
    if (t->capindex == 0 || (t->nentries + 1) * 10 > t->capindex * 7) {
        if (!add && t->capindex == 0)
            return MPMAP_OK;
        if (add) {
            int rc = ktab_rehash(t, t->capindex ? t->capindex * 2 : 1024);
            if (rc)
                return rc;
        }
    }
    size_t mask = t->capindex - 1;
    size_t s = (size_t)h & mask;
    for (;;) {
        int64_t i = t->index[s].entry;
        if (i < 0)
            break;
        if (t->index[s].hash == h) {
            const mpmap__kentry *k = &t->entries[i];
            if (k->keylen == len && (len == 0 || !memcmp(t->keys + k->keyoff, key, len))) {
                *e = i;
                return MPMAP_OK;
            }
        }
        s = (s + 1) & mask;
    }
    if (!add)
        return MPMAP_OK;
    int rc =
        grow(t->mem, (void **)&t->entries, &t->capentries, t->nentries + 1, sizeof(mpmap__kentry));
    if (rc == MPMAP_OK)
        rc = grow(t->mem, (void **)&t->keys, &t->capkeys, t->nkeys_bytes + len + 1, 1);
    if (rc)
        return rc;
    if (len)
        memcpy(t->keys + t->nkeys_bytes, key, len);
    t->entries[t->nentries] = (mpmap__kentry){
        .hash = h, .keyoff = t->nkeys_bytes, .keylen = len, .first = -1, .last = -1
    };
    t->nkeys_bytes += len;
    t->index[s] = (mpmap__kslot){ h, (int64_t)t->nentries };
    *e = (int64_t)t->nentries++;
    return MPMAP_OK;
}

/* Appends a (task, value) partial to entry e. */
int mpmap__ktab_append(mpmap__ktab *t, int64_t e, int64_t task, const void *value,
                       size_t value_size)
{
    int rc = grow(t->mem, (void **)&t->recs, &t->caprecs, t->nrecs + 1, t->rec_size);
    if (rc)
        return rc;
    int64_t r = (int64_t)t->nrecs++;
    *MPMAP__REC_TASK(t, r) = task;
    *MPMAP__REC_NEXT(t, r) = -1;
    memcpy(MPMAP__REC_VALUE(t, r), value, value_size);
    mpmap__kentry *k = &t->entries[e];
    if (k->last >= 0)
        *MPMAP__REC_NEXT(t, k->last) = r;
    else
        k->first = r;
    k->last = r;
    k->npartials++;
    return MPMAP_OK;
}

void mpmap__keyed_fold(const mpmap_keyed_job *job, const void *x, void *acc)
{
    mpmap_reduce_fold(job->op, job->type, job->value_size, x, acc, job->fold, job->context);
}
