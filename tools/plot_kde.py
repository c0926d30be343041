#!/usr/bin/python3
"""Plot a kde_sweep result: density (and error against the true density)
versus width, and the cross-validation score versus width. The two best
widths are different things and labelled so: the one closest to the true
density (synthetic data only) and the one with the best CV score.

    tools/plot_kde.py kde_sweep.h5 -o kde.png
"""
import numpy as np

from mpmap_plot import fail, open_h5, parser, plt, save


def main():
    args = parser(__doc__.splitlines()[0], "kde.png").parse_args()
    f = open_h5(args.input)
    if "width" not in f or "density" not in f:
        fail(f"'{args.input}' is not a kde_sweep output (no /width or /density)")
    width = f["width"][()]
    density = f["density"][()]
    panels = 1 + ("abs_error" in f) + ("cv_score" in f)
    fig, axes = plt.subplots(panels, 1, figsize=(7, 2.8 * panels), sharex=True, squeeze=False)
    axes = axes[:, 0]
    ax = axes[0]
    for j in range(density.shape[1]):
        ax.plot(width, density[:, j], label=f"point {j}")
    if "reference_density" in f:
        for j, ref in enumerate(f["reference_density"][()]):
            ax.axhline(ref, ls="--", color="grey", lw=1, label="true density" if j == 0 else None)
    ax.set_ylabel("density")
    ax.set_title(f"{f.attrs.get('kernel', 'kde')} kernel, n = {f.attrs.get('samples', '?')}")
    ax.legend(fontsize="small")
    i = 1
    if "abs_error" in f:
        err = f["abs_error"][()]
        axes[i].semilogy(width, np.maximum(err, 1e-300))
        if "best_width_reference" in f.attrs:
            best_ref = float(f.attrs["best_width_reference"])
            axes[i].axvline(best_ref, color="C3", ls=":",
                            label=f"best width vs true density {best_ref:.4g}")
            axes[i].legend(fontsize="small")
        axes[i].set_ylabel("|density − true|")
        i += 1
    if "cv_score" in f:
        cv = f["cv_score"][()]
        axes[i].plot(width, cv)
        best = int(np.nanargmax(cv))
        folds = f.attrs.get("cv_folds")
        how = f"{int(folds)}-fold cross-validation" if folds else "cross-validation"
        axes[i].plot(width[best], cv[best], "o", color="C1",
                     label=f"best width by {how} {width[best]:.4g}")
        axes[i].set_ylabel("CV log-likelihood")
        axes[i].legend(fontsize="small")
    axes[-1].set_xlabel("width h")
    save(fig, args)


if __name__ == "__main__":
    main()
