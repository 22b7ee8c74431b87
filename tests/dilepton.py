"""Dilepton test events with known mass, rest-frame angle and rapidity (inference tests)."""

from __future__ import annotations

import math

import torch

from hepflows.physics.kinematics import boost, boost_z, four_vector


def pair(n: int, seed: int = 0, transverse: float = 0.0):
    """Back-to-back massless leptons of mass m, angle c in the rest frame, boosted by y (and
    optionally along x by velocity ``transverse``): (lepton, antilepton, m, c, y)."""
    g = torch.Generator().manual_seed(seed)
    m = 50 + 400 * torch.rand(n, generator=g, dtype=torch.float64)
    c = 2 * torch.rand(n, generator=g, dtype=torch.float64) - 1
    phi = 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    y = 2 * torch.randn(n, generator=g, dtype=torch.float64)
    s = (1 - c**2).sqrt()
    k = four_vector(m / 2, m / 2 * s * phi.cos(), m / 2 * s * phi.sin(), m / 2 * c)
    a = k * torch.tensor([1, -1, -1, -1], dtype=torch.float64)
    if transverse:
        beta = torch.tensor([transverse, 0.0, 0.0], dtype=torch.float64).expand(n, 3)
        k, a = boost(k, beta), boost(a, beta)
    return boost_z(k, y), boost_z(a, y), m, c, y
