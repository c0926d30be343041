/* Internal pieces of the app kit (not installed). */
#ifndef MPMAP_KIT_INTERNAL_H
#define MPMAP_KIT_INTERNAL_H

#include "mpmap_app.h"

/* Rank 0: the datasets of a problem's fields and their write blocks. */
typedef struct kit_fields {
    mpmap_h5 *h5;
    const mpmap_app_problem *problem;
    mpmap_h5_dataset *ds[MPMAP_APP_MAX_FIELDS];
    char *block[MPMAP_APP_MAX_FIELDS];      /* block_rows rows of each field */
    char *kept[MPMAP_APP_MAX_FIELDS];       /* ntasks rows of the fields with keep */
    size_t row_bytes[MPMAP_APP_MAX_FIELDS]; /* bytes of one task's value */
    mpmap_h5_dataset *status_ds;            /* with problem->status */
    int32_t *block_status;
    int64_t nrows;       /* length of the first task axis */
    int64_t row_tasks;   /* tasks in one row of it (1 without a grid) */
    int64_t block_rows;  /* rows written at once */
    int64_t block_first; /* first row held */
    int64_t block_count; /* tasks held */
    int64_t failed;      /* tasks with a non-zero status */
    /* --write ranks: the fields' rows are written by the ranks that computed
     * them; the sink writes /status and failed tasks' fill only. */
    struct kit_rows *rows;
} kit_fields;

/* Fills record_size and offset[]; 0 or MPMAP_EINVAL with msg. */
int kit_fields_layout(mpmap_app_problem *p, char *msg, size_t msglen);
/* Creates coordinates and datasets; 0, MPMAP_APP_USAGE (kept fields do not
 * fit, msg set) or MPMAP_APP_FAILED (HDF5: see mpmap_h5_error). */
int kit_fields_open(kit_fields *w, mpmap_h5 *h5, const mpmap_app_problem *p, char *msg,
                    size_t msglen);
/* mpmap_sink_fn with context = the kit_fields. */
int kit_fields_sink(int64_t begin, int64_t end, const void *records, const int32_t *status,
                    void *context);
int kit_fields_flush(kit_fields *w);
/* A live output (--live): publishes the tasks delivered so far when it is
 * due (about once a second); a no-op otherwise. 0 or -1. */
int kit_fields_live_tick(kit_fields *w);
/* Flushes and closes the datasets (kept data stays); 0 or -1. */
int kit_fields_close(kit_fields *w);
/* Closes the datasets unwritten (a failed run: the file is removed next). */
void kit_fields_discard(kit_fields *w);
/* Also frees the kept fields. */
void kit_fields_free(kit_fields *w);
const void *kit_fields_data(const kit_fields *w, const char *name);

#endif
