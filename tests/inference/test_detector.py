"""The toy detector: smearing and efficiency follow their formulas; seeded; bad input refused."""

from __future__ import annotations

import math

import pytest
import torch

from hepflows.errors import ConfigError, InputError
from hepflows.inference import DetectorSettings, ToyDetector
from hepflows.inference.detector import from_pt_eta_phi, pt_eta_phi


def leptons(n: int, p_t: float, eta: float = 0.3, seed: int = 0) -> torch.Tensor:
    """n massless leptons at fixed pT and eta, random phi: (n, 4)."""
    g = torch.Generator().manual_seed(seed)
    phi = (2 * torch.rand(n, generator=g, dtype=torch.float64) - 1) * math.pi
    v = torch.stack((torch.full((n,), p_t, dtype=torch.float64),
                     torch.full((n,), eta, dtype=torch.float64), phi), -1)  # fmt: skip
    return from_pt_eta_phi(v)


def test_pt_eta_phi_round_trip() -> None:
    p = leptons(100, 37.0, eta=-1.7)
    torch.testing.assert_close(from_pt_eta_phi(pt_eta_phi(p)), p)
    torch.testing.assert_close(pt_eta_phi(p)[:, 0], torch.full((100,), 37.0, dtype=torch.float64))


@pytest.mark.parametrize("p_t", [25.0, 100.0, 900.0])
def test_smearing_has_the_documented_widths(p_t: float) -> None:
    det = ToyDetector(seed=3)
    true = leptons(40_000, p_t)
    reco = pt_eta_phi(det.smear(true))
    rel = reco[:, 0] / p_t - 1
    expected = math.hypot(0.15 / math.sqrt(p_t), 0.01)
    n = len(rel)
    assert abs(rel.mean()) < 4 * expected / math.sqrt(n)
    assert rel.std().item() == pytest.approx(expected, rel=4 / math.sqrt(2 * n) * 1.5)
    d_eta = reco[:, 1] - 0.3
    assert d_eta.std().item() == pytest.approx(0.002, rel=0.03)
    d_phi = torch.remainder(reco[:, 2] - pt_eta_phi(true)[:, 2] + math.pi, 2 * math.pi) - math.pi
    assert d_phi.std().item() == pytest.approx(0.002, rel=0.03)


def test_efficiency_follows_the_formula_and_the_acceptance() -> None:
    det = ToyDetector()
    p_t = torch.tensor([10.0, 20.0, 25.0, 40.0, 500.0, 40.0, 40.0], dtype=torch.float64)
    eta = torch.tensor([0.0, 0.0, 0.0, 1.0, -2.0, 2.49, -2.51], dtype=torch.float64)
    expected = [0.0, 0.0, 0.95 * (1 - math.exp(-0.5)), 0.95 * (1 - math.exp(-2)),
                0.95 * (1 - math.exp(-48)), 0.95 * (1 - math.exp(-2)), 0.0]  # fmt: skip
    torch.testing.assert_close(det.lepton_efficiency(p_t, eta),
                               torch.tensor(expected, dtype=torch.float64))  # fmt: skip


def test_pass_fraction_matches_the_event_efficiency() -> None:
    det = ToyDetector(seed=5)
    a, b = leptons(50_000, 30.0, eta=0.5, seed=1), leptons(50_000, 45.0, eta=-1.0, seed=2)
    eff = 0.95**2 * (1 - math.exp(-1)) * (1 - math.exp(-2.5))
    out = det(a, b)
    assert out.lepton.shape == out.antilepton.shape == (50_000, 4)
    frac = out.passed.double().mean().item()
    assert abs(frac - eff) < 4 * math.sqrt(eff * (1 - eff) / 50_000)
    torch.testing.assert_close(det.efficiency(a, b), torch.full((50_000,), eff,
                                                               dtype=torch.float64))  # fmt: skip


def test_log_transfer_is_the_density_of_the_smearing() -> None:
    """The closed-form T(reco | truth) integrates to 1 and matches a histogram of smears."""
    det = ToyDetector(seed=7)
    truth = pt_eta_phi(leptons(1, 50.0))[0]
    sig = 50.0 * det.resolution(torch.tensor(50.0, dtype=torch.float64)).item()
    grid = torch.linspace(50 - 6 * sig, 50 + 6 * sig, 2001, dtype=torch.float64)
    pts = truth.repeat(len(grid), 1)
    pts[:, 0] = grid
    # integrate the pT marginal: fix eta, phi at the truth and divide out their peak densities
    dens = det.log_transfer(pts, truth.expand_as(pts)).exp() * (2 * math.pi * 0.002**2)
    assert torch.trapezoid(dens, grid).item() == pytest.approx(1.0, abs=1e-6)
    draws = pt_eta_phi(det.smear(from_pt_eta_phi(truth.repeat(200_000, 1))))[:, 0]
    inside = ((draws > 50 - sig) & (draws < 50 + sig)).double().mean().item()
    assert inside == pytest.approx(math.erf(1 / math.sqrt(2)), abs=0.005)
    wrapped = truth.clone()
    wrapped[2] += 2 * math.pi  # phi is periodic
    assert det.log_transfer(truth, wrapped).item() == pytest.approx(
        det.log_transfer(truth, truth).item()
    )


def test_detector_is_seeded_and_owns_its_randomness() -> None:
    a, b = leptons(500, 60.0, seed=1), leptons(500, 60.0, seed=2)
    torch.manual_seed(0)
    before = torch.rand(1)
    r1, r2 = ToyDetector(seed=4)(a, b), ToyDetector(seed=4)(a, b)
    torch.testing.assert_close(r1.lepton, r2.lepton)
    assert torch.equal(r1.passed, r2.passed)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(1), before)  # the global stream is untouched
    assert not torch.equal(ToyDetector(seed=5)(a, b).lepton, r1.lepton)


def test_bad_settings_and_input_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown detector settings"):
        ToyDetector(resolution=0.1)
    with pytest.raises(ConfigError, match="plateau"):
        DetectorSettings(plateau=1.5)
    with pytest.raises(ConfigError, match="stochastic"):
        ToyDetector(stochastic=-0.1)
    det = ToyDetector()
    good = leptons(3, 40.0)
    with pytest.raises(InputError, match=r"\(n, 4\)"):
        det(good[:, :3], good[:, :3])
    with pytest.raises(InputError, match="differ in shape"):
        det(good, good[:2])
    bad = good.clone()
    bad[0, 1] = math.nan
    with pytest.raises(InputError, match="NaN"):
        det(bad, good)
    beam = good.clone()
    beam[0, 1:3] = 0
    with pytest.raises(InputError, match="along the beam"):
        det(beam, good)
    assert "stochastic=0.15" in repr(det)
