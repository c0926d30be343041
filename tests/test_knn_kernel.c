/*
 * Tests for the exact k-nearest-neighbour kernel (apps/knn_kernel.c): the
 * kd-tree and the brute force must both agree bit for bit with an
 * independent reference that sorts every row by (squared distance, index),
 * and every instruction-set path this CPU runs (scalar, AVX2, AVX-512;
 * isa.h) must give the same bytes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "knn_kernel.h"

/* splitmix64: a small deterministic generator for test data. */
static uint64_t test_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double test_uniform(uint64_t *state) { return (double)(test_next(state) >> 11) * 0x1.0p-53; }

typedef struct ref_entry {
    double d2;
    int64_t index;
} ref_entry;

static int ref_compare(const void *a, const void *b)
{
    const ref_entry *x = a, *y = b;
    if (x->d2 != y->d2)
        return x->d2 < y->d2 ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

/*
 * Independent reference: every squared distance summed left to right over
 * the dimensions, all rows sorted by (d2, index), the first k kept.
 */
static void reference_knn(const double *data, int64_t n, int d, const double *q, int k,
                          double *dist, int64_t *index)
{
    ref_entry *all = malloc((size_t)n * sizeof *all);
    assert_non_null(all);
    for (int64_t i = 0; i < n; i++) {
        volatile double s = 0.0; /* volatile: keep the two roundings per term */
        for (int j = 0; j < d; j++) {
            volatile double t = q[j] - data[i * d + j];
            volatile double sq = t * t;
            s = s + sq;
        }
        all[i].d2 = s;
        all[i].index = i;
    }
    qsort(all, (size_t)n, sizeof *all, ref_compare);
    for (int i = 0; i < k; i++) {
        dist[i] = sqrt(all[i].d2);
        index[i] = all[i].index;
    }
    free(all);
}

/* Tree (both layouts) and brute force against the reference for `nq` queries. */
static void check_queries(const double *data, int64_t n, int d, const double *queries, int nq,
                          int k, int leaf_size)
{
    double *want_d = malloc((size_t)k * sizeof *want_d);
    double *got_d = malloc((size_t)k * sizeof *got_d);
    int64_t *want_i = malloc((size_t)k * sizeof *want_i);
    int64_t *got_i = malloc((size_t)k * sizeof *got_i);
    assert_non_null(want_d);
    assert_non_null(got_d);
    assert_non_null(want_i);
    assert_non_null(got_i);
    knn_tree *trees[2];
    assert_int_equal(knn_tree_build_ex(data, n, d, leaf_size, 0, &trees[0]), KNN_OK);
    assert_int_equal(knn_tree_build_ex(data, n, d, leaf_size, KNN_TREE_COPY_POINTS, &trees[1]),
                     KNN_OK);
    for (int qi = 0; qi < nq; qi++) {
        const double *q = queries + (int64_t)qi * d;
        reference_knn(data, n, d, q, k, want_d, want_i);
        for (int which = 0; which < 2; which++) {
            assert_int_equal(knn_tree_query(trees[which], q, k, got_d, got_i), KNN_OK);
            assert_memory_equal(got_i, want_i, (size_t)k * sizeof *got_i);
            assert_memory_equal(got_d, want_d, (size_t)k * sizeof *got_d);
        }
        assert_int_equal(knn_brute_force(data, n, d, q, k, got_d, got_i), KNN_OK);
        assert_memory_equal(got_i, want_i, (size_t)k * sizeof *got_i);
        assert_memory_equal(got_d, want_d, (size_t)k * sizeof *got_d);
    }
    knn_tree_free(trees[0]);
    knn_tree_free(trees[1]);
    free(want_d);
    free(got_d);
    free(want_i);
    free(got_i);
}

static double *random_points(int64_t n, int d, uint64_t *state)
{
    double *x = malloc((size_t)(n * d > 0 ? n * d : 1) * sizeof *x);
    assert_non_null(x);
    for (int64_t i = 0; i < n * d; i++)
        x[i] = test_uniform(state);
    return x;
}

static void test_tree_matches_reference_on_uniform_data(void **state)
{
    (void)state;
    static const int dims[] = { 1, 2, 3, 5, 8 }; /* 5: a partial group of 4 */
    static const int64_t sizes[] = { 1, 2, 5, 33, 300, 5000 };
    static const int ks[] = { 1, 5, 10 };
    uint64_t rng = 42;
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            int d = dims[di];
            int64_t n = sizes[si];
            double *data = random_points(n, d, &rng);
            /* Queries inside and well outside the data's cube. */
            int nq = n >= 5000 ? 6 : 12;
            double *queries = random_points(nq, d, &rng);
            for (int i = 0; i < nq * d; i++)
                queries[i] = queries[i] * 1.6 - 0.3;
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                if (ks[ki] <= n)
                    check_queries(data, n, d, queries, nq, ks[ki], 16);
            if (n <= 300)
                check_queries(data, n, d, queries, nq, (int)n, 16); /* k = n: the heap path */
            free(queries);
            free(data);
        }
    }
}

