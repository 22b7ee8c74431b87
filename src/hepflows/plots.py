"""Plots a person would rather look at than read (matplotlib + mplhep style)."""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from hepflows.extras import require
from hepflows.io.atomic import atomic_write


def pyplot(purpose: str) -> tuple[ModuleType, ModuleType]:
    """``(matplotlib.pyplot, mplhep)`` with the non-interactive Agg backend, ROOT style.

    Args:
        purpose: what needs them, as the start of a sentence (for the message of
            :class:`~hepflows.errors.MissingExtraError` when the ``plots`` extra is missing).
    """
    require("matplotlib", "plots", purpose).use("Agg")
    plt = require("matplotlib.pyplot", "plots", purpose)
    mplhep = require("mplhep", "plots", purpose)
    plt.style.use(mplhep.style.ROOT)
    return plt, mplhep


def save_figure(plt: ModuleType, fig: Any, path: str | os.PathLike, title: str = "",
                dpi: int = 80) -> None:  # fmt: skip
    """Title ``fig``, write it as PNG to ``path`` atomically and close it (also on failure)."""
    try:
        if title:
            fig.suptitle(title)
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    finally:
        plt.close(fig)


def density_comparison(
    target: Tensor,
    samples: Tensor,
    log_prob_grid: Tensor,
    extent: tuple[float, float, float, float],
    path: str | os.PathLike,
    title: str = "",
) -> None:
    """Three panels: target samples, flow samples, flow density on a grid.

    Args:
        target: (N, 2) samples of the target.
        samples: (M, 2) samples of the flow.
        log_prob_grid: (G, G) flow log-density on the grid spanning ``extent``
            (rows along y).
        extent: (xmin, xmax, ymin, ymax).
        path: PNG file to write (atomically).
        title: figure title.
    """
    plt, _ = pyplot("Plotting densities")
    fig, axes = plt.subplots(1, 3, figsize=(15, 5), constrained_layout=True)
    bins = 120
    rng = [extent[:2], extent[2:]]
    axes[0].hist2d(*target.T.numpy(), bins=bins, range=rng, cmap="viridis")
    axes[0].set_title("target samples")
    axes[1].hist2d(*samples.T.numpy(), bins=bins, range=rng, cmap="viridis")
    axes[1].set_title("flow samples")
    axes[2].imshow(
        torch.exp(log_prob_grid).numpy(), origin="lower", extent=extent, cmap="viridis",
        aspect="auto",
    )  # fmt: skip
    axes[2].set_title("flow density")
    for ax in axes:
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
    if title:
        fig.suptitle(title)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)


def histogram_comparison(
    samples: dict[str, dict[str, Tensor]],
    binning: dict[str, tuple[float, float, int, str]],
    path: str | os.PathLike,
    title: str = "",
    chi2: dict[str, tuple[float, int]] | None = None,
) -> None:
    """One panel per observable: normalised histograms of several samples, ratio below.

    Args:
        samples: label -> observable name -> (n,) values; ratio panels show
            the other samples over the first.
        binning: observable -> (low, high, bins, axis label); log-spaced bins
            when the label ends with ``[log]``.
        path: PNG file to write (atomically).
        title: figure title.
        chi2: observable -> (chi^2, ndf) printed in the panel.
    """
    import numpy as np

    plt, mplhep = pyplot("Plotting histograms")
    names = list(binning)
    fig, axes = plt.subplots(
        2, len(names), figsize=(6 * len(names), 6), sharex="col",
        gridspec_kw={"height_ratios": [3, 1]}, constrained_layout=True,
    )  # fmt: skip
    axes = np.asarray(axes).reshape(2, len(names))
    labels = list(samples)
    for j, name in enumerate(names):
        lo, hi, n_bins, xlabel = binning[name]
        log = xlabel.endswith("[log]")
        edges = np.geomspace(lo, hi, n_bins + 1) if log else np.linspace(lo, hi, n_bins + 1)
        ref = None
        for label in labels:
            values = samples[label][name].numpy()
            counts, _ = np.histogram(values, edges)
            dens = counts / len(values) / np.diff(edges)
            err = np.sqrt(counts) / len(values) / np.diff(edges)
            mplhep.histplot(dens, edges, yerr=err, ax=axes[0, j], label=label)
            if ref is None:
                ref = dens
            else:
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.where(ref > 0, dens / ref, np.nan)
                    ratio_err = np.where(ref > 0, err / ref, np.nan)
                    mplhep.histplot(ratio, edges, yerr=ratio_err, ax=axes[1, j])
        axes[0, j].set_ylabel("normalised density")
        if log:
            axes[0, j].set_xscale("log")
            axes[0, j].set_yscale("log")
        axes[1, j].axhline(1.0, color="gray", lw=1)
        axes[1, j].set_ylim(0.8, 1.2)
        axes[1, j].set_ylabel("ratio")
        axes[1, j].set_xlabel(xlabel.removesuffix("[log]").strip())
        text = ""
        if chi2 and name in chi2:
            text = f"$\\chi^2$/ndf = {chi2[name][0]:.1f}/{chi2[name][1]}"
        axes[0, j].legend(title=text, fontsize="small", title_fontsize="small", loc="best")
        if not log:
            axes[0, j].set_ylim(0, axes[0, j].get_ylim()[1] * 1.35)  # room for the legend
    if title:
        fig.suptitle(title)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=70, format="png"))
    plt.close(fig)


