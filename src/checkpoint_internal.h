/*
 * Internal pieces of the checkpoint log shared by its files (see
 * checkpoint.h for the guarantees and the on-disk format):
 *
 *   checkpoint_format.c  CRC32C and the byte layout of the file and entry
 *                        headers (pure functions, no I/O)
 *   checkpoint_scan.c    a resumed log: scanning its entries, the overlap
 *                        rule, the restored ranges, the damage notice
 *   checkpoint.c         the handle and its file: create, lock, open for
 *                        resume, append, sync, read back, close
 */
#ifndef MPMAP_CHECKPOINT_INTERNAL_H
#define MPMAP_CHECKPOINT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "checkpoint.h"
#include "mpmap.h"

/* One valid entry of the log. `where` packs the payload's file offset
 * (shifted left by one) with the has-status flag in bit 0, to keep the index
 * at 24 bytes per entry when there are millions of them. */
typedef struct mpmap__ckpt_entry {
    int64_t begin;
    int64_t end;
    uint64_t where;
} mpmap__ckpt_entry;

#define MPMAP__CKPT_WHERE(offset, has_status) (((uint64_t)(offset) << 1) | (uint64_t)(has_status))
#define MPMAP__CKPT_OFFSET(where) ((int64_t)((where) >> 1))
#define MPMAP__CKPT_HAS_STATUS(where) ((int)((where)&1u))

struct mpmap_ckpt {
    int fd;
    char *path;
    int64_t ntasks;
    size_t record_size;
    int64_t end_offset; /* where the next entry goes: end of the last good one */

    mpmap__ckpt_entry *index; /* restored entries, sorted by begin, disjoint */
    size_t nindex;
    mpmap_range *restored;
    size_t nrestored;
    int64_t restored_tasks;
    int64_t discarded; /* bytes cut from a damaged or torn tail at open */
    char *notice;      /* what that cost, for the user; NULL when clean */

    bool unsynced;
    struct timespec last_sync;
    char error[MPMAP_MESSAGE_MAX + 64];
};

/* ---- checkpoint_format.c ---- */

/* The fixed part of the file header (before the fingerprint). */
#define MPMAP__CKPT_FIXED_HEADER 32

typedef struct mpmap__ckpt_header {
    uint32_t version;
    uint32_t fplen;
    int64_t ntasks;
    uint64_t record_size;
} mpmap__ckpt_header;

/* Writes the whole file header (MPMAP_CKPT_HEADER_SIZE(fplen) bytes) to h. */
void mpmap__ckpt_encode_header(unsigned char *h, const char *fp, size_t fplen, int64_t ntasks,
                               uint64_t record_size);
/* Reads the fixed part; -1 when the magic is not MPMAP_CKPT_MAGIC. */
int mpmap__ckpt_decode_header(const unsigned char fixed[MPMAP__CKPT_FIXED_HEADER],
                              mpmap__ckpt_header *out);
/* The header CRC over the fixed part followed by the fingerprint. */
uint32_t mpmap__ckpt_header_crc(const unsigned char fixed[MPMAP__CKPT_FIXED_HEADER], const void *fp,
                                size_t fplen);

typedef struct mpmap__ckpt_entry_header {
    uint32_t flags; /* bit 0: a status array is present */
    int64_t begin;
    int64_t end;
    uint64_t payload_len;
    uint32_t payload_crc;
} mpmap__ckpt_entry_header;

/* Writes the 40-byte entry header, its own CRC included. */
void mpmap__ckpt_encode_entry(unsigned char h[MPMAP_CKPT_ENTRY_HEADER_SIZE],
                              const mpmap__ckpt_entry_header *e);
/* Reads an entry header and checks everything it can say by itself (magic,
 * CRC, flags, 0 <= begin < end <= ntasks, payload length). 0 or -1. */
int mpmap__ckpt_decode_entry(const unsigned char h[MPMAP_CKPT_ENTRY_HEADER_SIZE], int64_t ntasks,
                             size_t record_size, mpmap__ckpt_entry_header *out);

/* ---- checkpoint_scan.c ---- */

/* From c->end_offset (the end of the header) to `size`: indexes the valid
 * entries, applies the overlap rule and builds the restored ranges. On
 * return c->end_offset is the end of the last valid entry; when that is
 * before `size`, c->discarded and c->notice say what was lost. */
int mpmap__ckpt_scan(mpmap_ckpt *c, int64_t size, char *err, size_t errlen);

/* ---- checkpoint.c ---- */

/* printf into err (may be NULL/0). */
__attribute__((format(printf, 3, 4))) void mpmap__ckpt_message(char *err, size_t errlen,
                                                               const char *fmt, ...);
/* pread until n bytes or end of file. Returns the bytes read, -1 on error. */
ssize_t mpmap__ckpt_read_full(int fd, void *buf, size_t n, int64_t offset);

#endif
