/*
 * word_count: how often each word occurs in a set of text files, in
 * parallel (the MapReduce "wordfreq" use case).
 *
 * --input FILE (repeatable; a directory means every regular file under it,
 * in bytewise name order). A word is a maximal run of bytes other than
 * ASCII whitespace (space, \t, \n, \v, \f, \r) and NUL — Python's
 * bytes.split() on text without NULs; --fold-case lowers ASCII A-Z first.
 *
 * Two phases, both under the caller's --schedule and --chunk:
 *
 *  1. The count (in setup, collective): every file is cut into byte-range
 *     tasks of --task-bytes. A task owns the words that START inside its
 *     range: it skips a word begun before its range and reads past its end
 *     to finish its last word, so no boundary needs to be known in advance.
 *     Each task emits (word, 1) to the keyed reduction of the core library
 *     (mpmap_keyed.h: local combine, hash shuffle, sorted gather). Counts
 *     are integers, so they are exact whichever rank counted what.
 *  2. The output (the kit's usual run): one task per distinct word, in the
 *     order count descending then word bytewise; the record is the count.
 *     The kit writes /count on the axis /word (a string coordinate), sums
 *     the counts into the root attribute `total`, and handles the output's
 *     life, provenance and exit codes like every app.
 *
 * The file is therefore the same, byte for byte in its datasets, for any
 * rank count, schedule, chunk and --task-bytes.
 *
 * The count is checkpointed apart from the output's run: interrupted, it
 * saves its partial counts in OUT.kckpt (a manifest) and OUT.kckpt.legL.rankR
 * (mpmap_keyed.h), which the kit's output checks treat as they treat
 * OUT.ckpt (--resume continues, --force starts over, a run with neither is
 * refused). A resumed
 * count, on any rank count, counts only the tasks not done and gives the
 * same bytes. The count's checkpoint goes once the output is complete.
 */
#define _POSIX_C_SOURCE 200809L
#include "mpmap_app.h"
#include "mpmap_keyed.h"
#include "word_split.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Most flags of the app's own (wc_flags). */
#define WC_MAX_FLAGS 6

typedef struct wc_run {
    mpmap_app_problem problem;
    /* flags */
    mpmap_cli_strings inputs;
    int fold_case;
    int64_t task_bytes;
    int64_t budget_mib;
    const char *spill_dir;
    /* the files, the count's tasks and its tokenizer (word_split.h) */
    wc_split split;
    /* the result: counts in output order (every rank), words (rank 0) */
    int64_t nwords;
    int64_t *counts;
    char **words;
    char *word_text;
    int64_t total; /* the kit's sum of /count, on every rank */
    double count_time;
    int64_t rounds, pairs, peak_bytes;
    int64_t spills, spill_bytes; /* all ranks' run files */
    int64_t count_restored;      /* count tasks a resume took from OUT.kckpt */
    char kckpt[4200];            /* the count's checkpoint, OUT.kckpt */
    /* Test hook (MPMAP_TEST_SIGTERM_AFTER=N): the rank that counts its N-th
     * task sends itself SIGTERM, so the suite interrupts the count at a
     * known point; a signal from outside could land before it starts. */
    int64_t term_after, counted;
} wc_run;

/* ---- phase 1: the count ------------------------------------------------------ */

/* Output order: count descending, then the word bytewise (the keyed
 * result is sorted by word, so its index breaks ties). */
typedef struct wc_rank {
    int64_t count;
    int64_t index;
} wc_rank;

