"""Base distributions (hepflows.flows.distributions): StandardNormal, UnitUniform."""

from __future__ import annotations

import math

import torch

from hepflows.flows import StandardNormal, UnitUniform

F64 = torch.float64


def test_standard_normal_log_prob_and_sampling():
    base = StandardNormal(3).to(F64)
    z = torch.randn(10, 3, dtype=F64)
    ref = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    torch.testing.assert_close(base.log_prob(z), ref)
    s = base.sample(50_000, torch.Generator().manual_seed(0))
    assert s.shape == (50_000, 3) and s.dtype == F64  # dtype follows .to()
    torch.testing.assert_close(s.mean(0), torch.zeros(3, dtype=F64), rtol=0, atol=0.02)
    torch.testing.assert_close(s.std(0), torch.ones(3, dtype=F64), rtol=0, atol=0.02)


def test_unit_uniform_log_prob_inside_and_outside():
    base = UnitUniform(2)
    z = torch.tensor([[0.0, 1.0], [0.5, 0.5], [1.0 + 1e-6, 0.5], [-1e-7, 0.2]])
    lp = base.log_prob(z)
    assert lp.dtype == torch.float32
    assert lp[:2].eq(0).all() and lp[2:].eq(-math.inf).all()
    s = base.sample(10_000, torch.Generator().manual_seed(0))
    assert ((s >= 0) & (s < 1)).all() and s.dtype == torch.float32
