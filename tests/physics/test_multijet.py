"""pp -> n jets: subprocess classes, phase space, cuts, and sigma against Pythia 8."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hepflows import ConfigError, InputError
from hepflows.physics.amplitudes import GLUON
from hepflows.physics.processes import MultiJet, MultiJetParameters, jet_subprocesses

F64 = torch.float64


def _uniform(n: int, dims: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, dims, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("n_jets, flavours", [(2, 5), (2, 1), (3, 2)])
def test_subprocess_classes_cover_every_flavour_conserving_process_once(n_jets, flavours):
    classes = jet_subprocesses(n_jets, flavours)
    partons = [GLUON] + [q for f in range(1, flavours + 1) for q in (f, -f)]
    members = [m for cls in classes for m in cls.members]
    # every initial state appears; gg, q g and q qbar initial states have processes
    assert set(members) == {(a, b) for a in partons for b in partons}
    # classes are distinct flavour patterns; with one flavour no two-flavour class exists
    labels = [cls.label for cls in classes]
    assert len(labels) == len(set(labels))
    if flavours == 1:
        assert not any("Q" in label for label in labels)
    gg = [cls for cls in classes if cls.amplitude.incoming == (GLUON, GLUON)]
    n_gg_members = sum(len(c.members) for c in gg)
    # g g -> g g (g) and g g -> q qbar (g), one member per new flavour
    assert n_gg_members == 1 + flavours


def test_two_jet_classes_have_the_right_symmetry_factors():
    by_label = {cls.label: cls for cls in jet_subprocesses(2, 5)}
    assert by_label["g g -> g g"].symmetry == 0.5
    assert by_label["q q -> q q"].symmetry == 0.5
    assert by_label["q qbar -> g g"].symmetry == 0.5
    assert by_label["q qbar -> Q Qbar"].symmetry == 1.0
    assert len(by_label["q qbar -> Q Qbar"].members) == 20  # 5 x 4 new flavours


@pytest.mark.parametrize("n_jets", [2, 3])
def test_phase_space_conserves_momentum_and_has_the_analytic_tau_y_volume(n_jets):
    mj = MultiJet(n_jets=n_jets, pt_min=50.0, alpha_s=0.12)
    u = _uniform(4000, mj.dims)
    p, weight = mj.momenta(u)
    assert torch.allclose(p[:, :2].sum(1), p[:, 2:].sum(1), atol=1e-7 * 13_000)
    m2 = p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(-1)
    assert m2[:, 2:].abs().max() < 1e-6 * 13_000**2 * 1e-6
    s_hat = (p[:, 0] + p[:, 1])[:, 0] ** 2 - ((p[:, 0] + p[:, 1])[:, 1:] ** 2).sum(-1)
    # weight = d tau dy / du x Phi_n(s_hat) / (2 s_hat): strip Phi_n and the flux
    jac = weight * 2 * s_hat / (mj.rambo.massless_volume * s_hat ** (n_jets - 2))
    t = mj.tau_min
    exact = 1 - t + t * math.log(t)  # int_t^1 d tau (-ln tau)
    assert abs(jac.mean().item() - exact) < 4 * jac.std().item() / math.sqrt(len(jac))


def test_cuts_select_pt_eta_and_delta_r():
    mj = MultiJet(n_jets=3, pt_min=30.0, eta_max=2.5, dr_min=0.4, alpha_s=0.12)
    p, _ = mj.momenta(_uniform(5000, mj.dims, seed=3))
    keep = mj.cuts(p)
    jets = p[:, 2:]
    pt = torch.hypot(jets[..., 1], jets[..., 2])
    eta = torch.asinh(jets[..., 3] / pt)
    phi = torch.atan2(jets[..., 2], jets[..., 1])
    by_hand = []
    for k in range(len(p)):
        ok = bool((pt[k] >= 30).all() and (eta[k].abs() <= 2.5).all())
        for i in range(3):
            for j in range(i + 1, 3):
                dphi = (phi[k, i] - phi[k, j] + math.pi) % (2 * math.pi) - math.pi
                ok &= bool((eta[k, i] - eta[k, j]) ** 2 + dphi**2 >= 0.16)
        by_hand.append(ok)
    assert keep.tolist() == by_hand
    assert 0 < keep.float().mean() < 1


def test_integrand_is_zero_outside_cuts_and_positive_inside():
    mj = MultiJet(n_jets=2, pt_min=100.0, alpha_s=0.13)
    u = _uniform(2000, mj.dims, seed=4)
    w = mj(u)
    p, _ = mj.momenta(u)
    keep = mj.cuts(p)
    assert (w[~keep] == 0).all() and (w[keep] > 0).all()
    per_class = mj.class_contributions(u)
    assert per_class.shape == (len(mj.classes), len(u))
    assert torch.allclose(per_class.sum(0), w)


def test_ht_scale_and_pdf_alpha_s():
    mj = MultiJet(n_jets=2, pt_min=100.0, scale="ht/2")
    p, _ = mj.momenta(_uniform(10, mj.dims))
    pt = torch.hypot(p[:, 2, 1], p[:, 2, 2])
    assert torch.allclose(mj.scale2(p), pt**2)  # H_T / 2 = p_T for two jets
    a = mj.alpha_s(torch.tensor([91.1876**2], dtype=F64))
    assert abs(a.item() - 0.130) < 2e-3  # NNPDF2.3 LO: alpha_s(M_Z) = 0.130


@pytest.mark.parametrize("kwargs, match", [
    ({"n_jets": 4}, "n_jets"), ({"pt_min": 0.0}, "pt_min"), ({"flavours": 6}, "flavours"),
    ({"scale": "mt"}, "scale"), ({"scale": -1.0}, "scale"), ({"dr_min": -0.1}, "dr_min"),
])  # fmt: skip
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MultiJetParameters(**kwargs)


def test_bad_points_are_refused():
    mj = MultiJet(n_jets=2, alpha_s=0.13)
    with pytest.raises(InputError, match="shape"):
        mj(torch.rand(3, 7, dtype=F64))


# ------------------------------------------------------------------ Pythia 8
@pytest.mark.slow
def test_dijet_cross_section_agrees_with_pythia():
    """sigma(pp -> 2 jets, p_T > 100 GeV, 13 TeV, mu = 100 GeV, alpha_s = 0.13 fixed).

    Pythia: HardQCD light processes with nQuarkNew = 5 (c, b massless in the matrix
    elements, massive in its phase space: O(m_b^2 / p_T^2) on a 2 % share), 200 000 events.
    hepflows: VEGAS on the flat (tau, y, RAMBO) variables. Measured (seed 2, 13 x 20k
    calls): 1.4627(46)e6 pb against Pythia's 1.46399(18)e6 pb, pull -0.26; this test uses
    8 x 10k calls.
    """
    vegas = pytest.importorskip("vegas")
    from hepflows.physics.pythia import pythia_jets, pythia_partons

    params = MultiJetParameters(n_jets=2, pt_min=100.0, scale=100.0, alpha_s=0.13)
    pythia, settings = pythia_jets(params, seed=3)
    ref = pythia_partons(pythia, 200_000, settings)
    print("Pythia settings:", settings)
    print(f"Pythia sigma = {ref.sigma_pb:.6g} +- {ref.sigma_err_pb:.3g} pb")
    mj = MultiJet(params)

    @vegas.lbatchintegrand
    def integrand(y: np.ndarray) -> np.ndarray:
        return mj(torch.from_numpy(np.ascontiguousarray(y))).numpy()

    rng = np.random.default_rng(2)
    integ = vegas.Integrator([[0, 1]] * mj.dims, ran_array_generator=rng.random)
    integ(integrand, nitn=3, neval=10_000)
    result = integ(integrand, nitn=5, neval=10_000)
    print(result.summary())
    pull = (result.mean - ref.sigma_pb) / math.hypot(result.sdev, ref.sigma_err_pb)
    print(f"hepflows {result} pb; pull {pull:.2f}")
    assert result.sdev < 1e-2 * result.mean  # the benchmark goes to 0.5 %
    assert abs(pull) < 3
    # Pythia's partons pass the same cut (c, b carry their masses in its phase space, and
    # pTHat is not their p_T: 99.99 GeV seen)
    assert (torch.hypot(ref.partons[..., 1], ref.partons[..., 2]) >= 99.0).all()
