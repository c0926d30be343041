/* Tests of the apps' progress display (apps/progress.c): the bar fits every
 * terminal width, the log line, durations, the terminal width lookup and
 * the ending of a bar's open line. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "progress.h"

static void assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, haystack);
}

static mpmap_progress_info info_at(int64_t done, int64_t total)
{
    /* clang-format off */
    mpmap_progress_info info = { .done = done, .total = total, .restored = 0,
                                 .elapsed = 12.0, .rate = 1234.5, .eta = 187.0 };
    /* clang-format on */
    return info;
}

static int bar_cells(const char *line)
{
    const char *open = strchr(line, '['), *close = strchr(line, ']');
    if (!open || !close)
        return 0;
    return (int)(close - open - 1);
}

/* Every width from 1 to 300 columns: the line never reaches the last
 * column (the terminal would wrap), and what is shown is what fits. */
static void test_bar_fits_every_width(void **state)
{
    (void)state;
    mpmap_progress_info info = info_at(4500, 10000);
    for (int width = 1; width <= 300; width++) {
        char line[1024];
        size_t n = progress_format_bar(line, sizeof line, width, "kde_sweep", &info);
        assert_int_equal(n, strlen(line));
        if (width > 1 && (int)n > width - 1)
            fail_msg("width %d: %zu characters: \"%s\"", width, n, line);
        if (width == 1)
            assert_int_equal(n, 0);
        assert_null(strchr(line, '\n'));
        assert_null(strchr(line, '\r'));
        if (width >= 45)
            assert_contains(line, "45.0%");
    }
}

static void test_bar_at_50_columns(void **state)
{
    (void)state;
    mpmap_progress_info info = info_at(4500, 10000);
    char line[256];
    size_t n = progress_format_bar(line, sizeof line, 50, "kde_sweep", &info);
    assert_true(n <= 49);
    assert_contains(line, "4500/10000");
    assert_contains(line, "ETA 3m07s");
    assert_true(bar_cells(line) >= 10);
}

static void test_bar_wide_terminal(void **state)
{
    (void)state;
    mpmap_progress_info info = info_at(5, 10);
    char line[512];
    progress_format_bar(line, sizeof line, 200, "mc_pi", &info);
    assert_int_equal(strncmp(line, "mc_pi [", 7), 0);
    assert_int_equal(bar_cells(line), PROGRESS_BAR_MAX);
    assert_contains(line, " 50.0% 5/10");
    assert_contains(line, "1.23e+03 tasks/s");
    /* Half the cells filled. */
    assert_contains(line, "[###############...............]");
}

static void test_bar_drops_parts_when_narrow(void **state)
{
    (void)state;
    mpmap_progress_info info = info_at(1, 3);
    char line[256];
    progress_format_bar(line, sizeof line, 40, "param_sweep", &info);
    assert_null(strstr(line, "tasks/s")); /* the rate goes first */
    assert_contains(line, "1/3");
    assert_true(strlen(line) <= 39);
}

static void test_bar_small_buffer(void **state)
{
    (void)state;
    mpmap_progress_info info = info_at(1, 3);
    char line[8];
    size_t n = progress_format_bar(line, sizeof line, 80, "kde_sweep", &info);
    assert_int_equal(n, strlen(line));
    assert_true(n <= 7);
}

static void test_log_line(void **state)
{
    (void)state;
    mpmap_progress_info info = info_at(250, 1000);
    info.eta = -1;
    char line[256];
    progress_format_line(line, sizeof line, "knn_query", &info);
    assert_string_equal(line, "knn_query: progress 250/1000 tasks (25.0%), 1.23e+03 tasks/s, "
                              "elapsed 12s, ETA ?");
}

static void test_durations(void **state)
{
    (void)state;
    char buf[32];
    progress_format_duration(-1, buf, sizeof buf);
    assert_string_equal(buf, "?");
    progress_format_duration(5, buf, sizeof buf);
    assert_string_equal(buf, "5s");
    progress_format_duration(187, buf, sizeof buf);
    assert_string_equal(buf, "3m07s");
    progress_format_duration(7500, buf, sizeof buf);
    assert_string_equal(buf, "2h05m");
}

