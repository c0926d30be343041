/*
 * task_list: the task file (--tasks: read by rank 0, sent to every rank,
 * split into lines and hashed) and the --template that turns a line into a
 * command. See task_list.h.
 */
#define _GNU_SOURCE
#include "task_list.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rank 0: reads the task file into s->text (NUL-separated lines kept). */
static int read_tasks(tl_list *s, char *msg, size_t msglen, size_t *len)
{
    FILE *f = fopen(s->tasks_path, "rb");
    if (!f) {
        snprintf(msg, msglen, "--tasks: cannot read '%s': %s", s->tasks_path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            snprintf(msg, msglen, "--tasks: '%s' does not fit in memory", s->tasks_path);
            return -1;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n < cap - 1)
            break;
        char *grown = realloc(buf, cap * 2);
        if (!grown)
            free(buf);
        buf = grown;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        snprintf(msg, msglen, "--tasks: cannot read '%s'", s->tasks_path);
        return -1;
    }
    buf[n] = '\0';
    if (memchr(buf, '\0', n)) {
        free(buf);
        snprintf(msg, msglen, "--tasks: '%s' holds a NUL byte (not a text file?)", s->tasks_path);
        return -1;
    }
    s->text = buf;
    *len = n;
    return 0;
}

/* Every rank: splits s->text into the task lines; the hash covers them. */
static int split_tasks(tl_list *s)
{
    int64_t cap = 0;
    for (char *c = s->text; *c; c++)
        cap += *c == '\n';
    s->lines = malloc((size_t)(cap + 1) * sizeof *s->lines);
    if (!s->lines)
        return -1;
    uint64_t h = 0xcbf29ce484222325ull;
    char *line = s->text;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        char *next = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] == '\r')
            line[--n] = '\0';
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p && *p != '#') {
            s->lines[s->ntasks++] = line;
            for (size_t i = 0; i <= n; i++) /* the NUL separates lines */
                h = (h ^ (unsigned char)line[i]) * 0x100000001b3ull;
        }
        line = next;
    }
    s->hash = h;
    return 0;
}

int tl_load_tasks(tl_list *s, char *msg, size_t msglen)
{
    MPI_Comm comm = mpmap_app_comm(s->app);
    int64_t head[2] = { 0, 0 }; /* error, length */
    size_t len = 0;
    if (s->rank == 0) {
        if (read_tasks(s, msg, msglen, &len) != 0)
            head[0] = 1;
        head[1] = (int64_t)len;
    }
    MPI_Bcast(head, 2, MPI_INT64_T, 0, comm);
    if (head[0])
        return 1;
    if (s->rank != 0) {
        s->text = malloc((size_t)head[1] + 1);
        if (!s->text) {
            snprintf(msg, msglen, "out of memory for the task list");
            return 2;
        }
        s->text[head[1]] = '\0';
    }
    for (int64_t off = 0; off < head[1]; off += 1 << 30) {
        int n = (int)(head[1] - off < (1 << 30) ? head[1] - off : (1 << 30));
        MPI_Bcast(s->text + off, n, MPI_CHAR, 0, comm);
    }
    if (split_tasks(s) != 0) {
        snprintf(msg, msglen, "out of memory for the task list");
        return 2;
    }
    if (s->ntasks == 0) {
        snprintf(msg, msglen, "--tasks: '%s' has no tasks (only empty lines and # comments)",
                 s->tasks_path);
        return 1;
    }
    return 0;
}

/* ---- --template ------------------------------------------------------------------ */

static const char *const placeholders[] = { "", ".", "/", "//", "/.", "#", NULL };

static int is_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '/' || c == '#' || c == '%';
}

/* At tmpl[i] == '{' (not "{{", not after '$'): the length of the candidate
 * "{...}" (its content only name characters), or 0 when it is shell text. */
static size_t candidate(const char *tmpl, size_t i)
{
    size_t j = i + 1;
    while (tmpl[j] && is_name_char(tmpl[j]))
        j++;
    return tmpl[j] == '}' ? j + 1 - i : 0;
}

