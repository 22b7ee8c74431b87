"""Drell-Yan matrix element: against Pythia 8's own formula, limits, angular integral."""

import math

import numpy as np
import pytest
import torch

from hepflows import ConfigError
from hepflows.physics.processes import DrellYan, pythia_alpha_em, pythia_parameters


class FlatPDF:
    """x f(x) = x for every flavour: isolates the matrix element from the PDFs."""

    def xfxQ2(self, pids, x, q2):
        return x.expand(len(pids), -1).clone()


@pytest.fixture(scope="module")
def pythia():
    import pythia8mc  # a dependency of hepflows: never skipped

    p = pythia8mc.Pythia("", False)
    for line in ["Beams:eCM = 13000.", "WeakSingleBoson:ffbar2gmZ = on",
                 "PhaseSpace:mHatMin = 60.", "23:onMode = off", "23:onIfAny = 11",
                 "PDF:pSet = 13", "PDFinProcess:nQuarkIn = 4", "SigmaProcess:factorScale1 = 2",
                 "SigmaProcess:factorFixScale = 8315.25", "PartonLevel:all = off",
                 "HadronLevel:all = off", "Print:quiet = on"]:  # fmt: skip
        assert p.readString(line), line
    assert p.init()
    return p


def pythia_sigma_hat(p, quark, s):
    """Pythia 8's Sigma1ffbar2gmZ::sigmaHat for q qbar -> gamma*/Z -> e+ e- (massless e)."""
    c = p.coupSM
    mz, wz = p.particleData.m0(23), p.particleData.mWidth(23)
    theta_w_rat = 1 / (16 * c.sin2thetaW() * (1 - c.sin2thetaW()))
    alpha = c.alphaEM(s)
    gam_prop = 4 * math.pi * alpha**2 / (3 * s)
    bw = (s - mz**2) ** 2 + (s * wz / mz) ** 2
    int_prop = gam_prop * 2 * theta_w_rat * s * (s - mz**2) / bw
    res_prop = gam_prop * (theta_w_rat * s) ** 2 / bw
    ef, vf, af = c.ef(11), c.vf(11), c.af(11)
    ei, vi, ai = c.ef(quark), c.vf(quark), c.af(quark)
    sigma = (ei**2 * gam_prop * ef**2 + ei * vi * int_prop * ef * vf
             + (vi**2 + ai**2) * res_prop * (vf**2 + af**2))  # fmt: skip
    return sigma / 3


def test_pythia_alpha_em_reproduces_pythia(pythia):
    alpha = pythia_alpha_em(pythia.coupSM)
    s = torch.tensor([100.0, 3600.0, 8315.25, 1e5, 1.69e8], dtype=torch.float64)
    ref = torch.tensor([pythia.coupSM.alphaEM(v) for v in s.tolist()], dtype=torch.float64)
    assert torch.allclose(alpha(s), ref, rtol=1e-12)
    with pytest.raises(ConfigError, match="90 GeV"):
        alpha(torch.tensor([50.0], dtype=torch.float64))


@pytest.mark.parametrize("quark", [1, 2, 3, 4])
def test_partonic_cross_section_equals_pythias_formula(pythia, quark):
    dy = DrellYan(pythia_parameters(pythia), pdf=FlatPDF())
    s = torch.logspace(math.log10(3600), math.log10(1e7), 60, dtype=torch.float64)
    s = torch.cat((s, torch.tensor([pythia.particleData.m0(23) ** 2], dtype=torch.float64)))
    ours = dy.partonic_total(quark, s)
    ref = torch.tensor([pythia_sigma_hat(pythia, quark, v) for v in s.tolist()],
                       dtype=torch.float64)  # fmt: skip
    assert torch.allclose(ours, ref, rtol=1e-9), (ours / ref - 1).abs().max()


def test_angular_integral_and_photon_limit():
    dy = DrellYan(pdf=FlatPDF())
    c, wts = np.polynomial.legendre.leggauss(8)  # exact for the quadratic in cos(theta)
    c, wts = torch.from_numpy(c), torch.from_numpy(wts)
    for quark in (1, 2):
        for s in (400.0, 91.188**2, 400.0**2, 1e6):
            st = torch.full((8,), s, dtype=torch.float64)
            integral = (dy.partonic(quark, st, c) * wts).sum()
            assert math.isclose(integral.item(), dy.partonic_total(quark, st[:1]).item(),
                                rel_tol=1e-12)  # fmt: skip
    # Photon only (Z pushed far away): sigma_hat = 4 pi alpha^2 Q^2 / (9 s).
    heavy = DrellYan(pdf=FlatPDF(), mz=1e8, zprime=False)
    s = torch.tensor([400.0, 1e4], dtype=torch.float64)
    alpha = 1 / 132.507
    ref = 4 * math.pi * alpha**2 * (2 / 3) ** 2 / (9 * s)
    assert torch.allclose(heavy.partonic_total(2, s), ref, rtol=1e-6)


