"""The exact matrix-element method on Drell-Yan: lepton variables, d sigma, sigma_fid, fits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hepflows.errors import ConfigError, InputError
from hepflows.generate import generate_pairs
from hepflows.inference import leptons, mem
from hepflows.inference.detector import ToyDetector, pt_eta_phi


@pytest.fixture(scope="module")
def model() -> mem.DrellYanModel:
    return mem.DrellYanModel(("mzp",))


@pytest.fixture(scope="module")
def pairs():
    """3000 fiducial Z' events (400 GeV, 0.5 GeV wide) in the lepton variables."""
    return generate_pairs(3000, True, seed=11, names=leptons.RECO, train_calls=50_000)


def test_lepton_variables_round_trip_and_jacobian() -> None:
    g = torch.Generator().manual_seed(0)
    m = 150 + 500 * torch.rand(50, generator=g, dtype=torch.float64)
    y = torch.rand(50, generator=g, dtype=torch.float64) * 2 - 1
    c = torch.rand(50, generator=g, dtype=torch.float64) * 1.8 - 0.9
    x = leptons.from_mass(m, y, c)
    back = leptons.to_mass(x)
    for a, b in zip(back, (m, y, c), strict=True):
        assert torch.allclose(a, b, atol=1e-10)
    for i in range(5):  # log |d(m, y, cos) / dx| against autograd
        jac = torch.autograd.functional.jacobian(lambda v: torch.stack(leptons.to_mass(v[None])),
                                                 x[i])[:, 0]  # fmt: skip
        assert leptons.log_jacobian(x[i : i + 1]).item() == pytest.approx(
            torch.linalg.det(jac).abs().log().item(), abs=1e-10
        )


def test_truth_and_reco_of_four_vectors_and_the_transfer(pairs) -> None:
    """The detector's own closed form (per lepton, phi dropped) equals leptons.log_transfer."""
    det = ToyDetector(seed=0)
    x = pairs.truth[:20][:, [0, 2, 3]]
    r = pairs.reco[:20]
    assert torch.allclose(pairs.truth[:, 0], pairs.truth[:, 1])  # LO: equal pT
    phi = torch.zeros(20, dtype=torch.float64)
    lep = [torch.stack((x[:, 0], x[:, 1 + j], phi), -1) for j in range(2)]
    rec = [torch.stack((r[:, j], r[:, 2 + j], phi), -1) for j in range(2)]
    want = sum(det.log_transfer(rec[j], lep[j]) for j in range(2))
    phi_term = 2 * (-math.log(det.settings.phi_sigma) - 0.5 * math.log(2 * math.pi))
    assert torch.allclose(leptons.log_transfer(det, r, x), want - phi_term, atol=1e-9)
    four = torch.stack((x[:, 0] * torch.cosh(x[:, 1]), x[:, 0], 0 * x[:, 0],
                        x[:, 0] * torch.sinh(x[:, 1])), -1)  # fmt: skip
    assert torch.allclose(pt_eta_phi(four)[:, :2], x[:, :2], atol=1e-9)


def test_differential_integrates_to_the_process_cross_section() -> None:
    from hepflows.physics import DrellYan

    dy = DrellYan(zprime=False, sqrt_s_hat_min=150.0)
    g = torch.Generator().manual_seed(1)
    n, lo, hi = 1_000_000, 150.0, 13000.0
    u = torch.rand(n, 3, generator=g, dtype=torch.float64)
    m = 1 / (1 / lo - u[:, 0] * (1 / lo - 1 / hi))
    y_max = torch.log(hi / m)
    w = dy.differential(m, (2 * u[:, 1] - 1) * y_max, 2 * u[:, 2] - 1)
    w = w * m**2 * (1 / lo - 1 / hi) * 2 * y_max * 2
    v = dy(torch.rand(n, 4, generator=g, dtype=torch.float64))
    diff = w.mean() - v.mean()
    err = math.sqrt(w.var() / n + v.var() / n)
    assert abs(diff) < 3 * err and err < 0.005 * float(v.mean())


def test_sigma_fid_matches_monte_carlo_and_is_smooth(model) -> None:
    eff = mem.ExactTransfer().efficiency
    grid = torch.tensor([[399.0], [399.5], [400.0], [400.5], [401.0]], dtype=torch.float64)
    sig = model.sigma_fid(grid, eff)
    second = sig[2:] - 2 * sig[1:-1] + sig[:-2]  # smooth: second differences tiny
    assert second.abs().max() < 1e-5 * sig[2]
    g = torch.Generator().manual_seed(3)
    n, lo, hi = 1_000_000, 150.0, 13000.0
    u = torch.rand(n, 3, generator=g, dtype=torch.float64)
    m = 1 / (1 / lo - u[:, 0] * (1 / lo - 1 / hi))
    em, ep = 5 * u[:, 1] - 2.5, 5 * u[:, 2] - 2.5
    half = (em - ep) / 2
    x = torch.stack((m / (2 * torch.cosh(half)), em, ep), -1)
    d = model.process([400.0]).differential(m, (em + ep) / 2, torch.tanh(half))
    w = d * eff(x) / (2 * torch.cosh(half) ** 2) * m**2 * (1 / lo - 1 / hi) * 25
    assert float(sig[2]) == pytest.approx(float(w.mean()), abs=3 * float(w.std()) / math.sqrt(n))


