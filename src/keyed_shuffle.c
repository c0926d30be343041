/*
 * The keyed map-reduce's shuffle and owner fold (keyed_internal.h): each
 * key goes to its owner, (hash >> 32) % ranks, in MPI_Alltoallv rounds of
 * bounded bytes; the owner then folds a key's partials in task order, which
 * is what makes the result independent of ranks and schedule (keyed.c).
 */
#include "keyed_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mpmap__keyed_agree(MPI_Comm comm, int code)
{
    int worst = code;
    MPI_Allreduce(&code, &worst, 1, MPI_INT, MPI_MIN, comm);
    return worst;
}

/* Wire format of one (key, partials) entry:
 *   u64 keylen, u64 n, key bytes, n x (i64 task, value). */
static size_t entry_wire_size(const mpmap__kentry *k, size_t vs)
{
    return 16 + k->keylen + (size_t)k->npartials * (8 + vs);
}

static char *pack_entry(const mpmap__ktab *t, const mpmap__kentry *k, size_t vs, char *p)
{
    uint64_t len = k->keylen, n = (uint64_t)k->npartials;
    memcpy(p, &len, 8);
    memcpy(p + 8, &n, 8);
    p += 16;
    memcpy(p, t->keys + k->keyoff, k->keylen);
    p += k->keylen;
    for (int64_t r = k->first; r >= 0; r = *MPMAP__REC_NEXT(t, r)) {
        memcpy(p, MPMAP__REC_TASK(t, r), 8);
        memcpy(p + 8, MPMAP__REC_VALUE(t, r), vs);
        p += 8 + vs;
    }
    return p;
}

/* Takes partials [*i, n) of one received key into the owner's table. */
static int take_key(mpmap__ktab *own, const char *key, uint64_t len, const char *parts, uint64_t n,
                    uint64_t *i, const mpmap_keyed_job *job, bool combine)
{
    size_t vs = job->value_size;
    int64_t e;
    int rc = mpmap__ktab_find(own, key, len, mpmap__keyed_hash(key, len), true, &e);
    while (rc == MPMAP_OK && *i < n) {
        const char *p = parts + *i * (8 + vs);
        int64_t task;
        memcpy(&task, p, 8);
        const mpmap__kentry *k = &own->entries[e];
        if (combine && k->last >= 0)
            mpmap__keyed_fold(job, p + 8, MPMAP__REC_VALUE(own, k->last));
        else
            rc = mpmap__ktab_append(own, e, task, p + 8, vs);
        if (rc == MPMAP_OK)
            ++*i; /* a partial that did not fit is taken again after the spill */
    }
    return rc;
}

/* Takes received entries into the owner's table. When it reaches the
 * budget and spilling is on, the table goes to a sorted run and the entry
 * goes on into an empty one (a key may then have partials in several runs:
 * the final merge brings them together). A table holding no partial cannot
 * be relieved that way: then the budget is too small, MPMAP_ENOMEM. */
static int unpack(mpmap__ktab *own, const char *p, const char *end, const mpmap_keyed_job *job,
                  bool combine, mpmap__kspill *spill)
{
    size_t vs = job->value_size;
    while (p < end) {
        uint64_t len, n, i = 0;
        memcpy(&len, p, 8);
        memcpy(&n, p + 8, 8);
        const char *key = p + 16;
        int rc = MPMAP_OK;
        if (n == 0) { /* a key whose partials went elsewhere: nothing to take */
            p = key + len;
            continue;
        }
        while ((rc = take_key(own, key, len, key + len, n, &i, job, combine)) == MPMAP_ENOMEM &&
               spill && spill->dir && own->nrecs > 0) {
            if ((rc = mpmap__kspill_table(spill, own, vs, true, -1)) != MPMAP_OK)
                return rc;
            mpmap__ktab_free(own);
        }
        if (rc)
            return rc;
        p = key + len + n * (8 + vs);
    }
    return MPMAP_OK;
}

