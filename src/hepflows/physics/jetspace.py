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

A *collinear* channel (``pair=(i, j)``) samples parton j's direction relative to parton
i's: Delta y = R cos(theta), Delta phi = R sin(theta), with R on a log map over
[dr_min, pi] (dy_j dphi_j = R dR dtheta). |M|^2 ~ 1/s_ij ~ 1/R^2 near the Delta R cut
then becomes flat in log R: the final-state collinear region, where a channel with every
direction uniform leaves the largest weights.

:class:`BosonJetPhaseSpace` is the same for a lepton pair and n jets: every jet is sampled,
the pair (mass on a Breit-Wigner + 1/s mixture, rapidity, decay angles) balances.
:func:`space_channel` turns either into an integrator channel on a process' own variables.

Tensors: u (N, 3n - 2) in [0, 1]; momenta (N, 2 + n, 4) float64 (beams first, lab frame).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hepflows.errors import ConfigError, InputError
from hepflows.integrate.channels import Channel
from hepflows.physics.kinematics import beam_momenta, boost, mass2, pt, rapidity, unit_angles
from hepflows.physics.phasespace import (
    resonance_mixture_inverse,
    resonance_mixture_map,
    two_body,
)

__all__ = ["BosonJetPhaseSpace", "CollinearPair", "JetPhaseSpace", "space_channel"]

#: |dx/du| of a channel at points it cannot reach (its density there is 0).
UNREACHABLE_JAC = 1e300


