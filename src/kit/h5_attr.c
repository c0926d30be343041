/*
 * Attributes of the HDF5 output: scalar and array attributes on any object,
 * variable-length UTF-8 strings, and the CF `units` and `long_name`.
 */
#include "h5_internal.h"

#include <string.h>

/* Attributes the dimension-scale convention owns; overwriting them would
 * break the links that readers follow. */
static int reserved_attr(const char *name)
{
    return strcmp(name, "CLASS") == 0 || strcmp(name, "NAME") == 0 ||
           strcmp(name, "REFERENCE_LIST") == 0 || strcmp(name, "DIMENSION_LIST") == 0;
}

/* Writes (replacing) attribute `name` on the open object obj. */
static int attr_on(mpmap_h5 *f, hid_t obj, const char *path, const char *name, hid_t type,
                   hid_t space, const void *buf)
{
    if (!name || !*name || reserved_attr(name))
        return h5__fail(f, MPMAP_EINVAL, "invalid attribute name '%s' on '%s'",
                        name ? name : "(null)", path);
    htri_t exists = H5Aexists(obj, name);
    if (exists < 0 || (exists > 0 && H5Adelete(obj, name) < 0))
        return h5__fail(f, MPMAP_EHDF5, "cannot replace attribute '%s' of '%s'", name, path);
    int rc = 0;
    hid_t attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0 || H5Awrite(attr, type, buf) < 0)
        rc = h5__fail(f, MPMAP_EHDF5, "cannot write attribute '%s' of '%s'", name, path);
    h5__close_id(&attr, H5Aclose);
    return rc;
}

hid_t h5__string_type(void)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    if (type >= 0 && (H5Tset_size(type, H5T_VARIABLE) < 0 || H5Tset_cset(type, H5T_CSET_UTF8) < 0))
        h5__close_id(&type, H5Tclose);
    return type;
}

static int string_attr_on(mpmap_h5 *f, hid_t obj, const char *path, const char *name,
                          const char *value)
{
    if (!value)
        return h5__fail(f, MPMAP_EINVAL, "attribute '%s' of '%s' has no value", name ? name : "",
                        path);
    hid_t type = h5__string_type();
    hid_t space = H5Screate(H5S_SCALAR);
    int rc;
    if (type < 0 || space < 0)
        rc =
            h5__fail(f, MPMAP_EHDF5, "cannot write attribute '%s' of '%s'", name ? name : "", path);
    else
        rc = attr_on(f, obj, path, name, type, space, &value);
    h5__close_id(&space, H5Sclose);
    h5__close_id(&type, H5Tclose);
    return rc;
}

int h5__set_cf_attrs(mpmap_h5 *f, hid_t obj, const char *path, const char *units,
                     const char *long_name)
{
    int rc = 0;
    if (units)
        rc = string_attr_on(f, obj, path, "units", units);
    if (rc == 0 && long_name)
        rc = string_attr_on(f, obj, path, "long_name", long_name);
    return rc;
}

/* Opens obj_path (NULL or "/" = root) and writes one attribute on it. */
int h5__attr_at(mpmap_h5 *f, const char *obj_path, const char *name, h5__attr_kind kind, size_t n,
                const void *value)
{
    const char *path = obj_path && *obj_path ? obj_path : "/";
    int rc = 0;
    hid_t obj = H5I_INVALID_HID, space = H5I_INVALID_HID;
    if (!h5__object_exists(f->file, path) || (obj = H5Oopen(f->file, path, H5P_DEFAULT)) < 0)
        return h5__fail(f, MPMAP_EINVAL, "cannot set attribute '%s': no object '%s'",
                        name ? name : "(null)", path);
    switch (kind) {
    case ATTR_STRING: rc = string_attr_on(f, obj, path, name, value); break;
    case ATTR_DOUBLE:
    case ATTR_INT64:
        if ((space = H5Screate(H5S_SCALAR)) < 0)
            rc = h5__fail(f, MPMAP_EHDF5, "cannot write attribute '%s' of '%s'", name, path);
        else
            rc = attr_on(f, obj, path, name,
                         kind == ATTR_DOUBLE ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64, space, value);
        break;
    case ATTR_DOUBLES:
    case ATTR_INT64S: {
        hsize_t len = n;
        if (n == 0 || !value)
            rc = h5__fail(f, MPMAP_EINVAL, "attribute '%s' of '%s' has no values", name, path);
        else if ((space = H5Screate_simple(1, &len, NULL)) < 0)
            rc = h5__fail(f, MPMAP_EHDF5, "cannot write attribute '%s' of '%s'", name, path);
        else
            rc = attr_on(f, obj, path, name,
                         kind == ATTR_DOUBLES ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64, space, value);
        break;
    }
    }
    h5__close_id(&space, H5Sclose);
    h5__close_id(&obj, H5Oclose);
    return rc;
}

static int attr_public(mpmap_h5 *f, const char *obj_path, const char *name, h5__attr_kind kind,
                       size_t n, const void *value)
{
    if (!f)
        return MPMAP_EINVAL;
    h5__quiet q;
    h5__quiet_begin(&q);
    int rc = h5__attr_at(f, obj_path, name, kind, n, value);
    h5__quiet_end(&q);
    return rc;
}

int mpmap_h5_attr_string(mpmap_h5 *f, const char *obj_path, const char *name, const char *value)
{
    return attr_public(f, obj_path, name, ATTR_STRING, 0, value);
}

int mpmap_h5_attr_double(mpmap_h5 *f, const char *obj_path, const char *name, double value)
{
    return attr_public(f, obj_path, name, ATTR_DOUBLE, 1, &value);
}

int mpmap_h5_attr_int64(mpmap_h5 *f, const char *obj_path, const char *name, int64_t value)
{
    return attr_public(f, obj_path, name, ATTR_INT64, 1, &value);
}

int mpmap_h5_attr_double_array(mpmap_h5 *f, const char *obj_path, const char *name, size_t n,
                               const double *values)
{
    return attr_public(f, obj_path, name, ATTR_DOUBLES, n, values);
}

int mpmap_h5_attr_int64_array(mpmap_h5 *f, const char *obj_path, const char *name, size_t n,
                              const int64_t *values)
{
    return attr_public(f, obj_path, name, ATTR_INT64S, n, values);
}
