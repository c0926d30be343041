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
 */
#include "knn_kernel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX2__)
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
    knn_builder b = {.t = t, .lo = scratch, .hi = scratch + d, .next = 0};
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

int64_t knn_tree_size(const knn_tree *t)
{
    return t->n;
}

int knn_tree_dim(const knn_tree *t)
{
    return t->d;
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

typedef struct knn_search {
    const knn_tree *t;
    const double *q;
    knn_cands cands;
} knn_search;

/*
 * Squared distance from the query to node id's box, summed in dimension
 * order: a lower bound of every point's squared distance in the node (see the
 * top of the file).
 */
static inline double knn_box_distance2(const knn_search *s, int64_t id)
{
    const int d = s->t->d;
    const float *lo = s->t->boxes + s->t->box_stride * id;
    const float *hi = lo + d;
    const double *q = s->q;
    double sum = 0.0;
    int j = 0;
#if defined(__AVX2__)
    for (; j + 4 <= d; j += 4) {
        __m256d qv = _mm256_loadu_pd(q + j);
        __m256d below = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(lo + j)), qv);
        __m256d above = _mm256_sub_pd(qv, _mm256_cvtps_pd(_mm_loadu_ps(hi + j)));
        __m256d diff = _mm256_max_pd(_mm256_max_pd(below, above), _mm256_setzero_pd());
        double sq[4];
        _mm256_storeu_pd(sq, _mm256_mul_pd(diff, diff));
        sum = sum + sq[0];
        sum = sum + sq[1];
        sum = sum + sq[2];
        sum = sum + sq[3];
    }
#endif
    for (; j < d; j++) {
        /* lo - q > 0 only below the box, q - hi > 0 only above it. */
        double below = (double)lo[j] - q[j], above = q[j] - (double)hi[j];
        double diff = below > above ? below : above;
        diff = diff > 0.0 ? diff : 0.0;
        sum = sum + diff * diff;
    }
    return sum;
}

/* Offers the lanes of `sum` flagged in `mask` (4 points, ids[0..3]). */
#if defined(__AVX2__)
static inline void knn_offer_lanes(knn_search *s, __m256d sum, int mask, const int64_t *ids)
{
    double lanes[4];
    _mm256_storeu_pd(lanes, sum);
    for (int l = 0; l < 4; l++)
        if (mask & (1 << l))
            knn_cands_offer(&s->cands, lanes[l], ids[l]);
}
#endif

/*
 * Leaf scan through the permutation, reading the caller's rows. With AVX2,
 * four rows at a time are transposed 4 dimensions at a time so that each lane
 * holds one point and repeats the scalar sequence s = s + t * t exactly.
 */
static void knn_scan_perm(knn_search *s, const knn_node *node)
{
    const knn_tree *t = s->t;
    const int d = t->d;
    const double *q = s->q;
    const int64_t *ids = t->perm;
    int64_t i = node->begin;
#if defined(__AVX2__)
    for (; i + 4 <= node->end; i += 4) {
        const double *r0 = t->data + ids[i] * d, *r1 = t->data + ids[i + 1] * d;
        const double *r2 = t->data + ids[i + 2] * d, *r3 = t->data + ids[i + 3] * d;
        __m256d worst = _mm256_set1_pd(s->cands.worst);
        __m256d sum = _mm256_setzero_pd();
        int mask = 0xf;
        int j = 0;
        for (; j + 4 <= d; j += 4) {
            __m256d a0 = _mm256_loadu_pd(r0 + j), a1 = _mm256_loadu_pd(r1 + j);
            __m256d a2 = _mm256_loadu_pd(r2 + j), a3 = _mm256_loadu_pd(r3 + j);
            __m256d t0 = _mm256_unpacklo_pd(a0, a1), t1 = _mm256_unpackhi_pd(a0, a1);
            __m256d t2 = _mm256_unpacklo_pd(a2, a3), t3 = _mm256_unpackhi_pd(a2, a3);
            __m256d c[4] = {
                _mm256_permute2f128_pd(t0, t2, 0x20), _mm256_permute2f128_pd(t1, t3, 0x20),
                _mm256_permute2f128_pd(t0, t2, 0x31), _mm256_permute2f128_pd(t1, t3, 0x31)};
            for (int u = 0; u < 4; u++) {
                __m256d diff = _mm256_sub_pd(_mm256_broadcast_sd(q + j + u), c[u]);
                sum = _mm256_add_pd(sum, _mm256_mul_pd(diff, diff));
            }
            /* Partial sums only grow: once all four are past the k-th best
             * none of these points can win. */
            mask = _mm256_movemask_pd(_mm256_cmp_pd(sum, worst, _CMP_LE_OQ));
            if (mask == 0)
                break;
        }
        if (mask == 0)
            continue;
        for (; j < d; j++) {
            __m256d diff = _mm256_sub_pd(_mm256_broadcast_sd(q + j),
                                         _mm256_set_pd(r3[j], r2[j], r1[j], r0[j]));
            sum = _mm256_add_pd(sum, _mm256_mul_pd(diff, diff));
        }
        mask = _mm256_movemask_pd(_mm256_cmp_pd(sum, worst, _CMP_LE_OQ));
        if (mask != 0)
            knn_offer_lanes(s, sum, mask, ids + i);
    }
#endif
    for (; i < node->end; i++) {
        const double *x = t->data + ids[i] * d;
        double sum = 0.0;
        for (int j = 0; j < d; j++) {
            double diff = q[j] - x[j];
            sum = sum + diff * diff;
        }
        knn_cands_offer(&s->cands, sum, ids[i]);
    }
}

