/*
 * Progress display of the apps: a bar that fits the terminal (someone
 * watches) or one plain line per update (a log file).
 *
 * The formatting functions are pure: they take the width and the numbers
 * and return the text, so tests can check every width. A progress_stream
 * holds the one piece of state, whether a bar's line is still open on the
 * stream, so progress_end_line can end it before any other message.
 */
#ifndef MPMAP_PROGRESS_H
#define MPMAP_PROGRESS_H

#include "mpmap.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Where progress goes, and whether a bar's line is open there (owned by
 * the app's state: no process-wide variable). */
typedef struct progress_stream {
    FILE *out;
    bool line_open;
} progress_stream;

/* Terminal width used when none can be found. */
#define PROGRESS_DEFAULT_WIDTH 80
/* Longest bar, in cells between the brackets. */
#define PROGRESS_BAR_MAX 30

/*
 * The bar's line for a terminal `width` columns wide, without "\r" or
 * newline: "NAME [####......]  45.0% 123/456  12.3 tasks/s  ETA 5s". Parts
 * are dropped (bar shortened, then rate, then name) until it fits in
 * width - 1 columns (the last column is left free so the terminal never
 * wraps); at the least the line is cut to width - 1. Returns the length
 * written (as snprintf, never more than len - 1).
 */
size_t progress_format_bar(char *buf, size_t len, int width, const char *name,
                           const mpmap_progress_info *info);

/* The plain line for logs: "NAME: progress D/N tasks (P%), R tasks/s,
 * elapsed E, ETA T" (no newline). Returns the length written. */
size_t progress_format_line(char *buf, size_t len, const char *name,
                            const mpmap_progress_info *info);

/* "5s", "3m07s", "2h05m", or "?" when negative (unknown). */
void progress_format_duration(double seconds, char *buf, size_t len);

/*
 * Columns of the terminal: TIOCGWINSZ on stderr, or else on the terminal
 * the parent (mpirun) writes its stderr to, then the COLUMNS environment
 * variable, then PROGRESS_DEFAULT_WIDTH.
 */
int progress_terminal_width(void);

/* Writes one update to out: the bar redrawn in place (bar = true; the line
 * is ended when done reaches total) or a plain line. */
void progress_show(progress_stream *p, const char *name, const mpmap_progress_info *info, bool bar);

/* Ends a bar's line left open on out (a newline), so that the next message
 * starts on a line of its own; does nothing otherwise. */
void progress_end_line(progress_stream *p);

#endif
