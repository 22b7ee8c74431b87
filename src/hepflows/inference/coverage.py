"""Coverage diagnostics of amortised posteriors: SBC ranks, HPD and interval coverage, C2ST.

Each check takes n test pairs (theta_i, x_i) with theta_i drawn from the prior,
and S samples of the posterior q(theta | x_i) per pair:

* :func:`sbc_ranks`, :func:`sbc_check`: simulation-based calibration (Talts et
  al. 1804.06788): the rank of theta_i among its S posterior samples is uniform
  on {0, ..., S} per coordinate if q is the posterior; KS p-values per coordinate.
* :func:`hpd_credibility`, :func:`expected_coverage`, :func:`coverage_curve`:
  coverage of the highest-posterior-density regions (as sbi's and lampe's
  expected coverage), all coordinates together, from the density q itself.
* :func:`interval_coverage`, :func:`binomial_error`: the fraction of pairs whose
  central 68 % / 95 % interval contains the truth, per coordinate, and its error.
* :func:`c2st`: classifier two-sample test accuracy (sbi's ``c2st``), e.g. of
  posterior samples against exact (grid) samples for one observation.
* :func:`plot_sbc`, :func:`plot_coverage`: rank histograms, coverage curves.

TARP is :func:`hepflows.inference.calibration.tarp` (its curve can be drawn by
:func:`plot_coverage`), and the PIT curves are in :mod:`hepflows.inference.calibration`.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from hepflows.errors import ConfigError, HepflowsWarning, InputError
from hepflows.extras import require
from hepflows.inference.calibration import _check_samples
from hepflows.inference.plots import _numpy, _save
from hepflows.plots import pyplot

#: Fewer test pairs than this make SBC p-values unreliable (sbi warns at the same number).
SBC_MIN_PAIRS = 100


# --------------------------------------------------------------------------------------------
# Simulation-based calibration
# --------------------------------------------------------------------------------------------


def sbc_ranks(samples: Tensor, truth: Tensor) -> Tensor:
    """SBC ranks: the number of posterior samples below the truth, per pair and coordinate.

    Args:
        samples: (S, n, d) posterior samples, S per test pair.
        truth: (n, d) true parameters (drawn from the prior).

    Returns:
        (n, d) int64 ranks in {0, ..., S}; uniform over pairs for a calibrated posterior.

    Raises:
        InputError: mismatched shapes, fewer than 2 samples, NaN or infinite values.
    """
    _check_samples(samples, truth)
    return (samples < truth).sum(0, dtype=torch.int64)


def _check_ranks(ranks: Tensor, samples: int) -> None:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise InputError(f"samples must be the number S >= 1 of posterior samples per pair "
                         f"the ranks were computed from, got {samples!r}")  # fmt: skip
    if ranks.ndim != 2 or len(ranks) == 0:
        raise InputError(f"ranks must be (n, d) with n >= 1 (sbc_ranks), got "
                         f"{tuple(ranks.shape)}")  # fmt: skip
    r = ranks.double()
    if not bool(torch.isfinite(r).all()) or not bool((r == r.round()).all()):
        raise InputError("ranks must be finite whole numbers (sbc_ranks gives them)")
    if bool((r < 0).any()) or bool((r > samples).any()):
        raise InputError(f"ranks must lie in [0, samples={samples}], got [{int(r.min())}, "
                         f"{int(r.max())}]: pass the S the ranks were computed with")  # fmt: skip


def sbc_check(ranks: Tensor, samples: int, seed: int = 0) -> Tensor:
    """KS p-values of the SBC ranks against uniformity, per coordinate.

    The discrete ranks r in {0, ..., S} are made continuous, u = (r + U(0, 1)) / (S + 1)
    with U from a generator seeded with ``seed``; u is then exactly U(0, 1) for a
    calibrated posterior, so the p-values are exactly uniform too (no discreteness bias
    whatever S). ``scipy.stats.kstest(u, "uniform")`` per coordinate.

    Args:
        ranks: (n, d) ranks from :func:`sbc_ranks`.
        samples: S, the number of posterior samples per pair behind the ranks.
        seed: seed of the randomisation.

    Returns:
        (d,) float64 p-values; small (e.g. < 1e-3) means miscalibrated in that coordinate.

    Raises:
        InputError: ranks not (n, d), not whole numbers, or outside [0, S].

    Warns:
        HepflowsWarning: fewer than :data:`SBC_MIN_PAIRS` pairs.
    """
    _check_ranks(ranks, samples)
    if len(ranks) < SBC_MIN_PAIRS:
        warnings.warn(f"SBC with only {len(ranks)} test pairs: the p-values have little power; "
                      f"use at least {SBC_MIN_PAIRS}", HepflowsWarning, stacklevel=2)  # fmt: skip
    stats = require("scipy.stats", "inference", "The SBC check")
    gen = torch.Generator().manual_seed(seed)
    jitter = torch.rand(ranks.shape, generator=gen, dtype=torch.float64)
    u = ((ranks.double() + jitter) / (samples + 1)).numpy()
    p = [stats.kstest(u[:, j], "uniform").pvalue for j in range(u.shape[1])]
    return torch.tensor(p, dtype=torch.float64)


# --------------------------------------------------------------------------------------------
# Coverage
# --------------------------------------------------------------------------------------------


def _levels(levels: Tensor | Sequence[float] | int) -> Tensor:
    if isinstance(levels, int) and not isinstance(levels, bool):
        if levels < 2:
            raise InputError(f"the number of levels must be >= 2, got {levels}")
        return torch.linspace(0, 1, levels, dtype=torch.float64)
    lv = torch.as_tensor(levels, dtype=torch.float64)
    if lv.ndim != 1 or len(lv) == 0:
        raise InputError(f"levels must be a non-empty 1-D sequence, got shape {tuple(lv.shape)}")
    if not bool(((lv >= 0) & (lv <= 1)).all()):
        raise InputError(f"levels must lie in [0, 1], got {lv.tolist()}")
    return lv


def hpd_credibility(log_prob_samples: Tensor, log_prob_truth: Tensor) -> Tensor:
    """Credibility of the smallest HPD region of q that contains the truth, per pair.

    alpha_i = fraction of the samples of q(. | x_i) where q is higher than at the truth:
    the truth lies in the highest-density region of credibility level L iff alpha_i <= L.

    Args:
        log_prob_samples: (S, n) log q(theta_s | x_i) of the posterior's own samples.
        log_prob_truth: (n,) log q(theta_i | x_i) at the truth (``-inf`` allowed: outside
            the support, alpha = 1).

    Returns:
        (n,) float64 alpha_i in [0, 1], uniform on {0, 1/S, ..., 1} if q is calibrated.

    Raises:
        InputError: mismatched shapes, fewer than 2 samples, NaN or +inf.
    """
    lps, lpt = log_prob_samples, log_prob_truth
    if lps.ndim != 2 or lpt.ndim != 1 or lps.shape[1] != lpt.shape[0] or lpt.shape[0] == 0:
        raise InputError(f"log_prob_samples must be (S, n) and log_prob_truth (n,) with the "
                         f"same n >= 1, got {tuple(lps.shape)} and {tuple(lpt.shape)}")  # fmt: skip
    if lps.shape[0] < 2:
        raise InputError("need at least 2 posterior samples per pair")
    for name, x in (("log_prob_samples", lps), ("log_prob_truth", lpt)):
        if bool(torch.isnan(x).any()) or bool((x == math.inf).any()):
            raise InputError(f"{name} contains NaN or +inf: check the density evaluation")
    return (lps.double() > lpt.double()).double().mean(0)


def expected_coverage(
    log_prob_samples: Tensor, log_prob_truth: Tensor, levels: Tensor | Sequence[float]
) -> Tensor:
    """Expected coverage of the HPD regions of q at the credibility ``levels``.

    coverage(L) = fraction of pairs with alpha_i <= L (:func:`hpd_credibility`). A
    calibrated posterior gives coverage(L) = (floor(L S) + 1) / (S + 1), i.e. L within
    1 / S; an over-confident one lies below the diagonal, an under-confident one above.

    Args:
        log_prob_samples: (S, n) log q of the posterior samples, S per pair.
        log_prob_truth: (n,) log q at the true parameters.
        levels: (L,) credibility levels in [0, 1].

    Returns:
        (L,) float64 coverage; its binomial error is :func:`binomial_error` (coverage, n).

    Raises:
        InputError: mismatched shapes, NaN, levels outside [0, 1].
    """
    lv = _levels(levels)
    alpha = hpd_credibility(log_prob_samples, log_prob_truth)
    return (alpha[None] <= lv[:, None]).double().mean(1)


def coverage_curve(
    log_prob_samples: Tensor, log_prob_truth: Tensor, levels: Tensor | int = 101
) -> tuple[Tensor, Tensor]:
    """``(levels (L,), coverage (L,))`` of :func:`expected_coverage`, for :func:`plot_coverage`.

    Args:
        log_prob_samples: (S, n) log q of the posterior samples.
        log_prob_truth: (n,) log q at the true parameters.
        levels: (L,) levels in [0, 1], or their number (evenly spaced from 0 to 1).
    """
    lv = _levels(levels)
    return lv, expected_coverage(log_prob_samples, log_prob_truth, lv)


def _quantile(sorted_samples: Tensor, p: float) -> Tensor:
    """Linearly interpolated quantile p along dim 0 of sorted (S, ...) samples (numpy's
    default; torch.quantile refuses inputs of more than 2^24 elements)."""
    pos = p * (sorted_samples.shape[0] - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, sorted_samples.shape[0] - 1)
    return sorted_samples[lo] + (pos - lo) * (sorted_samples[hi] - sorted_samples[lo])


def interval_coverage(
    samples: Tensor, truth: Tensor, levels: Sequence[float] = (0.68, 0.95)
) -> dict[float, Tensor]:
    """Fraction of pairs whose central credible interval contains the truth, per coordinate.

    The interval at level L runs from the (1 - L) / 2 to the (1 + L) / 2 quantile of the
    S samples of each pair (equal tails); its coverage is L for a calibrated posterior,
    with the binomial error :func:`binomial_error` (L, n).

    Args:
        samples: (S, n, d) posterior samples.
        truth: (n, d) true parameters.
        levels: credibility levels in (0, 1).

    Returns:
        level -> (d,) float64 coverage.

    Raises:
        InputError: mismatched shapes, NaN, levels outside (0, 1).
    """
    _check_samples(samples, truth)
    lv = [float(level) for level in levels]
    if not lv or not all(0 < level < 1 for level in lv):
        raise InputError(f"levels must be a non-empty sequence in (0, 1), got {lv}")
    s, _ = torch.sort(samples.double(), dim=0)
    t = truth.double()
    out = {}
    for level in lv:
        lo, hi = _quantile(s, (1 - level) / 2), _quantile(s, (1 + level) / 2)
        out[level] = ((lo <= t) & (t <= hi)).double().mean(0)
    return out


def binomial_error(p: float | Tensor, n: int) -> float | Tensor:
    """Standard error sqrt(p (1 - p) / n) of a fraction p measured on n pairs.

    Args:
        p: fraction(s) in [0, 1] (a float, or a tensor of any shape).
        n: number of pairs, >= 1.

    Returns:
        A float for a float ``p``, else a float64 tensor of the shape of ``p``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"n must be a number of pairs >= 1, got {n!r}")
    pt = torch.as_tensor(p, dtype=torch.float64)
    if not bool(((pt >= 0) & (pt <= 1)).all()):
        raise InputError(f"p must be a fraction in [0, 1], got {p!r}")
    err = torch.sqrt(pt * (1 - pt) / n)
    return float(err) if not isinstance(p, Tensor) else err


