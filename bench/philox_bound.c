/*
 * Upper bound of mc_pi's sampling rate on one core: the same Philox4x32-10
 * blocks mc_pi draws, and the same exact in-circle test, with nothing else
 * around them (no MPI, no tasks handed out, no output).
 *
 *     philox_bound SAMPLES TASKS SEED
 *
 * Draws exactly what `mc_pi --samples SAMPLES --tasks TASKS --seed SEED`
 * draws: task t gets SAMPLES/TASKS points (one more for the first
 * SAMPLES % TASKS tasks), point i of task t is words 2i, 2i+1 of the stream
 * (SEED, t), i.e. block b = i/2 is philox4x32_R(10, {b_lo, b_hi, t_lo, t_hi},
 * {SEED_lo, SEED_hi}) and holds two points. A point (x, y) hits when
 * x^2 + y^2 < 2^64 in integers, so the total number of hits printed must
 * equal mc_pi's `hits` attribute: the check that the same numbers were drawn.
 * The last line of stdout is a JSON object: hits, the path, the loop's
 * seconds and samples per second.
 *
 * The path is chosen as the apps choose theirs (isa.h: MPMAP_ISA, else the
 * best the CPU supports). The vector paths keep one Philox word per 64-bit
 * lane, as the multiply _mm*_mul_epu32 reads only low halves, and beyond what
 * a general kernel can do they fold everything that is the same in every
 * lane of a task: the stream word of round 1, the block's high word (constant
 * while blocks stay below 2^32), hence half of the multiplies of rounds 1 and
 * 2. What remains is the work no sampler of these streams can skip.
 */
#define _POSIX_C_SOURCE 200809L
#include "isa.h"

#include <Random123/philox.h>

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if ISA_X86
#include <immintrin.h>
#endif

/* Independent vectors per round, so multiply latencies overlap: 6 for
 * AVX-512 (32 registers; 6 was fastest of 2-8 on a Zen 5 core, 15% above 4),
 * 4 for AVX2, whose 16 registers hold no more. */
#define BOUND_UNROLL_AVX512 6
#define BOUND_UNROLL_AVX2 4

static inline uint32_t key0(uint64_t seed, uint32_t r) { return (uint32_t)seed + r * PHILOX_W32_0; }

static inline uint32_t key1(uint64_t seed, uint32_t r)
{
    return (uint32_t)(seed >> 32) + r * PHILOX_W32_1;
}

static inline int64_t point_hits(uint32_t x, uint32_t y)
{
    uint64_t xx = (uint64_t)x * x;
    uint64_t yy = (uint64_t)y * y;
    return yy <= ~xx;
}

/* Random123's own Philox, one block at a time: the reference, the tails of
 * the vector paths, and the path of CPUs without AVX2. */
static int64_t blocks_scalar(uint64_t seed, uint64_t stream, uint64_t b0, uint64_t b1)
{
    philox4x32_key_t key = { { (uint32_t)seed, (uint32_t)(seed >> 32) } };
    int64_t hits = 0;
    for (uint64_t b = b0; b < b1; b++) {
        philox4x32_ctr_t ctr = { { (uint32_t)b, (uint32_t)(b >> 32), (uint32_t)stream,
                                   (uint32_t)(stream >> 32) } };
        philox4x32_ctr_t w = philox4x32_R(10, ctr, key);
        hits += point_hits(w.v[0], w.v[1]) + point_hits(w.v[2], w.v[3]);
    }
    return hits;
}

/*
 * Lane-invariant words of rounds 0-2 for blocks whose high word is b_hi
 * (names: round r's output words x0..x3, Random123's order). Round 0
 * multiplies the stream word (same in every lane) and passes b_hi through,
 * so its words 0 and 1 are constants; round 1 then multiplies that constant
 * word 0, so its words 2 (up to the xor with the lane's round-0 word 3) and
 * 3 are constants too.
 */
typedef struct fold {
    uint32_t r0_x2; /* round 0: x2 = hi(M0 * b_lo) ^ r0_x2 */
    uint32_t r1_x0; /* round 1: x0 = hi(M1 * x2) ^ r1_x0 */
    uint32_t r1_x2; /* round 1: x2 = lo(M0 * b_lo) ^ r1_x2 */
    uint32_t r2_x2; /* round 2: x2 = hi(M0 * x0) ^ r2_x2 (round 1's x3, a constant, folded in) */
} fold;

static fold fold_rounds(uint64_t seed, uint64_t stream, uint32_t b_hi)
{
    uint64_t p1 = (uint64_t)PHILOX_M4x32_1 * (uint32_t)stream;
    uint32_t x0 = (uint32_t)(p1 >> 32) ^ b_hi ^ key0(seed, 0);
    uint32_t x1 = (uint32_t)p1;
    uint64_t q0 = (uint64_t)PHILOX_M4x32_0 * x0;
    return (fold){ .r0_x2 = (uint32_t)(stream >> 32) ^ key1(seed, 0),
                   .r1_x0 = x1 ^ key0(seed, 1),
                   .r1_x2 = (uint32_t)(q0 >> 32) ^ key1(seed, 1),
                   .r2_x2 = (uint32_t)q0 ^ key1(seed, 2) };
}

