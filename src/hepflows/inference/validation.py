"""Validation of a flow likelihood on held-out data (the nabu tests).

Araz et al., arXiv:2502.09494, section 3: if the flow q(x | c) is right,
held-out events (x_i, c_i) map to base-space points z_i that are standard
normal in d dimensions. Two tests:

* **r^2 = sum_j z_j^2** must follow chi^2(d): Kolmogorov-Smirnov distance
  between the (weighted) empirical CDF of r^2 and the chi^2(d) CDF, with the
  p-value for the effective sample size ESS = (sum w)^2 / sum w^2;
* **pulls per dimension**: each z_j in ``bins`` equal-probability bins of
  N(0, 1); a chi^2 of the (weighted) counts against the expectation, ndf =
  bins - 1, variance per bin sum w^2.

The likelihood passes when the r^2 KS p-value and every pull p-value exceed
``threshold`` (the pulls with a Bonferroni factor d: threshold / d each).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hepflows.errors import InputError
from hepflows.extras import require
from hepflows.inference.calibration import histogram_chi2


@dataclass
class ValidationReport:
    """Results of :func:`validate`.

    Attributes:
        dimension: d, the number of observables.
        events: held-out events used; ess: their effective number.
        r2_ks_statistic, r2_ks_pvalue: KS test of r^2 against chi^2(d).
        pull_chi2, pull_pvalues: per dimension; pull_ndf: bins - 1.
        threshold: the p-value a test must exceed.
        r2, z: the held-out r^2 (n,) and z (n, d), for plots (not in :meth:`to_dict`).
    """

    dimension: int
    events: int
    ess: float
    r2_ks_statistic: float
    r2_ks_pvalue: float
    pull_chi2: list[float]
    pull_ndf: int
    pull_pvalues: list[float]
    threshold: float
    names: list[str] = field(default_factory=list)
    r2: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    z: np.ndarray = field(default_factory=lambda: np.empty((0, 0)), repr=False)
    weights: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)

    @property
    def passed(self) -> bool:
        """r^2 KS p and every pull p (Bonferroni: threshold / d) above the threshold."""
        pulls_ok = min(self.pull_pvalues) > self.threshold / self.dimension
        return self.r2_ks_pvalue > self.threshold and pulls_ok

    def to_dict(self) -> dict[str, Any]:
        """The figures, JSON-ready (for a likelihood file's header or a benchmark)."""
        keys = ("dimension", "events", "ess", "r2_ks_statistic", "r2_ks_pvalue", "pull_chi2",
                "pull_ndf", "pull_pvalues", "threshold", "names")  # fmt: skip
        return {k: getattr(self, k) for k in keys} | {"passed": self.passed}

    def summary(self) -> str:
        """A table a person reads."""
        lines = [
            f"likelihood validation on {self.events} held-out events (ESS {self.ess:.0f}), "
            f"d = {self.dimension}",
            f"  r^2 vs chi^2({self.dimension}): KS D = {self.r2_ks_statistic:.4f}, "
            f"p = {self.r2_ks_pvalue:.3g}",
        ]
        names = self.names or [f"z{j}" for j in range(self.dimension)]
        for n, c, p in zip(names, self.pull_chi2, self.pull_pvalues, strict=True):
            lines.append(f"  pull {n}: chi^2/ndf = {c:.1f}/{self.pull_ndf}, p = {p:.3g}")
        verdict = "PASSED" if self.passed else "FAILED"
        lines.append(f"  {verdict} (threshold p > {self.threshold}; pulls > threshold / d)")
        return "\n".join(lines)


def ks_weighted(values: np.ndarray, weights: np.ndarray, cdf: Any) -> tuple[float, float, float]:
    """Weighted one-sample KS test: (statistic D, p-value at the ESS, ESS).

    Args:
        values: (n,) samples; weights: (n,) non-negative; cdf: the reference CDF (vectorised).
    """
    stats = require("scipy.stats", "inference", "Likelihood validation")
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cw = np.cumsum(w) / w.sum()
    f = cdf(v)
    d = float(max(np.max(cw - f), np.max(f - (cw - w / w.sum()))))
    ess = float(w.sum() ** 2 / (w**2).sum())
    return d, float(stats.kstwo.sf(d, max(1, round(ess)))), ess


def validate(
    model: Any,
    x: Tensor,
    c: Tensor,
    weights: Tensor | None = None,
    bins: int = 20,
    threshold: float = 0.05,
) -> ValidationReport:
    """Validate a flow likelihood on held-out (n, k) events x with (n, p) conditions c.

    Args:
        model: anything with ``latent(x, c) -> (n, k) z`` (a
            :class:`~hepflows.inference.conditional.ConditionalDensity` or a
            loaded :class:`~hepflows.inference.likelihood.Likelihood`).
        x, c: held-out events and their conditions (not seen in training).
        weights: (n,) event weights (default 1).
        bins: equal-probability bins of N(0, 1) per dimension for the pulls.
        threshold: p-value a test must exceed.

    The pulls are per latent dimension z1..zd (a flow mixes the observables).
    """
    stats = require("scipy.stats", "inference", "Likelihood validation")
    z = model.latent(x, c).double().numpy()
    n, d = z.shape
    w = np.ones(n) if weights is None else torch.as_tensor(weights).double().numpy()
    if w.shape != (n,) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise InputError(f"weights must be ({n},) finite, >= 0 and not all 0")
    if bins < 2 or n < 5 * bins:
        raise InputError(f"need bins >= 2 and at least 5 events per bin; got {bins} bins for "
                         f"{n} events: use fewer bins or more events")  # fmt: skip
    if not np.all(np.isfinite(z)):
        raise InputError(f"{int((~np.isfinite(z)).any(1).sum())} events map to non-finite latent "
                         "points: are they inside the flow's training range?")  # fmt: skip
    r2 = (z**2).sum(1)
    dist, p_ks, ess = ks_weighted(r2, w, lambda v: stats.chi2.cdf(v, d))
    edges = stats.norm.ppf(np.linspace(0, 1, bins + 1))
    chi2s, ps = [], []
    for j in range(d):
        k = np.clip(np.searchsorted(edges, z[:, j], side="right") - 1, 0, bins - 1)
        observed = np.bincount(k, w, bins)
        variance = np.bincount(k, w**2, bins)
        expected = w.sum() / bins
        var = np.where(variance > 0, variance, (w**2).sum() / bins)  # empty bins: the mean
        chi2, _ = histogram_chi2(observed, np.full(bins, expected), var)
        chi2s.append(chi2)
        ps.append(float(stats.chi2.sf(chi2, bins - 1)))
    names = [f"z{j + 1}" for j in range(d)]
    return ValidationReport(d, n, ess, dist, p_ks, chi2s, bins - 1, ps, threshold, names, r2, z, w)


def plot_validation(report: ValidationReport, path: str | os.PathLike, title: str = "") -> None:
    """r^2 against chi^2(d) and the per-dimension pulls against N(0, 1), one PNG."""
    stats = require("scipy.stats", "inference", "Likelihood validation")
    from hepflows.inference.plots import _save
    from hepflows.plots import pyplot

    plt, _ = pyplot("Plotting the likelihood validation")
    d = report.dimension
    fig, axes = plt.subplots(1, d + 1, figsize=(4 * (d + 1), 3.6))
    top = float(np.quantile(report.r2, 0.995)) if len(report.r2) else 1.0
    grid = np.linspace(0, top, 200)
    ax = axes[0]
    ax.hist(report.r2, bins=50, range=(0, top), weights=report.weights, density=True,
            histtype="step", label="held-out")  # fmt: skip
    ax.plot(grid, stats.chi2.pdf(grid, d), label=f"chi2({d})")
    ax.set_xlabel("r^2 = sum z^2")
    ax.set_title(f"KS p = {report.r2_ks_pvalue:.3g}")
    ax.legend()
    names = report.names or [f"z{j}" for j in range(d)]
    g = np.linspace(-4, 4, 200)
    for j in range(d):
        ax = axes[j + 1]
        ax.hist(report.z[:, j], bins=40, range=(-4, 4), weights=report.weights, density=True,
                histtype="step", label="held-out")  # fmt: skip
        ax.plot(g, stats.norm.pdf(g), label="N(0, 1)")
        ax.set_xlabel(names[j])
        ax.set_title(f"pull chi2/ndf {report.pull_chi2[j]:.1f}/{report.pull_ndf}, "
                     f"p = {report.pull_pvalues[j]:.3g}", fontsize=9)  # fmt: skip
    verdict = "passed" if report.passed else "FAILED"
    _save(plt, fig, path, f"{title} likelihood validation: {verdict}".strip())
