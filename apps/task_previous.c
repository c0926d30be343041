/*
 * task_list --resume-failed: reads the records, tails and hosts of the
 * finished previous output (rank 0). See task_list.h.
 */
#define _GNU_SOURCE
#include "task_list.h"

#include <hdf5.h>
#include <hdf5_hl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_strings(hid_t fid, const char *name, int64_t n, char ***out)
{
    hid_t ds = H5Dopen2(fid, name, H5P_DEFAULT);
    if (ds < 0)
        return -1;
    hid_t ftype = H5Dget_type(ds);
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5Tget_cset(ftype));
    H5Tclose(ftype);
    hid_t space = H5Dget_space(ds);
    hssize_t count = H5Sget_simple_extent_npoints(space);
    int rc = -1;
    if (count == n) {
        *out = calloc((size_t)n + 1, sizeof **out);
        if (*out && H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) >= 0)
            rc = 0;
    }
    H5Sclose(space);
    H5Tclose(type);
    H5Dclose(ds);
    return rc;
}

/* A root attribute holding text (variable-length or fixed), into buf. */
static int read_attr_string(hid_t fid, const char *name, char *buf, size_t len)
{
    hid_t attr = H5Aopen(fid, name, H5P_DEFAULT);
    if (attr < 0)
        return -1;
    hid_t ftype = H5Aget_type(attr);
    int rc = -1;
    if (ftype >= 0 && H5Tget_class(ftype) == H5T_STRING) {
        hid_t mtype = H5Tcopy(H5T_C_S1);
        if (H5Tis_variable_str(ftype) > 0) {
            char *value = NULL;
            H5Tset_size(mtype, H5T_VARIABLE);
            H5Tset_cset(mtype, H5Tget_cset(ftype));
            if (H5Aread(attr, mtype, &value) >= 0 && value) {
                snprintf(buf, len, "%s", value);
                H5free_memory(value);
                rc = 0;
            }
        } else {
            size_t size = H5Tget_size(ftype);
            char *value = calloc(1, size + 1);
            H5Tset_size(mtype, size + 1);
            if (value && H5Aread(attr, mtype, value) >= 0) {
                snprintf(buf, len, "%s", value);
                rc = 0;
            }
            free(value);
        }
        H5Tclose(mtype);
    }
    if (ftype >= 0)
        H5Tclose(ftype);
    H5Aclose(attr);
    return rc;
}

int tl_read_previous(tl_list *s, tl_previous *p, char *msg, size_t msglen)
{
    if (!exists(s->output)) {
        snprintf(msg, msglen,
                 "--resume-failed: no finished output '%s' to take the failed tasks "
                 "from",
                 s->output);
        return -1;
    }
    hid_t fid;
    H5E_BEGIN_TRY { fid = H5Fopen(s->output, H5F_ACC_RDONLY, H5P_DEFAULT); }
    H5E_END_TRY;
    if (fid < 0) {
        snprintf(msg, msglen, "--resume-failed: cannot open '%s' as HDF5", s->output);
        return -1;
    }
    char hash[64] = "";
    char mine[32];
    snprintf(mine, sizeof mine, "%016" PRIx64, s->hash);
    int rc = -1;
    herr_t e;
    H5E_BEGIN_TRY { e = read_attr_string(fid, "tasks_hash", hash, sizeof hash); }
    H5E_END_TRY;
    if (e < 0 || strcmp(hash, mine) != 0) {
        snprintf(msg, msglen,
                 "--resume-failed: '%s' was not made from this task list (its tasks_hash %s, "
                 "'%s' has %s); use --force to start over",
                 s->output, e < 0 ? "is missing" : hash, s->tasks_path, mine);
        H5Fclose(fid);
        return -1;
    }
    int64_t n = s->ntasks;
    p->recs = calloc((size_t)n + 1, sizeof *p->recs);
    int32_t *i32 = malloc((size_t)n * 4 + 4);
    double *f64 = malloc((size_t)n * 8 + 8);
    const char *ints[] = { "/status", "/exit_code", "/signal", "/attempts", "/rank", "/host" };
    H5E_BEGIN_TRY
    {
        rc = p->recs && i32 && f64 ? 0 : -1;
        for (int k = 0; rc == 0 && k < 6; k++) {
            rc = H5LTread_dataset_int(fid, ints[k], i32) < 0 ? -1 : 0;
            for (int64_t t = 0; rc == 0 && t < n; t++) {
                int32_t *dst = &p->recs[t].status + k;
                *dst = i32[t];
            }
        }
        for (int k = 0; rc == 0 && k < 2; k++) {
            rc = H5LTread_dataset_double(fid, k ? "/end" : "/start", f64) < 0 ? -1 : 0;
            for (int64_t t = 0; rc == 0 && t < n; t++)
                *(k ? &p->recs[t].end : &p->recs[t].start) = f64[t];
        }
        if (rc == 0 && H5LTget_attribute_double(fid, "/", "time_origin", &p->origin) < 0)
            rc = -1;
        if (rc == 0)
            rc = read_strings(fid, "/stdout_tail", n, &p->out_tail);
        if (rc == 0)
            rc = read_strings(fid, "/stderr_tail", n, &p->err_tail);
        hsize_t nh = 0;
        if (rc == 0) {
            hid_t ds = H5Dopen2(fid, "/hosts", H5P_DEFAULT);
            hid_t sp = ds >= 0 ? H5Dget_space(ds) : -1;
            nh = sp >= 0 ? (hsize_t)H5Sget_simple_extent_npoints(sp) : 0;
            if (sp >= 0)
                H5Sclose(sp);
            if (ds >= 0)
                H5Dclose(ds);
            p->nhosts = (int)nh;
            rc = ds >= 0 ? read_strings(fid, "/hosts", (int64_t)nh, &p->hosts) : -1;
        }
    }
    H5E_END_TRY;
    free(i32);
    free(f64);
    H5Fclose(fid);
    if (rc != 0)
        snprintf(msg, msglen, "--resume-failed: '%s' is not a complete task_list output",
                 s->output);
    return rc;
}

void tl_free_previous(tl_previous *p, int64_t n)
{
    for (int64_t t = 0; p->out_tail && t < n; t++)
        H5free_memory(p->out_tail[t]);
    for (int64_t t = 0; p->err_tail && t < n; t++)
        H5free_memory(p->err_tail[t]);
    for (int i = 0; p->hosts && i < p->nhosts; i++)
        H5free_memory(p->hosts[i]);
    free(p->out_tail);
    free(p->err_tail);
    free(p->hosts);
    free(p->recs);
}
