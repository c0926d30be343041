/*
 * mpmap_h5: the one self-describing HDF5 output file of an mpmap app.
 *
 * Files written here open in h5py, h5dump, HDFView and, with coordinates, in
 * xarray.open_dataset(file, engine="h5netcdf"): every axis of every dataset
 * has an attached dimension scale (netCDF-4 style), units live in a `units`
 * attribute and descriptions in `long_name` (CF conventions).
 *
 * Only rank 0 calls these functions; they use the serial HDF5 API (default
 * file access property list), which is fine in the parallel HDF5 build.
 * Nothing here keeps global state: HDF5's automatic error printing is turned
 * off for the duration of each call and restored before it returns, and
 * HDF5 errors are turned into one-line messages.
 *
 * Output is atomic: mpmap_h5_create writes to "<final>.partial" in the same
 * directory; mpmap_h5_commit flushes, closes, fsyncs and renames it into
 * place; mpmap_h5_abort removes it. A reader never sees a half-written file
 * under the final name.
 *
 *     char err[MPMAP_H5_ERROR_MAX];
 *     if (mpmap_h5_check_output_path(out, force, err, sizeof err) != 0) -> usage error
 *     ... run the job ...
 *     mpmap_h5 *f;
 *     mpmap_h5_create(out, force, &f, err, sizeof err);
 *     mpmap_h5_write_coordinate(f, "width", H5T_NATIVE_DOUBLE, n, widths, "m", "kernel width");
 *     int64_t dims[2] = {n, m};
 *     const char *names[2] = {"width", "sample"};  // "sample" gets an index coordinate
 *     mpmap_h5_dataset *d;
 *     mpmap_h5_dataset_create(f, "density", H5T_NATIVE_DOUBLE, 2, dims, names, &d);
 *     mpmap_h5_dataset_write_rows(d, first, count, rows);  // any number of blocks
 *     mpmap_h5_dataset_close(d);
 *     mpmap_h5_write_provenance(f, &provenance);
 *     if (mpmap_h5_commit(f, err, sizeof err) != 0) fprintf(stderr, "%s\n", err);
 *
 * Errors: functions return 0 or a negative MPMAP_E* code. Functions without
 * an err buffer store a one-line message in the handle (mpmap_h5_error).
 * Failures are sticky: once any call on a handle has failed, mpmap_h5_commit
 * refuses (returns that first error and removes the temporary file), so a
 * file with a failed write is never published under the final name.
 */
#ifndef MPMAP_H5_H
#define MPMAP_H5_H

#include "mpmap.h"

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A comfortable size for error buffers; messages are truncated to fit any size. */
#define MPMAP_H5_ERROR_MAX 1024
/* Highest dataset rank accepted by mpmap_h5_dataset_create. */
#define MPMAP_H5_MAX_RANK 8
/* Rows of trace entries buffered before they are appended to the file. */
#define MPMAP_H5_TRACE_BUFFER 4096

typedef struct mpmap_h5 mpmap_h5;
typedef struct mpmap_h5_dataset mpmap_h5_dataset;

/*
 * Checks, without creating anything, that `path` can be written:
 *  - exists and !force -> MPMAP_EIO,
 *    "output 'X' exists (use --force to overwrite or --resume to continue)"
 *  - folder missing, not a folder or not writable, or path is a folder ->
 *    MPMAP_EIO, "cannot create output 'X': <strerror>", e.g.
 *    "cannot create output 'X': No such file or directory"
 *  - empty path -> MPMAP_EINVAL.
 * Apps call it while validating arguments, before any work.
 */
int mpmap_h5_check_output_path(const char *path, int force, char *err, size_t errlen);

/*
 * Creates "<final_path>.partial" (truncating a stale one) after the checks of
 * mpmap_h5_check_output_path. On failure *out is NULL, err says why and errno
 * is the system error behind it, or 0.
 */
int mpmap_h5_create(const char *final_path, int force, mpmap_h5 **out, char *err, size_t errlen);

/*
 * Flushes the trace, closes every dataset still open and the file, fsyncs it,
 * renames it to the final name and fsyncs the folder. Always frees f; on any
 * failure (including an earlier sticky one) the temporary file is removed and
 * err holds the message, and errno is the system error behind the failure
 * (ENOSPC for a full disk) or 0. Dataset handles of f are invalid afterwards.
 *
 * A full disk: HDF5 1.10 cannot close a file whose final flush fails (and
 * its shutdown then crashes in MPI_Finalize), so commit first allocates the
 * space the flush may need (fallocate, file size unchanged) and fails with
 * ENOSPC before flushing when the disk cannot take it; a file with a failed
 * write is closed without writing anything more to disk.
 */
int mpmap_h5_commit(mpmap_h5 *f, char *err, size_t errlen);