/* Shuffles loc to the owners in rounds; fills own. Collective. */
int mpmap__keyed_shuffle(MPI_Comm comm, const mpmap_keyed_job *job, mpmap__ktab *loc, bool combine,
                         mpmap__ktab *own, mpmap__kspill *own_spill, mpmap_keyed_result *res,
                         char *msg, size_t msglen)
{
    int P, rank;
    MPI_Comm_size(comm, &P);
    MPI_Comm_rank(comm, &rank);
    size_t vs = job->value_size;
    size_t round = job->round_bytes ? job->round_bytes : MPMAP_KEYED_ROUND_DEFAULT;
    size_t per_dest = round / (size_t)P > 0 ? round / (size_t)P : 1;

    /* Entries grouped by owner (a counting sort), with a cursor per owner. */
    size_t n = loc->nentries;
    int64_t *order = malloc((n + 1) * sizeof *order);
    size_t *start = calloc((size_t)P + 1, sizeof *start);
    size_t *cursor = calloc((size_t)P, sizeof *cursor);
    int *scount = malloc((size_t)P * sizeof(int)), *rcount = malloc((size_t)P * sizeof(int));
    int *sdispl = malloc((size_t)P * sizeof(int)), *rdispl = malloc((size_t)P * sizeof(int));
    char *sbuf = NULL, *rbuf = NULL;
    size_t scap = 0, rcap = 0;
    int code = MPMAP_OK;
    if (!order || !start || !cursor || !scount || !rcount || !sdispl || !rdispl)
        code = MPMAP_ENOMEM;
    if (code == MPMAP_OK) {
        for (size_t e = 0; e < n; e++)
            start[(loc->entries[e].hash >> 32) % (uint64_t)P + 1]++;
        for (int d = 0; d < P; d++)
            start[d + 1] += start[d];
        for (int d = 0; d < P; d++)
            cursor[d] = start[d];
        for (size_t e = 0; e < n; e++)
            order[cursor[(loc->entries[e].hash >> 32) % (uint64_t)P]++] = (int64_t)e;
        for (int d = 0; d < P; d++)
            cursor[d] = start[d];
    }
    for (;;) {
        int local = code;
        code = mpmap__keyed_agree(comm, code);
        if (code != MPMAP_OK) {
            if (local != MPMAP_OK && own_spill && own_spill->error[0])
                snprintf(msg, msglen, "%s", own_spill->error);
            else if (local != MPMAP_OK)
                snprintf(msg, msglen,
                         local == MPMAP_ENOMEM
                             ? "rank %d: out of memory or over the keyed memory budget in the "
                               "shuffle%s"
                             : "rank %d: shuffle failed%s",
                         rank, own_spill && own_spill->dir ? "" : " (no spill directory given)");
            break;
        }
        int more = 0;
        for (int d = 0; d < P; d++)
            more |= cursor[d] < start[d + 1];
        int any = 0;
        MPI_Allreduce(&more, &any, 1, MPI_INT, MPI_MAX, comm);
        if (!any)
            break;
        res->rounds++;
        /* This round's bytes per owner: up to per_dest, at least one entry. */
        size_t total = 0;
        for (int d = 0; d < P && code == MPMAP_OK; d++) {
            size_t bytes = 0, c = cursor[d];
            while (c < start[d + 1]) {
                size_t w = entry_wire_size(&loc->entries[order[c]], vs);
                if (bytes > 0 && bytes + w > per_dest)
                    break;
                bytes += w;
                c++;
            }
            if (bytes > (size_t)INT_MAX || total + bytes > (size_t)INT_MAX) {
                code = MPMAP_EINVAL;
                break;
            }
            sdispl[d] = (int)total;
            scount[d] = (int)bytes;
            total += bytes;
        }
        if (code == MPMAP_OK && total > scap) {
            char *p = realloc(sbuf, total);
            if (p) {
                sbuf = p;
                scap = total;
            } else {
                code = MPMAP_ENOMEM;
            }
        }
        if (code != MPMAP_OK) {
            for (int d = 0; d < P; d++)
                scount[d] = sdispl[d] = 0;
        } else {
            for (int d = 0; d < P; d++) {
                char *p = sbuf + sdispl[d];
                while (p < sbuf + sdispl[d] + scount[d]) {
                    const mpmap__kentry *k = &loc->entries[order[cursor[d]++]];
                    p = pack_entry(loc, k, vs, p);
                    res->partials_sent += k->npartials;
                }
            }
        }
        MPI_Alltoall(scount, 1, MPI_INT, rcount, 1, MPI_INT, comm);
        size_t rtotal = 0;
        for (int d = 0; d < P; d++) {
            rdispl[d] = (int)rtotal;
            rtotal += (size_t)rcount[d];
        }
        if (code == MPMAP_OK && rtotal > (size_t)INT_MAX)
            code = MPMAP_EINVAL;
        if (code == MPMAP_OK && rtotal > rcap) {
            char *p = realloc(rbuf, rtotal);
            if (p) {
                rbuf = p;
                rcap = rtotal;
            } else {
                code = MPMAP_ENOMEM;
            }
        }
        /* Every rank must be able to receive before anyone sends. */
        if (mpmap__keyed_agree(comm, code) != MPMAP_OK)
            continue; /* the agreement at the top ends the loop */
        MPI_Alltoallv(sbuf, scount, sdispl, MPI_BYTE, rbuf, rcount, rdispl, MPI_BYTE, comm);
        if (code == MPMAP_OK)
            code = unpack(own, rbuf, rbuf + rtotal, job, combine, own_spill);
    }
    free(order);
    free(start);
    free(cursor);
    free(scount);
    free(rcount);
    free(sdispl);
    free(rdispl);
    free(sbuf);
    free(rbuf);
    return code;
}

