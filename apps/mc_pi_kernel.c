/*
 * Monte Carlo pi kernel (mc_pi_kernel.h): counts points inside the quarter
 * circle, drawn from mpmap_rng streams, as fast as the CPU allows while
 * staying bitwise reproducible.
 *
 * Speed comes from running Philox4x32-10 on several counters per vector
 * instruction. Each 64-bit vector lane carries one Philox word in its low 32
 * bits: _mm256_mul_epu32 / _mm512_mul_epu32 multiply exactly those low
 * halves into a full 64-bit product, so a Philox round needs only one
 * multiply, one shuffle (to bring the high half down) and xors per word
 * pair. The high 32 bits of a lane may hold garbage between rounds; the
 * multiplies ignore it and only low halves are ever read. The hit test is
 * exact integer arithmetic, so every path counts the same hits.
 *
 * The AVX2 and AVX-512 functions are compiled for their targets (isa.h)
 * whatever the build flags, and used only on CPUs that support them: the path
 * is chosen at the first call (MPMAP_ISA, else the best the CPU supports).
 */
#include "mc_pi_kernel.h"

#include <math.h>
#include <stdint.h>

#include <Random123/philox.h>

#include "isa.h"
#include "mpmap.h"
#include "mpmap_rng.h"

#include <stdatomic.h>

#if ISA_X86
#include <immintrin.h>
#endif

/* x^2 + y^2 < 2^64, i.e. the 64-bit sum does not carry: y^2 <= 2^64 - 1 - x^2. */
static inline int64_t mc_pi_point_hits(uint32_t x, uint32_t y)
{
    uint64_t xx = (uint64_t)x * x;
    uint64_t yy = (uint64_t)y * y;
    return yy <= ~xx;
}

/* Hits among points [first, end) of stream (seed, stream), one block at a time. */
static int64_t mc_pi_count_range(uint64_t seed, uint64_t stream, int64_t first, int64_t end)
{
    int64_t hits = 0;
    int64_t p = first;
    uint32_t w[4];
    while (p < end) {
        mpmap_rng_block(seed, stream, (uint64_t)p / 2, w);
        /* A block holds points 2b (words 0, 1) and 2b+1 (words 2, 3). */
        for (int j = (int)(p % 2); j < 2 && p < end; j++, p++)
            hits += mc_pi_point_hits(w[2 * j], w[2 * j + 1]);
    }
    return hits;
}

/* Key words of Philox round r (0-based): the key bumped r times, mod 2^32. */
static inline uint32_t mc_pi_key0(uint64_t seed, int r)
{
    return (uint32_t)seed + (uint32_t)r * PHILOX_W32_0;
}

static inline uint32_t mc_pi_key1(uint64_t seed, int r)
{
    return (uint32_t)(seed >> 32) + (uint32_t)r * PHILOX_W32_1;
}

/* Independent vectors per round, so multiply latency overlaps. */
#define MC_PI_UNROLL 4

#if ISA_X86
ISA_PUSH_AVX2
/*
 * Hits among points [first, end): whole groups of 4 * MC_PI_UNROLL blocks in
 * AVX2, a leading odd point and the remainder by the scalar path.
 */
