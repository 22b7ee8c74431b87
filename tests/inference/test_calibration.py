"""Calibration checks can fail: an exact posterior passes, a too-narrow or biased one does not."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hepflows.errors import InputError
from hepflows.inference import (
    calibration_curve,
    calibration_deviation,
    histogram_chi2,
    pit,
    tarp,
)

N, S = 4000, 200


def gaussian_toy(width: float = 1.0, shift: float = 0.0, seed: int = 0):
    """x ~ N(0, 1) prior, y = x + N(0, 1): exact posterior N(y / 2, 1 / 2), in 2 dimensions.

    Returns (samples (S, N, 2) of a posterior with its width scaled by ``width``
    and its mean moved by ``shift`` standard deviations, truth (N, 2)).
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, 2, generator=g, dtype=torch.float64)
    y = x + torch.randn(N, 2, generator=g, dtype=torch.float64)
    sd = math.sqrt(0.5)
    z = torch.randn(S, N, 2, generator=g, dtype=torch.float64)
    return y / 2 + sd * (shift + width * z), x


def test_exact_posterior_is_calibrated() -> None:
    samples, truth = gaussian_toy()
    q = pit(samples, truth)
    assert q.shape == (N, 2) and 0 <= q.min() and q.max() <= 1
    dev = calibration_deviation(q)
    assert (dev < 1.6 / math.sqrt(N)).all(), dev  # KS: P(D > 1.63 / sqrt(N)) ~ 1 %
    levels, cdf = calibration_curve(q, 11)
    assert cdf.shape == (11, 2) and levels[-1] == 1 and (cdf[-1] == 1).all()
    _, ecp, area = tarp(samples, truth, generator=torch.Generator().manual_seed(11))
    assert area < 0.02 and ecp[0] == 0 and ecp[-1] > 0.99


@pytest.mark.parametrize(("width", "shift"), [(0.6, 0.0), (1.0, 0.5), (1.0, 1.0), (1.6, 0.0)])
def test_miscalibrated_posteriors_are_caught(width: float, shift: float) -> None:
    samples, truth = gaussian_toy(width, shift)
    dev = calibration_deviation(pit(samples, truth))
    assert (dev > 0.05).all(), dev
    if shift != 0.5:  # TARP with uniform references is less sensitive to a bias: 0.02-0.03
        _, _, area = tarp(samples, truth, generator=torch.Generator().manual_seed(11))
        assert area > 0.04, area


def test_too_narrow_posterior_gives_an_s_curve() -> None:
    """Too narrow: truths fall in the tails, so the CDF rises above the diagonal first."""
    samples, truth = gaussian_toy(0.5)
    levels, cdf = calibration_curve(pit(samples, truth), 21)
    assert (cdf[2] > levels[2] + 0.05).all() and (cdf[-3] < levels[-3] - 0.05).all()


def test_deviation_is_the_ks_statistic() -> None:
    from scipy.stats import kstest

    q = torch.rand(500, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ks = [kstest(q[:, j].numpy(), "uniform").statistic for j in range(3)]
    np.testing.assert_allclose(calibration_deviation(q).numpy(), ks, rtol=1e-12)


def test_tarp_agrees_with_the_reference_package_formula_on_fixed_references() -> None:
    """With given reference points the result is deterministic: recompute it by hand."""
    samples, truth = gaussian_toy(0.7, seed=3)
    refs = truth.flip(0)
    alpha, ecp, _ = tarp(samples, truth, references=refs, bins=10)
    mean, std = truth.mean(0), truth.std(0)
    s, t, r = ((a - mean) / std for a in (samples, truth, refs))
    f = ((s - r).norm(dim=-1) < (t - r).norm(dim=-1)).double().mean(0).numpy()
    expected = [(f < a).mean() for a in alpha.numpy()]
    np.testing.assert_allclose(ecp.numpy(), expected)


def test_histogram_chi2() -> None:
    rng = np.random.default_rng(0)
    truth = np.full(20, 1000.0)
    chis = [histogram_chi2(rng.poisson(truth), truth, truth)[0] for _ in range(300)]
    assert np.mean(chis) == pytest.approx(20, rel=0.1)
    cov = np.diag(truth) + 100.0  # correlated errors
    chi2, ndf = histogram_chi2(truth + 10, truth, cov)
    assert ndf == 20 and chi2 == pytest.approx(
        100 * np.ones(20) @ np.linalg.solve(cov, np.ones(20))
    )
    chi2, ndf = histogram_chi2([5.0, 7.0], [5.0, 6.0], [0.0, 4.0])  # an empty bin is skipped
    assert (chi2, ndf) == (0.25, 1)


def test_bad_input_is_refused() -> None:
    samples, truth = gaussian_toy()
    with pytest.raises(InputError, match=r"\(S, n, d\)"):
        pit(samples[:, :10], truth)
    bad = truth.clone()
    bad[0, 0] = math.nan
    with pytest.raises(InputError, match="NaN"):
        pit(samples, bad)
    with pytest.raises(InputError, match="at least 2"):
        tarp(samples[:1], truth)
    with pytest.raises(InputError, match="positive variance"):
        histogram_chi2([1.0], [1.0], [0.0])
    with pytest.raises(InputError, match="must be"):
        histogram_chi2([1.0, 2.0], [1.0], [1.0])