/* A key to sort, self-contained: C17's qsort passes no context. */
typedef struct sort_key {
    const char *key;
    size_t len;
    int64_t entry;
} sort_key;

static int cmp_key(const void *a, const void *b)
{
    const sort_key *x = a, *y = b;
    return mpmap__keyed_cmp(x->key, x->len, y->key, y->len);
}

/* A key's first 8 bytes, big-endian and zero-padded: keys whose prefixes
 * differ are in the order of their prefixes. */
typedef struct prefix_key {
    uint64_t prefix;
    int64_t entry;
} prefix_key;

static uint64_t key_prefix(const char *k, size_t len)
{
    const unsigned char *p = (const unsigned char *)k;
    uint64_t v = 0;
    for (size_t i = 0; i < 8; i++)
        v = v << 8 | (i < len ? p[i] : 0);
    return v;
}

/*
 * Sorts t's entries by key bytewise (a shorter prefix first): a radix sort
 * by prefix, byte by byte from the last (passes where every key has the
 * same byte skipped), then the keys of one prefix, which may differ further
 * on, by comparison. a has n entries; tmp room for n more. Returns the one
 * of the two that holds the result, or NULL when out of memory.
 */
static prefix_key *sort_by_key(prefix_key *a, prefix_key *tmp, size_t n, const mpmap__ktab *t)
{
    for (int shift = 0; shift < 64; shift += 8) {
        size_t count[256] = { 0 };
        for (size_t i = 0; i < n; i++)
            count[a[i].prefix >> shift & 0xff]++;
        if (n == 0 || count[a[0].prefix >> shift & 0xff] == n)
            continue;
        size_t pos = 0;
        for (int d = 0; d < 256; d++) {
            size_t c = count[d];
            count[d] = pos;
            pos += c;
        }
        for (size_t i = 0; i < n; i++)
            tmp[count[a[i].prefix >> shift & 0xff]++] = a[i];
        prefix_key *swap = a;
        a = tmp;
        tmp = swap;
    }
    /* a holds the result: the caller's array or its scratch */
    sort_key *run = NULL;
    size_t runcap = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && a[j].prefix == a[i].prefix)
            j++;
        if (j - i > 1) {
            if (j - i > runcap) {
                sort_key *p = realloc(run, (j - i) * sizeof *run);
                if (!p) {
                    free(run);
                    return NULL;
                }
                run = p;
                runcap = j - i;
            }
            for (size_t r = i; r < j; r++) {
                const mpmap__kentry *k = &t->entries[a[r].entry];
                run[r - i] = (sort_key){ t->keys + k->keyoff, k->keylen, a[r].entry };
            }
            qsort(run, j - i, sizeof *run, cmp_key);
            for (size_t r = i; r < j; r++)
                a[r].entry = run[r - i].entry;
        }
        i = j;
    }
    free(run);
    return a;
}

