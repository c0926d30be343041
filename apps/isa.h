/*
 * Run-time choice of the instruction-set path of the apps' hot kernels
 * (kde_kernels.c, knn_kernel.c, mc_pi_kernel.c), so one binary runs on every
 * x86-64 node whatever CPU it was built on, and uses AVX2 or AVX-512 where the
 * node has them.
 *
 * Each kernel file compiles its hot code once per path, under the target
 * options below (ISA_PUSH_AVX2 ... ISA_POP around the code), and picks one of
 * the copies when first used:
 *
 *   ISA_SCALAR  baseline x86-64 (SSE2); always available.
 *   ISA_AVX2    AVX2 + FMA + BMI1/2 (Haswell, Zen 1 and later).
 *   ISA_AVX512  the above + AVX-512 F/CD/VL/DQ/BW (Skylake-SP, Ice Lake, Zen 4).
 *
 * The choice is the best path the CPU (and the OS: __builtin_cpu_supports
 * checks that AVX/AVX-512 state is enabled) supports, unless the environment
 * variable MPMAP_ISA names another:
 *   MPMAP_ISA=scalar|avx2|avx512  that path, or if the CPU lacks it the best
 *                                 supported path below it (avx512 -> avx2 ->
 *                                 scalar), silently;
 *   MPMAP_ISA=auto or unset/empty the best supported path;
 *   any other value               the best supported path, with one warning
 *                                 on stderr.
 * Every path gives bitwise the same results (each kernel file says how), so
 * the variable changes speed only; it exists for tests and benchmarks.
 *
 * Header-only (static inline), so linking a kernel needs no extra source.
 * On other architectures or compilers only ISA_SCALAR exists.
 */
#ifndef MPMAP_APPS_ISA_H
#define MPMAP_APPS_ISA_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum isa_path { ISA_SCALAR = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 } isa_path;

#define ISA_COUNT 3

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define ISA_X86 1
#else
#define ISA_X86 0
#endif

/*
 * Target options of the vector paths (the strings in ISA_PUSH_* below):
 *   avx2:   "avx2,fma,bmi,bmi2"
 *   avx512: "avx2,fma,bmi,bmi2,avx512f,avx512cd,avx512vl,avx512dq,avx512bw"
 * Feature lists rather than arch=..., so functions of a path can still inline
 * the plain (baseline) helpers. isa_supported checks every feature listed.
 */
/*
 * ISA_PUSH_AVX2 / ISA_PUSH_AVX512 ... ISA_POP: every function defined in
 * between is compiled for that path (GCC: #pragma GCC target; clang:
 * #pragma clang attribute). Only for ISA_X86 builds.
 */
#if ISA_X86 && defined(__clang__)
/* clang's _Pragma takes one string literal, hence the long lines. */
// clang-format off
#define ISA_PUSH_AVX2 _Pragma("clang attribute push(__attribute__((target(\"avx2,fma,bmi,bmi2\"))), apply_to = function)")
#define ISA_PUSH_AVX512 _Pragma("clang attribute push(__attribute__((target(\"avx2,fma,bmi,bmi2,avx512f,avx512cd,avx512vl,avx512dq,avx512bw\"))), apply_to = function)")
// clang-format on
#define ISA_POP _Pragma("clang attribute pop")
#elif ISA_X86
#define ISA_PUSH_AVX2 _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma,bmi,bmi2\")")
/* clang-format off */
#define ISA_PUSH_AVX512                                                                            \
    _Pragma("GCC push_options")                                                                    \
    _Pragma("GCC target(\"avx2,fma,bmi,bmi2,avx512f,avx512cd,avx512vl,avx512dq,avx512bw\")")
/* clang-format on */
#define ISA_POP _Pragma("GCC pop_options")
#endif

/* "scalar", "avx2", "avx512"; "unknown" for other values. */
static inline const char *isa_name(isa_path path)
{
    switch (path) {
    case ISA_SCALAR: return "scalar";
    case ISA_AVX2: return "avx2";
    case ISA_AVX512: return "avx512";
    }
    return "unknown";
}

/* 1 if this binary has `path` and this CPU can run it, else 0. */
static inline int isa_supported(isa_path path)
{
    switch (path) {
    case ISA_SCALAR: return 1;
#if ISA_X86
    case ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
    case ISA_AVX512:
        return isa_supported(ISA_AVX2) && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
#else
    case ISA_AVX2:
    case ISA_AVX512: return 0;
#endif
    }
    return 0;
}

/* `want` if supported, else the best supported path below it. */
static inline isa_path isa_clamp(isa_path want)
{
    int p = (int)want;
    if (p >= ISA_COUNT)
        p = ISA_COUNT - 1;
    while (p > ISA_SCALAR && !isa_supported((isa_path)p))
        p--;
    return p < 0 ? ISA_SCALAR : (isa_path)p;
}

/* The best path this CPU supports. */
/* clang-format off */
static inline isa_path isa_best(void)
{
    return isa_clamp(ISA_AVX512);
}

/*
 * The path named by `name` ("scalar", "avx2", "avx512", case-sensitive) into
 * *out and 1; "auto", "" and NULL give isa_best() and 1; anything else 0.
 */
static inline int isa_parse(const char *name, isa_path *out)
{
    if (name == NULL || name[0] == '\0' || strcmp(name, "auto") == 0) {
        *out = isa_best();
        return 1;
    }
    for (int p = 0; p < ISA_COUNT; p++) {
        if (strcmp(name, isa_name((isa_path)p)) == 0) {
            *out = (isa_path)p;
            return 1;
        }
    }
    return 0;
}

/*
 * The path the kernels use when nothing else is asked: MPMAP_ISA as described
 * at the top, clamped to what the CPU supports. `who` names the caller in the
 * warning about an unknown value.
 */
static inline isa_path isa_from_env(const char *who)
{
    const char *env = getenv("MPMAP_ISA");
    isa_path want;
    if (!isa_parse(env, &want)) {
        want = isa_best();
        fprintf(stderr, "%s: MPMAP_ISA=%s is not scalar, avx2, avx512 or auto; using %s\n",
                who, env, isa_name(want));
    }
    return isa_clamp(want);
}

#endif /* MPMAP_APPS_ISA_H */
/* clang-format on */
