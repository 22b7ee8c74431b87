"""The conditional density as a cINN posterior on a Gaussian toy, and the learned efficiency."""

from __future__ import annotations

import math

import pytest
import torch

from hepflows.errors import ConfigError, InputError
from hepflows.inference import calibration_deviation, pit
from hepflows.inference.conditional import ConditionalDensity, check_names, unfolded_weights
from hepflows.inference.efficiency import Efficiency

# y = x + N(0, SIGMA^2), x ~ N(0, 1): posterior N(y / (1 + SIGMA^2), SIGMA^2 / (1 + SIGMA^2))
SIGMA = 0.5


def toy(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, generator=g, dtype=torch.float64)
    return x, x + SIGMA * torch.randn(n, 1, generator=g, dtype=torch.float64)


@pytest.fixture(scope="module")
def trained() -> ConditionalDensity:
    x, y = toy(20_000, 0)
    return ConditionalDensity(("x",), transforms=3, bins=8, hidden=(32, 32)).fit(
        x, y, steps=1500, batch_size=512
    )


def test_posterior_matches_the_exact_one_and_is_calibrated(trained: ConditionalDensity) -> None:
    x, y = toy(2000, 1)
    s = trained.sample(y, 200, generator=torch.Generator().manual_seed(2))
    assert s.shape == (200, 2000, 1)
    width = math.sqrt(SIGMA**2 / (1 + SIGMA**2))
    assert (s.mean(0) - y / (1 + SIGMA**2)).abs().mean() < 0.1 * width
    assert s.std(0).mean().item() == pytest.approx(width, rel=0.05)
    assert calibration_deviation(pit(s, x)).item() < 0.04
    # the density agrees with the exact posterior where the mass is, also with the samples
    lp = trained.log_prob(y / (1 + SIGMA**2), y)
    xs, lq = trained.sample_and_log_prob(y[:20], 3, generator=torch.Generator().manual_seed(5))
    again = trained.log_prob(xs.reshape(60, 1), y[:20].repeat(3, 1)).view(3, 20)
    torch.testing.assert_close(lq, again, rtol=0, atol=1e-4)  # the flow computes in float32
    assert lp.mean().item() == pytest.approx(-math.log(width * math.sqrt(2 * math.pi)), abs=0.1)


def test_save_round_trip_gives_the_same_samples(trained: ConditionalDensity) -> None:
    again = ConditionalDensity.from_saved(trained.state(), trained.tensors())
    y = toy(50, 3)[1]
    a = trained.sample(y, 5, generator=torch.Generator().manual_seed(4))
    b = again.sample(y, 5, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b)


def test_efficiency_learns_a_known_turn_on() -> None:
    g = torch.Generator().manual_seed(5)
    x = 4 * torch.rand(30_000, 1, generator=g, dtype=torch.float64) - 2
    eps = torch.sigmoid(3 * x[:, 0])
    passed = torch.rand(30_000, generator=g, dtype=torch.float64) < eps
    model = Efficiency(("x",), hidden=(32, 32)).fit(x, passed, epochs=40)
    grid = torch.linspace(-1.5, 1.5, 13, dtype=torch.float64)[:, None]
    assert (model(grid) - torch.sigmoid(3 * grid[:, 0])).abs().max() < 0.04
    with pytest.raises(InputError, match="both detected and missed"):
        Efficiency(("x",)).fit(x, torch.ones(30_000, dtype=torch.bool))


def test_unfolded_weights_and_observable_checks() -> None:
    s = torch.zeros(4, 3, 2)
    torch.testing.assert_close(unfolded_weights(s, None).sum(0), torch.ones(3, dtype=torch.float64))
    eff = torch.full((4, 3), 0.5)
    torch.testing.assert_close(
        unfolded_weights(s, eff).sum(0), torch.full((3,), 2.0, dtype=torch.float64)
    )
    inside = torch.tensor([[True, False, True]] * 2 + [[True, False, False]] * 2)
    inside[0, 1] = True  # event 1 counts one sample, event 2 two
    w = unfolded_weights(s, eff, inside)
    torch.testing.assert_close(w.sum(0), torch.full((3,), 2.0, dtype=torch.float64))
    assert w[0, 1].item() == 2.0 and (w[1:, 1] == 0).all() and (w[2:, 2] == 0).all()
    with pytest.raises(InputError, match="at least one sample per event"):
        unfolded_weights(s, eff, torch.zeros(4, 3, dtype=torch.bool))
    with pytest.raises(InputError, match="trained on observables"):
        check_names(("m_ll", "y_ll"), ("m_ll",), "the cINN")


