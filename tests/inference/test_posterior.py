"""Amortised posteriors: against the analytic conjugate-Gaussian posterior, coordinates of
bounded parameters, event-list summaries, save/load and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from hepflows.errors import CheckpointError, ConfigError, InputError
from hepflows.inference.coverage import sbc_check, sbc_ranks
from hepflows.inference.posterior import Posterior, simulate
from hepflows.inference.priors import Normal, Prior, Uniform

SIGMA = 0.5  # noise of the conjugate model
MEANS, STDS = (0.0, 0.5), (1.0, 2.0)


def gaussian_prior() -> Prior:
    return Prior(["a", "b"], [Normal(m, s) for m, s in zip(MEANS, STDS, strict=True)])


def conjugate(theta: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """x = (theta + noise, two pure-noise features): (n, 2) -> (n, 4)."""
    noise = torch.randn(len(theta), 4, generator=g, dtype=torch.float64)
    return torch.cat([theta + SIGMA * noise[:, :2], noise[:, 2:]], -1)


def exact(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Analytic posterior mean and std (n, 2) of the conjugate model."""
    prior_m, prior_s = torch.tensor(MEANS), torch.tensor(STDS)
    precision = 1 / prior_s**2 + 1 / SIGMA**2
    mean = (prior_m / prior_s**2 + x[:, :2] / SIGMA**2) / precision
    return mean, (1 / precision.sqrt()).expand_as(mean)


@pytest.fixture(scope="module")
def trained() -> Posterior:
    prior = gaussian_prior()
    theta, x = simulate(prior, conjugate, 20_000, torch.Generator().manual_seed(1))
    post = Posterior(prior, (4,), embed=8, transforms=4, hidden=(64, 64), seed=3)
    return post.train(theta, x, steps=2500, batch_size=256, seed=2)


def test_matches_the_analytic_posterior_and_passes_sbc(trained: Posterior) -> None:
    prior = gaussian_prior()
    theta, x = simulate(prior, conjugate, 300, torch.Generator().manual_seed(5))
    samples = trained.sample(x, 400, torch.Generator().manual_seed(6))  # (400, 300, 2)
    mean, std = exact(x)
    # Mean and width per observation, against sampling noise 1/sqrt(400) of a width.
    d_mean = ((samples.mean(0) - mean) / std).abs()
    assert float(d_mean.mean()) < 0.12, d_mean.mean()
    ratio = samples.std(0) / std
    assert abs(float(ratio.mean()) - 1) < 0.05, ratio.mean()
    p = sbc_check(sbc_ranks(samples, theta), 400)
    assert bool((p > 0.01).all()), p
    assert trained.simulations == 20_000


def test_log_prob_is_the_density_of_the_samples(trained: Posterior) -> None:
    """log q at a grid integrates to 1, and its maximum sits at the exact posterior mean."""
    x = torch.tensor([[0.3, -1.0, 0.1, 0.2]], dtype=torch.float64)
    mean, std = exact(x)
    a = torch.linspace(-4, 4, 161) * std[0, 0] + mean[0, 0]
    b = torch.linspace(-4, 4, 161) * std[0, 1] + mean[0, 1]
    grid = torch.cartesian_prod(a, b)
    lq = trained.log_prob(grid, x.expand(len(grid), -1))
    cell = float((a[1] - a[0]) * (b[1] - b[0]))
    assert float(lq.exp().sum()) * cell == pytest.approx(1.0, abs=0.03)
    best = grid[lq.argmax()]
    assert float(((best - mean[0]) / std[0]).abs().max()) < 0.3


