/*
 * The per-path code of knn_kernel.c: the query (tree walk, box bounds, leaf
 * scans). knn_kernel.c includes this file once per path (see isa.h), each
 * time with
 *   KNN_USE_AVX2    0 or 1: whether to compile the AVX2 leaf scans and box
 *                   bounds,
 *   KNN_USE_AVX512  0 or 1: whether to compile the AVX-512 scan of the
 *                   point copy and box bounds instead (the permutation scan
 *                   stays the AVX2 one, compiled for AVX-512),
 *   KNN_FN(name)    the name with the path's suffix,
 * and inside ISA_PUSH_* ... ISA_POP for the vector paths, so every function
 * here is compiled for that path's target. The names defined here are
 * renamed to KNN_FN(name) by the macros below. Not a public header.
 *
 * Every path computes each squared distance as the scalar sequence
 * s = s + t * t in dimension order (lanes of the vector scans repeat it
 * exactly, contraction is off), so the answers are bitwise the same. Box
 * bounds may differ between paths (they only steer the search).
 */
#define knn_box_distance2 KNN_FN(knn_box_distance2)
#define knn_offer_lanes KNN_FN(knn_offer_lanes)
#define knn_scan_perm KNN_FN(knn_scan_perm)
#define knn_scan_copy KNN_FN(knn_scan_copy)
#define knn_scan8 KNN_FN(knn_scan8)
#define knn_search_node KNN_FN(knn_search_node)
#define knn_query_checked KNN_FN(knn_query_checked)

/*
 * Squared distance from the query to node id's box: a lower bound of every
 * point's squared distance in the node (see the top of knn_kernel.c).
 * The scalar path sums the terms in dimension order, as a point's distance
 * is summed, which keeps the bound below it term by term. The vector paths
 * sum them in a tree instead (a dependency chain of log2 d additions, not
 * d) and then scale the sum down by KNN_BOX_SHRINK, which covers the
 * difference the summation order can make (see there). A lower bound only
 * decides which nodes are visited, never what is returned.
 */
static inline double knn_box_distance2(const knn_search *s, int64_t id)
{
    const int d = s->t->d;
    const float *lo = s->t->boxes + s->t->box_stride * id;
    const float *hi = lo + d;
    const double *q = s->q;
#if KNN_USE_AVX512
    if (d == 8) {
        /* The whole box is one aligned 64-byte line: lo, then hi. */
        const __m512 box = _mm512_load_ps(lo);
        const __m512d qv = _mm512_loadu_pd(q);
        __m512d below = _mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(box)), qv);
        __m512d above = _mm512_sub_pd(qv, _mm512_cvtps_pd(_mm256_castpd_ps(
                                              _mm512_extractf64x4_pd(_mm512_castps_pd(box), 1))));
        __m512d diff = _mm512_max_pd(_mm512_max_pd(below, above), _mm512_setzero_pd());
        return knn_box_shrink(_mm512_reduce_add_pd(_mm512_mul_pd(diff, diff)));
    }
    if (d <= KNN_BOX_TREE_MAX_D) {
        __m512d acc = _mm512_setzero_pd();
        for (int j = 0; j < d; j += 8) {
            const __mmask8 live = d - j >= 8 ? (__mmask8)0xff : (__mmask8)((1u << (d - j)) - 1);
            __m512d qv = _mm512_maskz_loadu_pd(live, q + j);
            __m512d below = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(live, lo + j)), qv);
            __m512d above = _mm512_sub_pd(qv, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(live, hi + j)));
            __m512d diff = _mm512_max_pd(_mm512_max_pd(below, above), _mm512_setzero_pd());
            acc = _mm512_add_pd(acc, _mm512_mul_pd(diff, diff));
        }
        return knn_box_shrink(_mm512_reduce_add_pd(acc));
    }
#elif KNN_USE_AVX2
    if (d <= KNN_BOX_TREE_MAX_D) {
        __m256d acc = _mm256_setzero_pd();
        int j = 0;
        for (; j + 4 <= d; j += 4) {
            __m256d qv = _mm256_loadu_pd(q + j);
            __m256d below = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(lo + j)), qv);
            __m256d above = _mm256_sub_pd(qv, _mm256_cvtps_pd(_mm_loadu_ps(hi + j)));
            __m256d diff = _mm256_max_pd(_mm256_max_pd(below, above), _mm256_setzero_pd());
            acc = _mm256_add_pd(acc, _mm256_mul_pd(diff, diff));
        }
        __m128d pair = _mm_add_pd(_mm256_castpd256_pd128(acc), _mm256_extractf128_pd(acc, 1));
        double sum = _mm_cvtsd_f64(_mm_add_sd(pair, _mm_unpackhi_pd(pair, pair)));
        for (; j < d; j++) {
            double below = (double)lo[j] - q[j], above = q[j] - (double)hi[j];
            double diff = below > above ? below : above;
            diff = diff > 0.0 ? diff : 0.0;
            sum = sum + diff * diff;
        }
        return knn_box_shrink(sum);
    }
