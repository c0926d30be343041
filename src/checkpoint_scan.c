/*
 * Reading a checkpoint log back at resume (see checkpoint.h): the scan of
 * its entries, the overlap rule, the restored ranges, and what a damaged or
 * torn tail cost.
 */
#include "checkpoint_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes read per pread while scanning a log at open. */
#define CKPT_SCAN_BUFFER (1u << 20)

/* Sequential reader over the log, so a scan of millions of small entries
 * costs one pread per megabyte rather than two per entry. */
typedef struct ckpt_reader {
    int fd;
    unsigned char *buf;
    int64_t buf_offset; /* file offset of buf[0] */
    size_t len;         /* valid bytes in buf */
} ckpt_reader;

/* Points *p at the bytes at file offset `offset` and returns how many are
 * available there (at least `need` unless the file ends first), -1 on error. */
static ssize_t reader_at(ckpt_reader *r, int64_t offset, size_t need, const unsigned char **p)
{
    if (offset >= r->buf_offset && (uint64_t)(offset - r->buf_offset) < r->len &&
        r->len - (size_t)(offset - r->buf_offset) >= need) {
        *p = r->buf + (offset - r->buf_offset);
        return (ssize_t)(r->len - (size_t)(offset - r->buf_offset));
    }
    ssize_t k = mpmap__ckpt_read_full(r->fd, r->buf, CKPT_SCAN_BUFFER, offset);
    if (k < 0)
        return -1;
    r->buf_offset = offset;
    r->len = (size_t)k;
    *p = r->buf;
    return k;
}

static int push_entry(mpmap_ckpt *c, size_t *capacity, mpmap__ckpt_entry e)
{
    if (c->nindex == *capacity) {
        size_t grown = *capacity ? *capacity * 2 : 1024;
        mpmap__ckpt_entry *bigger = realloc(c->index, grown * sizeof *bigger);
        if (bigger == NULL)
            return MPMAP_ENOMEM;
        c->index = bigger;
        *capacity = grown;
    }
    c->index[c->nindex++] = e;
    return MPMAP_OK;
}

/* Walks the entries from c->end_offset and indexes every valid one, in
 * file order. Stops at the first entry that is truncated or fails a check:
 * appends are sequential, so after a crash only the tail can be torn, and
 * nothing after a bad entry can be trusted to be aligned on an entry.
 * On return c->end_offset is the end of the last valid entry. */
static int scan_entries(mpmap_ckpt *c, int64_t size, char *err, size_t errlen)
{
    ckpt_reader r = { .fd = c->fd, .buf = malloc(CKPT_SCAN_BUFFER), .buf_offset = 0, .len = 0 };
    if (r.buf == NULL) {
        mpmap__ckpt_message(err, errlen, "checkpoint '%s': out of memory", c->path);
        return MPMAP_ENOMEM;
    }
    size_t capacity = 0;
    int64_t offset = c->end_offset;
    int rc = MPMAP_OK;
    while (size - offset >= MPMAP_CKPT_ENTRY_HEADER_SIZE) {
        const unsigned char *h;
        ssize_t avail = reader_at(&r, offset, MPMAP_CKPT_ENTRY_HEADER_SIZE, &h);
        if (avail < 0) {
            rc = MPMAP_EIO;
            break;
        }
        if (avail < MPMAP_CKPT_ENTRY_HEADER_SIZE)
            break;
        mpmap__ckpt_entry_header eh;
        if (mpmap__ckpt_decode_entry(h, c->ntasks, c->record_size, &eh) != 0)
            break;
        uint64_t payload_len = eh.payload_len;
        int64_t payload_offset = offset + MPMAP_CKPT_ENTRY_HEADER_SIZE;
        if (payload_len > (uint64_t)(size - payload_offset))
            break; /* torn: the payload runs past the end of the file */

        uint32_t crc = 0;
        uint64_t done = 0;
        while (done < payload_len) {
            const unsigned char *p;
            avail = reader_at(&r, payload_offset + (int64_t)done, 1, &p);
            if (avail <= 0)
                break;
            size_t take =
                (uint64_t)avail < payload_len - done ? (size_t)avail : (size_t)(payload_len - done);
            crc = mpmap__crc32c(crc, p, take);
            done += take;
        }
        if (avail < 0) {
            rc = MPMAP_EIO;
            break;
        }
        if (done < payload_len || crc != eh.payload_crc)
            break;

        mpmap__ckpt_entry e = { .begin = eh.begin,
                                .end = eh.end,
                                .where = MPMAP__CKPT_WHERE(payload_offset, eh.flags & 1u) };
        if (push_entry(c, &capacity, e) != MPMAP_OK) {
            rc = MPMAP_ENOMEM;
            break;
        }
        offset = payload_offset + (int64_t)payload_len;
    }
    if (rc == MPMAP_EIO)
        mpmap__ckpt_message(err, errlen, "cannot read checkpoint '%s': %s", c->path,
                            strerror(errno));
    else if (rc == MPMAP_ENOMEM)
        mpmap__ckpt_message(err, errlen, "checkpoint '%s': out of memory for %zu entries", c->path,
                            c->nindex);
    free(r.buf);
    c->end_offset = offset;
    return rc;
}

