/*
 * Exact k-nearest-neighbour search for the knn_query app: a kd-tree over an
 * n x d row-major array of doubles, plus the brute-force reference it must
 * match bit for bit. Pure computation: no MPI, no HDF5, no global state (but the
 * instruction-set path, which never changes a result).
 *
 * Semantics (shared by the tree and the brute force):
 *   - the squared distance of a query q to a data row x is
 *         s = 0; for j = 0..d-1: t = q[j] - x[j]; s = s + t * t;
 *     evaluated left to right in IEEE double, never fused into an FMA
 *     (knn_kernel.c turns contraction off for GCC and clang). The reported
 *     distance is sqrt(s).
 *   - rows are ranked by (s, row index) lexicographically, so equal
 *     distances resolve to the lower 0-based row index;
 *   - the k best rows are returned in ascending rank order.
 * The tree's pruning bounds are computed with the same rounding in the same
 * dimension order, so they never exceed the squared distance of any point they
 * stand for: the tree returns exactly what the brute force returns.
 *
 * Data and queries must be finite (no NaN or infinity); the tree checks both.
 */
#ifndef KNN_KERNEL_H
#define KNN_KERNEL_H

#include <stdint.h>

#include "isa.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes; the values equal MPMAP_EINVAL and MPMAP_ENOMEM of mpmap.h. */
enum {
    KNN_OK = 0,
    KNN_EINVAL = -1, /* invalid argument: n < 1, d < 1, k < 1, k > n, NULL, non-finite value */
    KNN_ENOMEM = -2  /* an allocation failed */
};

/* Leaf size used when a tree with KNN_TREE_COPY_POINTS is built with
 * leaf_size <= 0. Leaves end up with between half of it and all of it
 * (median splits): 98 points for n = 100 000 or 200 000. Large leaves suit
 * the vector leaf scans (all of a leaf's distances at once, 8 points per
 * AVX-512 step): on uniform 8-D data, 200 000 points, k = 5, leaves of 98
 * points answered about 7% faster than of 49 and 25% faster than of 24
 * (leaf_size 64, 32), 10% faster than of 195 (leaf_size 256). */
#define KNN_DEFAULT_LEAF_SIZE 128

/* The same for a tree without the copy: its leaf scan reads rows through the
 * permutation, which favours smaller leaves (32 answered about 25% faster
 * than 128 on the data above). */
#define KNN_DEFAULT_LEAF_SIZE_NO_COPY 32

/* Flags for knn_tree_build_ex. */
enum {
    /*
     * Keep a private copy of the points in tree order, laid out dimension-major
     * per leaf so a leaf scan reads contiguous memory, 4 points per AVX2 step,
     * 8 per AVX-512 step.
     * Costs n * d * 8 bytes more (12.8 MB for 200 000 x 8) and answers about
     * 2.5x faster on uniform 8-D data (AVX-512, default leaf size). Without
     * it the tree reads the caller's array through a permutation (suited to
     * one copy of the data shared by all ranks of a node).
     */
    KNN_TREE_COPY_POINTS = 1
};

typedef struct knn_tree knn_tree;

/*
 * Builds a kd-tree over `data` (n rows of d doubles, row-major): each inner
 * node splits its points at the median of its widest dimension; leaves hold
 * at most leaf_size points (<= 0 selects KNN_DEFAULT_LEAF_SIZE_NO_COPY).
 * The tree does NOT copy `data`: the array must stay valid and unchanged
 * until knn_tree_free (it may be read-only, e.g. an MPI shared-memory window).
 * It owns a permutation of the row indices (n * 8 bytes) and about
 * 2 n / leaf_points nodes of 40 bytes plus a float box of 2 d floats padded
 * to 64 bytes (n = 200 000, d = 8, leaf_size 128: 1.6 MB + 4 095 nodes,
 * 0.4 MB). The build itself sorts a copy of the points (n * d * 8 bytes,
 * which KNN_TREE_COPY_POINTS keeps as its copy and a plain tree frees before
 * returning), so that it reads them in memory order.
 * Returns 0 and sets *out, or KNN_EINVAL / KNN_ENOMEM (then *out is NULL).
 */
int knn_tree_build(const double *data, int64_t n, int d, int leaf_size, knn_tree **out);

/* As knn_tree_build, with flags (KNN_TREE_COPY_POINTS or 0); with the copy,
 * leaf_size <= 0 selects KNN_DEFAULT_LEAF_SIZE. */
int knn_tree_build_ex(const double *data, int64_t n, int d, int leaf_size, unsigned flags,
                      knn_tree **out);

/* Frees the tree (NULL is allowed); never touches the data array. */
void knn_tree_free(knn_tree *t);

int64_t knn_tree_size(const knn_tree *t); /* n */
int knn_tree_dim(const knn_tree *t);      /* d */

/*
 * The k nearest rows of the tree's data to `query` (d doubles): dist[i] the
 * Euclidean distance and index[i] the 0-based row of the i-th nearest,
 * i = 0..k-1, ascending as defined above. Returns 0, or KNN_EINVAL if k < 1,
 * k > n, a pointer is NULL or the query is not finite (outputs untouched).
 * The tree is only read: any number of threads may query one tree at once.
 * The candidate list lives in dist/index themselves, so a query never
 * allocates. Cost grows with k: up to k = 32 candidates are kept sorted
 * (O(k) per insertion), above that in a heap.
 */
int knn_tree_query(const knn_tree *t, const double *query, int k, double *dist, int64_t *index);

/*
 * m queries (m x d row-major): the k results of query i at dist[i * k ..]
 * and index[i * k ..], identical to m calls of knn_tree_query. The queries are
 * answered in the order of the tree leaf they fall in (m * 16 bytes of scratch,
 * freed before returning), which keeps the nodes and points they share in
 * cache: on random queries this is markedly faster than calling
 * knn_tree_query in the given order. Returns 0, or KNN_EINVAL (k < 1, k > n,
 * m < 0, NULL, a non-finite query; nothing is written then).
 */
int knn_tree_query_batch(const knn_tree *t, const double *queries, int64_t m, int k, double *dist,
                         int64_t *index);

/*
 * Reference: the same k rows found by computing every distance, O(n d) per
 * query. Same results and return codes as knn_tree_query; n < 1 or d < 1 is
 * KNN_EINVAL too. Only the query is checked for finiteness, not the data.
 */
int knn_brute_force(const double *data, int64_t n, int d, const double *query, int k, double *dist,
                    int64_t *index);

/* The squared distance defined above; what both searches rank by. */
double knn_distance2(const double *a, const double *b, int d);

/*
 * Instruction-set path of the tree queries (isa.h): chosen at the first query
 * from MPMAP_ISA and the CPU. Every path returns bitwise the same answers.
 * knn_kernel_use_path switches to another path supported by this CPU
 * (KNN_OK) or returns KNN_EINVAL and changes nothing; for tests and
 * benchmarks, not while another thread is querying.
 */
isa_path knn_kernel_path(void);
int knn_kernel_use_path(isa_path path);

#ifdef __cplusplus
}
#endif

#endif /* KNN_KERNEL_H */
