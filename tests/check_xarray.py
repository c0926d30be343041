#!/usr/bin/python3
"""Checks that an mpmap HDF5 output file opens with coordinates everywhere.

Usage: check_xarray.py FILE.h5

Opens FILE with h5py (every axis of every non-scale dataset has exactly one
attached dimension scale; scales are 1-D), with h5netcdf (strict netCDF-4
reading, no phony dimensions), and with xarray.open_dataset(engine="h5netcdf")
for the root and for every group, asserting that every dimension of every
variable is a coordinate. Prints a summary. Exit status: 0 when all checks
pass, 1 on any failure, 77 (the ctest skip code) when xarray or h5netcdf
cannot be imported.
"""
import sys

try:
    import h5py
    import h5netcdf
    import numpy as np
    import xarray
except ImportError as exc:  # the test is skipped, not failed, without them
    print(f"check_xarray: skipped: {exc}")
    sys.exit(77)


def fail(message):
    print(f"check_xarray: FAIL: {message}")
    sys.exit(1)


def check_h5py(path):
    """Returns the list of group paths; checks the dimension scales."""
    groups = ["/"]
    datasets = []

    def visit(name, obj):
        if isinstance(obj, h5py.Group):
            groups.append("/" + name)
        elif isinstance(obj, h5py.Dataset):
            datasets.append(obj)

    with h5py.File(path, "r") as f:
        f.visititems(visit)
        for ds in datasets:
            is_scale = ds.attrs.get("CLASS") == b"DIMENSION_SCALE"
            if is_scale:
                if ds.ndim != 1:
                    fail(f"h5py: scale {ds.name} is {ds.ndim}-D")
                continue
            for axis, dim in enumerate(ds.dims):
                if len(dim) != 1:
                    fail(f"h5py: {ds.name} axis {axis} has {len(dim)} scales attached")
                scale = dim[0]
                if scale.shape[0] < ds.shape[axis]:
                    fail(f"h5py: {ds.name} axis {axis} longer than its scale {scale.name}")
            _ = ds[...]
        print(f"h5py: {len(datasets)} datasets in {len(groups)} groups, scales on every axis")
        for key in sorted(f.attrs):
            value = f.attrs[key]
            if isinstance(value, bytes):
                value = value.decode()
            print(f"  :{key} = {value!r}")
    return groups


def check_h5netcdf(path):
    with h5netcdf.File(path, "r") as f:
        def walk(group):
            for name, var in group.variables.items():
                dims = var.dimensions
                if len(dims) != var.ndim:
                    fail(f"h5netcdf: {group.name}/{name} has dims {dims} for rank {var.ndim}")
                _ = var[...]
            for child in group.groups.values():
                walk(child)
        walk(f)
    print("h5netcdf: opened without phony dimensions")


def check_xarray(path, group):
    kwargs = {"engine": "h5netcdf"}
    if group != "/":
        kwargs["group"] = group.lstrip("/")
    with xarray.open_dataset(path, **kwargs) as ds:
        ds.load()
        for name, var in ds.variables.items():
            for dim in var.dims:
                if dim not in ds.coords:
                    fail(f"xarray {group}: {name} dimension {dim!r} has no coordinate")
                if ds.coords[dim].dims != (dim,):
                    fail(f"xarray {group}: coordinate {dim!r} is not 1-D on itself")
        data_vars = ", ".join(
            f"{n}{tuple(v.dims)}" for n, v in ds.data_vars.items()) or "(none)"
        coords = ", ".join(f"{n}[{ds.sizes[n]}]" for n in ds.coords) or "(none)"
        units = {n: v.attrs.get("units") for n, v in ds.variables.items()
                 if "units" in v.attrs}
        print(f"xarray {group}: data {data_vars}; coords {coords}; units {units}")
        for name, var in ds.data_vars.items():
            if var.dtype.kind == "f" and var.size and not np.isfinite(var.values).all():
                print(f"  note: {name} holds non-finite values")


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    path = argv[1]
    try:
        groups = check_h5py(path)
        check_h5netcdf(path)
        for group in groups:
            check_xarray(path, group)
    except SystemExit:
        raise
    except Exception as exc:  # any reader error is a failure of the file
        fail(f"{type(exc).__name__}: {exc}")
    print("check_xarray: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
