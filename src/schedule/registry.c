/*
 * Every schedule, once. A row names the mpmap_schedule value (its index
 * here) and the schedule's table of functions, defined in its own file in
 * this folder. Adding a schedule: one file with its table, one row below,
 * and its value in the mpmap_schedule enum of mpmap.h.
 */
#include "schedule.h"

#define MPMAP__SCHEDULES(ROW)                                                                      \
    ROW(MPMAP_SCHEDULE_GUIDED, mpmap__schedule_guided)                                             \
    ROW(MPMAP_SCHEDULE_STATIC, mpmap__schedule_static)                                             \
    ROW(MPMAP_SCHEDULE_DYNAMIC, mpmap__schedule_dynamic)                                           \
    ROW(MPMAP_SCHEDULE_FACTORING, mpmap__schedule_factoring)                                       \
    ROW(MPMAP_SCHEDULE_AWF_B, mpmap__schedule_awf_b)                                               \
    ROW(MPMAP_SCHEDULE_AWF_C, mpmap__schedule_awf_c)                                               \
    ROW(MPMAP_SCHEDULE_AWF_D, mpmap__schedule_awf_d)                                               \
    ROW(MPMAP_SCHEDULE_AWF_E, mpmap__schedule_awf_e)                                               \
    ROW(MPMAP_SCHEDULE_AF, mpmap__schedule_af)                                                     \
    ROW(MPMAP_SCHEDULE_AUTO, mpmap__schedule_auto)

#define DECLARE(value, table) extern const mpmap__schedule_ops table;
MPMAP__SCHEDULES(DECLARE)
#undef DECLARE

#define TABLE(value, table) [value] = &table,
static const mpmap__schedule_ops *const registry[] = { MPMAP__SCHEDULES(TABLE) };
#undef TABLE

#define COUNT (sizeof registry / sizeof registry[0])

/* The names point into the tables themselves, so each is written once; the
 * entry after the last stays NULL. */
#define NAME(value, table) [value] = table.name,
static const char *const names[COUNT + 1] = { MPMAP__SCHEDULES(NAME) };
#undef NAME

size_t mpmap__schedule_count(void) { return COUNT; }

const mpmap__schedule_ops *mpmap__schedule_get(mpmap_schedule schedule)
{
    if ((unsigned)schedule >= COUNT)
        return NULL;
    return registry[schedule];
}

const char *const *mpmap__schedule_names(void) { return names; }
const char *const *mpmap_schedule_names(void) { return names; }
