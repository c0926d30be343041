/*
 * Checkpoint log (see checkpoint.h for the guarantees and the on-disk
 * format). Rank 0 appends completed chunks; a resumed run indexes the valid
 * entries and reads their records back on demand.
 */
#define _GNU_SOURCE /* pwritev, fdatasync, flock, posix_fadvise under -std=c17 */

#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "mpmap.h"

#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif

/* ---- CRC32C -------------------------------------------------------------- */

#if !defined(__SSE4_2__)
/* Reflected CRC32C table (polynomial 0x82F63B78). */
static const uint32_t crc32c_table[256] = {
    0x00000000u, 0xf26b8303u, 0xe13b70f7u, 0x1350f3f4u, 0xc79a971fu, 0x35f1141cu,
    0x26a1e7e8u, 0xd4ca64ebu, 0x8ad958cfu, 0x78b2dbccu, 0x6be22838u, 0x9989ab3bu,
    0x4d43cfd0u, 0xbf284cd3u, 0xac78bf27u, 0x5e133c24u, 0x105ec76fu, 0xe235446cu,
    0xf165b798u, 0x030e349bu, 0xd7c45070u, 0x25afd373u, 0x36ff2087u, 0xc494a384u,
    0x9a879fa0u, 0x68ec1ca3u, 0x7bbcef57u, 0x89d76c54u, 0x5d1d08bfu, 0xaf768bbcu,
    0xbc267848u, 0x4e4dfb4bu, 0x20bd8edeu, 0xd2d60dddu, 0xc186fe29u, 0x33ed7d2au,
    0xe72719c1u, 0x154c9ac2u, 0x061c6936u, 0xf477ea35u, 0xaa64d611u, 0x580f5512u,
    0x4b5fa6e6u, 0xb93425e5u, 0x6dfe410eu, 0x9f95c20du, 0x8cc531f9u, 0x7eaeb2fau,
    0x30e349b1u, 0xc288cab2u, 0xd1d83946u, 0x23b3ba45u, 0xf779deaeu, 0x05125dadu,
    0x1642ae59u, 0xe4292d5au, 0xba3a117eu, 0x4851927du, 0x5b016189u, 0xa96ae28au,
    0x7da08661u, 0x8fcb0562u, 0x9c9bf696u, 0x6ef07595u, 0x417b1dbcu, 0xb3109ebfu,
    0xa0406d4bu, 0x522bee48u, 0x86e18aa3u, 0x748a09a0u, 0x67dafa54u, 0x95b17957u,
    0xcba24573u, 0x39c9c670u, 0x2a993584u, 0xd8f2b687u, 0x0c38d26cu, 0xfe53516fu,
    0xed03a29bu, 0x1f682198u, 0x5125dad3u, 0xa34e59d0u, 0xb01eaa24u, 0x42752927u,
    0x96bf4dccu, 0x64d4cecfu, 0x77843d3bu, 0x85efbe38u, 0xdbfc821cu, 0x2997011fu,
    0x3ac7f2ebu, 0xc8ac71e8u, 0x1c661503u, 0xee0d9600u, 0xfd5d65f4u, 0x0f36e6f7u,
    0x61c69362u, 0x93ad1061u, 0x80fde395u, 0x72966096u, 0xa65c047du, 0x5437877eu,
    0x4767748au, 0xb50cf789u, 0xeb1fcbadu, 0x197448aeu, 0x0a24bb5au, 0xf84f3859u,
    0x2c855cb2u, 0xdeeedfb1u, 0xcdbe2c45u, 0x3fd5af46u, 0x7198540du, 0x83f3d70eu,
    0x90a324fau, 0x62c8a7f9u, 0xb602c312u, 0x44694011u, 0x5739b3e5u, 0xa55230e6u,
    0xfb410cc2u, 0x092a8fc1u, 0x1a7a7c35u, 0xe811ff36u, 0x3cdb9bddu, 0xceb018deu,
    0xdde0eb2au, 0x2f8b6829u, 0x82f63b78u, 0x709db87bu, 0x63cd4b8fu, 0x91a6c88cu,
    0x456cac67u, 0xb7072f64u, 0xa457dc90u, 0x563c5f93u, 0x082f63b7u, 0xfa44e0b4u,
    0xe9141340u, 0x1b7f9043u, 0xcfb5f4a8u, 0x3dde77abu, 0x2e8e845fu, 0xdce5075cu,
    0x92a8fc17u, 0x60c37f14u, 0x73938ce0u, 0x81f80fe3u, 0x55326b08u, 0xa759e80bu,
    0xb4091bffu, 0x466298fcu, 0x1871a4d8u, 0xea1a27dbu, 0xf94ad42fu, 0x0b21572cu,
    0xdfeb33c7u, 0x2d80b0c4u, 0x3ed04330u, 0xccbbc033u, 0xa24bb5a6u, 0x502036a5u,
    0x4370c551u, 0xb11b4652u, 0x65d122b9u, 0x97baa1bau, 0x84ea524eu, 0x7681d14du,
    0x2892ed69u, 0xdaf96e6au, 0xc9a99d9eu, 0x3bc21e9du, 0xef087a76u, 0x1d63f975u,
    0x0e330a81u, 0xfc588982u, 0xb21572c9u, 0x407ef1cau, 0x532e023eu, 0xa145813du,
    0x758fe5d6u, 0x87e466d5u, 0x94b49521u, 0x66df1622u, 0x38cc2a06u, 0xcaa7a905u,
    0xd9f75af1u, 0x2b9cd9f2u, 0xff56bd19u, 0x0d3d3e1au, 0x1e6dcdeeu, 0xec064eedu,
    0xc38d26c4u, 0x31e6a5c7u, 0x22b65633u, 0xd0ddd530u, 0x0417b1dbu, 0xf67c32d8u,
    0xe52cc12cu, 0x1747422fu, 0x49547e0bu, 0xbb3ffd08u, 0xa86f0efcu, 0x5a048dffu,
    0x8ecee914u, 0x7ca56a17u, 0x6ff599e3u, 0x9d9e1ae0u, 0xd3d3e1abu, 0x21b862a8u,
    0x32e8915cu, 0xc083125fu, 0x144976b4u, 0xe622f5b7u, 0xf5720643u, 0x07198540u,
    0x590ab964u, 0xab613a67u, 0xb831c993u, 0x4a5a4a90u, 0x9e902e7bu, 0x6cfbad78u,
    0x7fab5e8cu, 0x8dc0dd8fu, 0xe330a81au, 0x115b2b19u, 0x020bd8edu, 0xf0605beeu,
    0x24aa3f05u, 0xd6c1bc06u, 0xc5914ff2u, 0x37faccf1u, 0x69e9f0d5u, 0x9b8273d6u,
    0x88d28022u, 0x7ab90321u, 0xae7367cau, 0x5c18e4c9u, 0x4f48173du, 0xbd23943eu,
    0xf36e6f75u, 0x0105ec76u, 0x12551f82u, 0xe03e9c81u, 0x34f4f86au, 0xc69f7b69u,
    0xd5cf889du, 0x27a40b9eu, 0x79b737bau, 0x8bdcb4b9u, 0x988c474du, 0x6ae7c44eu,
    0xbe2da0a5u, 0x4c4623a6u, 0x5f16d052u, 0xad7d5351u,
};
#endif

