/*
 * The kd-tree's layout, shared by its build (knn_tree_build.c) and its
 * queries (knn_kernel.c, knn_kernel_body.h). Not a public header: callers
 * see knn_tree as an opaque type (knn_kernel.h).
 */
#ifndef KNN_TREE_H
#define KNN_TREE_H

#include <math.h>
#include <stdint.h>

#include "knn_kernel.h"

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

/* 1 if all `count` values are finite (neither NaN nor infinite). */
static inline int knn_all_finite(const double *x, int64_t count)
{
    for (int64_t i = 0; i < count; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

#endif /* KNN_TREE_H */
