"""Dilepton observables by name, and the Collins-Soper angle against its leading-order limit."""

from __future__ import annotations

import pytest
import torch

from dilepton import pair
from hepflows.errors import ConfigError
from hepflows.inference import LO, observables
from hepflows.inference.observables import units
from hepflows.physics.kinematics import boost_z, cos_theta_star


def test_leading_order_values() -> None:
    lep, anti, m, c, y = pair(1000)
    obs = observables(lep, anti, (*LO, "pt_ll"))
    assert obs.shape == (1000, 4)
    torch.testing.assert_close(obs[:, 0], m)
    torch.testing.assert_close(obs[:, 1], y)
    # Collins-Soper at LO: the rest-frame angle, oriented along the pair's motion
    torch.testing.assert_close(obs[:, 2], c * torch.sign(y))
    torch.testing.assert_close(obs[:, 3], torch.zeros(1000, dtype=torch.float64), atol=1e-9,
                               rtol=0)  # fmt: skip
    assert units(("m_ll", "cos_cs")) == ["GeV", ""]


def test_collins_soper_with_pair_pt_is_an_angle_and_boost_invariant_along_z() -> None:
    lep, anti, m, c, y = pair(1000, seed=1, transverse=0.6)
    cs = observables(lep, anti, ("cos_cs",))[:, 0]
    assert cs.abs().max() <= 1 + 1e-12
    # pair pT moves the CS axis away from the pair-momentum axis of cos_theta_star
    assert (cs.abs() - cos_theta_star(lep, anti).abs()).abs().max() > 1e-3
    # a longitudinal boost that keeps the sign of the pair's p_z leaves cos theta_CS unchanged
    shift = torch.where(y > 0, 0.7, -0.7).double()
    again = observables(boost_z(lep, shift), boost_z(anti, shift), ("cos_cs",))[:, 0]
    torch.testing.assert_close(again, cs)


def test_unknown_observables_are_refused() -> None:
    lep, anti, *_ = pair(3)
    with pytest.raises(ConfigError, match="m_ll, y_ll"):
        observables(lep, anti, ("mass",))
    with pytest.raises(ConfigError, match="distinct"):
        observables(lep, anti, ("m_ll", "m_ll"))