uint32_t mpmap_crc32c(uint32_t crc, const void *data, size_t len)
{
    const unsigned char *p = data;
    crc = ~crc;
#if defined(__SSE4_2__)
    uint64_t wide = crc;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t v;
        memcpy(&v, p, sizeof v);
        wide = _mm_crc32_u64(wide, v);
    }
    crc = (uint32_t)wide;
    for (; len > 0; p++, len--)
        crc = _mm_crc32_u8(crc, *p);
#else
    for (; len > 0; p++, len--)
        crc = crc32c_table[(crc ^ *p) & 0xffu] ^ (crc >> 8);
#endif
    return ~crc;
}

/* ---- handle -------------------------------------------------------------- */

/* One valid entry of the log. `where` packs the payload's file offset
 * (shifted left by one) with the has-status flag in bit 0, to keep the index
 * at 24 bytes per entry when there are millions of them. */
typedef struct ckpt_entry {
    int64_t begin;
    int64_t end;
    uint64_t where;
} ckpt_entry;

#define CKPT_WHERE(offset, has_status) (((uint64_t)(offset) << 1) | (uint64_t)(has_status))
#define CKPT_OFFSET(where) ((int64_t)((where) >> 1))
#define CKPT_HAS_STATUS(where) ((int)((where) & 1u))

