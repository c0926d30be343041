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
 * index). For the same reason partial sums of a point's distance only grow,
 * so a partial sum above the k-th best rejects the point early.
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

typedef struct knn_node {
    double split;  /* inner node: points left have x[dim] <= split, right >= split */
    int64_t right; /* inner node: index of the right child; the left one is this + 1 */
    int64_t begin; /* the node's points are perm[begin .. end) */
    int64_t end;
    int32_t dim; /* split dimension, or -1 for a leaf */
} knn_node;

struct knn_tree {
    const double *data; /* caller's array, not owned */
    int64_t n;
    int d;
    int leaf_size;
    int64_t *perm; /* tree order -> data row */
    knn_node *nodes;
    int64_t nnodes;
    /* Bounding box of node i's points: lo at boxes[box_stride * i], hi d
     * floats later. Floats halve the memory a query walks through; they are
     * rounded outwards, so the box still contains every point of the node. */
    float *boxes;
    int64_t box_stride;
    /* KNN_TREE_COPY_POINTS: the leaf with points [b, e) stores coordinate j of
     * its i-th point at points[b * d + j * (e - b) + i]; NULL otherwise. */
    double *points;
};

double knn_distance2(const double *a, const double *b, int d)
{
    double s = 0.0;
    for (int j = 0; j < d; j++) {
        double t = a[j] - b[j];
        s = s + t * t;
    }
    return s;
}

