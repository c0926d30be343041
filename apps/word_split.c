/*
 * word_count's input side (word_split.h): the inputs, the byte-range tasks
 * and the tokenizer.
 */
#define _POSIX_C_SOURCE 200809L
#include "word_split.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bytes read at a time past a task's end to finish its last word. */
#define WC_EXTEND_BYTES ((size_t)64 << 10)

/* The separators, as a table: the scan tests one load per byte. */
static const unsigned char wc_space[256] = {
    [0] = 1, ['\t'] = 1, ['\n'] = 1, ['\v'] = 1, ['\f'] = 1, ['\r'] = 1, [' '] = 1
};

static inline int is_space(unsigned char c) { return wc_space[c]; }

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* The separators among 8 bytes: the high bit of each byte that is one
 * (exact: no carry crosses a byte). */
static inline uint64_t space_mask(uint64_t x)
{
    const uint64_t lo7 = 0x7f7f7f7f7f7f7f7full, hi = 0x8080808080808080ull;
    uint64_t t = x ^ 0x2020202020202020ull;
    uint64_t blank = ~(((t & lo7) + lo7) | t) & hi; /* == ' ' */
    uint64_t nul = ~(((x & lo7) + lo7) | x) & hi;   /* == 0 */
    uint64_t lt14 = ~((x & lo7) + 0x7272727272727272ull) & ~x & hi;
    uint64_t lt9 = ~((x & lo7) + 0x7777777777777777ull) & ~x & hi;
    return blank | nul | (lt14 & ~lt9); /* \t \n \v \f \r: 9..13 */
}
#endif

/* The end of the word at b[i] (the first separator, or n): 8 bytes at a
 * time where it can, as most words fit in one load. */
static inline size_t word_end(const unsigned char *b, size_t i, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, b + i, 8);
        uint64_t m = space_mask(x);
        if (m)
            return i + (size_t)__builtin_ctzll(m) / 8;
    }
#endif
    while (i < n && !is_space(b[i]))
        i++;
    return i;
}

/* ---- the inputs ----------------------------------------------------------- */

typedef struct wc_list {
    char **path;
    int64_t *size;
    size_t n, cap;
} wc_list;

static int list_add(wc_list *l, const char *path, int64_t size)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **p = realloc(l->path, cap * sizeof *p);
        int64_t *s = p ? realloc(l->size, cap * sizeof *s) : NULL;
        if (p)
            l->path = p;
        if (!p || !s)
            return -1;
        l->size = s;
        l->cap = cap;
    }
    if (!(l->path[l->n] = strdup(path)))
        return -1;
    l->size[l->n++] = size;
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds path (a file, or every regular file under a directory, sorted).
 * Returns 0, or -1 with why. depth guards against symlink loops. */
static int add_input(wc_list *l, const char *path, int depth, char *why, size_t whylen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(why, whylen, "cannot read '%s': %s", path, strerror(errno));
        return -1;
    }
    if (S_ISREG(st.st_mode)) {
        if (access(path, R_OK) != 0) {
            snprintf(why, whylen, "cannot read '%s': %s", path, strerror(errno));
            return -1;
        }
        if (list_add(l, path, (int64_t)st.st_size) != 0) {
            snprintf(why, whylen, "out of memory listing the inputs");
            return -1;
        }
        return 0;
    }
    if (!S_ISDIR(st.st_mode))
        return depth == 0 ? (snprintf(why, whylen, "'%s' is not a file or directory", path), -1)
                          : 0;
    if (depth > 64) {
        snprintf(why, whylen, "'%s': directories nested too deep (a symlink loop?)", path);
        return -1;
    }
    DIR *d = opendir(path);
    if (!d) {
        snprintf(why, whylen, "cannot read directory '%s': %s", path, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = realloc(names, cap * sizeof *p);
            if (!p) {
                rc = -1;
                break;
            }
            names = p;
        }
        size_t len = strlen(path) + strlen(de->d_name) + 2;
        if (!(names[n] = malloc(len))) {
            rc = -1;
            break;
        }
        snprintf(names[n++], len, "%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/",
                 de->d_name);
    }
    closedir(d);
    if (rc != 0)
        snprintf(why, whylen, "out of memory listing '%s'", path);
    if (rc == 0)
        qsort(names, n, sizeof *names, cmp_name);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0)
            rc = add_input(l, names[i], depth + 1, why, whylen);
        free(names[i]);
    }
    free(names);
    return rc;
}

