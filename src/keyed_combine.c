/*
 * The keyed map-reduce's combiner (keyed_internal.h): the map's table for
 * one int64 summed over keys whose partials merge, as counting does, and
 * the emitter's way into it (a ring of pairs whose slots are prefetched).
 * Its sums reach the local table (keyed_table.c) as partials when it is
 * full and once the map ends.
 */
#include "keyed_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- the table ------------------------------------------------------------ */

void mpmap__kcomb_init(mpmap__kcomb *c, size_t max_bytes, mpmap__kmem *mem)
{
    *c = (mpmap__kcomb){ .max_bytes = max_bytes, .mem = mem };
}

static size_t kcomb_bytes(const mpmap__kcomb *c)
{
    return c->cap * sizeof(mpmap__kcslot) + c->caparena;
}

/* Takes `extra` more bytes for the combiner if its bound and the budget
 * allow. */
static bool kcomb_take(mpmap__kcomb *c, size_t extra)
{
    mpmap__kmem *m = c->mem;
    if (kcomb_bytes(c) + extra > c->max_bytes || m->used + extra > m->budget)
        return false;
    m->used += extra;
    if (m->used > m->peak)
        m->peak = m->used;
    return true;
}

void mpmap__kckey_bytes(uint64_t w0, uint64_t w1, size_t len, char buf[16])
{
    /* undoes mpmap__kckey_of */
    if (len > 8) {
        memcpy(buf, &w0, 8);
        memcpy(buf + len - 8, &w1, 8);
    } else if (len == 8) {
        memcpy(buf, &w0, 8);
    } else if (len >= 4) {
        uint32_t lo = (uint32_t)w0, hi = (uint32_t)(w0 >> 32);
        memcpy(buf, &lo, 4);
        memcpy(buf + len - 4, &hi, 4);
    } else if (len > 0) {
        buf[0] = (char)(w0 & 0xff);
        buf[len >> 1] = (char)(w0 >> 8 & 0xff);
        buf[len - 1] = (char)(w0 >> 16 & 0xff);
    }
}

/* Slot s's key bytes (in buf up to 16 bytes). */
static const char *kcomb_bytes_of(const mpmap__kcomb *c, const mpmap__kcslot *s, char buf[16])
{
    if (s->len > 16)
        return c->arena + s->off;
    mpmap__kckey_bytes(s->w0, s->w1, s->len, buf);
    return buf;
}

static uint64_t kcomb_hash_of(const mpmap__kcomb *c, const mpmap__kcslot *s)
{
    return s->len <= 16 ? mpmap__key_hash_words(s->w0, s->w1, s->len)
                        : mpmap__key_hash(c->arena + s->off, s->len);
}

static bool kcomb_grow(mpmap__kcomb *c)
{
    size_t ncap = c->cap ? 2 * c->cap : 1024;
    if (!kcomb_take(c, (ncap - c->cap) * sizeof(mpmap__kcslot)))
        return false;
    mpmap__kcslot *s = mpmap__index_alloc(ncap * sizeof *s);
    if (!s) {
        c->mem->used -= (ncap - c->cap) * sizeof(mpmap__kcslot);
        return false;
    }
    for (size_t i = 0; i < ncap; i++)
        s[i].len = MPMAP__KCOMB_EMPTY;
    for (size_t i = 0; i < c->cap; i++) {
        if (c->slots[i].len == MPMAP__KCOMB_EMPTY)
            continue;
        size_t j = (size_t)kcomb_hash_of(c, &c->slots[i]) & (ncap - 1);
        while (s[j].len != MPMAP__KCOMB_EMPTY)
            j = (j + 1) & (ncap - 1);
        s[j] = c->slots[i];
    }
    free(c->slots);
    c->slots = s;
    c->cap = ncap;
    return true;
}

int mpmap__kcomb_add(mpmap__kcomb *c, const mpmap__kckey *k, const void *bytes, uint64_t x)
{
    /* at most 3/4 full, so probes stay short */
    if ((c->n + 1) * 4 > c->cap * 3 && !kcomb_grow(c))
        return MPMAP__KCOMB_FULL;
    size_t mask = c->cap - 1, i = (size_t)k->hash & mask, len = k->len;
    for (;; i = (i + 1) & mask) {
        mpmap__kcslot *s = &c->slots[i];
        if (s->len == MPMAP__KCOMB_EMPTY)
            break;
        if (s->w0 == k->w0 && s->w1 == k->w1 && s->len == len &&
            (len <= 16 || !memcmp(c->arena + s->off + 8, (const char *)bytes + 8, len - 16))) {
            s->sum += x;
            return MPMAP_OK;
        }
    }
    uint32_t off = 0;
    if (len > 16) {
        if (c->narena + len > c->caparena) {
            size_t ncap = c->caparena ? c->caparena : 4096;
            while (ncap < c->narena + len)
                ncap *= 2;
            if (ncap > UINT32_MAX || !kcomb_take(c, ncap - c->caparena))
                return MPMAP__KCOMB_FULL;
            char *a = realloc(c->arena, ncap);
            if (!a) {
                c->mem->used -= ncap - c->caparena;
                return MPMAP__KCOMB_FULL;
            }
            c->arena = a;
            c->caparena = ncap;
        }
        off = (uint32_t)c->narena;
        memcpy(c->arena + off, bytes, len);
        c->narena += len;
    }
    /* clang-format off */
    c->slots[i] = (mpmap__kcslot){ .w0 = k->w0, .w1 = k->w1, .sum = x, .len = (uint32_t)len,
                                   .off = off };
    /* clang-format on */
    c->n++;
    return MPMAP_OK;
}