# --------------------------------------------------------------------------------------------
# Classifier two-sample test
# --------------------------------------------------------------------------------------------


def _check_c2st(a: Tensor, b: Tensor, folds: int) -> None:
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"folds must be an integer >= 2, got {folds!r}")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or a.shape[1] == 0:
        raise InputError(f"c2st needs two samples (n, d) and (m, d) with the same d >= 1, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")  # fmt: skip
    if len(a) < folds or len(b) < folds:
        raise InputError(f"c2st needs at least folds={folds} rows in each sample, got "
                         f"{len(a)} and {len(b)}: draw more samples or lower folds")  # fmt: skip
    for name, x in (("a", a), ("b", b)):
        if not bool(torch.isfinite(x).all()):
            raise InputError(f"c2st: sample {name} contains NaN or infinite values")


def c2st(a: Tensor, b: Tensor, seed: int = 0, folds: int = 5) -> float:
    """Classifier two-sample test: cross-validated accuracy of telling ``a`` from ``b``.

    As sbi's ``c2st(..., classifier="mlp")`` (Lopez-Paz & Oquab 1610.06545;
    sbi-benchmark), and equal to it (tested): both samples are z-scored with the
    mean and standard deviation of ``a``, an sklearn ``MLPClassifier`` (relu, two
    hidden layers of 10 d units, adam, up to 1000 iterations, early stopping after
    50 without improvement) is trained on ``folds`` - 1 shuffled folds and scored
    on the last; the mean accuracy is returned.

    Args:
        a: (n, d) reference sample (e.g. exact posterior samples for one observation).
        b: (m, d) sample to compare (e.g. samples of the learned posterior).
        seed: seeds the classifier and the fold split.
        folds: number of cross-validation folds.

    Returns:
        Accuracy in [0, 1]: 0.5 when the samples are indistinguishable (for n = m; with
        unequal sizes chance is max(n, m) / (n + m)), 1 when they are disjoint.

    Raises:
        InputError: not (n, d) and (m, d), fewer than ``folds`` rows, NaN or infinite
            values, a coordinate constant in ``a``.
        ConfigError: folds < 2.
    """
    _check_c2st(a, b, folds)
    purpose = "The classifier two-sample test (c2st)"
    MLPClassifier = require("sklearn.neural_network", "inference", purpose).MLPClassifier
    selection = require("sklearn.model_selection", "inference", purpose)
    mean, std = a.double().mean(0), a.double().std(0)
    if bool((std == 0).any()):
        const = torch.nonzero(std == 0).flatten().tolist()
        raise InputError(f"c2st: coordinates {const} of sample a are constant, so they cannot "
                         "be z-scored: drop them (they carry no information)")  # fmt: skip
    x = torch.cat(((a.double() - mean) / std, (b.double() - mean) / std)).numpy()
    y = np.concatenate((np.zeros(len(a)), np.ones(len(b))))
    d = a.shape[1]
    clf = MLPClassifier(activation="relu", hidden_layer_sizes=(10 * d, 10 * d), max_iter=1000,
                        solver="adam", early_stopping=True, n_iter_no_change=50,
                        random_state=seed)  # fmt: skip
    split = selection.KFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = selection.cross_val_score(clf, x, y, cv=split, scoring="accuracy")
    return float(np.mean(scores))


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def plot_sbc(
    ranks: Tensor,
    samples: int,
    path: str | os.PathLike,
    names: Sequence[str],
    title: str = "",
    bins: int | None = None,
) -> None:
    """SBC rank histograms, one panel per parameter, with the 99 % band of a uniform one.

    The band is, per bin, the 0.5 % to 99.5 % quantiles of the binomial count that
    uniform ranks would give (each bin holds whole ranks, so bins may differ by one rank).

    Args:
        ranks: (n, d) ranks from :func:`sbc_ranks`.
        samples: S, the number of posterior samples behind the ranks.
        path: PNG file to write (atomically).
        names: d parameter names.
        title: figure title.
        bins: number of bins (default n // 20 as sbi, at most S + 1, at least 1).

    Raises:
        InputError: ranks not (n, d) in [0, S], a name per coordinate missing, bins < 1.
    """
    _check_ranks(ranks, samples)
    n, d = ranks.shape
    if len(names) != d:
        raise InputError(f"names must give one name per coordinate ({d}), got {len(names)}")
    bins = min(samples + 1, max(1, n // 20)) if bins is None else bins
    if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= samples + 1:
        raise InputError(f"bins must be an integer in [1, S + 1 = {samples + 1}], got {bins!r}")
    stats = require("scipy.stats", "inference", "Plotting SBC ranks")
    edges = np.linspace(0, samples + 1, bins + 1)
    p = np.diff(np.ceil(edges)) / (samples + 1)  # fraction of the S + 1 ranks in each bin
    lo, hi = stats.binom.ppf(0.005, n, p), stats.binom.ppf(0.995, n, p)
    r = _numpy(ranks)
    plt, mplhep = pyplot("Plotting SBC ranks")
    fig, axes = plt.subplots(1, d, figsize=(5 * d, 4.5), squeeze=False, constrained_layout=True)
    for j, (ax, name) in enumerate(zip(axes[0], names, strict=True)):
        ax.fill_between(edges, np.r_[lo, lo[-1]], np.r_[hi, hi[-1]], step="post",
                        color="lightgray", label="99 % band (uniform)")  # fmt: skip
        ax.stairs(n * p, edges, color="gray", ls="--", lw=1)
        counts, _ = np.histogram(r[:, j], edges)
        mplhep.histplot(counts, edges, ax=ax, color="C0", label="ranks")
        ax.set_xlim(0, samples + 1)
        ax.set_ylim(0, 1.35 * max(float(hi.max()), float(counts.max())))
        ax.set_xlabel(f"rank of {name}")
        ax.set_ylabel("pairs per bin")
        ax.legend(fontsize="small", loc="upper right")
    _save(plt, fig, path, title)


def plot_coverage(
    levels: Tensor,
    coverage: Tensor,
    path: str | os.PathLike,
    title: str = "",
    tarp: tuple[Tensor, Tensor, float] | None = None,
) -> None:
    """Expected (HPD) coverage against the credibility level, with the diagonal.

    Args:
        levels: (L,) credibility levels (:func:`coverage_curve`).
        coverage: (L,) expected coverage at ``levels``.
        path: PNG file to write (atomically).
        title: figure title.
        tarp: ``(alpha (A,), ecp (A,), area)`` from
            :func:`~hepflows.inference.calibration.tarp`, drawn as a second curve.

    Raises:
        InputError: levels and coverage (or the TARP curve) not 1-D of the same length.
    """
    lv, cv = _numpy(levels), _numpy(coverage)
    if lv.ndim != 1 or lv.shape != cv.shape or len(lv) < 2:
        raise InputError(f"levels and coverage must both be (L,) with L >= 2, got {lv.shape} "
                         f"and {cv.shape}")  # fmt: skip
    curve = None
    if tarp is not None:
        alpha, ecp, area = tarp
        curve = (_numpy(alpha), _numpy(ecp), float(area))
        if curve[0].ndim != 1 or curve[0].shape != curve[1].shape:
            raise InputError(f"tarp: alpha and ecp must both be (A,), got {curve[0].shape} and "
                             f"{curve[1].shape}: pass what calibration.tarp returns")  # fmt: skip
    plt, _ = pyplot("Plotting coverage")
    fig, ax = plt.subplots(figsize=(6, 6), constrained_layout=True)
    ax.plot([0, 1], [0, 1], color="gray", ls="--", lw=1, label="calibrated")
    ax.plot(lv, cv, label="HPD coverage")
    if curve is not None:
        ax.plot(curve[0], curve[1], label=f"TARP (area {curve[2]:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("credibility level")
    ax.set_ylabel("expected coverage")
    ax.legend(fontsize="small", loc="upper left")
    _save(plt, fig, path, title)
