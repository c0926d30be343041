/*
 * Spilling the keyed tables to disk (keyed_internal.h): when a rank's
 * tables reach the budget, their entries go to a run file and the table
 * starts again empty; the runs are read back for the shuffle (sender side)
 * or merged by key for the fold (owner side).
 *
 * A run is the shuffle's wire format, entry after entry:
 *   u64 keylen, u64 n, key bytes, n x (i64 task, value).
 * Owner runs are sorted by key so that any number of them merge in one
 * pass; sender runs need no order (the owner sorts).
 *
 * Run files are unnamed (O_TMPFILE, or created and unlinked at once where
 * the file system lacks it): a killed run leaves nothing in the spill
 * directory, and two runs sharing it cannot collide.
 *
 * Why a spill never splits one task's partial of a key: the partial of
 * (key, task) folds that task's values in emission order, and folding two
 * halves of it separately would change a double sum's bits. A spill during
 * a task therefore keeps that task's partials in the table (they are each
 * key's last record, keyed.c) unless partials of different tasks are merged
 * anyway (combine: integer or declared-commutative folds).
 */
#define _GNU_SOURCE /* O_TMPFILE */
#include "keyed_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Above this many owner runs, groups of them are first merged into one, so
 * the final merge holds few files open at once. */
#define KSPILL_FAN_IN 64

void mpmap__kspill_init(mpmap__kspill *s, const char *dir, int rank)
{
    *s = (mpmap__kspill){ .dir = dir, .rank = rank };
}

static int spill_fail(mpmap__kspill *s, int err, const char *what)
{
    if (!s->error[0])
        snprintf(s->error, sizeof s->error, "rank %d: cannot %s a keyed spill file in '%s': %s",
                 s->rank, what, s->dir ? s->dir : "?", strerror(err));
    return err == ENOMEM ? MPMAP_ENOMEM : MPMAP_EIO;
}

static FILE *open_unnamed(mpmap__kspill *s, int *err)
{
    int fd = -1;
#ifdef O_TMPFILE
    fd = open(s->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
#endif
    for (int attempt = 0; fd < 0 && attempt < 100; attempt++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/.mpmap-spill-%ld-%d-%lld-%d", s->dir, (long)getpid(),
                 s->rank, (long long)s->written, attempt);
        fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0)
            (void)unlink(path);
        else if (errno != EEXIST)
            break;
    }
    if (fd < 0) {
        *err = errno;
        return NULL;
    }
    FILE *f = fdopen(fd, "w+b");
    if (!f) {
        *err = errno;
        close(fd);
    }
    return f;
}

static int add_run(mpmap__kspill *s, FILE *f, int64_t entries, size_t bytes)
{
    if (s->nruns == s->capruns) {
        size_t ncap = s->capruns ? 2 * s->capruns : 8;
        mpmap__krun *p = realloc(s->runs, ncap * sizeof *p);
        if (!p)
            return MPMAP_ENOMEM;
        s->runs = p;
        s->capruns = ncap;
    }
    s->runs[s->nruns++] = (mpmap__krun){ .f = f, .entries = entries, .bytes = bytes };
    s->written++;
    s->bytes += bytes;
    return MPMAP_OK;
}

static int put(FILE *f, const void *p, size_t n, size_t *bytes)
{
    *bytes += n;
    return n == 0 || fwrite(p, 1, n, f) == n ? 0 : -1;
}

/* Writes the header and key of one entry (n partials follow). */
static int put_head(FILE *f, const char *key, uint64_t len, uint64_t n, size_t *bytes)
{
    if (put(f, &len, 8, bytes) || put(f, &n, 8, bytes))
        return -1;
    return put(f, key, len, bytes);
}

static int finish_run(mpmap__kspill *s, FILE *f, int64_t entries, size_t bytes)
{
    int rc = MPMAP_OK;
    if (fflush(f) != 0 || ferror(f))
        rc = spill_fail(s, errno ? errno : EIO, "write");
    else if (add_run(s, f, entries, bytes) != MPMAP_OK)
        rc = spill_fail(s, ENOMEM, "index");
    if (rc != MPMAP_OK)
        fclose(f);
    return rc;
}

/* The order of the entries in a sorted run. */
typedef struct kspill_key {
    const char *key;
    size_t len;
    int64_t entry;
} kspill_key;

static int cmp_kspill_key(const void *a, const void *b)
{
    const kspill_key *x = a, *y = b;
    return mpmap__keyed_cmp(x->key, x->len, y->key, y->len);
}

