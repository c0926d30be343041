/*
 * Exact k-nearest-neighbour search: a median-split kd-tree whose answers are
 * bitwise identical to a brute-force scan (see knn_kernel.h for the contract).
 *
 * Exactness rests on two facts about IEEE round-to-nearest arithmetic:
 * rounding is monotone, and so is every operation used (a - b in a, a * a in
 * |a|, a + b in both). Each node keeps a bounding box of its points (in
 * floats rounded outwards, so it still contains them). For a point x in the
 * box, |q_j - x_j| >= the query's distance to the box along j exactly, hence
 * also after rounding; squaring and summing in the same dimension order keeps
 * the inequality. So the box bound never exceeds the rounded squared distance
 * of any point in the node, and a node is skipped only when its bound is
 * strictly larger than the current k-th best (ties may still win on the
 * index). The vector paths sum the bound in another order, then shrink it
 * by a margin that covers the difference (KNN_BOX_SHRINK below). For the same
 * reason partial sums of a point's distance only grow, so a partial sum above
 * the k-th best rejects the point early (the permutation scan does).
 *
 * The tree's layout is in knn_tree.h, its build in knn_tree_build.c.
 *
 * Run-time dispatch: the query code (knn_kernel_body.h) is compiled for the
 * scalar, AVX2 and AVX-512 paths (isa.h); queries use the path chosen at the
 * first call (MPMAP_ISA, else the best the CPU supports). All paths rank by
 * the same unfused squared distances, so they return the same bits.
 */
#include "knn_kernel.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "isa.h"
#include "knn_tree.h"

#if ISA_X86
#include <immintrin.h>
#endif

/* Fused multiply-add would round t * t + s once instead of twice and break
 * bitwise agreement between code paths (and the pruning bounds). GCC does not
 * contract in ISO C mode, but does under -std=gnu* unless told otherwise. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* Up to this k candidates are kept in a sorted array, above in a max-heap. */
#define KNN_SORTED_MAX 32

double knn_distance2(const double *a, const double *b, int d)
{
    double s = 0.0;
    for (int j = 0; j < d; j++) {
        double t = a[j] - b[j];
        s = s + t * t;
    }
    return s;
}

/* ----------------------------------------------------------- candidates -- */

/*
 * The best k rows seen so far, stored in the caller's output arrays (squared
 * distances in `d2` until the end). Small k: sorted ascending, insertion by
 * shifting. Large k: a max-heap on (d2, index) so each offer is O(log k).
 */
typedef struct knn_cands {
    double *d2;
    int64_t *idx;
    int k;
    int count;
    int heap;
    double worst; /* rank of the k-th best: +inf / INT64_MAX until k are held */
    int64_t worst_idx;
} knn_cands;

static void knn_cands_init(knn_cands *c, int k, double *d2, int64_t *idx)
{
    c->d2 = d2;
    c->idx = idx;
    c->k = k;
    c->count = 0;
    c->heap = k > KNN_SORTED_MAX;
    c->worst = INFINITY;
    c->worst_idx = INT64_MAX;
}

/* (d2a, ia) ranks before (d2b, ib). */
static inline int knn_before(double d2a, int64_t ia, double d2b, int64_t ib)
{
    return d2a < d2b || (d2a == d2b && ia < ib);
}

static void knn_heap_sift_down(double *d2, int64_t *idx, int count, int pos)
{
    double v = d2[pos];
    int64_t vi = idx[pos];
    for (;;) {
        int child = 2 * pos + 1;
        if (child >= count)
            break;
        if (child + 1 < count && knn_before(d2[child], idx[child], d2[child + 1], idx[child + 1]))
            child++;
        if (!knn_before(v, vi, d2[child], idx[child]))
            break;
        d2[pos] = d2[child];
        idx[pos] = idx[child];
        pos = child;
    }
    d2[pos] = v;
    idx[pos] = vi;
}