/*
 * Rank 0 lists the inputs and broadcasts them, so every rank sees one list
 * (paths NUL-separated, then the sizes). Collective; 0 or an exit code.
 */
int wc_split_inputs(mpmap_app *app, const mpmap_cli_strings *inputs, wc_split *s)
{
    MPI_Comm comm = mpmap_app_comm(app);
    int rank = mpmap_app_rank(app);
    wc_list l = { 0 };
    char why[1024] = "";
    long long hdr[2] = { 0, 0 }; /* files, bytes of paths; -1 = failed */
    char *text = NULL;
    if (rank == 0) {
        int rc = 0;
        for (size_t i = 0; rc == 0 && i < inputs->count; i++)
            rc = add_input(&l, inputs->items[i], 0, why, sizeof why);
        if (rc == 0 && l.n > (size_t)INT32_MAX) {
            snprintf(why, sizeof why, "too many input files (%zu)", l.n);
            rc = -1;
        }
        size_t bytes = 0;
        for (size_t i = 0; rc == 0 && i < l.n; i++)
            bytes += strlen(l.path[i]) + 1;
        if (rc == 0 && bytes > (size_t)1 << 30) {
            snprintf(why, sizeof why, "the input paths take more than 1 GiB");
            rc = -1;
        }
        if (rc == 0 && !(text = malloc(bytes + 1))) {
            snprintf(why, sizeof why, "out of memory listing the inputs");
            rc = -1;
        }
        if (rc == 0) {
            size_t off = 0;
            for (size_t i = 0; i < l.n; i++) {
                size_t len = strlen(l.path[i]) + 1;
                memcpy(text + off, l.path[i], len);
                off += len;
            }
            hdr[0] = (long long)l.n;
            hdr[1] = (long long)bytes;
        } else {
            hdr[0] = -1;
        }
    }
    MPI_Bcast(hdr, 2, MPI_LONG_LONG, 0, comm);
    int code = 0;
    if (hdr[0] < 0) {
        code = rank == 0 ? mpmap_app_usage(app, "--input: %s", why) : MPMAP_APP_USAGE;
    } else {
        s->nfiles = (int32_t)hdr[0];
        s->files = calloc((size_t)s->nfiles + 1, sizeof *s->files);
        s->file_size = malloc(((size_t)s->nfiles + 1) * sizeof *s->file_size);
        if (rank != 0)
            text = malloc((size_t)hdr[1] + 1);
        int ok = s->files && s->file_size && text, all = 0;
        MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm);
        if (!all) {
            code = mpmap_app_failure(app, "out of memory for the list of inputs");
        } else {
            MPI_Bcast(text, (int)hdr[1], MPI_CHAR, 0, comm);
            if (rank == 0)
                memcpy(s->file_size, l.size, l.n * sizeof *l.size);
            MPI_Bcast(s->file_size, s->nfiles, MPI_INT64_T, 0, comm);
            size_t off = 0;
            for (int32_t i = 0; i < s->nfiles && code == 0; i++) {
                if (!(s->files[i] = strdup(text + off)))
                    code = mpmap_app_failure(app, "out of memory for the list of inputs");
                off += strlen(text + off) + 1;
                s->total_bytes += s->file_size[i];
            }
        }
    }
    free(text);
    for (size_t i = 0; i < l.n; i++)
        free(l.path[i]);
    free(l.path);
    free(l.size);
    return code;
}

