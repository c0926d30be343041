/* Unit tests of mpi_launch: when the apps pick Open MPI's shared-memory PML. */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "mpi_launch.h"

/* A fake environment: NULL-terminated "NAME=VALUE" strings. */
static const char *fake_lookup(const char *name, void *context)
{
    const char *const *env = context;
    const size_t len = strlen(name);
    for (; *env != NULL; env++)
        if (strncmp(*env, name, len) == 0 && (*env)[len] == '=')
            return *env + len + 1;
    return NULL;
}

static int decide(const char **env) { return mpi_launch_one_node_defaults(fake_lookup, env); }

static void test_mpirun_on_one_node_picks_ob1(void **state)
{
    (void)state;
    const char *env[] = { "OMPI_COMM_WORLD_SIZE=8", "OMPI_COMM_WORLD_LOCAL_SIZE=8", "PMIX_RANK=3",
                          NULL };
    assert_int_equal(decide(env), 1);
}

static void test_mpirun_across_nodes_is_left_alone(void **state)
{
    (void)state;
    const char *env[] = { "OMPI_COMM_WORLD_SIZE=64", "OMPI_COMM_WORLD_LOCAL_SIZE=32", NULL };
    assert_int_equal(decide(env), 0);
}

static void test_users_choice_wins(void **state)
{
    (void)state;
    const char *pml[] = { "OMPI_COMM_WORLD_SIZE=2", "OMPI_COMM_WORLD_LOCAL_SIZE=2",
                          "OMPI_MCA_pml=ucx", NULL };
    const char *mtl[] = { "OMPI_COMM_WORLD_SIZE=2", "OMPI_COMM_WORLD_LOCAL_SIZE=2",
                          "OMPI_MCA_mtl=psm2", NULL };
    const char *single_pml[] = { "OMPI_MCA_pml=cm", NULL };
    assert_int_equal(decide(pml), 0);
    assert_int_equal(decide(mtl), 0);
    assert_int_equal(decide(single_pml), 0);
    /* An empty value is no choice. */
    const char *empty[] = { "OMPI_COMM_WORLD_SIZE=2", "OMPI_COMM_WORLD_LOCAL_SIZE=2",
                            "OMPI_MCA_pml=", NULL };
    assert_int_equal(decide(empty), 1);
}

static void test_singleton_picks_ob1(void **state)
{
    (void)state;
    const char *env[] = { "HOME=/root", "PATH=/usr/bin", NULL };
    assert_int_equal(decide(env), 1);
}

static void test_srun_step_on_one_node_picks_ob1(void **state)
{
    (void)state;
    const char *one[] = { "SLURM_PROCID=1", "SLURM_STEP_NUM_NODES=1", "PMIX_RANK=1", NULL };
    const char *two[] = { "SLURM_PROCID=1", "SLURM_STEP_NUM_NODES=2", "PMIX_RANK=1", NULL };
    const char *bad[] = { "SLURM_PROCID=1", "SLURM_STEP_NUM_NODES=one", NULL };
    assert_int_equal(decide(one), 1);
    assert_int_equal(decide(two), 0);
    assert_int_equal(decide(bad), 0);
}

static void test_other_launchers_are_left_alone(void **state)
{
    (void)state;
    const char *names[] = { "PMIX_RANK=0",    "PMI_RANK=0",    "PMI_SIZE=4",
                            "SLURM_PROCID=0", "PALS_RANKID=0", "ALPS_APP_PE=0" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *env[] = { names[i], NULL };
        if (decide(env) != 0)
            fail_msg("launched with %s: must be left alone", names[i]);
    }
}

static void test_malformed_sizes_are_left_alone(void **state)
{
    (void)state;
    const char *cases[][3] = {
        { "OMPI_COMM_WORLD_SIZE=2", NULL, NULL },
        { "OMPI_COMM_WORLD_LOCAL_SIZE=2", NULL, NULL },
        { "OMPI_COMM_WORLD_SIZE=2x", "OMPI_COMM_WORLD_LOCAL_SIZE=2x", NULL },
        { "OMPI_COMM_WORLD_SIZE=0", "OMPI_COMM_WORLD_LOCAL_SIZE=0", NULL },
        { "OMPI_COMM_WORLD_SIZE=", "OMPI_COMM_WORLD_LOCAL_SIZE=", NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (decide(cases[i]) != 0)
            fail_msg("case %zu: sizes '%s', '%s' must be left alone", i, cases[i][0],
                     cases[i][1] ? cases[i][1] : "(unset)");
}

static void test_prepare_sets_the_real_environment(void **state)
{
    (void)state;
    unsetenv("OMPI_MCA_pml");
    unsetenv("OMPI_MCA_mtl");
    setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "4", 1);
    mpi_launch_prepare();
    assert_non_null(getenv("OMPI_MCA_pml"));
    assert_string_equal(getenv("OMPI_MCA_pml"), "ob1");

    unsetenv("OMPI_MCA_pml");
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2", 1);
    mpi_launch_prepare();
    assert_null(getenv("OMPI_MCA_pml"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mpirun_on_one_node_picks_ob1),
        cmocka_unit_test(test_mpirun_across_nodes_is_left_alone),
        cmocka_unit_test(test_users_choice_wins),
        cmocka_unit_test(test_singleton_picks_ob1),
        cmocka_unit_test(test_srun_step_on_one_node_picks_ob1),
        cmocka_unit_test(test_other_launchers_are_left_alone),
        cmocka_unit_test(test_malformed_sizes_are_left_alone),
        cmocka_unit_test(test_prepare_sets_the_real_environment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