/* Leaf scan over the dimension-major copy, 4 points per AVX2 step. */
static void knn_scan_copy(knn_search *s, const knn_node *node)
{
    const knn_tree *t = s->t;
    const int d = t->d;
    const double *q = s->q;
    const int64_t count = node->end - node->begin;
    const double *block = t->points + node->begin * d;
    const int64_t *ids = t->perm + node->begin;
    int64_t i = 0;
#if defined(__AVX2__)
    for (; i + 4 <= count; i += 4) {
        /* Each lane repeats the scalar sequence s = s + t * t exactly. */
        __m256d sum = _mm256_setzero_pd();
        __m256d worst = _mm256_set1_pd(s->cands.worst);
        int mask = 0xf;
        for (int j = 0; j < d; j++) {
            __m256d diff =
                _mm256_sub_pd(_mm256_broadcast_sd(q + j), _mm256_loadu_pd(block + j * count + i));
            sum = _mm256_add_pd(sum, _mm256_mul_pd(diff, diff));
            /* Stop once all four partial sums are past the k-th best. */
            if ((j & 3) == 3 || j == d - 1) {
                mask = _mm256_movemask_pd(_mm256_cmp_pd(sum, worst, _CMP_LE_OQ));
                if (mask == 0)
                    break;
            }
        }
        if (mask != 0)
            knn_offer_lanes(s, sum, mask, ids + i);
    }
#endif
    for (; i < count; i++) {
        double sum = 0.0;
        for (int j = 0; j < d; j++) {
            double diff = q[j] - block[j * count + i];
            sum = sum + diff * diff;
        }
        knn_cands_offer(&s->cands, sum, ids[i]);
    }
}

/*
 * Depth-first search, nearer child first. A child is entered only if its box
 * bound is <= the k-th best squared distance (not <: a point at exactly that
 * distance can still win on its lower index).
 */
static void knn_search_node(knn_search *s, int64_t id)
{
    const knn_node *node = &s->t->nodes[id];
    if (node->dim < 0) {
        if (s->t->points != NULL)
            knn_scan_copy(s, node);
        else
            knn_scan_perm(s, node);
        return;
    }
    int64_t first = id + 1, second = node->right;
    double bound_first = knn_box_distance2(s, first);
    double bound_second = knn_box_distance2(s, second);
    if (bound_second < bound_first ||
        (bound_second == bound_first && s->q[node->dim] > node->split)) {
        int64_t tmp = first;
        first = second;
        second = tmp;
        double tb = bound_first;
        bound_first = bound_second;
        bound_second = tb;
    }
    if (bound_first <= s->cands.worst)
        knn_search_node(s, first);
    if (bound_second <= s->cands.worst)
        knn_search_node(s, second);
}

/* One query, arguments already checked. */
static void knn_query_checked(const knn_tree *t, const double *query, int k, double *dist,
                              int64_t *index)
{
    knn_search s = {.t = t, .q = query};
    knn_cands_init(&s.cands, k, dist, index);
    knn_search_node(&s, 0);
    knn_cands_finish(&s.cands);
}

int knn_tree_query(const knn_tree *t, const double *query, int k, double *dist, int64_t *index)
{
    if (t == NULL || query == NULL || dist == NULL || index == NULL || k < 1 || k > t->n)
        return KNN_EINVAL;
    if (!knn_all_finite(query, t->d))
        return KNN_EINVAL;
    knn_query_checked(t, query, k, dist, index);
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
    knn_order *order = malloc((size_t)(m > 0 ? m : 1) * sizeof *order);
    if (order == NULL) {
        /* No memory for the order: the same results, in the given order. */
        for (int64_t i = 0; i < m; i++)
            knn_query_checked(t, queries + i * d, k, dist + i * k, index + i * k);
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
        knn_query_checked(t, queries + qi * d, k, dist + qi * k, index + qi * k);
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
