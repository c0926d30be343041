/*
 * Provenance of a run as root attributes of the HDF5 output, and the
 * shell-quoted command line they record.
 */
#define _POSIX_C_SOURCE 200809L /* gmtime_r, gethostname */

#include "h5_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Arguments made only of these characters need no quoting in any POSIX shell. */
static int shell_safe(const char *arg)
{
    if (!*arg)
        return 0;
    for (const char *c = arg; *c; c++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-", *c))
            return 0;
    return 1;
}

size_t mpmap_h5_join_command_line(int argc, char *const *argv, char *buf, size_t buflen)
{
    size_t n = 0;
#define H5__PUT(ch)                                                                                \
    do {                                                                                           \
        if (n + 1 < buflen)                                                                        \
            buf[n] = (ch);                                                                         \
        n++;                                                                                       \
    } while (0)
    for (int i = 0; argv && i < argc; i++) {
        const char *arg = argv[i] ? argv[i] : "";
        if (i > 0)
            H5__PUT(' ');
        if (shell_safe(arg)) {
            for (const char *c = arg; *c; c++)
                H5__PUT(*c);
            continue;
        }
        /* Inside single quotes nothing is special except the quote itself,
         * which is closed, escaped and reopened: ' -> '\'' */
        H5__PUT('\'');
        for (const char *c = arg; *c; c++) {
            if (*c == '\'') {
                H5__PUT('\'');
                H5__PUT('\\');
                H5__PUT('\'');
                H5__PUT('\'');
            } else {
                H5__PUT(*c);
            }
        }
        H5__PUT('\'');
    }
#undef H5__PUT
    if (buflen > 0)
        buf[n < buflen ? n : buflen - 1] = '\0';
    return n;
}

int mpmap_h5_write_provenance(mpmap_h5 *f, const mpmap_h5_provenance *p)
{
    if (!f)
        return MPMAP_EINVAL;
    if (!p || !p->app)
        return h5__fail(f, MPMAP_EINVAL, "provenance: app name missing");
    if (p->nextra > 0 && (!p->extra_keys || !p->extra_values))
        return h5__fail(f, MPMAP_EINVAL, "provenance: extra keys or values missing");

    size_t cmd_len = mpmap_h5_join_command_line(p->argc, p->argv, NULL, 0);
    char *cmd = malloc(cmd_len + 1);
    if (!cmd)
        return h5__fail(f, MPMAP_ENOMEM, "out of memory");
    mpmap_h5_join_command_line(p->argc, p->argv, cmd, cmd_len + 1);

    char start[32] = "unknown";
    time_t t = p->start_time > 0 ? (time_t)p->start_time : time(NULL);
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(start, sizeof start, "%Y-%m-%dT%H:%M:%SZ", &tm);

    char host[256];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';

    h5__quiet q;
    h5__quiet_begin(&q);
    unsigned maj = 0, min = 0, rel = 0;
    char hdf5[32] = "unknown";
    if (H5get_libversion(&maj, &min, &rel) >= 0)
        snprintf(hdf5, sizeof hdf5, "%u.%u.%u", maj, min, rel);

    size_t hist_len = strlen(start) + 1 + cmd_len + 1;
    char *history = malloc(hist_len);
    int rc = 0;
    if (!history)
        rc = h5__fail(f, MPMAP_ENOMEM, "out of memory");
    else
        snprintf(history, hist_len, "%s %s", start, cmd);

    int64_t ranks = p->ranks, chunk = p->chunk;
    double wall = p->wall_time;
    if (rc == 0)
        rc = h5__attr_at(f, "/", "mpmap_app", ATTR_STRING, 0, p->app);
    if (rc == 0)
        rc = h5__attr_at(f, "/", "mpmap_app_version", ATTR_STRING, 0,
                         p->app_version ? p->app_version : MPMAP_VERSION_STRING);
    if (rc == 0)
        rc = h5__attr_at(f, "/", "mpmap_command_line", ATTR_STRING, 0, cmd);
    if (rc == 0)
        rc = h5__attr_at(f, "/", "mpmap_ranks", ATTR_INT64, 1, &ranks);
    if (rc == 0)
        rc = h5__attr_at(f, "/", "mpmap_schedule", ATTR_STRING, 0,
                         p->schedule ? p->schedule : "unknown");
    if (rc == 0)
        rc = h5__attr_at(f, "/", "mpmap_chunk", ATTR_INT64, 1, &chunk);
    if (rc == 0)
        rc = h5__attr_at(f, "/", "mpmap_wall_time", ATTR_DOUBLE, 1, &wall);
    if (rc == 0)
        rc = h5__attr_at(f, "/", "mpmap_start_time", ATTR_STRING, 0, start);
    if (rc == 0)
        rc = h5__attr_at(f, "/", "mpmap_host", ATTR_STRING, 0, host);
    if (rc == 0)
        rc = h5__attr_at(f, "/", "mpmap_version", ATTR_STRING, 0, MPMAP_VERSION_STRING);
    if (rc == 0)
        rc = h5__attr_at(f, "/", "mpmap_hdf5_version", ATTR_STRING, 0, hdf5);
    if (rc == 0)
        rc = h5__attr_at(f, "/", "history", ATTR_STRING, 0, history);
    for (int i = 0; rc == 0 && i < p->nextra; i++)
        rc = h5__attr_at(f, "/", p->extra_keys[i], ATTR_STRING, 0,
                         p->extra_values[i] ? p->extra_values[i] : "");
    h5__quiet_end(&q);
    free(history);
    free(cmd);
    return rc;
}
