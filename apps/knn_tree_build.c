/*
 * Building the kd-tree of knn_kernel.h: median splits of the widest
 * dimension, bounding boxes in outward-rounded floats, and the optional
 * dimension-major copy of the points (KNN_TREE_COPY_POINTS).
 *
 * The build sorts a private copy of the points rather than a permutation of
 * the caller's rows: every pass of the selection and of the box computation
 * then reads memory in order (with a permutation each level reads all n rows
 * at random), and the copy, in tree order, is already the leaf-by-leaf layout
 * the queries scan, up to a transposition within each leaf.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "knn_kernel.h"
#include "knn_tree.h"

static int64_t knn_count_nodes(int64_t count, int leaf_size)
{
    if (count <= leaf_size)
        return 1;
    return 1 + knn_count_nodes(count / 2, leaf_size) +
           knn_count_nodes(count - count / 2, leaf_size);
}

/* Swaps rows a and b of the working copy (d doubles each) and their ids. */
static inline void knn_swap_rows(double *rows, int64_t *perm, int d, int64_t a, int64_t b)
{
    double *x = rows + a * d, *y = rows + b * d;
    for (int j = 0; j < d; j++) {
        double tmp = x[j];
        x[j] = y[j];
        y[j] = tmp;
    }
    int64_t id = perm[a];
    perm[a] = perm[b];
    perm[b] = id;
}

/*
 * Hoare/Wirth selection on rows lo..hi (inclusive) of the working copy by
 * coordinate `dim`: afterwards row nth holds the point of rank nth and every
 * row before it has a coordinate <= it, every row after it >= it. The rows
 * themselves move (with their ids in perm), so every pass reads memory in
 * order. Equal keys are swapped across the pivot, so many duplicates still
 * split evenly.
 */
static void knn_select(double *rows, int d, int dim, int64_t *perm, int64_t lo, int64_t hi,
                       int64_t nth)
{
#define KEY(i) rows[(i)*d + dim]
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
                knn_swap_rows(rows, perm, d, i, j);
                i++;
                j--;
            }
        }
        if (nth <= j)
            hi = j;
        else if (nth >= i)
            lo = i;
        else
            break; /* j < nth < i: row nth equals the pivot and is in place */
    }
#undef KEY
}

typedef struct knn_builder {
    knn_tree *t;
    double *rows; /* n x d: the points in tree order (row i is data row perm[i]) */
    double *lo;   /* d doubles: exact bounding box of the current node */
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

/*
 * Exact bounding box of columns j0 .. j0 + w - 1 (w <= 8) of rows
 * begin .. end - 1 into lo[j0 ..] and hi[j0 ..]. The running bounds live in
 * locals (w = 8 unrolls into vector min/max), not in the scratch arrays.
 */
static inline __attribute__((always_inline)) void knn_box_block(const double *rows, int d,
                                                                int64_t begin, int64_t end, int j0,
                                                                const int w, double *lo, double *hi)
{
    double l[8], h[8];
    for (int j = 0; j < w; j++)
        l[j] = h[j] = rows[begin * d + j0 + j];
    for (int64_t i = begin + 1; i < end; i++) {
        const double *x = rows + i * d + j0;
        for (int j = 0; j < w; j++) {
            l[j] = x[j] < l[j] ? x[j] : l[j];
            h[j] = x[j] > h[j] ? x[j] : h[j];
        }
    }
    for (int j = 0; j < w; j++) {
        lo[j0 + j] = l[j];
        hi[j0 + j] = h[j];
    }
}

static void knn_box_columns(const double *rows, int d, int64_t begin, int64_t end, int j0, int w,
                            double *lo, double *hi)
{
    if (w == 8)
        knn_box_block(rows, d, begin, end, j0, 8, lo, hi);
    else
        knn_box_block(rows, d, begin, end, j0, w, lo, hi);
}

/* Builds the subtree over rows begin .. end - 1 in preorder; returns its index. */
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
    int j0 = 0;
    for (; j0 + 8 <= d; j0 += 8)
        knn_box_columns(b->rows, d, begin, end, j0, 8, lo, hi);
    if (j0 < d)
        knn_box_columns(b->rows, d, begin, end, j0, d - j0, lo, hi);
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
    knn_select(b->rows, d, dim, t->perm, begin, end - 1, mid);
    node->dim = dim;
    node->split = b->rows[mid * d + dim];
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
        leaf_size =
            (flags & KNN_TREE_COPY_POINTS) ? KNN_DEFAULT_LEAF_SIZE : KNN_DEFAULT_LEAF_SIZE_NO_COPY;

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
    /* The points in tree order: the build reads and moves them in place. */
    double *rows = malloc((size_t)n * (size_t)d * sizeof *rows);
    if (t->perm == NULL || t->nodes == NULL || t->boxes == NULL || scratch == NULL ||
        rows == NULL) {
        free(rows);
        free(scratch);
        knn_tree_free(t);
        return KNN_ENOMEM;
    }
    memcpy(rows, data, (size_t)n * (size_t)d * sizeof *rows);
    for (int64_t i = 0; i < n; i++)
        t->perm[i] = i;
    /* clang-format off */
    knn_builder b = {.t = t, .rows = rows, .lo = scratch, .hi = scratch + d, .next = 0};
    /* clang-format on */
    knn_build_node(&b, 0, n);

    if (!(flags & KNN_TREE_COPY_POINTS)) {
        free(rows);
        free(scratch);
        *out = t;
        return KNN_OK;
    }
    /* Each leaf's rows are already in place; transpose them to
     * dimension-major through a leaf-sized buffer, so the rows become the
     * copy without a second n x d array. */
    int64_t most = 1;
    for (int64_t id = 0; id < t->nnodes; id++)
        if (t->nodes[id].dim < 0 && t->nodes[id].end - t->nodes[id].begin > most)
            most = t->nodes[id].end - t->nodes[id].begin;
    double *leaf = malloc((size_t)most * (size_t)d * sizeof *leaf);
    if (leaf == NULL) {
        free(rows);
        free(scratch);
        knn_tree_free(t);
        return KNN_ENOMEM;
    }
    for (int64_t id = 0; id < t->nnodes; id++) {
        const knn_node *node = &t->nodes[id];
        if (node->dim >= 0)
            continue;
        int64_t count = node->end - node->begin;
        double *block = rows + node->begin * d;
        memcpy(leaf, block, (size_t)count * (size_t)d * sizeof *leaf);
        for (int64_t i = 0; i < count; i++)
            for (int j = 0; j < d; j++)
                block[j * count + i] = leaf[i * d + j];
    }
    free(leaf);
    free(scratch);
    t->points = rows;
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
