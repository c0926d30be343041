/*
 * mpmap_app_main: the one collective sequence every app shares (see
 * mpmap_app.h). Every step ends in an agreement, so all ranks take the same
 * branch and leave with the same exit code: parse (identical on every rank)
 * -> rank 0 checks the values and the output -> setup (collective) -> rank 0
 * creates the output -> run -> rank 0 writes the summary -> commit or abort.
 */
#define _POSIX_C_SOURCE 200809L
#include "app_common.h"
#include "h5_internal.h"
#include "kit_internal.h"
#include "progress.h"
#include "rows.h"
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct mpmap_app {
    app a;
    const mpmap_app_def *def;
    int code;                      /* set by mpmap_app_usage / _failure */
    char message[APP_MESSAGE_MAX]; /* "" when already printed */
    kit_fields fields;             /* rank 0 */
    kit_status status;             /* rank 0: OUT.status while the run lives */
    bool rows_in_place;            /* --write ranks */
    kit_rows rows;                 /* every rank, with --write ranks */
    /* --on-error's default, a distinct object: after parsing, the flag's
     * value points here only when it was not given. */
    char on_error_unset[8];
};

struct mpmap_app_shared {
    app_shared s;
};

static int set_error(mpmap_app *k, int code, const char *fmt, va_list ap)
{
    k->code = code;
    vsnprintf(k->message, sizeof k->message, fmt, ap);
    return code;
}

int mpmap_app_usage(mpmap_app *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int code = set_error(k, MPMAP_APP_USAGE, fmt, ap);
    va_end(ap);
    return code;
}

int mpmap_app_failure(mpmap_app *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int code = set_error(k, MPMAP_APP_FAILED, fmt, ap);
    va_end(ap);
    return code;
}

/*
 * Collective: the verdict of a step any rank may fail. The lowest failing
 * rank's code and message win; rank 0 prints the message once.
 */
static int agree_any(mpmap_app *k, int code)
{
    int mine = code != 0 ? k->a.rank : k->a.size, first = k->a.size;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, k->a.comm);
    if (first == k->a.size)
        return 0;
    struct {
        int code;
        char message[APP_MESSAGE_MAX];
    } verdict = { code, "" };
    if (k->a.rank == first)
        snprintf(verdict.message, sizeof verdict.message, "%s", k->message);
    MPI_Bcast(&verdict, (int)sizeof verdict, MPI_BYTE, first, k->a.comm);
    if (k->a.rank == 0 && verdict.message[0]) {
        fprintf(stderr, "%s: %s\n", k->a.name, verdict.message);
        fflush(stderr);
    }
    return verdict.code != 0 ? verdict.code : MPMAP_APP_FAILED;
}

static int kit_map(int64_t begin, int64_t end, void *records, mpmap_task_error *err, void *ctx)
{
    const mpmap_app *k = ctx;
    return k->def->map(begin, end, records, err, k->def->context);
}

static int kit_sink(int64_t begin, int64_t end, const void *records, const int32_t *status,
                    void *ctx)
{
    return kit_fields_sink(begin, end, records, status, &((mpmap_app *)ctx)->fields);
}

static int kit_store(int64_t begin, int64_t end, const void *records, char *message, void *ctx)
{
    return kit_rows_store(begin, end, records, message, &((mpmap_app *)ctx)->rows);
}

static int kit_store_sync(char *message, void *ctx)
{
    return kit_rows_sync(message, &((mpmap_app *)ctx)->rows);
}

static void kit_task_failed(const mpmap_task_error *err, void *ctx)
{
    mpmap_app *k = ctx;
    progress_end_line(&k->a.progress); /* not after a half-drawn bar */
    k->def->task_failed(k, err, k->def->context);
}

static int kit_trace(const mpmap_trace_entry *entry, void *ctx)
{
    kit_status_chunk(&((mpmap_app *)ctx)->status, entry);
    return app_trace(entry, &((mpmap_app *)ctx)->a);
}

static void kit_progress(const mpmap_progress_info *info, void *ctx)
{
    mpmap_app *k = ctx;
    kit_status_update(&k->status, info, k->fields.failed);
    (void)kit_fields_live_tick(&k->fields); /* a failure stops the run at the next sink */
    app_progress(&k->a, info);
}

