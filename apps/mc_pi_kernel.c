/*
 * Monte Carlo pi kernel (mc_pi_kernel.h): counts points inside the quarter
 * circle, drawn from mpmap_rng streams, as fast as the CPU allows while
 * staying bitwise reproducible.
 *
 * Speed comes from two things. First, running Philox4x32-10 on several
 * counters per vector instruction. Each 64-bit vector lane carries one Philox
 * word in its low 32 bits: _mm256_mul_epu32 / _mm512_mul_epu32 multiply
 * exactly those low halves into a full 64-bit product, so a Philox round
 * needs only one multiply, one shuffle (to bring the high half down) and
 * xors per word pair. The high 32 bits of a lane may hold garbage between
 * rounds; the multiplies ignore it and only low halves are ever read.
 * Second, a task's blocks differ only in the counter's low word (its high
 * word changes once every 2^32 blocks), so whatever rounds 0-2 compute from
 * the stream, the key and the high word is computed once per run of blocks
 * (mc_pi_fold), which saves two of the twenty multiplies of every block, on
 * every path. The hit test is exact integer arithmetic, so every path counts
 * the same hits.
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

/* Key words of Philox round r (0-based): the key bumped r times, mod 2^32. */
static inline uint32_t mc_pi_key0(uint64_t seed, int r)
{
    return (uint32_t)seed + (uint32_t)r * PHILOX_W32_0;
}

static inline uint32_t mc_pi_key1(uint64_t seed, int r)
{
    return (uint32_t)(seed >> 32) + (uint32_t)r * PHILOX_W32_1;
}

/*
 * Independent vectors per round, so multiply latencies overlap. Measured on a
 * Zen 5 core (CPU seconds, 1e9 points, each of 2-8): AVX2 5 and 6 tie, 5%
 * faster than 4 although AVX2's 16 registers then hold even fewer of the
 * states (the rest live on the stack), 2, 3, 7 and 8 are slower; 5 keeps the
 * plain-C remainder of a task shorter.
 * AVX-512 (32 registers) 6: 19% faster than 4, 6-9% faster than 5, 7 or 8.
 * Overridable at build time (-D) for tuning on other CPUs; any value >= 1
 * gives the same counts.
 */
#ifndef MC_PI_UNROLL_AVX2
#define MC_PI_UNROLL_AVX2 5
#endif
#ifndef MC_PI_UNROLL_AVX512
#define MC_PI_UNROLL_AVX512 6
#endif

/*
 * What rounds 0-2 share across the blocks of one stream whose counter's high
 * word is b_hi (round r's output words are x0..x3, Random123's order). The
 * counter is {b_lo, b_hi, stream_lo, stream_hi}: round 0 multiplies the
 * stream word and passes b_hi through, so its words 0 and 1 are the same for
 * every block; round 1 multiplies that word 0, so its word 3 and all of its
 * word 2 but the xor with round 0's word 3 are the same too. A block then
 * costs one multiply in each of rounds 0 and 1 instead of two.
 */
typedef struct mc_pi_fold {
    uint32_t r0_x2; /* round 0: x2 = hi(M0 * b_lo) ^ r0_x2 */
    uint32_t r1_x0; /* round 1: x0 = hi(M1 * x2) ^ r1_x0 */
    uint32_t r1_x2; /* round 1: x2 = lo(M0 * b_lo) ^ r1_x2 */
    uint32_t r2_x0; /* round 2: x0 = hi(M1 * x2) ^ x1 ^ r2_x0 (its key word) */
    uint32_t r2_x2; /* round 2: x2 = hi(M0 * x0) ^ r2_x2 (round 1's x3 folded in) */
} mc_pi_fold;

static mc_pi_fold mc_pi_fold_rounds(uint64_t seed, uint64_t stream, uint32_t b_hi)
{
    const uint64_t p1 = (uint64_t)PHILOX_M4x32_1 * (uint32_t)stream;
    const uint32_t x0 = (uint32_t)(p1 >> 32) ^ b_hi ^ mc_pi_key0(seed, 0);
    const uint32_t x1 = (uint32_t)p1;
    const uint64_t q0 = (uint64_t)PHILOX_M4x32_0 * x0;
    return (mc_pi_fold){ .r0_x2 = (uint32_t)(stream >> 32) ^ mc_pi_key1(seed, 0),
                         .r1_x0 = x1 ^ mc_pi_key0(seed, 1),
                         .r1_x2 = (uint32_t)(q0 >> 32) ^ mc_pi_key1(seed, 1),
                         .r2_x0 = mc_pi_key0(seed, 2),
                         .r2_x2 = (uint32_t)q0 ^ mc_pi_key1(seed, 2) };
}