/* Bytes read per pread while scanning a log at open. */
#define CKPT_SCAN_BUFFER (1u << 20)

struct mpmap_ckpt {
    int fd;
    char *path;
    int64_t ntasks;
    size_t record_size;
    int64_t end_offset; /* where the next entry goes: end of the last good one */

    ckpt_entry *index; /* restored entries, sorted by begin, disjoint */
    size_t nindex;
    mpmap_range *restored;
    size_t nrestored;
    int64_t restored_tasks;
    int64_t discarded;

    bool unsynced;
    struct timespec last_sync;
    char error[MPMAP_MESSAGE_MAX + 64];
};

static void set_message(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_message(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static double monotonic_seconds(const struct timespec *ts)
{
    return (double)ts->tv_sec + 1e-9 * (double)ts->tv_nsec;
}

static void mark_synced(mpmap_ckpt *c)
{
    c->unsynced = false;
    if (clock_gettime(CLOCK_MONOTONIC, &c->last_sync) != 0) {
        /* sync_if_due then syncs early, which is harmless */
        c->last_sync.tv_sec = 0;
        c->last_sync.tv_nsec = 0;
    }
}

/* Copies up to 96 characters of s[0..n) into dst, marking a cut with "...",
 * so a long fingerprint cannot push the useful part out of a message. */
static void clip(char *dst, size_t dstlen, const char *s, size_t n)
{
    const size_t keep = 96;
    if (n <= keep) {
        snprintf(dst, dstlen, "%.*s", (int)n, s);
    } else {
        snprintf(dst, dstlen, "%.*s...", (int)keep, s);
    }
}

/* ---- raw I/O ------------------------------------------------------------- */

/* pread until n bytes or end of file. Returns the bytes read, -1 on error. */
static ssize_t read_full(int fd, void *buf, size_t n, int64_t offset)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, (char *)buf + got, n - got, (off_t)(offset + (int64_t)got));
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (k == 0)
            break;
        got += (size_t)k;
    }
    return (ssize_t)got;
}

/* pwritev all of iov at offset, resuming after short writes (large
 * entries, signals). Zero-length iovecs must not be passed. */
static int pwritev_full(int fd, struct iovec *iov, int count, int64_t offset)
{
    while (count > 0) {
        ssize_t k = pwritev(fd, iov, count, (off_t)offset);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (k == 0) {
            errno = EIO;
            return -1;
        }
        offset += k;
        while (count > 0 && (size_t)k >= iov->iov_len) {
            k -= (ssize_t)iov->iov_len;
            iov++;
            count--;
        }
        if (count > 0) {
            iov->iov_base = (char *)iov->iov_base + k;
            iov->iov_len -= (size_t)k;
        }
    }
    return 0;
}

/* Makes the creation (or truncation) of the log durable across a power
 * loss. Best effort: some filesystems refuse fsync on a directory, and the
 * file's own data is synced separately, so failures here are not errors. */
static void sync_parent_dir(const char *path)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return;
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) != 0) {
            /* tolerated, see above */
        }
        if (close(dfd) != 0) {
            /* read-only descriptor: nothing to lose */
        }
    }
    free(copy);
}

/* ---- header -------------------------------------------------------------- */

/* Writes the file header at offset 0 of an empty file and syncs it, so a
 * log always starts with a valid header once open returned. */
static int write_header(mpmap_ckpt *c, const char *fp, size_t fplen, char *err, size_t errlen)
{
    size_t size = MPMAP_CKPT_HEADER_SIZE(fplen);
    unsigned char *h = malloc(size);
    if (h == NULL) {
        set_message(err, errlen, "checkpoint '%s': out of memory", c->path);
        return MPMAP_ENOMEM;
    }
    uint32_t version = MPMAP_CKPT_VERSION, len32 = (uint32_t)fplen;
    uint64_t rs = c->record_size;
    memcpy(h, MPMAP_CKPT_MAGIC, 8);
    memcpy(h + 8, &version, 4);
    memcpy(h + 12, &len32, 4);
    memcpy(h + 16, &c->ntasks, 8);
    memcpy(h + 24, &rs, 8);
    if (fplen > 0)
        memcpy(h + 32, fp, fplen);
    uint32_t crc = mpmap_crc32c(0, h, 32 + fplen);
    memcpy(h + 32 + fplen, &crc, 4);

    struct iovec iov = {.iov_base = h, .iov_len = size};
    int rc = pwritev_full(c->fd, &iov, 1, 0);
    free(h);
    if (rc != 0 || fdatasync(c->fd) != 0) {
        set_message(err, errlen, "cannot write checkpoint '%s': %s", c->path, strerror(errno));
        return MPMAP_EIO;
    }
    sync_parent_dir(c->path);
    c->end_offset = (int64_t)size;
    mark_synced(c);
    return MPMAP_OK;
}