const char *mpmap__kcomb_key(const mpmap__kcomb *c, size_t i, char buf[16], uint64_t *hash)
{
    const mpmap__kcslot *s = &c->slots[i];
    if (s->len == MPMAP__KCOMB_EMPTY)
        return NULL;
    *hash = kcomb_hash_of(c, s);
    return kcomb_bytes_of(c, s, buf);
}

void mpmap__kcomb_clear(mpmap__kcomb *c)
{
    for (size_t i = 0; i < c->cap; i++)
        c->slots[i].len = MPMAP__KCOMB_EMPTY;
    c->n = 0;
    c->narena = 0;
}

void mpmap__kcomb_free(mpmap__kcomb *c)
{
    if (c->mem)
        c->mem->used -= kcomb_bytes(c);
    free(c->slots);
    free(c->arena);
    *c = (mpmap__kcomb){ .max_bytes = c->max_bytes, .mem = c->mem };
}

/* ---- the emitter's side ---------------------------------------------------- */

int mpmap__kcomb_drain(mpmap_emitter *em)
{
    mpmap__kcomb *c = &em->comb;
    if (c->n == 0)
        return MPMAP_OK;
    /* room for its keys at once, short of the ones the table may hold */
    if (c->n > em->local.nentries)
        mpmap__ktab_reserve(&em->local, c->n - em->local.nentries);
    char buf[16];
    for (size_t i = 0; i < c->cap; i++) {
        uint64_t h;
        const char *key = mpmap__kcomb_key(c, i, buf, &h);
        if (!key)
            continue;
        const mpmap__kcslot *sl = &c->slots[i];
        int rc = mpmap__keyed_emit_pair(em, key, sl->len, h, &sl->sum);
        if (rc != MPMAP_OK)
            return rc;
    }
    mpmap__kcomb_clear(c);
    return MPMAP_OK;
}

/* One pair into the combiner, or, when it has no room even emptied, the
 * table (bytes: the key, needed over 16 bytes and for the table). */
static int comb_add(mpmap_emitter *em, const mpmap__kckey *k, const void *bytes, uint64_t x)
{
    int rc = mpmap__kcomb_add(&em->comb, k, bytes, x);
    if (rc == MPMAP__KCOMB_FULL && (rc = mpmap__kcomb_drain(em)) == MPMAP_OK)
        rc = mpmap__kcomb_add(&em->comb, k, bytes, x);
    if (rc != MPMAP__KCOMB_FULL)
        return rc;
    char buf[16];
    if (k->len <= 16) { /* the ring keeps no bytes */
        mpmap__kckey_bytes(k->w0, k->w1, k->len, buf);
        bytes = buf;
    }
    return mpmap__keyed_emit_pair(em, bytes, k->len, k->hash, &x);
}

int mpmap__kcomb_flush(mpmap_emitter *em)
{
    int rc = MPMAP_OK;
    for (size_t i = 0; i < em->nring && rc == MPMAP_OK; i++) {
        size_t r = (em->rhead + i) % MPMAP__KRING;
        rc = comb_add(em, &em->ring[r].k, NULL, em->ring[r].x);
    }
    em->nring = 0;
    em->rhead = 0;
    return rc;
}

int mpmap__kcomb_emit(mpmap_emitter *em, const void *key, size_t keylen, const void *value)
{
    mpmap__kckey k = mpmap__kckey_of(key, keylen);
    uint64_t x;
    memcpy(&x, value, 8);
    if (keylen > 16)
        return comb_add(em, &k, key, x);
    /* Into the ring, its slot on its way to the cache; the oldest pair out
     * of it into the combiner. */
    mpmap__kcomb *c = &em->comb;
    if (c->cap)
        __builtin_prefetch(&c->slots[(size_t)k.hash & (c->cap - 1)], 1);
    size_t r;
    int rc = MPMAP_OK;
    if (em->nring == MPMAP__KRING) {
        r = em->rhead;
        rc = comb_add(em, &em->ring[r].k, NULL, em->ring[r].x);
        em->rhead = (r + 1) % MPMAP__KRING;
    } else {
        r = (em->rhead + em->nring++) % MPMAP__KRING;
    }
    em->ring[r].k = k;
    em->ring[r].x = x;
    return rc;
}