/* Hits of the n blocks from b_lo on (same high word, folded in f), in plain C. */
static int64_t mc_pi_blocks_scalar(uint64_t seed, const mc_pi_fold *f, uint32_t b_lo, uint64_t n)
{
    int64_t hits = 0;
    for (uint64_t i = 0; i < n; i++) {
        const uint64_t p0 = (uint64_t)PHILOX_M4x32_0 * (b_lo + (uint32_t)i); /* round 0 */
        const uint32_t x2 = (uint32_t)(p0 >> 32) ^ f->r0_x2;
        const uint64_t q1 = (uint64_t)PHILOX_M4x32_1 * x2; /* round 1 */
        const uint32_t y0 = (uint32_t)(q1 >> 32) ^ f->r1_x0;
        const uint32_t y2 = (uint32_t)p0 ^ f->r1_x2;
        const uint64_t s0 = (uint64_t)PHILOX_M4x32_0 * y0; /* round 2 */
        const uint64_t s1 = (uint64_t)PHILOX_M4x32_1 * y2;
        uint32_t c0 = (uint32_t)(s1 >> 32) ^ (uint32_t)q1 ^ f->r2_x0;
        uint32_t c1 = (uint32_t)s1;
        uint32_t c2 = (uint32_t)(s0 >> 32) ^ f->r2_x2;
        uint32_t c3 = (uint32_t)s0;
        for (int r = 3; r < 10; r++) {
            const uint64_t a = (uint64_t)PHILOX_M4x32_0 * c0;
            const uint64_t b = (uint64_t)PHILOX_M4x32_1 * c2;
            c0 = (uint32_t)(b >> 32) ^ c1 ^ mc_pi_key0(seed, r);
            c1 = (uint32_t)b;
            c2 = (uint32_t)(a >> 32) ^ c3 ^ mc_pi_key1(seed, r);
            c3 = (uint32_t)a;
        }
        hits += mc_pi_point_hits(c0, c1) + mc_pi_point_hits(c2, c3);
    }
    return hits;
}

#if ISA_X86
ISA_PUSH_AVX2
/*
 * Hits of `groups` groups of 4 * MC_PI_UNROLL_AVX2 blocks from b_lo on (same
 * high word, folded in f): 4 blocks per vector, one Philox word per 64-bit
 * lane.
 */
