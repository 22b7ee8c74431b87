"""pp -> l- l+ + jets: subprocess classes, the sequential phase space against flat RAMBO,
cuts, and sigma(l l + 1 jet) against Pythia 8."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from hepflows import ConfigError
from hepflows.physics.amplitudes import GLUON
from hepflows.physics.kinematics import beam_momenta, boost_z
from hepflows.physics.phasespace import tau_y_map, two_body
from hepflows.physics.processes import (
    DrellYanJets,
    DrellYanJetsParameters,
    DrellYanParameters,
    lepton_jet_subprocesses,
)
from hepflows.physics.processes.drell_yan_jets import _canonical_typed
from hepflows.physics.rambo import RamboOnDiet

F64 = torch.float64


def _uniform(n, dims, seed=0):
    return torch.rand(n, dims, generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_two_body_decay_conserves_momentum_and_has_the_two_body_volume():
    u = _uniform(1000, 4)
    parent = torch.stack([torch.full((1000,), 300.0, dtype=F64), 50 * u[:, 0], 20 * u[:, 1],
                          -100 * u[:, 2]], dim=-1)  # fmt: skip
    m1, m2 = torch.full((1000,), 91.0, dtype=F64), torch.zeros(1000, dtype=F64)
    p1, p2, phi = two_body(parent, m1, m2, u[:, 3], u[:, 0])
    assert torch.allclose(p1 + p2, parent, atol=1e-9)
    mass1 = (p1[:, 0] ** 2 - (p1[:, 1:] ** 2).sum(-1)).sqrt()
    assert torch.allclose(mass1, m1, atol=1e-6)
    m_par2 = parent[:, 0] ** 2 - (parent[:, 1:] ** 2).sum(-1)
    # Phi_2 = (1 - m1^2 / M^2) / (8 pi) for a massless second daughter
    assert torch.allclose(phi, (1 - m1**2 / m_par2) / (8 * math.pi), rtol=1e-12)


def test_flavour_classes_keep_the_charge_type():
    assert _canonical_typed((4, -4, 11, -11, GLUON)) == (2, -2, 11, -11, GLUON)
    assert _canonical_typed((3, 1, 11, -11, 3, 1)) == (1, 3, 11, -11, 1, 3)
    classes = lepton_jet_subprocesses(1, (1, 2, 3, 4), 11, object())
    members = sum(len(c.members) for c in classes)
    assert members == 4 * 6  # q qbar, qbar q, q g, g q, qbar g, g qbar per flavour
    assert {c.amplitude.outgoing[:2] for c in classes} == {(11, -11)}
    labels = {c.label for c in classes}
    assert "u ubar -> l- l+ g" in labels and "d g -> l- l+ d" in labels


def _flat_volume(dy: DrellYanJets, n: int, seed: int) -> tuple[float, float]:
    """int dx1 dx2 dPhi / (2 s_hat) Theta(cuts) with flat massless RAMBO for l- l+ + jets."""
    n_out = 2 + dy.params.n_jets
    rambo = RamboOnDiet(1.0, [0.0] * n_out)
    u = _uniform(n, 2 + rambo.dims, seed)
    x1, x2, tau, jac = tau_y_map(u[:, 0], u[:, 1], dy.tau_min)
    s_hat = tau * dy.sqrt_s**2
    final = rambo.massless(u[:, 2:]) * s_hat.sqrt()[:, None, None]
    final = boost_z(final, 0.5 * torch.log(x1 / x2)[:, None].expand(-1, n_out))
    p = torch.cat((beam_momenta(x1, x2, dy.sqrt_s), final), dim=1)
    w = jac * rambo.massless_volume * s_hat ** (n_out - 2) / (2 * s_hat) * dy.cuts(p)
    return w.mean().item(), w.std().item() / math.sqrt(n)


@pytest.mark.parametrize("n_jets", [1, 2])
def test_sequential_phase_space_has_the_flat_volume(n_jets):
    """The Breit-Wigner and two-body chain covers the cut phase space with the right
    Jacobians (and the jet pair's mass bound of the Delta R cut cuts nothing away)."""
    dy = DrellYanJets(n_jets=n_jets, pt_min=30.0, dr_min=0.4, alpha_s=0.12)
    u = _uniform(200_000, dy.dims, seed=1)
    p, w = dy.momenta(u)
    assert torch.allclose(p[:, :2].sum(1), p[:, 2:].sum(1), atol=1e-6)
    w = w * dy.cuts(p)
    seq, seq_err = w.mean().item(), w.std().item() / math.sqrt(len(w))
    flat, flat_err = _flat_volume(dy, 400_000, seed=2)
    assert abs(seq - flat) < 4 * math.hypot(seq_err, flat_err), (seq, seq_err, flat, flat_err)
    assert seq_err < 0.03 * seq


def test_cuts_and_the_lepton_pair_mass_window():
    dy = DrellYanJets(n_jets=2, pt_min=25.0, eta_max=4.5, dr_min=0.4, alpha_s=0.12)
    p, w = dy.momenta(_uniform(5000, dy.dims, seed=3))
    ll = p[:, 2] + p[:, 3]
    m_ll = (ll[:, 0] ** 2 - (ll[:, 1:] ** 2).sum(-1)).sqrt()
    alive = w > 0
    assert ((m_ll[alive] > 60 - 1e-6) & (m_ll[alive] < 120 + 1e-6)).all()
    keep = dy.cuts(p)
    jets = p[:, 4:]
    pt = torch.hypot(jets[..., 1], jets[..., 2])
    assert (pt[keep] >= 25).all()
    assert 0.05 < keep.float().mean() < 1


def test_integrand_and_bad_settings():
    dy = DrellYanJets(n_jets=1, pt_min=30.0, alpha_s=0.12)
    u = _uniform(3000, dy.dims, seed=4)
    w = dy(u)
    assert (w >= 0).all() and (w > 0).float().mean() > 0.5
    assert torch.allclose(dy.class_contributions(u).sum(0), w)
    for kwargs, match in (({"n_jets": 0}, "n_jets"), ({"m_ll_min": 130.0}, "m_ll_min"),
                          ({"pt_min": 0.0}, "pt_min"), ({"scale": "mt"}, "scale")):  # fmt: skip
        with pytest.raises(ConfigError, match=match):
            DrellYanJetsParameters(**kwargs)


@pytest.mark.slow
def test_z_plus_jet_cross_section_agrees_with_pythia():
    """sigma(pp -> gamma*/Z (-> e- e+) + 1 jet), 13 TeV, 60 < m_ee < 120 GeV, jet p_T > 30 GeV,
    mu = 91.188 GeV, alpha_s = 0.12 fixed, four flavours; Pythia's electroweak conventions
    (alpha_EM at mu_R, sin^2 theta_W-bar / sin^2 theta_W, running Z width).

    Measured (Breit-Wigner-only m_ll map; VEGAS 5 x 20k adapting, 8 x 20k final, seed 7):
    219.4(2.1) pb against Pythia's 219.45(49) pb; q qbar -> Z g 51.03(45) vs 51.02(25),
    q g -> Z q 168.3(1.7) vs 168.43(42). With this test's 9 x 10k calls the Breit-Wigner
    map gave 216.4(1.1) (pull -2.1: the photon's low-m_ll tail was undersampled); with
    the Breit-Wigner + 1/s mixture 218.6(1.4), pull -0.47.
    """
    vegas = pytest.importorskip("vegas")
    from hepflows.physics.pythia import pythia_drell_yan_jet, pythia_partons

    params = DrellYanJetsParameters(n_jets=1, pt_min=30.0, scale=91.188, alpha_s=0.12,
                                    electroweak=DrellYanParameters(zprime=False))  # fmt: skip
    pythia, settings, ew = pythia_drell_yan_jet(params, seed=2)
    ref = pythia_partons(pythia, 20_000, settings)
    print("Pythia settings:", settings)
    print(f"Pythia sigma = {ref.sigma_pb:.5g} +- {ref.sigma_err_pb:.3g} pb")
    dy = DrellYanJets(replace(params, electroweak=ew))

    @vegas.lbatchintegrand
    def integrand(y: np.ndarray) -> np.ndarray:
        return dy(torch.from_numpy(np.ascontiguousarray(y))).numpy()

    rng = np.random.default_rng(3)
    integ = vegas.Integrator([[0, 1]] * dy.dims, ran_array_generator=rng.random)
    integ(integrand, nitn=4, neval=10_000)
    result = integ(integrand, nitn=5, neval=10_000, adapt=False)
    pull = (result.mean - ref.sigma_pb) / math.hypot(result.sdev, ref.sigma_err_pb)
    print(f"hepflows {result} pb; pull {pull:.2f}")
    assert result.sdev < 0.03 * result.mean
    assert abs(pull) < 3