/* Closes everything, removes the temporary file and frees f (NULL is fine). */
/* The file is to be thrown away (a failed run): from now on its writes,
 * including those of closing its datasets, go nowhere, so a full disk
 * cannot make closing fail. Call before closing the datasets; then
 * mpmap_h5_abort. */
void mpmap_h5_discard(mpmap_h5 *f);
void mpmap_h5_abort(mpmap_h5 *f);

/* Message of the first failure on f, or "" if none. Never NULL. */
const char *mpmap_h5_error(const mpmap_h5 *f);
/* The system error (errno value, e.g. ENOSPC) behind the first failure on f,
 * or 0 when it was not one. */
int mpmap_h5_sys_errno(const mpmap_h5 *f);
/* Name of the temporary file being written, and of the final file. */
const char *mpmap_h5_partial_path(const mpmap_h5 *f);
const char *mpmap_h5_final_path(const mpmap_h5 *f);

/*
 * Paths and dimension names. Object paths are absolute ("/trace/begin") or
 * relative to the root ("density"); missing groups are created. A dimension
 * name is the path of its coordinate dataset: absolute, or relative to the
 * group of the dataset that uses it ("chunk" for "/trace/begin" means
 * "/trace/chunk"). A dimension must live in the dataset's own group
 * (MPMAP_EINVAL otherwise): xarray opens one group at a time and shows only
 * that group's coordinates. One dataset may not use the same dimension
 * twice (xarray does not support repeated dimensions).
 */

/*
 * Writes a 1-D coordinate dataset of n values at `path` and makes it a
 * dimension scale named after the last path component. type is
 * H5T_NATIVE_DOUBLE, H5T_NATIVE_INT64 or H5T_NATIVE_INT32. units and
 * long_name become attributes when not NULL. Write a coordinate before the
 * datasets that use it; a coordinate that exists already is MPMAP_EINVAL.
 */
int mpmap_h5_write_coordinate(mpmap_h5 *f, const char *path, hid_t type, int64_t n,
                              const void *values, const char *units, const char *long_name);

/*
 * Creates a dataset of `rank` (1..MPMAP_H5_MAX_RANK) axes of sizes dims[k]
 * named dim_names[k]. For each axis the coordinate of that name is attached
 * if it exists (its length must equal dims[k]); otherwise an int64 index
 * coordinate 0..dims[k]-1 of that name is created and attached. type is one
 * of H5T_NATIVE_DOUBLE, H5T_NATIVE_INT64, H5T_NATIVE_INT32 (stored little
 * endian). Datasets up to 1 MiB are contiguous; larger ones are chunked in
 * about 1 MiB chunks of whole rows, so rows can be streamed block by block.
 * Unwritten elements read as 0.
 */
int mpmap_h5_dataset_create(mpmap_h5 *f, const char *path, hid_t type, int rank,
                            const int64_t *dims, const char *const *dim_names,
                            mpmap_h5_dataset **out);

/*
 * Writes rows [first_row, first_row + nrows) along axis 0 from `data`
 * (nrows * dims[1] * ... * dims[rank-1] elements of the dataset's type, C
 * order). Blocks may come in any order; only that block is held in memory.
 */
int mpmap_h5_dataset_write_rows(mpmap_h5_dataset *d, int64_t first_row, int64_t nrows,
                                const void *data);
/* Writes the whole dataset. */
int mpmap_h5_dataset_write_all(mpmap_h5_dataset *d, const void *data);
/* Closes and frees d (NULL is fine). */
int mpmap_h5_dataset_close(mpmap_h5_dataset *d);

/*
 * Attributes on the object at obj_path (NULL or "/" = the file root); an
 * attribute of the same name is replaced. Strings are variable-length UTF-8.
 */
int mpmap_h5_attr_string(mpmap_h5 *f, const char *obj_path, const char *name, const char *value);
int mpmap_h5_attr_double(mpmap_h5 *f, const char *obj_path, const char *name, double value);
int mpmap_h5_attr_int64(mpmap_h5 *f, const char *obj_path, const char *name, int64_t value);
int mpmap_h5_attr_double_array(mpmap_h5 *f, const char *obj_path, const char *name, size_t n,
                               const double *values);
int mpmap_h5_attr_int64_array(mpmap_h5 *f, const char *obj_path, const char *name, size_t n,
                              const int64_t *values);