static void knn_cands_offer_slow(knn_cands *c, double d2, int64_t id)
{
    if (!c->heap) {
        int pos = c->count < c->k ? c->count++ : c->k - 1;
        while (pos > 0 && knn_before(d2, id, c->d2[pos - 1], c->idx[pos - 1])) {
            c->d2[pos] = c->d2[pos - 1];
            c->idx[pos] = c->idx[pos - 1];
            pos--;
        }
        c->d2[pos] = d2;
        c->idx[pos] = id;
        if (c->count == c->k) {
            c->worst = c->d2[c->k - 1];
            c->worst_idx = c->idx[c->k - 1];
        }
        return;
    }
    if (c->count < c->k) {
        int pos = c->count++;
        while (pos > 0) {
            int parent = (pos - 1) / 2;
            if (!knn_before(c->d2[parent], c->idx[parent], d2, id))
                break;
            c->d2[pos] = c->d2[parent];
            c->idx[pos] = c->idx[parent];
            pos = parent;
        }
        c->d2[pos] = d2;
        c->idx[pos] = id;
    } else {
        c->d2[0] = d2;
        c->idx[0] = id;
        knn_heap_sift_down(c->d2, c->idx, c->count, 0);
    }
    if (c->count == c->k) {
        c->worst = c->d2[0];
        c->worst_idx = c->idx[0];
    }
}

static inline void knn_cands_offer(knn_cands *c, double d2, int64_t id)
{
    if (knn_before(d2, id, c->worst, c->worst_idx))
        knn_cands_offer_slow(c, d2, id);
}

/* Puts the k candidates in ascending order and turns d2 into distances. */
static void knn_cands_finish(knn_cands *c)
{
    if (c->heap) {
        for (int end = c->count - 1; end > 0; end--) {
            double v = c->d2[0];
            int64_t vi = c->idx[0];
            c->d2[0] = c->d2[end];
            c->idx[0] = c->idx[end];
            c->d2[end] = v;
            c->idx[end] = vi;
            knn_heap_sift_down(c->d2, c->idx, end, 0);
        }
    }
    for (int i = 0; i < c->count; i++)
        c->d2[i] = sqrt(c->d2[i]);
}

/* ---------------------------------------------------------------- query -- */

/*
 * Box bounds summed in another order than a point's distance (the vector
 * paths' tree sums). Each term of the bound is at most the matching rounded
 * term of any point in the box; but the sums of the two sets of d
 * non-negative terms round differently. Any order of summation stays
 * within a factor (1 +- g) of the exact sum, g = (d - 1) u / (1 - (d - 1) u),
 * u = 2^-53: so tree_sum * (1 - g) / (1 + g) <= the point's ordered sum.
 * Scaling by 1 - 2^-40 and rounding (at most 1 + u more) stays below that
 * for d <= KNN_BOX_TREE_MAX_D, while the bound loses nothing that matters.
 * Below 2^-1000 the relative bounds may fail (subnormal products), so tiny
 * bounds become 0: such a node is simply visited.
 */
#define KNN_BOX_TREE_MAX_D 1024
#define KNN_BOX_SHRINK (1.0 - 0x1p-40)

static inline double knn_box_shrink(double tree_sum)
{
    return tree_sum < 0x1p-1000 ? 0.0 : tree_sum * KNN_BOX_SHRINK;
}

typedef struct knn_search {
    const knn_tree *t;
    const double *q;
    knn_cands cands;
} knn_search;

/* ------------------------------------------------------ per-path copies -- */

#define KNN_USE_AVX2 0
#define KNN_USE_AVX512 0
#define KNN_FN(name) name##_scalar
#include "knn_kernel_body.h"
#undef KNN_FN
#undef KNN_USE_AVX512
#undef KNN_USE_AVX2

#if ISA_X86
ISA_PUSH_AVX2
#define KNN_USE_AVX2 1
#define KNN_USE_AVX512 0
#define KNN_FN(name) name##_avx2
#include "knn_kernel_body.h"
#undef KNN_FN
#undef KNN_USE_AVX512
#undef KNN_USE_AVX2
ISA_POP

ISA_PUSH_AVX512
#define KNN_USE_AVX2 1
#define KNN_USE_AVX512 1
#define KNN_FN(name) name##_avx512
#include "knn_kernel_body.h"
#undef KNN_FN
#undef KNN_USE_AVX512
#undef KNN_USE_AVX2
ISA_POP
#endif

/* ------------------------------------------------------------- dispatch -- */

/* The path in use: -1 until the first call reads MPMAP_ISA. Relaxed atomics:
 * racing first calls all compute the same value. */
static atomic_int knn_path_state = -1;