#if ISA_X86
ISA_PUSH_AVX512
/* Hits of `groups` groups of 8 * BOUND_UNROLL_AVX512 blocks from block (b_hi, b_lo). */
static int64_t groups_avx512(uint64_t seed, uint64_t stream, uint32_t b_hi, uint32_t b_lo,
                             uint64_t groups)
{
    enum { LANES = 8, U = BOUND_UNROLL_AVX512, BLOCKS = LANES * U };
    const fold f = fold_rounds(seed, stream, b_hi);
    const __m512i m0 = _mm512_set1_epi64(PHILOX_M4x32_0);
    const __m512i m1 = _mm512_set1_epi64(PHILOX_M4x32_1);
    const __m512i r0_x2 = _mm512_set1_epi64(f.r0_x2);
    const __m512i r1_x0 = _mm512_set1_epi64(f.r1_x0);
    const __m512i r1_x2 = _mm512_set1_epi64(f.r1_x2);
    const __m512i r2_x2 = _mm512_set1_epi64(f.r2_x2);
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
            /* rounds 0 and 1: one multiply each */
            __m512i p0 = _mm512_mul_epu32(block[u], m0);
            __m512i x2 = _mm512_xor_si512(_mm512_shuffle_epi32(p0, (_MM_PERM_ENUM)0xF5), r0_x2);
            __m512i q1 = _mm512_mul_epu32(x2, m1);
            __m512i y0 = _mm512_xor_si512(_mm512_shuffle_epi32(q1, (_MM_PERM_ENUM)0xF5), r1_x0);
            __m512i y2 = _mm512_xor_si512(p0, r1_x2);
            /* round 2: word 3 of round 1 is a constant, folded into r2_x2 */
            __m512i s0 = _mm512_mul_epu32(y0, m0);
            __m512i s1 = _mm512_mul_epu32(y2, m1);
            c0[u] = _mm512_ternarylogic_epi64(_mm512_shuffle_epi32(s1, (_MM_PERM_ENUM)0xF5), q1,
                                              _mm512_set1_epi64(key0(seed, 2)), 0x96);
            c1[u] = s1;
            c2[u] = _mm512_xor_si512(_mm512_shuffle_epi32(s0, (_MM_PERM_ENUM)0xF5), r2_x2);
            c3[u] = s0;
            block[u] = _mm512_add_epi64(block[u], step);
        }
