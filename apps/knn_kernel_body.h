/*
 * The per-path code of knn_kernel.c: the query (tree walk, box bounds, leaf
 * scans). knn_kernel.c includes this file once per path (see isa.h), each
 * time with
 *   KNN_USE_AVX2  0 or 1: whether to compile the AVX2 leaf scans,
 *   KNN_FN(name)  the name with the path's suffix,
 * and inside ISA_PUSH_* ... ISA_POP for the vector paths, so every function
 * here is compiled for that path's target (the AVX-512 copy runs the AVX2
 * scans with AVX-512 code generation around them). The names defined here
 * are renamed to KNN_FN(name) by the macros below. Not a public header.
 *
 * Every path computes each squared distance as the scalar sequence
 * s = s + t * t in dimension order (lanes of the vector scans repeat it
 * exactly, contraction is off), so the answers are bitwise the same.
 */
#define knn_box_distance2 KNN_FN(knn_box_distance2)
#define knn_offer_lanes KNN_FN(knn_offer_lanes)
#define knn_scan_perm KNN_FN(knn_scan_perm)
#define knn_scan_copy KNN_FN(knn_scan_copy)
#define knn_search_node KNN_FN(knn_search_node)
#define knn_query_checked KNN_FN(knn_query_checked)

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
#if KNN_USE_AVX2
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
#undef knn_search_node
#undef knn_query_checked
