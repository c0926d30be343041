/* Error codes, their text, and the task-failure helper. */
#include "mpmap.h"

#include <stdarg.h>
#include <string.h>

const char *mpmap_strerror(int code)
{
    switch (code) {
    case MPMAP_OK: return "success";
    case MPMAP_EINVAL: return "invalid argument";
    case MPMAP_ENOMEM: return "out of memory";
    case MPMAP_EMPI: return "MPI call failed";
    case MPMAP_ETASK: return "a task failed";
    case MPMAP_EINTERRUPTED: return "interrupted";
    case MPMAP_EIO: return "file input/output failed";
    case MPMAP_EHDF5: return "HDF5 call failed";
    case MPMAP_ERESUME: return "cannot resume from checkpoint";
    case MPMAP_ECALLBACK: return "a result callback failed";
    default: return "unknown mpmap error";
    }
}

int mpmap_task_fail(mpmap_task_error *err, int64_t task, int code, const char *fmt, ...)
{
    if (err) {
        err->task = task;
        err->code = code != 0 ? code : 1;
        va_list args;
        va_start(args, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, args);
        va_end(args);
        /* The message is reported on one line. */
        for (char *c = err->message; *c; c++)
            if (*c == '\n' || *c == '\r')
                *c = ' ';
    }
    return MPMAP_ETASK;
}

static const char *const schedule_names[] = {
    [MPMAP_SCHEDULE_GUIDED] = "guided",
    [MPMAP_SCHEDULE_STATIC] = "static",
    [MPMAP_SCHEDULE_DYNAMIC] = "dynamic",
    [MPMAP_SCHEDULE_FACTORING] = "factoring",
};

int mpmap_schedule_from_name(const char *name, mpmap_schedule *out)
{
    for (size_t i = 0; name && i < sizeof schedule_names / sizeof schedule_names[0]; i++) {
        if (strcmp(name, schedule_names[i]) == 0) {
            *out = (mpmap_schedule)i;
            return MPMAP_OK;
        }
    }
    return MPMAP_EINVAL;
}

const char *mpmap_schedule_name(mpmap_schedule schedule)
{
    if ((unsigned)schedule < sizeof schedule_names / sizeof schedule_names[0])
        return schedule_names[schedule];
    return "unknown";
}