/* The count's tasks: every non-empty file in pieces of task_bytes. */
int wc_split_tasks(mpmap_app *app, wc_split *s, int64_t task_bytes)
{
    int64_t n = 0;
    for (int32_t f = 0; f < s->nfiles; f++)
        n += (s->file_size[f] + task_bytes - 1) / task_bytes;
    s->tasks = malloc(((size_t)n + 1) * sizeof *s->tasks);
    if (!s->tasks)
        return mpmap_app_failure(app, "out of memory for %lld tasks", (long long)n);
    int64_t t = 0;
    for (int32_t f = 0; f < s->nfiles; f++)
        for (int64_t b = 0; b < s->file_size[f]; b += task_bytes)
            s->tasks[t++] =
                (wc_task){ f, b,
                           b + task_bytes < s->file_size[f] ? b + task_bytes : s->file_size[f] };
    s->ntasks = n;
    return 0;
}

/* ---- the tokenizer ---------------------------------------------------------- */

/* Reads up to len bytes at off into s->buf + at (grown as needed): bytes read. */
static ssize_t read_at(wc_split *s, int fd, size_t at, int64_t off, size_t len)
{
    if (at + len > s->bufcap) {
        size_t cap = (at + len) * 3 / 2 + 1;
        unsigned char *p = realloc(s->buf, cap);
        if (!p) {
            errno = ENOMEM;
            return -1;
        }
        s->buf = p;
        s->bufcap = cap;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, s->buf + at + got, len - got, (off_t)(off + (int64_t)got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Task t: emits (word, 1) for every word that starts in its byte range. */
int wc_split_count_task(int64_t task, mpmap_emitter *e, mpmap_task_error *err, void *ctx)
{
    wc_split *w = ctx;
    const wc_task *tk = &w->tasks[task];
    const char *path = w->files[tk->file];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return mpmap_task_fail(err, task, 1, "cannot read '%s': %s", path, strerror(errno));
    /* The buffer holds the file from s on: one byte before the range tells
     * whether the range starts inside a word. */
    int64_t s = tk->begin > 0 ? tk->begin - 1 : 0;
    size_t limit = (size_t)(tk->end - s); /* words must start before this */
    ssize_t r = read_at(w, fd, 0, s, limit);
    int rc = 0;
    if (r < 0) {
        rc = mpmap_task_fail(err, task, 1, "cannot read '%s': %s", path, strerror(errno));
        goto done;
    }
    size_t n = (size_t)r, i = 0;
    int eof = n < limit;
    if (tk->begin > 0) {
        i = 1;
        if (n > 0 && !is_space(w->buf[0])) /* the previous task's word */
            while (i < n && !is_space(w->buf[i]))
                i++;
    }
    const int64_t one = 1;
    for (;;) {
        while (i < n && is_space(w->buf[i]))
            i++;
        if (i >= limit || i >= n)
            break;
        size_t start = i;
        for (;;) {
            i = word_end(w->buf, i, n);
            if (i < n || eof)
                break;
            /* the word goes on past what is read: read more */
            r = read_at(w, fd, n, s + (int64_t)n, WC_EXTEND_BYTES);
            if (r < 0) {
                rc = mpmap_task_fail(err, task, 1, "cannot read '%s': %s", path, strerror(errno));
                goto done;
            }
            eof = (size_t)r < WC_EXTEND_BYTES;
            n += (size_t)r;
        }
        if (w->fold_case)
            for (size_t j = start; j < i; j++)
                if (w->buf[j] >= 'A' && w->buf[j] <= 'Z')
                    w->buf[j] = (unsigned char)(w->buf[j] - 'A' + 'a');
        if ((rc = mpmap_emit(e, w->buf + start, i - start, &one)) != 0)
            goto done;
    }
done:
    close(fd);
    return rc;
}

void wc_split_free_buffer(wc_split *s)
{
    free(s->buf);
    s->buf = NULL;
    s->bufcap = 0;
}

void wc_split_free(wc_split *s)
{
    for (int32_t f = 0; f < s->nfiles && s->files; f++)
        free(s->files[f]);
    free(s->files);
    free(s->file_size);
    free(s->tasks);
    wc_split_free_buffer(s);
}
