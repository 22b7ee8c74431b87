"""Three-body decay phase space (the Dalitz plot) from the unit square.

For M -> 1 2 3 with invariants s_ij = (p_i + p_j)^2 (s12 + s23 + s13 =
M^2 + m1^2 + m2^2 + m3^2), the decay rate is flat in (s12, s23):

    dGamma = |M|^2 ds12 ds23 / ((2 pi)^3 32 M^3)        (PDG, eq. 49.22).

The unit square maps onto the Dalitz region by

* s12 = s12_min + u0 (s12_max - s12_min), s12 in [(m1 + m2)^2, (M - m3)^2],
* s23 = s23_mid(s12) - 2 p2* p3* cos(theta), cos(theta) = 1 - 2 u1,

with p2*, p3* the momenta of 2 and 3 in the (12) rest frame and theta the
helicity angle between 3 and 2 there, so every point of the square is a
physical configuration. The Jacobian is |d(s12, s23) / d(u0, u1)| =
(s12_max - s12_min) 4 p2* p3*, and int du jac |M|^2 = int ds12 ds23 |M|^2.
Everything is differentiable torch (gradients of |M|^2 with respect to u).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from hepflows.errors import ConfigError, ShapeError


def kallen(a: Tensor | float, b: Tensor | float, c: Tensor | float) -> Tensor | float:
    """Kaellen function lambda(a, b, c) = a^2 + b^2 + c^2 - 2ab - 2ac - 2bc, elementwise (n,)."""
    return a * a + b * b + c * c - 2 * a * b - 2 * a * c - 2 * b * c


def breakup_momentum(s: Tensor, ma: float, mb: float) -> Tensor:
    """(n,) momentum of a or b in the rest frame of mass^2 s (n,) (0 below threshold)."""
    return torch.sqrt(kallen(s, ma * ma, mb * mb).clamp_min(0.0) / (4 * s))


@dataclass(frozen=True)
class DalitzPlot:
    """Phase space of M -> 1 2 3 (GeV).

    Attributes:
        M: parent mass.
        m1, m2, m3: daughter masses.
        names: daughter labels for plots, e.g. ``("p", "K-", "pi+")``.
    """

    M: float
    m1: float
    m2: float
    m3: float
    names: tuple[str, str, str] = ("1", "2", "3")

    def __post_init__(self) -> None:
        masses = (self.M, self.m1, self.m2, self.m3)
        if not all(math.isfinite(m) and m >= 0 for m in masses):
            raise ConfigError(f"masses must be finite and >= 0, got M, m1, m2, m3 = {masses}")
        if self.M <= self.m1 + self.m2 + self.m3:
            raise ConfigError(
                f"M = {self.M} GeV is not above m1 + m2 + m3 = {self.m1 + self.m2 + self.m3} "
                "GeV: the decay is closed; check the masses"
            )

    @property
    def dims(self) -> int:
        """Dimension of the unit cube it is mapped from (2)."""
        return 2

    @property
    def s_sum(self) -> float:
        """s12 + s23 + s13 = M^2 + m1^2 + m2^2 + m3^2."""
        return self.M**2 + self.m1**2 + self.m2**2 + self.m3**2

    def bounds(self, pair: str) -> tuple[float, float]:
        """Kinematic range of s_ij for ``pair`` in ``("12", "23", "13")``."""
        m = {"1": self.m1, "2": self.m2, "3": self.m3}
        if pair not in ("12", "23", "13"):
            raise ConfigError(f"pair must be '12', '23' or '13', got {pair!r}")
        i, j = pair
        k = ({"1", "2", "3"} - {i, j}).pop()
        return (m[i] + m[j]) ** 2, (self.M - m[k]) ** 2

    def _frame(self, s12: Tensor) -> tuple[Tensor, Tensor]:
        """s23 at cos(theta) = 0 and the half range 2 p2* p3*, both (n,)."""
        rs = torch.sqrt(s12)
        e2 = (s12 - self.m1**2 + self.m2**2) / (2 * rs)
        e3 = (self.M**2 - s12 - self.m3**2) / (2 * rs)
        p2 = torch.sqrt((e2 * e2 - self.m2**2).clamp_min(0.0))
        p3 = torch.sqrt((e3 * e3 - self.m3**2).clamp_min(0.0))
        mid = self.m2**2 + self.m3**2 + 2 * e2 * e3
        return mid, 2 * p2 * p3

    def map(self, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Unit square -> Dalitz plot.

        Args:
            u: (n, 2) points in [0, 1]^2.

        Returns:
            ``(s12, s23, jac)``, each (n,): the invariants and |d(s12, s23)/du|.
        """
        if u.ndim != 2 or u.shape[1] != 2:
            raise ShapeError(f"u must have shape (n, 2), got {tuple(u.shape)}")
        lo, hi = self.bounds("12")
        s12 = lo + u[:, 0] * (hi - lo)
        mid, half = self._frame(s12)
        s23 = mid - half * (1 - 2 * u[:, 1])
        return s12, s23, (hi - lo) * 2 * half

    def inverse(self, s12: Tensor, s23: Tensor) -> Tensor:
        """Dalitz plot -> unit square: (n,), (n,) invariants -> (n, 2) u (undoes :meth:`map`)."""
        lo, hi = self.bounds("12")
        mid, half = self._frame(s12)
        u0 = (s12 - lo) / (hi - lo)
        u1 = 0.5 * (1 + (s23 - mid) / half.clamp_min(torch.finfo(s12.dtype).tiny))
        return torch.stack((u0, u1), dim=1)

    def s13(self, s12: Tensor, s23: Tensor) -> Tensor:
        """(n,) s13 = M^2 + m1^2 + m2^2 + m3^2 - s12 - s23."""
        return self.s_sum - s12 - s23

    def contains(self, s12: Tensor, s23: Tensor) -> Tensor:
        """(n,) bool: whether (s12, s23) lies inside the Dalitz region."""
        lo, hi = self.bounds("12")
        inside = (s12 >= lo) & (s12 <= hi)
        mid, half = self._frame(s12.clamp(lo, hi))
        return inside & ((s23 - mid).abs() <= half)

    def momenta(self, u: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Four-momenta of 1, 2, 3 in the parent's rest frame at unit-square points.

        Built in the (12) rest frame (1 and 2 back to back along z, 3 at the
        helicity angle theta, cos(theta) = 1 - 2 u1), then boosted to the parent
        frame; with ``generator`` the decay is given a uniformly random
        orientation (an unpolarised parent), else the (12) axis stays on z.

        Args:
            u: (n, 2) points in [0, 1]^2.
            generator: random source for the orientation.

        Returns:
            (n, 3, 4) momenta (E, px, py, pz) in GeV.
        """
        from hepflows.physics.kinematics import boost, four_vector

        lo, hi = self.bounds("12")
        s12 = lo + u[:, 0] * (hi - lo)
        p = breakup_momentum(s12, self.m1, self.m2)
        e3 = (self.M**2 - s12 - self.m3**2) / (2 * torch.sqrt(s12))
        p3 = torch.sqrt((e3 * e3 - self.m3**2).clamp_min(0.0))
        c = 1 - 2 * u[:, 1]
        sn = torch.sqrt((1 - c * c).clamp_min(0.0))
        zero = torch.zeros_like(p)
        v1 = four_vector(torch.sqrt(p * p + self.m1**2), zero, zero, -p)
        v2 = four_vector(torch.sqrt(p * p + self.m2**2), zero, zero, p)
        v3 = four_vector(e3, p3 * sn, zero, p3 * c)
        total = v1 + v2 + v3
        beta = -total[:, 1:] / total[:, :1]
        out = torch.stack([boost(v, beta) for v in (v1, v2, v3)], 1)
        if generator is not None:  # uniform rotation from a uniform unit quaternion
            q = torch.randn(len(u), 4, generator=generator, dtype=u.dtype)
            w, x, y, z = (q / q.norm(dim=1, keepdim=True)).unbind(1)
            rot = torch.stack((
                1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
                2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
            ), 1).reshape(-1, 1, 3, 3)  # fmt: skip
            vec = (rot @ out[..., 1:, None])[..., 0]
            out = torch.cat((out[..., :1], vec), -1)
        return out

    def area(self) -> float:
        """Area of the Dalitz region in GeV^4 (Gauss-Legendre over s12, 200 nodes)."""
        import numpy as np

        lo, hi = self.bounds("12")
        nodes, weights = np.polynomial.legendre.leggauss(200)
        s12 = torch.as_tensor(lo + (nodes + 1) / 2 * (hi - lo), dtype=torch.float64)
        _, half = self._frame(s12)
        return float((torch.as_tensor(weights) * 2 * half).sum()) * (hi - lo) / 2

    def width_factor(self) -> float:
        """1 / ((2 pi)^3 32 M^3): Gamma = width_factor * int ds12 ds23 |M|^2 (GeV)."""
        return 1.0 / ((2 * math.pi) ** 3 * 32 * self.M**3)
