/*
 * task_list: OUT.tails, the run's own side file (the time origin, the host
 * list, and every finished task's tails, checksummed records appended like
 * the joblog), the host list it keeps, and /stdout_tail and /stderr_tail,
 * which finish writes from it. See task_list.h.
 */
#define _GNU_SOURCE
#include "task_list.h"

#include <fcntl.h>
#include <hdf5.h>
#include <hdf5_hl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A tails record of OUT.tails: "T task outlen errlen hash\n" out err "\n". */
static uint64_t tails_hash(int64_t task, const char *out, size_t out_len, const char *err,
                           size_t err_len)
{
    uint64_t h = mpmap_app_hash(&task, sizeof task);
    h ^= mpmap_app_hash(out, out_len) * 31u;
    h ^= mpmap_app_hash(err, err_len) * 131u;
    return h;
}

int tl_append_tails(int fd, int64_t task, const char *out, size_t out_len, const char *err,
                    size_t err_len)
{
    char head[128];
    int n = snprintf(head, sizeof head, "T %lld %zu %zu %016" PRIx64 "\n", (long long)task, out_len,
                     err_len, tails_hash(task, out, out_len, err, err_len));
    size_t total = (size_t)n + out_len + err_len + 1;
    char *buf = malloc(total);
    if (!buf)
        return -1;
    memcpy(buf, head, (size_t)n);
    memcpy(buf + n, out, out_len);
    memcpy(buf + n + out_len, err, err_len);
    buf[total - 1] = '\n';
    int rc = write_all(fd, buf, total);
    free(buf);
    return rc;
}

/* Rank 0: host list and origin from OUT.tails of an interrupted run; checks
 * that the task list is the same. */
static int read_state(tl_list *s, char ***hosts, int *nhosts, char *msg, size_t msglen)
{
    FILE *f = fopen(s->tails, "rb");
    if (!f)
        return 0; /* nothing kept: times and hosts start anew */
    char line[TL_HOST_MAX + 64];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == 'L') {
            long long n = 0;
            uint64_t h = 0;
            if (sscanf(line, "L %lld %" SCNx64, &n, &h) == 2 && (n != s->ntasks || h != s->hash)) {
                snprintf(msg, msglen,
                         "--resume: the task list '%s' changed since the interrupted run (%lld "
                         "tasks, hash %016" PRIx64 "; it had %lld tasks, hash %016" PRIx64
                         "); use --force to start over",
                         s->tasks_path, (long long)s->ntasks, s->hash, n, h);
                fclose(f);
                return -1;
            }
        } else if (line[0] == 'O') {
            sscanf(line, "O %lf", &s->origin);
        } else if (line[0] == 'H' && line[1] == ' ') {
            char **grown = realloc(*hosts, (size_t)(*nhosts + 1) * sizeof **hosts);
            if (grown) {
                *hosts = grown;
                (*hosts)[(*nhosts)++] = strdup(line + 2);
            }
        } else if (line[0] == 'T') {
            /* skip the record's bytes */
            long long t;
            size_t a, b;
            if (sscanf(line, "T %lld %zu %zu", &t, &a, &b) == 3)
                fseek(f, (long)(a + b + 1), SEEK_CUR);
        }
    }
    fclose(f);
    return 0;
}

static int find_host(char **hosts, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(hosts[i], name) == 0)
            return i;
    return -1;
}

/* Rank 0: prepares the joblog and OUT.tails and the host list; fills
 * *hosts_text, *origin, the host index of every rank, and for
 * --resume-failed the previous records. */