/* Reads and checks the header of an existing log of `size` bytes against
 * the job; on success c->end_offset is where the entries start. */
static int check_header(mpmap_ckpt *c, const char *fp, size_t fplen, int64_t size, char *err,
                        size_t errlen)
{
    unsigned char fixed[32];
    ssize_t got = read_full(c->fd, fixed, sizeof fixed, 0);
    if (got < 0) {
        set_message(err, errlen, "cannot read checkpoint '%s': %s", c->path, strerror(errno));
        return MPMAP_EIO;
    }
    if (got >= 8 && memcmp(fixed, MPMAP_CKPT_MAGIC, 8) != 0) {
        set_message(err, errlen, "'%s' is not an mpmap checkpoint", c->path);
        return MPMAP_ERESUME;
    }
    if (got < (ssize_t)sizeof fixed || size < (int64_t)MPMAP_CKPT_HEADER_SIZE(0)) {
        set_message(err, errlen, "checkpoint '%s' is damaged: bad header", c->path);
        return MPMAP_ERESUME;
    }
    uint32_t version, stored_len;
    int64_t stored_ntasks;
    uint64_t stored_rs;
    memcpy(&version, fixed + 8, 4);
    memcpy(&stored_len, fixed + 12, 4);
    memcpy(&stored_ntasks, fixed + 16, 8);
    memcpy(&stored_rs, fixed + 24, 8);
    if (version != MPMAP_CKPT_VERSION) {
        if (__builtin_bswap32(version) == MPMAP_CKPT_VERSION)
            set_message(err, errlen,
                        "checkpoint '%s' was written on a machine of the other byte order",
                        c->path);
        else
            set_message(err, errlen,
                        "checkpoint '%s' has format version %u; this build reads version %u",
                        c->path, version, MPMAP_CKPT_VERSION);
        return MPMAP_ERESUME;
    }
    /* Checked against the file size before allocating, so a damaged length
     * cannot ask for gigabytes. */
    if ((uint64_t)stored_len > (uint64_t)size - MPMAP_CKPT_HEADER_SIZE(0)) {
        set_message(err, errlen, "checkpoint '%s' is damaged: bad header", c->path);
        return MPMAP_ERESUME;
    }
    unsigned char *stored_fp = malloc((size_t)stored_len + 4);
    if (stored_fp == NULL) {
        set_message(err, errlen, "checkpoint '%s': out of memory", c->path);
        return MPMAP_ENOMEM;
    }
    got = read_full(c->fd, stored_fp, (size_t)stored_len + 4, 32);
    if (got != (ssize_t)stored_len + 4) {
        if (got < 0)
            set_message(err, errlen, "cannot read checkpoint '%s': %s", c->path, strerror(errno));
        else
            set_message(err, errlen, "checkpoint '%s' is damaged: bad header", c->path);
        free(stored_fp);
        return got < 0 ? MPMAP_EIO : MPMAP_ERESUME;
    }
    uint32_t stored_crc;
    memcpy(&stored_crc, stored_fp + stored_len, 4);
    uint32_t crc = mpmap_crc32c(mpmap_crc32c(0, fixed, sizeof fixed), stored_fp, stored_len);
    int rc = MPMAP_OK;
    if (crc != stored_crc) {
        set_message(err, errlen, "checkpoint '%s' is damaged: bad header", c->path);
        rc = MPMAP_ERESUME;
    } else if (stored_len != fplen || memcmp(stored_fp, fp, fplen) != 0) {
        char was[104], now[104];
        clip(was, sizeof was, (const char *)stored_fp, stored_len);
        clip(now, sizeof now, fp, fplen);
        set_message(err, errlen,
                    "checkpoint '%s' belongs to a different run (arguments differ: was '%s', "
                    "now '%s')",
                    c->path, was, now);
        rc = MPMAP_ERESUME;
    } else if (stored_ntasks != c->ntasks) {
        set_message(err, errlen,
                    "checkpoint '%s' belongs to a different run (was %lld tasks, now %lld)",
                    c->path, (long long)stored_ntasks, (long long)c->ntasks);
        rc = MPMAP_ERESUME;
    } else if (stored_rs != (uint64_t)c->record_size) {
        set_message(err, errlen,
                    "checkpoint '%s' belongs to a different run (record size was %llu bytes, "
                    "now %zu)",
                    c->path, (unsigned long long)stored_rs, c->record_size);
        rc = MPMAP_ERESUME;
    }
    free(stored_fp);
    if (rc == MPMAP_OK)
        c->end_offset = (int64_t)MPMAP_CKPT_HEADER_SIZE(stored_len);
    return rc;
}

