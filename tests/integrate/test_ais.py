"""Annealed importance sampling: unbiased weights, ESS gain from annealing, bookkeeping."""

import math

import pytest
import torch

from hepflows.errors import ConfigError
from hepflows.integrate.ais import annealed_importance_sampling, linear_betas

N = 20_000
MU = torch.tensor([1.0, -0.5], dtype=torch.float64)
S = 0.6
#: pi_0 = N(0, 1) in 2D is normalised (Z_0 = 1); pi_1 = exp(-|z - MU|^2 / 2 S^2).
Z1 = 2 * math.pi * S**2


def densities(z):
    lb = -0.5 * (z * z).sum(1) - math.log(2 * math.pi)
    r = z - MU
    lt = -0.5 * (r * r).sum(1) / S**2
    return lb, -z, lt, -r / S**2


def run(intermediate, seed, n=N, step=0.5, leapfrog=3):
    gen = torch.Generator().manual_seed(seed)
    z0 = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    steps = [step] * intermediate
    result = annealed_importance_sampling(
        z0, densities, linear_betas(intermediate), steps, leapfrog=leapfrog, generator=gen
    )
    return z0, result, steps


def ess(log_w):
    w = torch.exp(log_w - log_w.max())
    return (w.sum() ** 2 / (len(w) * (w * w).sum())).item()


def test_linear_betas():
    torch.testing.assert_close(linear_betas(0), torch.tensor([0.0, 1.0], dtype=torch.float64))
    b = linear_betas(3)
    assert b.dtype == torch.float64
    torch.testing.assert_close(b, torch.tensor([0, 0.25, 0.5, 0.75, 1], dtype=torch.float64))
    with pytest.raises(ConfigError):
        linear_betas(-1)


@pytest.mark.parametrize("intermediate", [0, 1, 3])
def test_weights_are_unbiased(intermediate):
    """E[w] = Z_1 / Z_0, within 4 standard errors of the mean over N chains."""
    _, r, _ = run(intermediate, seed=10 + intermediate)
    w = torch.exp(r.log_w)
    se = w.std().item() / math.sqrt(N)
    assert abs(w.mean().item() - Z1) < 4 * se, (w.mean().item(), Z1, se)
    # the test is sharp: 4 standard errors are a few percent of Z_1
    assert 4 * se < 0.05 * Z1
    # (z, w) is an importance sample of pi_1: the weighted mean of z estimates MU
    wn = w / w.sum()
    mean = (wn[:, None] * r.z).sum(0)
    se_mean = torch.sqrt((wn[:, None] ** 2 * (r.z - mean) ** 2).sum(0))
    assert torch.all((mean - MU).abs() < 4 * se_mean), (mean, se_mean)


def test_plain_importance_sampling_ess_is_the_analytic_one():
    """With no intermediate distribution the weights are pi_1 / pi_0 at exact draws of pi_0:
    ESS / n -> Z_1^2 / E_0[w^2], known in closed form for Gaussians."""
    a = 1 / S**2 - 0.5
    e_w2 = 1.0
    for m in MU.tolist():
        e_w2 *= (
            math.sqrt(2 * math.pi)
            * math.sqrt(math.pi / a)
            * math.exp((m / S**2) ** 2 / a - m**2 / S**2)
        )
    _, r, _ = run(0, seed=3)
    assert ess(r.log_w) == pytest.approx(Z1**2 / e_w2, rel=0.1)


def test_more_intermediate_distributions_raise_the_ess():
    # measured (n = 20000, two seeds): 0.28, 0.42, 0.57, 0.77 for 0, 1, 3, 10 intermediate
    values = [ess(run(k, seed=20 + k)[1].log_w) for k in (0, 1, 3, 10)]
    assert all(b > a + 0.08 for a, b in zip(values, values[1:], strict=False)), values
    assert values[-1] > 0.65, values


def test_log_ratio_start_and_final_densities():
    z0, r, _ = run(2, seed=4, n=500)
    lb, _, lt, _ = densities(z0)
    torch.testing.assert_close(r.log_ratio_start, lt - lb)
    # the final log-densities belong to the final points
    lb1, _, lt1, _ = densities(r.z)
    torch.testing.assert_close(r.log_base, lb1)
    torch.testing.assert_close(r.log_target, lt1)
    assert not torch.equal(r.z, z0)  # the chains moved


def test_log_weight_of_one_step_is_the_plain_ratio():
    """With K = 0 the weight is (b_1 - b_0) (log pi_1 - log pi_0)(z_0) and nothing moves."""
    z0, r, _ = run(0, seed=5, n=500)
    torch.testing.assert_close(r.log_w, r.log_ratio_start)
    assert torch.equal(r.z, z0) and r.accept == []


def test_step_sizes_adapt_in_place():
    _, r, steps = run(3, seed=6, n=2000, step=0.5)
    assert len(r.accept) == 3 and all(0 < a <= 1 for a in r.accept)
    # acceptance ~0.95 > 0.65: every step size grew, by exp(0.1 (accept - 0.65))
    for a, s in zip(r.accept, steps, strict=True):
        assert s == pytest.approx(0.5 * math.exp(0.1 * (a - 0.65)))
    gen = torch.Generator().manual_seed(0)
    z0 = torch.randn(100, 2, generator=gen, dtype=torch.float64)
    fixed = [0.5, 0.5]
    annealed_importance_sampling(z0, densities, linear_betas(2), fixed, 3, gen, adapt=False)
    assert fixed == [0.5, 0.5]


def test_wrong_number_of_step_sizes():
    z0 = torch.zeros(10, 2, dtype=torch.float64)
    with pytest.raises(ConfigError, match="need 3 step sizes"):
        annealed_importance_sampling(z0, densities, linear_betas(3), [0.1, 0.1])
    with pytest.raises(ConfigError, match="need 0 step sizes"):
        annealed_importance_sampling(z0, densities, linear_betas(0), [0.1])