/* Without a terminal (ctest's stderr is a file or pipe): COLUMNS, then 80. */
static void test_terminal_width_fallbacks(void **state)
{
    (void)state;
    /* Neither stderr nor the parent's stderr may be a terminal here. */
    char link[64], target[256];
    snprintf(link, sizeof link, "/proc/%ld/fd/2", (long)getppid());
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n > 0) {
        target[n] = '\0';
        if (strncmp(target, "/dev/pts/", 9) == 0 || strncmp(target, "/dev/tty", 8) == 0)
            skip(); /* run by hand from a terminal */
    }
    fflush(stderr);
    int saved = dup(STDERR_FILENO), null_fd = open("/dev/null", O_WRONLY);
    assert_true(saved >= 0 && null_fd >= 0);
    dup2(null_fd, STDERR_FILENO);
    setenv("COLUMNS", "50", 1);
    int from_env = progress_terminal_width();
    setenv("COLUMNS", "junk", 1);
    int from_junk = progress_terminal_width();
    unsetenv("COLUMNS");
    int from_nothing = progress_terminal_width();
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(null_fd);
    assert_int_equal(from_env, 50);
    assert_int_equal(from_junk, PROGRESS_DEFAULT_WIDTH);
    assert_int_equal(from_nothing, PROGRESS_DEFAULT_WIDTH);
}

/* The bar's line is ended before another message, exactly once. */
static void test_end_line(void **state)
{
    (void)state;
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    assert_non_null(out);
    progress_stream stream = { out, false };
    setenv("COLUMNS", "60", 1);
    int width = progress_terminal_width(); /* 60 unless run from a terminal */
    mpmap_progress_info info = info_at(3, 10);
    progress_end_line(&stream); /* nothing open: nothing written */
    progress_show(&stream, "kde_sweep", &info, true);
    progress_end_line(&stream);
    progress_end_line(&stream);
    fputs("kde_sweep: interrupted: 3/10 tasks done; rerun with --resume\n", out);
    info.done = 10;
    progress_show(&stream, "kde_sweep", &info, true); /* done: ends its own line */
    progress_end_line(&stream);
    fclose(out);
    unsetenv("COLUMNS");
    assert_int_equal(text[0], '\r');
    const char *msg = strstr(text, "kde_sweep: interrupted");
    assert_non_null(msg);
    assert_int_equal(msg[-1], '\n');
    /* Bar, newline, message, bar, newline: three newlines in all. */
    int newlines = 0;
    for (const char *p = text; *p; p++)
        newlines += *p == '\n';
    assert_int_equal(newlines, 3);
    /* Every drawn line fits the width. */
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (line[0] == '\r')
            assert_true((int)len - 1 <= width - 1);
        line = end ? end + 1 : line + len;
    }
    free(text);
}

/* Log lines never leave a line open. */
static void test_log_lines_show(void **state)
{
    (void)state;
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    assert_non_null(out);
    progress_stream stream = { out, false };
    mpmap_progress_info info = info_at(3, 10);
    progress_show(&stream, "mc_pi", &info, false);
    progress_end_line(&stream);
    fclose(out);
    assert_int_equal(strncmp(text, "mc_pi: progress 3/10 tasks (30.0%)", 34), 0);
    assert_int_equal(text[strlen(text) - 1], '\n');
    assert_null(strchr(text, '\r'));
    assert_null(strstr(text, "\n\n"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bar_fits_every_width),
        cmocka_unit_test(test_bar_at_50_columns),
        cmocka_unit_test(test_bar_wide_terminal),
        cmocka_unit_test(test_bar_drops_parts_when_narrow),
        cmocka_unit_test(test_bar_small_buffer),
        cmocka_unit_test(test_log_line),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_end_line),
        cmocka_unit_test(test_log_lines_show),
        cmocka_unit_test(test_terminal_width_fallbacks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