/* ---- scanning ------------------------------------------------------------ */

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
    ssize_t k = read_full(r->fd, r->buf, CKPT_SCAN_BUFFER, offset);
    if (k < 0)
        return -1;
    r->buf_offset = offset;
    r->len = (size_t)k;
    *p = r->buf;
    return k;
}

static int push_entry(mpmap_ckpt *c, size_t *capacity, ckpt_entry e)
{
    if (c->nindex == *capacity) {
        size_t grown = *capacity ? *capacity * 2 : 1024;
        ckpt_entry *bigger = realloc(c->index, grown * sizeof *bigger);
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
    ckpt_reader r = {.fd = c->fd, .buf = malloc(CKPT_SCAN_BUFFER), .buf_offset = 0, .len = 0};
    if (r.buf == NULL) {
        set_message(err, errlen, "checkpoint '%s': out of memory", c->path);
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
        uint32_t magic, flags, payload_crc, header_crc;
        int64_t begin, end;
        uint64_t payload_len;
        memcpy(&magic, h, 4);
        memcpy(&flags, h + 4, 4);
        memcpy(&begin, h + 8, 8);
        memcpy(&end, h + 16, 8);
        memcpy(&payload_len, h + 24, 8);
        memcpy(&payload_crc, h + 32, 4);
        memcpy(&header_crc, h + 36, 4);
        if (magic != MPMAP_CKPT_ENTRY_MAGIC || header_crc != mpmap_crc32c(0, h, 36))
            break;
        if ((flags & ~1u) != 0 || begin < 0 || begin >= end || end > c->ntasks)
            break;
        /* No overflow: open checked ntasks * (record_size + 4) fits. */
        uint64_t per_task = (uint64_t)c->record_size + ((flags & 1u) ? 4u : 0u);
        if (payload_len != (uint64_t)(end - begin) * per_task)
            break;
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
            size_t take = (uint64_t)avail < payload_len - done ? (size_t)avail
                                                               : (size_t)(payload_len - done);
            crc = mpmap_crc32c(crc, p, take);
            done += take;
        }
        if (avail < 0) {
            rc = MPMAP_EIO;
            break;
        }
        if (done < payload_len || crc != payload_crc)
            break;

        ckpt_entry e = {.begin = begin, .end = end,
                        .where = CKPT_WHERE(payload_offset, flags & 1u)};
        if (push_entry(c, &capacity, e) != MPMAP_OK) {
            rc = MPMAP_ENOMEM;
            break;
        }
        offset = payload_offset + (int64_t)payload_len;
    }
    if (rc == MPMAP_EIO)
        set_message(err, errlen, "cannot read checkpoint '%s': %s", c->path, strerror(errno));
    else if (rc == MPMAP_ENOMEM)
        set_message(err, errlen, "checkpoint '%s': out of memory for %zu entries", c->path,
                    c->nindex);
    free(r.buf);
    c->end_offset = offset;
    return rc;
}

static int compare_begin(const void *a, const void *b)
{
    int64_t x = ((const ckpt_entry *)a)->begin, y = ((const ckpt_entry *)b)->begin;
    return (x > y) - (x < y);
}

static int compare_where(const void *a, const void *b)
{
    uint64_t x = ((const ckpt_entry *)a)->where >> 1, y = ((const ckpt_entry *)b)->where >> 1;
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
        ckpt_entry e = c->index[i];
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
        taken[lo] = (mpmap_range){e.begin, e.end};
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
    ckpt_entry *fit = realloc(c->index, c->nindex * sizeof *fit);
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
            c->restored[n++] = (mpmap_range){c->index[i].begin, c->index[i].end};
        c->restored_tasks += c->index[i].end - c->index[i].begin;
    }
    c->nrestored = n;
    return MPMAP_OK;
}

