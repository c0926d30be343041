#!/usr/bin/python3
"""Heatmap of a 2-D param_sweep: one field of /result over the two
parameters' grid.

    tools/plot_heatmap.py param_sweep.h5 --field max_z -o heatmap.png
"""
import numpy as np

from mpmap_plot import fail, open_h5, parser, plt, save


def main():
    p = parser(__doc__.splitlines()[0], "heatmap.png")
    p.add_argument("--field", help="record field to show (name or index; default the first)")
    args = p.parse_args()
    f = open_h5(args.input)
    if "result" not in f:
        fail(f"'{args.input}' is not a param_sweep output (no /result)")
    result = f["result"]
    if result.ndim != 3:
        fail(f"/result has {result.ndim - 1} parameter axes; a heatmap needs exactly 2")
    axes = [result.dims[i][0].name.lstrip("/") for i in range(2)]
    fields = f.attrs.get("fields", "")
    names = fields.split(",") if isinstance(fields, str) and fields else []
    index = 0
    if args.field is not None:
        if args.field in names:
            index = names.index(args.field)
        elif args.field.isdigit() and int(args.field) < result.shape[2]:
            index = int(args.field)
        else:
            fail(f"--field: unknown field '{args.field}' (have: {', '.join(names) or result.shape[2]})")
    data = result[:, :, index]
    x, y = f[axes[1]][()], f[axes[0]][()]
    fig, ax = plt.subplots(figsize=(7, 5))
    mesh = ax.pcolormesh(x, y, np.ma.masked_invalid(data), shading="nearest")
    label = names[index] if index < len(names) else f"field {index}"
    fig.colorbar(mesh, ax=ax, label=label)
    ax.set_xlabel(axes[1])
    ax.set_ylabel(axes[0])
    ax.set_title(f"{f.attrs.get('model', f.attrs.get('command', 'param_sweep'))}: {label}")
    save(fig, args)


if __name__ == "__main__":
    main()