/* Rank 0: e.g. a damaged checkpoint, before any work ("NAME: warning: ..."). */
static void kit_notice(const char *message, void *ctx)
{
    mpmap_app *k = ctx;
    progress_end_line(&k->a.progress);
    fprintf(stderr, "%s: warning: %s\n", k->a.name, message);
}

/* Rank 0: a run that stops early is never committed. Its OUT.partial goes
 * now rather than at the end, which a rank killed by a signal never lets
 * come: mpirun then SIGKILLs rank 0 one grace period after its SIGTERM,
 * while rank 0 still waits for the dead rank's results. The checkpoint keeps
 * what is done; results still arriving go to the discarded file. */
static void kit_stopping(int status, void *ctx)
{
    (void)status;
    mpmap_app *k = ctx;
    kit_status_close(&k->status); /* the run is over for whoever watches */
    if (!k->a.h5)
        return;
    /* Results written in place are the checkpoint's: kept aside, not removed. */
    if (k->rows_in_place)
        kit_rows_keep_stop(k->a.common.output);
    mpmap_h5_discard(k->a.h5);
    (void)unlink(mpmap_h5_partial_path(k->a.h5));
}

/* Parses the flags and runs the rank-0 checks: -1 to go on, else the exit code. */
static int parse_and_check(mpmap_app *k)
{
    const mpmap_app_def *d = k->def;
    for (size_t i = 0; i < d->noptions; i++)
        app_add_option(&k->a, d->options[i]);
    snprintf(k->on_error_unset, sizeof k->on_error_unset, "stop");
    k->a.common.on_error = k->on_error_unset;
    /* --help shows the shared flag's value as its default: an app that
     * picks the default by mode says so there (only for --help: that text
     * is no valid value). */
    for (int i = 1; d->on_error_default && i < k->a.argc; i++) {
        if (strcmp(k->a.argv[i], "--") == 0)
            break;
        if (strcmp(k->a.argv[i], "--help") == 0 || strcmp(k->a.argv[i], "-h") == 0)
            k->a.common.on_error = d->on_error_default;
    }
    int code = app_parse(&k->a, d->default_output, d->summary);
    if (code >= 0)
        return code;
    code = 0;
    if (k->a.rank == 0 && d->check)
        code = d->check(k, d->context);
    /* The output and its checkpoint are checked before any data is read. */
    if (code == 0 && k->a.rank == 0)
        code = app_check_output(&k->a, NULL, k->message, sizeof k->message);
    code = app_agree(&k->a, code, k->message);
    if (code == 0) {
        /* check may have changed them (mpmap_app_set_output_policy): every
         * rank goes on with what rank 0 decided. */
        int policy[2] = { k->a.common.resume, k->a.common.force };
        MPI_Bcast(policy, 2, MPI_INT, 0, k->a.comm);
        k->a.common.resume = policy[0];
        k->a.common.force = policy[1];
    }
    return code != 0 ? code : -1;
}

/* Rank 0: the output file with the fields' datasets. */
static int create_output(mpmap_app *k)
{
    mpmap_app_problem *p = k->def->problem;
    uint64_t fp = app_hash_bytes(k->a.fingerprint, strlen(k->a.fingerprint));
    /* Resuming with results written in place: their file is moved aside
     * before OUT.partial is made anew. */
    if (k->rows_in_place && k->a.output_verdict == 0 && k->a.config.resume &&
        kit_rows_keep_claim(k->a.common.output, fp, k->message, sizeof k->message) != 0)
        return MPMAP_APP_USAGE;
    if (app_create_output(&k->a, k->message, sizeof k->message) != 0)
        return MPMAP_APP_FAILED;
    /* --live: before anything is created in it (h5_live.c). */
    if (k->a.common.live && h5__live_format(k->a.h5) != 0)
        return app_output_failed(&k->a, k->message, sizeof k->message);
    h5__set_rows_in_place(k->a.h5, k->rows_in_place);
    int code = kit_fields_open(&k->fields, k->a.h5, p, k->message, sizeof k->message);
    h5__set_rows_in_place(k->a.h5, 0);
    if (code == 0 && k->rows_in_place) {
        char manifest[4200], prev[4200];
        kit_rows_keep_paths(k->a.common.output, manifest, prev, sizeof prev);
        k->fields.rows = &k->rows;
        if (h5__keep_on_failure(k->a.h5, prev) != 0)
            return mpmap_app_failure(k, "out of memory");
        if (kit_rows_plan(&k->rows, &k->fields, mpmap_h5_partial_path(k->a.h5)) != 0)
            code = MPMAP_APP_FAILED;
        else if (kit_rows_keep_start(&k->rows, k->a.common.output, fp, k->a.config.resume,
                                     k->message, sizeof k->message) != 0)
            return MPMAP_APP_FAILED;
    }
    if (code == MPMAP_APP_FAILED)
        app_output_failed(&k->a, k->message, sizeof k->message);
    return code;
}

