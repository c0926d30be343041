/*
 * exec_runner: template expansion and the child-process runner behind
 * param_sweep --exec. See exec_runner.h for the contract.
 */
#define _GNU_SOURCE /* sigabbrev_np */

#include "exec_runner.h"
#include "proc_run.h"

#include <ctype.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest piece of output or template quoted back in a message. */
#define QUOTE_MAX 40

/* ---- templates ------------------------------------------------------- */

static int is_name_start(char c) { return isalpha((unsigned char)c) || c == '_'; }

static int is_name_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

/*
 * If text points at "{NAME}", returns the length of NAME (text + 1 is its
 * start); else 0. "{{" is handled by the callers before this.
 */
static size_t placeholder_length(const char *text)
{
    if (text[0] != '{' || !is_name_start(text[1]))
        return 0;
    size_t n = 1;
    while (is_name_char(text[1 + n]))
        n++;
    return text[1 + n] == '}' ? n : 0;
}

static int lookup(const char *name, size_t len, const char *const *names, int nnames)
{
    for (int i = 0; i < nnames; i++)
        if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
            return i;
    return -1;
}

static void unknown_placeholder(const char *name, size_t len, const char *const *names, int nnames,
                                char *err, size_t errlen)
{
    char known[256] = "";
    size_t used = 0;
    for (int i = 0; i < nnames && used < sizeof known; i++) {
        int n = snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", names[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    proc_message(err, errlen, "--exec: unknown parameter '{%.*s}' in the command (parameters: %s)",
                 (int)(len > 64 ? 64 : len), name, nnames > 0 ? known : "none");
}

int exec_template_validate(const char *template_text, const char *const *names, int nnames,
                           char *err, size_t errlen)
{
    if (err && errlen > 0)
        err[0] = '\0';
    if (!template_text || template_text[0] == '\0') {
        proc_message(err, errlen, "--exec: empty command");
        return EXEC_EINVAL;
    }
    for (const char *p = template_text; *p;) {
        if (p[0] == '{' && p[1] == '{') {
            p += 2;
            continue;
        }
        size_t len = placeholder_length(p);
        if (len == 0) {
            p++;
            continue;
        }
        if (lookup(p + 1, len, names, nnames) < 0) {
            unknown_placeholder(p + 1, len, names, nnames, err, errlen);
            return EXEC_EINVAL;
        }
        p += len + 2;
    }
    return EXEC_OK;
}

void exec_format_double(double value, char *buf, size_t buflen)
{
    /* Shortest of the three that reads back exactly: %.17g always does. */
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, buflen, "%.*g", digits, value);
        if (digits == 17 || strtod(buf, NULL) == value)
            return;
    }
}

typedef struct text_buffer {
    char *data;
    size_t len;
    size_t cap;
} text_buffer;

static int buffer_append(text_buffer *b, const char *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown)
            return EXEC_ENOMEM;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return EXEC_OK;
}

char *exec_template_expand(const char *template_text, const char *const *names,
                           const double *values, int nnames, char *err, size_t errlen)
{
    if (exec_template_validate(template_text, names, nnames, err, errlen) != EXEC_OK)
        return NULL;
    text_buffer out = { NULL, 0, 0 };
    int rc = EXEC_OK;
    for (const char *p = template_text; *p && rc == EXEC_OK;) {
        if (p[0] == '{' && p[1] == '{') {
            rc = buffer_append(&out, "{", 1);
            p += 2;
            continue;
        }
        size_t len = placeholder_length(p);
        if (len == 0) {
            rc = buffer_append(&out, p, 1);
            p++;
            continue;
        }
        char number[40];
        exec_format_double(values[lookup(p + 1, len, names, nnames)], number, sizeof number);
        rc = buffer_append(&out, number, strlen(number));
        p += len + 2;
    }
    if (rc != EXEC_OK) {
        free(out.data);
        proc_message(err, errlen, "--exec: out of memory expanding the command");
        return NULL;
    }
    return out.data;
}

/* ---- output parsing -------------------------------------------------- */

int exec_parse_numbers(const char *text, double *record, int record_capacity, int *record_count,
                       char *err, size_t errlen)
{
    if (err && errlen > 0)
        err[0] = '\0';
    int count = 0;
    const char *p = text;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        const char *token = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        size_t len = (size_t)(p - token);
        char copy[64];
        char *end = NULL;
        double value = NAN;
        if (len < sizeof copy) {
            memcpy(copy, token, len);
            copy[len] = '\0';
            value = strtod(copy, &end);
        }
        if (len >= sizeof copy || end != copy + len || !isfinite(value)) {
            if (record_count)
                *record_count = count;
            proc_message(err, errlen, "unparsable output: '%.*s' (number %d)",
                         (int)(len > QUOTE_MAX ? QUOTE_MAX : len), token, count + 1);
            return EXEC_EOUTPUT;
        }
        if (record && count < record_capacity)
            record[count] = value;
        if (count == INT32_MAX) {
            proc_message(err, errlen, "output has more than %d numbers", INT32_MAX);
            return EXEC_EOUTPUT;
        }
        count++;
    }
    if (record_count)
        *record_count = count;
    if (count == 0) {
        proc_message(err, errlen, "empty output (expected whitespace-separated numbers)");
        return EXEC_EOUTPUT;
    }
    if (record && count > record_capacity) {
        proc_message(err, errlen, "output has %d numbers, more than the %d expected", count,
                     record_capacity);
        return EXEC_EOUTPUT;
    }
    return EXEC_OK;
}

