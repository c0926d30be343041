/*
 * task_list's record: the layout of one task's row (the fields /status ..
 * /end and the /hosts coordinate), a row written, the run's counts, and the
 * fingerprint. See task_list.h.
 */
#define _GNU_SOURCE
#include "task_list.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Every rank, in setup once the hosts are known. */
void tl_describe_record(tl_list *s)
{
    mpmap_app_problem *p = &s->problem;
    p->ntasks = s->ntasks;
    p->task_dim = "task";
    /* clang-format off */
    p->coords[p->ncoords++] = (mpmap_app_coord){ .name = "hosts", .n = s->nhosts,
                                                 .strings = (const char *const *)s->hosts,
                                                 .long_name = "host names (/host indexes them)" };
    /* clang-format on */
    static const struct {
        const char *name, *units, *long_name;
        mpmap_datatype type;
        bool keep;
    } fields[F_COUNT] = {
        { "status", NULL, "outcome of each task (0 = ok)", MPMAP_INT32, true },
        { "exit_code", NULL, "exit code of the command's last run (-1: ended by a signal)",
          MPMAP_INT32, false },
        { "signal", NULL, "signal that ended the command's last run (0: none)", MPMAP_INT32,
          false },
        { "attempts", NULL, "times the command was run (1 + retries used)", MPMAP_INT32, true },
        { "rank", NULL, "MPI rank that ran the task", MPMAP_INT32, false },
        { "host", NULL, "index into /hosts of the host that ran the task", MPMAP_INT32, false },
        { "start", "s", "start of the first run, seconds since time_origin", MPMAP_DOUBLE, false },
        { "end", "s", "end of the last run, seconds since time_origin", MPMAP_DOUBLE, false },
    };
    for (int i = 0; i < F_COUNT; i++)
        p->fields[p->nfields++] = (mpmap_app_field){ .name = fields[i].name,
                                                     .type = fields[i].type,
                                                     .units = fields[i].units,
                                                     .long_name = fields[i].long_name,
                                                     .keep = fields[i].keep };
    char prev[64] = "";
    if (s->previous) {
        uint64_t ph = mpmap_app_hash(s->previous, (size_t)s->ntasks * sizeof *s->previous);
        snprintf(prev, sizeof prev, " previous=%016" PRIx64, ph);
    }
    snprintf(p->fingerprint, sizeof p->fingerprint, "tasks=%lld:%016" PRIx64 "%s",
             (long long)s->ntasks, s->hash, prev);
}

void tl_put_rec(const tl_list *s, char *dst, const tl_rec *r)
{
    const size_t *o = s->problem.offset;
    memcpy(dst + o[F_STATUS], &r->status, 4);
    memcpy(dst + o[F_EXIT], &r->exit_code, 4);
    memcpy(dst + o[F_SIGNAL], &r->signal, 4);
    memcpy(dst + o[F_ATTEMPTS], &r->attempts, 4);
    memcpy(dst + o[F_RANK], &r->rank, 4);
    memcpy(dst + o[F_HOST], &r->host, 4);
    memcpy(dst + o[F_START], &r->start, 8);
    memcpy(dst + o[F_END], &r->end, 8);
}

void tl_counts(const mpmap_app *app, int64_t n, int64_t *failed, int64_t *retried)
{
    const int32_t *status = mpmap_app_field_data(app, "status");
    const int32_t *attempts = mpmap_app_field_data(app, "attempts");
    *failed = *retried = 0;
    for (int64_t t = 0; status && attempts && t < n; t++) {
        int32_t a, st;
        memcpy(&st, status + t, 4);
        memcpy(&a, attempts + t, 4);
        *failed += st != 0;
        *retried += a > 1;
    }
}
