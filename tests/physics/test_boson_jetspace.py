"""Jet variables for l l + jets: the invertible Z/photon mass map, DrellYanJets' inverse map,
BosonJetPhaseSpace's weight against the sequential map, and its integrator channel."""

from __future__ import annotations

import math

import pytest
import torch

from hepflows import ConfigError, InputError
from hepflows.physics.jetspace import BosonJetPhaseSpace
from hepflows.physics.kinematics import pt, rapidity
from hepflows.physics.phasespace import resonance_mixture_inverse, resonance_mixture_map
from hepflows.physics.processes import DrellYanJets

F64 = torch.float64
MZ, WZ = 91.1876, 2.4952


def _uniform(n, dims, seed):
    return torch.rand(n, dims, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _window(p, n):
    """A region both maps cover densely: jets 50-150 GeV in |y| < 2, the Z peak, m_jj >
    100 GeV, s_hat < 800^2 GeV^2 (N,) 0/1."""
    jets, pair = p[:, 4:], p[:, 2] + p[:, 3]
    m = (pair[:, 0] ** 2 - (pair[:, 1:] ** 2).sum(-1)).clamp_min(0).sqrt()
    ok = (pt(jets) > 50).all(1) & (pt(jets) < 150).all(1) & (rapidity(jets).abs() < 2).all(1)
    ok &= (m > 80) & (m < 100)
    if n == 2:
        js = jets.sum(1)
        ok &= js[:, 0] ** 2 - (js[:, 1:] ** 2).sum(-1) > 100.0**2
    ok &= 4 * p[:, 0, 0] * p[:, 1, 0] < 800.0**2
    return ok.to(F64)


def test_resonance_mixture_map_is_a_bijection_with_its_density():
    r = _uniform(4000, 1, seed=1)[:, 0]
    s_max = 60.0**2 + (200.0**2 - 60.0**2) * _uniform(4000, 1, seed=2)[:, 0] + 100
    s, ds = resonance_mixture_map(r, MZ, WZ, 60.0**2, s_max)
    assert ((s >= 60.0**2) & (s <= s_max)).all()
    back, ds_back = resonance_mixture_inverse(s, MZ, WZ, 60.0**2, s_max)
    assert torch.allclose(back, r, atol=1e-10)
    assert torch.allclose(ds_back, ds, rtol=1e-12)
    h = 1e-6
    s_up, _ = resonance_mixture_map((r + h).clamp(max=1), MZ, WZ, 60.0**2, s_max)
    s_dn, _ = resonance_mixture_map((r - h).clamp(min=0), MZ, WZ, 60.0**2, s_max)
    numeric = (s_up - s_dn) / ((r + h).clamp(max=1) - (r - h).clamp(min=0))
    assert torch.allclose(numeric, ds, rtol=1e-4)


@pytest.mark.parametrize("n", [1, 2])
def test_drell_yan_jets_inverse_undoes_its_map(n):
    dy = DrellYanJets(n_jets=n, pt_min=30.0, dr_min=0.4)
    u = _uniform(5000, dy.dims, seed=n)
    p, w = dy.momenta(u)
    alive = w > 0
    assert alive.float().mean() > 0.5
    assert torch.allclose(dy.inverse(p[alive]), u[alive], atol=1e-8)
    assert torch.allclose(dy.weight_of(p[alive]), w[alive], rtol=1e-8)
    with pytest.raises(InputError, match="shape"):
        dy.inverse(p[:, :3])


@pytest.mark.parametrize("n", [1, 2])
def test_boson_jet_space_weight_equals_the_sequential_maps(n):
    """int dx1 dx2 dPhi / (2 s_hat) over a window both reach, from both maps (2e5 points
    each; agreement within 4 sigma), and weight_of reproduces the map's weight."""
    dy = DrellYanJets(n_jets=n, pt_min=30.0, dr_min=0.4)
    space = BosonJetPhaseSpace(13_000.0, n, 30.0, 60.0, 120.0, MZ, WZ)
    p, w = dy.momenta(_uniform(200_000, dy.dims, seed=3))
    a = w * _window(p, n)
    p2, w2 = space(_uniform(200_000, space.dims, seed=4))
    assert torch.allclose(p2[:, :2].sum(1), p2[:, 2:].sum(1), atol=1e-7)
    alive = w2 > 0
    assert torch.allclose(space.weight_of(p2[alive]), w2[alive], rtol=1e-9)
    assert torch.allclose(space.inverse(p2[alive][:500]), _uniform(200_000, space.dims,
                          seed=4)[alive][:500], atol=1e-8)  # fmt: skip
    b = w2 * _window(p2, n)
    da, db = a.std().item() / math.sqrt(len(a)), b.std().item() / math.sqrt(len(b))
    assert abs(a.mean().item() - b.mean().item()) < 4 * math.hypot(da, db)
    assert db < 0.25 * b.mean().item()


def test_boson_jet_channel_maps_onto_the_process_variables():
    """DrellYanJets.jet_channels()[1]: x = seq^-1(space(u)); E_u[g |dx/du|] = E_x[g] for a
    window g, and the channel's inverse gives back u and |dx/du|."""
    dy = DrellYanJets(n_jets=2, pt_min=30.0, dr_min=0.4)
    identity, channel = dy.jet_channels()
    assert identity.mapping is None and channel.invertible
    u = _uniform(200_000, dy.dims, seed=5)
    x, jac = channel.mapping(u)
    alive = jac > 1e-100
    g = torch.zeros_like(jac)
    g[alive] = _window(dy.momenta(x[alive])[0], 2) * jac[alive]
    flat = _window(dy.momenta(_uniform(200_000, dy.dims, seed=6))[0], 2)
    dg, dflat = g.std().item() / math.sqrt(len(g)), flat.std().item() / math.sqrt(len(flat))
    assert abs(g.mean().item() - flat.mean().item()) < 4 * math.hypot(dg, dflat)
    idx = alive.nonzero()[:200, 0]
    u_back, jac_back = channel.inverse(x[idx])
    assert torch.allclose(u_back, u[idx], atol=1e-7)
    assert torch.allclose(jac_back, jac[idx], rtol=1e-7)


def _pair_window(p):
    """Jets 30-150 GeV in |y| < 2 with 0.4 < Delta R < 3, the Z peak, s_hat < 800^2 GeV^2:
    a region both the collinear and the plain jet-variable maps reach (N,) 0/1."""
    jets = p[:, 4:]
    y, phi = rapidity(jets), torch.atan2(jets[..., 2], jets[..., 1])
    dphi = torch.remainder(phi[:, 1] - phi[:, 0] + math.pi, 2 * math.pi) - math.pi
    r = torch.hypot(y[:, 1] - y[:, 0], dphi)
    pair = p[:, 2] + p[:, 3]
    m = (pair[:, 0] ** 2 - (pair[:, 1:] ** 2).sum(-1)).clamp_min(0).sqrt()
    ok = (pt(jets) > 30).all(1) & (pt(jets) < 150).all(1) & (y.abs() < 2).all(1)
    ok &= (r > 0.4) & (r < 3) & (m > 80) & (m < 100) & (4 * p[:, 0, 0] * p[:, 1, 0] < 800.0**2)
    return ok.to(F64)


def test_collinear_boson_jet_space_keeps_the_volume_and_inverts():
    """pair=(0, 1): jet 1's direction from jet 0's, log Delta R uniform on [0.4, pi]; the
    weight, its inverse and the volume over a window both reach agree with the plain map
    (2e5 points each, within 4 sigma)."""
    space = BosonJetPhaseSpace(13_000.0, 2, 30.0, 60.0, 120.0, MZ, WZ, pair=(0, 1), dr_min=0.4)
    assert "pair=(0, 1)" in repr(space)
    u = _uniform(200_000, space.dims, seed=7)
    p, w = space(u)
    alive = w > 0
    assert torch.allclose(p[:, :2].sum(1), p[:, 2:].sum(1), atol=1e-7)
    assert torch.allclose(space.weight_of(p[alive]), w[alive], rtol=1e-9)
    assert torch.allclose(space.inverse(p[alive][:500]), u[alive][:500], atol=1e-8)
    jets = p[alive][:, 4:]
    y, phi = rapidity(jets), torch.atan2(jets[..., 2], jets[..., 1])
    dphi = torch.remainder(phi[:, 1] - phi[:, 0] + math.pi, 2 * math.pi) - math.pi
    r = torch.hypot(y[:, 1] - y[:, 0], dphi)
    assert bool((r >= 0.4 * (1 - 1e-9)).all()) and bool((r <= math.pi + 1e-9).all())
    plain = BosonJetPhaseSpace(13_000.0, 2, 30.0, 60.0, 120.0, MZ, WZ)
    p2, w2 = plain(_uniform(200_000, plain.dims, seed=8))
    a, b = w * _pair_window(p), w2 * _pair_window(p2)
    err = math.hypot(a.std().item(), b.std().item()) / math.sqrt(200_000)
    assert abs(a.mean().item() - b.mean().item()) < 4 * err, (a.mean(), b.mean(), err)
    # each map's weight is nonzero where the other made a point inside the window
    inside = (w2 > 0) & (_pair_window(p2) > 0)
    assert bool((space.weight_of(p2[inside]) > 0).all())
    with pytest.raises(ConfigError, match="two of the jets"):
        BosonJetPhaseSpace(13_000.0, 2, 30.0, 60.0, 120.0, MZ, WZ, pair=(0, 2), dr_min=0.4)
    with pytest.raises(ConfigError, match="dr_min"):
        BosonJetPhaseSpace(13_000.0, 2, 30.0, 60.0, 120.0, MZ, WZ, pair=(0, 1))


def test_drell_yan_jets_channels_add_the_collinear_pair():
    two = DrellYanJets(n_jets=2, pt_min=30.0, dr_min=0.4)
    names = [ch.name for ch in two.jet_channels(collinear=True)]
    assert names == ["sequential decays", "jet variables, lepton pair balancing",
                     "jet variables, jets 01 collinear"]  # fmt: skip
    assert len(two.jet_channels()) == 2  # off by default (measured: it does not pay here)
    assert len(DrellYanJets(n_jets=2, pt_min=30.0).jet_channels(collinear=True)) == 2  # no cut
    assert len(DrellYanJets(n_jets=1, pt_min=30.0, dr_min=0.4).jet_channels(collinear=True)) == 2


def test_boson_jet_space_rejects_bad_settings():
    with pytest.raises(ConfigError, match="jet"):
        BosonJetPhaseSpace(13_000.0, 0, 30.0, 60.0, 120.0, MZ, WZ)
    with pytest.raises(ConfigError, match="m_min"):
        BosonJetPhaseSpace(13_000.0, 1, 30.0, 120.0, 60.0, MZ, WZ)
    with pytest.raises(InputError, match="shape"):
        BosonJetPhaseSpace(13_000.0, 1, 30.0, 60.0, 120.0, MZ, WZ)(torch.rand(3, 5, dtype=F64))
