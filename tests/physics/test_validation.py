"""Drell-Yan against independent references: Pythia 8 (sigma and distributions), VEGAS (Z')."""

import math

import numpy as np
import pytest
import torch

from hepflows.integrate import NeuralIntegrator
from hepflows.physics import DrellYan, pythia_parameters
from hepflows.physics.kinematics import cos_theta_star, mass, pseudorapidity, pt, rapidity
from hepflows.physics.pythia import pythia_drell_yan, pythia_events
from hepflows.stats import two_sample_chi2


@pytest.fixture(scope="module")
def pythia_and_hepflows():
    pythia, _ = pythia_drell_yan(seed=3)
    sample = pythia_events(pythia, 60_000)
    dy = DrellYan(pythia_parameters(pythia))
    integ = NeuralIntegrator(dy, 4, seed=3, channels=dy.channels())
    integ.train(40_000, progress=False)
    return sample, dy, integ


def test_sigma_agrees_with_pythia(pythia_and_hepflows):
    sample, dy, integ = pythia_and_hepflows
    r = integ.integrate(60_000)
    pull = (r.value - sample.sigma_pb) / math.hypot(r.error, sample.sigma_err_pb)
    assert abs(pull) < 3, (r.value, r.error, sample.sigma_pb, sample.sigma_err_pb)
    assert 1300 < sample.sigma_pb < 1600  # ~1.43 nb: the process Pythia was asked for
    assert r.relative_error < 3e-3


def test_distributions_agree_with_pythia(pythia_and_hepflows):
    sample, dy, integ = pythia_and_hepflows
    ev = integ.generate(20_000, progress=False)
    _, _, lep, anti = dy.momenta(ev.x)
    ours = {"m": mass(lep + anti), "y": rapidity(lep + anti), "c": cos_theta_star(lep, anti)}
    theirs = {"m": mass(sample.lepton + sample.antilepton),
              "y": rapidity(sample.lepton + sample.antilepton),
              "c": cos_theta_star(sample.lepton, sample.antilepton)}  # fmt: skip
    edges = {"m": np.geomspace(60, 1000, 31), "y": np.linspace(-4.5, 4.5, 31),
             "c": np.linspace(-1, 1, 21)}  # fmt: skip
    for k, e in edges.items():
        chi2, ndf, p = two_sample_chi2(ours[k], theirs[k], e)
        assert p > 1e-3, (k, chi2, ndf)
    # The test has power: the Z peak moved by 1 GeV is rejected.
    chi2, ndf, p = two_sample_chi2(ours["m"] + 1.0, theirs["m"], np.linspace(80, 100, 41))
    assert p < 1e-6, (chi2, ndf)


def test_folded_integrand_agrees_with_pythia(pythia_and_hepflows):
    """The folded integrand (phi flat, beam swap) gives Pythia's sigma, and its events,
    expanded back, Pythia's y_ll and cos theta* (both signs: the mirroring is right)."""
    sample, dy, _ = pythia_and_hepflows
    f = dy.folded()
    integ = NeuralIntegrator(f, 3, seed=5, channels=f.channels())
    integ.train(40_000, progress=False)
    r = integ.integrate(60_000)
    pull = (r.value - sample.sigma_pb) / math.hypot(r.error, sample.sigma_err_pb)
    assert abs(pull) < 3, (r.value, r.error, sample.sigma_pb, sample.sigma_err_pb)
    ev = integ.generate(20_000, progress=False)
    _, _, lep, anti = dy.momenta(f.expand(ev.x, torch.Generator().manual_seed(5)))
    ours = {"y": rapidity(lep + anti), "c": cos_theta_star(lep, anti), "m": mass(lep + anti)}
    theirs = {"y": rapidity(sample.lepton + sample.antilepton),
              "c": cos_theta_star(sample.lepton, sample.antilepton),
              "m": mass(sample.lepton + sample.antilepton)}  # fmt: skip
    edges = {"m": np.geomspace(60, 1000, 31), "y": np.linspace(-4.5, 4.5, 31),
             "c": np.linspace(-1, 1, 21)}  # fmt: skip
    for k, e in edges.items():
        chi2, ndf, p = two_sample_chi2(ours[k], theirs[k], e)
        assert p > 1e-3, (k, chi2, ndf)
    # Without the mirroring all events would sit at y < 0: rejected.
    chi2, ndf, p = two_sample_chi2(-ours["y"].abs(), theirs["y"], edges["y"])
    assert p < 1e-6


def test_sigma_with_lepton_cuts_agrees_with_pythia(pythia_and_hepflows):
    """p_T > 20 GeV, |eta| < 2.5 on both leptons: hepflows integrates the cut matrix
    element; Pythia's sigma times the share of its events that pass."""
    sample, dy, _ = pythia_and_hepflows
    dy_cut = DrellYan(dy.params, lepton_pt_min=20.0, lepton_eta_max=2.5)
    integ = NeuralIntegrator(dy_cut, 4, seed=4, channels=dy_cut.channels())
    integ.train(40_000, progress=False)
    r = integ.integrate(60_000)
    keep = torch.ones(len(sample.lepton), dtype=torch.bool)
    for p in (sample.lepton, sample.antilepton):
        keep &= (pt(p) >= 20.0) & (pseudorapidity(p).abs() <= 2.5)
    frac, n = keep.double().mean().item(), len(keep)
    assert 0.2 < frac < 0.8
    sigma_p = sample.sigma_pb * frac
    binomial = math.sqrt((1 - frac) / (frac * n))
    err_p = sigma_p * math.hypot(sample.sigma_err_pb / sample.sigma_pb, binomial)
    pull = (r.value - sigma_p) / math.hypot(r.error, err_p)
    assert abs(pull) < 3, (r.value, r.error, sigma_p, err_p)
    # The cut matters far beyond the errors: the uncut sigma is rejected.
    assert abs(sample.sigma_pb - r.value) > 20 * math.hypot(r.error, err_p)


def test_zprime_sigma_agrees_with_vegas_per_channel():
    import vegas

    from hepflows.integrate.channels import log_priors

    dy = DrellYan()  # MadNIS set-up with the Z'
    chans = dy.channels()
    total, var = 0.0, 0.0
    for i, ch in enumerate(chans):

        @vegas.lbatchintegrand
        def g(u, i=i, ch=ch):
            u = torch.from_numpy(np.ascontiguousarray(u))
            x, jac = (u, torch.ones(len(u), dtype=u.dtype)) if ch.mapping is None else ch.mapping(u)
            return (dy(x) * jac * torch.softmax(log_priors(chans, x), 1)[:, i]).numpy()

        integ = vegas.Integrator(4 * [[0, 1]], ran_array_generator=np.random.default_rng(i).random)
        integ(g, nitn=8, neval=20_000)
        r = integ(g, nitn=4, neval=50_000, adapt=False)
        total, var = total + r.mean, var + r.sdev**2
    nis = NeuralIntegrator(dy, 4, seed=0, channels=chans)
    nis.train(60_000, progress=False)
    r = nis.integrate(60_000)
    assert abs(r.value - total) < 4 * math.hypot(r.error, math.sqrt(var)), (r.value, total)
    assert len(r.channels) == 3 and r.channels[2].value > 0
