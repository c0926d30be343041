/* Open MPI start-up on one machine: see mpi_launch.h. */
#define _POSIX_C_SOURCE 200809L
#include "mpi_launch.h"

#include <errno.h>
#include <stdlib.h>

static int is_set(mpi_launch_lookup_fn lookup, void *context, const char *name)
{
    const char *v = lookup(name, context);
    return v != NULL && v[0] != '\0';
}

/* A positive decimal count, or -1. */
static long parse_count(const char *text)
{
    if (text == NULL || text[0] == '\0')
        return -1;
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1)
        return -1;
    return v;
}

int mpi_launch_one_node_defaults(mpi_launch_lookup_fn lookup, void *context)
{
    if (is_set(lookup, context, "OMPI_MCA_pml") || is_set(lookup, context, "OMPI_MCA_mtl"))
        return 0; /* the user's choice */
    const char *world = lookup("OMPI_COMM_WORLD_SIZE", context);
    const char *local = lookup("OMPI_COMM_WORLD_LOCAL_SIZE", context);
    if (world != NULL || local != NULL) {
        const long w = parse_count(world), l = parse_count(local);
        return w > 0 && w == l;
    }
    /* srun says how many nodes its job step spans. */
    const char *step_nodes = lookup("SLURM_STEP_NUM_NODES", context);
    if (step_nodes != NULL && lookup("SLURM_PROCID", context) != NULL)
        return parse_count(step_nodes) == 1;
    /* Not started by mpirun or srun: a singleton, unless another launcher did it. */
    static const char *const launchers[] = {
        "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "SLURM_PROCID", "PALS_RANKID", "ALPS_APP_PE", NULL
    };
    for (int i = 0; launchers[i] != NULL; i++)
        if (lookup(launchers[i], context) != NULL)
            return 0;
    return 1;
}

static const char *real_environment(const char *name, void *context)
{
    (void)context;
    return getenv(name);
}

void mpi_launch_prepare(void)
{
    if (mpi_launch_one_node_defaults(real_environment, NULL))
        (void)setenv("OMPI_MCA_pml", "ob1", 0);
}