static void test_leaf_size_one_and_larger_than_n(void **state)
{
    (void)state;
    uint64_t rng = 7;
    const int64_t n = 700;
    const int d = 3;
    double *data = random_points(n, d, &rng);
    double *queries = random_points(20, d, &rng);
    check_queries(data, n, d, queries, 20, 1, 1);
    check_queries(data, n, d, queries, 20, 7, 1);
    check_queries(data, n, d, queries, 20, 7, 5);
    check_queries(data, n, d, queries, 20, 7, 100000);
    check_queries(data, n, d, queries, 20, 50, 3);
    free(queries);
    free(data);
}

/*
 * Integer grid in d dimensions (side^d cells), every point three times in
 * scrambled order: squared distances are small integers or quarters, so many
 * rows tie exactly and only the index decides. Queries sit on grid points,
 * half-grid points and cell centres.
 */
static void check_grid_ties(int d, int side)
{
    const int copies = 3;
    int64_t cells = 1;
    for (int j = 0; j < d; j++)
        cells *= side;
    const int64_t n = cells * copies;
    double *data = malloc((size_t)(n * d) * sizeof *data);
    assert_non_null(data);
    /* 97 is prime and does not divide the cell count, so i * 97 mod cells
     * visits every cell once per copy, in scrambled order. */
    assert_true(cells % 97 != 0);
    for (int64_t i = 0; i < n; i++) {
        int64_t cell = (i * 97) % cells;
        for (int j = 0; j < d; j++, cell /= side)
            data[i * d + j] = (double)(cell % side);
    }
    int nq = 1;
    for (int j = 0; j < d; j++)
        nq *= 3;
    double *queries = malloc((size_t)nq * (size_t)d * sizeof *queries);
    assert_non_null(queries);
    for (int qi = 0; qi < nq; qi++)
        for (int j = 0, r = qi; j < d; j++, r /= 3)
            queries[qi * d + j] = 1.0 + 0.5 * (r % 3);
    static const int ks[] = { 1, 2, 3, 4, 7, 8, 24, 100 };
    static const int leaves[] = { 1, 4, 16 };
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
        for (size_t li = 0; li < sizeof leaves / sizeof leaves[0]; li++)
            check_queries(data, n, d, queries, nq, ks[ki], leaves[li]);

    /* The tie rule, checked directly: at a grid point with three copies, the
     * three zero distances come first, in ascending index order. */
    knn_tree *tree;
    assert_int_equal(knn_tree_build(data, n, d, 4, &tree), KNN_OK);
    double dist[3];
    int64_t index[3];
    assert_int_equal(knn_tree_query(tree, queries, 3, dist, index), KNN_OK);
    for (int i = 0; i < 3; i++) {
        assert_true(dist[i] == 0.0);
        assert_memory_equal(data + index[i] * d, queries, (size_t)d * sizeof(double));
    }
    assert_true(index[0] < index[1] && index[1] < index[2]);
    knn_tree_free(tree);
    free(queries);
    free(data);
}

static void test_exact_ties_resolve_to_lower_index(void **state)
{
    (void)state;
    check_grid_ties(3, 6);
    check_grid_ties(4, 4); /* d = 4: ties decided after one full group of 4 dimensions */
}

static void test_all_points_identical_returns_lowest_indices(void **state)
{
    (void)state;
    const int64_t n = 200;
    const int d = 2;
    double data[200 * 2];
    for (int64_t i = 0; i < n * d; i++)
        data[i] = 0.25;
    const double q[2] = { 1.0, -2.0 };
    const double expect = sqrt(0.75 * 0.75 + 2.25 * 2.25);
    knn_tree *tree;
    assert_int_equal(knn_tree_build(data, n, d, 8, &tree), KNN_OK);
    double dist[40];
    int64_t index[40];
    assert_int_equal(knn_tree_query(tree, q, 40, dist, index), KNN_OK);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(index[i], i);
        assert_true(dist[i] == expect);
    }
    knn_tree_free(tree);
}

