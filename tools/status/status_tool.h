/*
 * mpmap-status: what is going on with the run that writes OUTPUT, read from
 * the files beside it and never touching them:
 *
 *   OUT.lock    held (flock) by a live run   -> OUT.status says how far it is
 *   OUT.ckpt    left by an interrupted run   -> what a resume would restore
 *   OUT.kckpt   left by a keyed stage (word_count's count) interrupted
 *               before the run                -> its completed tasks
 *   OUT         a complete result            -> its task count (attributes)
 *
 *   status_probe.c  looks at the files and fills a status_view
 *   status_print.c  prints a view as text or as one JSON object
 *   mpmap_status.c  the command line and --watch
 */
#ifndef MPMAP_STATUS_TOOL_H
#define MPMAP_STATUS_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum status_state {
    STATUS_NONE = 0,    /* nothing there (or nothing readable): exit 2 */
    STATUS_STARTING,    /* live, but no OUT.status yet (or any more) */
    STATUS_SETUP,       /* live, reading its input; the tasks are not known yet */
    STATUS_RUNNING,     /* live, computing */
    STATUS_INTERRUPTED, /* a checkpoint waits for --resume */
    STATUS_COMPLETE     /* OUT is a finished result */
} status_state;

typedef struct status_rank {
    int64_t tasks;
    double busy;       /* seconds */
    double last_chunk; /* Unix time; 0 before its first chunk */
    bool silent;       /* far longer without a chunk than the others */
} status_rank;

typedef struct status_view {
    status_state state;
    const char *output;
    double now;         /* Unix time of the look */
    char message[1024]; /* STATUS_NONE: why; else a remark, or "" */

    /* live (from OUT.status), complete (from the attributes) */
    char app[128];
    char host[256];
    char holder[256]; /* what the lock file says ("pid P on host H") */
    long pid;
    int ranks;
    bool manager_computes;
    double interval;
    double start_time, tasks_start_time, update_time;
    double rate, eta;
    status_rank *rank; /* ranks entries, or NULL */

    /* every state but NONE; -1 when unknown */
    int64_t total, done, restored, failed;

    /* interrupted */
    bool keyed;        /* in a keyed stage before the run (OUT.kckpt) */
    int64_t discarded; /* bytes a resume drops from a damaged tail */
    bool result_too;   /* an older complete OUT stays until the resume commits */

    /* complete */
    double wall_time; /* all legs, seconds; -1 unknown */
    int64_t legs;     /* -1 unknown */
} status_view;

/* Looks at OUT and the files beside it. Always fills v (free with
 * status_view_free); v->state says what was found. */
void status_probe(const char *output, status_view *v);
void status_view_free(status_view *v);

/* Parses OUT.status text into v (live fields). 0, or -1 when it is not a
 * status file. Exposed for the flagging rule below. */
int status_parse(const char *text, status_view *v);

/* Marks the ranks that went far longer without a chunk than the others:
 * longer than 4x the median wait of the computing ranks plus one progress
 * interval, and at least 10 s. */
void status_flag_silent(status_view *v);

/* Prints the view: lines for people, or one JSON object on one line. */
void status_print_text(FILE *f, const status_view *v);
void status_print_json(FILE *f, const status_view *v);

#endif