#pragma GCC unroll 16
        for (uint32_t r = 3; r < 10; r++) {
            const __m512i ka = _mm512_set1_epi64(key0(seed, r));
            const __m512i kb = _mm512_set1_epi64(key1(seed, r));
#pragma GCC unroll 8
            for (int u = 0; u < U; u++) {
                __m512i p0 = _mm512_mul_epu32(c0[u], m0);
                __m512i p1 = _mm512_mul_epu32(c2[u], m1);
                /* 0x96: a ^ b ^ c in one instruction */
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
            /* hit: x^2 + y^2 does not carry out of 64 bits */
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

ISA_PUSH_AVX2
/* As groups_avx512 with 4 lanes and two xors where AVX-512 has one ternlog. */
static int64_t groups_avx2(uint64_t seed, uint64_t stream, uint32_t b_hi, uint32_t b_lo,
                           uint64_t groups)
{
    enum { LANES = 4, U = BOUND_UNROLL_AVX2, BLOCKS = LANES * U };
    const fold f = fold_rounds(seed, stream, b_hi);
    const __m256i m0 = _mm256_set1_epi64x(PHILOX_M4x32_0);
    const __m256i m1 = _mm256_set1_epi64x(PHILOX_M4x32_1);
    const __m256i r0_x2 = _mm256_set1_epi64x(f.r0_x2);
    const __m256i r1_x0 = _mm256_set1_epi64x(f.r1_x0);
    const __m256i r1_x2 = _mm256_set1_epi64x(f.r1_x2);
    const __m256i r2_x2 = _mm256_set1_epi64x(f.r2_x2);
    const __m256i k2 = _mm256_set1_epi64x(key0(seed, 2));
    /* unsigned y^2 > ~x^2 (a miss) as a signed compare with flipped sign bits */
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
            __m256i p0 = _mm256_mul_epu32(block[u], m0);
            __m256i x2 = _mm256_xor_si256(_mm256_shuffle_epi32(p0, 0xF5), r0_x2);
            __m256i q1 = _mm256_mul_epu32(x2, m1);
            __m256i y0 = _mm256_xor_si256(_mm256_shuffle_epi32(q1, 0xF5), r1_x0);
            __m256i y2 = _mm256_xor_si256(p0, r1_x2);
            __m256i s0 = _mm256_mul_epu32(y0, m0);
            __m256i s1 = _mm256_mul_epu32(y2, m1);
            c0[u] = _mm256_xor_si256(_mm256_xor_si256(_mm256_shuffle_epi32(s1, 0xF5), q1), k2);
            c1[u] = s1;
            c2[u] = _mm256_xor_si256(_mm256_shuffle_epi32(s0, 0xF5), r2_x2);
            c3[u] = s0;
            block[u] = _mm256_add_epi64(block[u], step);
        }
#pragma GCC unroll 16
        for (uint32_t r = 3; r < 10; r++) {
            const __m256i ka = _mm256_set1_epi64x(key0(seed, r));
            const __m256i kb = _mm256_set1_epi64x(key1(seed, r));
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
#endif /* ISA_X86 */

/*
 * Hits of blocks [b0, b1) of stream (seed, stream): whole vector groups on
 * `path`, the rest by Random123. Groups never straddle a multiple of 2^32
 * blocks, where the folded high word changes.
 */
static int64_t blocks_hits(isa_path path, uint64_t seed, uint64_t stream, uint64_t b0, uint64_t b1)
{
    const uint64_t per_group = path == ISA_AVX512 ? 8 * BOUND_UNROLL_AVX512 : 4 * BOUND_UNROLL_AVX2;
    int64_t hits = 0;
    while (b0 < b1) {
        uint64_t seg_end = ((b0 >> 32) + 1) << 32;
        if (seg_end == 0 || seg_end > b1) /* 0: the last segment of the counter space */
            seg_end = b1;
        uint64_t groups = path == ISA_SCALAR ? 0 : (seg_end - b0) / per_group;
#if ISA_X86
        if (groups > 0 && path == ISA_AVX512)
            hits += groups_avx512(seed, stream, (uint32_t)(b0 >> 32), (uint32_t)b0, groups);
        else if (groups > 0)
            hits += groups_avx2(seed, stream, (uint32_t)(b0 >> 32), (uint32_t)b0, groups);
#endif
        hits += blocks_scalar(seed, stream, b0 + groups * per_group, seg_end);
        b0 = seg_end;
    }
    return hits;
}

/* Hits among the first `samples` points of stream (seed, task). */
static int64_t task_hits(isa_path path, uint64_t seed, uint64_t task, int64_t samples)
{
    uint64_t whole = (uint64_t)samples / 2;
    int64_t hits = blocks_hits(path, seed, task, 0, whole);
    if (samples % 2) { /* the last block's first point only */
        philox4x32_ctr_t ctr = { { (uint32_t)whole, (uint32_t)(whole >> 32), (uint32_t)task,
                                   (uint32_t)(task >> 32) } };
        philox4x32_key_t key = { { (uint32_t)seed, (uint32_t)(seed >> 32) } };
        philox4x32_ctr_t w = philox4x32_R(10, ctr, key);
        hits += point_hits(w.v[0], w.v[1]);
    }
    return hits;
}

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A count in plain or 1e9 notation, as mc_pi accepts it; -1 if not a whole number. */
static int64_t parse_count(const char *text)
{
    char *end = NULL;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || !(v >= 0) || v > 9.2e18 || v != (double)(int64_t)v)
        return -1;
    return (int64_t)v;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: philox_bound SAMPLES TASKS SEED\n");
        return 2;
    }
    int64_t samples = parse_count(argv[1]), tasks = parse_count(argv[2]);
    int64_t seed = parse_count(argv[3]);
    if (samples < 1 || tasks < 1 || tasks > samples || seed < 0) {
        fprintf(stderr, "philox_bound: need 1 <= TASKS <= SAMPLES and SEED >= 0\n");
        return 2;
    }
    const isa_path path = isa_from_env("philox_bound");
    /* A vector path must agree with Random123 before it is timed, here on
     * blocks that cross 2^32, where the folded high word changes. */
    const uint64_t b0 = (1ull << 32) - 100, b1 = (1ull << 32) + 300;
    if (blocks_hits(path, (uint64_t)seed, 7, b0, b1) != blocks_scalar((uint64_t)seed, 7, b0, b1)) {
        fprintf(stderr, "philox_bound: the %s path disagrees with Random123\n", isa_name(path));
        return 1;
    }

    double start = seconds();
    int64_t hits = 0;
    for (int64_t t = 0; t < tasks; t++)
        hits += task_hits(path, (uint64_t)seed, (uint64_t)t,
                          samples / tasks + (t < samples % tasks ? 1 : 0));
    double loop = seconds() - start;
    printf("{\"samples\": %" PRId64 ", \"tasks\": %" PRId64 ", \"seed\": %" PRId64
           ", \"hits\": %" PRId64 ", \"path\": \"%s\", \"loop_seconds\": %.6f, "
           "\"samples_per_s\": %.6g}\n",
           samples, tasks, seed, hits, isa_name(path), loop,
           loop > 0 ? (double)samples / loop : 0.0);
    return 0;
}