def test_event_integrals_have_honest_errors(model, pairs) -> None:
    """Against an independent estimate with 16x the points: pulls of mean 0, width 1."""
    reco = pairs.reco[pairs.passed][:300]
    ex = mem.ExactTransfer()
    theta = torch.tensor([[400.0]], dtype=torch.float64)
    a = mem.event_integrals(model, ex, reco, theta, points=1024, seed=1)
    b = mem.event_integrals(model, ex, reco, theta, points=16384, seed=2)
    pull = (a.value - b.value) / (a.error**2 + b.error**2).sqrt()
    assert abs(float(pull.mean())) < 0.2 and 0.8 < float(pull.std()) < 1.25
    assert float(a.relative_error.median()) < 0.01  # 1 % with 1024 calls


def test_exact_mem_recovers_the_zprime_mass(model, pairs) -> None:
    reco = pairs.reco[pairs.passed]
    result = mem.fit(reco, "mzp", (398.0, 402.0), grid=9, model=model, points=512)
    print(result.summary())
    assert result.interval68[0] < result.best < result.interval68[1]
    assert abs(result.best - 400.0) < 2 * result.sigma
    assert 0.05 < result.sigma < 1.0  # ~90 signal events / 4.4 GeV resolution
    assert result.nll2.min() == 0 and result.info["nll2_step_noise"] < mem.NOISE_WARNING
    assert "mzp = " in result.summary()


def test_crossings_of_a_parabola() -> None:
    grid = np.linspace(-3, 3, 61)
    lo, hi = mem.crossings(grid, (grid - 0.5) ** 2 / 0.25, 1.0)  # sigma 0.5 around 0.5
    assert lo == pytest.approx(0.0, abs=1e-3) and hi == pytest.approx(1.0, abs=1e-3)
    assert math.isnan(mem.crossings(grid, grid**2 * 0, 1.0)[0])


def test_bad_input(model) -> None:
    with pytest.raises(ConfigError, match="parameters must be among"):
        mem.DrellYanModel(("top_mass",))
    with pytest.raises(InputError, match=r"reco must be \(n, 4\)"):
        mem.event_integrals(model, mem.ExactTransfer(), torch.ones(3, 3), torch.ones(1, 1))
    with pytest.raises(ConfigError, match="bounds low < high"):
        mem.fit(torch.ones(3, 4), "mzp", (402, 398))
    with pytest.raises(ConfigError, match="not \\['sin2w'\\]"):
        mem.fit(torch.ones(3, 4), "sin2w", (0.2, 0.25), model=model)
    with pytest.raises(InputError, match="theta must give"):
        model.process([1.0, 2.0])


@pytest.mark.slow
def test_learned_mem_follows_the_exact_one(model, pairs, tmp_path) -> None:
    """A small learned transfer (20k pairs, 800 steps) against the exact MEM, per event:
    the integrals agree to ~10 % and the log-likelihood ratios between two Z' masses
    (what a fit uses) correlate; the file round trip changes nothing."""
    from hepflows.inference.learned_mem import LearnedTransfer

    sim = generate_pairs(20_000, True, seed=21, names=leptons.RECO, train_calls=50_000)
    learned = LearnedTransfer.train(sim.truth, sim.reco, sim.passed, steps=800, batch_size=512,
                                    transforms=3, bins=8, efficiency_epochs=10)  # fmt: skip
    assert 0.005 < learned.rho < 0.05  # the relative pT resolution, read off the flow
    reco = pairs.reco[pairs.passed][:150]
    theta = torch.tensor([[399.0], [401.0]], dtype=torch.float64)
    exact = mem.event_integrals(model, mem.ExactTransfer(), reco, theta, points=1024, seed=3)
    ours = mem.event_integrals(model, learned, reco, theta, points=256, seed=4)
    assert float((ours.value / exact.value).log().abs().median()) < 0.2
    llr_e = (exact.value[1] / exact.value[0]).log()
    llr_l = (ours.value[1] / ours.value[0]).log()
    assert float(torch.corrcoef(torch.stack((llr_e, llr_l)))[0, 1]) > 0.9
    assert float((llr_e - llr_l).std()) < 0.5 * float(llr_e.std())
    learned.save(tmp_path / "t.safetensors")
    again = LearnedTransfer.load(tmp_path / "t.safetensors")
    twice = mem.event_integrals(model, again, reco, theta, points=256, seed=4)
    assert torch.equal(twice.value, ours.value)
    sig = model.sigma_fid(theta[:1], learned.efficiency)
    assert float(sig[0]) == pytest.approx(float(model.sigma_fid(theta[:1], exact_eff())[0]),
                                          rel=0.05)  # fmt: skip


def exact_eff():
    return mem.ExactTransfer().efficiency