/* ---- public API ---------------------------------------------------------- */

static void free_handle(mpmap_ckpt *c)
{
    free(c->index);
    free(c->restored);
    free(c->path);
    free(c);
}

/* Takes an exclusive lock so two runs cannot interleave entries in one log.
 * Filesystems without lock support (ENOLCK on some NFS setups) run
 * unlocked rather than refusing to checkpoint at all. */
static int lock_file(mpmap_ckpt *c, char *err, size_t errlen)
{
    while (flock(c->fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EINTR)
            continue;
        if (errno == EWOULDBLOCK) {
            set_message(err, errlen, "checkpoint '%s' is in use by another process", c->path);
            return MPMAP_EIO;
        }
        break;
    }
    return MPMAP_OK;
}

static int open_fresh(mpmap_ckpt *c, const char *fp, size_t fplen, char *err, size_t errlen)
{
    /* Not O_TRUNC: the lock must be held before the contents go, or a fresh
     * run could wipe the log of a run still writing it. */
    c->fd = open(c->path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (c->fd < 0) {
        set_message(err, errlen, "cannot create checkpoint '%s': %s", c->path, strerror(errno));
        return MPMAP_EIO;
    }
    int rc = lock_file(c, err, errlen);
    if (rc != MPMAP_OK)
        return rc;
    if (ftruncate(c->fd, 0) != 0) {
        set_message(err, errlen, "cannot truncate checkpoint '%s': %s", c->path, strerror(errno));
        return MPMAP_EIO;
    }
    return write_header(c, fp, fplen, err, errlen);
}

static int open_resume(mpmap_ckpt *c, const char *fp, size_t fplen, char *err, size_t errlen)
{
    c->fd = open(c->path, O_RDWR | O_CLOEXEC);
    if (c->fd < 0) {
        if (errno == ENOENT) {
            set_message(err, errlen, "no checkpoint '%s' to resume from", c->path);
            return MPMAP_ERESUME;
        }
        set_message(err, errlen, "cannot open checkpoint '%s': %s", c->path, strerror(errno));
        return MPMAP_EIO;
    }
    int rc = lock_file(c, err, errlen);
    if (rc != MPMAP_OK)
        return rc;
    struct stat st;
    if (fstat(c->fd, &st) != 0) {
        set_message(err, errlen, "cannot stat checkpoint '%s': %s", c->path, strerror(errno));
        return MPMAP_EIO;
    }
    int64_t size = (int64_t)st.st_size;
    if (size == 0) /* killed between create and header write: nothing was lost */
        return write_header(c, fp, fplen, err, errlen);
    rc = check_header(c, fp, fplen, size, err, errlen);
    if (rc == MPMAP_OK)
        rc = scan_entries(c, size, err, errlen);
    if (rc != MPMAP_OK)
        return rc;
    if (build_index(c) != MPMAP_OK) {
        set_message(err, errlen, "checkpoint '%s': out of memory for %zu entries", c->path,
                    c->nindex);
        return MPMAP_ENOMEM;
    }
    if (c->end_offset < size) {
        /* Cut the torn tail now, so new entries follow the last good one
         * and a later scan does not stop at the old garbage. */
        c->discarded = size - c->end_offset;
        if (ftruncate(c->fd, (off_t)c->end_offset) != 0 || fdatasync(c->fd) != 0) {
            set_message(err, errlen, "cannot truncate checkpoint '%s': %s", c->path,
                        strerror(errno));
            return MPMAP_EIO;
        }
    }
    mark_synced(c);
    return MPMAP_OK;
}

int mpmap_ckpt_open(const char *path, const char *fingerprint, int64_t ntasks, size_t record_size,
                    int resume, mpmap_ckpt **out, char *err, size_t errlen)
{
    set_message(err, errlen, "%s", "");
    if (out == NULL || path == NULL || ntasks < 0) {
        set_message(err, errlen, "checkpoint: invalid arguments");
        return MPMAP_EINVAL;
    }
    *out = NULL;
    if (fingerprint == NULL)
        fingerprint = "";
    size_t fplen = strlen(fingerprint);
    /* Every size computed later (payload lengths, file offsets) is at most
     * ntasks * (record_size + 4) plus headers; keep that well inside int64. */
    if (fplen > UINT32_MAX || record_size > (size_t)(INT64_MAX / 4) ||
        (ntasks > 0 && (uint64_t)record_size + 4u > (uint64_t)(INT64_MAX / 4) / (uint64_t)ntasks)) {
        set_message(err, errlen, "checkpoint '%s': job too large for the format", path);
        return MPMAP_EINVAL;
    }
    mpmap_ckpt *c = calloc(1, sizeof *c);
    if (c == NULL || (c->path = strdup(path)) == NULL) {
        free(c);
        set_message(err, errlen, "checkpoint '%s': out of memory", path);
        return MPMAP_ENOMEM;
    }
    c->fd = -1;
    c->ntasks = ntasks;
    c->record_size = record_size;
    int rc = resume ? open_resume(c, fingerprint, fplen, err, errlen)
                    : open_fresh(c, fingerprint, fplen, err, errlen);
    if (rc != MPMAP_OK) {
        if (c->fd >= 0 && close(c->fd) != 0) {
            /* already failing with a more useful message */
        }
        free_handle(c);
        return rc;
    }
    *out = c;
    return MPMAP_OK;
}

int mpmap_ckpt_append(mpmap_ckpt *c, int64_t begin, int64_t end, const void *records,
                      const int32_t *status)
{
    if (c == NULL)
        return MPMAP_EINVAL;
    if (begin < 0 || begin >= end || end > c->ntasks || (records == NULL && c->record_size > 0)) {
        snprintf(c->error, sizeof c->error,
                 "checkpoint '%s': cannot append tasks [%lld, %lld) of %lld", c->path,
                 (long long)begin, (long long)end, (long long)c->ntasks);
        return MPMAP_EINVAL;
    }
    size_t n = (size_t)(end - begin);
    /* All-zero statuses are the common case; dropping them saves 4 bytes a
     * task and reads back identically. */
    bool has_status = false;
    for (size_t i = 0; status != NULL && i < n && !has_status; i++)
        has_status = status[i] != 0;
    size_t status_len = has_status ? n * sizeof(int32_t) : 0;
    size_t records_len = n * c->record_size;
    uint64_t payload_len = (uint64_t)status_len + records_len;

    uint32_t crc = mpmap_crc32c(0, status, status_len);
    crc = mpmap_crc32c(crc, records, records_len);
    unsigned char h[MPMAP_CKPT_ENTRY_HEADER_SIZE];
    uint32_t magic = MPMAP_CKPT_ENTRY_MAGIC, flags = has_status ? 1u : 0u;
    memcpy(h, &magic, 4);
    memcpy(h + 4, &flags, 4);
    memcpy(h + 8, &begin, 8);
    memcpy(h + 16, &end, 8);
    memcpy(h + 24, &payload_len, 8);
    memcpy(h + 32, &crc, 4);
    uint32_t header_crc = mpmap_crc32c(0, h, 36);
    memcpy(h + 36, &header_crc, 4);

    struct iovec iov[3];
    int count = 0;
    iov[count++] = (struct iovec){.iov_base = h, .iov_len = sizeof h};
    if (status_len > 0)
        iov[count++] = (struct iovec){.iov_base = (void *)status, .iov_len = status_len};
    if (records_len > 0)
        iov[count++] = (struct iovec){.iov_base = (void *)records, .iov_len = records_len};
    if (pwritev_full(c->fd, iov, count, c->end_offset) != 0) {
        int saved = errno;
        /* Remove the partial entry so the log stays a clean sequence; a
         * retry would overwrite it anyway since writes go to end_offset. */
        if (ftruncate(c->fd, (off_t)c->end_offset) != 0) {
            /* the torn bytes are caught by the checksums on resume */
        }
        snprintf(c->error, sizeof c->error, "cannot write checkpoint '%s': %s", c->path,
                 strerror(saved));
        return MPMAP_EIO;
    }
    c->end_offset += MPMAP_CKPT_ENTRY_HEADER_SIZE + (int64_t)payload_len;
    c->unsynced = true;
    return MPMAP_OK;
}

int mpmap_ckpt_sync(mpmap_ckpt *c)
{
    if (c == NULL)
        return MPMAP_EINVAL;
    if (fdatasync(c->fd) != 0) {
        snprintf(c->error, sizeof c->error, "cannot sync checkpoint '%s': %s", c->path,
                 strerror(errno));
        return MPMAP_EIO;
    }
    mark_synced(c);
    return MPMAP_OK;
}

int mpmap_ckpt_sync_if_due(mpmap_ckpt *c, double interval)
{
    if (c == NULL)
        return MPMAP_EINVAL;
    if (!c->unsynced)
        return MPMAP_OK;
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) == 0 &&
        monotonic_seconds(&now) - monotonic_seconds(&c->last_sync) < interval)
        return MPMAP_OK;
    return mpmap_ckpt_sync(c);
}