int mpmap__kspill_table(mpmap__kspill *s, const mpmap__ktab *t, size_t value_size, bool sorted,
                        int64_t keep_task)
{
    int err = 0;
    FILE *f = open_unnamed(s, &err);
    if (!f)
        return spill_fail(s, err, "create");
    size_t n = t->nentries;
    kspill_key *order = NULL;
    if (sorted && n > 0) {
        order = malloc(n * sizeof *order);
        if (!order) {
            fclose(f);
            return spill_fail(s, ENOMEM, "sort");
        }
        /* clang-format off */
        for (size_t e = 0; e < n; e++)
            order[e] = (kspill_key){ t->keys + t->entries[e].keyoff, t->entries[e].keylen,
                                     (int64_t)e };
        /* clang-format on */
        qsort(order, n, sizeof *order, cmp_kspill_key);
    }
    size_t bytes = 0;
    int64_t entries = 0;
    int bad = 0;
    for (size_t i = 0; i < n && !bad; i++) {
        const mpmap__kentry *k = &t->entries[order ? (size_t)order[i].entry : i];
        int64_t np = k->npartials;
        if (keep_task >= 0 && k->last >= 0 && *MPMAP__REC_TASK(t, k->last) == keep_task)
            np--; /* the running task's partial stays in the table */
        if (np <= 0)
            continue;
        bad = put_head(f, t->keys + k->keyoff, k->keylen, (uint64_t)np, &bytes);
        int64_t r = k->first;
        for (int64_t j = 0; j < np && !bad; j++, r = *MPMAP__REC_NEXT(t, r))
            bad = put(f, MPMAP__REC_TASK(t, r), 8, &bytes) ||
                  put(f, MPMAP__REC_VALUE(t, r), value_size, &bytes);
        entries++;
    }
    free(order);
    if (bad) {
        int e = errno ? errno : EIO;
        fclose(f);
        return spill_fail(s, e, "write");
    }
    return finish_run(s, f, entries, bytes);
}

/* ---- reading runs back ---------------------------------------------------- */

int mpmap__krun_rewind(mpmap__kspill *s, size_t i)
{
    if (fflush(s->runs[i].f) != 0 || fseeko(s->runs[i].f, 0, SEEK_SET) != 0)
        return spill_fail(s, errno, "read");
    s->runs[i].left = s->runs[i].entries;
    return MPMAP_OK;
}

int mpmap__krun_next(mpmap__kspill *s, size_t i, size_t value_size, mpmap__kentry_buf *b)
{
    mpmap__krun *run = &s->runs[i];
    if (run->left <= 0)
        return 0;
    uint64_t head[2];
    if (fread(head, 8, 2, run->f) != 2)
        return spill_fail(s, ferror(run->f) ? errno : EIO, "read");
    size_t need = head[0] + head[1] * (8 + value_size);
    if (need > b->cap) {
        char *p = realloc(b->data, need + 1);
        if (!p)
            return spill_fail(s, ENOMEM, "read");
        b->data = p;
        b->cap = need + 1;
    }
    if (need > 0 && fread(b->data, 1, need, run->f) != need)
        return spill_fail(s, ferror(run->f) ? errno : EIO, "read");
    b->keylen = head[0];
    b->n = head[1];
    run->left--;
    return 1;
}

void mpmap__kspill_close_run(mpmap__kspill *s, size_t i)
{
    if (s->runs[i].f)
        fclose(s->runs[i].f);
    s->runs[i].f = NULL;
}

void mpmap__kspill_free(mpmap__kspill *s)
{
    for (size_t i = 0; i < s->nruns; i++)
        mpmap__kspill_close_run(s, i);
    free(s->runs);
    s->runs = NULL;
    s->nruns = s->capruns = 0;
}

/* ---- merging sorted runs by key ------------------------------------------ */

typedef struct merge_head {
    mpmap__kentry_buf b;
    int live;
} merge_head;

/* Merges runs [first, first + count) of s, sorted by key, calling emit once
 * per key with all its partials (n x (task, value), in run order). */