static int64_t mc_pi_hits_avx2(uint64_t seed, uint64_t stream, int64_t first, int64_t end)
{
    enum { LANES = 4, BLOCKS = LANES * MC_PI_UNROLL };
    if (end - first <= 2 * BLOCKS) /* not even one whole group after alignment */
        return mc_pi_count_range(seed, stream, first, end);
    const int64_t start = first + (first % 2); /* first point of a whole block */
    const int64_t groups = (end - start) / (2 * BLOCKS);
    const int64_t done = start + groups * 2 * BLOCKS;
    const __m256i m0 = _mm256_set1_epi64x(PHILOX_M4x32_0);
    const __m256i m1 = _mm256_set1_epi64x(PHILOX_M4x32_1);
    /*
     * Round 1 multiplies the stream word, which is the same in every lane:
     * its product and the words it feeds are constants.
     */
    const uint64_t p1 = (uint64_t)PHILOX_M4x32_1 * (uint32_t)stream;
    const __m256i r1_c0 = _mm256_set1_epi64x((uint32_t)(p1 >> 32) ^ mc_pi_key0(seed, 0));
    const __m256i r1_c1 = _mm256_set1_epi64x((uint32_t)p1);
    const __m256i r1_c2 = _mm256_set1_epi64x((uint32_t)(stream >> 32) ^ mc_pi_key1(seed, 0));
    /*
     * AVX2 has only signed 64-bit compares: unsigned yy > ~xx is the signed
     * compare of both sides with the sign bit flipped, and ~xx ^ sign equals
     * xx ^ not_sign.
     */
    const __m256i sign = _mm256_set1_epi64x(INT64_MIN);
    const __m256i not_sign = _mm256_set1_epi64x(INT64_MAX);
    const __m256i step = _mm256_set1_epi64x(BLOCKS);
    __m256i block[MC_PI_UNROLL];
    for (int u = 0; u < MC_PI_UNROLL; u++)
        block[u] = _mm256_add_epi64(_mm256_set1_epi64x(start / 2 + LANES * u),
                                    _mm256_setr_epi64x(0, 1, 2, 3));
    __m256i misses = _mm256_setzero_si256();

    for (int64_t g = 0; g < groups; g++) {
        __m256i c0[MC_PI_UNROLL], c1[MC_PI_UNROLL], c2[MC_PI_UNROLL], c3[MC_PI_UNROLL];
#pragma GCC unroll 8
        for (int u = 0; u < MC_PI_UNROLL; u++) {
            __m256i p0 = _mm256_mul_epu32(block[u], m0);
            c0[u] = _mm256_xor_si256(r1_c0, _mm256_srli_epi64(block[u], 32));
            c1[u] = r1_c1;
            c2[u] = _mm256_xor_si256(_mm256_shuffle_epi32(p0, 0xF5), r1_c2);
            c3[u] = p0;
            block[u] = _mm256_add_epi64(block[u], step);
        }
#pragma GCC unroll 16
        for (int r = 1; r < 10; r++) {
            const __m256i ka = _mm256_set1_epi64x(mc_pi_key0(seed, r));
            const __m256i kb = _mm256_set1_epi64x(mc_pi_key1(seed, r));
#pragma GCC unroll 8
            for (int u = 0; u < MC_PI_UNROLL; u++) {
                __m256i p0 = _mm256_mul_epu32(c0[u], m0);
                __m256i p1v = _mm256_mul_epu32(c2[u], m1);
                /* shuffle 0xF5 copies each lane's high half into its low half */
                __m256i n0 = _mm256_xor_si256(
                    _mm256_xor_si256(_mm256_shuffle_epi32(p1v, 0xF5), c1[u]), ka);
                __m256i n2 = _mm256_xor_si256(
                    _mm256_xor_si256(_mm256_shuffle_epi32(p0, 0xF5), c3[u]), kb);
                c0[u] = n0;
                c1[u] = p1v;
                c2[u] = n2;
                c3[u] = p0;
            }
        }
#pragma GCC unroll 8
        for (int u = 0; u < MC_PI_UNROLL; u++) {
            __m256i xa = _mm256_mul_epu32(c0[u], c0[u]);
            __m256i ya = _mm256_mul_epu32(c1[u], c1[u]);
            __m256i xb = _mm256_mul_epu32(c2[u], c2[u]);
            __m256i yb = _mm256_mul_epu32(c3[u], c3[u]);
            /* The compare mask is -1 where a point misses: subtracting counts it. */
            misses = _mm256_sub_epi64(misses, _mm256_cmpgt_epi64(_mm256_xor_si256(ya, sign),
                                                                 _mm256_xor_si256(xa, not_sign)));
            misses = _mm256_sub_epi64(misses, _mm256_cmpgt_epi64(_mm256_xor_si256(yb, sign),
                                                                 _mm256_xor_si256(xb, not_sign)));
        }
    }
    int64_t lane[LANES];
    _mm256_storeu_si256((__m256i *)lane, misses);
    return mc_pi_count_range(seed, stream, first, start) + (done - start) -
           (lane[0] + lane[1] + lane[2] + lane[3]) + mc_pi_count_range(seed, stream, done, end);
}
ISA_POP

