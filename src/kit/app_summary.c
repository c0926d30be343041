/*
 * What an app writes in finish besides its fields (rank 0): root attributes
 * from a table, and whole datasets such as query points or a reference.
 */
#define _POSIX_C_SOURCE 200809L
#include "mpmap_app.h"

#include <stdio.h>

int mpmap_app_attrs(mpmap_app *app, const mpmap_app_attr *attrs, size_t n)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const mpmap_app_attr *a = &attrs[i];
        if (!a->name)
            continue;
        switch (a->kind) {
        case MPMAP_APP_ATTR_INT64: rc = mpmap_app_attr_int64(app, a->name, a->int64_value); break;
        case MPMAP_APP_ATTR_DOUBLE:
            rc = mpmap_app_attr_double(app, a->name, a->double_value);
            break;
        case MPMAP_APP_ATTR_STRING:
            rc = mpmap_app_attr_string(app, a->name, a->string_value);
            break;
        default: rc = MPMAP_EINVAL; break;
        }
    }
    return rc;
}

int mpmap_app_write_array(mpmap_app *app, const mpmap_app_field *array, const void *data)
{
    mpmap_h5 *f = mpmap_app_h5(app);
    hid_t type = array->type == MPMAP_DOUBLE  ? H5T_NATIVE_DOUBLE
                 : array->type == MPMAP_INT64 ? H5T_NATIVE_INT64
                                              : H5T_NATIVE_INT32;
    char path[256];
    snprintf(path, sizeof path, "/%s", array->name);
    mpmap_h5_dataset *ds = NULL;
    int rc = mpmap_h5_dataset_create(f, path, type, array->rank, array->shape, array->dims, &ds);
    if (rc == 0)
        rc = mpmap_h5_dataset_write_all(ds, data);
    if (ds)
        rc |= mpmap_h5_dataset_close(ds);
    if (rc == 0 && array->units)
        rc = mpmap_h5_attr_string(f, path, "units", array->units);
    if (rc == 0 && array->long_name)
        rc = mpmap_h5_attr_string(f, path, "long_name", array->long_name);
    return rc;
}