static void test_query_on_data_point_gives_distance_zero(void **state)
{
    (void)state;
    uint64_t rng = 99;
    const int64_t n = 2000;
    const int d = 8;
    double *data = random_points(n, d, &rng);
    /* Row 1500 duplicated at row 1999: the earlier copy must come first. */
    memcpy(data + 1999 * d, data + 1500 * d, d * sizeof *data);
    knn_tree *tree;
    assert_int_equal(knn_tree_build_ex(data, n, d, 16, KNN_TREE_COPY_POINTS, &tree), KNN_OK);
    double dist[5];
    int64_t index[5];
    for (int64_t row = 0; row < n; row += 111) {
        assert_int_equal(knn_tree_query(tree, data + row * d, 5, dist, index), KNN_OK);
        assert_true(dist[0] == 0.0);
        assert_int_equal(index[0], row);
        assert_true(dist[1] > 0.0);
    }
    assert_int_equal(knn_tree_query(tree, data + 1999 * d, 5, dist, index), KNN_OK);
    assert_int_equal(index[0], 1500);
    assert_int_equal(index[1], 1999);
    assert_true(dist[0] == 0.0 && dist[1] == 0.0);
    check_queries(data, n, d, data + 1500 * d, 1, 5, 16);
    knn_tree_free(tree);
    free(data);
}

static void test_batch_matches_reference_in_query_order(void **state)
{
    (void)state;
    uint64_t rng = 5;
    const int64_t n = 3000;
    const int d = 8;
    const int64_t m = 150;
    double *data = random_points(n, d, &rng);
    double *queries = random_points(m, d, &rng);
    static const int ks[] = { 5, 40 };
    for (size_t ki = 0; ki < 2; ki++) {
        int k = ks[ki];
        double *dist = malloc((size_t)(m * k) * sizeof *dist);
        int64_t *index = malloc((size_t)(m * k) * sizeof *index);
        double *want_d = malloc((size_t)k * sizeof *want_d);
        int64_t *want_i = malloc((size_t)k * sizeof *want_i);
        assert_true(dist && index && want_d && want_i);
        for (unsigned flags = 0; flags <= KNN_TREE_COPY_POINTS; flags++) {
            knn_tree *tree;
            assert_int_equal(knn_tree_build_ex(data, n, d, 8, flags, &tree), KNN_OK);
            assert_int_equal(knn_tree_query_batch(tree, queries, m, k, dist, index), KNN_OK);
            for (int64_t qi = 0; qi < m; qi++) {
                reference_knn(data, n, d, queries + qi * d, k, want_d, want_i);
                assert_memory_equal(index + qi * k, want_i, (size_t)k * sizeof *want_i);
                assert_memory_equal(dist + qi * k, want_d, (size_t)k * sizeof *want_d);
            }
            assert_int_equal(knn_tree_query_batch(tree, queries, 0, k, dist, index), KNN_OK);
            knn_tree_free(tree);
        }
        free(dist);
        free(index);
        free(want_d);
        free(want_i);
    }
    free(queries);
    free(data);
}