static int prepare_files(tl_list *s, const char *names, int size, int *host_of, char *msg,
                         size_t msglen)
{
    const mpmap_cli_common *c = mpmap_app_common(s->app);
    char **hosts = NULL;
    int nhosts = 0;
    bool resume = c->resume;
    char ckpt[TL_PATH_MAX + 8];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", s->output);
    s->origin = unix_now();
    tl_previous prev = { 0 };
    if (resume && !exists(ckpt)) {
        /* The kit refuses, or finds the output complete: touch nothing. */
        for (int r = 0; r < size; r++)
            host_of[r] = 0;
        s->hosts_text = strdup("?\n");
        return s->hosts_text ? 0 : -1;
    }
    if (resume && read_state(s, &hosts, &nhosts, msg, msglen) != 0)
        return -1;
    /* --resume-failed (also when it resumes an interrupted --resume-failed
     * run: OUT is still the previous output until the commit). */
    if (s->resume_failed) {
        if (tl_read_previous(s, &prev, msg, msglen) != 0) {
            tl_free_previous(&prev, s->ntasks);
            return -1;
        }
        if (!resume) {
            s->origin = prev.origin;
            hosts = prev.hosts;
            nhosts = prev.nhosts;
            prev.hosts = NULL;
            prev.nhosts = 0;
        }
    }
    /* OUT.tails: fresh, or appended to by --resume. */
    int fd =
        open(s->tails, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (resume ? 0 : O_TRUNC), 0644);
    if (fd < 0) {
        snprintf(msg, msglen, "--output: cannot write '%s': %s", s->tails, strerror(errno));
        tl_free_previous(&prev, s->ntasks);
        return -1;
    }
    char head[128];
    if (!resume) {
        int n = snprintf(head, sizeof head, "L %lld %016" PRIx64 "\nO %.17g\n",
                         (long long)s->ntasks, s->hash, s->origin);
        write_all(fd, head, (size_t)n);
        for (int i = 0; i < nhosts; i++) {
            char line[TL_HOST_MAX + 4];
            int m = snprintf(line, sizeof line, "H %s\n", hosts[i]);
            write_all(fd, line, (size_t)m);
        }
    }
    for (int r = 0; r < size; r++) {
        const char *name = names + (size_t)r * TL_HOST_MAX;
        int k = find_host(hosts, nhosts, name);
        if (k < 0) {
            char **grown = realloc(hosts, (size_t)(nhosts + 1) * sizeof *hosts);
            if (!grown || !(grown[nhosts] = strdup(name))) {
                snprintf(msg, msglen, "out of memory");
                return -1;
            }
            hosts = grown;
            k = nhosts++;
            char line[TL_HOST_MAX + 4];
            int m = snprintf(line, sizeof line, "H %s\n", name);
            write_all(fd, line, (size_t)m);
        }
        host_of[r] = k;
    }
    /* The tasks --resume-failed keeps: their tails go to the new output. */
    if (prev.recs) {
        s->previous = prev.recs;
        prev.recs = NULL;
        for (int64_t t = 0; t < s->ntasks; t++) {
            if (s->previous[t].status == 0) {
                const char *o = prev.out_tail[t] ? prev.out_tail[t] : "";
                const char *e = prev.err_tail[t] ? prev.err_tail[t] : "";
                if (!resume) /* else written by the interrupted run */
                    tl_append_tails(fd, t, o, strlen(o), e, strlen(e));
                s->kept++;
            } else {
                s->previous_failed++;
            }
        }
    }
    tl_free_previous(&prev, s->ntasks);
    close(fd);
    if (tl_joblog_create(s, !resume && !s->resume_failed, msg, msglen) != 0)
        return -1;
    size_t total = 1;
    for (int i = 0; i < nhosts; i++)
        total += strlen(hosts[i]) + 1;
    s->hosts_text = malloc(total);
    if (!s->hosts_text)
        return -1;
    s->hosts_text[0] = '\0';
    for (int i = 0; i < nhosts; i++) {
        strcat(s->hosts_text, hosts[i]);
        strcat(s->hosts_text, "\n");
        free(hosts[i]);
    }
    free(hosts);
    return 0;
}

