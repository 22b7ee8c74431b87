"""Iterative Bayesian unfolding (pyunfold) recovers a smeared, partly lost Gaussian."""

from __future__ import annotations

import numpy as np
import pytest

from hepflows.errors import InputError
from hepflows.inference import histogram_chi2
from hepflows.inference.ibu import ibu


def sample(n: int, seed: int, mean: float = 0.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(mean, 1.0, n)
    y = x + rng.normal(0, 0.3, n)
    passed = rng.random(n) < 0.6 + 0.3 * np.tanh(x)  # efficiency depends on the truth
    return x, y, passed


def test_ibu_recovers_the_truth_of_other_data() -> None:
    edges = np.linspace(-2.5, 2.5, 11)
    x, y, passed = sample(200_000, 0)
    xd, yd, pd = sample(40_000, 1, mean=0.3)  # data from another prior than the simulation
    r = ibu(x, y, passed, yd[pd], edges)
    true, _ = np.histogram(xd, edges)
    chi2, ndf = histogram_chi2(r.counts, true, r.errors**2)
    assert chi2 / ndf < 2.5, (chi2, ndf, r.iterations)
    assert 1 <= r.iterations < r.settings["max_iter"] and r.settings["ts"] == "ks"


def test_ibu_refuses_empty_bins() -> None:
    x, y, passed = sample(1000, 2)
    with pytest.raises(InputError, match="no simulated events"):
        ibu(x, y, passed, y, np.linspace(5, 6, 3))
    with pytest.raises(InputError, match="one length"):
        ibu(x, y[:10], passed, y, np.linspace(-1, 1, 3))