static void test_invalid_arguments_are_rejected(void **state)
{
    (void)state;
    double data[4 * 2] = { 0, 0, 1, 0, 0, 1, 1, 1 };
    const double q[2] = { 0.5, 0.5 };
    double dist[5] = { -1, -1, -1, -1, -1 };
    int64_t index[5] = { -1, -1, -1, -1, -1 };
    knn_tree *tree = (knn_tree *)&tree; /* must be reset to NULL on failure */

    assert_int_equal(knn_tree_build(data, 0, 2, 16, &tree), KNN_EINVAL);
    assert_null(tree);
    assert_int_equal(knn_tree_build(data, 4, 0, 16, &tree), KNN_EINVAL);
    assert_int_equal(knn_tree_build(NULL, 4, 2, 16, &tree), KNN_EINVAL);
    assert_int_equal(knn_tree_build(data, 4, 2, 16, NULL), KNN_EINVAL);
    assert_int_equal(knn_tree_build_ex(data, 4, 2, 16, 0x100, &tree), KNN_EINVAL);
    data[3] = NAN;
    assert_int_equal(knn_tree_build(data, 4, 2, 16, &tree), KNN_EINVAL);
    data[3] = INFINITY;
    assert_int_equal(knn_tree_build(data, 4, 2, 16, &tree), KNN_EINVAL);
    data[3] = 0.0;

    assert_int_equal(knn_tree_build(data, 4, 2, 0, &tree), KNN_OK); /* 0: default leaf size */
    assert_int_equal(knn_tree_size(tree), 4);
    assert_int_equal(knn_tree_dim(tree), 2);
    assert_int_equal(knn_tree_query(tree, q, 5, dist, index), KNN_EINVAL); /* k > n */
    assert_int_equal(knn_tree_query(tree, q, 0, dist, index), KNN_EINVAL);
    assert_int_equal(knn_tree_query(tree, NULL, 1, dist, index), KNN_EINVAL);
    assert_int_equal(knn_tree_query(tree, q, 1, NULL, index), KNN_EINVAL);
    const double bad_q[2] = { NAN, 0.0 };
    assert_int_equal(knn_tree_query(tree, bad_q, 1, dist, index), KNN_EINVAL);
    for (int i = 0; i < 5; i++) {
        assert_true(dist[i] == -1.0);
        assert_int_equal(index[i], -1);
    }
    assert_int_equal(knn_tree_query_batch(tree, q, 1, 5, dist, index), KNN_EINVAL);
    assert_int_equal(knn_tree_query_batch(tree, q, -1, 1, dist, index), KNN_EINVAL);
    assert_int_equal(knn_tree_query_batch(tree, bad_q, 1, 1, dist, index), KNN_EINVAL);
    for (int i = 0; i < 5; i++) {
        assert_true(dist[i] == -1.0);
        assert_int_equal(index[i], -1);
    }
    assert_int_equal(knn_tree_query(tree, q, 4, dist, index), KNN_OK); /* k = n */
    knn_tree_free(tree);
    knn_tree_free(NULL);

    assert_int_equal(knn_brute_force(data, 4, 2, q, 5, dist, index), KNN_EINVAL);
    assert_int_equal(knn_brute_force(data, 0, 2, q, 1, dist, index), KNN_EINVAL);
    assert_int_equal(knn_brute_force(data, 4, 2, q, 0, dist, index), KNN_EINVAL);
    assert_int_equal(knn_brute_force(data, 4, 2, bad_q, 1, dist, index), KNN_EINVAL);
}

static void test_distance2_sums_squares_in_dimension_order(void **state)
{
    (void)state;
    /* Each small square is 0.390625 ulp(1): added to 1 one at a time both round
     * away (result exactly 1), added to each other first they would not. */
    const double small = 0x1.4p-27;
    const double a[3] = { 1.0, small, small };
    const double b[3] = { 0.0, 0.0, 0.0 };
    assert_true(knn_distance2(a, b, 3) == 1.0);
    const double reordered[3] = { small, small, 1.0 };
    assert_true(knn_distance2(reordered, b, 3) == 1.0 + 0x1.0p-52);
}

/*
 * Everything the queries return on fixed inputs, by the path in use:
 * dimensions around the 4-wide steps (1, 3, 4, 5, 8, 9), both point layouts,
 * k in the sorted-array and the heap regime, data with exact ties (coordinates
 * on a coarse grid) and queries on and off the data. dist and index are
 * appended to out (cap bytes), the length returned.
 */
static size_t knn_all_outputs(unsigned char *out, size_t cap)
{
    static const int dims[] = { 1, 3, 4, 5, 8, 9 };
    static const int ks[] = { 1, 7, 40 };
    size_t len = 0;
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
        const int d = dims[di];
        const int64_t n = 1503;
        uint64_t st = 77 + (uint64_t)d;
        double *data = random_points(n, d, &st);
        for (int64_t i = 0; i < n * d; i += 3)
            data[i] = floor(data[i] * 4.0) / 4.0; /* ties */
        enum { M = 37 };
        double queries[M * 9];
        for (int i = 0; i < M * d; i++)
            queries[i] = test_uniform(&st) * 1.2 - 0.1;
        for (int j = 0; j < d; j++)
            queries[j] = data[5 * d + j]; /* on a data point */
        for (unsigned flags = 0; flags <= KNN_TREE_COPY_POINTS; flags += KNN_TREE_COPY_POINTS) {
            knn_tree *t = NULL;
            assert_int_equal(knn_tree_build_ex(data, n, d, 0, flags, &t), KNN_OK);
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
                const int k = ks[ki];
                double dist[M * 40];
                int64_t index[M * 40];
                assert_int_equal(knn_tree_query_batch(t, queries, M, k, dist, index), KNN_OK);
                const size_t bytes = (size_t)M * (size_t)k * 8;
                assert_true(len + 2 * bytes + 16 * (size_t)k <= cap);
                memcpy(out + len, dist, bytes);
                memcpy(out + len + bytes, index, bytes);
                len += 2 * bytes;
                assert_int_equal(knn_tree_query(t, queries + d, k, dist, index), KNN_OK);
                memcpy(out + len, dist, 8 * (size_t)k);
                memcpy(out + len + 8 * (size_t)k, index, 8 * (size_t)k);
                len += 16 * (size_t)k;
            }
            knn_tree_free(t);
        }
        free(data);
    }
    return len;
}

