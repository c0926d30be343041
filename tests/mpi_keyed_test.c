/*
 * mpmap_keyed under mpirun (-n 1, 2, 3): every case is compared bitwise with
 * a serial computation of the documented semantics (per-task partials in
 * emission order, folded over tasks in task order), for every schedule and
 * several chunk sizes and shuffle round sizes, so the results are the same
 * for any rank count. Doubles are summed with magnitudes chosen so that the
 * order of additions changes the bits; a non-commutative user fold pins the
 * task order exactly (the cases and the reference: keyed_cases.h).
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include "keyed_cases.h"

#include <unistd.h>

static void run_case(tcase *c, const char *name)
{
    mpmap_keyed_job job = make_job(c);
    expected ex = { 0 };
    if (rank_ == 0)
        ex = serial(c, &job);
    MPI_Bcast(&ex.n, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
    const int64_t chunks[] = { 1, 7 };
    const size_t rounds[] = { 0, 64 };
    for (int s = 0; s < 4; s++)
        for (int ci = 0; ci < 2; ci++)
            for (int ri = 0; ri < 2; ri++) {
                mpmap_config cfg;
                mpmap_config_init(&cfg);
                cfg.schedule = (mpmap_schedule)s;
                cfg.chunk = chunks[ci];
                job.round_bytes = rounds[ri];
                mpmap_keyed_result res;
                mpmap_report rep;
                int rc = mpmap_keyed_run(MPI_COMM_WORLD, &cfg, &job, &res, &rep);
                char what[160];
                snprintf(what, sizeof what, "%s %s chunk %lld round %zu", name,
                         mpmap_schedule_name(cfg.schedule), (long long)chunks[ci], rounds[ri]);
                CHECK(rc == MPMAP_OK, "%s: %s (%s)", what, mpmap_strerror(rc), rep.message);
                if (rc == MPMAP_OK)
                    compare(what, &ex, &res, c->value_size);
                if (ri == 1 && size_ > 1)
                    CHECK(res.rounds > 1 || c->ntasks == 0, "%s: %lld rounds", what,
                          (long long)res.rounds);
                mpmap_keyed_result_free(&res);
            }
    if (rank_ == 0)
        expected_free(&ex);
}

static void test_budget(void)
{
    tcase c = { .kind = CASE_ISUM, .ntasks = 200, .value_size = 8, .fail_task = -1 };
    mpmap_keyed_job job = make_job(&c);
    c.kind = CASE_DSUM; /* per-task partials: the table grows with the tasks */
    job = make_job(&c);
    job.budget = 8192;
    mpmap_config cfg;
    mpmap_config_init(&cfg);
    mpmap_keyed_result res;
    mpmap_report rep;
    int rc = mpmap_keyed_run(MPI_COMM_WORLD, &cfg, &job, &res, &rep);
    CHECK(rc == MPMAP_ENOMEM, "budget: got %s", mpmap_strerror(rc));
    CHECK(strstr(rep.message, "budget") != NULL, "budget message: '%s'", rep.message);
    CHECK(res.keys == NULL, "budget: no result");
    mpmap_keyed_result_free(&res);
}

/* Tables over a small budget spill to run files: the results stay bitwise
 * those of the serial definition for every fold, the spill directory is
 * left empty, and a spill that cannot be written fails on every rank with
 * a message naming the directory. */
