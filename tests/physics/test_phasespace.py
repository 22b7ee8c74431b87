"""Kinematics and 2 -> 2 phase space: Jacobians against numerical ones, momenta, channels."""

import math

import pytest
import torch

from hepflows import ConfigError
from hepflows.physics.kinematics import (
    boost,
    boost_z,
    cos_theta_star,
    mass2,
    pseudorapidity,
    pt,
    rapidity,
)
from hepflows.physics.phasespace import (
    HadronicPhaseSpace,
    LeptonCuts,
    breit_wigner_density,
    breit_wigner_inverse,
    breit_wigner_map,
    log_s_inverse,
    log_s_map,
    s_hat_channel,
)

SPACE = HadronicPhaseSpace(13_000.0, 15.0)


def _u(n, seed=0, d=4):
    return torch.rand(n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_boosts_keep_masses_and_compose():
    p = torch.tensor([[5.0, 1.0, 2.0, 3.0]], dtype=torch.float64)
    y = torch.tensor([0.7], dtype=torch.float64)
    assert torch.allclose(mass2(boost_z(p, y)), mass2(p))
    assert torch.allclose(boost_z(boost_z(p, y), -y), p)
    beta = torch.tensor([[0.0, 0.0, math.tanh(0.7)]], dtype=torch.float64)
    assert torch.allclose(boost(p, beta), boost_z(p, y))
    beta = torch.tensor([[0.3, -0.2, 0.5]], dtype=torch.float64)
    assert torch.allclose(boost(boost(p, beta), -beta), p)
    rest = torch.tensor([[2.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    moving = boost(rest, beta)
    assert torch.allclose(moving[:, 1:] / moving[:, :1], beta)
    assert math.isclose(rapidity(boost_z(rest, y)).item(), 0.7, rel_tol=1e-12)
    q = torch.tensor([[5.0, 3.0, 4.0, 0.0]], dtype=torch.float64)
    assert pt(q).item() == 5.0 and pseudorapidity(q).item() == 0.0


@pytest.mark.parametrize("kind", ["log", "bw"])
def test_s_maps_jacobians_and_inverses(kind):
    r = torch.linspace(0.001, 0.999, 999, dtype=torch.float64)
    s_min, s_max = 225.0, 1.69e8
    if kind == "log":
        fwd = lambda t: log_s_map(t, s_min, s_max)  # noqa: E731
        inv = lambda s: log_s_inverse(s, s_min, s_max)  # noqa: E731
    else:
        fwd = lambda t: breit_wigner_map(t, 91.188, 2.44, s_min, s_max)  # noqa: E731
        inv = lambda s: breit_wigner_inverse(s, 91.188, 2.44, s_min, s_max)  # noqa: E731
    s, jac = fwd(r)
    h = 1e-7
    numeric = (fwd(r + h)[0] - fwd(r - h)[0]) / (2 * h)
    assert torch.allclose(jac, numeric, rtol=1e-5)
    assert torch.allclose(inv(s), r, atol=1e-10)
    assert math.isclose(fwd(torch.zeros(1, dtype=torch.float64))[0].item(), s_min, rel_tol=1e-9)
    assert math.isclose(fwd(torch.ones(1, dtype=torch.float64))[0].item(), s_max, rel_tol=1e-9)


def test_breit_wigner_density_is_the_inverse_jacobian_and_normalised():
    s_min, s_max = 3600.0, 1e6
    r = _u(1000)[:, 0]
    s, jac = breit_wigner_map(r, 400.0, 0.5, s_min, s_max)
    assert torch.allclose(breit_wigner_density(s, 400.0, 0.5, s_min, s_max) * jac,
                          torch.ones_like(s), rtol=1e-9)  # fmt: skip


def test_phase_space_jacobian_matches_autograd():
    """jac = |det d(x1, x2, cos theta, phi / 2 pi) / du| at random points."""
    u = _u(20, seed=1)

    def coords(v):
        pt_ = SPACE(v[None])
        return torch.stack((pt_.x1, pt_.x2, pt_.cos_theta, pt_.phi / (2 * math.pi)), 1)[0]

    for row in u:
        jmat = torch.autograd.functional.jacobian(coords, row)
        det = torch.linalg.det(jmat).abs().item()
        assert math.isclose(det, SPACE(row[None]).jac.item(), rel_tol=1e-8)


def test_phase_space_integrates_the_parton_luminosity_volume():
    """int du jac = int dx1 dx2 dcos d(phi/2pi) over x1 x2 s > s_min = 2 * area."""
    space = HadronicPhaseSpace(100.0, 30.0)  # tau_min = 0.09
    u = _u(400_000, seed=2)
    w = space(u).jac
    tau0 = 0.09
    area = 1 - tau0 + tau0 * math.log(tau0)  # area of {x1 x2 > tau0} in the unit square
    est, err = w.mean().item(), w.std().item() / math.sqrt(len(w))
    assert abs(est - 2 * area) < 4 * err


def test_momenta_conserve_and_have_the_right_invariants():
    u = _u(1000, seed=3)
    pt_ = SPACE(u)
    p1, p2, k1, k2 = SPACE.momenta(pt_)
    assert torch.allclose(p1 + p2, k1 + k2, atol=1e-6)
    assert (mass2(k1).abs() <= 1e-12 * k1[:, 0] ** 2).all()  # massless up to rounding
    assert torch.allclose(mass2(k1 + k2), pt_.s_hat, rtol=1e-9)
    assert torch.allclose(rapidity(k1 + k2), pt_.y, atol=1e-9)
    assert torch.allclose(cos_theta_star(k1, k2), pt_.cos_theta, atol=1e-7)
    assert (pt_.x1 <= 1 + 1e-12).all() and (pt_.x2 <= 1 + 1e-12).all()
    back = SPACE.inverse(pt_.s_hat, pt_.y, pt_.cos_theta, pt_.phi)
    assert torch.allclose(back, u, atol=1e-9)


def _assert_u0_jacobian(ch, u, jac, h=1e-7):
    """A channel mapping's Jacobian on u_0 equals central finite differences."""
    up, dn = u.clone(), u.clone()
    up[:, 0] += h
    dn[:, 0] -= h
    numeric = (ch.mapping(up)[0][:, 0] - ch.mapping(dn)[0][:, 0]) / (2 * h)
    ok = (u[:, 0] > 2 * h) & (u[:, 0] < 1 - 2 * h)
    assert torch.allclose(jac[ok], numeric[ok], rtol=1e-4)


def test_resonance_channel_mapping_jacobian_and_prior():
    ch = s_hat_channel(SPACE, "Z", 91.188, 2.441404)
    u = _u(500, seed=4)
    x, jac = ch.mapping(u)
    assert torch.equal(x[:, 1:], u[:, 1:])
    _assert_u0_jacobian(ch, u, jac)
    # The prior is the squared propagator at the point's s_hat (MadNIS' |M_i|^2 weights).
    s = log_s_map(x[:, 0], SPACE.s_min, SPACE.s_max)[0]
    expected = 1 / ((s - 91.188**2) ** 2 + (91.188 * 2.441404) ** 2)
    assert torch.allclose(ch.prior(x), expected, rtol=1e-12)
    # ... and the mapping samples s_hat from that Breit-Wigner: density * jac = 1.
    dens = breit_wigner_density(s, 91.188, 2.441404, SPACE.s_min, SPACE.s_max) * s * math.log(
        SPACE.s_max / SPACE.s_min)  # fmt: skip
    assert torch.allclose(dens * jac, torch.ones(500, dtype=torch.float64), rtol=1e-9)
    photon = s_hat_channel(SPACE, "photon")
    assert torch.allclose(photon.prior(x), s**-2)
    with pytest.raises(ConfigError, match="width"):
        s_hat_channel(SPACE, "Z", 91.188, 0.0)
    with pytest.raises(ConfigError, match="mass"):
        s_hat_channel(SPACE, "Z", -91.188, 2.4)


@pytest.mark.parametrize("nu", [1.0, 2.0, 2.5])
def test_photon_channel_power_mapping(nu):
    """s_hat ~ s_hat^-nu: density * Jacobian = 1, and the Jacobian matches finite differences."""
    ch = s_hat_channel(SPACE, "photon", nu=nu)
    u = _u(500, seed=6)
    x, jac = ch.mapping(u)
    s = log_s_map(x[:, 0], SPACE.s_min, SPACE.s_max)[0]
    k = 1 - nu
    norm = (math.log(SPACE.s_max / SPACE.s_min) if nu == 1.0
            else (SPACE.s_max**k - SPACE.s_min**k) / k)  # fmt: skip
    density_u0 = s**-nu / norm * s * math.log(SPACE.s_max / SPACE.s_min)  # in u_0
    assert torch.allclose(density_u0 * jac, torch.ones(500, dtype=torch.float64), rtol=1e-9)
    _assert_u0_jacobian(ch, u, jac)


@pytest.mark.parametrize("mass", [None, 91.188, 400.0])
def test_channel_inverse_undoes_mapping(mass):
    """inverse(mapping(r)) = r with the same Jacobian: what mixture weights rely on."""
    ch = s_hat_channel(SPACE, "c", mass, None if mass is None else 0.5)
    r = _u(1000, seed=7)
    x, jac = ch.mapping(r)
    back, jac_back = ch.inverse(x)
    assert torch.allclose(back, r, atol=1e-7)
    assert torch.allclose(jac_back, jac, rtol=1e-6)


def test_bad_phase_space_settings():
    with pytest.raises(ConfigError, match="sqrt_s_hat_min"):
        HadronicPhaseSpace(100.0, 200.0)


def test_lepton_cuts_match_four_vectors():
    """The analytic p_T / eta of the cut equal those of the lab four-momenta."""
    u = _u(20_000, seed=9)
    point = SPACE(u)
    _, _, lep, anti = SPACE.momenta(point)
    for cuts in (LeptonCuts(pt_min=20.0), LeptonCuts(eta_max=2.5),
                 LeptonCuts(pt_min=25.0, eta_max=2.4)):  # fmt: skip
        ok = torch.ones(len(u), dtype=torch.bool)
        for p in (lep, anti):
            ok &= (pt(p) >= cuts.pt_min) & (pseudorapidity(p).abs() <= cuts.eta_max)
        mask = cuts.mask(point)
        assert 0.05 < mask.double().mean() < 0.95  # the cut does something
        assert (mask != ok).sum() <= 2  # only points on the cut edge may differ by rounding
    assert not LeptonCuts().active and LeptonCuts().mask(point).all()
    with pytest.raises(ConfigError, match="pt_min"):
        LeptonCuts(pt_min=-1.0)
    with pytest.raises(ConfigError, match="eta_max"):
        LeptonCuts(eta_max=0.0)
