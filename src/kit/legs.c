/*
 * The legs of a run. A run interrupted at the walltime and resumed (maybe
 * several times, on other rank counts) is one result computed in legs; its
 * provenance keeps every leg — when it started, how long it ran, on how
 * many ranks, how many tasks it computed — not just the last one.
 *
 * Between legs they wait in OUT.legs, one text line each, beside the
 * checkpoint and under the same lock (rank 0 only). A leg that ends without
 * a result (interrupted, failed) appends its line; the leg that commits
 * writes them all, plus its own, as root attributes and removes the file.
 * A run that starts over (no --resume) removes an old OUT.legs first.
 */
#define _POSIX_C_SOURCE 200809L
#include "legs.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* More legs than this are summed into the last kept one's place: a run
 * resumed thousands of times keeps a bounded header. */
#define LEGS_MAX 1024

static void legs_path(const char *output, char *buf, size_t len)
{
    snprintf(buf, len, "%s.legs", output);
}

void kit_legs_forget(const char *output)
{
    char path[4200];
    legs_path(output, path, sizeof path);
    (void)unlink(path);
}

void kit_legs_append(const char *output, const kit_leg *leg)
{
    char path[4200];
    legs_path(output, path, sizeof path);
    FILE *f = fopen(path, "a");
    if (!f)
        return; /* provenance only: the results never depend on it */
    fprintf(f, "%.17g %.17g %d %" PRId64 "\n", leg->start_time, leg->wall_time, leg->ranks,
            leg->tasks);
    fclose(f);
}

int kit_legs_write(mpmap_h5 *h5, const char *output, const kit_leg *last)
{
    kit_leg *legs = malloc(LEGS_MAX * sizeof *legs);
    double *start = malloc(LEGS_MAX * sizeof *start), *wall = malloc(LEGS_MAX * sizeof *wall);
    int64_t *ranks = malloc(LEGS_MAX * sizeof *ranks), *tasks = malloc(LEGS_MAX * sizeof *tasks);
    int rc = legs && start && wall && ranks && tasks ? 0 : -1;
    size_t n = 0;
    char path[4200];
    legs_path(output, path, sizeof path);
    FILE *f = rc == 0 ? fopen(path, "r") : NULL;
    kit_leg leg;
    while (f && fscanf(f, "%lf %lf %d %" SCNd64, &leg.start_time, &leg.wall_time, &leg.ranks,
                       &leg.tasks) == 4) {
        if (n == LEGS_MAX - 1) { /* keep room for the last leg */
            legs[n - 1].wall_time += leg.wall_time;
            legs[n - 1].tasks += leg.tasks;
        } else {
            legs[n++] = leg;
        }
    }
    if (f)
        fclose(f);
    if (rc == 0) {
        legs[n++] = *last;
        double total = 0;
        for (size_t i = 0; i < n; i++) {
            start[i] = legs[i].start_time;
            wall[i] = legs[i].wall_time;
            ranks[i] = legs[i].ranks;
            tasks[i] = legs[i].tasks;
            total += wall[i];
        }
        rc = mpmap_h5_attr_int64(h5, "/", "mpmap_legs", (int64_t)n);
        if (rc == 0)
            rc = mpmap_h5_attr_double_array(h5, "/", "mpmap_leg_start_time", n, start);
        if (rc == 0)
            rc = mpmap_h5_attr_double_array(h5, "/", "mpmap_leg_wall_time", n, wall);
        if (rc == 0)
            rc = mpmap_h5_attr_int64_array(h5, "/", "mpmap_leg_ranks", n, ranks);
        if (rc == 0)
            rc = mpmap_h5_attr_int64_array(h5, "/", "mpmap_leg_tasks", n, tasks);
        if (rc == 0)
            rc = mpmap_h5_attr_double(h5, "/", "mpmap_total_wall_time", total);
    }
    free(legs);
    free(start);
    free(wall);
    free(ranks);
    free(tasks);
    return rc;
}