/* Collective, --write ranks: every rank opens the output's data file. */
static int open_rows(mpmap_app *k)
{
    kit_rows_share(&k->rows, k->a.comm);
    k->code = 0;
    k->message[0] = '\0';
    int code = kit_rows_open(&k->rows, k->message, sizeof k->message) != 0 ? MPMAP_APP_FAILED : 0;
    return agree_any(k, code);
}

/* Collective, --write ranks, after the run: every rank syncs and closes
 * what it wrote before rank 0 may commit; a failure anywhere fails the run
 * (its message from the lowest failing rank into report). */
static void close_rows(mpmap_app *k, int *status, mpmap_report *report)
{
    char msg[MPMAP_MESSAGE_MAX] = "";
    int failed = 0;
    if (*status == MPMAP_OK)
        failed = kit_rows_close(&k->rows, msg, sizeof msg) != 0;
    else
        kit_rows_drop(&k->rows);
    int mine = failed ? k->a.rank : k->a.size, first = k->a.size;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, k->a.comm);
    if (first == k->a.size)
        return;
    MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, first, k->a.comm);
    *status = MPMAP_EIO;
    snprintf(report->message, sizeof report->message, "%s", msg);
}

/* Rank 0 after a successful run: closes the datasets and writes the
 * summary and provenance. MPMAP_OK or MPMAP_EHDF5 with report->message. */
static int write_results(mpmap_app *k, mpmap_report *report)
{
    const mpmap_app_def *d = k->def;
    /* The task counts let a reader (mpmap-status) describe any finished
     * output without knowing its app. */
    if (kit_fields_close(&k->fields) != 0 || (d->finish && d->finish(k, report, d->context) != 0) ||
        app_write_provenance(&k->a, report, 0, NULL, NULL) != 0 ||
        mpmap_app_attr_int64(k, "mpmap_tasks", report->tasks_total) != 0 ||
        mpmap_app_attr_int64(k, "mpmap_tasks_failed", report->tasks_failed) != 0 ||
        mpmap_app_attr_string(k, "mpmap_write", k->rows_in_place ? "ranks" : "rank0") != 0) {
        app_output_failed(&k->a, report->message, sizeof report->message);
        return MPMAP_EHDF5;
    }
    return MPMAP_OK;
}

/* Rank 0: "task 7 failed: why" becomes "point 7 (a=1) failed: why". */
static void rename_failed_task(mpmap_app *k, mpmap_report *report)
{
    char name[256], text[1024];
    k->def->task_name(report->failed_task, name, sizeof name, k->def->context);
    const char *reason = strstr(report->message, "failed: ");
    snprintf(text, sizeof text, "%s failed: %s", name, reason ? reason + 8 : report->message);
    size_t n = strlen(text) < sizeof report->message ? strlen(text) : sizeof report->message - 1;
    memcpy(report->message, text, n);
    report->message[n] = '\0';
}

