"""Hadronic 2 -> n massless phase space in jet variables: (p_T, y, phi) of n - 1 partons,
the rapidity of the last one, which balances the transverse momentum.

For two partons from the beams (x1, x2) and n massless outgoing partons k_i,

    dx1 dx2 dPhi_n = (2 pi)^(4 - 3n) (2 / s) prod_{i != b} (p_Ti dp_Ti dphi_i dy_i / 2) dy_b / 2,

with b the balancing parton: its transverse momentum is minus the others' sum, and x1, x2
follow from energy and longitudinal momentum, x_1,2 = sum_i p_Ti e^(+-y_i) / sqrt(s). The
p_T cut of the n - 1 sampled partons and a rapidity cut cost nothing; the t-channel
poles (1/p_T^4 of jet spectra) are flattened by sampling p_T with density ~ p_T^-power.
Each choice of the balancing parton is one channel of a multi-channel integrator;
:meth:`JetPhaseSpace.weight_of` gives any channel's weight at momenta another channel made.

Tensors: u (N, 3n - 2) in [0, 1]; momenta (N, 2 + n, 4) float64 (beams first, lab frame).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hepflows.errors import ConfigError, InputError
from hepflows.physics.kinematics import beam_momenta, pt, rapidity

__all__ = ["JetPhaseSpace"]


class JetPhaseSpace:
    """One channel of jet-variable phase space.

    Args:
        sqrt_s: collider energy (GeV).
        n: outgoing massless partons (>= 2).
        pt_min: lower p_T bound of the sampled partons (the analysis cut; GeV).
        y_max: rapidity range |y| <= y_max of every parton (default: the kinematic limit
            acosh(sqrt_s / (2 pt_min))).
        balance: index (0 .. n-1) of the parton whose p_T is fixed by the others.
        power: the p_T density ~ p_T^-power on [pt_min, sqrt_s / 2] (power > 1).
    """

    def __init__(self, sqrt_s: float, n: int, pt_min: float, y_max: float | None = None,
                 balance: int | None = None, power: float = 3.0) -> None:
        if n < 2:
            raise ConfigError(f"need at least two outgoing partons, got {n}")
        if not 0 < pt_min < sqrt_s / 2:
            raise ConfigError(f"pt_min must lie in (0, sqrt_s / 2), got {pt_min}")
        if not power > 1:
            raise ConfigError(f"power must be > 1, got {power}")
        self.sqrt_s, self.s, self.n = float(sqrt_s), float(sqrt_s) ** 2, n
        self.pt_min, self.pt_max = float(pt_min), float(sqrt_s) / 2
        limit = math.acosh(self.sqrt_s / (2 * pt_min))
        self.y_max = limit if y_max is None else min(float(y_max), limit)
        self.balance = n - 1 if balance is None else balance
        if not 0 <= self.balance < n:
            raise ConfigError(f"balance must be in 0..{n - 1}, got {self.balance}")
        self.power = float(power)
        self.dims = 3 * n - 2
        self._sampled = [i for i in range(n) if i != self.balance]
        self._norm = (2 * math.pi) ** (4 - 3 * n) * 2 / self.s

    def __repr__(self) -> str:
        return (f"JetPhaseSpace(n={self.n}, pt_min={self.pt_min:g}, y_max={self.y_max:.3g}, "
                f"balance={self.balance}, power={self.power:g})")  # fmt: skip

    # ------------------------------------------------------------------ p_T map
    def _pt(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """p_T with density ~ p_T^-power on [pt_min, pt_max]: (p_T, dp_T/du)."""
        a = 1 - self.power
        lo, hi = self.pt_min**a, self.pt_max**a
        value = (lo + u * (hi - lo)) ** (1 / a)
        return value, (hi - lo) / a * value ** (1 - a)

    def _pt_inverse(self, value: Tensor) -> Tensor:
        a = 1 - self.power
        lo, hi = self.pt_min**a, self.pt_max**a
        return (value**a - lo) / (hi - lo)

    def inverse(self, p: Tensor) -> Tensor:
        """Unit-cube point (N, 3n - 2) of momenta this channel can make (N, 2 + n, 4)."""
        jets = p[:, 2:]
        p_t = pt(jets)
        y = rapidity(jets)
        phi = torch.remainder(torch.atan2(jets[..., 2], jets[..., 1]) / (2 * math.pi), 1.0)
        cols = []
        for i in self._sampled:
            cols += [self._pt_inverse(p_t[:, i]), phi[:, i], 0.5 * (y[:, i] / self.y_max + 1)]
        cols.append(0.5 * (y[:, self.balance] / self.y_max + 1))
        return torch.stack(cols, dim=-1)

    def _pt_jacobian(self, value: Tensor) -> Tensor:
        a = 1 - self.power
        return (self.pt_max**a - self.pt_min**a) / a * value ** (1 - a)

    # ------------------------------------------------------------------ map
    def __call__(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """Momenta (N, 2 + n, 4) and weight dx1 dx2 dPhi_n / du / (2 s_hat) (N,) in GeV^-2.

        The weight is 0 where the point leaves phase space (x1 or x2 > 1) or the
        balancing parton falls below pt_min.
        """
        if u.ndim != 2 or u.shape[1] != self.dims:
            raise InputError(f"u must have shape (N, {self.dims}), got {tuple(u.shape)}")
        u = u.double()
        n_b = len(u)
        px = torch.zeros(n_b, self.n, dtype=torch.float64)
        py = torch.zeros_like(px)
        y = torch.zeros_like(px)
        for j, i in enumerate(self._sampled):
            p_t, _ = self._pt(u[:, 3 * j])
            phi = 2 * math.pi * u[:, 3 * j + 1]
            px[:, i], py[:, i] = p_t * phi.cos(), p_t * phi.sin()
            y[:, i] = self.y_max * (2 * u[:, 3 * j + 2] - 1)
        px[:, self.balance] = -px.sum(1)
        py[:, self.balance] = -py.sum(1)
        y[:, self.balance] = self.y_max * (2 * u[:, -1] - 1)
        p_t = torch.hypot(px, py)
        k = torch.stack((p_t * y.cosh(), px, py, p_t * y.sinh()), dim=-1)
        p = self._with_beams(k)
        return p, self.weight_of(p)

    def _with_beams(self, k: Tensor) -> Tensor:
        e_tot, pz_tot = k[..., 0].sum(1), k[..., 3].sum(1)
        x1 = (e_tot + pz_tot) / self.sqrt_s
        x2 = (e_tot - pz_tot) / self.sqrt_s
        return torch.cat((beam_momenta(x1, x2, self.sqrt_s), k), dim=1)

    def weight_of(self, p: Tensor) -> Tensor:
        """This channel's weight dx1 dx2 dPhi / du / (2 s_hat) at momenta p (N,), GeV^-2.

        Zero where the channel cannot reach p (a sampled parton below pt_min or out of
        the rapidity range, the balancing one below pt_min, x1 or x2 > 1).
        """
        if p.ndim != 3 or p.shape[1:] != (2 + self.n, 4):
            raise InputError(f"momenta must have shape (N, {2 + self.n}, 4), got "
                             f"{tuple(p.shape)}")  # fmt: skip
        jets = p[:, 2:]
        p_t = pt(jets)
        y = rapidity(jets)
        x1, x2 = 2 * p[:, 0, 0] / self.sqrt_s, 2 * p[:, 1, 0] / self.sqrt_s
        s_hat = x1 * x2 * self.s
        w = torch.full_like(x1, self._norm) / (2 * s_hat)
        inside = (x1 <= 1) & (x2 <= 1) & (p_t >= self.pt_min * (1 - 1e-12)).all(1)
        inside &= (y.abs() <= self.y_max * (1 + 1e-12)).all(1)
        dy = 2 * self.y_max
        for i in self._sampled:
            # p_T dp_T dphi dy / 2 with dp_T = jac du, dphi = 2 pi du, dy = 2 y_max du
            w = w * p_t[:, i] * self._pt_jacobian(p_t[:, i]) * 2 * math.pi * dy / 2
            inside &= p_t[:, i] <= self.pt_max
        w = w * dy / 2
        return torch.where(inside, w, torch.zeros_like(w))
