/*
 * Errors of the HDF5 output: HDF5's error stack kept quiet during each call,
 * its failures turned into one-line messages (with the system error behind
 * them, e.g. ENOSPC), and the first failure on a handle kept as sticky.
 */
#include "h5_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* HDF5 prints its error stack to stderr by default; each public entry point
 * turns that off and restores the caller's setting on the way out, so the
 * library changes no process-wide state. */
void h5__quiet_begin(h5__quiet *q)
{
    q->saved = H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data) >= 0;
    (void)H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void h5__quiet_end(const h5__quiet *q)
{
    if (q->saved)
        (void)H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
}

typedef struct detail_walk {
    char *buf;
    size_t len;
} detail_walk;

static herr_t walk_innermost(unsigned n, const H5E_error2_t *e, void *data)
{
    detail_walk *w = data;
    if (n == 0 && e && e->desc)
        snprintf(w->buf, w->len, "%s", e->desc);
    return 0;
}

static herr_t walk_errno(unsigned n, const H5E_error2_t *e, void *data)
{
    (void)n;
    int *found = data;
    const char *at = e && e->desc ? strstr(e->desc, "errno = ") : NULL;
    if (!*found && at)
        *found = atoi(at + 8);
    return 0;
}

/* The system error HDF5's file driver met (its descriptions carry
 * "errno = 28, error message = ..."), or 0: lets callers tell a full disk
 * from a broken file without parsing HDF5's text themselves. */
int h5__errno(void)
{
    int found = 0;
    if (H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_errno, &found) < 0 || found < 0)
        return 0;
    return found;
}

/* The most specific description on HDF5's error stack (where the failure was
 * detected, e.g. "unable to open file: ... errno = 2 ..."), or just the
 * system error's text when there is one (HDF5's version of it carries
 * timestamps, descriptors and buffer addresses); must be called before any
 * other HDF5 call clears the stack. */
static void h5_detail(char *buf, size_t len)
{
    detail_walk w = { buf, len };
    buf[0] = '\0';
    int sys = h5__errno();
    if (sys > 0)
        snprintf(buf, len, "%s", strerror(sys));
    else if (H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_innermost, &w) < 0 || !buf[0])
        snprintf(buf, len, "HDF5 call failed");
}

static void one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r')
            *s = ' ';
}

/* Formats into err (if any) and optionally appends ": <HDF5 detail>". */
static void vformat(char *err, size_t errlen, int with_h5, const char *fmt, va_list ap)
{
    char detail[512];
    if (with_h5)
        h5_detail(detail, sizeof detail);
    if (!err || errlen == 0)
        return;
    vsnprintf(err, errlen, fmt, ap);
    if (with_h5) {
        size_t used = strlen(err);
        if (used < errlen)
            snprintf(err + used, errlen - used, ": %s", detail);
    }
    one_line(err);
}

int h5__fail_buf(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vformat(err, errlen, code == MPMAP_EHDF5, fmt, ap);
    va_end(ap);
    return code;
}

/* Records the first failure on the handle; later ones keep the first text
 * because that is the cause, the rest usually follow from it. */
int h5__fail(mpmap_h5 *f, int code, const char *fmt, ...)
{
    int sys = code == MPMAP_EIO ? errno : 0; /* callers h5__fail() right after the system call */
    char detail[512];
    if (code == MPMAP_EHDF5) {
        sys = h5__errno();
        h5_detail(detail, sizeof detail); /* before anything clears the stack */
    }
    if (f->status == 0) {
        f->sys_errno = sys;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(f->error, sizeof f->error, fmt, ap);
        va_end(ap);
        if (code == MPMAP_EHDF5) {
            size_t used = strlen(f->error);
            snprintf(f->error + used, sizeof f->error - used, ": %s", detail);
        }
        one_line(f->error);
        f->status = code;
    }
    return code;
}

void h5__close_id(hid_t *id, herr_t (*closer)(hid_t))
{
    if (*id >= 0)
        (void)closer(*id);
    *id = H5I_INVALID_HID;
}
