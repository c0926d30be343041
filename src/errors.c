/* Error codes, their text, and the task-failure helper. */
#include "mpmap.h"

#include <stdarg.h>

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
