/*
 * The cases of the keyed map-reduce tests (mpi_keyed_test.c,
 * mpi_keyed_checkpoint_test.c): the pairs each task emits, a deterministic
 * function of (case, task), and the serial reference the runs are compared
 * with bitwise — per-task partials in emission order, folded over tasks in
 * task order. Included once per test program.
 */
#ifndef MPMAP_TESTS_KEYED_CASES_H
#define MPMAP_TESTS_KEYED_CASES_H

#include "mpmap_keyed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int rank_, size_, failures_;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "rank %d: %s:%d: CHECK(%s) failed: ", rank_, __FILE__, __LINE__,       \
                    #cond);                                                                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            failures_++;                                                                           \
        }                                                                                          \
    } while (0)

typedef void (*out_fn)(void *sink, const void *key, size_t keylen, const void *value);

enum { CASE_DSUM, CASE_ISUM, CASE_DMINMAX, CASE_USER, CASE_VEC, CASE_FAIL };

typedef struct tcase {
    int kind;
    int64_t ntasks;
    size_t value_size;
    int64_t fail_task;
} tcase;

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The pairs of task t: a deterministic function of (case, t). */
static void generate(const tcase *c, int64_t t, out_fn out, void *sink)
{
    uint64_t s = mix((uint64_t)t * 1000003u + (uint64_t)c->kind);
    int npairs = (int)(s % 40);
    for (int j = 0; j < npairs; j++) {
        uint64_t r = mix(s + (uint64_t)j);
        char key[1200];
        size_t klen;
        switch (r % 7) {
        case 0: /* the empty key */ klen = 0; break;
        case 1: /* a key with NUL bytes inside */
            klen = 3;
            key[0] = 'a';
            key[1] = '\0';
            key[2] = (char)('a' + (r >> 8) % 3);
            break;
        case 2: /* a long key: shares a 1000-byte prefix with its siblings */
            memset(key, 'z', 1002);
            klen = 1000 + (size_t)((r >> 8) % 3);
            break;
        default: /* a common short key (Zipf-ish: small numbers more often) */
            klen = (size_t)snprintf(key, sizeof key, "k%llu",
                                    (unsigned long long)((r >> 8) % (1 + (r >> 20) % 300)));
            break;
        }
        unsigned char value[16];
        double d[2];
        int64_t i;
        switch (c->kind) {
        case CASE_DSUM:
        case CASE_VEC:
            /* magnitudes from 1e-8 to 1e8: sums depend on the order */
            d[0] = ((double)(r >> 11) / 9007199254740992.0 - 0.3) *
                   pow(10.0, (double)((r >> 3) % 17) - 8);
            d[1] = -d[0] * 3.0 + 1e-3;
            memcpy(value, d, sizeof d);
            break;
        case CASE_DMINMAX:
            /* few distinct values, +0.0 and -0.0 among them */
            d[0] = (r >> 5) % 4 == 0 ? 0.0 : (r >> 5) % 4 == 1 ? -0.0 : (double)((r >> 9) % 5);
            memcpy(value, d, 8);
            break;
        default:
            i = (int64_t)((r >> 13) % 1000) - 300;
            memcpy(value, &i, 8);
            break;
        }
        out(sink, key, klen, value);
    }
}

/* ---- the keyed run ---- */

typedef struct run_ctx {
    const tcase *c;
    mpmap_emitter *e;
    int rc;
} run_ctx;

static void out_emit(void *sink, const void *key, size_t keylen, const void *value)
{
    run_ctx *r = sink;
    if (r->rc == 0)
        r->rc = mpmap_emit(r->e, key, keylen, value);
}

static int keyed_map(int64_t task, mpmap_emitter *e, mpmap_task_error *err, void *ctx)
{
    const tcase *c = ctx;
    if (task == c->fail_task)
        return mpmap_task_fail(err, task, 7, "task %lld refuses", (long long)task);
    run_ctx r = { .c = c, .e = e };
    generate(c, task, out_emit, &r);
    return r.rc;
}

/* Not commutative, not associative: acc = 3 acc + x (wrapping). */
static void user_fold(const void *x, void *acc, void *ctx)
{
    (void)ctx;
    uint64_t a, v;
    memcpy(&a, acc, 8);
    memcpy(&v, x, 8);
    a = a * 3u + v;
    memcpy(acc, &a, 8);
}

/* ---- the serial reference ---- */

typedef struct pair {
    char *key;
    size_t keylen;
    int64_t task;
    int64_t seq;
    unsigned char value[16];
} pair;

typedef struct ref {
    pair *p;
    size_t n, cap;
    int64_t task;
    size_t vs;
} ref;

static void out_ref(void *sink, const void *key, size_t keylen, const void *value)
{
    ref *r = sink;
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 1024;
        r->p = realloc(r->p, r->cap * sizeof *r->p);
    }
    pair *q = &r->p[r->n];
    q->key = malloc(keylen + 1);
    memcpy(q->key, key, keylen);
    q->keylen = keylen;
    q->task = r->task;
    q->seq = (int64_t)r->n;
    memcpy(q->value, value, r->vs);
    r->n++;
}

static int key_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int c = n ? memcmp(a, b, n) : 0;
    return c ? c : al < bl ? -1 : al > bl;
}