/*
 * Provenance of a run, written as root attributes (names in brackets):
 *   app                 [mpmap_app]            e.g. "kde"
 *   app_version         [mpmap_app_version]    NULL = MPMAP_VERSION_STRING
 *   argc, argv          [mpmap_command_line]   joined, shell-quoted where needed
 *   ranks               [mpmap_ranks]          int64
 *   schedule            [mpmap_schedule]       e.g. "guided"
 *   chunk               [mpmap_chunk]          int64
 *   wall_time           [mpmap_wall_time]      double, seconds
 *   start_time          [mpmap_start_time]     Unix time (mpmap_report.start_time;
 *                                              <= 0 = now), written as ISO 8601
 *                                              UTC "2024-05-01T12:34:56Z"
 * and always:
 *   [mpmap_host]          gethostname() of rank 0
 *   [mpmap_version]       MPMAP_VERSION_STRING of the library
 *   [mpmap_hdf5_version]  "1.10.8" (H5get_libversion)
 *   [history]             CF: "<start time> <command line>"
 * plus nextra attributes extra_keys[i] = extra_values[i] (strings, names
 * used verbatim, so prefix them with the app name).
 */
typedef struct mpmap_h5_provenance {
    const char *app;
    const char *app_version;
    int argc;
    char *const *argv;
    int ranks;
    const char *schedule;
    int64_t chunk;
    double wall_time;
    double start_time;
    int nextra;
    const char *const *extra_keys;
    const char *const *extra_values;
} mpmap_h5_provenance;

int mpmap_h5_write_provenance(mpmap_h5 *f, const mpmap_h5_provenance *p);

/*
 * Joins argv with spaces, single-quoting arguments that contain anything but
 * [A-Za-z0-9_@%+=:,./-] (and empty ones), so the line can be pasted into a
 * shell. Returns the length needed (excluding NUL), like snprintf.
 */
size_t mpmap_h5_join_command_line(int argc, char *const *argv, char *buf, size_t buflen);

/*
 * Appends one chunk to the /trace group: 1-D datasets begin, end (int64),
 * rank (int32), start, finish (float64, units "s", seconds since the run
 * started), all on the extendible dimension /trace/chunk (int64 0..n-1).
 * Entries are buffered MPMAP_H5_TRACE_BUFFER at a time; commit flushes the
 * rest. The group appears with the first entry. To use as job.trace:
 *
 *     static int app_trace(const mpmap_trace_entry *e, void *ctx)
 *     { return mpmap_h5_trace_append(((app_ctx *)ctx)->out, e); }
 */
int mpmap_h5_trace_append(mpmap_h5 *f, const mpmap_trace_entry *entry);
/* Writes buffered trace rows now (commit does it too). */
int mpmap_h5_trace_flush(mpmap_h5 *f);

/*
 * Splits "FILE:/DATASET" at the last ':' followed by '/', so file names may
 * contain ':'. file gets FILE, dataset gets "/DATASET". MPMAP_EINVAL with a
 * message when there is no such ':', either part is empty, or a buffer is
 * too small.
 */
int mpmap_h5_split_spec(const char *spec, char *file, size_t file_size, char *dataset,
                        size_t dataset_size, char *err, size_t errlen);

/*
 * Reads the floating-point dataset named by spec ("FILE.h5:/DATASET") as
 * native doubles into a new malloc'd row-major array (*data, free() it) of
 * *rows x *cols. A 2-D dataset is read as is; a 1-D dataset of n values is
 * read as n x 1 (one column). Errors (one line, *data = NULL):
 *   MPMAP_EINVAL "input 'S' is not FILE.h5:/DATASET"
 *   MPMAP_EIO    "cannot open input file 'F': No such file or directory"
 *   MPMAP_EIO    "input file 'F' is not an HDF5 file"
 *   MPMAP_EINVAL "input file 'F' has no dataset '/D'"
 *   MPMAP_EINVAL "'/D' in input file 'F' is not a dataset"
 *   MPMAP_EINVAL "dataset '/D' in 'F' has integer elements; expected floating point"
 *                (or string, compound, ... elements)
 *   MPMAP_EINVAL "dataset '/D' in 'F' is 3-D; expected 2-D (or 1-D, read as one column)"
 *   MPMAP_EINVAL "dataset '/D' in 'F' is empty (0 x 3)"
 *   MPMAP_EINVAL "dataset '/D' in 'F' contains a non-finite value at row R, column C"
 *                (R, C counted from 0, as in h5py and NumPy)
 *   MPMAP_ENOMEM "dataset '/D' in 'F' is too large to read (R x C)"
 *   MPMAP_EHDF5  for any other HDF5 failure, with HDF5's reason.
 */
int mpmap_h5_read_matrix(const char *spec, double **data, int64_t *rows, int64_t *cols, char *err,
                         size_t errlen);

/*
 * Writes a 1-D coordinate of n UTF-8 strings (variable length) at `path` and
 * makes it a dimension scale, like mpmap_h5_write_coordinate: label axes
 * such as a record's field names, so xarray selects by name
 * (ds.sel(field="max_z")). long_name becomes an attribute when not NULL.
 */
int mpmap_h5_write_string_coordinate(mpmap_h5 *f, const char *path, int64_t n,
                                     const char *const *values, const char *long_name);

#ifdef __cplusplus
}
#endif

#endif /* MPMAP_H5_H */
