/*
 * The per-path code of kde_kernels.c: everything whose speed depends on the
 * instruction set. kde_kernels.c includes this file once per path (see
 * isa.h), each time with
 *   KDE_USE_AVX2, KDE_USE_AVX512  0 or 1: which vector code to compile,
 *   KDE_FN(name)                  the name with the path's suffix,
 * and inside ISA_PUSH_* ... ISA_POP for the vector paths, so every function
 * here is compiled for that path's target. The names defined here are
 * renamed to KDE_FN(name) by the macros below, so the text reads as one
 * implementation. The code itself is in three bodies by concern, included
 * here in dependency order: kde_exp_body.h (2^t), kde_density_body.h
 * (hypercube and Gaussian densities), kde_cv_body.h (cross-validation,
 * which includes kde_cv_sym_body.h for the expanded form).
 * Not a public header.
 */
#define kde_exp2_split KDE_FN(kde_exp2_split)
#define kde_exp2_scalar KDE_FN(kde_exp2_scalar)
#define kde_exp2_acc KDE_FN(kde_exp2_acc)
#define kde_exp2_split4 KDE_FN(kde_exp2_split4)
#define kde_exp2_keep4 KDE_FN(kde_exp2_keep4)
#define kde_exp2_4 KDE_FN(kde_exp2_4)
#define kde_exp2_acc4 KDE_FN(kde_exp2_acc4)
#define kde_hsum4 KDE_FN(kde_hsum4)
#define kde_exp2_split8 KDE_FN(kde_exp2_split8)
#define kde_exp2_many_impl KDE_FN(kde_exp2_many_impl)
#define kde_cube_count_d KDE_FN(kde_cube_count_d)
#define kde_hypercube_count_impl KDE_FN(kde_hypercube_count_impl)
#define kde_sum_exp2_neg KDE_FN(kde_sum_exp2_neg)
#define kde_gaussian_density_impl KDE_FN(kde_gaussian_density_impl)
#define kde_block_min KDE_FN(kde_block_min)
#define kde_plan_nearest KDE_FN(kde_plan_nearest)
#define kde_vector_sum KDE_FN(kde_vector_sum)
#define kde_lane_mask KDE_FN(kde_lane_mask)
#define kde_block_sum KDE_FN(kde_block_sum)
#define kde_hsum8 KDE_FN(kde_hsum8)
#define kde_fold_logsum KDE_FN(kde_fold_logsum)
#define kde_cv_score_one KDE_FN(kde_cv_score_one)
#define kde_row_sum KDE_FN(kde_row_sum)
#define kde_sums KDE_FN(kde_sums)
#define kde_sym_t8 KDE_FN(kde_sym_t8)
#define kde_sym_vector KDE_FN(kde_sym_vector)
#define kde_sym_fold KDE_FN(kde_sym_fold)
#define kde_sym_sum KDE_FN(kde_sym_sum)
#define kde_sym_score KDE_FN(kde_sym_score)

#include "kde_exp_body.h"
#include "kde_density_body.h"
#include "kde_cv_body.h"

#undef kde_exp2_split
#undef kde_exp2_scalar
#undef kde_exp2_acc
#undef kde_exp2_split4
#undef kde_exp2_keep4
#undef kde_exp2_4
#undef kde_exp2_acc4
#undef kde_hsum4
#undef kde_exp2_split8
#undef kde_exp2_many_impl
#undef kde_cube_count_d
#undef kde_hypercube_count_impl
#undef kde_sum_exp2_neg
#undef kde_gaussian_density_impl
#undef kde_block_min
#undef kde_plan_nearest
#undef kde_vector_sum
#undef kde_lane_mask
#undef kde_block_sum
#undef kde_hsum8
#undef kde_fold_logsum
#undef kde_cv_score_one
#undef kde_row_sum
#undef kde_sums
#undef kde_sym_t8
#undef kde_sym_vector
#undef kde_sym_fold
#undef kde_sym_sum
#undef kde_sym_score