def test_forward_backward_asymmetry_sign_and_zprime_peak():
    dy = DrellYan(pdf=FlatPDF())
    s = torch.full((2,), 200.0**2, dtype=torch.float64)
    cos = torch.tensor([0.9, -0.9], dtype=torch.float64)
    fwd, bwd = dy.partonic(2, s, cos)
    assert fwd > bwd  # above the Z pole the l- follows the quark (positive A_FB)
    on = dy.partonic_total(2, torch.tensor([400.0**2], dtype=torch.float64))
    off = DrellYan(pdf=FlatPDF(), zprime=False).partonic_total(
        2, torch.tensor([400.0**2], dtype=torch.float64))  # fmt: skip
    assert on / off > 100  # the narrow Z' dominates at its pole


def test_integrand_channels_and_initial_states():
    dy = DrellYan(pdf=FlatPDF())
    u = torch.rand(5000, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    f = dy(u)
    assert f.shape == (5000,) and torch.isfinite(f).all() and (f > 0).all()
    assert [c.name for c in dy.channels()] == ["photon", "Z", "Zp"]
    assert len(DrellYan(pdf=FlatPDF(), zprime=False).channels()) == 2
    contrib, _ = dy.contributions(u)
    assert torch.allclose(contrib.sum(0), f)
    ids = dy.initial_states(u, torch.Generator().manual_seed(1))
    assert ids.shape == (5000, 2) and (ids[:, 0] == -ids[:, 1]).all()
    assert set(ids[:, 0].abs().tolist()) <= {1, 2, 3, 4}
    # Up-type quarks couple more strongly (charge 2/3): with flat PDFs they win.
    up = (ids[:, 0].abs() % 2 == 0).double().mean().item()
    share = (contrib[[1, 3, 5, 7]].sum(0) / f).mean().item()
    assert abs(up - share) < 0.03


def test_bad_parameters():
    with pytest.raises(ConfigError, match="flavours"):
        DrellYan(pdf=FlatPDF(), flavours=(6,))
    with pytest.raises(ConfigError, match="lepton"):
        DrellYan(pdf=FlatPDF(), lepton=12)
    with pytest.raises(ConfigError, match="wz"):
        DrellYan(pdf=FlatPDF(), wz=0.0)
    with pytest.raises(ConfigError, match="mz must be > 0"):  # a negative mass
        DrellYan(pdf=FlatPDF(), mz=-91.188)
    with pytest.raises(ConfigError, match="sqrt_s_hat_min"):  # sqrt(s) below the mass cut
        DrellYan(pdf=FlatPDF(), sqrt_s=10.0)
    with pytest.raises(ConfigError, match="eta_max"):
        DrellYan(pdf=FlatPDF(), lepton_eta_max=-1.0)


def test_lepton_names():
    from hepflows.physics.processes.drell_yan import LEPTONS, lepton_id

    assert LEPTONS == {"e": 11, "mu": 13}
    assert lepton_id("e") == 11 and lepton_id("mu") == 13
    with pytest.raises(ConfigError, match="unknown lepton 'tau': choose one of e, mu"):
        lepton_id("tau")


def test_zprime_coupling_scales_the_zprime_amplitude_by_its_square() -> None:
    """A(c) = A(no Z') + c^2 (A(1) - A(no Z')) exactly, at and off the Z' pole."""
    s = torch.tensor([150.0**2, 399.0**2, 400.0**2, 900.0**2], dtype=torch.float64)
    none = DrellYan(zprime=False).helicity_amplitudes(2, s)
    full = DrellYan().helicity_amplitudes(2, s)
    weak = DrellYan(zprime_coupling=0.3).helicity_amplitudes(2, s)
    torch.testing.assert_close(weak, none + 0.09 * (full - none))
    with pytest.raises(ConfigError, match="zprime_coupling"):
        DrellYan(zprime_coupling=0.0)


def test_rows_share_amplitudes_per_quark_kind_bit_for_bit() -> None:
    """The integrand computes the helicity sums once per up/down-type quark: the same bits
    as the per-flavour partonic cross-sections."""
    dy = DrellYan()
    g = torch.Generator().manual_seed(5)
    s = (60.0 + 3000.0 * torch.rand(500, generator=g, dtype=torch.float64)) ** 2
    c = 2 * torch.rand(500, generator=g, dtype=torch.float64) - 1
    products = torch.rand(2 * len(dy.params.flavours), 500, generator=g, dtype=torch.float64)
    flv = list(dy.params.flavours)
    expected = torch.stack([products[i] * dy.partonic(q, s, c) for i, q in enumerate(flv)]
                           + [products[len(flv) + i] * dy.partonic(q, s, -c)
                              for i, q in enumerate(flv)])  # fmt: skip
    assert torch.equal(dy._rows(products, s, c), expected)