static int run(mpmap_app *k)
{
    const mpmap_app_def *d = k->def;
    mpmap_app_problem *p = d->problem;
    if (!p->task_dim)
        p->task_dim = "task";
    app_configure(&k->a, p->fingerprint);
    if (p->max_chunk > 0)
        k->a.config.max_chunk = p->max_chunk;

    int code = 0;
    k->rows_in_place = strcmp(k->a.common.write, "ranks") == 0;
    const char *refusal = k->rows_in_place ? kit_rows_refusal(p, k->a.common.live) : NULL;
    if (k->a.rank == 0 && refusal) {
        snprintf(k->message, sizeof k->message, "%s", refusal);
        code = MPMAP_APP_USAGE;
    } else if (k->a.rank == 0) {
        code = create_output(k);
    }
    code = app_agree(&k->a, code, k->message);
    if (code == 0 && k->rows_in_place)
        code = open_rows(k);
    if (code != 0)
        return code;

    /* clang-format off */
    mpmap_job job = { .ntasks = p->ntasks, .record_size = p->record_size, .map = kit_map,
                      .context = k, .trace = kit_trace, .progress = kit_progress,
                      .reduce_op = p->reduce_op, .reduce_type = p->reduce_type,
                      .reduce_fn = p->reduce_fn, .reduction = p->reduction };
    /* clang-format on */
    if (p->nfields > 0 || p->status)
        job.sink = kit_sink;
    if (k->rows_in_place) {
        /* Rows are written at once and synced once per checkpoint
         * interval; the checkpoint logs a range only after that sync. */
        job.store = kit_store;
        job.store_sync = kit_store_sync;
    }
    if (d->task_failed)
        job.task_failed = kit_task_failed;
    job.notice = kit_notice;
    job.stopping = kit_stopping;
    if (k->a.rank == 0)
        kit_status_start(&k->status, p->ntasks, k->a.config.manager_computes || k->a.size == 1);
    mpmap_report report;
    int status = mpmap_run(k->a.comm, &k->a.config, &job, &report);
    if (k->rows_in_place)
        close_rows(k, &status, &report);
    if (k->a.rank == 0 && status == MPMAP_OK)
        status = write_results(k, &report);
    /* Whatever stops the run, the rows its checkpoint counts stay. */
    if (k->rows_in_place && k->a.rank == 0 && status != MPMAP_OK)
        kit_rows_keep_stop(k->a.common.output);
    /* Datasets close before the file is committed or removed; a file that
     * is removed first stops writing, so that closing cannot fail on a full
     * disk. */
    if (k->a.rank == 0 && status != MPMAP_OK)
        mpmap_h5_discard(k->a.h5);
    if (k->a.rank == 0)
        kit_fields_discard(&k->fields);
    if (k->a.rank == 0 && status == MPMAP_ETASK && d->task_name && report.failed_task >= 0)
        rename_failed_task(k, &report);
    /* A bar's line still open ends before any message of app_finish. */
    progress_end_line(&k->a.progress);
    MPI_Bcast(&status, 1, MPI_INT, 0, k->a.comm);
    code = app_finish(&k->a, status, &report);
    if (code == MPMAP_APP_OK && k->a.rank == 0)
        kit_rows_keep_forget(k->a.common.output);
    if (code == MPMAP_APP_OK && k->a.rank == 0 && !k->a.common.quiet) {
        if (d->print)
            d->print(k, &report, d->context);
        printf("  %d rank%s, %s schedule%s, %.3f s (%lld %s resumed from checkpoint)\n  wrote %s\n",
               k->a.size, k->a.size == 1 ? "" : "s", app_schedule_ran(&k->a, &report),
               app_schedule_note(&k->a), report.wall_time, (long long)report.tasks_restored,
               d->task_noun ? d->task_noun : "tasks", k->a.common.output);
        fflush(stdout);
    }
    return code;
}

int mpmap_app_main(int argc, char **argv, const mpmap_app_def *def)
{
    mpmap_app *k = calloc(1, sizeof *k);
    if (!k) {
        fprintf(stderr, "%s: out of memory\n", def->name);
        return MPMAP_APP_FAILED;
    }
    k->def = def;
    app_init(&k->a, def->name, &argc, &argv);
    int code = parse_and_check(k);
    if (code < 0 && k->a.rank == 0) /* the output's lock is held from here on */
        kit_status_open(&k->status, def->name, k->a.common.output, k->a.size,
                        k->a.config.progress_interval);
    if (code < 0) {
        k->code = 0;
        k->message[0] = '\0';
        code = def->setup(k, def->context);
        if (code == 0 && kit_fields_layout(def->problem, k->message, sizeof k->message) != 0)
            code = MPMAP_APP_FAILED;
        code = agree_any(k, code);
        if (code == 0)
            code = run(k);
    }
    if (k->a.rank == 0 && code != 0)
        mpmap_h5_discard(k->a.h5);
    if (k->a.rank == 0)
        kit_fields_free(&k->fields);
    kit_status_close(&k->status);
    if (def->cleanup)
        def->cleanup(def->context);
    code = app_exit(&k->a, code);
    free(k);
    return code;
}

