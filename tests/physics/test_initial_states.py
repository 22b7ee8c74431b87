"""Channels per initial-state group (hepflows.physics.processes.initial_states): the group
labels, the priors (channel density x luminosity share) and an integral over 26 channels."""

from __future__ import annotations

import math

import pytest
import torch

from hepflows import ConfigError
from hepflows.integrate.channels import Channel, apply_inverse, log_priors
from hepflows.physics.processes import MultiJet
from hepflows.physics.processes.initial_states import GroupPriors, initial_state_group

F64 = torch.float64
#: Pythia 8.317's sigma(pp -> 2 jets) at these settings (benchmarks/results/multijet.json)
PYTHIA_JJ, PYTHIA_JJ_ERR = 1.41998e6, 1.70e3


@pytest.mark.parametrize("pair, label", [
    ((21, 21), "g g"), ((21, 2), "g q"), ((-3, 21), "qbar g"), ((1, 1), "q q"), ((1, 2), "q Q"),
    ((2, -2), "q qbar"), ((2, -1), "q Qbar"), ((-1, 3), "qbar Q"), ((-4, -4), "qbar qbar"),
    ((-1, -2), "qbar Qbar"),
])  # fmt: skip
def test_initial_state_groups(pair, label):
    assert initial_state_group(*pair) == label


def _jj():
    return MultiJet(n_jets=2, pt_min=100.0, alpha_s=0.1281251064053439, scale=100.0)


def test_group_priors_are_the_channel_density_times_the_luminosity_share():
    mj = _jj()
    jets = mj.jet_channels()
    channels = mj.group_channels()
    labels = sorted({ch.name.split("; ")[1] for ch in channels})
    assert len(labels) == 13 and len(channels) == len(jets) * 13
    assert channels[0].name == f"{jets[0].name}; g g"
    x = torch.rand(2000, mj.dims, generator=torch.Generator().manual_seed(1), dtype=F64)
    priors = torch.exp(log_priors(channels, x)).reshape(len(x), len(jets), 13)
    density = torch.stack([1 / apply_inverse(ch, j, x)[1] for j, ch in enumerate(jets)], 1)
    # summed over the groups: the channel's own density (the shares sum to one)
    reached = density > 1e-200
    assert torch.allclose(priors.sum(2)[reached], density[reached], rtol=1e-10)
    shares = priors[:, 0] / priors[:, 0].sum(1, keepdim=True)
    ok = reached[:, 0]
    # gluon-gluon and quark-gluon dominate the luminosity at x ~ 0.02-0.2; q qbar is small
    mean = shares[ok].mean(0)
    g = {lab: float(mean[i]) for i, lab in enumerate(labels)}
    assert g["g g"] > g["q qbar"] and g["g q"] > g["q qbar"] and g["q Q"] > g["qbar Qbar"]
    with pytest.raises(ConfigError, match="invertible"):
        GroupPriors(mj, [Channel(mapping=lambda u: (u, torch.ones(len(u))))], [[(21, 21)]])


def test_twenty_six_group_channels_integrate_dijets():
    """13 groups x 2 jet channels with the prior weights (fixed): sigma within 4 sigma of
    Pythia's. Measured: 1.4276(47)e6 pb with 8e3 + 2e4 calls (0.33 %), unweighting 0.14
    (max rule) against 0.43 for the 2 jet channels with mixture weights at 2e4 + 5e4."""
    from hepflows.generate import LOSS
    from hepflows.integrate import NeuralIntegrator

    torch.set_num_threads(1)
    mj = _jj()
    ni = NeuralIntegrator(mj, mj.dims, seed=1, channels=mj.group_channels(), loss=LOSS,
                          weights="prior")  # fmt: skip
    ni.train(8e3, progress=False)
    res = ni.integrate(2e4)
    assert math.isfinite(res.value) and res.error < 6e-3 * res.value
    assert abs(res.value - PYTHIA_JJ) < 4 * math.hypot(res.error, PYTHIA_JJ_ERR)
