/*
 * mpmap_rng: reproducible random streams for map functions.
 *
 * A generator is keyed by (seed, stream). Use the task index as the stream
 * and a task draws the same numbers whichever rank runs it, whatever the
 * schedule and however its chunk was split. The numbers come from the
 * counter-based generator Philox4x32-10 (Salmon et al., SC'11, as implemented
 * by Random123): block b of stream s under seed k is
 *
 *     philox4x32_R(10, ctr = {b_lo, b_hi, s_lo, s_hi}, key = {k_lo, k_hi})
 *
 * (_lo/_hi are the low/high 32 bits), and the stream is the sequence of
 * 32-bit words block 0 word 0..3, block 1 word 0..3, ... So any word can be
 * computed directly, without running the generator up to it, and the stream
 * can be reproduced from Random123 alone.
 *
 * How draws map onto words (the order is part of the contract):
 *   mpmap_rng_u32      one word
 *   mpmap_rng_u64      two words, the first one is the low half
 *   mpmap_rng_uniform  one u64: (u64 >> 11) * 2^-53, in [0, 1), 53 bits
 *   mpmap_rng_normal   Box-Muller on two uniforms u1, u2 (two u64):
 *                      rho = sqrt(-2 ln(1 - u1)), z0 = rho cos(2 pi u2),
 *                      z1 = rho sin(2 pi u2); returns z0 and keeps z1 for the
 *                      next call, so pairs of calls use four u64.
 * Normals use the C library's log/sqrt/cos/sin, so they are bitwise
 * reproducible for a given libm (every rank of a job runs the same one);
 * integers and uniforms are bitwise reproducible everywhere.
 *
 * Matrices: give every row its own stream (mpmap_rng_rows_uniform/normal do
 * this), so a row's values do not depend on how many rows are generated or
 * on which rank generates them. Streams of one seed are shared by everything
 * that uses that seed: when one program needs several independent families
 * (say synthetic data rows and per-task sampling), take a different seed for
 * each with mpmap_rng_subseed.
 *
 * The header needs no Random123 headers: the state is plain integers, it is
 * owned by the caller (stack or heap) and holds no pointers, so it can be
 * copied to snapshot a position. Not thread-safe per object; use one
 * generator per thread.
 */
#ifndef MPMAP_RNG_H
#define MPMAP_RNG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Generator state. The fields are private: use the functions below. */
typedef struct mpmap_rng {
    uint64_t seed;       /* Philox key */
    uint64_t stream;     /* high 64 bits of the Philox counter */
    uint64_t next_block; /* low 64 bits of the counter of the block after `block` */
    uint32_t block[4];   /* words of the current block */
    uint32_t used;       /* words of `block` already handed out (4: none left) */
    uint32_t has_spare;  /* 1 when `spare` holds the second normal of a pair */
    double spare;
} mpmap_rng;

/* Positions the generator at word 0 of stream `stream` under `seed`. */
void mpmap_rng_init(mpmap_rng *r, uint64_t seed, uint64_t stream);

/* Raw Philox4x32-10 block: words 4*block .. 4*block+3 of (seed, stream). */
void mpmap_rng_block(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4]);

uint32_t mpmap_rng_u32(mpmap_rng *r);
uint64_t mpmap_rng_u64(mpmap_rng *r);

/* Uniform in [0, 1) with 53 random bits (a multiple of 2^-53). */
double mpmap_rng_uniform(mpmap_rng *r);

/* Standard normal by Box-Muller (see above); finite, |z| < 8.6. */
double mpmap_rng_normal(mpmap_rng *r);

/* Same values as n calls of mpmap_rng_uniform / mpmap_rng_normal. */
void mpmap_rng_fill_uniform(mpmap_rng *r, double *out, size_t n);
void mpmap_rng_fill_normal(mpmap_rng *r, double *out, size_t n);

/*
 * Advances by `words` 32-bit words, as `words` calls of mpmap_rng_u32 would,
 * in constant time. A kept Box-Muller partner is dropped, so the next normal
 * starts a new pair at the new position.
 */
void mpmap_rng_skip(mpmap_rng *r, uint64_t words);

/* Words consumed so far since init (modulo 2^64). */
uint64_t mpmap_rng_position(const mpmap_rng *r);

/*
 * Seed of an independent family of streams for `purpose` (any number the
 * program picks, e.g. 1 for data, 2 for sampling). Deterministic.
 */
uint64_t mpmap_rng_subseed(uint64_t seed, uint64_t purpose);

/*
 * Row-major rows first_row .. first_row+nrows-1 of an unbounded matrix with
 * ncols columns: row i is the first ncols uniforms (normals) of stream i
 * under `seed`. out holds nrows*ncols doubles.
 */
void mpmap_rng_rows_uniform(uint64_t seed, uint64_t first_row, size_t nrows, size_t ncols,
                            double *out);
void mpmap_rng_rows_normal(uint64_t seed, uint64_t first_row, size_t nrows, size_t ncols,
                           double *out);

#ifdef __cplusplus
}
#endif

#endif /* MPMAP_RNG_H */
