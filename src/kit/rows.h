/*
 * --write ranks: every rank writes the rows of the tasks it computed straight
 * into the output file, so results do not all pass through rank 0.
 *
 * Rank 0 creates the output as usual, but with each field's dataset laid out
 * contiguously and allocated at creation (h5__set_rows_in_place), so the
 * value of task t of field i sits at a fixed byte offset of the file:
 * base[i] + t * row_bytes[i], in the file's little-endian layout, which is
 * the memory layout of the records. Every rank opens the .partial file for
 * writing and pwrite()s its rows there from the runtime's store callback;
 * only task ranges and statuses travel to rank 0, which writes /status and
 * the fill of failed tasks. HDF5 itself never touches those bytes, so the
 * file is an ordinary HDF5 file when rank 0 commits it.
 *
 * The checkpoint (OUT.ckpt) then logs ranges only; the rows of its tasks are
 * kept in the data file, which a stopped run renames to OUT.partial.prev and
 * a killed one leaves as OUT.partial. OUT.ckpt.rows names which of the two
 * it is (its inode) and where each field's data starts in it, so --resume
 * copies them into the new output before any task runs (rows_keep.c).
 *
 * The file system must let processes on several hosts write disjoint byte
 * ranges of one file (Lustre, GPFS, BeeGFS, a local disk; NFS only with
 * close-to-open care): the same condition as MPI-IO's independent writes.
 */
#ifndef MPMAP_KIT_ROWS_H
#define MPMAP_KIT_ROWS_H

#include "kit_internal.h"

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

/* Where each field's rows go; the same on every rank after kit_rows_share. */
typedef struct kit_rows_layout {
    int32_t nfields;
    int64_t ntasks;
    int64_t record_size;
    int64_t base[MPMAP_APP_MAX_FIELDS];      /* byte offset of the field's data */
    int64_t row_bytes[MPMAP_APP_MAX_FIELDS]; /* bytes of one task's value */
    int64_t in_record[MPMAP_APP_MAX_FIELDS]; /* offset of the value in a record */
    char path[4096];                         /* the data file (OUT.partial) */
} kit_rows_layout;

typedef struct kit_rows {
    kit_rows_layout l;
    int fd; /* -1 while closed */
    char *scratch;
    size_t scratch_size;
    int64_t stored; /* tasks this rank wrote */
} kit_rows;

/* Why --write ranks cannot be used for this problem (rank 0), or NULL. */
const char *kit_rows_refusal(const mpmap_app_problem *p, int live);

/* Rank 0, after kit_fields_open under h5__set_rows_in_place: the fields'
 * offsets, with what HDF5 holds flushed to the file. 0 or -1 (h5 error). */
int kit_rows_plan(kit_rows *r, const kit_fields *w, const char *path);
/* Collective: rank 0's layout to every rank. */
void kit_rows_share(kit_rows *r, MPI_Comm comm);
/* Every rank: opens the data file. 0, or -1 with msg. */
int kit_rows_open(kit_rows *r, char *msg, size_t msglen);
/* The runtime's store callback (context = kit_rows): writes the rows, does
 * not sync them. */
int kit_rows_store(int64_t begin, int64_t end, const void *records, char *message, void *context);
/* The runtime's store_sync callback (context = kit_rows): makes every row
 * this rank wrote durable (fdatasync). 0, or -1 with message. */
int kit_rows_sync(char *message, void *context);
/* Rank 0: one task's value of field i (a failed task's fill). 0, or -1 with msg. */
int kit_rows_write_value(kit_rows *r, int field, int64_t task, const void *value, char *msg,
                         size_t msglen);
/* Every rank: makes what it wrote durable and closes. 0, or -1 with msg. */
int kit_rows_close(kit_rows *r, char *msg, size_t msglen);
/* Closes without syncing (a run that is not committed). */
void kit_rows_drop(kit_rows *r);

/* ---- rows_keep.c: the checkpoint's rows across legs (rank 0) ------------ */

/* Paths beside the output: OUT.ckpt.rows (what and where) and
 * OUT.partial.prev (the data of a stopped leg). */
void kit_rows_keep_paths(const char *output, char *manifest, char *prev, size_t len);
/* Before the output is created on --resume: finds the data file the
 * checkpoint's manifest names and moves it aside as OUT.partial.prev, so
 * creating OUT.partial cannot truncate it. 0, or -1 with a one-line msg. */
int kit_rows_keep_claim(const char *output, uint64_t fingerprint_hash, char *msg, size_t msglen);
/* After kit_rows_plan: with resume, copies every field's rows from the
 * claimed file; then records the new file in the manifest (written whole,
 * synced, renamed) and drops the old data. 0, or -1 with msg. */
int kit_rows_keep_start(const kit_rows *r, const char *output, uint64_t fingerprint_hash,
                        int resume, char *msg, size_t msglen);
/* A run that stops: its data file becomes OUT.partial.prev, kept for --resume. */
void kit_rows_keep_stop(const char *output);
/* A committed output: the manifest and any old data go. */
void kit_rows_keep_forget(const char *output);

#endif