static int cmp_rank(const void *a, const void *b)
{
    const wc_rank *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * Sorts a (in word order) into output order without comparisons: a radix
 * sort of max - count, byte by byte from the lowest, each pass stable, so
 * words of one count keep their order. Falls back to qsort without memory.
 */
static void sort_by_count(wc_rank *a, size_t n)
{
    wc_rank *tmp = n > 1 ? malloc(n * sizeof *tmp) : NULL;
    if (!tmp) {
        if (n > 1)
            qsort(a, n, sizeof *a, cmp_rank);
        return;
    }
    int64_t max = a[0].count, min = a[0].count;
    for (size_t i = 1; i < n; i++) {
        max = a[i].count > max ? a[i].count : max;
        min = a[i].count < min ? a[i].count : min;
    }
    uint64_t range = (uint64_t)max - (uint64_t)min;
    wc_rank *src = a, *dst = tmp;
    for (int shift = 0; shift < 64 && range >> shift; shift += 8) {
        size_t count[256] = { 0 };
        for (size_t i = 0; i < n; i++)
            count[((uint64_t)max - (uint64_t)src[i].count) >> shift & 0xff]++;
        size_t pos = 0;
        for (int d = 0; d < 256; d++) {
            size_t c = count[d];
            count[d] = pos;
            pos += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[count[((uint64_t)max - (uint64_t)src[i].count) >> shift & 0xff]++] = src[i];
        wc_rank *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, n * sizeof *a);
    free(tmp);
}

/* The inputs by name, size and modification time: they name the job for
 * --resume (the count's and the output's). */
static uint64_t inputs_hash(const wc_run *w)
{
    uint64_t h = 0;
    for (int32_t f = 0; f < w->split.nfiles; f++) {
        struct stat st;
        int64_t stamp[2] = { w->split.file_size[f],
                             stat(w->split.files[f], &st) == 0 ? (int64_t)st.st_mtime : 0 };
        h = h * 1099511628211ull ^ mpmap_app_hash(w->split.files[f], strlen(w->split.files[f]));
        h = h * 1099511628211ull ^ mpmap_app_hash(stamp, sizeof stamp);
    }
    return h;
}

static int wc_count_task(int64_t task, mpmap_emitter *e, mpmap_task_error *err, void *ctx)
{
    wc_run *w = ctx;
    int rc = wc_split_count_task(task, e, err, &w->split);
    if (rc == 0 && w->term_after > 0 && ++w->counted == w->term_after)
        raise(SIGTERM);
    return rc;
}

/* The verdict on a count that did not finish (interrupted and saved, a
 * refused resume, over the budget...): an exit code, with the message set
 * on rank 0. */
static int count_failed(mpmap_app *app, const wc_run *w, int rc, const mpmap_report *rep)
{
    if (mpmap_app_rank(app) != 0)
        return rc == MPMAP_EINTERRUPTED ? MPMAP_APP_INTERRUPTED
               : rc == MPMAP_ERESUME    ? MPMAP_APP_USAGE
                                        : MPMAP_APP_FAILED;
    if (rc == MPMAP_EINTERRUPTED) {
        mpmap_app_failure(app,
                          "interrupted while counting: %lld/%lld count tasks done, saved in "
                          "'%s'; rerun with --resume",
                          (long long)rep->tasks_done, (long long)rep->tasks_total, w->kckpt);
        return MPMAP_APP_INTERRUPTED;
    }
    if (rc == MPMAP_ERESUME)
        return mpmap_app_usage(app, "--resume: %s; use --force to start over", rep->message);
    if (rc == MPMAP_EIO && strstr(rep->message, w->kckpt))
        return mpmap_app_failure(app,
                                 "interrupted while counting, and the count could not be "
                                 "saved: %s",
                                 rep->message);
    return rc == MPMAP_ENOMEM && strstr(rep->message, "budget")
               ? mpmap_app_failure(app, "%s (--budget %lld MiB)", rep->message,
                                   (long long)w->budget_mib)
               : mpmap_app_failure(app, "counting failed: %s", rep->message);
}

/*
 * Runs the count and leaves the words in output order: counts on every
 * rank, the words (NUL-terminated) on rank 0. Collective; 0 or an exit code.
 */
static int count_words(mpmap_app *app, wc_run *w)
{
    MPI_Comm comm = mpmap_app_comm(app);
    int rank = mpmap_app_rank(app);
    /* Tables over the budget spill beside the output unless told where:
     * that is where the user expects room for data (a node's /tmp is often
     * small). */
    char spill[4096];
    const char *out = mpmap_app_common(app)->output, *slash = strrchr(out, '/');
    if (w->spill_dir)
        snprintf(spill, sizeof spill, "%s", w->spill_dir);
    else if (slash)
        snprintf(spill, sizeof spill, "%.*s", slash == out ? 1 : (int)(slash - out), out);
    else
        snprintf(spill, sizeof spill, ".");
    /* The count's checkpoint: the tasks are byte ranges, so --task-bytes
     * names it too (the output, where it changes nothing, ignores it). */
    snprintf(w->kckpt, sizeof w->kckpt, "%s.kckpt", out);
    char fp[512];
    snprintf(fp, sizeof fp, "word_count --fold-case=%d --task-bytes=%lld input=%lld:%lld:%016llx",
             w->fold_case, (long long)w->task_bytes, (long long)w->split.nfiles,
             (long long)w->split.total_bytes, (unsigned long long)inputs_hash(w));
    mpmap_config cfg = *mpmap_app_config(app);
    cfg.checkpoint_path = w->kckpt;
    cfg.fingerprint = fp;
    /* --resume after the output's run was interrupted finds no count saved:
     * the count then starts afresh. */
    cfg.resume = rank == 0 && mpmap_app_common(app)->resume && access(w->kckpt, F_OK) == 0;
    MPI_Bcast(&cfg.resume, 1, MPI_INT, 0, comm);
    const char *term = getenv("MPMAP_TEST_SIGTERM_AFTER");
    w->term_after = term ? strtoll(term, NULL, 10) : 0;
    mpmap_keyed_job job = { .ntasks = w->split.ntasks,
                            .value_size = sizeof(int64_t),
                            .map = wc_count_task,
                            .context = w,
                            .op = MPMAP_REDUCE_SUM,
                            .type = MPMAP_INT64,
                            .budget = (size_t)w->budget_mib << 20,
                            .spill_dir = spill };
    mpmap_keyed_result res;
    mpmap_report rep;
    double t0 = MPI_Wtime();
    int rc = mpmap_keyed_run(comm, &cfg, &job, &res, &rep);
    w->count_time = MPI_Wtime() - t0;
    wc_split_free_buffer(&w->split);
    /* Figures of the count: the largest table of any rank, all pairs, rounds. */
    long long peak = (long long)res.peak_bytes, pairs = res.pairs_emitted, mx = 0, sum = 0;
    MPI_Reduce(&peak, &mx, 1, MPI_LONG_LONG, MPI_MAX, 0, comm);
    MPI_Reduce(&pairs, &sum, 1, MPI_LONG_LONG, MPI_SUM, 0, comm);
    w->peak_bytes = mx;
    w->pairs = sum;
    w->rounds = res.rounds;
    long long mine[2] = { res.spills, (long long)res.spill_bytes }, spilled[2] = { 0, 0 };
    MPI_Reduce(mine, spilled, 2, MPI_LONG_LONG, MPI_SUM, 0, comm);
    w->spills = spilled[0];
    w->spill_bytes = spilled[1];
    w->count_restored = rep.tasks_restored;
    if (rc != MPMAP_OK) {
        mpmap_keyed_result_free(&res);
        return count_failed(app, w, rc, &rep);
    }
    w->nwords = res.nkeys;
    w->counts = malloc(((size_t)w->nwords + 1) * sizeof *w->counts);
    int ok = w->counts != NULL;
    if (rank == 0 && ok) {
        wc_rank *order = malloc(((size_t)w->nwords + 1) * sizeof *order);
        size_t text = res.key_offset[w->nwords] + (size_t)w->nwords;
        w->words = malloc(((size_t)w->nwords + 1) * sizeof *w->words);
        w->word_text = malloc(text + 1);
        ok = order && w->words && w->word_text;
        if (ok) {
            for (int64_t i = 0; i < w->nwords; i++) {
                order[i].index = i;
                memcpy(&order[i].count, mpmap_keyed_value(&res, i), sizeof(int64_t));
            }
            sort_by_count(order, (size_t)w->nwords);
            char *p = w->word_text;
            for (int64_t i = 0; i < w->nwords; i++) {
                size_t len;
                const char *k = mpmap_keyed_key(&res, order[i].index, &len);
                memcpy(p, k, len);
                p[len] = '\0';
                w->words[i] = p;
                p += len + 1;
                w->counts[i] = order[i].count;
            }
        }
        free(order);
    }
    mpmap_keyed_result_free(&res);
    int all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm);
    if (!all)
        return rank == 0
                   ? mpmap_app_failure(app, "out of memory for %lld words", (long long)w->nwords)
                   : MPMAP_APP_FAILED;
    /* The kit's map runs anywhere: every rank gets the counts. */
    for (int64_t off = 0; off < w->nwords; off += (int64_t)1 << 26) {
        int64_t m = w->nwords - off < ((int64_t)1 << 26) ? w->nwords - off : (int64_t)1 << 26;
        MPI_Bcast(w->counts + off, (int)m, MPI_INT64_T, 0, comm);
    }
    return 0;
}

/* ---- phase 2: the output (the kit) ------------------------------------------ */

static int wc_map(int64_t begin, int64_t end, void *records, mpmap_task_error *err, void *ctx)
{
    (void)err;
    const wc_run *w = ctx;
    memcpy(records, w->counts + begin, (size_t)(end - begin) * sizeof(int64_t));
    return 0;
}

static int wc_setup(mpmap_app *app, void *ctx)
{
    wc_run *w = ctx;
    w->split.fold_case = w->fold_case;
    int code = wc_split_inputs(app, &w->inputs, &w->split);
    if (code == 0)
        code = wc_split_tasks(app, &w->split, w->task_bytes);
    if (code == 0)
        code = count_words(app, w);
    if (code != 0)
        return code;

    mpmap_app_problem *p = &w->problem;
    p->ntasks = w->nwords;
    p->task_dim = "word";
    p->coords[p->ncoords++] = (mpmap_app_coord){
        .name = "word",
        .n = w->nwords,
        .strings = (const char *const *)w->words,
        .long_name = "word (bytes between ASCII whitespace), by count descending then bytewise"
    };
    p->fields[p->nfields++] = (mpmap_app_field){ .name = "count",
                                                 .type = MPMAP_INT64,
                                                 .long_name = "occurrences of the word" };
    p->reduce_op = MPMAP_REDUCE_SUM;
    p->reduce_type = MPMAP_INT64;
    p->reduction = &w->total;
    /* The inputs and the effective settings name the job for --resume. */
    snprintf(p->fingerprint, sizeof p->fingerprint,
             "files=%lld bytes=%lld inputs=%016llx fold_case=%d words=%lld",
             (long long)w->split.nfiles, (long long)w->split.total_bytes,
             (unsigned long long)inputs_hash(w), w->fold_case, (long long)w->nwords);
    return 0;
}

static int wc_finish(mpmap_app *app, const mpmap_report *report, void *ctx)
{
    (void)report;
    const wc_run *w = ctx;
    /* The count has served: a later fresh run must not find it. (Should
     * the commit still fail, the output's checkpoint holds the counts.) */
    (void)mpmap_keyed_checkpoint_remove(w->kckpt);
    int rc = mpmap_app_attr_int64(app, "total", w->total);
    if (rc == 0)
        rc = mpmap_app_attr_int64(app, "distinct_words", w->nwords);
    if (rc == 0)
        rc = mpmap_app_attr_int64(app, "files", w->split.nfiles);
    if (rc == 0)
        rc = mpmap_app_attr_int64(app, "bytes", w->split.total_bytes);
    if (rc == 0)
        rc = mpmap_app_attr_int64(app, "fold_case", w->fold_case);
    if (rc == 0)
        rc = mpmap_app_attr_int64(app, "count_tasks", w->split.ntasks);
    if (rc == 0)
        rc = mpmap_app_attr_int64(app, "count_tasks_restored", w->count_restored);
    if (rc == 0)
        rc = mpmap_app_attr_double(app, "count_wall_time", w->count_time);
    return rc;
}

static void wc_print(mpmap_app *app, const mpmap_report *report, void *ctx)
{
    (void)app;
    (void)report;
    const wc_run *w = ctx;
    printf("word_count: %lld words, %lld distinct, in %lld files (%lld bytes)\n",
           (long long)w->total, (long long)w->nwords, (long long)w->split.nfiles,
           (long long)w->split.total_bytes);
    printf("  count: %lld tasks, %.3f s (%.1f MB/s), %lld shuffle rounds, largest table %.1f MB\n",
           (long long)w->split.ntasks, w->count_time,
           w->count_time > 0 ? (double)w->split.total_bytes / w->count_time / 1e6 : 0.0,
           (long long)w->rounds, (double)w->peak_bytes / 1e6);
    if (w->count_restored > 0)
        printf("  resumed: %lld count tasks from '%s'\n", (long long)w->count_restored, w->kckpt);
    if (w->spills > 0)
        printf("  over --budget: %lld run files, %.1f MB spilled to disk and merged\n",
               (long long)w->spills, (double)w->spill_bytes / 1e6);
    for (int64_t i = 0; i < w->nwords && i < 5; i++)
        printf("  %10lld  %s\n", (long long)w->counts[i], w->words[i]);
}

static void wc_cleanup(void *ctx)
{
    wc_run *w = ctx;
    wc_split_free(&w->split);
    free(w->counts);
    free(w->words);
    free(w->word_text);
}

/* The app's own flags, with their targets in w. */
static size_t wc_flags(wc_run *w, mpmap_option *out)
{
    /* clang-format off */
    const mpmap_option flags[] = {
        { .name = "--input", .short_name = 'i', .kind = MPMAP_OPT_STRING_LIST,
          .target = &w->inputs, .metavar = "PATH",
          .help = "a text file, or a directory of them (repeatable)",
          .flags = MPMAP_OPT_REQUIRED },
        { .name = "--fold-case", .kind = MPMAP_OPT_FLAG, .target = &w->fold_case,
          .help = "count words in ASCII lower case" },
        { .name = "--task-bytes", .kind = MPMAP_OPT_INT64, .target = &w->task_bytes,
          .metavar = "B", .help = "bytes of a file per counting task (results do not depend on it)",
          .default_text = "4194304", .min = 1, .max = 1e15, .flags = MPMAP_OPT_NO_FINGERPRINT },
        { .name = "--budget", .kind = MPMAP_OPT_INT64, .target = &w->budget_mib,
          .metavar = "MIB",
          .help = "memory of a rank's word tables, in MiB; beyond it they spill to disk",
          .default_text = "1024", .min = 1, .max = 1e9, .flags = MPMAP_OPT_NO_FINGERPRINT },
        { .name = "--spill-dir", .kind = MPMAP_OPT_STRING, .target = &w->spill_dir,
          .metavar = "DIR", .help = "where tables over --budget spill (files nobody sees)",
          .default_text = "the output's directory", .flags = MPMAP_OPT_NO_FINGERPRINT },
    };
    /* clang-format on */
    _Static_assert(sizeof flags / sizeof flags[0] <= WC_MAX_FLAGS, "raise WC_MAX_FLAGS");
    memcpy(out, flags, sizeof flags);
    return sizeof flags / sizeof flags[0];
}

int main(int argc, char **argv)
{
    wc_run w = { .task_bytes = (int64_t)4 << 20, .budget_mib = 1024 };
    mpmap_option options[WC_MAX_FLAGS];
    size_t noptions = wc_flags(&w, options);
    /* clang-format off */
    mpmap_app_def def = { .name = "word_count", .default_output = "word_count.h5",
                          .summary = "Count the words of text files, in parallel.",
                          .options = options, .noptions = noptions, .context = &w,
                          .problem = &w.problem, .setup = wc_setup, .map = wc_map,
                          .finish = wc_finish, .print = wc_print, .cleanup = wc_cleanup,
                          .task_noun = "words" };
    /* clang-format on */
    return mpmap_app_main(argc, argv, &def);
}