/* ---- running (proc_run.c) ------------------------------------------- */

typedef struct exec_sink_state {
    text_buffer out;
    char *tail;
    size_t tail_len;
    int failure; /* EOUTPUT / ENOMEM found while reading */
} exec_sink_state;

/* stdout into a buffer (up to EXEC_STDOUT_MAX bytes), stderr's tail. */
static int exec_sink(int stream, const char *data, size_t n, void *ctx, char *reason,
                     size_t reasonlen)
{
    exec_sink_state *st = ctx;
    if (stream == 2) {
        proc_tail_append(st->tail, EXEC_STDERR_TAIL - 1, &st->tail_len, data, n);
    } else if (st->out.len + n > EXEC_STDOUT_MAX) {
        st->failure = EXEC_EOUTPUT;
        proc_message(reason, reasonlen, "output longer than %d bytes", EXEC_STDOUT_MAX);
    } else if (buffer_append(&st->out, data, n) != EXEC_OK) {
        st->failure = EXEC_ENOMEM;
        proc_message(reason, reasonlen, "out of memory for output");
    }
    return st->failure;
}

int exec_run(const char *command, double timeout, double *record, int record_capacity,
             int *record_count, exec_outcome *outcome)
{
    exec_outcome local;
    if (!outcome)
        outcome = &local;
    outcome->status = EXEC_OK;
    outcome->exit_code = -1;
    outcome->signal = 0;
    outcome->timed_out = 0;
    outcome->elapsed = 0.0;
    outcome->stderr_tail[0] = '\0';
    outcome->reason[0] = '\0';
    if (record_count)
        *record_count = 0;
    if (!command || isnan(timeout) || (record && record_capacity < 0)) {
        proc_message(outcome->reason, sizeof outcome->reason, "invalid arguments");
        return outcome->status = EXEC_EINVAL;
    }

    exec_sink_state st = { { NULL, 0, 0 }, outcome->stderr_tail, 0, EXEC_OK };
    proc_result pr;
    int ran = proc_run(command, timeout, EXEC_KILL_GRACE, exec_sink, &st, &pr);
    outcome->elapsed = pr.elapsed;
    if (ran != 0) {
        free(st.out.data);
        proc_message(outcome->reason, sizeof outcome->reason, "%s", pr.reason);
        return outcome->status = EXEC_ESYSTEM;
    }
    outcome->exit_code = pr.exit_code;
    outcome->signal = pr.signal;
    outcome->timed_out = pr.timed_out;
    char line[120];
    proc_last_line(outcome->stderr_tail, strlen(outcome->stderr_tail), line, sizeof line);

    int rc;
    text_buffer out = st.out;
    if (pr.timed_out) {
        rc = EXEC_ETIMEOUT;
        proc_message(outcome->reason, sizeof outcome->reason, "timed out after %g s", timeout);
    } else if (pr.failed) {
        rc = st.failure != EXEC_OK ? st.failure : EXEC_ESYSTEM;
        proc_message(outcome->reason, sizeof outcome->reason, "%s", pr.reason);
    } else if (outcome->signal != 0) {
        rc = EXEC_EFAILED;
        const char *abbrev = sigabbrev_np(outcome->signal);
        proc_message(outcome->reason, sizeof outcome->reason, "killed by signal %d (SIG%s)%s%s",
                     outcome->signal, abbrev ? abbrev : "?", line[0] ? ": " : "", line);
    } else if (outcome->exit_code != 0) {
        rc = EXEC_EFAILED;
        proc_message(outcome->reason, sizeof outcome->reason, "exit code %d%s%s",
                     outcome->exit_code, line[0] ? ": " : "", line);
    } else if (out.len != strlen(out.data ? out.data : "")) {
        rc = EXEC_EOUTPUT;
        proc_message(outcome->reason, sizeof outcome->reason, "unparsable output: NUL byte");
    } else {
        rc = exec_parse_numbers(out.data ? out.data : "", record, record_capacity, record_count,
                                outcome->reason, sizeof outcome->reason);
    }
    free(out.data);
    return outcome->status = (exec_status)rc;
}
