"""The signal-strength problem: templates, simulator and the exact grid posterior."""

from __future__ import annotations

import math

import pytest
import torch

from hepflows.errors import InputError
from hepflows.inference.coverage import sbc_check, sbc_ranks
from hepflows.inference.signal_strength import SignalStrength


@pytest.fixture(scope="module")
def problem() -> SignalStrength:
    return SignalStrength(events=200_000)


def test_templates(problem: SignalStrength) -> None:
    s = problem.settings
    assert problem.background.shape == problem.signal.shape == (s.alpha_points, s.bins)
    assert bool((problem.background > 0).all()) and bool((problem.signal >= 0).all())
    centres = (problem.edges[1:] + problem.edges[:-1]) / 2
    mid = s.alpha_points // 2  # alpha = 1
    # The resonance alone peaks at the Z' mass; the background falls with m_ll.
    peak = float((problem.signal[mid] * centres).sum() / problem.signal[mid].sum())
    assert peak == pytest.approx(s.mzp, abs=3.0)
    assert float(problem.background[mid, 0]) > 3 * float(problem.background[mid, -1])
    # alpha scales m_ll: the signal's mean moves by the same factor.
    up = int(torch.argmin((problem.alphas - 1.02).abs()))
    moved = float((problem.signal[up] * centres).sum() / problem.signal[up].sum())
    assert moved / peak == pytest.approx(float(problem.alphas[up]), abs=0.003)


def test_expected_and_simulate(problem: SignalStrength) -> None:
    theta = torch.tensor([[0.0, 1.0], [2.0, 1.0]], dtype=torch.float64)
    nu = problem.expected(theta)
    mid = problem.settings.alpha_points // 2
    lumi = problem.settings.luminosity
    torch.testing.assert_close(nu[0], lumi * problem.background[mid])
    torch.testing.assert_close(nu[1] - nu[0], 2 * lumi * problem.signal[mid])
    g = torch.Generator().manual_seed(0)
    x = problem.simulate(theta[[1]].expand(4000, 2), g)
    # Poisson: mean and variance of every bin equal nu (4000 draws: 5 sigma bands).
    err = (nu[1] / 4000).sqrt()
    assert bool(((x.mean(0) - nu[1]).abs() < 5 * err).all())
    assert float((x.var(0) / nu[1]).mean()) == pytest.approx(1.0, abs=0.03)


def test_grid_posterior_is_normalised_and_calibrated(problem: SignalStrength) -> None:
    g = torch.Generator().manual_seed(1)
    lp, mu, al = problem.grid_posterior(problem.simulate(torch.tensor([[1.0, 1.0]]), g)[0])
    cell = float((mu[1] - mu[0]) * (al[1] - al[0]))
    assert float(lp.exp().sum()) * cell == pytest.approx(1.0, rel=1e-9)
    # SBC of the exact posterior itself: truth from the prior, x from the simulator.
    theta = problem.prior.sample(150, g)
    x = problem.simulate(theta, g)
    samples = torch.stack([problem.grid_samples(xi, 300, g) for xi in x], 1)  # (300, 150, 2)
    p = sbc_check(sbc_ranks(samples, theta), 300)
    assert bool((p > 0.01).all()), p
    # A posterior that ignores the data (the prior) is far wider than the grid posterior.
    assert float(samples[..., 0].std(0).mean()) < 0.6 * 3 / math.sqrt(12)


def test_bad_input(problem: SignalStrength) -> None:
    with pytest.raises(InputError, match="one histogram of 40"):
        problem.grid_posterior(torch.zeros(39))
    with pytest.raises(InputError, match="non-negative"):
        problem.grid_posterior(torch.full((40,), -1.0))
    with pytest.raises(InputError, match=r"\(n, 2\)"):
        problem.expected(torch.zeros(3))
