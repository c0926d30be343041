/*
 * What the store-mode MPI tests (mpi_store_test, mpi_store_sync_test) share:
 * records that depend on the task index alone, so any rank's file can be
 * checked against a serial computation, and a sum over the ranks.
 */
#ifndef MPMAP_TESTS_STORE_CASES_H
#define MPMAP_TESTS_STORE_CASES_H

#include <mpi.h>
#include <stdint.h>

/* 24 bytes derived from the task index alone. */
typedef struct record {
    uint64_t a, b, c;
} record;

static inline record expected_record(int64_t t)
{
    uint64_t x = (uint64_t)t * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    x ^= x >> 31;
    uint64_t y = x * 0xBF58476D1CE4E5B9ull;
    y ^= y >> 27;
    return (record){ x, y, y * 0x94D049BB133111EBull ^ (uint64_t)t };
}

static inline int64_t sum_over_ranks(int64_t v)
{
    int64_t total = 0;
    MPI_Allreduce(&v, &total, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    return total;
}

#endif
