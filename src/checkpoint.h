/*
 * Checkpoint log: rank 0 appends every completed chunk of task results to a
 * file so that an interrupted run (SIGTERM at walltime, or SIGKILL, where no
 * cleanup code runs) can be resumed without recomputing finished tasks.
 * Internal to the library; no MPI here.
 *
 * Guarantees:
 *   - Entries are appended in completion order (any task order). An entry
 *     that was completely written before the process died is recovered on
 *     resume; a torn or corrupted entry is detected by its checksums and,
 *     together with everything after it, discarded and truncated away.
 *     What that cost is told, not hidden: mpmap__ckpt_notice says how many
 *     tasks were kept and how many will be recomputed.
 *   - Data reaches the disk (survives a power loss, not only a process
 *     kill) once mpmap__ckpt_sync / mpmap__ckpt_sync_if_due / close returned.
 *   - Resume validates the file against the job: fingerprint, ntasks and
 *     record_size must all match.
 *   - Memory: only an index of entries (24 bytes each) and the coalesced
 *     restored ranges are kept; records are read back on demand with pread.
 *   - Overlapping entries: an entry whose task range overlaps any valid
 *     entry earlier in the file is ignored as a whole (its tasks stay with
 *     the earlier entry; the non-overlapping part is recomputed). The
 *     runtime never writes overlaps; this only keeps resume well defined.
 *   - The file is locked (flock) while open, so two runs cannot write the
 *     same checkpoint at once.
 *
 * On-disk format, all integers in the native byte order of the machine that
 * wrote it (a file from a machine of the other byte order is refused):
 *
 *   file header (36 + F bytes):
 *     0  char[8] magic "MPMAPCK1"
 *     8  u32     format version (1)
 *    12  u32     F = fingerprint length in bytes
 *    16  i64     ntasks
 *    24  u64     record_size
 *    32  char[F] fingerprint (no NUL)
 *  32+F  u32     CRC32C of bytes [0, 32+F)
 *
 *   then entries, back to back, each a 40-byte entry header + payload:
 *     0  u32     magic 0x45504B43 ("CKPE" on little-endian machines)
 *     4  u32     flags: bit 0 = a status array is present
 *     8  i64     begin (first task)
 *    16  i64     end (one past the last task), 0 <= begin < end <= ntasks
 *    24  u64     payload length = (end-begin) * (record_size + (flags&1 ? 4 : 0))
 *    32  u32     CRC32C of the payload
 *    36  u32     CRC32C of entry-header bytes [0, 36)
 *    40  payload: [int32 status x n if flags&1] then [record_size x n records]
 *   A chunk whose statuses are all 0 (or NULL) is stored without a status
 *   array. A file of length 0 (crash between create and header write) is
 *   resumed as an empty log.
 */
#ifndef MPMAP_CHECKPOINT_H
#define MPMAP_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "ranges.h"

#define MPMAP_CKPT_MAGIC "MPMAPCK1"
#define MPMAP_CKPT_VERSION 1u
#define MPMAP_CKPT_ENTRY_MAGIC 0x45504B43u
#define MPMAP_CKPT_ENTRY_HEADER_SIZE 40
/* Bytes of the file header for a fingerprint of `fplen` bytes. */
#define MPMAP_CKPT_HEADER_SIZE(fplen) (36 + (size_t)(fplen))

typedef struct mpmap_ckpt mpmap_ckpt;

/*
 * Opens the checkpoint at `path` for job (fingerprint, ntasks, record_size).
 * fingerprint may be NULL (same as ""). resume == 0: create the file or
 * truncate an existing one and write the header. resume != 0: open the
 * existing file, validate its header against the job, index its valid
 * entries, truncate a torn tail, and position for appending.
 * Returns 0 and *out, or:
 *   MPMAP_ERESUME: "no checkpoint 'X' to resume from",
 *     "checkpoint 'X' belongs to a different run (--seed: was 1, now 2)" (the
 *       first difference, see mpmap_fingerprint_diff; "input data changed"),
 *     "... (was N tasks, now M)", "... (record size was N bytes, now M)",
 *     "checkpoint 'X' is damaged: bad header", "'X' is not an mpmap checkpoint", ...
 *   MPMAP_EIO: an I/O failure or the file is in use ("... : <strerror>"),
 *   MPMAP_EINVAL: bad arguments, MPMAP_ENOMEM.
 * The one-line message goes to err (errlen bytes, may be NULL/0).
 */