static int merge_runs(mpmap__kspill *s, size_t first, size_t count, size_t vs,
                      int (*emit)(const char *key, size_t len, const char *partials, size_t n,
                                  void *ctx),
                      void *ctx)
{
    merge_head *h = calloc(count, sizeof *h);
    mpmap__kentry_buf acc = { 0 };
    if (!h)
        return spill_fail(s, ENOMEM, "merge");
    int rc = MPMAP_OK;
    for (size_t j = 0; j < count && rc == MPMAP_OK; j++) {
        rc = mpmap__krun_rewind(s, first + j);
        if (rc == MPMAP_OK) {
            int got = mpmap__krun_next(s, first + j, vs, &h[j].b);
            rc = got < 0 ? got : MPMAP_OK;
            h[j].live = got > 0;
        }
    }
    size_t psize = 8 + vs;
    while (rc == MPMAP_OK) {
        int best = -1;
        for (size_t j = 0; j < count; j++)
            if (h[j].live && (best < 0 || mpmap__keyed_cmp(h[j].b.data, h[j].b.keylen,
                                                           h[best].b.data, h[best].b.keylen) < 0))
                best = (int)j;
        if (best < 0)
            break;
        /* The key and every partial of it, from each run holding it. */
        size_t keylen = h[best].b.keylen, n = 0;
        for (size_t j = (size_t)best; j < count && rc == MPMAP_OK; j++) {
            if (!h[j].live ||
                mpmap__keyed_cmp(h[j].b.data, h[j].b.keylen, h[best].b.data, keylen) != 0)
                continue;
            size_t need = keylen + (n + h[j].b.n) * psize;
            if (need > acc.cap) {
                char *p = realloc(acc.data, need * 2 + 1);
                if (!p) {
                    rc = spill_fail(s, ENOMEM, "merge");
                    break;
                }
                acc.data = p;
                acc.cap = need * 2 + 1;
            }
            if (n == 0)
                memcpy(acc.data, h[j].b.data, keylen);
            memcpy(acc.data + keylen + n * psize, h[j].b.data + keylen, h[j].b.n * psize);
            n += h[j].b.n;
            if ((size_t)best != j) {
                int got = mpmap__krun_next(s, first + j, vs, &h[j].b);
                rc = got < 0 ? got : rc;
                h[j].live = got > 0;
            }
        }
        if (rc != MPMAP_OK)
            break;
        int got = mpmap__krun_next(s, first + (size_t)best, vs, &h[best].b);
        rc = got < 0 ? got : MPMAP_OK;
        h[best].live = got > 0;
        if (rc == MPMAP_OK)
            rc = emit(acc.data, keylen, acc.data + keylen, n, ctx);
    }
    for (size_t j = 0; j < count; j++)
        free(h[j].b.data);
    free(h);
    free(acc.data);
    return rc;
}

typedef struct write_ctx {
    mpmap__kspill *s;
    FILE *f;
    size_t vs;
    size_t bytes;
    int64_t entries;
} write_ctx;

static int emit_to_run(const char *key, size_t len, const char *partials, size_t n, void *vctx)
{
    write_ctx *w = vctx;
    if (put_head(w->f, key, len, n, &w->bytes) || put(w->f, partials, n * (8 + w->vs), &w->bytes))
        return spill_fail(w->s, errno ? errno : EIO, "write");
    w->entries++;
    return MPMAP_OK;
}

int mpmap__kspill_merge(mpmap__kspill *s, size_t vs,
                        int (*emit)(const char *key, size_t len, const char *partials, size_t n,
                                    void *ctx),
                        void *ctx)
{
    /* Fold groups into single runs until one pass can take them all. */
    while (s->nruns > KSPILL_FAN_IN) {
        int err = 0;
        write_ctx w = { .s = s, .f = open_unnamed(s, &err), .vs = vs };
        if (!w.f)
            return spill_fail(s, err, "create");
        int rc = merge_runs(s, 0, KSPILL_FAN_IN, vs, emit_to_run, &w);
        if (rc == MPMAP_OK)
            rc = finish_run(s, w.f, w.entries, w.bytes);
        else
            fclose(w.f);
        if (rc != MPMAP_OK)
            return rc;
        for (size_t j = 0; j < KSPILL_FAN_IN; j++)
            mpmap__kspill_close_run(s, j);
        memmove(s->runs, s->runs + KSPILL_FAN_IN, (s->nruns - KSPILL_FAN_IN) * sizeof *s->runs);
        s->nruns -= KSPILL_FAN_IN;
    }
    return merge_runs(s, 0, s->nruns, vs, emit, ctx);
}

/* ---- the shuffle and the fold after a spill -------------------------------- */

/* Sender side after a spill: the next piece of this rank's runs (up to
 * a quarter of the budget) into loc, read in run order. pend holds an entry read
 * but not yet taken (loc was full). Returns 1 when loc got anything. */

/* Takes the pending entry into loc: MPMAP_OK, or MPMAP_ENOMEM with loc as
 * it was before. */
