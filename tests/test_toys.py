"""Toy densities (hepflows.toys) and the test references in tests/toys.py.

The learning tests measure KL against these log-densities, so they must be
normalised and must describe their samplers.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from hepflows import ConfigError
from hepflows.toys import (
    gaussian_mixture,
    gaussian_mixture_log_prob,
    ring,
    ring_log_prob,
    sampler,
    two_moons,
)
from toys import ConditionalGaussian, correlated_gaussian, two_moons_log_prob

F64 = torch.float64
TOYS = {
    "two-moons": (two_moons, two_moons_log_prob),
    "ring": (ring, ring_log_prob),
    "gaussian-mixture": (gaussian_mixture, gaussian_mixture_log_prob),
}


@pytest.mark.parametrize("name", list(TOYS))
def test_log_density_integrates_to_one(name):
    _, log_p = TOYS[name]
    g = torch.linspace(-5, 5, 201, dtype=F64)  # spacing 0.05 = sigma / 4
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    p = log_p(torch.stack((xx, yy), -1).reshape(-1, 2)).exp().reshape(201, 201)
    assert torch.trapezoid(torch.trapezoid(p, g, dim=1), g).item() == pytest.approx(1, abs=1e-4)


@pytest.mark.parametrize("name", list(TOYS))
def test_samples_follow_the_log_density(name):
    """Histogram of 100k samples vs cell integrals of exp(log_p): chi2 p-value > 1e-3."""
    draw, log_p = TOYS[name]
    x = draw(100_000, torch.Generator().manual_seed(0))
    assert x.shape == (100_000, 2) and x.dtype == torch.float32
    bins, sub, lo, hi = 24, 8, -4.0, 4.0
    m = bins * sub
    h = (hi - lo) / m
    mid = lo + h * (torch.arange(m, dtype=F64) + 0.5)
    xx, yy = torch.meshgrid(mid, mid, indexing="ij")
    q = log_p(torch.stack((xx, yy), -1).reshape(-1, 2)).exp().reshape(m, m)
    probs = q.reshape(bins, sub, bins, sub).sum((1, 3)) * h * h
    counts = torch.histogramdd(x, bins=[bins, bins], range=[lo, hi, lo, hi]).hist.double()
    expected = len(x) * probs
    keep = expected >= 20
    obs = torch.cat((counts[keep], (len(x) - counts[keep].sum()).reshape(1)))
    exp = torch.cat((expected[keep], (len(x) - expected[keep].sum()).reshape(1)))
    chi2 = ((obs - exp) ** 2 / exp).sum().item()
    assert stats.chi2.sf(chi2, len(obs) - 1) > 1e-3


def test_samplers_are_reproducible():
    for draw, _ in TOYS.values():
        a = draw(100, torch.Generator().manual_seed(1))
        b = draw(100, torch.Generator().manual_seed(1))
        assert torch.equal(a, b)


def test_two_moons_quadrature_is_converged():
    x = two_moons(500, torch.Generator().manual_seed(0)).double()
    torch.testing.assert_close(
        two_moons_log_prob(x), two_moons_log_prob(x, nodes=400), rtol=0, atol=1e-8
    )


def test_sampler_by_name():
    assert sampler("ring") is ring
    with pytest.raises(ConfigError, match="unknown toy density 'moons'.*two-moons"):
        sampler("moons")


def test_correlated_gaussian_is_seeded_and_spd():
    a, b, c = correlated_gaussian(16, 0), correlated_gaussian(16, 0), correlated_gaussian(16, 1)
    assert torch.equal(a.covariance_matrix, b.covariance_matrix)
    assert not torch.allclose(a.covariance_matrix, c.covariance_matrix)
    eig = torch.linalg.eigvalsh(a.covariance_matrix.double())
    assert eig.min() > 0.09 and eig.max() < 2.1
    # Strongly correlated: many off-diagonal correlations above 0.2 in size.
    sd = a.covariance_matrix.diag().sqrt()
    corr = a.covariance_matrix / sd[:, None] / sd[None, :]
    assert (corr.abs() > 0.2).sum() > 16 + 20


def test_conditional_gaussian_reference():
    g = torch.Generator().manual_seed(0)
    x, c = ConditionalGaussian.sample(50_000, g)
    assert x.shape == (50_000, 2) and c.shape == (50_000, 1)
    assert 0 <= c.min() and c.max() <= 1
    ref = torch.distributions.Normal(torch.cat((c, -c), -1), 0.5 + 0.3 * c).log_prob(x).sum(-1)
    torch.testing.assert_close(ConditionalGaussian.log_prob(x, c), ref)
    # Standardised residuals are N(0, 1).
    r = ((x - ConditionalGaussian.mean(c)) / ConditionalGaussian.std(c)).flatten()
    assert stats.kstest(r.numpy(), "norm").pvalue > 1e-3
    assert math.isclose(r.std().item(), 1.0, abs_tol=0.01)
