/* Tests of the output lifecycle (src/output.c): the lock, the decision
 * against what is on disk, the fingerprint in the file and its comparison,
 * commit and abort. No MPI. */
#define _GNU_SOURCE /* flock */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "scratch_dir.h"
#include "output.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fixture {
    scratch_dir scratch;
    char out[128]; /* the output under test, DIR/o.h5 */
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx || scratch_make(&fx->scratch, "test_output") != 0) {
        free(fx);
        return -1;
    }
    scratch_path(&fx->scratch, "o.h5", fx->out, sizeof fx->out);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    scratch_remove(&fx->scratch);
    free(fx);
    return 0;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void touch(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

static int diff(const char *was, const char *now, int flags_only, char *why, size_t len)
{
    return mpmap_output_fingerprint_diff(was, strlen(was), now, flags_only, why, len);
}

static void test_fingerprint_diff_names_the_first_difference(void **state)
{
    (void)state;
    char why[256];
    assert_int_equal(
        diff("mc_pi --samples=10 seed=1", "mc_pi --samples=10 seed=1", 0, why, sizeof why), 0);
    assert_int_equal(
        diff("mc_pi --samples=10 --tasks=5", "mc_pi --samples=20 --tasks=6", 0, why, sizeof why),
        1);
    assert_string_equal(why, "--samples: was 10, now 20");
    assert_int_equal(diff("mc_pi --samples=10", "mc_pi --samples=10 --seed=3", 0, why, sizeof why),
                     1);
    assert_string_equal(why, "--seed: given now (3), not before");
    assert_int_equal(diff("mc_pi --samples=10 --force", "mc_pi --samples=10", 0, why, sizeof why),
                     1);
    assert_string_equal(why, "--force: given before (set), not now");
    /* Same flags, other data: the hash at the end is what differs. */
    const char *a = "kde_sweep --input=/a/very/long/path/that/pushes/everything/past/a/hundred/"
                    "characters/in.h5:/x --widths=0.10000000000000001:2:400 "
                    "data=20000x3:0123456789abcdef";
    const char *b = "kde_sweep --input=/a/very/long/path/that/pushes/everything/past/a/hundred/"
                    "characters/in.h5:/x --widths=0.10000000000000001:2:400 "
                    "data=20000x3:fedcba9876543210";
    assert_int_equal(diff(a, b, 0, why, sizeof why), 1);
    assert_string_equal(why, "input data changed");
    assert_int_equal(diff(a, b, 1, why, sizeof why), 0); /* flags only: the same */
    assert_int_equal(diff("knn_query --points=5 queries=3x2:00",
                          "knn_query --points=5 queries=3x2:01", 0, why, sizeof why),
                     1);
    assert_string_equal(why, "input data changed");
    assert_int_equal(diff("mc_pi --samples=10", "kde_sweep --samples=10", 0, why, sizeof why), 1);
    assert_string_equal(why, "written by mc_pi, not kde_sweep");
    /* A repeated flag is compared occurrence by occurrence. */
    assert_int_equal(
        diff("kde_sweep --point=1 --point=2", "kde_sweep --point=1 --point=3", 0, why, sizeof why),
        1);
    assert_string_equal(why, "--point: was 2, now 3");
}

static void test_lock_refuses_a_second_owner_and_names_the_first(void **state)
{
    fixture *fx = *state;
    char err[512], lock[160];
    mpmap_output *first = NULL, *second = NULL;
    assert_int_equal(mpmap_output_open(fx->out, &first, err, sizeof err), 0);
    snprintf(lock, sizeof lock, "%s.lock", fx->out);
    assert_string_equal(mpmap_output_lock_path(first), lock);
    assert_true(exists(lock));
    /* Another open file description conflicts like another process would. */
    assert_int_equal(mpmap_output_open(fx->out, &second, err, sizeof err), MPMAP_EIO);
    assert_null(second);
    char pid[32];
    snprintf(pid, sizeof pid, "pid %ld on host ", (long)getpid());
    assert_non_null(strstr(err, "is in use by another run"));
    assert_non_null(strstr(err, pid));
    mpmap_output_close(first);
    assert_false(exists(lock));
    /* Free again once released. */
    assert_int_equal(mpmap_output_open(fx->out, &second, err, sizeof err), 0);
    mpmap_output_close(second);
}

static void test_stale_lock_file_is_taken_over(void **state)
{
    fixture *fx = *state;
    char err[512], lock[160];
    snprintf(lock, sizeof lock, "%s.lock", fx->out);
    touch(lock, "pid 999999 on host gone\n");
    mpmap_output *o = NULL;
    assert_int_equal(mpmap_output_open(fx->out, &o, err, sizeof err), 0);
    char text[128] = "";
    FILE *fp = fopen(lock, "r");
    assert_non_null(fp);
    assert_non_null(fgets(text, sizeof text, fp));
    fclose(fp);
    char pid[32];
    snprintf(pid, sizeof pid, "pid %ld ", (long)getpid());
    assert_non_null(strstr(text, pid));
    mpmap_output_close(o);
}

static void test_decide_follows_the_flags_and_the_disk(void **state)
{
    fixture *fx = *state;
    char err[512], ckpt[160];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", fx->out);
    mpmap_output *o = NULL;
    mpmap_output_state st;
    assert_int_equal(mpmap_output_open(fx->out, &o, err, sizeof err), 0);
    /* Nothing there. */
    assert_int_equal(mpmap_output_decide(o, 0, 0, "app", 1, &st, err, sizeof err), 0);
    assert_int_equal(st, MPMAP_OUTPUT_FRESH);
    assert_int_equal(mpmap_output_decide(o, 0, 1, "app", 1, &st, err, sizeof err), MPMAP_EINVAL);
    assert_non_null(strstr(err, "no checkpoint"));
    /* A checkpoint alone. */
    touch(ckpt, "");
    assert_int_equal(mpmap_output_decide(o, 0, 0, "app", 1, &st, err, sizeof err), MPMAP_EINVAL);
    assert_int_equal(mpmap_output_decide(o, 0, 1, "app", 1, &st, err, sizeof err), 0);
    assert_int_equal(st, MPMAP_OUTPUT_RESUME);
    assert_int_equal(mpmap_output_decide(o, 1, 0, "app", 1, &st, err, sizeof err), 0);
    assert_int_equal(st, MPMAP_OUTPUT_FRESH);
    /* An old output and a checkpoint: --resume continues. */
    touch(fx->out, "old");
    assert_int_equal(mpmap_output_decide(o, 0, 1, "app", 1, &st, err, sizeof err), 0);
    assert_int_equal(st, MPMAP_OUTPUT_RESUME);
    assert_int_equal(mpmap_output_decide(o, 0, 0, "app", 1, &st, err, sizeof err), MPMAP_EIO);
    /* An output alone that is not ours: --resume cannot vouch for it. */
    unlink(ckpt);
    assert_int_equal(mpmap_output_decide(o, 0, 1, "app", 1, &st, err, sizeof err), MPMAP_EINVAL);
    assert_non_null(strstr(err, "--force"));
    mpmap_output_close(o);
}

static void test_committed_output_is_complete_for_the_same_fingerprint(void **state)
{
    fixture *fx = *state;
    char err[512], ckpt[160];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", fx->out);
    const char *fp = "mc_pi --samples=10 samples=10 tasks=1 seed=1";
    mpmap_output *o = NULL;
    mpmap_output_state st;
    assert_int_equal(mpmap_output_open(fx->out, &o, err, sizeof err), 0);
    assert_int_equal(mpmap_output_decide(o, 0, 0, fp, 1, &st, err, sizeof err), 0);
    mpmap_h5 *f = NULL;
    assert_int_equal(mpmap_output_create(o, fp, &f, err, sizeof err), 0);
    touch(ckpt, "x");
    assert_int_equal(mpmap_output_commit(o, f, err, sizeof err), 0);
    assert_true(exists(fx->out));
    assert_false(exists(ckpt)); /* the checkpoint has served */
    assert_int_equal(mpmap_output_decide(o, 0, 1, fp, 1, &st, err, sizeof err), 0);
    assert_int_equal(st, MPMAP_OUTPUT_COMPLETE);
    assert_int_equal(mpmap_output_decide(o, 0, 1, "mc_pi --samples=20 samples=20 tasks=1 seed=1", 1,
                                         &st, err, sizeof err),
                     MPMAP_EINVAL);
    assert_non_null(strstr(err, "--samples: was 10, now 20"));
    /* Without --resume an existing output still needs --force. */
    assert_int_equal(mpmap_output_decide(o, 0, 0, fp, 1, &st, err, sizeof err), MPMAP_EIO);
    /* Abort leaves the committed file alone. */
    assert_int_equal(mpmap_output_decide(o, 1, 0, fp, 1, &st, err, sizeof err), 0);
    assert_int_equal(mpmap_output_create(o, fp, &f, err, sizeof err), 0);
    mpmap_output_abort(o, f);
    assert_true(exists(fx->out));
    char partial[160];
    snprintf(partial, sizeof partial, "%s.partial", fx->out);
    assert_false(exists(partial));
    mpmap_output_close(o);
}

static void test_checkpoint_of_another_run_is_named(void **state)
{
    fixture *fx = *state;
    char err[512], ckpt[160];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", fx->out);
    /* A checkpoint header as src/checkpoint.h describes it. */
    const char *stored = "kde_sweep --widths=0:1:10 data=100x2:00000000000000aa";
    uint32_t version = 1, flen = (uint32_t)strlen(stored);
    int64_t ntasks = 10;
    uint64_t record = 8;
    FILE *fp = fopen(ckpt, "wb");
    assert_non_null(fp);
    fwrite("MPMAPCK1", 1, 8, fp);
    fwrite(&version, 4, 1, fp);
    fwrite(&flen, 4, 1, fp);
    fwrite(&ntasks, 8, 1, fp);
    fwrite(&record, 8, 1, fp);
    fwrite(stored, 1, flen, fp);
    fclose(fp);
    mpmap_output *o = NULL;
    mpmap_output_state st;
    assert_int_equal(mpmap_output_open(fx->out, &o, err, sizeof err), 0);
    assert_int_equal(mpmap_output_decide(o, 0, 1, stored, 1, &st, err, sizeof err), 0);
    assert_int_equal(st, MPMAP_OUTPUT_RESUME);
    assert_int_equal(mpmap_output_decide(o, 0, 1,
                                         "kde_sweep --widths=0:1:10 data=100x2:00000000000000bb", 1,
                                         &st, err, sizeof err),
                     MPMAP_EINVAL);
    assert_non_null(strstr(err, "belongs to a different run (input data changed)"));
    assert_int_equal(
        mpmap_output_decide(o, 0, 1, "kde_sweep --widths=0:1:11", 0, &st, err, sizeof err),
        MPMAP_EINVAL);
    assert_non_null(strstr(err, "--widths: was 0:1:10, now 0:1:11"));
    mpmap_output_close(o);
}

static void test_failure_messages_are_plain(void **state)
{
    (void)state;
    char buf[256];
    mpmap_output_describe_failure("o.h5", ENOSPC, "ignored", buf, sizeof buf);
    assert_string_equal(buf, "no space left on device while writing 'o.h5'");
    mpmap_output_describe_failure("o.h5", EDQUOT, NULL, buf, sizeof buf);
    assert_string_equal(buf, "disk quota exceeded while writing 'o.h5'");
    mpmap_output_describe_failure("o.h5", 0, "bad dataset", buf, sizeof buf);
    assert_string_equal(buf, "cannot write 'o.h5': bad dataset");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fingerprint_diff_names_the_first_difference),
        cmocka_unit_test_setup_teardown(test_lock_refuses_a_second_owner_and_names_the_first, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stale_lock_file_is_taken_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decide_follows_the_flags_and_the_disk, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_committed_output_is_complete_for_the_same_fingerprint,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_of_another_run_is_named, setup, teardown),
        cmocka_unit_test(test_failure_messages_are_plain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