typedef struct task_rec {
    int64_t task;
    int64_t rec;
} task_rec;

static int cmp_task(const void *a, const void *b)
{
    const task_rec *x = a, *y = b;
    return x->task < y->task ? -1 : x->task > y->task ? 1 : (x->rec > y->rec) - (x->rec < y->rec);
}

/*
 * Folds every owned key's partials in task order into its first record and
 * serialises the keys sorted as (u64 keylen, key, value). *out is malloc'd.
 */
int mpmap__keyed_fold_and_pack(mpmap__ktab *own, const mpmap_keyed_job *job, char **out,
                               size_t *outlen)
{
    size_t vs = job->value_size;
    size_t n = own->nentries;
    prefix_key *order = malloc((2 * n + 1) * sizeof *order);
    task_rec *tr = NULL;
    size_t trcap = 0, bytes = 0;
    if (!order)
        return MPMAP_ENOMEM;
    for (size_t e = 0; e < n; e++) {
        mpmap__kentry *k = &own->entries[e];
        order[e] = (prefix_key){ key_prefix(own->keys + k->keyoff, k->keylen), (int64_t)e };
        bytes += 8 + k->keylen + vs;
        if (k->npartials > 1) {
            if ((size_t)k->npartials > trcap) {
                task_rec *p = realloc(tr, (size_t)k->npartials * sizeof *tr);
                if (!p) {
                    free(order);
                    free(tr);
                    return MPMAP_ENOMEM;
                }
                tr = p;
                trcap = (size_t)k->npartials;
            }
            size_t m = 0;
            for (int64_t r = k->first; r >= 0; r = *MPMAP__REC_NEXT(own, r))
                tr[m++] = (task_rec){ *MPMAP__REC_TASK(own, r), r };
            qsort(tr, m, sizeof *tr, cmp_task);
            /* the first in task order starts the fold; the result goes in k->first */
            unsigned char acc[256];
            void *a = vs <= sizeof acc ? (void *)acc : malloc(vs);
            if (!a) {
                free(order);
                free(tr);
                return MPMAP_ENOMEM;
            }
            memcpy(a, MPMAP__REC_VALUE(own, tr[0].rec), vs);
            for (size_t i = 1; i < m; i++)
                mpmap__keyed_fold(job, MPMAP__REC_VALUE(own, tr[i].rec), a);
            memcpy(MPMAP__REC_VALUE(own, k->first), a, vs);
            if (a != (void *)acc)
                free(a);
        }
    }
    free(tr);
    const prefix_key *sorted = sort_by_key(order, order + n, n, own);
    char *buf = sorted ? malloc(bytes + 1) : NULL;
    if (!buf) {
        free(order);
        return MPMAP_ENOMEM;
    }
    char *p = buf;
    for (size_t i = 0; i < n; i++) {
        const mpmap__kentry *k = &own->entries[sorted[i].entry];
        uint64_t len = k->keylen;
        memcpy(p, &len, 8);
        memcpy(p + 8, own->keys + k->keyoff, k->keylen);
        memcpy(p + 8 + k->keylen, MPMAP__REC_VALUE(own, k->first), vs);
        p += 8 + k->keylen + vs;
    }
    free(order);
    *out = buf;
    *outlen = bytes;
    return MPMAP_OK;
}