int mpmap__ckpt_open(const char *path, const char *fingerprint, int64_t ntasks, size_t record_size,
                     int resume, mpmap_ckpt **out, char *err, size_t errlen);

/*
 * Appends tasks [begin, end): records holds (end-begin)*record_size bytes
 * (may be NULL when record_size is 0), status one code per task or NULL
 * (all 0). One pwritev per entry at the end of the log; on a failed write
 * the partial entry is truncated away and MPMAP_EIO returned (see
 * mpmap__ckpt_error). Not synced: call mpmap__ckpt_sync(_if_due).
 * MPMAP_EINVAL when 0 <= begin < end <= ntasks does not hold. Overlaps with
 * earlier entries are not checked here (see the overlap rule above).
 */
int mpmap__ckpt_append(mpmap_ckpt *c, int64_t begin, int64_t end, const void *records,
                       const int32_t *status);

/* fdatasync of everything appended so far. 0 or MPMAP_EIO. */
int mpmap__ckpt_sync(mpmap_ckpt *c);

/* Syncs when something was appended since the last sync and at least
 * `interval` seconds (monotonic clock) passed since it. Call after each
 * append and from the idle loop. 0 or MPMAP_EIO. */
int mpmap__ckpt_sync_if_due(mpmap_ckpt *c, double interval);

/* Sorted, disjoint, coalesced ranges of tasks restored at open (none for a
 * fresh log). The array belongs to c and stays valid until close. Appends
 * made through c do not change it. */
size_t mpmap__ckpt_restored(const mpmap_ckpt *c, const mpmap_range **ranges);

/* Number of tasks in the restored ranges. */
int64_t mpmap__ckpt_restored_tasks(const mpmap_ckpt *c);

/* Bytes of torn/corrupted tail discarded at open (0 when the log was clean). */
int64_t mpmap__ckpt_discarded_bytes(const mpmap_ckpt *c);

/* "" for a clean log, else one line for the user about the discarded tail:
 * "checkpoint 'X' is damaged after K of N tasks (byte B); the other N-K
 * tasks will be recomputed". Valid until close. */
const char *mpmap__ckpt_notice(const mpmap_ckpt *c);

/*
 * Reads back restored tasks [begin, end), which must lie inside one
 * restored range (it may span several entries). records gets
 * (end-begin)*record_size bytes, status end-begin codes (0 when the entry
 * had none); either may be NULL to skip it. Checksums were verified at open
 * and are not re-checked. 0, MPMAP_EINVAL (range not restored) or MPMAP_EIO.
 */
int mpmap__ckpt_read(mpmap_ckpt *c, int64_t begin, int64_t end, void *records, int32_t *status);

/* One-line description of the last failure of append/sync/read/close, or "". */
const char *mpmap__ckpt_error(const mpmap_ckpt *c);

/* Syncs and closes, keeping the file (interrupted run). NULL is a no-op.
 * Returns 0 or MPMAP_EIO (c is freed either way). */
int mpmap__ckpt_close(mpmap_ckpt *c);

/* Closes and unlinks the file (the run succeeded). 0 or MPMAP_EIO; c is freed. */
int mpmap__ckpt_remove(mpmap_ckpt *c);

/* CRC32C (Castagnoli), chainable: mpmap__crc32c(mpmap__crc32c(0, a, n), b, m)
 * is the CRC of a followed by b. Uses the SSE4.2 instruction when the CPU
 * running it has one (mpmap__crc32c_hardware() says 1), else
 * mpmap__crc32c_table, the portable byte-table path; both give the same CRC. */
uint32_t mpmap__crc32c(uint32_t crc, const void *data, size_t len);
uint32_t mpmap__crc32c_table(uint32_t crc, const void *data, size_t len);
int mpmap__crc32c_hardware(void);

#endif