size_t mpmap_ckpt_restored(const mpmap_ckpt *c, const mpmap_range **ranges)
{
    if (ranges != NULL)
        *ranges = c != NULL ? c->restored : NULL;
    return c != NULL ? c->nrestored : 0;
}

int64_t mpmap_ckpt_restored_tasks(const mpmap_ckpt *c)
{
    return c != NULL ? c->restored_tasks : 0;
}

int64_t mpmap_ckpt_discarded_bytes(const mpmap_ckpt *c)
{
    return c != NULL ? c->discarded : 0;
}

const char *mpmap_ckpt_error(const mpmap_ckpt *c)
{
    return c != NULL ? c->error : "";
}

static int read_exact(mpmap_ckpt *c, void *buf, size_t n, int64_t offset)
{
    ssize_t got = read_full(c->fd, buf, n, offset);
    if (got == (ssize_t)n)
        return MPMAP_OK;
    snprintf(c->error, sizeof c->error, "cannot read checkpoint '%s': %s", c->path,
             got < 0 ? strerror(errno) : "file shorter than its index");
    return MPMAP_EIO;
}

int mpmap_ckpt_read(mpmap_ckpt *c, int64_t begin, int64_t end, void *records, int32_t *status)
{
    if (c == NULL || begin < 0 || begin > end)
        return MPMAP_EINVAL;
    /* Last entry starting at or before `begin`. */
    size_t lo = 0, hi = c->nindex;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->index[mid].begin <= begin)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t i = lo > 0 ? lo - 1 : 0;
    for (int64_t t = begin; t < end; i++) {
        if (i >= c->nindex || c->index[i].begin > t || c->index[i].end <= t) {
            snprintf(c->error, sizeof c->error,
                     "checkpoint '%s': tasks [%lld, %lld) were not restored", c->path,
                     (long long)begin, (long long)end);
            return MPMAP_EINVAL;
        }
        const ckpt_entry *e = &c->index[i];
        int64_t stop = end < e->end ? end : e->end;
        size_t count = (size_t)(stop - t), skip = (size_t)(t - e->begin);
        size_t entry_tasks = (size_t)(e->end - e->begin);
        int64_t offset = CKPT_OFFSET(e->where);
        int has_status = CKPT_HAS_STATUS(e->where);
        if (status != NULL) {
            int32_t *dst = status + (t - begin);
            if (!has_status)
                memset(dst, 0, count * sizeof *dst);
            else if (read_exact(c, dst, count * sizeof *dst,
                                offset + (int64_t)(skip * sizeof *dst)) != MPMAP_OK)
                return MPMAP_EIO;
        }
        if (records != NULL && c->record_size > 0) {
            int64_t records_at = offset + (has_status ? (int64_t)(entry_tasks * sizeof(int32_t)) : 0);
            if (read_exact(c, (char *)records + (size_t)(t - begin) * c->record_size,
                           count * c->record_size,
                           records_at + (int64_t)(skip * c->record_size)) != MPMAP_OK)
                return MPMAP_EIO;
        }
        t = stop;
    }
    return MPMAP_OK;
}

int mpmap_ckpt_close(mpmap_ckpt *c)
{
    if (c == NULL)
        return MPMAP_OK;
    int rc = MPMAP_OK;
    if (c->unsynced && fdatasync(c->fd) != 0)
        rc = MPMAP_EIO;
    if (close(c->fd) != 0)
        rc = MPMAP_EIO;
    free_handle(c);
    return rc;
}

int mpmap_ckpt_remove(mpmap_ckpt *c)
{
    if (c == NULL)
        return MPMAP_OK;
    int rc = MPMAP_OK;
    /* Unlink while still holding the lock, so no other run can open the
     * old log in between. */
    if (unlink(c->path) != 0 && errno != ENOENT)
        rc = MPMAP_EIO;
    if (close(c->fd) != 0)
        rc = MPMAP_EIO;
    free_handle(c);
    return rc;
}
