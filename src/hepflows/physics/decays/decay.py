"""A three-body decay as a differentiable density on the unit square.

:class:`ThreeBodyDecay` joins an intensity |M|^2(s12, s23, s13) to the
:class:`~hepflows.physics.decays.dalitz.DalitzPlot` mapping: called on
u (n, 2) in [0, 1]^2 it returns |M|^2 times the Jacobian, whose integral over
the square is int ds12 ds23 |M|^2. Gradients with respect to u flow through
torch autograd (for FAB's HMC, :mod:`hepflows.integrate.trainers.fab`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from hepflows.errors import ShapeError
from hepflows.io.particles import particle_table, records
from hepflows.physics.decays.dalitz import DalitzPlot

if TYPE_CHECKING:
    import pylhe

#: Distance from the square's faces below which points are moved in (see ``__call__``).
EDGE = 1e-12
#: (s12, s23, s13), each (n,) -> (n,) |M|^2 >= 0, differentiable.
Intensity = Callable[[Tensor, Tensor, Tensor], Tensor]


class ThreeBodyDecay:
    """Density of a three-body decay on the unit square (an integrand for hepflows.integrate).

    Args:
        dalitz: phase space and masses.
        intensity: |M|^2 as a function of (s12, s23, s13), torch-differentiable.
        name: label for tables and plots.

    Example:
        >>> from hepflows.physics.decays import pi1800
        >>> f = pi1800()
        >>> u = torch.rand(5, 2, dtype=torch.float64)
        >>> f(u).shape
        torch.Size([5])
    """

    dims = 2

    def __init__(
        self,
        dalitz: DalitzPlot,
        intensity: Intensity,
        name: str = "",
        pdg_ids: tuple[int, int, int, int] = (0, 0, 0, 0),
    ) -> None:
        self.dalitz = dalitz
        self.intensity = intensity
        self.name = name
        #: PDG ids of the parent and of daughters 1, 2, 3 (for event files).
        self.pdg_ids = pdg_ids

    def particle_table(self, u: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(n, 4, 13) Les Houches records of decays at (n, 2) points: the parent at rest
        (status -1) and the three daughters (status 1, mother 1) in its rest frame,
        randomly oriented with ``generator`` (an unpolarised parent), momenta and masses
        in GeV; columns as :data:`hepflows.io.particles.PARTICLE_COLUMNS`."""
        d = self.dalitz
        daughters = d.momenta(u.clamp(EDGE, 1 - EDGE), generator).to(torch.float64)
        parent = torch.zeros(len(u), 1, 4, dtype=torch.float64)
        parent[..., 0] = d.M
        pid = torch.tensor(self.pdg_ids, dtype=torch.float64).expand(len(u), 4)
        return particle_table(pid, (-1, 1, 1, 1), ((0, 0), (1, 1), (1, 1), (1, 1)),
                              torch.cat((parent, daughters), dim=1), (d.M, d.m1, d.m2, d.m3))

    def lhe_particles(
        self, u: Tensor, generator: torch.Generator | None = None
    ) -> list[list[pylhe.LHEParticle]]:
        """``pylhe`` records of :meth:`particle_table`: n lists of 4 particles."""
        return records(self.particle_table(u, generator))

    def invariants(self, u: Tensor) -> dict[str, Tensor]:
        """(n, 2) unit-square points -> dict of (n,) ``s12``, ``s23``, ``s13`` and ``jac``."""
        s12, s23, jac = self.dalitz.map(u)
        return {"s12": s12, "s23": s23, "s13": self.dalitz.s13(s12, s23), "jac": jac}

    def __call__(self, u: Tensor) -> Tensor:
        """(n, 2) points in [0, 1]^2 -> (n,) |M|^2 |d(s12, s23)/du| (differentiable)."""
        if u.ndim != 2 or u.shape[1] != 2:
            raise ShapeError(f"u must have shape (n, 2), got {tuple(u.shape)}")
        # The amplitude formulas are singular on the Dalitz boundary (u on a face of the
        # square); points closer than EDGE are evaluated at that distance.
        s12, s23, jac = self.dalitz.map(u.clamp(EDGE, 1 - EDGE))
        return self.intensity(s12, s23, self.dalitz.s13(s12, s23)) * jac

    def __repr__(self) -> str:
        d = self.dalitz
        return f"ThreeBodyDecay({self.name!r}, M={d.M}, m=({d.m1}, {d.m2}, {d.m3}))"