def test_holdout_keeps_the_best_held_out_weights() -> None:
    x, y = toy(1200, 6)
    model = ConditionalDensity(("x",), transforms=2, bins=8, hidden=(32, 32))
    model.fit(x, y, steps=400, batch_size=256, holdout=0.25, validate_every=40)
    assert len(model.val_losses) == 10 and model.best_step % 40 == 0
    best = min(model.val_losses)
    assert model.best_step == 40 * (1 + model.val_losses.index(best))
    # the held-out quarter (the same seeded choice) scores the best NLL again
    perm = torch.randperm(1200, generator=torch.Generator().manual_seed(7919))[:300]
    u = model._to_u(x[perm], y[perm])
    with torch.no_grad():
        nll = -model.flow.log_prob(u, model.c_scaler.forward(y[perm])).double().mean().item()
    assert nll == pytest.approx(best, abs=1e-4)
    again = ConditionalDensity(("x",), transforms=2, bins=8, hidden=(32, 32))
    again.fit(x[300:], y[300:], steps=80, batch_size=256, validation=(x[:300], y[:300]),
              validate_every=40)  # fmt: skip
    assert len(again.val_losses) == 2
    with pytest.raises(ConfigError, match="holdout"):
        model.fit(x, y, steps=10, batch_size=256, holdout=0.6)
    with pytest.raises(ConfigError, match="either"):
        model.fit(x, y, steps=10, batch_size=256, holdout=0.1, validation=(x, y))


def flip_toy(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Truth and reco (m_ll, y_ll, cos_cs): y smeared across 0 flips the sign of cos_cs."""
    g = torch.Generator().manual_seed(seed)
    m = 250 + 20 * torch.randn(n, generator=g, dtype=torch.float64)
    y = 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    cos = torch.tanh(0.6 * torch.randn(n, generator=g, dtype=torch.float64))
    truth = torch.stack([m, y, cos], -1)
    noise = torch.randn(n, 3, generator=g, dtype=torch.float64) * torch.tensor([2.0, 0.05, 0.02])
    reco = truth + noise
    reco[:, 2] = reco[:, 2].clamp(-0.999, 0.999)
    reco[:, 2] = torch.where((reco[:, 1] < 0) != (y < 0), -reco[:, 2], reco[:, 2])
    return truth, reco


def test_fold_signs_is_an_involution_and_removes_the_flipped_mode() -> None:
    """A fifth of the toy's events flip cos_cs; folded, the posterior has one mode and the
    flow passes the held-out validation; unfolded, it fails it (a pull far off)."""
    from hepflows.inference.conditional import fold_signs
    from hepflows.inference.validation import validate

    names = ("m_ll", "y_ll", "cos_cs")
    truth, reco = flip_toy(20_000, 0)
    torch.testing.assert_close(fold_signs(fold_signs(reco, names), names), reco, rtol=0, atol=0)
    assert torch.equal(fold_signs(reco, ("m_ll", "cos_cs")), reco)  # no y_ll: nothing to fold
    flipped = (torch.sign(truth[:, 2]) != torch.sign(reco[:, 2])).double().mean().item()
    assert 0.1 < flipped < 0.3
    held_t, held_r = flip_toy(4000, 1)
    z_std = {}
    for fold in (True, False):
        q = ConditionalDensity(names, transforms=4, bins=8, hidden=(64, 64), fold=fold)
        q.fit(truth, reco, steps=600, batch_size=512)
        report = validate(q, held_t, held_r)
        z_std[fold] = report.z.std(0).max()
        if fold:  # measured: r^2 KS p = 0.16, worst pull p = 0.022
            assert report.r2_ks_pvalue > 0.05 and min(report.pull_pvalues) > 0.005, report.summary()
            g = torch.Generator().manual_seed(1)
            xs, lq = q.sample_and_log_prob(held_r[:10], 4, generator=g)
            again = q.log_prob(xs.reshape(40, 3), held_r[:10].repeat(4, 1)).view(4, 10)
            torch.testing.assert_close(lq, again, rtol=0, atol=1e-4)
            state = q.state()
            assert state["config"]["fold"] is True
            state["config"].pop("fold")  # a file written before the option: loads unfolded
            assert ConditionalDensity.from_saved(state, q.tensors()).config["fold"] is False
    # unfolded, measured: worst pull p = 8e-11 (z2), max z std 1.15 (folded 1.05)
    assert not report.passed and min(report.pull_pvalues) < 1e-6, report.summary()
    assert z_std[False] > z_std[True] + 0.05, z_std