int64_t mpmap_app_failed_tasks(const mpmap_app *k) { return k->fields.failed; }
int mpmap_app_rank(const mpmap_app *k) { return k->a.rank; }
int mpmap_app_size(const mpmap_app *k) { return k->a.size; }
MPI_Comm mpmap_app_comm(const mpmap_app *k) { return k->a.comm; }
const mpmap_cli_common *mpmap_app_common(const mpmap_app *k) { return &k->a.common; }
void mpmap_app_set_output_policy(mpmap_app *k, bool resume, bool force)
{
    k->a.common.resume = resume;
    k->a.common.force = force;
}
mpmap_config *mpmap_app_config(mpmap_app *k) { return &k->a.config; }
mpmap_h5 *mpmap_app_h5(mpmap_app *k) { return k->a.h5; }
bool mpmap_app_on_error_given(const mpmap_app *k)
{
    return k->a.common.on_error != k->on_error_unset;
}

const void *mpmap_app_field_data(const mpmap_app *k, const char *name)
{
    return kit_fields_data(&k->fields, name);
}

int mpmap_app_attr_double(mpmap_app *k, const char *name, double value)
{
    return mpmap_h5_attr_double(k->a.h5, "/", name, value);
}

int mpmap_app_attr_int64(mpmap_app *k, const char *name, int64_t value)
{
    return mpmap_h5_attr_int64(k->a.h5, "/", name, value);
}

int mpmap_app_attr_string(mpmap_app *k, const char *name, const char *value)
{
    return mpmap_h5_attr_string(k->a.h5, "/", name, value);
}

int mpmap_app_shared_alloc(mpmap_app *k, int64_t count, mpmap_app_shared **out)
{
    /* Every rank computes the same count and allocates alike, so every rank
     * returns the same verdict. */
    mpmap_app_shared *s = calloc(1, sizeof *s);
    int ok = s != NULL, all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, k->a.comm);
    *out = NULL;
    if (!all) {
        free(s);
        return mpmap_app_failure(k, "out of memory");
    }
    if (app_shared_alloc(&k->a, count, &s->s) != 0) {
        app_shared_free(&s->s);
        free(s);
        return mpmap_app_usage(k, "%lld input values do not fit in memory", (long long)count);
    }
    *out = s;
    return 0;
}

double *mpmap_app_shared_data(mpmap_app_shared *s) { return s ? s->s.data : NULL; }
bool mpmap_app_shared_leader(const mpmap_app_shared *s) { return s && s->s.node_leader; }

void mpmap_app_shared_publish(mpmap_app *k, mpmap_app_shared *s, bool from_root)
{
    app_shared_publish(&k->a, &s->s, from_root);
}

void mpmap_app_shared_free(mpmap_app_shared *s)
{
    if (!s)
        return;
    app_shared_free(&s->s);
    free(s);
}

int mpmap_app_load_matrix(mpmap_app *k, const char *flag, const char *spec, mpmap_app_shared **out,
                          int64_t *rows, int64_t *cols)
{
    *out = calloc(1, sizeof **out);
    int ok = *out != NULL, all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, k->a.comm);
    int code = all ? app_load_matrix(&k->a, flag, spec, &(*out)->s, rows, cols) : MPMAP_APP_FAILED;
    if (code != 0) {
        free(*out);
        *out = NULL;
        /* app_load_matrix agreed and printed already. */
        k->message[0] = '\0';
        k->code = code;
    }
    return code;
}

int mpmap_app_input_matrix(mpmap_app *k, const char *flag, const char *spec, mpmap_app_fill_fn fill,
                           uint64_t seed, int64_t rows, int64_t cols, mpmap_app_shared **out,
                           int64_t *out_rows, int64_t *out_cols)
{
    if (spec)
        return mpmap_app_load_matrix(k, flag, spec, out, out_rows, out_cols);
    if (mpmap_app_shared_alloc(k, rows * cols, out) != 0)
        return mpmap_app_usage(k, "%s: %lld x %lld values do not fit in memory", flag,
                               (long long)rows, (long long)cols);
    if (mpmap_app_shared_leader(*out))
        fill(seed, 0, (size_t)rows, (size_t)cols, mpmap_app_shared_data(*out));
    mpmap_app_shared_publish(k, *out, false);
    *out_rows = rows;
    *out_cols = cols;
    return 0;
}

bool mpmap_app_fits_in_memory(int64_t count, size_t size)
{
    return app_fits_in_memory(count, size);
}
uint64_t mpmap_app_hash(const void *data, size_t n) { return app_hash_bytes(data, n); }