def dalitz_plots(
    samples: dict[str, tuple[Tensor, Tensor, Tensor | None]],
    bounds: tuple[tuple[float, float], tuple[float, float]],
    labels: tuple[str, str],
    path: str | os.PathLike,
    title: str = "",
    bins: int = 60,
) -> None:
    """Dalitz plots side by side, one panel per sample, each normalised to unit sum.

    Args:
        samples: label -> (s12 (n,), s23 (n,), weights (n,) or ``None`` for events).
        bounds: ((s12 min, max), (s23 min, max)) in GeV^2.
        labels: axis labels of s12 and s23.
        path: PNG file to write (atomically).
        title: figure title.
        bins: bins per axis.
    """
    plt, _ = pyplot("Plotting Dalitz plots")
    n = len(samples)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 4.6), squeeze=False, constrained_layout=True)
    for ax, (label, (a, b, w)) in zip(axes[0], samples.items(), strict=True):
        h, (xe, ye) = torch.histogramdd(
            torch.stack((a, b), 1).to(torch.float64), bins=[bins, bins],
            range=[*bounds[0], *bounds[1]], weight=None if w is None else w.to(torch.float64),
        )  # fmt: skip
        ax.pcolormesh(xe.numpy(), ye.numpy(), (h / h.sum().clamp_min(1e-300)).T.numpy(),
                      cmap="viridis", rasterized=True)  # fmt: skip
        ax.set_title(label, fontsize=13)
        ax.set_xlabel(labels[0], fontsize=12)
        ax.set_ylabel(labels[1], fontsize=12)
        ax.tick_params(labelsize=9)
    if title:
        fig.suptitle(title, fontsize=14)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)


def event_dalitz_plot(decay: Any, events: Any, path: str | os.PathLike, label: str = "") -> None:
    """The Dalitz plot of unweighted decays: m^2 of daughters (1, 2) against (2, 3).

    Args:
        decay: the decay density (a :class:`~hepflows.physics.decays.ThreeBodyDecay`:
            ``dalitz``, ``invariants``, ``name``).
        events: its unweighted events (:class:`~hepflows.io.Events`, points (n, 2) on the
            unit square).
        path: PNG file to write (atomically).
        label: panel title (default: the decay's name).
    """
    d = decay.dalitz
    inv = decay.invariants(events.x.clamp(1e-12, 1 - 1e-12))
    pair = (d.names[0] + d.names[1], d.names[1] + d.names[2])
    dalitz_plots({label or decay.name: (inv["s12"], inv["s23"], None)},
                 (d.bounds("12"), d.bounds("23")),
                 (f"m²({pair[0]}) [GeV²]", f"m²({pair[1]}) [GeV²]"), path)  # fmt: skip