isa_path knn_kernel_path(void)
{
    int p = atomic_load_explicit(&knn_path_state, memory_order_relaxed);
    if (p < 0) {
        p = (int)isa_from_env("knn_kernel");
        atomic_store_explicit(&knn_path_state, p, memory_order_relaxed);
    }
    return (isa_path)p;
}

int knn_kernel_use_path(isa_path path)
{
    if (!isa_supported(path))
        return KNN_EINVAL;
    atomic_store_explicit(&knn_path_state, (int)path, memory_order_relaxed);
    return KNN_OK;
}

/* One query, arguments already checked, by one path. */
typedef void (*knn_query_checked_fn)(const knn_tree *t, const double *query, int k, double *dist,
                                     int64_t *index);

/* The query function of the path in use. */
static knn_query_checked_fn knn_query_fn(void)
{
    switch (knn_kernel_path()) {
#if ISA_X86
    case ISA_AVX512: return knn_query_checked_avx512;
    case ISA_AVX2: return knn_query_checked_avx2;
#endif
    default: return knn_query_checked_scalar;
    }
}

int knn_tree_query(const knn_tree *t, const double *query, int k, double *dist, int64_t *index)
{
    if (t == NULL || query == NULL || dist == NULL || index == NULL || k < 1 || k > t->n)
        return KNN_EINVAL;
    if (!knn_all_finite(query, t->d))
        return KNN_EINVAL;
    knn_query_fn()(t, query, k, dist, index);
    return KNN_OK;
}

/* Preorder id of the leaf a query descends to, following the split planes. */
static int64_t knn_home_leaf(const knn_tree *t, const double *q)
{
    int64_t id = 0;
    while (t->nodes[id].dim >= 0)
        id = q[t->nodes[id].dim] <= t->nodes[id].split ? id + 1 : t->nodes[id].right;
    return id;
}

typedef struct knn_order {
    int64_t leaf;
    int64_t query;
} knn_order;

static int knn_order_compare(const void *a, const void *b)
{
    const knn_order *x = a, *y = b;
    if (x->leaf != y->leaf)
        return x->leaf < y->leaf ? -1 : 1;
    return (x->query > y->query) - (x->query < y->query);
}

int knn_tree_query_batch(const knn_tree *t, const double *queries, int64_t m, int k, double *dist,
                         int64_t *index)
{
    if (t == NULL || queries == NULL || dist == NULL || index == NULL || m < 0 || k < 1 || k > t->n)
        return KNN_EINVAL;
    const int d = t->d;
    if (m > INT64_MAX / d || !knn_all_finite(queries, m * d))
        return KNN_EINVAL;
    const knn_query_checked_fn query = knn_query_fn();
    knn_order *order = malloc((size_t)(m > 0 ? m : 1) * sizeof *order);
    if (order == NULL) {
        /* No memory for the order: the same results, in the given order. */
        for (int64_t i = 0; i < m; i++)
            query(t, queries + i * d, k, dist + i * k, index + i * k);
        return KNN_OK;
    }
    /* Leaves are numbered in preorder, so neighbouring leaf ids are
     * neighbouring cells: queries sorted by home leaf walk the same nodes and
     * points one after another while they are still in cache. */
    for (int64_t i = 0; i < m; i++) {
        order[i].leaf = knn_home_leaf(t, queries + i * d);
        order[i].query = i;
    }
    qsort(order, (size_t)m, sizeof *order, knn_order_compare);
    for (int64_t i = 0; i < m; i++) {
        int64_t qi = order[i].query;
        query(t, queries + qi * d, k, dist + qi * k, index + qi * k);
    }
    free(order);
    return KNN_OK;
}

int knn_brute_force(const double *data, int64_t n, int d, const double *query, int k, double *dist,
                    int64_t *index)
{
    if (data == NULL || query == NULL || dist == NULL || index == NULL || n < 1 || d < 1 || k < 1 ||
        k > n)
        return KNN_EINVAL;
    if (!knn_all_finite(query, d))
        return KNN_EINVAL;
    knn_cands c;
    knn_cands_init(&c, k, dist, index);
    for (int64_t i = 0; i < n; i++)
        knn_cands_offer(&c, knn_distance2(query, data + i * d, d), i);
    knn_cands_finish(&c);
    return KNN_OK;
}
