/*
 * Object paths and dimension names of the HDF5 output: absolute paths, the
 * group of a path, dimension names resolved in the dataset's group.
 */
#include "h5_internal.h"

#include <hdf5_hl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Absolute form of an object path: "x/y" -> "/x/y". Rejects empty names,
 * empty components ("a//b", trailing '/') and "." or ".." components, which
 * would make the group and dimension rules of this file ambiguous. */
char *h5__absolute_path(const char *path)
{
    if (!path || !*path || strcmp(path, "/") == 0)
        return NULL;
    size_t len = strlen(path);
    int lead = path[0] != '/';
    char *abs = malloc(len + 2);
    if (!abs)
        return NULL;
    snprintf(abs, len + 2, "%s%s", lead ? "/" : "", path);
    for (const char *c = abs; *c; c++) {
        if (*c != '/')
            continue;
        const char *next = c + 1;
        size_t comp = strcspn(next, "/");
        if (comp == 0 || (comp == 1 && next[0] == '.') ||
            (comp == 2 && next[0] == '.' && next[1] == '.')) {
            free(abs);
            return NULL;
        }
    }
    return abs;
}

/* Length of the group part of an absolute path: "/a/b" -> 2 ("/a"),
 * "/b" -> 0 (the root). */
static size_t group_len(const char *abs) { return (size_t)(strrchr(abs, '/') - abs); }

const char *h5__last_component(const char *abs) { return strrchr(abs, '/') + 1; }

/* "chunk" used by "/trace/begin" -> "/trace/chunk"; "/x" stays "/x". */
char *h5__resolve_dim(const char *dataset_abs, const char *dim)
{
    if (!dim || !*dim)
        return NULL;
    if (dim[0] == '/')
        return h5__absolute_path(dim);
    size_t glen = group_len(dataset_abs);
    size_t need = glen + 1 + strlen(dim) + 1;
    char *joined = malloc(need);
    if (!joined)
        return NULL;
    snprintf(joined, need, "%.*s/%s", (int)glen, dataset_abs, dim);
    char *abs = h5__absolute_path(joined);
    free(joined);
    return abs;
}

/* netCDF readers resolve a variable's dimensions in its own group and its
 * ancestors, but xarray opens one group at a time and only shows coordinate
 * variables of that group; a scale in the dataset's own group is what makes
 * every axis a coordinate for all of them. */
int h5__same_group(const char *dim_abs, const char *dataset_abs)
{
    size_t dlen = group_len(dim_abs);
    return dlen == group_len(dataset_abs) && strncmp(dim_abs, dataset_abs, dlen) == 0;
}

int h5__object_exists(hid_t file, const char *abs) { return H5LTpath_valid(file, abs, 1) > 0; }

/* Link creation list that creates missing intermediate groups. */
hid_t h5__make_lcpl(void)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (lcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) < 0)
        h5__close_id(&lcpl, H5Pclose);
    return lcpl;
}
