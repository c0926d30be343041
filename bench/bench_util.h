/*
 * Small pieces shared by the bench programs built against the installed
 * library (imbalance.c, imbalance_schedules.c, scale.c): each is one file
 * compiled on its own, so these are static inline.
 */
#ifndef MPMAP_BENCH_UTIL_H
#define MPMAP_BENCH_UTIL_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* splitmix64: a counter-based generator, so every rank derives the same cost
 * for a task without communicating. */
static inline uint64_t bench_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Seconds on clock id (CLOCK_MONOTONIC for spans, CLOCK_THREAD_CPUTIME_ID
 * for a thread's CPU time). */
static inline double bench_clock(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0)
        return -1;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A whole-string double: 0, or -1 for junk, overflow or an empty string. */
static inline int bench_parse_double(const char *text, double *out)
{
    char *end = NULL;
    errno = 0;
    *out = strtod(text, &end);
    return errno != 0 || end == text || *end != '\0' ? -1 : 0;
}

/* A window of other work: a thread running bench_busy_main sleeps until
 * t0 + start (monotonic seconds), then spins until t0 + start + length, as a
 * second job landing on the node would. */
typedef struct bench_busy {
    double start, length, t0;
} bench_busy;

static inline void *bench_busy_main(void *arg)
{
    const bench_busy *b = arg;
    const double from = b->t0 + b->start, to = from + b->length;
    const struct timespec nap = { 0, 1000000 };
    while (bench_clock(CLOCK_MONOTONIC) < from)
        nanosleep(&nap, NULL);
    volatile double sink = 0;
    while (bench_clock(CLOCK_MONOTONIC) < to)
        for (int i = 0; i < 10000; i++)
            sink += 1e-9 * i;
    return NULL;
}

#endif