static void test_spill(void)
{
    char dir[64];
    shared_scratch_dir(dir, "spill");
    if (!dir[0])
        return;
    tcase cases[] = {
        { .kind = CASE_DSUM, .ntasks = 800, .value_size = 8, .fail_task = -1 },
        { .kind = CASE_ISUM, .ntasks = 800, .value_size = 8, .fail_task = -1 },
        { .kind = CASE_DMINMAX, .ntasks = 800, .value_size = 8, .fail_task = -1 },
        { .kind = CASE_USER, .ntasks = 800, .value_size = 8, .fail_task = -1 },
        { .kind = CASE_VEC, .ntasks = 400, .value_size = 16, .fail_task = -1 },
    };
    const size_t budgets[] = { 64 << 10, 192 << 10 };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tcase *c = &cases[i];
        mpmap_keyed_job job = make_job(c);
        expected ex = { 0 };
        if (rank_ == 0)
            ex = serial(c, &job);
        MPI_Bcast(&ex.n, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
        for (size_t b = 0; b < 2; b++) {
            mpmap_config cfg;
            mpmap_config_init(&cfg);
            cfg.schedule = MPMAP_SCHEDULE_DYNAMIC;
            cfg.chunk = 3;
            job.budget = budgets[b];
            job.round_bytes = 4096;
            job.spill_dir = dir;
            mpmap_keyed_result res;
            mpmap_report rep;
            int rc = mpmap_keyed_run(MPI_COMM_WORLD, &cfg, &job, &res, &rep);
            char what[96];
            snprintf(what, sizeof what, "spill case %zu budget %zu", i, budgets[b]);
            CHECK(rc == MPMAP_OK, "%s: %s (%s)", what, mpmap_strerror(rc), rep.message);
            if (rc == MPMAP_OK)
                compare(what, &ex, &res, c->value_size);
            long long spills = res.spills, all = 0;
            MPI_Allreduce(&spills, &all, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
            CHECK(all > 0 || b > 0, "%s: nothing was spilled", what);
            CHECK(res.peak_bytes <= budgets[b], "%s: peak %zu over the budget", what,
                  res.peak_bytes);
            mpmap_keyed_result_free(&res);
        }
        if (rank_ == 0)
            expected_free(&ex);
    }
    /* Unnamed run files: nothing is left in the directory. */
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank_ == 0) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s)\"", dir);
        CHECK(system(cmd) == 0, "files left in the spill directory %s", dir);
    }
    /* A spill directory that does not exist. */
    tcase c = { .kind = CASE_DSUM, .ntasks = 800, .value_size = 8, .fail_task = -1 };
    mpmap_keyed_job job = make_job(&c);
    job.budget = 64 << 10;
    char missing[96];
    snprintf(missing, sizeof missing, "%s/not-there", dir);
    job.spill_dir = missing;
    mpmap_config cfg;
    mpmap_config_init(&cfg);
    mpmap_keyed_result res;
    mpmap_report rep;
    int rc = mpmap_keyed_run(MPI_COMM_WORLD, &cfg, &job, &res, &rep);
    CHECK(rc == MPMAP_EIO, "missing spill dir: got %s", mpmap_strerror(rc));
    CHECK(strstr(rep.message, "not-there") != NULL, "missing spill dir message: '%s'", rep.message);
    mpmap_keyed_result_free(&res);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank_ == 0)
        rmdir(dir);
}

/* Counting keys of every length from 0 to 40 bytes (NULs and high bytes
 * inside, so the ones sharing their first or last 8 bytes, up to and past
 * 16 bytes, must be told apart) and, with room for it, one over 64 KiB:
 * the int64 sum's combiner must give the serial sums, wrapping, whether it
 * holds every key or a small budget makes it drain into the table many
 * times (which then spills). */
#define WORDS_TASKS 60
#define WORDS_PER_TASK 300
#define WORDS_BIG 70000

typedef struct words_ctx {
    unsigned char *key;
    int big; /* emit the big key */
} words_ctx;

static size_t words_key(int64_t task, int j, unsigned char *key)
{
    if (task == 5 && j == 0) {
        memset(key, 'b', WORDS_BIG);
        return WORDS_BIG;
    }
    unsigned v = (unsigned)((task * 7919 + j * 104729) % 1201);
    size_t len = v % 41;
    for (size_t i = 0; i < len; i++) /* differs from its siblings in one byte */
        key[i] = i == (v / 41) % (len ? len : 1) ? (unsigned char)(v / 41 * 37) : (unsigned char)i;
    return len;
}