static int take_pending(mpmap__ktab *loc, const mpmap__kentry_buf *b, size_t vs)
{
    const char *key = b->data;
    int64_t e;
    int rc = mpmap__ktab_find(loc, key, b->keylen, mpmap__keyed_hash(key, b->keylen), true, &e);
    if (rc != MPMAP_OK)
        return rc;
    int64_t had = loc->entries[e].npartials, last = loc->entries[e].last;
    for (size_t i = 0; rc == MPMAP_OK && i < b->n; i++) {
        const char *p = key + b->keylen + i * (8 + vs);
        int64_t task;
        memcpy(&task, p, 8);
        rc = mpmap__ktab_append(loc, e, task, p + 8, vs);
    }
    if (rc != MPMAP_OK) { /* unlink what was appended; the arena keeps the bytes */
        mpmap__kentry *k = &loc->entries[e];
        k->npartials = had;
        k->last = last;
        if (last >= 0)
            *MPMAP__REC_NEXT(loc, last) = -1;
        else
            k->first = -1;
    }
    return rc;
}

int mpmap__kspill_load_piece(mpmap__kspill *sp, size_t limit, size_t vs, mpmap__kpiece_reader *pr,
                             mpmap__ktab *loc, mpmap__ktab *own, mpmap__kspill *own_spill,
                             int *code)
{
    /* Counted in run bytes, not table bytes: a table's first hash index
     * alone may be a large share of a small budget. */
    size_t taken = 0, bytes = 0;
    while (pr->run < sp->nruns && bytes < limit) {
        if (!pr->has_pend) {
            int got = mpmap__krun_next(sp, pr->run, vs, &pr->pend);
            if (got < 0) {
                *code = got;
                break;
            }
            if (got == 0) {
                mpmap__kspill_close_run(sp, pr->run++);
                if (pr->run < sp->nruns && (*code = mpmap__krun_rewind(sp, pr->run)) != 0)
                    break;
                continue;
            }
            pr->has_pend = true;
        }
        int rc = take_pending(loc, &pr->pend, vs);
        if (rc == MPMAP_ENOMEM && taken == 0 && own->nrecs > 0) {
            /* The keys this rank owns fill the budget: they go to a run. */
            if ((rc = mpmap__kspill_table(own_spill, own, vs, true, -1)) == MPMAP_OK) {
                mpmap__ktab_free(own);
                rc = take_pending(loc, &pr->pend, vs);
            }
        }
        if (rc != MPMAP_OK) {
            /* Over budget: this piece goes as it is and the next one
             * starts with the pending entry; alone it is too big. */
            if (taken == 0)
                *code = rc;
            break;
        }
        pr->has_pend = false;
        taken++;
        bytes += 16 + pr->pend.keylen + pr->pend.n * (8 + vs);
    }
    return taken > 0;
}

/* Owner side after a spill: folds every key of the merged runs in task
 * order and packs it as mpmap__keyed_fold_and_pack does. */

static int cmp_part(const void *a, const void *b)
{
    const mpmap__kpart_ref *x = a, *y = b;
    if (x->task != y->task)
        return x->task < y->task ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

int mpmap__kspill_fold_packed(const char *key, size_t len, const char *parts, size_t n, void *vctx)
{
    mpmap__kpack *c = vctx;
    size_t vs = c->job->value_size, rec = 8 + vs;
    if (n > c->refcap) {
        mpmap__kpart_ref *r = realloc(c->refs, n * sizeof *r);
        if (!r)
            return MPMAP_ENOMEM;
        c->refs = r;
        c->refcap = n;
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(&c->refs[i].task, parts + i * rec, 8);
        c->refs[i].index = i;
    }
    qsort(c->refs, n, sizeof *c->refs, cmp_part);
    size_t need = c->len + 8 + len + vs;
    if (need > c->cap) {
        size_t ncap = need > 2 * c->cap ? need : 2 * c->cap;
        char *b = realloc(c->buf, ncap);
        if (!b)
            return MPMAP_ENOMEM;
        c->buf = b;
        c->cap = ncap;
    }
    char *out = c->buf + c->len;
    uint64_t len64 = len;
    memcpy(out, &len64, 8);
    memcpy(out + 8, key, len);
    memcpy(c->acc, parts + c->refs[0].index * rec + 8, vs);
    for (size_t i = 1; i < n; i++) {
        memcpy(c->x, parts + c->refs[i].index * rec + 8, vs);
        mpmap__keyed_fold(c->job, c->x, c->acc);
    }
    memcpy(out + 8 + len, c->acc, vs);
    c->len = need;
    c->keys++;
    return MPMAP_OK;
}
