/*
 * Monte Carlo estimate of pi: the sampling kernel of the mc_pi app.
 *
 * Task t of a run with seed s draws its points from the mpmap_rng stream
 * (s, t): point i is x = word 2i, y = word 2i+1 of that stream, read as
 * x/2^32 and y/2^32 in [0, 1), and it hits when (x/2^32)^2 + (y/2^32)^2 < 1,
 * decided exactly in integers as x^2 + y^2 < 2^64. So a task's hit count
 * depends only on (seed, task, samples): not on the rank, the schedule or
 * which code path counted it. The SIMD paths run Philox4x32-10 on many
 * counters at once and must agree bitwise with the scalar path.
 */
#ifndef MC_PI_KERNEL_H
#define MC_PI_KERNEL_H

#include <stdint.h>

/*
 * Code paths that count hits; all give identical counts. The values are those
 * of isa_path (isa.h): every binary has all three, and uses a vector path
 * only on a CPU that supports it.
 */
typedef enum mc_pi_path {
    MC_PI_PATH_SCALAR = 0, /* portable C, always available */
    MC_PI_PATH_AVX2,       /* 4 Philox counters per instruction; CPUs with AVX2 */
    MC_PI_PATH_AVX512      /* 8 Philox counters per instruction; CPUs with AVX-512 */
} mc_pi_path;

/*
 * Hits among the first `samples` points of stream (seed, task), counted by
 * the path in use (mc_pi_best_path). Returns MPMAP_EINVAL if task < 0 or
 * samples < 0.
 */
int64_t mc_pi_hits(uint64_t seed, int64_t task, int64_t samples);

/* The same count by the portable scalar path (the reference). */
int64_t mc_pi_hits_scalar(uint64_t seed, int64_t task, int64_t samples);

/* The same count by a given path; MPMAP_EINVAL if this CPU cannot run that path. */
int64_t mc_pi_hits_path(mc_pi_path path, uint64_t seed, int64_t task, int64_t samples);

/*
 * Hits among points first .. end-1 of stream (seed, task) by a given path,
 * so one task's sampling can be split into pieces that sum to its count.
 * MPMAP_EINVAL if task < 0, first < 0, end < first or the path is not available.
 */
int64_t mc_pi_hits_range(mc_pi_path path, uint64_t seed, int64_t task, int64_t first, int64_t end);

/* 1 if this binary has `path` and this CPU can run it, else 0. */
int mc_pi_path_available(mc_pi_path path);

/*
 * The path mc_pi_hits uses: chosen at the first call, MPMAP_ISA=scalar|avx2|
 * avx512 if set (clamped to what the CPU supports, see isa.h), else the
 * fastest path the CPU supports.
 */
mc_pi_path mc_pi_best_path(void);

/*
 * Makes mc_pi_hits use `path` (0), or returns MPMAP_EINVAL if it is not
 * available and changes nothing. For tests and benchmarks; not while another
 * thread is counting.
 */
int mc_pi_use_path(mc_pi_path path);

/* "scalar", "avx2", "avx512"; "unknown" for other values. */
const char *mc_pi_path_name(mc_pi_path path);

/*
 * Task `task`'s share of `total` samples split over `tasks` tasks: the first
 * total % tasks tasks get total / tasks + 1, the others total / tasks, so the
 * shares sum to total and differ by at most one. MPMAP_EINVAL if total < 0,
 * tasks < 1 or task is outside [0, tasks).
 */
int64_t mc_pi_task_samples(int64_t total, int64_t tasks, int64_t task);

/*
 * pi = 4 hits / samples and its binomial standard error
 * 4 sqrt(p (1 - p) / samples) with p = hits / samples. Both are NaN when
 * samples < 1 or hits is outside [0, samples].
 */
void mc_pi_estimate(int64_t hits, int64_t samples, double *pi, double *std_error);

#endif /* MC_PI_KERNEL_H */