static int64_t words_value(int64_t task, int j)
{
    return j == 7 ? INT64_MAX - task : (int64_t)((task * 31 + j) % 97) - 40;
}

static int words_map(int64_t task, mpmap_emitter *e, mpmap_task_error *err, void *ctx)
{
    (void)err;
    words_ctx *w = ctx;
    for (int j = 0; j < WORDS_PER_TASK; j++) {
        int64_t x = words_value(task, j);
        size_t len = words_key(task, j, w->key);
        if (len == WORDS_BIG && !w->big)
            continue;
        int rc = mpmap_emit(e, w->key, len, &x);
        if (rc)
            return rc;
    }
    return 0;
}

typedef struct words_pair {
    unsigned char key[48];
    size_t len;
    uint64_t sum;
} words_pair;

static int words_cmp(const void *a, const void *b)
{
    const words_pair *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->key, y->key, n) : 0;
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static void test_combiner_keys(void)
{
    static unsigned char key[WORDS_BIG];
    /* the reference: every short pair sorted by key and summed; the big key apart */
    size_t n = (size_t)WORDS_TASKS * WORDS_PER_TASK, m = 0;
    words_pair *p = calloc(n, sizeof *p);
    uint64_t big = 0;
    for (int64_t t = 0; t < WORDS_TASKS && p; t++)
        for (int j = 0; j < WORDS_PER_TASK; j++) {
            size_t len = words_key(t, j, key);
            if (len == WORDS_BIG) {
                big += (uint64_t)words_value(t, j);
                continue;
            }
            memcpy(p[m].key, key, len);
            p[m].len = len;
            p[m++].sum = (uint64_t)words_value(t, j);
        }
    CHECK(p != NULL, "combiner keys: out of memory");
    if (!p)
        return;
    qsort(p, m, sizeof *p, words_cmp);
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        if (k > 0 && words_cmp(&p[k - 1], &p[i]) == 0)
            p[k - 1].sum += p[i].sum;
        else
            p[k++] = p[i];
    }
    char dir[64];
    shared_scratch_dir(dir, "comb");
    const size_t budgets[] = { 0, 192 << 10 };
    for (size_t b = 0; b < 2 && dir[0]; b++) {
        words_ctx w = { key, budgets[b] == 0 };
        /* clang-format off */
        mpmap_keyed_job job = { .ntasks = WORDS_TASKS, .value_size = 8, .map = words_map,
                                .context = &w, .op = MPMAP_REDUCE_SUM, .type = MPMAP_INT64,
                                .budget = budgets[b], .spill_dir = budgets[b] ? dir : NULL };
        /* clang-format on */
        mpmap_config cfg;
        mpmap_config_init(&cfg);
        cfg.schedule = MPMAP_SCHEDULE_DYNAMIC;
        cfg.chunk = 2;
        mpmap_keyed_result res;
        mpmap_report rep;
        int rc = mpmap_keyed_run(MPI_COMM_WORLD, &cfg, &job, &res, &rep);
        CHECK(rc == MPMAP_OK, "combiner keys, budget %zu: %s (%s)", budgets[b], mpmap_strerror(rc),
              rep.message);
        if (rc == MPMAP_OK) {
            CHECK(res.nkeys == (int64_t)k + w.big, "combiner keys: %lld keys, want %zu",
                  (long long)res.nkeys, k + (size_t)w.big);
            long long pairs = res.pairs_emitted, all = 0;
            MPI_Allreduce(&pairs, &all, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
            CHECK(all == (long long)n - !w.big, "combiner keys: %lld pairs, want %zu", all,
                  n - !w.big);
        }
        /* the short keys in the reference's order, the big one where it sorts */
        size_t pi = 0;
        int seen_big = 0;
        for (int64_t i = 0; rank_ == 0 && rc == MPMAP_OK && i < res.nkeys; i++) {
            size_t len;
            const char *got = mpmap_keyed_key(&res, i, &len);
            uint64_t v;
            memcpy(&v, mpmap_keyed_value(&res, i), 8);
            int ok;
            if (len == WORDS_BIG) {
                ok = w.big && !seen_big && got[0] == 'b' && got[WORDS_BIG - 1] == 'b' && v == big;
                seen_big = 1;
            } else {
                ok = pi < k && len == p[pi].len && !memcmp(got, p[pi].key, len) && v == p[pi].sum;
                pi++;
            }
            CHECK(ok, "combiner keys, budget %zu: key %lld differs", budgets[b], (long long)i);
            if (!ok)
                break;
        }
        mpmap_keyed_result_free(&res);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank_ == 0 && dir[0])
        rmdir(dir);
    free(p);
}