static int compare_begin(const void *a, const void *b)
{
    int64_t x = ((const mpmap__ckpt_entry *)a)->begin, y = ((const mpmap__ckpt_entry *)b)->begin;
    return (x > y) - (x < y);
}

static int compare_where(const void *a, const void *b)
{
    uint64_t x = ((const mpmap__ckpt_entry *)a)->where >> 1;
    uint64_t y = ((const mpmap__ckpt_entry *)b)->where >> 1;
    return (x > y) - (x < y);
}

/* Applies the overlap rule (an entry overlapping an earlier valid entry is
 * dropped whole) in file order. Only reached when a sorted sweep found an
 * overlap, which the runtime never produces, so the quadratic worst case of
 * the sorted-array insertion does not matter. */
static int drop_overlapping(mpmap_ckpt *c)
{
    /* File order is payload-offset order. */
    qsort(c->index, c->nindex, sizeof *c->index, compare_where);
    mpmap_range *taken = malloc(c->nindex * sizeof *taken);
    if (taken == NULL)
        return MPMAP_ENOMEM;
    size_t ntaken = 0, kept = 0;
    for (size_t i = 0; i < c->nindex; i++) {
        mpmap__ckpt_entry e = c->index[i];
        /* First taken range ending after e.begin (ends are sorted too,
         * because taken ranges are disjoint). */
        size_t lo = 0, hi = ntaken;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (taken[mid].end <= e.begin)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < ntaken && taken[lo].begin < e.end)
            continue;
        memmove(taken + lo + 1, taken + lo, (ntaken - lo) * sizeof *taken);
        taken[lo] = (mpmap_range){ e.begin, e.end };
        ntaken++;
        c->index[kept++] = e;
    }
    free(taken);
    c->nindex = kept;
    return MPMAP_OK;
}

/* Sorts the index by task, resolves overlaps and coalesces the restored
 * ranges. */
static int build_index(mpmap_ckpt *c)
{
    if (c->nindex == 0)
        return MPMAP_OK;
    qsort(c->index, c->nindex, sizeof *c->index, compare_begin);
    bool overlap = false;
    for (size_t i = 1; i < c->nindex && !overlap; i++)
        overlap = c->index[i].begin < c->index[i - 1].end;
    if (overlap) {
        if (drop_overlapping(c) != MPMAP_OK)
            return MPMAP_ENOMEM;
        qsort(c->index, c->nindex, sizeof *c->index, compare_begin);
    }
    /* Give back the growth slack of the scan. */
    mpmap__ckpt_entry *fit = realloc(c->index, c->nindex * sizeof *fit);
    if (fit != NULL)
        c->index = fit;

    size_t n = 0;
    for (size_t i = 0; i < c->nindex; i++)
        if (i == 0 || c->index[i].begin != c->index[i - 1].end)
            n++;
    c->restored = malloc(n * sizeof *c->restored);
    if (c->restored == NULL)
        return MPMAP_ENOMEM;
    n = 0;
    for (size_t i = 0; i < c->nindex; i++) {
        if (n > 0 && c->restored[n - 1].end == c->index[i].begin)
            c->restored[n - 1].end = c->index[i].end;
        else
            c->restored[n++] = (mpmap_range){ c->index[i].begin, c->index[i].end };
        c->restored_tasks += c->index[i].end - c->index[i].begin;
    }
    c->nrestored = n;
    return MPMAP_OK;
}

/* The one-line account of a damaged or torn log, for the run to show before
 * it computes: everything from the first bad byte on is dropped (nothing
 * after it can be trusted to be aligned on an entry), and the user should
 * know how much work that costs rather than find the run slower than
 * expected. NULL when out of memory (the resume itself still goes on). */
static char *damage_notice(const mpmap_ckpt *c, int64_t damaged_at)
{
    long long kept = (long long)c->restored_tasks, total = (long long)c->ntasks;
    long long lost = total - kept;
    const char *fmt = lost > 0 ? "checkpoint '%s' is damaged after %lld of %lld tasks (byte %lld); "
                                 "the other %lld tasks will be recomputed"
                               : "checkpoint '%s' is damaged after %lld of %lld tasks (byte %lld); "
                                 "no task needs to be recomputed";
    int n = snprintf(NULL, 0, fmt, c->path, kept, total, (long long)damaged_at, lost);
    char *text = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (text != NULL)
        snprintf(text, (size_t)n + 1, fmt, c->path, kept, total, (long long)damaged_at, lost);
    return text;
}

int mpmap__ckpt_scan(mpmap_ckpt *c, int64_t size, char *err, size_t errlen)
{
    int rc = scan_entries(c, size, err, errlen);
    if (rc != MPMAP_OK)
        return rc;
    if (build_index(c) != MPMAP_OK) {
        mpmap__ckpt_message(err, errlen, "checkpoint '%s': out of memory for %zu entries", c->path,
                            c->nindex);
        return MPMAP_ENOMEM;
    }
    if (c->end_offset < size) {
        c->discarded = size - c->end_offset;
        c->notice = damage_notice(c, c->end_offset);
    }
    return MPMAP_OK;
}
