/*
 * OUT.status: a live run's state for anyone watching (mpmap-status, a
 * script, `cat`). Rank 0 only, under the output's lock.
 *
 * A small text file of "key = value" lines, replaced atomically (written to
 * OUT.status.tmp, then renamed over) when the run sets up, when it starts,
 * and at every progress report (every --progress-interval seconds, --quiet
 * or not), and removed when the run ends, however it ends. It describes a
 * live run only: one left behind by a killed run is stale, which the lock
 * (OUT.lock, no longer held) tells. Keys, in this order:
 *
 *   format = 1
 *   state = setup | running           (setup: before the tasks are known)
 *   app, output, pid, host
 *   ranks, manager_computes           (0: rank 0 hands out work only)
 *   interval                          seconds between rewrites
 *   start_time, start_iso             when this leg of the run began
 *   tasks_start_time                  when its tasks began (after setup; 0
 *                                     while setting up)
 *   update_time, update_iso, elapsed  when this file was written
 *   tasks_total, tasks_done, tasks_restored, tasks_failed
 *   rate                              tasks/s computed in this leg
 *   eta                               seconds left, -1 when unknown
 *   rank.R.tasks, rank.R.busy,        per rank: tasks finished, seconds
 *   rank.R.last_chunk                 spent in them, Unix time its last
 *                                     chunk arrived (0: none yet)
 *
 * Times are Unix seconds (UTC), ISO times UTC. Writing it never fails the
 * run: the file only informs. Memory is O(ranks); per chunk only counters
 * move (kit_status_chunk), the file is written at most once per interval.
 */
#ifndef MPMAP_KIT_STATUS_H
#define MPMAP_KIT_STATUS_H

#include "mpmap.h"

#include <stdint.h>

typedef struct kit_status_rank {
    int64_t tasks;
    double busy;       /* seconds spent in its finished chunks */
    double last_chunk; /* Unix time its last chunk reached rank 0; 0 before any */
} kit_status_rank;

typedef struct kit_status {
    char *path; /* OUT.status; NULL when off (not rank 0, closed, no memory) */
    char *tmp;  /* OUT.status.tmp */
    const char *app;
    const char *output;
    int ranks;
    int manager_computes;
    double interval;
    double start;       /* Unix time */
    double tasks_start; /* Unix time of kit_status_start; 0 before */
    int running;        /* the tasks are known */
    int64_t total, done, restored, failed;
    double rate, eta;
    kit_status_rank *rank; /* ranks entries */
} kit_status;

/* Rank 0, once the output's lock is held: starts the file (state = setup).
 * app and output must outlive s. Best effort: on failure s stays off. */
void kit_status_open(kit_status *s, const char *app, const char *output, int ranks,
                     double interval);

/* The run is about to compute ntasks tasks: rewrites the file (running). */
void kit_status_start(kit_status *s, int64_t ntasks, int manager_computes);

/* One finished chunk (the job's trace callback): counters only. */
void kit_status_chunk(kit_status *s, const mpmap_trace_entry *entry);

/* A progress report: rewrites the file. failed: tasks failed so far. */
void kit_status_update(kit_status *s, const mpmap_progress_info *info, int64_t failed);

/* Removes the file and turns s off; later calls are no-ops. Idempotent. */
void kit_status_close(kit_status *s);

#endif