static void test_task_failure(void)
{
    tcase c = { .kind = CASE_ISUM, .ntasks = 100, .value_size = 8, .fail_task = 42 };
    mpmap_keyed_job job = make_job(&c);
    mpmap_config cfg;
    mpmap_config_init(&cfg);
    mpmap_keyed_result res;
    mpmap_report rep;
    int rc = mpmap_keyed_run(MPI_COMM_WORLD, &cfg, &job, &res, &rep);
    CHECK(rc == MPMAP_ETASK, "failure: got %s", mpmap_strerror(rc));
    CHECK(strstr(rep.message, "refuses") != NULL, "failure message: '%s'", rep.message);
    mpmap_keyed_result_free(&res);
}

static void test_invalid(void)
{
    tcase c = { .kind = CASE_ISUM, .ntasks = 10, .value_size = 8, .fail_task = -1 };
    mpmap_keyed_job job = make_job(&c);
    job.op = MPMAP_REDUCE_NONE;
    mpmap_config cfg;
    mpmap_config_init(&cfg);
    mpmap_keyed_result res;
    int rc = mpmap_keyed_run(MPI_COMM_WORLD, &cfg, &job, &res, NULL);
    CHECK(rc == MPMAP_EINVAL, "op NONE: got %s", mpmap_strerror(rc));
    job = make_job(&c);
    job.value_size = 12; /* not a whole number of int64 */
    rc = mpmap_keyed_run(MPI_COMM_WORLD, &cfg, &job, &res, NULL);
    CHECK(rc == MPMAP_EINVAL, "value_size 12: got %s", mpmap_strerror(rc));
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    tcase cases[] = {
        { .kind = CASE_DSUM, .ntasks = 300, .value_size = 8, .fail_task = -1 },
        { .kind = CASE_ISUM, .ntasks = 300, .value_size = 8, .fail_task = -1 },
        { .kind = CASE_DMINMAX, .ntasks = 300, .value_size = 8, .fail_task = -1 },
        { .kind = CASE_USER, .ntasks = 300, .value_size = 8, .fail_task = -1 },
        { .kind = CASE_VEC, .ntasks = 150, .value_size = 16, .fail_task = -1 },
        { .kind = CASE_ISUM, .ntasks = 0, .value_size = 8, .fail_task = -1 },
    };
    const char *names[] = { "double sum", "int64 sum",     "double min",
                            "user fold",  "double[2] sum", "no tasks" };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i], names[i]);
    test_budget();
    test_spill();
    test_combiner_keys();
    test_task_failure();
    test_invalid();

    /* The double sum really depends on the order (else the test proves little). */
    if (rank_ == 0) {
        double a = 0.1, b = 0.2, c2 = 0.3;
        CHECK((a + b) + c2 != a + (b + c2), "order-sensitive doubles");
    }
    int total = 0;
    MPI_Allreduce(&failures_, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank_ == 0)
        printf("mpi_keyed_test: %s (%d failed checks)\n", total ? "FAILED" : "ok", total);
    MPI_Finalize();
    return total ? 1 : 0;
}
