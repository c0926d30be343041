/*
 * Reproducible random streams (mpmap_rng.h): a thin wrapper that turns
 * Random123's Philox4x32-10 bijection into a sequence of 32-bit words per
 * (seed, stream), plus uniform and normal doubles drawn from it.
 */
#include "mpmap_rng.h"

#include <math.h>
#include <Random123/philox.h>

/* 2 pi rounded to double; cos/sin of 2 pi u are then as good as libm's. */
#define RNG_TWO_PI 6.283185307179586476925286766559

void mpmap_rng_block(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4])
{
    philox4x32_ctr_t ctr = { { (uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                               (uint32_t)(stream >> 32) } };
    philox4x32_key_t key = { { (uint32_t)seed, (uint32_t)(seed >> 32) } };
    philox4x32_ctr_t r = philox4x32(ctr, key);
    for (int i = 0; i < 4; i++)
        out[i] = r.v[i];
}

void mpmap_rng_init(mpmap_rng *r, uint64_t seed, uint64_t stream)
{
    r->seed = seed;
    r->stream = stream;
    r->next_block = 0;
    for (int i = 0; i < 4; i++)
        r->block[i] = 0;
    r->used = 4; /* the first draw generates block 0 */
    r->has_spare = 0;
    r->spare = 0.0;
}

uint32_t mpmap_rng_u32(mpmap_rng *r)
{
    if (r->used == 4) {
        mpmap_rng_block(r->seed, r->stream, r->next_block, r->block);
        r->next_block++;
        r->used = 0;
    }
    return r->block[r->used++];
}

uint64_t mpmap_rng_u64(mpmap_rng *r)
{
    uint64_t lo = mpmap_rng_u32(r);
    uint64_t hi = mpmap_rng_u32(r);
    return lo | (hi << 32);
}

double mpmap_rng_uniform(mpmap_rng *r)
{
    /* The top 53 bits fill a double's significand exactly: no rounding up to 1. */
    return (double)(mpmap_rng_u64(r) >> 11) * 0x1p-53;
}

double mpmap_rng_normal(mpmap_rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    /* 1 - u1 lies in (0, 1], so the logarithm is finite. */
    double u1 = 1.0 - mpmap_rng_uniform(r);
    double u2 = mpmap_rng_uniform(r);
    double rho = sqrt(-2.0 * log(u1));
    double theta = RNG_TWO_PI * u2;
    r->spare = rho * sin(theta);
    r->has_spare = 1;
    return rho * cos(theta);
}

void mpmap_rng_fill_uniform(mpmap_rng *r, double *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = mpmap_rng_uniform(r);
}

void mpmap_rng_fill_normal(mpmap_rng *r, double *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = mpmap_rng_normal(r);
}

uint64_t mpmap_rng_position(const mpmap_rng *r)
{
    /* next_block blocks generated, of which 4 - used words are still unread. */
    return r->next_block * 4 - (4 - r->used);
}

void mpmap_rng_skip(mpmap_rng *r, uint64_t words)
{
    uint64_t target = mpmap_rng_position(r) + words;
    r->has_spare = 0;
    r->next_block = target / 4;
    r->used = 4;
    if (target % 4 != 0) {
        /* Land inside a block: generate it and mark the skipped words used. */
        mpmap_rng_block(r->seed, r->stream, r->next_block, r->block);
        r->next_block++;
        r->used = (uint32_t)(target % 4);
    }
}

uint64_t mpmap_rng_subseed(uint64_t seed, uint64_t purpose)
{
    /*
     * Block 0 of stream `purpose` under the key seed XOR a fixed constant,
     * not under `seed` itself, so derived seeds are not words that the
     * streams of `seed` also hand out.
     */
    uint32_t w[4];
    mpmap_rng_block(seed ^ UINT64_C(0x9E3779B97F4A7C15), purpose, 0, w);
    return (uint64_t)w[0] | ((uint64_t)w[1] << 32);
}

void mpmap_rng_rows_uniform(uint64_t seed, uint64_t first_row, size_t nrows, size_t ncols,
                            double *out)
{
    mpmap_rng r;
    for (size_t i = 0; i < nrows; i++) {
        mpmap_rng_init(&r, seed, first_row + i);
        mpmap_rng_fill_uniform(&r, out + i * ncols, ncols);
    }
}

void mpmap_rng_rows_normal(uint64_t seed, uint64_t first_row, size_t nrows, size_t ncols,
                           double *out)
{
    mpmap_rng r;
    for (size_t i = 0; i < nrows; i++) {
        mpmap_rng_init(&r, seed, first_row + i);
        mpmap_rng_fill_normal(&r, out + i * ncols, ncols);
    }
}