int tl_setup_files(tl_list *s, char *msg, size_t msglen)
{
    int size = mpmap_app_size(s->app);
    MPI_Comm comm = mpmap_app_comm(s->app);
    /* Hosts: rank 0 gathers the names, keeps the list in OUT.tails (so a
     * resumed run's indices mean the same hosts) and says which is whose. */
    char me[TL_HOST_MAX] = "";
    gethostname(me, sizeof me - 1);
    char *names = s->rank == 0 ? calloc((size_t)size, TL_HOST_MAX) : NULL;
    int *host_of = calloc((size_t)size, sizeof *host_of);
    MPI_Gather(me, TL_HOST_MAX, MPI_CHAR, names, TL_HOST_MAX, MPI_CHAR, 0, comm);
    int64_t verdict[3] = { 0, 0, 0 }; /* error, hosts_text length, previous */
    if (s->rank == 0) {
        if (!names || !host_of || prepare_files(s, names, size, host_of, msg, msglen) != 0)
            verdict[0] = 1;
        else
            verdict[1] = (int64_t)strlen(s->hosts_text) + 1;
        verdict[2] = s->previous != NULL;
    }
    free(names);
    MPI_Bcast(verdict, 3, MPI_INT64_T, 0, comm);
    if (verdict[0]) {
        free(host_of);
        return -1;
    }
    MPI_Scatter(host_of, 1, MPI_INT, &s->my_host, 1, MPI_INT, 0, comm);
    free(host_of);
    MPI_Bcast(&s->origin, 1, MPI_DOUBLE, 0, comm);
    if (s->rank != 0)
        s->hosts_text = malloc((size_t)verdict[1]);
    MPI_Bcast(s->hosts_text, (int)verdict[1], MPI_CHAR, 0, comm);
    for (char *h = s->hosts_text; *h; h = strchr(h, '\n') + 1)
        s->nhosts++;
    s->hosts = calloc((size_t)s->nhosts + 1, sizeof *s->hosts);
    char *h = s->hosts_text;
    for (int i = 0; i < s->nhosts; i++) {
        s->hosts[i] = h;
        h = strchr(h, '\n');
        *h++ = '\0';
    }
    if (verdict[2]) {
        if (s->rank != 0)
            s->previous = malloc((size_t)s->ntasks * sizeof *s->previous);
        MPI_Bcast(s->previous, (int)((size_t)s->ntasks * sizeof *s->previous), MPI_BYTE, 0, comm);
    }
    /* Every rank appends to the joblog and OUT.tails (rank 0 made them). */
    s->joblog_fd = open(s->joblog, O_WRONLY | O_APPEND | O_CLOEXEC);
    s->tails_fd = open(s->tails, O_WRONLY | O_APPEND | O_CLOEXEC);
    return 0;
}

/* ---- finish: tails into the output ------------------------------------------------ */