static void test_every_isa_path_gives_the_same_bytes(void **state)
{
    (void)state;
    const isa_path initial = knn_kernel_path();
    assert_true(isa_supported(initial));
    const size_t cap = 1u << 21;
    unsigned char *want = malloc(cap), *got = malloc(cap);
    assert_non_null(want);
    assert_non_null(got);
    assert_int_equal(knn_kernel_use_path(ISA_SCALAR), KNN_OK);
    assert_int_equal(knn_kernel_path(), ISA_SCALAR);
    const size_t len = knn_all_outputs(want, cap);
    for (int p = ISA_SCALAR + 1; p < ISA_COUNT; p++) {
        if (!isa_supported((isa_path)p)) {
            /* Not on this CPU: refused, and the path in use stays. */
            assert_int_equal(knn_kernel_use_path((isa_path)p), KNN_EINVAL);
            assert_int_equal(knn_kernel_path(), ISA_SCALAR);
            print_message("knn paths: %s not supported by this CPU, not compared\n",
                          isa_name((isa_path)p));
            continue;
        }
        assert_int_equal(knn_kernel_use_path((isa_path)p), KNN_OK);
        assert_int_equal(knn_kernel_path(), (isa_path)p);
        assert_int_equal(knn_all_outputs(got, cap), len);
        assert_memory_equal(got, want, len);
        print_message("knn paths: %s == scalar (%zu bytes)\n", isa_name((isa_path)p), len);
        assert_int_equal(knn_kernel_use_path(ISA_SCALAR), KNN_OK);
    }
    assert_int_equal(knn_kernel_use_path(initial), KNN_OK);
    free(want);
    free(got);
}

/* Every path also matches the independent reference on tie-heavy data. */
static void test_every_isa_path_matches_reference(void **state)
{
    (void)state;
    const isa_path initial = knn_kernel_path();
    for (int p = ISA_SCALAR; p < ISA_COUNT; p++) {
        if (knn_kernel_use_path((isa_path)p) != KNN_OK)
            continue;
        check_grid_ties(3, 5);
        check_grid_ties(5, 3);
    }
    assert_int_equal(knn_kernel_use_path(initial), KNN_OK);
}

/*
 * Exact ties at every rank, where the vector paths' box bounds (summed in a
 * tree, not in dimension order) meet points' distances: grid points G and
 * their mirror images through a centre c are pairwise equally far from c,
 * exactly (dyadic coordinates, exact differences). Dimension j is scaled by
 * 2^scale[j], so the terms of a sum differ in magnitude and summation order
 * changes the rounding; tiny scales make the squares subnormal.
 */
static void check_mirrored_ties(int d, const int *scale, int leaf_size)
{
    enum { HALF = 300, NQ = 4 };
    uint64_t st = 991 + (uint64_t)d;
    double *data = malloc((size_t)2 * HALF * (size_t)d * sizeof *data);
    double *queries = malloc((size_t)NQ * (size_t)d * sizeof *queries);
    assert_non_null(data);
    assert_non_null(queries);
    for (int j = 0; j < d; j++)
        queries[j] = ldexp(16.0, scale[j]); /* the centre c */
    for (int i = 0; i < HALF; i++)
        for (int j = 0; j < d; j++) {
            double g = ldexp((double)(test_next(&st) % 33), scale[j]);
            data[i * d + j] = g;
            data[(HALF + i) * d + j] = 2.0 * queries[j] - g;
        }
    for (int qi = 1; qi < NQ; qi++) /* near c and on a grid point */
        for (int j = 0; j < d; j++)
            queries[qi * d + j] =
                qi == NQ - 1 ? data[7 * d + j] : queries[j] + ldexp(0.5 * qi, scale[j]);
    check_queries(data, 2 * HALF, d, queries, NQ, 1, leaf_size);
    check_queries(data, 2 * HALF, d, queries, NQ, 6, leaf_size);
    check_queries(data, 2 * HALF, d, queries, NQ, 33, leaf_size);
    free(queries);
    free(data);
}

