"""Plots of inference checks: calibration curves, TARP coverage, unfolded histograms.

Each function checks its inputs (raising :class:`~hepflows.errors.InputError` on
mismatched shapes before any plotting package is imported), writes one PNG
atomically and returns ``None``; matplotlib and mplhep come with the ``plots`` extra.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hepflows.errors import InputError
from hepflows.plots import pyplot, save_figure

#: Largest |calibration curve - diagonal| accepted, drawn as a grey band.
CALIBRATION_TOLERANCE = 0.03


def _numpy(x: Tensor | np.ndarray) -> np.ndarray:
    return torch.as_tensor(x).detach().cpu().double().numpy()


def _save(plt: ModuleType, fig: Any, path: str | os.PathLike, title: str) -> None:
    """Title, write atomically and close ``fig``."""
    save_figure(plt, fig, path, title)


def plot_calibration(
    levels: Tensor,
    cdf: Tensor,
    names: Sequence[str],
    path: str | os.PathLike,
    title: str = "",
    deviation: Tensor | None = None,
) -> None:
    """Calibration curves per coordinate against the diagonal, their difference below.

    The lower panel shows cdf - level with a grey band of +-:data:`CALIBRATION_TOLERANCE`.

    Args:
        levels: (L,) levels in [0, 1] (:func:`~hepflows.inference.calibration_curve`).
        cdf: (L, d) empirical CDF of the PIT values at ``levels``.
        names: d coordinate names, for the legend.
        path: PNG file to write (atomically).
        title: figure title.
        deviation: (d,) largest deviation per coordinate
            (:func:`~hepflows.inference.calibration_deviation`), shown in the legend.

    Raises:
        InputError: mismatched shapes.
    """
    lv, c = _numpy(levels), _numpy(cdf)
    if lv.ndim != 1 or c.ndim != 2 or c.shape[0] != len(lv) or len(names) != c.shape[1]:
        raise InputError(f"levels must be (L,), cdf (L, d) and names d strings, got levels "
                         f"{lv.shape}, cdf {c.shape} and {len(names)} names")  # fmt: skip
    dev = None if deviation is None else _numpy(deviation)
    if dev is not None and dev.shape != (c.shape[1],):
        raise InputError(f"deviation must be (d,) = ({c.shape[1]},), got {dev.shape}")
    plt, _ = pyplot("Plotting calibration curves")
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(6.5, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]},
        constrained_layout=True,
    )  # fmt: skip
    top.plot([0, 1], [0, 1], color="gray", ls="--", lw=1, label="calibrated")
    tol = CALIBRATION_TOLERANCE
    bottom.axhspan(-tol, tol, color="lightgray")
    bottom.axhline(0.0, color="gray", ls="--", lw=1)
    for j, name in enumerate(names):
        label = name if dev is None else f"{name} (max dev. {dev[j]:.3f})"
        (line,) = top.plot(lv, c[:, j], label=label)
        bottom.plot(lv, c[:, j] - lv, color=line.get_color())
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.fill_between([], [], color="lightgray", label=f"$\\pm${tol:g} (lower panel)")
    top.set_ylabel("CDF of PIT")
    top.legend(fontsize="small", loc="upper left")
    reach = float(np.abs(c - lv[:, None]).max(initial=0.0))
    bottom.set_ylim(-max(2 * tol, 1.2 * reach), max(2 * tol, 1.2 * reach))
    bottom.set_xlabel("level")
    bottom.set_ylabel("CDF $-$ level")
    _save(plt, fig, path, title)


def plot_tarp(
    curves: dict[str, tuple[Tensor, Tensor, float]],
    path: str | os.PathLike,
    title: str = "",
) -> None:
    """TARP expected coverage against credibility level, one curve per posterior.

    Args:
        curves: label -> ``(alpha (A,), ecp (A,), area)`` as returned by
            :func:`~hepflows.inference.tarp`; the area is shown in the legend.
        path: PNG file to write (atomically).
        title: figure title.

    Raises:
        InputError: no curve, or alpha and ecp not 1-D of the same length.
    """
    if not curves:
        raise InputError("plot_tarp needs at least one curve")
    arrays = {}
    for label, (alpha, ecp, area) in curves.items():
        a, e = _numpy(alpha), _numpy(ecp)
        if a.ndim != 1 or a.shape != e.shape:
            raise InputError(f"curve {label!r}: alpha and ecp must both be (A,), got "
                             f"{a.shape} and {e.shape}")  # fmt: skip
        arrays[label] = (a, e, float(area))
    plt, _ = pyplot("Plotting TARP coverage")
    fig, ax = plt.subplots(figsize=(6, 6), constrained_layout=True)
    ax.plot([0, 1], [0, 1], color="gray", ls="--", lw=1, label="calibrated")
    for label, (a, e, area) in arrays.items():
        ax.plot(a, e, label=f"{label} (area {area:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("credibility level $\\alpha$")
    ax.set_ylabel("expected coverage")
    ax.legend(fontsize="small", loc="upper left")
    _save(plt, fig, path, title)


def _check_unfolded(
    edges: dict[str, np.ndarray],
    histograms: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]],
    log: Sequence[str],
) -> None:
    if not edges:
        raise InputError("plot_unfolded needs at least one observable in edges")
    if "truth" not in histograms:
        raise InputError(f"histograms need a 'truth' entry for the ratios, got {list(histograms)}")
    for name, e in edges.items():
        e = np.asarray(e)
        if e.ndim != 1 or len(e) < 2 or not (np.diff(e) > 0).all():
            raise InputError(f"edges of {name!r} must be (B + 1,) increasing, got {e.shape}")
        if name in log and e[0] <= 0:
            raise InputError(f"edges of {name!r} must be positive for a log axis")
        for method, hists in histograms.items():
            if name not in hists:
                raise InputError(f"histograms[{method!r}] has no observable {name!r}")
            counts, errors = (np.asarray(a) for a in hists[name])
            if counts.shape != (len(e) - 1,) or errors.shape != counts.shape:
                raise InputError(f"histograms[{method!r}][{name!r}]: counts and errors must be "
                                 f"(B,) = ({len(e) - 1},), got {counts.shape} and "
                                 f"{errors.shape}")  # fmt: skip
    unknown = [name for name in log if name not in edges]
    if unknown:
        raise InputError(f"log names observables without edges: {unknown}")


def plot_unfolded(
    edges: dict[str, np.ndarray],
    histograms: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]],
    path: str | os.PathLike,
    title: str = "",
    chi2: dict[str, dict[str, tuple[float, int]]] | None = None,
    labels: dict[str, str] | None = None,
    log: Sequence[str] = (),
) -> None:
    """One column per observable: unfolded counts per method, their ratio to the truth below.

    The method called ``"truth"`` is drawn as a filled grey histogram, the others
    as steps with error bars; the ratio panels (0.8 to 1.2) show method / truth.

    Args:
        edges: observable -> (B + 1,) bin edges (B may differ between observables).
        histograms: method -> observable -> ``(counts (B,), errors (B,))``; must
            contain ``"truth"`` and every observable of ``edges``.
        path: PNG file to write (atomically).
        title: figure title.
        chi2: method -> observable -> ``(chi^2, ndf)``, printed in the legend entries.
        labels: observable -> x-axis label (default: the observable's name).
        log: observables drawn with log x and log y axes (positive edges).

    Raises:
        InputError: mismatched shapes, no truth, non-increasing edges.
    """
    _check_unfolded(edges, histograms, log)
    chi2, labels = chi2 or {}, labels or {}
    plt, mplhep = pyplot("Plotting unfolded histograms")
    names = list(edges)
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {m: cycle[i % len(cycle)] for i, m in enumerate(m for m in histograms if m != "truth")}
    fig, axes = plt.subplots(
        2, len(names), figsize=(6 * len(names), 6), sharex="col", squeeze=False,
        gridspec_kw={"height_ratios": [3, 1]}, constrained_layout=True,
    )  # fmt: skip
    for j, name in enumerate(names):
        e = np.asarray(edges[name], dtype=np.float64)
        top, bottom = axes[0, j], axes[1, j]
        truth = np.asarray(histograms["truth"][name][0], dtype=np.float64)
        for method, hists in histograms.items():
            counts, errors = (np.asarray(a, dtype=np.float64) for a in hists[name])
            label = method
            if name in chi2.get(method, {}):
                value, ndf = chi2[method][name]
                label += f", $\\chi^2$/ndf = {value:.1f}/{ndf}"
            if method == "truth":
                mplhep.histplot(counts, e, ax=top, histtype="fill", color="lightgray",
                                label=label)  # fmt: skip
                continue
            mplhep.histplot(counts, e, yerr=errors, ax=top, color=colors[method], label=label)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(truth > 0, counts / truth, np.nan)
                ratio_err = np.where(truth > 0, errors / truth, np.nan)
            mplhep.histplot(ratio, e, yerr=ratio_err, ax=bottom, color=colors[method])
        top.set_ylabel("events per bin")
        if name in log:
            top.set_xscale("log")
            top.set_yscale("log")
            lo, hi = top.get_ylim()
            top.set_ylim(lo, hi * (hi / lo))  # room for the legend
            bottom.xaxis.set_major_formatter(plt.LogFormatter(labelOnlyBase=False))
            bottom.xaxis.set_minor_formatter(plt.LogFormatter(labelOnlyBase=False))  # "300"
        else:
            top.set_ylim(0, top.get_ylim()[1] * 1.35)  # room for the legend
        top.legend(fontsize="small", loc="upper right" if name in log else "best")
        bottom.axhline(1.0, color="gray", lw=1)
        bottom.set_ylim(0.8, 1.2)
        bottom.set_ylabel("ratio to truth")
        bottom.set_xlabel(labels.get(name, name))
    _save(plt, fig, path, title)


def plot_scan(result: Any, path: str | os.PathLike, title: str = "") -> None:
    """-2 Delta ln L of a MEM fit against its parameter, with the 68 % / 95 % levels.

    Args:
        result: a :class:`~hepflows.inference.mem.FitResult`.
        path: PNG file to write (atomically).
        title: figure title.
    """
    grid, nll2 = np.asarray(result.grid), np.asarray(result.nll2)
    if grid.ndim != 1 or grid.shape != nll2.shape or len(grid) < 2:
        raise InputError("a scan needs grid and -2 Delta ln L of the same length >= 2")
    plt, _ = pyplot("Plotting a likelihood scan")
    fig, ax = plt.subplots(figsize=(6, 4.5), constrained_layout=True)
    ax.plot(grid, nll2, "o-", label="MEM")
    for level, name in ((1.0, "68 %"), (3.84, "95 %")):
        ax.axhline(level, color="gray", ls="--", lw=1)
        ax.text(grid[0], level, f" {name}", va="bottom", fontsize="small")
    ax.axvline(result.best, color="C1", lw=1, label=f"best {result.best:.4g}")
    ax.set_xlabel(result.parameter)
    ax.set_ylabel("$-2\\Delta\\ln L$")
    ax.set_ylim(0, max(5.0, float(np.nanmin([nll2.max(), 20.0]))))
    ax.legend(fontsize="small")
    _save(plt, fig, path, title)


def plot_posterior(
    samples: Tensor | np.ndarray,
    names: Sequence[str],
    path: str | os.PathLike,
    truth: Sequence[float] | None = None,
    reference: Tensor | np.ndarray | None = None,
    title: str = "",
) -> None:
    """Corner plot of posterior samples: marginals on the diagonal, pairs below it.

    Args:
        samples: (S, d) draws of the posterior of one observation.
        names: the d parameter names.
        path: PNG file to write (atomically).
        truth: the d true values, marked (optional).
        reference: (S', d) draws of a reference posterior (e.g. the exact one),
            drawn as lines over the learned histograms (optional).
        title: figure title.
    """
    s = _numpy(samples)
    d = len(names)
    if s.ndim != 2 or s.shape[1] != d or len(s) < 2:
        raise InputError(f"samples must be (S >= 2, {d}) draws of {list(names)}, got "
                         f"{s.shape}")  # fmt: skip
    ref = None if reference is None else _numpy(reference)
    if ref is not None and (ref.ndim != 2 or ref.shape[1] != d):
        raise InputError(f"reference must be (S', {d}), got {ref.shape}")
    plt, _ = pyplot("Plotting a posterior")
    fig, axes = plt.subplots(d, d, figsize=(2.6 * d + 1, 2.6 * d + 1), squeeze=False,
                             constrained_layout=True)  # fmt: skip
    both = s if ref is None else np.concatenate([s, ref])
    lo, hi = np.quantile(both, 0.001, 0), np.quantile(both, 0.999, 0)
    for i in range(d):
        for j in range(d):
            ax = axes[i, j]
            if j > i:
                ax.axis("off")
                continue
            if i == j:
                edges = np.linspace(lo[i], hi[i], 41)
                ax.hist(s[:, i], edges, density=True, histtype="stepfilled", alpha=0.5,
                        label="learned")  # fmt: skip
                if ref is not None:
                    ax.hist(ref[:, i], edges, density=True, histtype="step", color="k",
                            label="reference")  # fmt: skip
                if truth is not None:
                    ax.axvline(truth[i], color="C3", lw=1)
            else:
                ax.hist2d(s[:, j], s[:, i], bins=40, range=[[lo[j], hi[j]], [lo[i], hi[i]]],
                          cmap="Blues")  # fmt: skip
                if truth is not None:
                    ax.plot(truth[j], truth[i], "x", color="C3")
            if i == d - 1:
                ax.set_xlabel(names[j])
            if j == 0 and i > 0:
                ax.set_ylabel(names[i])
    if ref is not None:
        axes[0, 0].legend(fontsize="x-small")
    _save(plt, fig, path, title)