/* Text as valid UTF-8 without NUL: other bytes become '?'. In place. */
static void sanitize(char *t, size_t n)
{
    size_t i = 0;
    /* A tail may start inside a character. */
    while (i < n && ((unsigned char)t[i] & 0xC0) == 0x80)
        t[i++] = '?';
    while (i < n) {
        unsigned char c = (unsigned char)t[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = len > 0 && i + len <= n && c != 0;
        for (size_t k = 1; ok && k < len; k++)
            ok = ((unsigned char)t[i + k] & 0xC0) == 0x80;
        if (!ok) {
            t[i++] = '?';
            continue;
        }
        i += len;
    }
}

int tl_write_tails(tl_list *s, mpmap_app *app)
{
    int64_t n = s->ntasks;
    char **out = calloc((size_t)n, sizeof *out), **err = calloc((size_t)n, sizeof *err);
    char *data = NULL;
    size_t len = 0;
    FILE *f = fopen(s->tails, "rb");
    if (f) {
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, 0, SEEK_SET);
        data = size >= 0 ? malloc((size_t)size + 1) : NULL;
        if (data)
            len = fread(data, 1, (size_t)size, f);
        fclose(f);
    }
    int rc = out && err ? 0 : -1;
    /* Records in order; the last one of a task wins (a task re-run after
     * its first result was lost). A damaged record is skipped. */
    size_t i = 0;
    while (rc == 0 && data && i < len) {
        char *nl = memchr(data + i, '\n', len - i);
        if (!nl)
            break;
        *nl = '\0';
        long long t;
        size_t a, b;
        uint64_t h;
        size_t next = (size_t)(nl - data) + 1;
        if (data[i] == 'T' && sscanf(data + i, "T %lld %zu %zu %" SCNx64, &t, &a, &b, &h) == 4 &&
            next + a + b + 1 <= len && t >= 0 && t < n &&
            tails_hash(t, data + next, a, data + next + a, b) == h) {
            const char *o = data + next, *e = data + next + a;
            next += a + b + 1;
            char *oc = malloc(a + 1), *ec = malloc(b + 1);
            if (!oc || !ec) {
                free(oc);
                free(ec);
                rc = -1;
                break;
            }
            memcpy(oc, o, a);
            oc[a] = '\0';
            memcpy(ec, e, b);
            ec[b] = '\0';
            sanitize(oc, a);
            sanitize(ec, b);
            free(out[t]);
            free(err[t]);
            out[t] = oc;
            err[t] = ec;
        }
        i = next;
    }
    free(data);
    const char *empty = "";
    for (int64_t t = 0; rc == 0 && t < n; t++) {
        if (!out[t])
            out[t] = (char *)empty;
        if (!err[t])
            err[t] = (char *)empty;
    }
    /* A second handle on the open output file: the kit writes numbers only.
     * HDF5 wants it opened with the same file locking as the kit's, which
     * a --live output reopens without (its readers hold shared locks). */
    hid_t fid = -1;
    if (rc == 0) {
        hid_t unlocked = H5Pcreate(H5P_FILE_ACCESS);
        H5E_BEGIN_TRY
        {
            fid = H5Fopen(mpmap_h5_partial_path(mpmap_app_h5(app)), H5F_ACC_RDWR, H5P_DEFAULT);
            if (fid < 0 && unlocked >= 0 && H5Pset_file_locking(unlocked, 0, 1) >= 0)
                fid = H5Fopen(mpmap_h5_partial_path(mpmap_app_h5(app)), H5F_ACC_RDWR, unlocked);
        }
        H5E_END_TRY;
        if (unlocked >= 0)
            H5Pclose(unlocked);
        rc = fid < 0 ? -1 : 0;
    }
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    for (int k = 0; rc == 0 && k < 2; k++) {
        hsize_t dim = (hsize_t)n;
        hid_t space = H5Screate_simple(1, &dim, NULL);
        const char *name = k ? "/stderr_tail" : "/stdout_tail";
        hid_t ds = H5Dcreate2(fid, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        hid_t scale = H5Dopen2(fid, "/task", H5P_DEFAULT);
        if (ds < 0 || H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, k ? err : out) < 0 ||
            (scale >= 0 && H5DSattach_scale(ds, scale, 0) < 0))
            rc = -1;
        if (scale >= 0)
            H5Dclose(scale);
        if (ds >= 0)
            H5Dclose(ds);
        H5Sclose(space);
    }
    H5Tclose(type);
    if (fid >= 0 && H5Fclose(fid) < 0)
        rc = -1;
    mpmap_h5 *h5 = mpmap_app_h5(app);
    if (rc == 0)
        rc = mpmap_h5_attr_string(h5, "/stdout_tail", "long_name",
                                  "last bytes of the command's stdout (its last run)");
    if (rc == 0)
        rc = mpmap_h5_attr_string(h5, "/stderr_tail", "long_name",
                                  "last bytes of the command's stderr (its last run)");
    for (int64_t t = 0; out && err && t < n; t++) {
        if (out[t] != empty)
            free(out[t]);
        if (err[t] != empty)
            free(err[t]);
    }
    free(out);
    free(err);
    return rc;
}
