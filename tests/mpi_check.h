/*
 * CHECK for the MPI tests: counts the checks and reports a failed one with
 * the rank, file and line, without stopping, so every rank still reaches
 * the collective calls after it. The including file defines
 * `static int failures, checks, my_rank;`.
 */
#ifndef MPMAP_TESTS_MPI_CHECK_H
#define MPMAP_TESTS_MPI_CHECK_H

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "rank %d: %s:%d: check failed: %s: ", my_rank, __FILE__, __LINE__,     \
                    #cond);                                                                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* Rank 0 makes a scratch folder from the mkdtemp pattern in dir (size
 * bytes, "/tmp/NAME-XXXXXX") and every rank gets its name. */
static inline void mpi_check_scratch(char *dir, int size)
{
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0 && !mkdtemp(dir))
        MPI_Abort(MPI_COMM_WORLD, 2);
    MPI_Bcast(dir, size, MPI_CHAR, 0, MPI_COMM_WORLD);
}

/* Sums every rank's checks; rank 0 removes the scratch folder (now empty)
 * and prints NAME's tally. MPI_Finalize, then the exit code. */
static inline int mpi_check_finish(const char *name, const char *dir, int failures, int checks)
{
    int rank, size, all_failures = 0, all_checks = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Allreduce(&failures, &all_failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(&checks, &all_checks, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) {
        if (dir)
            rmdir(dir);
        printf("%s on %d ranks: %d passed, %d failed\n", name, size, all_checks - all_failures,
               all_failures);
    }
    MPI_Finalize();
    return all_failures == 0 ? 0 : 1;
}

#endif
