/* Progress bar and log lines of the apps; see progress.h. */
#define _POSIX_C_SOURCE 200809L
#include "progress.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Whether a bar's line was drawn and not ended yet (rank 0 only draws). */

void progress_format_duration(double s, char *buf, size_t len)
{
    if (s < 0 || s != s)
        snprintf(buf, len, "?");
    else if (s < 60)
        snprintf(buf, len, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, len, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else if (s < 1e9)
        snprintf(buf, len, "%dh%02dm", (int)(s / 3600), ((int)s % 3600) / 60);
    else
        snprintf(buf, len, ">30y");
}

static double fraction(const mpmap_progress_info *info)
{
    if (info->total <= 0)
        return 1.0;
    double f = (double)info->done / (double)info->total;
    return f < 0 ? 0 : f > 1 ? 1 : f;
}

static size_t clamp_length(int n, size_t len)
{
    if (n < 0 || len == 0)
        return 0;
    return (size_t)n < len ? (size_t)n : len - 1;
}

size_t progress_format_line(char *buf, size_t len, const char *name,
                            const mpmap_progress_info *info)
{
    char eta[32], elapsed[32];
    progress_format_duration(info->eta, eta, sizeof eta);
    progress_format_duration(info->elapsed, elapsed, sizeof elapsed);
    int n = snprintf(buf, len,
                     "%s: progress %lld/%lld tasks (%.1f%%), %.3g tasks/s, elapsed %s, ETA %s",
                     name, (long long)info->done, (long long)info->total, 100 * fraction(info),
                     info->rate, elapsed, eta);
    return clamp_length(n, len);
}

size_t progress_format_bar(char *buf, size_t len, int width, const char *name,
                           const mpmap_progress_info *info)
{
    if (len == 0)
        return 0;
    buf[0] = '\0';
    int room = (width > 1 ? width : 1) - 1; /* the last column stays free */
    double frac = fraction(info);
    char eta[32], counts[64], rate[48];
    progress_format_duration(info->eta, eta, sizeof eta);
    snprintf(counts, sizeof counts, "%5.1f%% %lld/%lld", 100 * frac, (long long)info->done,
             (long long)info->total);
    snprintf(rate, sizeof rate, "  %.3g tasks/s", info->rate);
    const char *name_part = name ? name : "";

    /* Most to least: name, bar, counts, rate, ETA; drop rate, then the
     * name, as long as the bar would be shorter than 10 cells. */
    for (int attempt = 0; attempt < 3; attempt++) {
        bool with_rate = attempt < 1, with_name = attempt < 2;
        char tail[160];
        snprintf(tail, sizeof tail, "%s%s  ETA %s", counts, with_rate ? rate : "", eta);
        int fixed = (int)strlen(tail) + (with_name ? (int)strlen(name_part) + 1 : 0);
        int cells = room - fixed - 3; /* "[" "]" " " */
        if (cells > PROGRESS_BAR_MAX)
            cells = PROGRESS_BAR_MAX;
        if (cells >= 10 || attempt == 2) {
            char bar[PROGRESS_BAR_MAX + 3] = "";
            if (cells >= 1) {
                int filled = (int)(frac * cells + 0.5);
                bar[0] = '[';
                for (int i = 0; i < cells; i++)
                    bar[1 + i] = i < filled ? '#' : '.';
                bar[1 + cells] = ']';
                bar[2 + cells] = '\0';
            }
            int n = snprintf(buf, len, "%s%s%s%s%s", with_name ? name_part : "",
                             with_name ? " " : "", bar, bar[0] ? " " : "", tail);
            size_t used = clamp_length(n, len);
            if ((int)used > room) {
                used = (size_t)room;
                buf[used] = '\0';
            }
            return used;
        }
    }
    return 0; /* not reached */
}

/* Columns of the terminal behind fd, or 0. */
static int fd_columns(int fd)
{
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 0;
}

int progress_terminal_width(void)
{
    int cols = fd_columns(STDERR_FILENO);
    if (cols == 0) {
        /* Under mpirun a rank's stderr is a pipe; the terminal is where
         * mpirun's own stderr goes. */
        char link[64], target[256];
        snprintf(link, sizeof link, "/proc/%ld/fd/2", (long)getppid());
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n > 0) {
            target[n] = '\0';
            if (strncmp(target, "/dev/pts/", 9) == 0 || strncmp(target, "/dev/tty", 8) == 0) {
                int fd = open(target, O_RDONLY | O_NOCTTY | O_NONBLOCK);
                if (fd >= 0) {
                    cols = fd_columns(fd);
                    close(fd);
                }
            }
        }
    }
    if (cols == 0) {
        const char *env = getenv("COLUMNS");
        char *end = NULL;
        long v = env ? strtol(env, &end, 10) : 0;
        if (env && end != env && *end == '\0' && v > 0 && v < 100000)
            cols = (int)v;
    }
    return cols > 0 ? cols : PROGRESS_DEFAULT_WIDTH;
}

void progress_show(progress_stream *p, const char *name, const mpmap_progress_info *info, bool bar)
{
    char line[1024];
    if (bar) {
        int width = progress_terminal_width();
        if (width > (int)sizeof line)
            width = (int)sizeof line;
        size_t n = progress_format_bar(line, sizeof line, width, name, info);
        /* Padded to the width, so a shorter line wipes a longer one. */
        fprintf(p->out, "\r%s%*s", line, width - 1 - (int)n > 0 ? width - 1 - (int)n : 0, "");
        p->line_open = true;
        if (info->done >= info->total)
            progress_end_line(p);
    } else {
        progress_end_line(p);
        progress_format_line(line, sizeof line, name, info);
        fprintf(p->out, "%s\n", line);
    }
    fflush(p->out);
}

void progress_end_line(progress_stream *p)
{
    if (!p->line_open)
        return;
    fputc('\n', p->out);
    fflush(p->out);
    p->line_open = false;
}