def test_bounded_parameter_stays_in_its_support() -> None:
    prior = Prior(["mu"], [Uniform(0.0, 1.0)])

    def sim(theta: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return theta + 0.1 * torch.randn(theta.shape, generator=g, dtype=torch.float64)

    theta, x = simulate(prior, sim, 8000, torch.Generator().manual_seed(0))
    post = Posterior(prior, (1,), transforms=3, hidden=(32, 32)).train(theta, x, steps=800)
    obs = torch.tensor([[0.02], [0.5], [0.98]])
    s = post.sample(obs, 2000, torch.Generator().manual_seed(1))
    assert float(s.min()) >= 0.0 and float(s.max()) <= 1.0
    # The density is normalised on the support (the logit Jacobian is right) and 0 outside.
    grid = torch.linspace(0.0005, 0.9995, 1000)[:, None]
    for o in obs:
        lq = post.log_prob(grid, o.expand(len(grid), 1))
        assert float(lq.exp().mean()) == pytest.approx(1.0, abs=0.04)
    outside = post.log_prob(torch.tensor([[-0.1], [1.2]]), obs[:2])
    assert bool(torch.isinf(outside).all())


def test_set_summary_is_permutation_invariant_and_ignores_padding() -> None:
    prior = Prior(["m"], [Normal(0.0, 1.0)])

    def sim(theta: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return theta[:, None, :] + torch.randn(len(theta), 20, 1, generator=g, dtype=torch.float64)

    theta, x = simulate(prior, sim, 4000, torch.Generator().manual_seed(0))
    post = Posterior(prior, (20, 1), summary="set", transforms=2, hidden=(32, 32))
    post.train(theta, x, steps=600)
    obs = x[:5]
    t = torch.zeros(5, 1)
    shuffled = obs[:, torch.randperm(20, generator=torch.Generator().manual_seed(2))]
    padded = torch.cat([obs, torch.full((5, 7, 1), math.nan)], 1)
    bigger = Posterior(prior, (27, 1), summary="set", transforms=2, hidden=(32, 32))
    ref = post.log_prob(t, obs)
    torch.testing.assert_close(post.log_prob(t, shuffled), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(post.log_prob(t, padded), ref, rtol=1e-5, atol=1e-5)
    assert bigger.observation_shape == (27, 1)
    # 20 events of unit noise: the posterior width is near 1 / sqrt(21).
    width = post.sample(obs, 2000, torch.Generator().manual_seed(3)).std(0)
    assert float(width.mean()) == pytest.approx(1 / math.sqrt(21), rel=0.2)


def test_save_load_identical(trained: Posterior, tmp_path) -> None:
    path = tmp_path / "post.safetensors"
    trained.save(path)
    back = Posterior.load(path)
    theta, x = simulate(gaussian_prior(), conjugate, 50, torch.Generator().manual_seed(9))
    assert torch.equal(back.log_prob(theta, x), trained.log_prob(theta, x))
    s1 = trained.sample(x, 10, torch.Generator().manual_seed(4))
    s2 = back.sample(x, 10, torch.Generator().manual_seed(4))
    assert torch.equal(s1, s2)
    assert back.simulations == trained.simulations and back.names == ("a", "b")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a file")
    with pytest.raises(CheckpointError, match="not a readable"):
        Posterior.load(bad)


def test_ensemble_spread_and_intervals() -> None:
    prior = Prior(["a"], [Normal(0.0, 1.0)])

    def sim(theta: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return theta + 0.5 * torch.randn(theta.shape, generator=g, dtype=torch.float64)

    theta, x = simulate(prior, sim, 3000, torch.Generator().manual_seed(0))
    post = Posterior(prior, (1,), ensemble=2, transforms=2, hidden=(16, 16)).train(
        theta, x, steps=300
    )
    obs = torch.tensor([[0.0], [1.0]])
    spread = post.member_spread(obs, 500, torch.Generator().manual_seed(1))
    assert spread.shape == (2, 1) and bool((spread > 0).all())
    iv = post.interval(obs, 0.68, 4000, torch.Generator().manual_seed(2))
    assert iv.shape == (2, 1, 2) and bool((iv[..., 0] < iv[..., 1]).all())
    # Exact 68 % central interval: mean +- std with std = 1/sqrt(5) = 0.447.
    assert float((iv[..., 1] - iv[..., 0]).mean()) == pytest.approx(2 / math.sqrt(5), rel=0.15)


def test_bad_input(trained: Posterior) -> None:
    prior = gaussian_prior()
    with pytest.raises(InputError, match=r"\(n, 4\)"):
        trained.sample(torch.zeros(3, 5), 10)
    with pytest.raises(InputError, match="NaN"):
        trained.sample(torch.full((1, 4), math.nan), 10)
    with pytest.raises(InputError, match=r"theta must be \(n, 2\)"):
        trained.log_prob(torch.zeros(3, 3), torch.zeros(3, 4))
    fresh = Posterior(prior, (4,))
    with pytest.raises(ConfigError, match="not trained"):
        fresh.sample(torch.zeros(1, 4), 10)
    with pytest.raises(InputError, match="fewer than one batch"):
        fresh.train(torch.zeros(100, 2), torch.zeros(100, 4))
    with pytest.raises(InputError, match="outside its prior's support"):
        Posterior(Prior(["m"], [Uniform(0, 1)]), (1,)).train(torch.full((500, 1), 2.0),
                                                             torch.zeros(500, 1))  # fmt: skip
    with pytest.raises(ConfigError, match="summary"):
        Posterior(prior, (4,), summary="cnn")
    with pytest.raises(ConfigError, match=r"\(N, F\)"):
        Posterior(prior, (4,), summary="set")
    with pytest.raises(ConfigError, match="one prior component per parameter"):
        Prior(["a", "b"], [Normal(0, 1)])
    with pytest.raises(ConfigError, match="low < high"):
        Uniform(1.0, 0.0)
