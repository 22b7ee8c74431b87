"""HMC transitions: invariance of the target, rejection, support, step-size adaptation."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from hepflows.integrate.hmc import HMCState, adapt_step_size, hmc_step

N = 20_000
MEAN = torch.tensor([0.5, -1.0], dtype=torch.float64)
COV = torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=torch.float64)
PREC = torch.linalg.inv(COV)


def gaussian(z):
    """log N(z; MEAN, COV) up to a constant, its gradient, and 2 z as extra."""
    r = z - MEAN
    g = -r @ PREC
    return 0.5 * (r * g).sum(1), g, 2 * z


def exact_draws(n, seed):
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    return MEAN + eps @ torch.linalg.cholesky(COV).T


def start(z, density=gaussian):
    lp, g, extra = density(z)
    return HMCState(z, lp, g, extra)


def run(state, density, step_size, leapfrog, moves, seed):
    gen = torch.Generator().manual_seed(seed)
    accepts = []
    for _ in range(moves):
        state, acc = hmc_step(state, density, step_size, leapfrog, gen)
        accepts.append(acc)
    return state, torch.stack(accepts)


def assert_gaussian(z, sigmas=4.5):
    """Mean and covariance of n independent draws within `sigmas` standard errors, and a
    KS test per coordinate."""
    n = len(z)
    mean = z.mean(0)
    se_mean = torch.sqrt(torch.diagonal(COV) / n)
    assert torch.all((mean - MEAN).abs() < sigmas * se_mean), (mean, se_mean)
    cov = torch.cov(z.T)
    # Var of a sample covariance of Gaussian data: (S_ii S_jj + S_ij^2) / n.
    se_cov = torch.sqrt((torch.outer(torch.diagonal(COV), torch.diagonal(COV)) + COV**2) / n)
    assert torch.all((cov - COV).abs() < sigmas * se_cov), (cov, se_cov)
    for i in range(2):
        sd = math.sqrt(COV[i, i].item())
        p = stats.kstest(z[:, i].numpy(), "norm", args=(MEAN[i].item(), sd)).pvalue
        assert p > 1e-3, (i, p)


def test_exact_draws_pass_the_checks():
    """Sanity check of the reference: the checks accept exact draws and reject shifted ones."""
    z = exact_draws(N, seed=1)
    assert_gaussian(z)
    with pytest.raises(AssertionError):
        assert_gaussian(z + 0.05)
    with pytest.raises(AssertionError):
        assert_gaussian(MEAN + 1.1 * (z - MEAN))


def test_hmc_leaves_a_correlated_gaussian_invariant():
    z0 = exact_draws(N, seed=2)
    state, acc = run(start(z0), gaussian, step_size=0.3, leapfrog=3, moves=10, seed=3)
    # the chains really moved (most proposals accepted) ...
    assert 0.8 < acc.mean().item() < 1.0
    moved = (state.z - z0).norm(dim=1)
    assert (moved > 0).float().mean().item() > 0.99
    assert moved.mean().item() > 0.5
    # ... and are still draws of the target
    assert_gaussian(state.z)
    # the state stays consistent: log pi, grad and extra belong to the stored positions
    lp, g, extra = gaussian(state.z)
    torch.testing.assert_close(state.log_prob, lp)
    torch.testing.assert_close(state.grad, g)
    torch.testing.assert_close(state.extra, extra)


def test_a_huge_step_is_mostly_rejected_and_keeps_the_target():
    """eps = 1.0 exceeds the leapfrog stability limit 2 sigma_min = 0.89 of the narrow
    direction: energies grow and most proposals are rejected (measured: 6% acceptance).
    Without a correct Metropolis test the chains would spread out."""
    z0 = exact_draws(N, seed=4)
    state, acc = run(start(z0), gaussian, step_size=1.0, leapfrog=3, moves=10, seed=5)
    assert acc.mean().item() < 0.15
    assert 0 <= acc.min().item() and acc.max().item() <= 1
    # rejected chains stay exactly where they were; after 10 moves some chains moved
    same = (state.z == z0).all(1)
    assert 0.3 < same.float().mean().item() < 0.8
    assert_gaussian(state.z)


def truncated(z):
    """The Gaussian restricted to z_0 > 0: outside, log pi is -inf (NaN beyond z_0 < -0.2)
    and the gradient NaN."""
    lp, g, extra = gaussian(z)
    out = z[:, 0] <= 0
    lp = torch.where(out, -math.inf, lp)
    lp = torch.where(z[:, 0] < -0.2, math.nan, lp)
    g = torch.where(out[:, None], math.nan, g)
    return lp, g, extra


def test_proposals_outside_the_support_are_rejected():
    # exact draws of the truncated Gaussian by rejection
    z = exact_draws(3 * N, seed=6)
    z0 = z[z[:, 0] > 0][:N]
    state, acc = run(start(z0, truncated), truncated, step_size=0.4, leapfrog=3, moves=10, seed=7)
    assert torch.isfinite(acc).all() and (acc >= 0).all() and (acc <= 1).all()
    # many proposals crossed the boundary (so the test exercises the rejection) ...
    assert (acc == 0).float().mean().item() > 0.05
    # ... yet every chain is inside with a finite log-density and gradient
    assert (state.z[:, 0] > 0).all()
    assert torch.isfinite(state.log_prob).all() and torch.isfinite(state.grad).all()
    # and the first coordinate still follows the truncated normal
    m, s = MEAN[0].item(), 1.0
    dist = stats.truncnorm((0 - m) / s, np.inf, loc=m, scale=s)
    assert stats.kstest(state.z[:, 0].numpy(), dist.cdf).pvalue > 1e-3


def test_adapt_step_size():
    assert adapt_step_size(0.2, 0.9, target=0.65) > 0.2
    assert adapt_step_size(0.2, 0.3, target=0.65) < 0.2
    assert adapt_step_size(0.2, 0.65, target=0.65) == pytest.approx(0.2)
    assert adapt_step_size(0.2, 0.9, target=0.65, rate=0.1) == pytest.approx(
        0.2 * math.exp(0.1 * 0.25)
    )
    assert adapt_step_size(0.2, math.nan) == pytest.approx(0.1)
    assert adapt_step_size(0.2, math.inf) == pytest.approx(0.1)
    # repeated updates converge to where the acceptance equals the target
    step = 0.05
    for _ in range(200):
        step = adapt_step_size(step, 1.0 - step, target=0.65, rate=0.5)
    assert step == pytest.approx(0.35, abs=1e-3)
