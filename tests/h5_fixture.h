/* The fixture of the cmocka tests of the HDF5 writer: a scratch directory
 * per test (scratch_dir.h), and at teardown the check that the test left no
 * HDF5 id open, in the library or in the test. Include after cmocka.h. */
#ifndef MPMAP_TESTS_H5_FIXTURE_H
#define MPMAP_TESTS_H5_FIXTURE_H

#include "scratch_dir.h"

#include <hdf5.h>

typedef scratch_dir fixture;

static inline int h5_fixture_setup(void **state, const char *prefix)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx || scratch_make(fx, prefix) != 0) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static inline int h5_fixture_teardown(void **state)
{
    fixture *fx = *state;
    ssize_t open_ids = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    scratch_remove(fx);
    free(fx);
    assert_int_equal(open_ids, 0);
    return 0;
}

static inline void path_in(const fixture *fx, const char *name, char *out, size_t len)
{
    scratch_path(fx, name, out, len);
}

#endif
