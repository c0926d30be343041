/* Unit tests of exec_runner: templates, running commands, timeouts, cleanup. */
#define _GNU_SOURCE /* waitpid, dirent in strict C mode */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exec_runner.h"

static char err[512];

static void assert_contains(const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail_msg("'%s' does not contain '%s'", text, needle);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int open_fd_count(void)
{
    DIR *dir = opendir("/proc/self/fd");
    assert_non_null(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(dir);
    return n;
}

/* No child of this process is left, reaped or not. */
static void assert_no_children(void)
{
    errno = 0;
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

/* 1 when pid no longer runs: absent, or a zombie waiting for init. */
static int process_dead(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

static void test_validate_accepts_known_and_rejects_unknown_names(void **state)
{
    (void)state;
    const char *names[] = { "a", "b_2" };
    assert_int_equal(exec_template_validate("./sim {a} --x={b_2} {a}", names, 2, err, sizeof err),
                     EXEC_OK);
    /* Braces that are not {NAME} stay literal. */
    assert_int_equal(
        exec_template_validate("awk '{print $1}' {} { a} {{c}", names, 2, err, sizeof err),
        EXEC_OK);
    assert_int_equal(exec_template_validate("./sim {a} {c}", names, 2, err, sizeof err),
                     EXEC_EINVAL);
    assert_contains(err, "--exec: unknown parameter '{c}'");
    assert_contains(err, "a, b_2");
    assert_int_equal(exec_template_validate("", names, 2, err, sizeof err), EXEC_EINVAL);
}

static void test_expand_substitutes_round_trip_values(void **state)
{
    (void)state;
    const char *names[] = { "a", "b" };
    const double values[] = { 0.1, -2.5e-300 };
    char *cmd = exec_template_expand("run {a} {b} {{a} {a}x", names, values, 2, err, sizeof err);
    assert_non_null(cmd);
    assert_string_equal(cmd, "run 0.1 -2.5e-300 {a} 0.1x");
    free(cmd);
    assert_null(exec_template_expand("run {z}", names, values, 2, err, sizeof err));
    assert_contains(err, "'{z}'");

    /* Shortest form when it round-trips, 17 digits when needed. */
    char buf[40];
    const double samples[] = { 1.0, 0.1, 1.0 / 3.0, 2.0 / 3.0, 1e22, 5e-324, -123456.789, 0.3 };
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        exec_format_double(samples[i], buf, sizeof buf);
        assert_true(strtod(buf, NULL) == samples[i]);
    }
    exec_format_double(0.1, buf, sizeof buf);
    assert_string_equal(buf, "0.1");
    exec_format_double(1.0 / 3.0, buf, sizeof buf);
    assert_string_equal(buf, "0.3333333333333333"); /* 16 digits suffice */
}

static void test_parse_numbers_is_strict(void **state)
{
    (void)state;
    double r[4];
    int n = -1;
    assert_int_equal(exec_parse_numbers(" 1.5\t2\n3e-4 \n", r, 4, &n, err, sizeof err), EXEC_OK);
    assert_int_equal(n, 3);
    assert_true(r[0] == 1.5 && r[1] == 2.0 && r[2] == 3e-4);
    assert_int_equal(exec_parse_numbers("1.5 abc", r, 4, &n, err, sizeof err), EXEC_EOUTPUT);
    assert_contains(err, "unparsable output: 'abc'");
    assert_int_equal(exec_parse_numbers("1 nan", r, 4, &n, err, sizeof err), EXEC_EOUTPUT);
    assert_int_equal(exec_parse_numbers("1,5", r, 4, &n, err, sizeof err), EXEC_EOUTPUT);
    assert_int_equal(exec_parse_numbers("  \n", r, 4, &n, err, sizeof err), EXEC_EOUTPUT);
    assert_contains(err, "empty output");
    assert_int_equal(exec_parse_numbers("1 2 3 4 5", r, 4, &n, err, sizeof err), EXEC_EOUTPUT);
    assert_int_equal(n, 5);
    assert_contains(err, "5 numbers");
    assert_int_equal(exec_parse_numbers("1 2 3 4 5 6", NULL, 0, &n, err, sizeof err), EXEC_OK);
    assert_int_equal(n, 6);
}

static void test_echo_output_is_parsed(void **state)
{
    (void)state;
    double r[8];
    int n = 0;
    exec_outcome o;
    assert_int_equal(exec_run("echo 1 2 3", 10.0, r, 8, &n, &o), EXEC_OK);
    assert_int_equal(n, 3);
    assert_true(r[0] == 1.0 && r[1] == 2.0 && r[2] == 3.0);
    assert_int_equal(o.status, EXEC_OK);
    assert_int_equal(o.exit_code, 0);
    assert_int_equal(o.signal, 0);
    assert_int_equal(o.timed_out, 0);
    assert_string_equal(o.reason, "");
    assert_no_children();
}

static void test_substituted_command_sees_the_values(void **state)
{
    (void)state;
    const char *names[] = { "a", "b" };
    const double values[] = { 0.1, 7.0 };
    char *cmd = exec_template_expand("echo {a}; echo {b} {a}", names, values, 2, err, sizeof err);
    assert_non_null(cmd);
    double r[4];
    int n = 0;
    assert_int_equal(exec_run(cmd, 0.0, r, 4, &n, NULL), EXEC_OK);
    free(cmd);
    assert_int_equal(n, 3);
    assert_true(r[0] == 0.1 && r[1] == 7.0 && r[2] == 0.1);
}

static void test_exit_code_and_stderr_tail_are_reported(void **state)
{
    (void)state;
    double r[4];
    int n = -1;
    exec_outcome o;
    assert_int_equal(exec_run("echo 1; echo oops >&2; exit 3", 10.0, r, 4, &n, &o), EXEC_EFAILED);
    assert_int_equal(o.status, EXEC_EFAILED);
    assert_int_equal(o.exit_code, 3);
    assert_int_equal(o.signal, 0);
    assert_string_equal(o.stderr_tail, "oops\n");
    assert_string_equal(o.reason, "exit code 3: oops");
    assert_no_children();
}

static void test_signal_death_is_reported(void **state)
{
    (void)state;
    exec_outcome o;
    assert_int_equal(exec_run("kill -9 $$", 10.0, NULL, 0, NULL, &o), EXEC_EFAILED);
    assert_int_equal(o.signal, SIGKILL);
    assert_int_equal(o.exit_code, -1);
    assert_contains(o.reason, "killed by signal 9 (SIGKILL)");
}

static void test_unparsable_output_fails(void **state)
{
    (void)state;
    double r[4];
    int n = 0;
    exec_outcome o;
    assert_int_equal(exec_run("echo abc", 10.0, r, 4, &n, &o), EXEC_EOUTPUT);
    assert_int_equal(o.exit_code, 0);
    assert_contains(o.reason, "unparsable output: 'abc'");
    assert_int_equal(exec_run("echo 1 2 3", 10.0, r, 2, &n, &o), EXEC_EOUTPUT);
    assert_int_equal(n, 3);
    assert_int_equal(exec_run("seq 1 1000", 10.0, NULL, 0, &n, &o), EXEC_OK);
    assert_int_equal(n, 1000);
}

static void test_stderr_keeps_only_the_tail(void **state)
{
    (void)state;
    exec_outcome o;
    /* 5000 'x' then a marker line: only the last 2047 bytes are kept. */
    assert_int_equal(exec_run("head -c 5000 /dev/zero | tr '\\0' x >&2; echo END >&2; echo 1", 10.0,
                              NULL, 0, NULL, &o),
                     EXEC_OK);
    size_t len = strlen(o.stderr_tail);
    assert_int_equal(len, EXEC_STDERR_TAIL - 1);
    assert_string_equal(o.stderr_tail + len - 4, "END\n");
    assert_int_equal(o.stderr_tail[0], 'x');
}

static void test_timeout_kills_the_process_group_quickly(void **state)
{
    (void)state;
    exec_outcome o;
    double t0 = now();
    assert_int_equal(exec_run("sleep 5", 0.3, NULL, 0, NULL, &o), EXEC_ETIMEOUT);
    double took = now() - t0;
    assert_true(took >= 0.3 && took < 2.0);
    assert_int_equal(o.timed_out, 1);
    assert_string_equal(o.reason, "timed out after 0.3 s");
    assert_no_children();

    /* A shell ignoring SIGTERM is killed after the grace period; a
     * background child holding the pipe dies with its group. */
    t0 = now();
    assert_int_equal(exec_run("trap '' TERM; sleep 5 & sleep 5; wait", 0.2, NULL, 0, NULL, &o),
                     EXEC_ETIMEOUT);
    took = now() - t0;
    assert_true(took < 0.2 + EXEC_KILL_GRACE + 1.0);
    assert_no_children();

    /* Closing stdout does not escape the timeout. */
    t0 = now();
    assert_int_equal(exec_run("exec >&- 2>&-; sleep 5", 0.3, NULL, 0, NULL, &o), EXEC_ETIMEOUT);
    assert_true(now() - t0 < 2.0);
}

static void test_leftover_background_processes_are_killed(void **state)
{
    (void)state;
    /* The background sleep does not hold our pipes; it must not outlive
     * the run: its pid, printed first, is gone afterwards. */
    double r[2];
    int n = 0;
    assert_int_equal(exec_run("sleep 30 >/dev/null 2>&1 & echo $!", 5.0, r, 2, &n, NULL), EXEC_OK);
    assert_int_equal(n, 1);
    pid_t straggler = (pid_t)r[0];
    int gone = 0;
    for (int i = 0; i < 200 && !gone; i++) {
        /* Reparented to init: dead once it is a zombie or reaped. */
        gone = process_dead(straggler);
        if (!gone) {
            struct timespec ts = { 0, 10000000 };
            nanosleep(&ts, NULL);
        }
    }
    assert_true(gone);
}

static void test_no_descriptor_or_zombie_leaks_after_many_runs(void **state)
{
    (void)state;
    int before = open_fd_count();
    double r[4];
    int n;
    for (int i = 0; i < 50; i++) {
        int rc =
            exec_run(i % 5 == 4 ? "echo bad" : "echo 1 2; echo note >&2", 10.0, r, 4, &n, NULL);
        assert_int_equal(rc, i % 5 == 4 ? EXEC_EOUTPUT : EXEC_OK);
    }
    assert_int_equal(open_fd_count(), before);
    assert_no_children();
}

static void test_command_does_not_inherit_descriptors(void **state)
{
    (void)state;
    /* An inheritable descriptor of the parent (like an MPI socket). */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "if [ -e /proc/self/fd/%d ]; then echo 1; else echo 0; fi", fds[1]);
    double r[1];
    int n = 0;
    assert_int_equal(exec_run(cmd, 5.0, r, 1, &n, NULL), EXEC_OK);
    assert_true(r[0] == 0.0);
    close(fds[0]);
    close(fds[1]);
}

static void on_alarm(int sig) { (void)sig; }

static void test_interrupting_signals_do_not_break_a_run(void **state)
{
    (void)state;
    /* A handler without SA_RESTART makes poll/read/wait fail with EINTR
     * every 2 ms while the command runs. */
    struct sigaction action, previous;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_alarm;
    sigemptyset(&action.sa_mask);
    assert_int_equal(sigaction(SIGALRM, &action, &previous), 0);
    struct itimerval timer = { { 0, 2000 }, { 0, 2000 } }, off = { { 0, 0 }, { 0, 0 } };
    assert_int_equal(setitimer(ITIMER_REAL, &timer, NULL), 0);
    double r[2];
    int n = 0;
    exec_outcome o;
    int rc = exec_run("sleep 0.2; echo 5", 5.0, r, 2, &n, &o);
    int rc_timeout = exec_run("sleep 5", 0.2, NULL, 0, NULL, NULL);
    assert_int_equal(setitimer(ITIMER_REAL, &off, NULL), 0);
    assert_int_equal(sigaction(SIGALRM, &previous, NULL), 0);
    assert_int_equal(rc, EXEC_OK);
    assert_int_equal(n, 1);
    assert_true(r[0] == 5.0);
    assert_int_equal(rc_timeout, EXEC_ETIMEOUT);
    assert_no_children();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_accepts_known_and_rejects_unknown_names),
        cmocka_unit_test(test_expand_substitutes_round_trip_values),
        cmocka_unit_test(test_parse_numbers_is_strict),
        cmocka_unit_test(test_echo_output_is_parsed),
        cmocka_unit_test(test_substituted_command_sees_the_values),
        cmocka_unit_test(test_exit_code_and_stderr_tail_are_reported),
        cmocka_unit_test(test_signal_death_is_reported),
        cmocka_unit_test(test_unparsable_output_fails),
        cmocka_unit_test(test_stderr_keeps_only_the_tail),
        cmocka_unit_test(test_timeout_kills_the_process_group_quickly),
        cmocka_unit_test(test_leftover_background_processes_are_killed),
        cmocka_unit_test(test_no_descriptor_or_zombie_leaks_after_many_runs),
        cmocka_unit_test(test_command_does_not_inherit_descriptors),
        cmocka_unit_test(test_interrupting_signals_do_not_break_a_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