ISA_PUSH_AVX512
/* As mc_pi_hits_avx2 with 8 lanes and mask compares. */
static int64_t mc_pi_hits_avx512(uint64_t seed, uint64_t stream, int64_t first, int64_t end)
{
    enum { LANES = 8, BLOCKS = LANES * MC_PI_UNROLL };
    if (end - first <= 2 * BLOCKS) /* not even one whole group after alignment */
        return mc_pi_count_range(seed, stream, first, end);
    const int64_t start = first + (first % 2);
    const int64_t groups = (end - start) / (2 * BLOCKS);
    const int64_t done = start + groups * 2 * BLOCKS;
    const __m512i m0 = _mm512_set1_epi64(PHILOX_M4x32_0);
    const __m512i m1 = _mm512_set1_epi64(PHILOX_M4x32_1);
    const uint64_t p1 = (uint64_t)PHILOX_M4x32_1 * (uint32_t)stream;
    const __m512i r1_c0 = _mm512_set1_epi64((uint32_t)(p1 >> 32) ^ mc_pi_key0(seed, 0));
    const __m512i r1_c1 = _mm512_set1_epi64((uint32_t)p1);
    const __m512i r1_c2 = _mm512_set1_epi64((uint32_t)(stream >> 32) ^ mc_pi_key1(seed, 0));
    const __m512i ones = _mm512_set1_epi64(-1);
    const __m512i step = _mm512_set1_epi64(BLOCKS);
    __m512i block[MC_PI_UNROLL];
    for (int u = 0; u < MC_PI_UNROLL; u++)
        block[u] = _mm512_add_epi64(_mm512_set1_epi64(start / 2 + LANES * u),
                                    _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
    __m512i misses = _mm512_setzero_si512();

    for (int64_t g = 0; g < groups; g++) {
        __m512i c0[MC_PI_UNROLL], c1[MC_PI_UNROLL], c2[MC_PI_UNROLL], c3[MC_PI_UNROLL];
#pragma GCC unroll 8
        for (int u = 0; u < MC_PI_UNROLL; u++) {
            __m512i p0 = _mm512_mul_epu32(block[u], m0);
            c0[u] = _mm512_xor_si512(r1_c0, _mm512_srli_epi64(block[u], 32));
            c1[u] = r1_c1;
            c2[u] = _mm512_xor_si512(_mm512_shuffle_epi32(p0, (_MM_PERM_ENUM)0xF5), r1_c2);
            c3[u] = p0;
            block[u] = _mm512_add_epi64(block[u], step);
        }
#pragma GCC unroll 16
        for (int r = 1; r < 10; r++) {
            const __m512i ka = _mm512_set1_epi64(mc_pi_key0(seed, r));
            const __m512i kb = _mm512_set1_epi64(mc_pi_key1(seed, r));
#pragma GCC unroll 8
            for (int u = 0; u < MC_PI_UNROLL; u++) {
                __m512i p0 = _mm512_mul_epu32(c0[u], m0);
                __m512i p1v = _mm512_mul_epu32(c2[u], m1);
                __m512i n0 = _mm512_xor_si512(
                    _mm512_xor_si512(_mm512_shuffle_epi32(p1v, (_MM_PERM_ENUM)0xF5), c1[u]), ka);
                __m512i n2 = _mm512_xor_si512(
                    _mm512_xor_si512(_mm512_shuffle_epi32(p0, (_MM_PERM_ENUM)0xF5), c3[u]), kb);
                c0[u] = n0;
                c1[u] = p1v;
                c2[u] = n2;
                c3[u] = p0;
            }
        }
#pragma GCC unroll 8
        for (int u = 0; u < MC_PI_UNROLL; u++) {
            __m512i xa = _mm512_mul_epu32(c0[u], c0[u]);
            __m512i ya = _mm512_mul_epu32(c1[u], c1[u]);
            __m512i xb = _mm512_mul_epu32(c2[u], c2[u]);
            __m512i yb = _mm512_mul_epu32(c3[u], c3[u]);
            /* miss: yy > ~xx unsigned; add one (subtract -1) in those lanes */
            __mmask8 ma = _mm512_cmpgt_epu64_mask(ya, _mm512_xor_si512(xa, ones));
            __mmask8 mb = _mm512_cmpgt_epu64_mask(yb, _mm512_xor_si512(xb, ones));
            misses = _mm512_mask_sub_epi64(misses, ma, misses, ones);
            misses = _mm512_mask_sub_epi64(misses, mb, misses, ones);
        }
    }
    return mc_pi_count_range(seed, stream, first, start) + (done - start) -
           (int64_t)_mm512_reduce_add_epi64(misses) + mc_pi_count_range(seed, stream, done, end);
}
ISA_POP
#endif /* ISA_X86 */

int mc_pi_path_available(mc_pi_path path)
{
    return path >= MC_PI_PATH_SCALAR && path <= MC_PI_PATH_AVX512 && isa_supported((isa_path)path);
}

/* The path mc_pi_hits uses: -1 until the first call reads MPMAP_ISA. */
static atomic_int mc_pi_path_state = -1;

mc_pi_path mc_pi_best_path(void)
{
    int p = atomic_load_explicit(&mc_pi_path_state, memory_order_relaxed);
    if (p < 0) {
        p = (int)isa_from_env("mc_pi_kernel");
        atomic_store_explicit(&mc_pi_path_state, p, memory_order_relaxed);
    }
    return (mc_pi_path)p;
}

int mc_pi_use_path(mc_pi_path path)
{
    if (!mc_pi_path_available(path))
        return MPMAP_EINVAL;
    atomic_store_explicit(&mc_pi_path_state, (int)path, memory_order_relaxed);
    return 0;
}

const char *mc_pi_path_name(mc_pi_path path)
{
    return isa_name((isa_path)path);
}

int64_t mc_pi_hits_range(mc_pi_path path, uint64_t seed, int64_t task, int64_t first, int64_t end)
{
    if (task < 0 || first < 0 || end < first || !mc_pi_path_available(path))
        return MPMAP_EINVAL;
    switch (path) {
#if ISA_X86
    case MC_PI_PATH_AVX512:
        return mc_pi_hits_avx512(seed, (uint64_t)task, first, end);
    case MC_PI_PATH_AVX2:
        return mc_pi_hits_avx2(seed, (uint64_t)task, first, end);
#endif
    default:
        return mc_pi_count_range(seed, (uint64_t)task, first, end);
    }
}

int64_t mc_pi_hits_path(mc_pi_path path, uint64_t seed, int64_t task, int64_t samples)
{
    if (samples < 0)
        return MPMAP_EINVAL;
    return mc_pi_hits_range(path, seed, task, 0, samples);
}

int64_t mc_pi_hits(uint64_t seed, int64_t task, int64_t samples)
{
    return mc_pi_hits_path(mc_pi_best_path(), seed, task, samples);
}

int64_t mc_pi_hits_scalar(uint64_t seed, int64_t task, int64_t samples)
{
    return mc_pi_hits_path(MC_PI_PATH_SCALAR, seed, task, samples);
}

int64_t mc_pi_task_samples(int64_t total, int64_t tasks, int64_t task)
{
    if (total < 0 || tasks < 1 || task < 0 || task >= tasks)
        return MPMAP_EINVAL;
    return total / tasks + (task < total % tasks ? 1 : 0);
}

void mc_pi_estimate(int64_t hits, int64_t samples, double *pi, double *std_error)
{
    if (samples < 1 || hits < 0 || hits > samples) {
        *pi = NAN;
        *std_error = NAN;
        return;
    }
    double p = (double)hits / (double)samples;
    *pi = 4.0 * p;
    *std_error = 4.0 * sqrt(p * (1.0 - p) / (double)samples);
}
