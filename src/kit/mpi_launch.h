/*
 * Open MPI start-up on one machine.
 *
 * Left to itself, Open MPI's MPI_Init probes every network stack it was
 * built with (libfabric/OFI, PSM, PSM2 through the "cm" PML) before it
 * settles on shared memory; on a workstation that probe is most of a short
 * run's start-up (about 0.2 s of 0.33 s per rank set on a 2-core machine).
 * When every rank of the job is on one node, the "ob1" PML with the shared-
 * memory BTL is what Open MPI ends up using anyway, so the apps ask for it
 * up front. A job that spans nodes, or a user who chose a PML or MTL
 * (OMPI_MCA_pml / OMPI_MCA_mtl in the environment), is left alone.
 */
#ifndef MPI_LAUNCH_H
#define MPI_LAUNCH_H

#ifdef __cplusplus
extern "C" {
#endif

/* Returns the value of an environment variable, or NULL when it is unset. */
typedef const char *(*mpi_launch_lookup_fn)(const char *name, void *context);

/*
 * 1 when the ranks are known to share one node and the user made no choice
 * of PML or MTL:
 *   - started by Open MPI's mpirun: OMPI_COMM_WORLD_LOCAL_SIZE equals
 *     OMPI_COMM_WORLD_SIZE;
 *   - started by srun: SLURM_STEP_NUM_NODES is 1;
 *   - started alone (no mpirun, no PMI/PMIx/SLURM launcher variables): a
 *     singleton is one process on one node.
 * 0 otherwise, also when another launcher (PMI, PALS, ALPS) started the
 * ranks: it does not say how many nodes the job spans.
 */
int mpi_launch_one_node_defaults(mpi_launch_lookup_fn lookup, void *context);

/* Before MPI_Init: sets OMPI_MCA_pml=ob1 in this process's environment when
 * mpi_launch_one_node_defaults says so for the real environment. */
void mpi_launch_prepare(void);

#ifdef __cplusplus
}
#endif

#endif /* MPI_LAUNCH_H */