static int cmp_pair(const void *a, const void *b)
{
    const pair *x = a, *y = b;
    int c = key_cmp(x->key, x->keylen, y->key, y->keylen);
    if (c)
        return c;
    if (x->task != y->task)
        return x->task < y->task ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void fold_ref(const mpmap_keyed_job *job, const void *x, void *acc)
{
    if (job->op == MPMAP_REDUCE_USER) {
        job->fold(x, acc, job->context);
        return;
    }
    for (size_t off = 0; off + 8 <= job->value_size && off + 8 <= 16; off += 8) {
        if (job->type == MPMAP_DOUBLE) {
            double a, v;
            memcpy(&a, (char *)acc + off, 8);
            memcpy(&v, (const char *)x + off, 8);
            a = job->op == MPMAP_REDUCE_SUM   ? a + v
                : job->op == MPMAP_REDUCE_MIN ? (v < a ? v : a)
                                              : (v > a ? v : a);
            memcpy((char *)acc + off, &a, 8);
        } else {
            int64_t a, v;
            memcpy(&a, (char *)acc + off, 8);
            memcpy(&v, (const char *)x + off, 8);
            /* the sum wraps (two's complement), as the library's does */
            a = job->op == MPMAP_REDUCE_SUM   ? (int64_t)((uint64_t)a + (uint64_t)v)
                : job->op == MPMAP_REDUCE_MIN ? (v < a ? v : a)
                                              : (v > a ? v : a);
            memcpy((char *)acc + off, &a, 8);
        }
    }
}

/* Serial result: keys sorted, each value = fold over tasks (in order) of the
 * task's partial (its values folded in emission order). */
typedef struct expected {
    int64_t n;
    pair *keys; /* key + final value */
} expected;

static expected serial(const tcase *c, const mpmap_keyed_job *job)
{
    ref r = { .vs = job->value_size };
    for (int64_t t = 0; t < c->ntasks; t++) {
        r.task = t;
        generate(c, t, out_ref, &r);
    }
    if (r.n)
        qsort(r.p, r.n, sizeof *r.p, cmp_pair);
    expected ex = { 0, malloc((r.n + 1) * sizeof(pair)) };
    size_t i = 0;
    while (i < r.n) {
        pair *k = &ex.keys[ex.n++];
        *k = r.p[i];
        unsigned char acc[16], part[16];
        int have = 0;
        size_t j = i;
        while (j < r.n && !key_cmp(r.p[j].key, r.p[j].keylen, k->key, k->keylen)) {
            int64_t t = r.p[j].task;
            memcpy(part, r.p[j].value, job->value_size);
            size_t m = j + 1;
            for (; m < r.n && r.p[m].task == t &&
                   !key_cmp(r.p[m].key, r.p[m].keylen, k->key, k->keylen);
                 m++)
                fold_ref(job, r.p[m].value, part);
            if (have)
                fold_ref(job, part, acc);
            else
                memcpy(acc, part, job->value_size);
            have = 1;
            j = m;
        }
        memcpy(k->value, acc, job->value_size);
        i = j;
    }
    for (int64_t q = 0; q < ex.n; q++) /* the kept keys change owner */
        for (size_t m = 0; m < r.n; m++)
            if (r.p[m].key == ex.keys[q].key) {
                r.p[m].key = NULL;
                break;
            }
    for (size_t m = 0; m < r.n; m++)
        free(r.p[m].key);
    free(r.p);
    return ex;
}

static void expected_free(expected *ex)
{
    for (int64_t i = 0; i < ex->n; i++)
        free(ex->keys[i].key);
    free(ex->keys);
}

static mpmap_keyed_job make_job(tcase *c)
{
    mpmap_keyed_job job = {
        .ntasks = c->ntasks, .value_size = c->value_size, .map = keyed_map, .context = c
    };
    switch (c->kind) {
    case CASE_DSUM:
    case CASE_VEC:
        job.op = MPMAP_REDUCE_SUM;
        job.type = MPMAP_DOUBLE;
        break;
    case CASE_DMINMAX:
        job.op = MPMAP_REDUCE_MIN;
        job.type = MPMAP_DOUBLE;
        break;
    case CASE_USER:
        job.op = MPMAP_REDUCE_USER;
        job.fold = user_fold;
        break;
    default:
        job.op = MPMAP_REDUCE_SUM;
        job.type = MPMAP_INT64;
        break;
    }
    return job;
}

static void compare(const char *what, const expected *ex, const mpmap_keyed_result *res, size_t vs)
{
    CHECK(res->nkeys == ex->n, "%s: %lld keys, expected %lld", what, (long long)res->nkeys,
          (long long)ex->n);
    if (rank_ != 0 || res->nkeys != ex->n)
        return;
    int64_t bad = 0;
    for (int64_t i = 0; i < ex->n; i++) {
        size_t len;
        const char *k = mpmap_keyed_key(res, i, &len);
        if (key_cmp(k, len, ex->keys[i].key, ex->keys[i].keylen) != 0 ||
            memcmp(mpmap_keyed_value(res, i), ex->keys[i].value, vs) != 0)
            bad++;
    }
    CHECK(bad == 0, "%s: %lld keys differ from the serial result", what, (long long)bad);
}

/* A fresh directory under /tmp made by rank 0, its name on every rank in
 * dir (64 bytes); "" (and a failed check) when it cannot be made. name
 * tells the tests' directories apart when one is left behind. */
static void shared_scratch_dir(char *dir, const char *name)
{
    dir[0] = '\0';
    if (rank_ == 0) {
        snprintf(dir, 64, "/tmp/mpmap-keyed-%s-XXXXXX", name);
        if (!mkdtemp(dir))
            dir[0] = '\0';
    }
    MPI_Bcast(dir, 64, MPI_CHAR, 0, MPI_COMM_WORLD);
    CHECK(dir[0] != '\0', "mkdtemp failed");
}

#endif