static int knn_all_finite(const double *x, int64_t count)
{
    for (int64_t i = 0; i < count; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* ---------------------------------------------------------------- build -- */

static int64_t knn_count_nodes(int64_t count, int leaf_size)
{
    if (count <= leaf_size)
        return 1;
    return 1 + knn_count_nodes(count / 2, leaf_size) +
           knn_count_nodes(count - count / 2, leaf_size);
}

/*
 * Hoare/Wirth selection on perm[lo..hi] (inclusive) by coordinate `dim`:
 * afterwards perm[nth] holds the point of rank nth and every point before it
 * has a coordinate <= it, every point after it >= it. Equal keys are swapped
 * across the pivot, so many duplicates still split evenly.
 */
static void knn_select(const double *data, int d, int dim, int64_t *perm, int64_t lo, int64_t hi,
                       int64_t nth)
{
#define KEY(i) data[perm[i] * d + dim]
    while (lo < hi) {
        double a = KEY(lo), b = KEY(lo + (hi - lo) / 2), c = KEY(hi);
        /* Median of three guards against sorted input. */
        double pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (KEY(i) < pivot)
                i++;
            while (KEY(j) > pivot)
                j--;
            if (i <= j) {
                int64_t tmp = perm[i];
                perm[i] = perm[j];
                perm[j] = tmp;
                i++;
                j--;
            }
        }
        if (nth <= j)
            hi = j;
        else if (nth >= i)
            lo = i;
        else
            break; /* j < nth < i: perm[nth] equals the pivot and is in place */
    }
#undef KEY
}

typedef struct knn_builder {
    knn_tree *t;
    double *lo; /* d doubles: exact bounding box of the current node */
    double *hi;
    int64_t next; /* next free node */
} knn_builder;

/* Largest float <= x (beyond the float range: -inf or FLT_MAX). */
static float knn_float_down(double x)
{
    float f = (float)x;
    return (double)f > x ? nextafterf(f, -INFINITY) : f;
}

/* Smallest float >= x (beyond the float range: +inf or -FLT_MAX). */
static float knn_float_up(double x)
{
    float f = (float)x;
    return (double)f < x ? nextafterf(f, INFINITY) : f;
}

/* Builds the subtree over perm[begin .. end) in preorder; returns its index. */
static int64_t knn_build_node(knn_builder *b, int64_t begin, int64_t end)
{
    knn_tree *t = b->t;
    int64_t id = b->next++;
    knn_node *node = &t->nodes[id];
    node->begin = begin;
    node->end = end;
    node->dim = -1;
    node->right = -1;
    node->split = 0.0;

    const int d = t->d;
    double *lo = b->lo, *hi = b->hi;
    const double *first = t->data + t->perm[begin] * d;
    for (int j = 0; j < d; j++)
        lo[j] = hi[j] = first[j];
    for (int64_t i = begin + 1; i < end; i++) {
        const double *x = t->data + t->perm[i] * d;
        for (int j = 0; j < d; j++) {
            if (x[j] < lo[j])
                lo[j] = x[j];
            if (x[j] > hi[j])
                hi[j] = x[j];
        }
    }
    float *box = t->boxes + t->box_stride * id;
    for (int j = 0; j < d; j++) {
        box[j] = knn_float_down(lo[j]);
        box[d + j] = knn_float_up(hi[j]);
    }
    if (end - begin <= t->leaf_size)
        return id;

    int dim = 0;
    for (int j = 1; j < d; j++)
        if (hi[j] - lo[j] > hi[dim] - lo[dim])
            dim = j;

    /* Median split: the halves differ by at most one point, so the depth is
     * log2(n / leaf_size) whatever the distribution (duplicates included). */
    int64_t mid = begin + (end - begin) / 2;
    knn_select(t->data, d, dim, t->perm, begin, end - 1, mid);
    node->dim = dim;
    node->split = t->data[t->perm[mid] * d + dim];
    knn_build_node(b, begin, mid);
    int64_t right = knn_build_node(b, mid, end);
    t->nodes[id].right = right;
    return id;
}

int knn_tree_build_ex(const double *data, int64_t n, int d, int leaf_size, unsigned flags,
                      knn_tree **out)
{
    if (out == NULL)
        return KNN_EINVAL;
    *out = NULL;
    if (data == NULL || n < 1 || d < 1 || (flags & ~(unsigned)KNN_TREE_COPY_POINTS) != 0)
        return KNN_EINVAL;
    if (n > INT64_MAX / d || !knn_all_finite(data, n * d))
        return KNN_EINVAL;
    if (leaf_size <= 0)
        leaf_size = KNN_DEFAULT_LEAF_SIZE;

    knn_tree *t = calloc(1, sizeof *t);
    if (t == NULL)
        return KNN_ENOMEM;
    t->data = data;
    t->n = n;
    t->d = d;
    t->leaf_size = leaf_size;
    t->nnodes = knn_count_nodes(n, leaf_size);
    t->perm = malloc((size_t)n * sizeof *t->perm);
    t->nodes = malloc((size_t)t->nnodes * sizeof *t->nodes);
    /* Boxes padded to whole 64-byte lines (one line for d = 8). */
    t->box_stride = (2 * (int64_t)d + 15) / 16 * 16;
    t->boxes = aligned_alloc(64, (size_t)t->nnodes * (size_t)t->box_stride * sizeof *t->boxes);
    double *scratch = malloc(2 * (size_t)d * sizeof *scratch);
    if (t->perm == NULL || t->nodes == NULL || t->boxes == NULL || scratch == NULL) {
        free(scratch);
        knn_tree_free(t);
        return KNN_ENOMEM;
    }
    for (int64_t i = 0; i < n; i++)
        t->perm[i] = i;
    /* clang-format off */
    knn_builder b = {.t = t, .lo = scratch, .hi = scratch + d, .next = 0};
    /* clang-format on */
    knn_build_node(&b, 0, n);
    free(scratch);

    if (flags & KNN_TREE_COPY_POINTS) {
        t->points = malloc((size_t)n * (size_t)d * sizeof *t->points);
        if (t->points == NULL) {
            knn_tree_free(t);
            return KNN_ENOMEM;
        }
        for (int64_t id = 0; id < t->nnodes; id++) {
            const knn_node *node = &t->nodes[id];
            if (node->dim >= 0)
                continue;
            int64_t count = node->end - node->begin;
            double *block = t->points + node->begin * d;
            for (int64_t i = 0; i < count; i++) {
                const double *x = data + t->perm[node->begin + i] * d;
                for (int j = 0; j < d; j++)
                    block[j * count + i] = x[j];
            }
        }
    }
    *out = t;
    return KNN_OK;
}

int knn_tree_build(const double *data, int64_t n, int d, int leaf_size, knn_tree **out)
{
    return knn_tree_build_ex(data, n, d, leaf_size, 0, out);
}

void knn_tree_free(knn_tree *t)
{
    if (t == NULL)
        return;
    free(t->points);
    free(t->boxes);
    free(t->nodes);
    free(t->perm);
    free(t);
}

int64_t knn_tree_size(const knn_tree *t) { return t->n; }

int knn_tree_dim(const knn_tree *t) { return t->d; }

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

typedef struct knn_search {
    const knn_tree *t;
    const double *q;
    knn_cands cands;
} knn_search;

/* ------------------------------------------------------ per-path copies -- */

#define KNN_USE_AVX2 0
#define KNN_FN(name) name##_scalar
#include "knn_kernel_body.h"
#undef KNN_FN
#undef KNN_USE_AVX2

#if ISA_X86
ISA_PUSH_AVX2
#define KNN_USE_AVX2 1
#define KNN_FN(name) name##_avx2
#include "knn_kernel_body.h"
#undef KNN_FN
#undef KNN_USE_AVX2
ISA_POP

ISA_PUSH_AVX512
#define KNN_USE_AVX2 1
#define KNN_FN(name) name##_avx512
#include "knn_kernel_body.h"
#undef KNN_FN
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