#endif
    double sum = 0.0;
    for (int j = 0; j < d; j++) {
        /* lo - q > 0 only below the box, q - hi > 0 only above it. */
        double below = (double)lo[j] - q[j], above = q[j] - (double)hi[j];
        double diff = below > above ? below : above;
        diff = diff > 0.0 ? diff : 0.0;
        sum = sum + diff * diff;
    }
    return sum;
}

/* Offers the lanes of `sum` flagged in `mask` (4 points, ids[0..3]). */
#if KNN_USE_AVX2
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
#if KNN_USE_AVX2
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
            __m256d c[4] = { _mm256_permute2f128_pd(t0, t2, 0x20),
                             _mm256_permute2f128_pd(t1, t3, 0x20),
                             _mm256_permute2f128_pd(t0, t2, 0x31),
                             _mm256_permute2f128_pd(t1, t3, 0x31) };
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

#if KNN_USE_AVX512
/*
 * Leaf scan over the dimension-major copy, 8 points per AVX-512 step; the
 * last step masks off the lanes past the leaf's end, so no scalar tail.
 * Inlined into knn_scan_copy with d = 8 as a constant (the common case: the
 * loop over dimensions then unrolls) and with d as given.
 */
static inline __attribute__((always_inline)) void knn_scan8(knn_search *s, const knn_node *node,
                                                            const int d)
{
    const double *q = s->q;
    const int64_t count = node->end - node->begin;
    const double *block = s->t->points + node->begin * d;
    const int64_t *ids = s->t->perm + node->begin;
    for (int64_t i = 0; i < count; i += 8) {
        const __mmask8 live = count - i >= 8 ? (__mmask8)0xff : (__mmask8)((1u << (count - i)) - 1);
        const __m512d worst = _mm512_set1_pd(s->cands.worst);
        __m512d sum = _mm512_setzero_pd();
        for (int j = 0; j < d; j++) {
            /* Each lane repeats the scalar sequence s = s + t * t exactly. */
            __m512d x = _mm512_maskz_loadu_pd(live, block + j * count + i);
            __m512d diff = _mm512_sub_pd(_mm512_set1_pd(q[j]), x);
            sum = _mm512_add_pd(sum, _mm512_mul_pd(diff, diff));
        }
        /* No early exit on partial sums: at d = 8 the branch mispredicts
         * cost more than the dimensions it saves. */
        __mmask8 mask = _mm512_mask_cmp_pd_mask(live, sum, worst, _CMP_LE_OQ);
        if (mask != 0) {
            double lanes[8];
            _mm512_storeu_pd(lanes, sum);
            for (unsigned m = mask; m != 0; m &= m - 1) {
                int l = __builtin_ctz(m);
                knn_cands_offer(&s->cands, lanes[l], ids[i + l]);
            }
        }
    }
}

static void knn_scan_copy(knn_search *s, const knn_node *node)
{
    if (s->t->d == 8)
        knn_scan8(s, node, 8);
    else
        knn_scan8(s, node, s->t->d);
}
#else
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
#if KNN_USE_AVX2
    for (; i + 4 <= count; i += 4) {
        /* Each lane repeats the scalar sequence s = s + t * t exactly. */
        __m256d sum = _mm256_setzero_pd();
        __m256d worst = _mm256_set1_pd(s->cands.worst);
        for (int j = 0; j < d; j++) {
            __m256d diff =
                _mm256_sub_pd(_mm256_broadcast_sd(q + j), _mm256_loadu_pd(block + j * count + i));
            sum = _mm256_add_pd(sum, _mm256_mul_pd(diff, diff));
        }
        /* No early exit on partial sums, as in the AVX-512 scan. */
        int mask = _mm256_movemask_pd(_mm256_cmp_pd(sum, worst, _CMP_LE_OQ));
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
#endif

/*
 * Depth-first search, nearer child first. A child is entered only if its box
 * bound is <= the k-th best squared distance (not <: a point at exactly that
 * distance can still win on its lower index). Plain recursion measured faster
 * than an explicit stack, and ordering by box bound than by the query's side
 * of the split plane with a plane-distance test before the far box.
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
    /* clang-format off */
    knn_search s = {.t = t, .q = query};
    /* clang-format on */
    knn_cands_init(&s.cands, k, dist, index);
    knn_search_node(&s, 0);
    knn_cands_finish(&s.cands);
}

#undef knn_box_distance2
#undef knn_offer_lanes
#undef knn_scan_perm
#undef knn_scan_copy
#undef knn_scan8
#undef knn_search_node
#undef knn_query_checked