static void test_tree_sum_box_bounds_keep_ties_exact(void **state)
{
    (void)state;
    static const int mixed[20] = { 0,  -20, 7, 30, -3, 0, 12,  -40, 1, 5,
                                   -8, 3,   0, 22, -1, 9, -30, 2,   0, 4 };
    static const int tiny[13] = { -530, -531, -540, -530, -535, -530, -532,
                                  -530, -538, -530, -533, -530, -530 };
    const isa_path initial = knn_kernel_path();
    for (int p = ISA_SCALAR; p < ISA_COUNT; p++) {
        if (knn_kernel_use_path((isa_path)p) != KNN_OK)
            continue;
        /* d = 9, 13, 20: whole and partial groups of 4 and 8 dimensions. */
        check_mirrored_ties(9, mixed, 0);
        check_mirrored_ties(13, mixed, 8);
        check_mirrored_ties(20, mixed, 0);
        check_mirrored_ties(13, tiny, 0);
    }
    assert_int_equal(knn_kernel_use_path(initial), KNN_OK);
}

/*
 * A box bound whose tree sum rounds above the point's own ordered sum: the
 * point P (row 0) is its leaf's box, and its terms from the query are
 * 1 and four times 2^-54. In order, each 2^-54 vanishes against 1: d2 = 1.
 * Summed in pairs, they add up to 2^-52 first: 1 + 2^-52. Row 1 is at
 * exactly 1 too, so P must win on its index, which it can only if its leaf
 * is not pruned by that larger sum (the vector paths scale it down).
 */
static void test_tree_sum_rounding_does_not_prune_a_tie(void **state)
{
    (void)state;
    const double e = 0x1p-27;
    const double data[16] = { 0.5,  0.5,     0.5, 0.5,     0.5, 0.5,     0.5, 0.5,
                              -0.5, 0.5 - e, 1.5, 0.5 - e, 0.5, 0.5 - e, 0.5, 0.5 - e };
    const double query[8] = { -0.5, 0.5 - e, 0.5, 0.5 - e, 0.5, 0.5 - e, 0.5, 0.5 - e };
    assert_true(knn_distance2(query, data, 8) == 1.0);
    assert_true(knn_distance2(query, data + 8, 8) == 1.0);
    const isa_path initial = knn_kernel_path();
    for (int p = ISA_SCALAR; p < ISA_COUNT; p++)
        if (knn_kernel_use_path((isa_path)p) == KNN_OK)
            check_queries(data, 2, 8, query, 1, 1, 1);
    assert_int_equal(knn_kernel_use_path(initial), KNN_OK);
}

/* Above 1024 dimensions every path sums box bounds in dimension order. */
static void test_many_dimensions_match_reference(void **state)
{
    (void)state;
    const int d = 1100;
    const int64_t n = 60;
    uint64_t st = 5;
    double *data = random_points(n, d, &st);
    double *queries = random_points(3, d, &st);
    for (int j = 0; j < d; j++)
        queries[2 * d + j] = data[11 * d + j];
    const isa_path initial = knn_kernel_path();
    for (int p = ISA_SCALAR; p < ISA_COUNT; p++)
        if (knn_kernel_use_path((isa_path)p) == KNN_OK)
            check_queries(data, n, d, queries, 3, 4, 4);
    assert_int_equal(knn_kernel_use_path(initial), KNN_OK);
    free(queries);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tree_matches_reference_on_uniform_data),
        cmocka_unit_test(test_leaf_size_one_and_larger_than_n),
        cmocka_unit_test(test_exact_ties_resolve_to_lower_index),
        cmocka_unit_test(test_all_points_identical_returns_lowest_indices),
        cmocka_unit_test(test_query_on_data_point_gives_distance_zero),
        cmocka_unit_test(test_batch_matches_reference_in_query_order),
        cmocka_unit_test(test_invalid_arguments_are_rejected),
        cmocka_unit_test(test_distance2_sums_squares_in_dimension_order),
        cmocka_unit_test(test_every_isa_path_gives_the_same_bytes),
        cmocka_unit_test(test_every_isa_path_matches_reference),
        cmocka_unit_test(test_tree_sum_box_bounds_keep_ties_exact),
        cmocka_unit_test(test_tree_sum_rounding_does_not_prune_a_tie),
        cmocka_unit_test(test_many_dimensions_match_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