static int known(const char *s, size_t n)
{
    for (int k = 0; placeholders[k]; k++)
        if (strlen(placeholders[k]) == n && strncmp(placeholders[k], s, n) == 0)
            return k;
    return -1;
}

int task_template_validate(const char *tmpl, char *err, size_t errlen)
{
    int found = 0;
    for (size_t i = 0; tmpl[i]; i++) {
        if (tmpl[i] != '{')
            continue;
        if (tmpl[i + 1] == '{') {
            i++;
            continue;
        }
        if (i > 0 && tmpl[i - 1] == '$')
            continue;
        size_t n = candidate(tmpl, i);
        if (n == 0)
            continue;
        if (known(tmpl + i + 1, n - 2) < 0) {
            snprintf(err, errlen,
                     "--template: unknown placeholder '%.*s' (known: {} {.} {/} {//} {/.} {#}; "
                     "write {{ for a literal {)",
                     (int)n, tmpl + i);
            return -1;
        }
        found = 1;
        i += n - 1;
    }
    if (!found) {
        snprintf(err, errlen,
                 "--template: no placeholder such as {} in '%s': every task would "
                 "run the same command",
                 tmpl);
        return -1;
    }
    return 0;
}

typedef struct sbuf {
    char *data;
    size_t len, cap;
    int failed;
} sbuf;

static void put(sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = 2 * b->cap + n + 64;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = 1;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static int plain_char(char c)
{
    return isalnum((unsigned char)c) || strchr("_./:=@%+,-", c) != NULL;
}

/* s[0..n) as one shell word. */
static void put_quoted(sbuf *b, const char *s, size_t n)
{
    int plain = n > 0;
    for (size_t i = 0; i < n; i++)
        plain &= plain_char(s[i]);
    if (plain) {
        put(b, s, n);
        return;
    }
    put(b, "'", 1);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\'')
            put(b, "'\\''", 4);
        else
            put(b, s + i, 1);
    }
    put(b, "'", 1);
}

static void put_part(sbuf *b, int which, const char *line)
{
    size_t n = strlen(line);
    const char *slash = strrchr(line, '/');
    const char *base = slash ? slash + 1 : line;
    size_t base_n = strlen(base);
    const char *dot = strrchr(base, '.');
    size_t base_noext = dot && dot != base ? (size_t)(dot - base) : base_n;
    switch (which) {
    case 0: put_quoted(b, line, n); break;                                  /* {} */
    case 1: put_quoted(b, line, (size_t)(base - line) + base_noext); break; /* {.} */
    case 2: put_quoted(b, base, base_n); break;                             /* {/} */
    case 3:                                                                 /* {//} */
        if (!slash)
            put(b, ".", 1);
        else
            put_quoted(b, line, slash == line ? 1 : (size_t)(slash - line));
        break;
    case 4: put_quoted(b, base, base_noext); break; /* {/.} */
    default: break;
    }
}

char *task_template_expand(const char *tmpl, const char *line, int64_t index)
{
    sbuf b = { NULL, 0, 0, 0 };
    put(&b, "", 0);
    for (size_t i = 0; tmpl[i]; i++) {
        if (tmpl[i] == '{' && tmpl[i + 1] == '{') {
            put(&b, "{", 1);
            i++;
            continue;
        }
        size_t n = tmpl[i] == '{' && !(i > 0 && tmpl[i - 1] == '$') ? candidate(tmpl, i) : 0;
        int which = n ? known(tmpl + i + 1, n - 2) : -1;
        if (which < 0) {
            put(&b, tmpl + i, 1);
            continue;
        }
        if (which == 5) {
            char num[32];
            int len = snprintf(num, sizeof num, "%lld", (long long)index);
            put(&b, num, (size_t)len);
        } else {
            put_part(&b, which, line);
        }
        i += n - 1;
    }
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}
