/* A fresh scratch directory per test, for the cmocka tests that write files:
 * made by scratch_make, emptied and removed by scratch_remove (files only,
 * one level deep: the tests make no subdirectories but mount points, which
 * their own teardown unmounts first). */
#ifndef MPMAP_TESTS_SCRATCH_DIR_H
#define MPMAP_TESTS_SCRATCH_DIR_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct scratch_dir {
    char dir[64];
} scratch_dir;

/* 0, or -1 when mkdtemp fails; prefix names the test in /tmp. */
static inline int scratch_make(scratch_dir *s, const char *prefix)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/%s.XXXXXX", prefix);
    return mkdtemp(s->dir) ? 0 : -1;
}

static inline void scratch_remove(const scratch_dir *s)
{
    DIR *d = opendir(s->dir);
    if (d) {
        struct dirent *e;
        char path[512];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                snprintf(path, sizeof path, "%s/%s", s->dir, e->d_name);
                unlink(path);
            }
        closedir(d);
    }
    rmdir(s->dir);
}

/* DIR/name in out. */
static inline void scratch_path(const scratch_dir *s, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", s->dir, name);
}

#endif
