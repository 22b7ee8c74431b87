"""Are per-event posteriors calibrated? PIT/rank curves, TARP coverage, histogram chi^2.

* :func:`pit`: for event i and coordinate j, q_ij = fraction of the posterior
  samples below the truth (the probability integral transform). For a
  calibrated posterior q is uniform over events; :func:`calibration_curve`
  is its empirical CDF against the diagonal (Bellagente et al. 2006.06685),
  and :func:`calibration_deviation` the largest distance from it (the
  Kolmogorov-Smirnov statistic, ~1/sqrt(n) for an exact posterior). A
  too-narrow posterior gives an S-shaped curve, a biased one a shifted curve.
* :func:`tarp`: the expected coverage probability of balls around random
  reference points against the credibility level (Lemos et al. 2302.03026),
  the diagonal for a calibrated posterior in all its dimensions together;
  its area against the diagonal summarises it.
* :func:`histogram_chi2`: chi^2 / ndf of an unfolded histogram against the
  truth with the unfolding's own covariance or errors.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from hepflows.errors import InputError


def _check_samples(samples: Tensor, truth: Tensor) -> None:
    if samples.ndim != 3 or truth.ndim != 2 or samples.shape[1:] != truth.shape:
        raise InputError(
            f"samples must be (S, n, d) and truth (n, d) with the same n and d, got "
            f"{tuple(samples.shape)} and {tuple(truth.shape)}"
        )
    if samples.shape[0] < 2:
        raise InputError("need at least 2 posterior samples per event")
    if not (bool(torch.isfinite(samples).all()) and bool(torch.isfinite(truth).all())):
        raise InputError("posterior samples or truth contain NaN or infinite values")


def pit(samples: Tensor, truth: Tensor) -> Tensor:
    """Probability integral transform q (n, d) of the truth under each event's posterior.

    Args:
        samples: (S, n, d) posterior samples, S per event.
        truth: (n, d) true values.

    Returns:
        (n, d) fraction of samples below the truth, ties counted half, in [0, 1].
    """
    _check_samples(samples, truth)
    below = (samples < truth).double().mean(0)
    ties = (samples == truth).double().mean(0)
    return below + 0.5 * ties


def calibration_curve(q: Tensor, levels: Tensor | int = 101) -> tuple[Tensor, Tensor]:
    """Empirical CDF of the PIT values per coordinate at ``levels``.

    Args:
        q: (n, d) PIT values (:func:`pit`).
        levels: (L,) points in [0, 1], or their number (evenly spaced).

    Returns:
        ``(levels (L,), cdf (L, d))``: the fraction of events with q <= level;
        the diagonal cdf = level for a calibrated posterior.
    """
    if isinstance(levels, int):
        levels = torch.linspace(0, 1, levels, dtype=torch.float64)
    cdf = (q.double()[None] <= levels.double()[:, None, None]).double().mean(1)
    return levels, cdf


def calibration_deviation(q: Tensor) -> Tensor:
    """Largest |empirical CDF(q) - q| per coordinate (the KS statistic against U(0, 1)): (d,).

    Exact over all q (both sides of every step), not only on a grid. About
    0.9 / sqrt(n) on average for a calibrated posterior of n events.
    """
    if q.ndim != 2 or len(q) == 0:
        raise InputError(f"q must be (n, d) with n >= 1, got {tuple(q.shape)}")
    s, _ = torch.sort(q.double(), dim=0)
    n = len(s)
    i = torch.arange(1, n + 1, dtype=torch.float64)[:, None]
    return torch.maximum((i / n - s).abs(), (s - (i - 1) / n).abs()).amax(0)


def tarp(
    samples: Tensor,
    truth: Tensor,
    references: Tensor | None = None,
    bins: int = 100,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, float]:
    """TARP expected coverage probability against credibility (Lemos et al. 2302.03026).

    Coordinates are standardised by the truth's mean and standard deviation.
    For event i with reference point r_i, f_i = fraction of posterior samples
    closer to r_i than the truth is; ECP(alpha) = fraction of events with
    f_i < alpha. A calibrated posterior gives ECP(alpha) = alpha.

    Args:
        samples: (S, n, d) posterior samples.
        truth: (n, d) true values.
        references: (n, d) reference points in the original units, or ``None``:
            drawn uniformly in the box spanned by the standardised truths.
        bins: credibility levels alpha at (0, 1/bins, ..., 1).
        generator: for the reference points (``None``: a generator seeded with 0,
            so the curve is reproducible; the global stream is never used).

    Returns:
        ``(alpha (bins + 1,), ecp (bins + 1,), area)`` with ``area`` the mean
        |ECP - alpha| (0: calibrated; 0.25 for a posterior that is a point
        far from the truth).
    """
    _check_samples(samples, truth)
    mean, std = truth.double().mean(0), truth.double().std(0).clamp_min(1e-12)
    s, t = (samples.double() - mean) / std, (truth.double() - mean) / std
    if references is None:
        lo, hi = t.amin(0), t.amax(0)
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        r = lo + (hi - lo) * torch.rand(t.shape, generator=gen, dtype=torch.float64)
    else:
        if references.shape != truth.shape:
            raise InputError(f"references must be (n, d) like truth {tuple(truth.shape)}, "
                             f"got {tuple(references.shape)}")  # fmt: skip
        r = (references.double() - mean) / std
    d_true = torch.linalg.vector_norm(t - r, dim=-1)
    d_samples = torch.linalg.vector_norm(s - r, dim=-1)
    f = (d_samples < d_true).double().mean(0)
    alpha = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    ecp = (f[None] < alpha[:, None]).double().mean(1)
    return alpha, ecp, float((ecp - alpha).abs().mean())


def histogram_chi2(
    values: np.ndarray, truth: np.ndarray, covariance: np.ndarray
) -> tuple[float, int]:
    """chi^2 and ndf of a histogram against the truth, given its covariance.

    chi^2 = (v - t)^T C^-1 (v - t) over bins with a positive diagonal (C may be
    diagonal, given as a (B,) vector of variances); ndf = those bins.

    Args:
        values: (B,) unfolded counts.
        truth: (B,) true counts of the same events.
        covariance: (B, B) covariance of ``values`` or (B,) variances.

    Raises:
        InputError: mismatched shapes, a singular covariance, non-finite values.
    """
    v, t, c = (np.asarray(a, dtype=np.float64) for a in (values, truth, covariance))
    if v.shape != t.shape or v.ndim != 1 or c.shape not in (v.shape, (len(v), len(v))):
        raise InputError(f"values {v.shape}, truth {t.shape} and covariance {c.shape} "
                         "must be (B,), (B,) and (B, B) or (B,)")  # fmt: skip
    if not (np.isfinite(v).all() and np.isfinite(t).all() and np.isfinite(c).all()):
        raise InputError("histogram_chi2: NaN or infinite input")
    c = np.diag(c) if c.ndim == 1 else c
    used = np.diag(c) > 0
    if not used.any():
        raise InputError("histogram_chi2: no bin has a positive variance")
    r, cu = (v - t)[used], c[np.ix_(used, used)]
    try:
        chi2 = float(r @ np.linalg.solve(cu, r))
    except np.linalg.LinAlgError as err:
        raise InputError(f"histogram_chi2: the covariance is singular ({err})") from err
    return chi2, int(used.sum())
