"""Helpers of the three-body decay tests: explicit four-vectors, gradients by finite differences."""

from __future__ import annotations

import torch

from hepflows.physics.decays import DalitzPlot, kallen

#: Lambda_c+, p, K-, pi+ masses (GeV).
LC_MASSES = (2.28646, 0.938272046, 0.493677, 0.13957018)


def four_momenta(d: DalitzPlot, u: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Explicit four-vectors of 1, 2, 3 in the (12) rest frame for unit-square points u.

    1 and 2 back to back along z, 3 at angle theta to 2 with cos(theta) = 1 - 2 u1
    (the convention of DalitzPlot.map), built from energies and momenta only.
    """
    lo, hi = d.bounds("12")
    s12 = lo + u[:, 0] * (hi - lo)
    m12 = torch.sqrt(s12)
    p = torch.sqrt(kallen(s12, d.m1**2, d.m2**2) / (4 * s12))
    e1 = torch.sqrt(p**2 + d.m1**2)
    e2 = torch.sqrt(p**2 + d.m2**2)
    # parent momentum in the (12) frame equals the momentum of 3 there
    e3 = (d.M**2 - s12 - d.m3**2) / (2 * m12)
    p3 = torch.sqrt(e3**2 - d.m3**2)
    c = 1 - 2 * u[:, 1]
    s = torch.sqrt(1 - c**2)
    zero = torch.zeros_like(p)
    v1 = torch.stack((e1, zero, zero, -p), 1)
    v2 = torch.stack((e2, zero, zero, p), 1)
    v3 = torch.stack((e3, p3 * s, zero, p3 * c), 1)
    return v1, v2, v3


def minkowski2(a: torch.Tensor) -> torch.Tensor:
    return a[:, 0] ** 2 - (a[:, 1:] ** 2).sum(1)

def check_gradient(f, u: torch.Tensor, h: float = 1e-6) -> None:
    """Autograd gradient of log f at u (n, 2) equals central finite differences."""
    ug = u.clone().requires_grad_(True)
    torch.log(f(ug)).sum().backward()
    eye = torch.eye(2, dtype=torch.float64)
    fd = torch.stack([(torch.log(f(u + h * eye[i])) - torch.log(f(u - h * eye[i]))) / (2 * h)
                      for i in range(2)], 1)  # fmt: skip
    torch.testing.assert_close(ug.grad, fd, rtol=1e-5, atol=1e-5)
