/*
 * word_count's input side (word_count.c): listing the inputs, cutting the
 * files into byte-range tasks, and the tokenizer that emits a task's words.
 *
 * A word is a maximal run of bytes other than ASCII whitespace (space, \t,
 * \n, \v, \f, \r) and NUL — Python's bytes.split() on text without NULs;
 * fold_case lowers ASCII A-Z first. A task owns the words that START inside
 * its range: it skips a word begun before its range and reads past its end
 * to finish its last word, so no boundary needs to be known in advance.
 */
#ifndef WORD_SPLIT_H
#define WORD_SPLIT_H

#include "mpmap_app.h"
#include "mpmap_keyed.h"

#include <stddef.h>
#include <stdint.h>

typedef struct wc_task {
    int32_t file;
    int64_t begin, end;
} wc_task;

typedef struct wc_split {
    /* the files (every rank) */
    char **files;
    int64_t *file_size;
    int32_t nfiles;
    int64_t total_bytes;
    /* the count's tasks (every rank) */
    wc_task *tasks;
    int64_t ntasks;
    int fold_case;
    /* per-rank read buffer of the count */
    unsigned char *buf;
    size_t bufcap;
} wc_split;

/*
 * Rank 0 lists the inputs (a file, or every regular file under a directory,
 * in bytewise name order) and broadcasts them, so every rank sees one list.
 * Collective; 0 or an exit code.
 */
int wc_split_inputs(mpmap_app *app, const mpmap_cli_strings *inputs, wc_split *s);

/* The count's tasks: every non-empty file in pieces of task_bytes. 0 or an
 * exit code. */
int wc_split_tasks(mpmap_app *app, wc_split *s, int64_t task_bytes);

/* The keyed map (ctx = the wc_split): emits (word, 1) for every word that
 * starts in task's byte range. */
int wc_split_count_task(int64_t task, mpmap_emitter *e, mpmap_task_error *err, void *ctx);

/* Frees the read buffer (done once the count is over). */
void wc_split_free_buffer(wc_split *s);

/* Frees everything; the struct may be zeroed or partly filled. */
void wc_split_free(wc_split *s);

#endif