class CollinearPair:
    """Parton j's direction sampled from parton i's (a collinear channel's map):
    Delta y = R cos(theta), Delta phi = R sin(theta), log R uniform on [dr_min, pi],
    theta uniform; dy_j dphi_j = R^2 log(pi / dr_min) 2 pi du_R du_theta.

    Args:
        pair: (i, j), indices of the partons among the jets.
        dr_min: the lower end of Delta R (the analysis' Delta R cut), in (0, pi).
    """

    def __init__(self, pair: tuple[int, int], dr_min: float) -> None:
        self.i, self.j = int(pair[0]), int(pair[1])
        if self.i == self.j:
            raise ConfigError(f"a collinear pair needs two different partons, got {pair}")
        if not 0 < dr_min < math.pi:
            raise ConfigError(f"a collinear channel needs 0 < dr_min < pi (the Delta R cut), "
                              f"got {dr_min}")  # fmt: skip
        self.dr_min, self.dr_max = float(dr_min), math.pi
        self.log_ratio = math.log(self.dr_max / self.dr_min)

    def place(self, y: Tensor, azimuth: Tensor, u_r: Tensor, u_theta: Tensor) -> None:
        """Set parton j's rapidity and azimuth in (N, n) y and azimuth from parton i's and
        the unit variables (N,) of log R and theta (in place)."""
        r = self.dr_min * torch.exp(self.log_ratio * u_r)
        theta = 2 * math.pi * u_theta
        y[:, self.j] = y[:, self.i] + r * theta.cos()
        azimuth[:, self.j] = azimuth[:, self.i] + r * theta.sin()

    def separation(self, y: Tensor, azimuth: Tensor) -> tuple[Tensor, Tensor]:
        """(Delta R, theta), (N,) each, of parton j from parton i (Delta phi in [-pi, pi))."""
        dy = y[:, self.j] - y[:, self.i]
        dphi = torch.remainder(azimuth[:, self.j] - azimuth[:, self.i] + math.pi,
                               2 * math.pi) - math.pi  # fmt: skip
        return torch.hypot(dy, dphi), torch.atan2(dphi, dy)

    def unit(self, y: Tensor, azimuth: Tensor) -> tuple[Tensor, Tensor]:
        """The unit variables (N,) of log R and theta that :meth:`place` maps to (y, phi)."""
        r, theta = self.separation(y, azimuth)
        return torch.log(r / self.dr_min) / self.log_ratio, torch.remainder(
            theta / (2 * math.pi), 1.0)

    def measure(self, y: Tensor, azimuth: Tensor) -> tuple[Tensor, Tensor]:
        """d y_j d phi_j / du_R du_theta (N,) and whether the map reaches the point (N,)."""
        r, _ = self.separation(y, azimuth)
        reached = (r >= self.dr_min * (1 - 1e-12)) & (r <= self.dr_max)
        return r**2 * self.log_ratio * 2 * math.pi, reached


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
        pair: (i, j), two sampled partons (neither the balancing one): j's direction is
            sampled relative to i's, Delta R in [dr_min, pi] on a log map (a collinear
            channel; it reaches only Delta R_ij <= pi).
        dr_min: the lower end of that Delta R (the analysis' Delta R cut; > 0).
    """

    def __init__(self, sqrt_s: float, n: int, pt_min: float, y_max: float | None = None,
                 balance: int | None = None, power: float = 3.0,
                 pair: tuple[int, int] | None = None, dr_min: float = 0.0) -> None:  # fmt: skip
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
        self.pair = None if pair is None else CollinearPair(pair, dr_min)
        if self.pair is not None and not {self.pair.i, self.pair.j} <= set(self._sampled):
            raise ConfigError(f"pair must be two partons other than the balancing one "
                              f"({self.balance}), got {pair}")  # fmt: skip

    def __repr__(self) -> str:
        pair = (f", pair=({self.pair.i}, {self.pair.j}), dr_min={self.pair.dr_min:g}"
                if self.pair is not None else "")  # fmt: skip
        return (f"JetPhaseSpace(n={self.n}, pt_min={self.pt_min:g}, y_max={self.y_max:.3g}, "
                f"balance={self.balance}, power={self.power:g}{pair})")  # fmt: skip

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
        azimuth = torch.atan2(jets[..., 2], jets[..., 1])
        phi = torch.remainder(azimuth / (2 * math.pi), 1.0)
        u_phi, u_y = phi, 0.5 * (y / self.y_max + 1)
        if self.pair is not None:  # parton j: (log R, theta) relative to parton i
            u_phi, u_y = u_phi.clone(), u_y.clone()
            u_phi[:, self.pair.j], u_y[:, self.pair.j] = self.pair.unit(y, azimuth)
        cols = []
        for i in self._sampled:
            cols += [self._pt_inverse(p_t[:, i]), u_phi[:, i], u_y[:, i]]
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
        azimuth = torch.zeros_like(px)
        for j, i in enumerate(self._sampled):
            y[:, i] = self.y_max * (2 * u[:, 3 * j + 2] - 1)
            azimuth[:, i] = 2 * math.pi * u[:, 3 * j + 1]
        if self.pair is not None:  # parton j relative to parton i
            k = 3 * self._sampled.index(self.pair.j)
            self.pair.place(y, azimuth, u[:, k + 1], u[:, k + 2])
        for j, i in enumerate(self._sampled):
            p_t, _ = self._pt(u[:, 3 * j])
            px[:, i], py[:, i] = p_t * azimuth[:, i].cos(), p_t * azimuth[:, i].sin()
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
        if self.pair is not None:  # parton j: its own measure instead of 2 pi dy
            measure, reached = self.pair.measure(y, torch.atan2(jets[..., 2], jets[..., 1]))
            w = w * measure / (2 * math.pi * dy)
            inside &= reached
        return torch.where(inside, w, torch.zeros_like(w))


class BosonJetPhaseSpace:
    """Jet variables for a lepton pair (from a gamma*/Z) and n jets.

    Every jet's (p_T, phi, y) is sampled (p_T ~ p_T^-power from pt_min: the jet cuts cost
    nothing), then the pair's mass^2 (an equal mixture of the resonance's Breit-Wigner and
    1/s on [m_min^2, m_max^2]), its rapidity, and the lepton's direction in the pair's rest
    frame; the pair balances the jets' transverse momentum, x1 and x2 follow. With V the
    pair (d^3p / 2E = d^2p_T dy / 2 for any mass):

        dx1 dx2 dPhi = (2 pi)^(1 - 3n) (2 / s) prod_jets (p_T dp_T dphi dy / 2) dy_V / 2
                       dm^2 / (2 pi) Phi_2(V -> l l).

    Args:
        sqrt_s: collider energy (GeV).
        n: jets (>= 1).
        pt_min: jet p_T cut (GeV).
        m_min, m_max: lepton-pair mass window (GeV).
        mass, width: the resonance of the mass map (GeV).
        y_max: jet rapidity range (default: the kinematic limit).
        power: the jets' p_T density ~ p_T^-power (> 1).
        pair: (i, j), two jets: j's direction is sampled relative to i's, Delta R in
            [dr_min, pi] on a log map (:class:`CollinearPair`: the collinear region of
            the jets; it reaches only Delta R_ij <= pi).
        dr_min: the lower end of that Delta R (the analysis' Delta R cut; > 0).

    Tensors: u (N, 3n + 4); momenta (N, 4 + n, 4): beams, l-, l+, jets.
    """

    def __init__(self, sqrt_s: float, n: int, pt_min: float, m_min: float, m_max: float,
                 mass: float, width: float, y_max: float | None = None,
                 power: float = 3.0, pair: tuple[int, int] | None = None,
                 dr_min: float = 0.0) -> None:  # fmt: skip
        if n < 1:
            raise ConfigError(f"need at least one jet, got {n}")
        if not 0 < m_min < m_max < sqrt_s:
            raise ConfigError(f"need 0 < m_min < m_max < sqrt_s, got {m_min}, {m_max}")
        self.jets = JetPhaseSpace(sqrt_s, max(n, 2), pt_min, y_max=y_max, power=power)
        self.sqrt_s, self.s, self.n = float(sqrt_s), float(sqrt_s) ** 2, n
        self.pt_min, self.y_max = self.jets.pt_min, self.jets.y_max
        self.m_min, self.m_max, self.mass, self.width = m_min, m_max, mass, width
        self.y_pair_max = math.log(self.sqrt_s / m_min)
        self.dims = 3 * n + 4
        self._norm = (2 * math.pi) ** (1 - 3 * n) * 2 / self.s
        self.pair = None if pair is None else CollinearPair(pair, dr_min)
        if self.pair is not None and not {self.pair.i, self.pair.j} <= set(range(n)):
            raise ConfigError(f"pair must be two of the jets 0..{n - 1}, got {pair}")

    def __repr__(self) -> str:
        pair = (f", pair=({self.pair.i}, {self.pair.j}), dr_min={self.pair.dr_min:g}"
                if self.pair is not None else "")  # fmt: skip
        return (f"BosonJetPhaseSpace(n={self.n}, pt_min={self.pt_min:g}, "
                f"m in [{self.m_min:g}, {self.m_max:g}]{pair})")  # fmt: skip

    def _s_max(self, like: Tensor) -> Tensor:
        return torch.full_like(like, self.m_max**2)

    def __call__(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """Momenta (N, 4 + n, 4) and weight dx1 dx2 dPhi / du / (2 s_hat) (N,) in GeV^-2
        (0 where x1 or x2 > 1)."""
        if u.ndim != 2 or u.shape[1] != self.dims:
            raise InputError(f"u must have shape (N, {self.dims}), got {tuple(u.shape)}")
        u = u.double()
        n = self.n
        p_t, _ = self.jets._pt(u[:, 0:3 * n:3])
        phi = 2 * math.pi * u[:, 1:3 * n:3]
        y = self.y_max * (2 * u[:, 2:3 * n:3] - 1)
        if self.pair is not None:  # jet j relative to jet i
            j = self.pair.j
            self.pair.place(y, phi, u[:, 3 * j + 1], u[:, 3 * j + 2])
        jets = torch.stack((p_t * y.cosh(), p_t * phi.cos(), p_t * phi.sin(), p_t * y.sinh()),
                           dim=-1)  # fmt: skip
        rest = u[:, 3 * n:]
        m2, _ = resonance_mixture_map(rest[:, 0], self.mass, self.width, self.m_min**2,
                                      self._s_max(rest[:, 0]))  # fmt: skip
        px, py = -jets[..., 1].sum(1), -jets[..., 2].sum(1)
        m_t = (m2 + px**2 + py**2).sqrt()
        y_v = self.y_pair_max * (2 * rest[:, 1] - 1)
        pair = torch.stack((m_t * y_v.cosh(), px, py, m_t * y_v.sinh()), dim=-1)
        zero = torch.zeros_like(m2)
        lm, _, _ = two_body(pair, zero, zero, rest[:, 2], rest[:, 3])
        lp = pair - lm  # momentum conserved exactly, also far off shell of the beams
        final = torch.cat((lm[:, None], lp[:, None], jets), dim=1)
        e_tot, pz_tot = final[..., 0].sum(1), final[..., 3].sum(1)
        x1 = (e_tot + pz_tot) / self.sqrt_s
        x2 = (e_tot - pz_tot) / self.sqrt_s
        p = torch.cat((beam_momenta(x1, x2, self.sqrt_s), final), dim=1)
        return p, self.weight_of(p)

    def weight_of(self, p: Tensor) -> Tensor:
        """This channel's weight dx1 dx2 dPhi / du / (2 s_hat) at momenta p (N, 4 + n, 4),
        (N,) GeV^-2; 0 where it cannot reach p."""
        if p.ndim != 3 or p.shape[1:] != (4 + self.n, 4):
            raise InputError(f"momenta must have shape (N, {4 + self.n}, 4), got "
                             f"{tuple(p.shape)}")  # fmt: skip
        jets = p[:, 4:]
        pair = p[:, 2] + p[:, 3]
        m2 = mass2(pair).clamp_min(1e-300)
        p_t, y = pt(jets), rapidity(jets)
        x1, x2 = 2 * p[:, 0, 0] / self.sqrt_s, 2 * p[:, 1, 0] / self.sqrt_s
        s_hat = x1 * x2 * self.s
        _, dm2 = resonance_mixture_inverse(m2, self.mass, self.width, self.m_min**2,
                                           self._s_max(m2))  # fmt: skip
        dy = 2 * self.y_max
        w = self._norm / (2 * s_hat) * dm2 / (2 * math.pi) / (8 * math.pi)
        w = w * self.y_pair_max  # dy_V / 2 per unit
        w = w * (p_t * self.jets._pt_jacobian(p_t) * 2 * math.pi * dy / 2).prod(1)
        inside = (x1 <= 1) & (x2 <= 1) & (p_t >= self.pt_min * (1 - 1e-12)).all(1)
        inside &= (p_t <= self.jets.pt_max).all(1) & (y.abs() <= self.y_max * (1 + 1e-12)).all(1)
        inside &= (m2 >= self.m_min**2 * (1 - 1e-12)) & (m2 <= self.m_max**2 * (1 + 1e-12))
        inside &= rapidity(pair).abs() <= self.y_pair_max
        if self.pair is not None:  # jet j: its own measure instead of 2 pi dy
            measure, reached = self.pair.measure(y, torch.atan2(jets[..., 2], jets[..., 1]))
            w = w * measure / (2 * math.pi * dy)
            inside &= reached
        return torch.where(inside, w, torch.zeros_like(w))

    def inverse(self, p: Tensor) -> Tensor:
        """Unit-cube point (N, 3n + 4) of momenta this channel can make (N, 4 + n, 4)."""
        jets = p[:, 4:]
        cols = []
        azimuth, y = torch.atan2(jets[..., 2], jets[..., 1]), rapidity(jets)
        phi = torch.remainder(azimuth / (2 * math.pi), 1.0)
        u_pt = self.jets._pt_inverse(pt(jets))
        u_y = 0.5 * (y / self.y_max + 1)
        if self.pair is not None:  # jet j: (log R, theta) relative to jet i
            phi, u_y = phi.clone(), u_y.clone()
            phi[:, self.pair.j], u_y[:, self.pair.j] = self.pair.unit(y, azimuth)
        for i in range(self.n):
            cols += [u_pt[:, i], phi[:, i], u_y[:, i]]
        pair = p[:, 2] + p[:, 3]
        m2 = mass2(pair).clamp_min(1e-300)
        r, _ = resonance_mixture_inverse(m2, self.mass, self.width, self.m_min**2,
                                         self._s_max(m2))  # fmt: skip
        u_cos, u_phi = unit_angles(boost(p[:, 2], -pair[:, 1:] / pair[:, :1]))
        cols += [r, 0.5 * (rapidity(pair) / self.y_pair_max + 1), u_cos, u_phi]
        return torch.stack(cols, dim=-1)


def space_channel(process: object, space: object, name: str) -> Channel:
    """An integrator channel on a process' variables x from another phase-space map:
    x = flat^-1(space(u)) with |dx/du| = w_space(u) / w_flat(x), and the inverse.

    ``process`` provides ``dims``, ``momenta(x)`` -> (p, w_flat), ``inverse(p)`` -> x and
    ``weight_of(p)`` -> w_flat; ``space`` provides ``space(u)`` -> (p, w), ``inverse(p)``
    and ``weight_of(p)`` (:class:`JetPhaseSpace`, :class:`BosonJetPhaseSpace`). Points the
    space cannot reach get |dx/du| = :data:`UNREACHABLE_JAC` (density 0); points of the space
the process' map cannot make (outside its bounds, e.g. a jet pair below the mass its
Delta R cut allows) are sent to x = 0 with |dx/du| = 1 / UNREACHABLE_JAC, outside the
cuts.
    """

    def mapping(u: Tensor) -> tuple[Tensor, Tensor]:
        p, w_space = space(u)
        alive = w_space > 0
        x = torch.zeros((len(u), process.dims), dtype=torch.float64)
        jac = torch.full((len(u),), 1 / UNREACHABLE_JAC, dtype=torch.float64)
        if alive.any():
            raw = process.inverse(p[alive])
            # momenta the process' own map cannot make (below its bounds) are dead too
            reach = torch.isfinite(raw).all(1) & (raw >= -1e-9).all(1) & (raw <= 1 + 1e-9).all(1)
            alive[alive.clone()] = reach
            x[alive] = raw[reach].clamp(0, 1)
            jac[alive] = w_space[alive] / process.weight_of(p[alive])
        return x, jac

    def inverse(x: Tensor) -> tuple[Tensor, Tensor]:
        p, w_flat = process.momenta(x)
        w_space = space.weight_of(p)
        u = space.inverse(p).nan_to_num(0.5).clamp(1e-12, 1 - 1e-12)
        jac = torch.where(w_space > 0, w_space / w_flat, torch.full_like(w_flat, UNREACHABLE_JAC))
        return u, jac

    return Channel(mapping=mapping, name=name, inverse=inverse)