static int64_t mc_pi_groups_avx2(uint64_t seed, const mc_pi_fold *f, uint32_t b_lo, uint64_t groups)
{
    enum { LANES = 4, U = MC_PI_UNROLL_AVX2, BLOCKS = LANES * U };
    const __m256i m0 = _mm256_set1_epi64x(PHILOX_M4x32_0);
    const __m256i m1 = _mm256_set1_epi64x(PHILOX_M4x32_1);
    const __m256i r0_x2 = _mm256_set1_epi64x(f->r0_x2);
    const __m256i r1_x0 = _mm256_set1_epi64x(f->r1_x0);
    const __m256i r1_x2 = _mm256_set1_epi64x(f->r1_x2);
    const __m256i r2_x0 = _mm256_set1_epi64x(f->r2_x0);
    const __m256i r2_x2 = _mm256_set1_epi64x(f->r2_x2);
    /*
     * AVX2 has only signed 64-bit compares: unsigned yy > ~xx (a miss) is the
     * signed compare of both sides with the sign bit flipped, and
     * ~xx ^ sign equals xx ^ not_sign.
     */
    const __m256i sign = _mm256_set1_epi64x(INT64_MIN);
    const __m256i not_sign = _mm256_set1_epi64x(INT64_MAX);
    const __m256i step = _mm256_set1_epi64x(BLOCKS);
    __m256i block[U];
    for (int u = 0; u < U; u++)
        block[u] = _mm256_add_epi64(_mm256_set1_epi64x((int64_t)b_lo + LANES * u),
                                    _mm256_setr_epi64x(0, 1, 2, 3));
    __m256i misses = _mm256_setzero_si256();

    for (uint64_t g = 0; g < groups; g++) {
        __m256i c0[U], c1[U], c2[U], c3[U];
#pragma GCC unroll 8
        for (int u = 0; u < U; u++) {
            /* rounds 0 and 1: one multiply each; shuffle 0xF5 copies each
             * lane's high half into its low half */
            __m256i p0 = _mm256_mul_epu32(block[u], m0);
            __m256i x2 = _mm256_xor_si256(_mm256_shuffle_epi32(p0, 0xF5), r0_x2);
            __m256i q1 = _mm256_mul_epu32(x2, m1);
            __m256i y0 = _mm256_xor_si256(_mm256_shuffle_epi32(q1, 0xF5), r1_x0);
            __m256i y2 = _mm256_xor_si256(p0, r1_x2);
            /* round 2: round 1's word 3 is folded into r2_x2 */
            __m256i s0 = _mm256_mul_epu32(y0, m0);
            __m256i s1 = _mm256_mul_epu32(y2, m1);
            c0[u] = _mm256_xor_si256(_mm256_xor_si256(_mm256_shuffle_epi32(s1, 0xF5), q1), r2_x0);
            c1[u] = s1;
            c2[u] = _mm256_xor_si256(_mm256_shuffle_epi32(s0, 0xF5), r2_x2);
            c3[u] = s0;
            block[u] = _mm256_add_epi64(block[u], step);
        }
#pragma GCC unroll 16
        for (int r = 3; r < 10; r++) {
            const __m256i ka = _mm256_set1_epi64x(mc_pi_key0(seed, r));
            const __m256i kb = _mm256_set1_epi64x(mc_pi_key1(seed, r));
#pragma GCC unroll 8
            for (int u = 0; u < U; u++) {
                __m256i p0 = _mm256_mul_epu32(c0[u], m0);
                __m256i p1 = _mm256_mul_epu32(c2[u], m1);
                c0[u] =
                    _mm256_xor_si256(_mm256_xor_si256(_mm256_shuffle_epi32(p1, 0xF5), c1[u]), ka);
                c2[u] =
                    _mm256_xor_si256(_mm256_xor_si256(_mm256_shuffle_epi32(p0, 0xF5), c3[u]), kb);
                c1[u] = p1;
                c3[u] = p0;
            }
        }
#pragma GCC unroll 8
        for (int u = 0; u < U; u++) {
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
    return (int64_t)(groups * 2 * BLOCKS) - (lane[0] + lane[1] + lane[2] + lane[3]);
}
ISA_POP

ISA_PUSH_AVX512
/* As mc_pi_groups_avx2 with 8 lanes, a ternary xor and mask compares. */
static int64_t mc_pi_groups_avx512(uint64_t seed, const mc_pi_fold *f, uint32_t b_lo,
                                   uint64_t groups)
{
    enum { LANES = 8, U = MC_PI_UNROLL_AVX512, BLOCKS = LANES * U };
    const __m512i m0 = _mm512_set1_epi64(PHILOX_M4x32_0);
    const __m512i m1 = _mm512_set1_epi64(PHILOX_M4x32_1);
    const __m512i r0_x2 = _mm512_set1_epi64(f->r0_x2);
    const __m512i r1_x0 = _mm512_set1_epi64(f->r1_x0);
    const __m512i r1_x2 = _mm512_set1_epi64(f->r1_x2);
    const __m512i r2_x0 = _mm512_set1_epi64(f->r2_x0);
    const __m512i r2_x2 = _mm512_set1_epi64(f->r2_x2);
    const __m512i ones = _mm512_set1_epi64(-1);
    const __m512i step = _mm512_set1_epi64(BLOCKS);
    __m512i block[U];
    for (int u = 0; u < U; u++)
        block[u] = _mm512_add_epi64(_mm512_set1_epi64((int64_t)b_lo + LANES * u),
                                    _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
    __m512i hits = _mm512_setzero_si512();

    for (uint64_t g = 0; g < groups; g++) {
        __m512i c0[U], c1[U], c2[U], c3[U];
#pragma GCC unroll 8
        for (int u = 0; u < U; u++) {
            __m512i p0 = _mm512_mul_epu32(block[u], m0);
            __m512i x2 = _mm512_xor_si512(_mm512_shuffle_epi32(p0, (_MM_PERM_ENUM)0xF5), r0_x2);
            __m512i q1 = _mm512_mul_epu32(x2, m1);
            __m512i y0 = _mm512_xor_si512(_mm512_shuffle_epi32(q1, (_MM_PERM_ENUM)0xF5), r1_x0);
            __m512i y2 = _mm512_xor_si512(p0, r1_x2);
            __m512i s0 = _mm512_mul_epu32(y0, m0);
            __m512i s1 = _mm512_mul_epu32(y2, m1);
            /* 0x96: a ^ b ^ c in one instruction */
            c0[u] = _mm512_ternarylogic_epi64(_mm512_shuffle_epi32(s1, (_MM_PERM_ENUM)0xF5), q1,
                                              r2_x0, 0x96);
            c1[u] = s1;
            c2[u] = _mm512_xor_si512(_mm512_shuffle_epi32(s0, (_MM_PERM_ENUM)0xF5), r2_x2);
            c3[u] = s0;
            block[u] = _mm512_add_epi64(block[u], step);
        }
#pragma GCC unroll 16
        for (int r = 3; r < 10; r++) {
            const __m512i ka = _mm512_set1_epi64(mc_pi_key0(seed, r));
            const __m512i kb = _mm512_set1_epi64(mc_pi_key1(seed, r));
#pragma GCC unroll 8
            for (int u = 0; u < U; u++) {
                __m512i p0 = _mm512_mul_epu32(c0[u], m0);
                __m512i p1 = _mm512_mul_epu32(c2[u], m1);
                c0[u] = _mm512_ternarylogic_epi64(_mm512_shuffle_epi32(p1, (_MM_PERM_ENUM)0xF5),
                                                  c1[u], ka, 0x96);
                c2[u] = _mm512_ternarylogic_epi64(_mm512_shuffle_epi32(p0, (_MM_PERM_ENUM)0xF5),
                                                  c3[u], kb, 0x96);
                c1[u] = p1;
                c3[u] = p0;
            }
        }
#pragma GCC unroll 8
        for (int u = 0; u < U; u++) {
            /* hit: x^2 + y^2 does not carry out of 64 bits, i.e. the sum is >= x^2 */
            __m512i xa = _mm512_mul_epu32(c0[u], c0[u]);
            __m512i xb = _mm512_mul_epu32(c2[u], c2[u]);
            __m512i sa = _mm512_add_epi64(xa, _mm512_mul_epu32(c1[u], c1[u]));
            __m512i sb = _mm512_add_epi64(xb, _mm512_mul_epu32(c3[u], c3[u]));
            __mmask8 ha = _mm512_cmp_epu64_mask(sa, xa, _MM_CMPINT_NLT);
            __mmask8 hb = _mm512_cmp_epu64_mask(sb, xb, _MM_CMPINT_NLT);
            hits = _mm512_mask_sub_epi64(hits, ha, hits, ones);
            hits = _mm512_mask_sub_epi64(hits, hb, hits, ones);
        }
    }
    return (int64_t)_mm512_reduce_add_epi64(hits);
}
ISA_POP
#endif /* ISA_X86 */

/*
 * Hits of whole blocks [b0, b1) of stream (seed, stream): whole vector groups
 * on `path`, the rest in plain C. A run of blocks never crosses a multiple of
 * 2^32, where the high word folded into the first rounds changes.
 */
static int64_t mc_pi_blocks(mc_pi_path path, uint64_t seed, uint64_t stream, uint64_t b0,
                            uint64_t b1)
{
    const uint64_t per_group = !ISA_X86                    ? 0
                               : path == MC_PI_PATH_AVX512 ? 8 * MC_PI_UNROLL_AVX512
                               : path == MC_PI_PATH_AVX2   ? 4 * MC_PI_UNROLL_AVX2
                                                           : 0;
    int64_t hits = 0;
    while (b0 < b1) {
        uint64_t run_end = ((b0 >> 32) + 1) << 32;
        if (run_end == 0 || run_end > b1) /* 0: the last run of the counter space */
            run_end = b1;
        const mc_pi_fold f = mc_pi_fold_rounds(seed, stream, (uint32_t)(b0 >> 32));
        const uint64_t groups = per_group ? (run_end - b0) / per_group : 0;
#if ISA_X86
        if (groups > 0 && path == MC_PI_PATH_AVX512)
            hits += mc_pi_groups_avx512(seed, &f, (uint32_t)b0, groups);
        else if (groups > 0)
            hits += mc_pi_groups_avx2(seed, &f, (uint32_t)b0, groups);
#endif
        const uint64_t done = b0 + groups * per_group;
        hits += mc_pi_blocks_scalar(seed, &f, (uint32_t)done, run_end - done);
        b0 = run_end;
    }
    return hits;
}

/* Whether point p of stream (seed, stream) hits, from its block by Random123. */
static int64_t mc_pi_one_point(uint64_t seed, uint64_t stream, int64_t p)
{
    uint32_t w[4];
    mpmap_rng_block(seed, stream, (uint64_t)p / 2, w);
    /* A block holds points 2b (words 0, 1) and 2b+1 (words 2, 3). */
    const int j = (int)(p % 2);
    return mc_pi_point_hits(w[2 * j], w[2 * j + 1]);
}

/*
 * Hits among points [first, end): whole blocks by mc_pi_blocks; a point whose
 * block partner lies outside the range (an odd first, an even last) alone.
 */
static int64_t mc_pi_count(mc_pi_path path, uint64_t seed, uint64_t stream, int64_t first,
                           int64_t end)
{
    int64_t hits = 0;
    if (first < end && first % 2)
        hits += mc_pi_one_point(seed, stream, first++);
    if (first < end && end % 2)
        hits += mc_pi_one_point(seed, stream, --end);
    return hits + mc_pi_blocks(path, seed, stream, (uint64_t)first / 2, (uint64_t)end / 2);
}

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

const char *mc_pi_path_name(mc_pi_path path) { return isa_name((isa_path)path); }

int64_t mc_pi_hits_range(mc_pi_path path, uint64_t seed, int64_t task, int64_t first, int64_t end)
{
    if (task < 0 || first < 0 || end < first || !mc_pi_path_available(path))
        return MPMAP_EINVAL;
    return mc_pi_count(path, seed, (uint64_t)task, first, end);
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
