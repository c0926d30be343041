/*
 * CHECK for the MPI tests: counts the checks and reports a failed one with
 * the rank, file and line, without stopping, so every rank still reaches
 * the collective calls after it. The including file defines
 * `static int failures, checks, my_rank;`.
 */
#ifndef MPMAP_TESTS_MPI_CHECK_H
#define MPMAP_TESTS_MPI_CHECK_H

#include <stdio.h>

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

#endif
