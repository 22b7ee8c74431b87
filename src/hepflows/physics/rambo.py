"""Flat, invertible n-body phase space from the unit cube: RAMBO on diet with massive rescaling.

Massless momenta (Plaetzer, arXiv:1308.2922): 3n - 4 numbers give n massless momenta in
the centre-of-mass frame of sqrt(s), with the uniform measure on massless phase space, by
a chain of two-body decays Q_i -> p_i + Q_{i+1} (Q_1 = P = (sqrt(s), 0, 0, 0), Q_n = p_n):

* the intermediate masses M_i^2 = Q_i^2, i = 2 .. n-1: x = M_i^2 / M_{i-1}^2 has density
  proportional to (1 - x) x^(k-1) with k = n - i (massless two-body phase space times the
  (n - i + 1)-body volume M_i^(2 (k-1))), so x solves the inverse CDF
  F_k(x) = (k + 1) x^k - k x^(k+1) = r (closed forms for k = 1, 2; Newton otherwise);
* p_i in the rest frame of Q_i: energy (M_i^2 - M_{i+1}^2) / (2 M_i), polar angle
  cos(theta) = 2 r - 1, azimuth 2 pi r', then a pure boost along Q_i to the frame of P.

Its weight is the constant massless volume (:func:`massless_volume`). Massive momenta
(Kleiss, Stirling, Ellis, Comput. Phys. Commun. 40 (1986) 359): k_i = (sqrt(m_i^2 +
xi^2 E_i^2), xi p_i) with xi solving sum_i k_i^0 = sqrt(s) per event (Newton), weight

    W = V_n (sum |k_i| / sqrt(s))^(2n - 3) prod(|k_i| / k_i^0) sqrt(s) / sum(|k_i|^2 / k_i^0).

Both steps are invertible (xi = sum |k_i| / sqrt(s) and p_i = (|k_i|, k_i) / xi undo the
rescaling). Phase-space convention:

    d Phi_n = prod_i d^3 p_i / ((2 pi)^3 2 E_i) (2 pi)^4 delta^4(P - sum_i p_i),

so int d Phi_n = E_u[W(u)] and a cross-section is int du |M|^2 W(u) / flux.

Layout of u (3n - 4 columns): u[:, :n-2] the mass variables of M_2 .. M_{n-1}, then
(cos, phi) pairs of p_1 .. p_{n-1} in their parents' rest frames: u[:, n-2+2j] and
u[:, n-1+2j] for particle j = 0 .. n-2.

Differentiable: the per-event equations (F_k(x) = r for k > 2, xi) are solved without a
graph and then polished by one Newton step on the graph, which carries the exact implicit
derivative.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from hepflows.errors import ConfigError, InputError

__all__ = ["RamboOnDiet", "mass_cdf", "mass_cdf_inverse", "massless_volume"]


def massless_volume(n: int, s: float) -> float:
    """Volume of massless n-body phase space (the convention of the module docstring).

    Phi_n = (2 pi)^(4 - 3n) (pi / 2)^(n - 1) s^(n - 2) / ((n - 1)! (n - 2)!), in GeV^(2n - 4).
    """
    if n < 2:
        raise ConfigError(f"phase space needs n >= 2 particles, got {n}")
    return ((2 * math.pi) ** (4 - 3 * n) * (math.pi / 2) ** (n - 1) * s ** (n - 2)
            / (math.factorial(n - 1) * math.factorial(n - 2)))  # fmt: skip


def mass_cdf(x: Tensor, k: int) -> Tensor:
    """F_k(x) = (k + 1) x^k - k x^(k + 1), the CDF of M_i^2 / M_{i-1}^2: (n,) -> (n,)."""
    return x**k * ((k + 1) - k * x)


def mass_cdf_inverse(r: Tensor, k: int) -> Tensor:
    """x in [0, 1] with F_k(x) = r: (n,) -> (n,), differentiable.

    k = 1: x = r / (1 + sqrt(1 - r)); k = 2: x = 1/2 - sin(asin(1 - 2 r) / 3) (the inverse
    smoothstep); larger k: safeguarded Newton without a graph, then one Newton step on it.
    """
    if k == 1:
        return r / (1 + torch.sqrt(1 - r))
    if k == 2:
        return 0.5 - torch.sin(torch.asin(1 - 2 * r) / 3)
    with torch.no_grad():
        target = r.detach()
        lo, hi = torch.zeros_like(target), torch.ones_like(target)
        x = (target / (k + 1)) ** (1 / k)  # F ~ (k + 1) x^k near 0
        x = x.clamp(0.0, 1.0)
        for _ in range(100):
            f = mass_cdf(x, k) - target
            lo = torch.where(f < 0, x, lo)
            hi = torch.where(f > 0, x, hi)
            slope = k * (k + 1) * x ** (k - 1) * (1 - x)
            step = f / torch.where(slope > 0, slope, torch.ones_like(slope))
            new = x - step
            bad = (slope <= 0) | (new <= lo) | (new >= hi)
            new = torch.where(bad, 0.5 * (lo + hi), new)
            done = bool(((new - x).abs() <= 1e-14).all())
            x = new
            if done:
                break
    slope = k * (k + 1) * x ** (k - 1) * (1 - x)
    return x - (mass_cdf(x, k) - r) / slope


def _from_rest(p: Tensor, q: Tensor, m: Tensor) -> Tensor:
    """Boost p (N, 4) from the rest frame of q (N, 4) of mass m (N,) to q's frame.

    gamma = q^0 / m is taken from the mass, not from 1 - |beta|^2, which loses digits for
    fast q (a light intermediate system).
    """
    qp = (q[:, 1:] * p[:, 1:]).sum(-1)
    e = (q[:, 0] * p[:, 0] + qp) / m
    coef = qp / (m * (q[:, 0] + m)) + p[:, 0] / m
    return torch.cat((e[:, None], p[:, 1:] + coef[:, None] * q[:, 1:]), dim=-1)


def _to_rest(p: Tensor, q: Tensor, m: Tensor) -> Tensor:
    """Boost p (N, 4) into the rest frame of q (N, 4) of mass m (N,); inverse of _from_rest."""
    qp = (q[:, 1:] * p[:, 1:]).sum(-1)
    e = (q[:, 0] * p[:, 0] - qp) / m
    coef = qp / (m * (q[:, 0] + m)) - p[:, 0] / m
    return torch.cat((e[:, None], p[:, 1:] + coef[:, None] * q[:, 1:]), dim=-1)


def _rescaling_xi(energies: Tensor, masses: Tensor, sqrt_s: float) -> Tensor:
    """xi with sum_i sqrt(m_i^2 + xi^2 E_i^2) = sqrt(s): (N, n) energies -> (N,).

    The left side is convex and increasing in xi and exceeds sqrt(s) at xi = 1, so Newton
    from xi = 1 decreases monotonically to the root. One final step on the graph.
    """
    m2 = masses**2

    def f_and_slope(xi: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
        k0 = torch.sqrt(m2 + (xi[:, None] * e) ** 2)
        return k0.sum(-1) - sqrt_s, (xi[:, None] * e**2 / k0).sum(-1)

    with torch.no_grad():
        e = energies.detach()
        xi = torch.ones(e.shape[0], dtype=e.dtype, device=e.device)
        for _ in range(100):
            f, slope = f_and_slope(xi, e)
            step = f / slope
            xi = xi - step
            if bool((step.abs() <= 1e-9).all()):  # quadratic: one more step is exact
                f, slope = f_and_slope(xi, e)
                xi = xi - f / slope
                break
    f, slope = f_and_slope(xi, energies)
    return xi - f / slope


class RamboOnDiet:
    """Flat n-body phase space in the centre-of-mass frame: [0, 1]^(3n - 4) <-> momenta.

    Args:
        sqrt_s: centre-of-mass energy in GeV.
        masses: the n final-state masses in GeV (n >= 2); their sum must be below sqrt(s).

    Call it on u (N, 3n - 4) to get ``(momenta, weight)``: momenta (N, n, 4) in the order
    of ``masses`` and the phase-space weight (N,) in GeV^(2n - 4) (d Phi_n / du; see the
    module docstring for the convention). :meth:`inverse` maps momenta back to u.

    Example:
        >>> ps = RamboOnDiet(1000.0, [80.4, 4.7, 80.4, 4.7])
        >>> gen = torch.Generator().manual_seed(0)
        >>> u = torch.rand(10, ps.dims, dtype=torch.float64, generator=gen)
        >>> p, w = ps(u)
        >>> torch.allclose(ps.inverse(p), u)
        True
    """

    def __init__(self, sqrt_s: float, masses: Sequence[float]) -> None:
        masses = [float(m) for m in masses]
        if len(masses) < 2:
            raise ConfigError(f"phase space needs at least 2 particles, got masses {masses}")
        if not all(math.isfinite(m) and m >= 0 for m in masses):
            raise ConfigError(f"masses must be finite and >= 0, got {masses}")
        if not (math.isfinite(sqrt_s) and sqrt_s > sum(masses)):
            raise ConfigError(f"sqrt_s = {sqrt_s} GeV must exceed the sum of the masses, "
                              f"{sum(masses)} GeV: raise sqrt_s or check the masses")  # fmt: skip
        self.sqrt_s = float(sqrt_s)
        self.masses = tuple(masses)
        self.n = len(masses)
        self.massive = any(m > 0 for m in masses)

    @property
    def dims(self) -> int:
        """Dimension of the unit cube, 3n - 4."""
        return 3 * self.n - 4

    @property
    def s(self) -> float:
        """Squared centre-of-mass energy (GeV^2)."""
        return self.sqrt_s**2

    @property
    def massless_volume(self) -> float:
        """Volume of massless n-body phase space at this sqrt(s) (:func:`massless_volume`)."""
        return massless_volume(self.n, self.s)

    # ------------------------------------------------------------- checks
    def _check_u(self, u: Tensor) -> Tensor:
        if not isinstance(u, Tensor) or u.ndim != 2 or u.shape[1] != self.dims:
            shape = tuple(u.shape) if isinstance(u, Tensor) else type(u).__name__
            raise InputError(f"u must have shape (N, {self.dims}) for {self.n} particles, "
                             f"got {shape}")  # fmt: skip
        if not u.is_floating_point():
            raise InputError(f"u must be a floating-point tensor, got {u.dtype}")
        return u.to(torch.float64)

    def _check_momenta(self, p: Tensor) -> Tensor:
        if not isinstance(p, Tensor) or p.ndim != 3 or p.shape[1:] != (self.n, 4):
            shape = tuple(p.shape) if isinstance(p, Tensor) else type(p).__name__
            raise InputError(f"momenta must have shape (N, {self.n}, 4), got {shape}")
        if not p.is_floating_point():
            raise InputError(f"momenta must be a floating-point tensor, got {p.dtype}")
        return p.to(torch.float64)

    # ------------------------------------------------------------- forward
    def __call__(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """Momenta and weight from unit-cube points: (N, 3n - 4) -> (N, n, 4), (N,).

        Raises:
            InputError: u of the wrong shape.
        """
        u = self._check_u(u)
        p = self.massless(u)
        volume = torch.full((u.shape[0],), self.massless_volume, dtype=u.dtype, device=u.device)
        if not self.massive:
            return p, volume
        k, factor = self.rescale(p)
        return k, volume * factor

    def massless(self, u: Tensor) -> Tensor:
        """The massless momenta of RAMBO on diet: (N, 3n - 4) -> (N, n, 4), weight V_n."""
        n, device = self.n, u.device
        big_n = u.shape[0]
        q = torch.zeros(big_n, 4, dtype=torch.float64, device=device)
        q[:, 0] = self.sqrt_s
        m2_prev = torch.full((big_n,), self.s, dtype=torch.float64, device=device)
        out = []
        for i in range(n - 1):  # particle i from the decay Q_i -> p_i + Q_{i+1} (0-based)
            if i < n - 2:
                m2_next = m2_prev * mass_cdf_inverse(u[:, i], n - 2 - i)
            else:
                m2_next = torch.zeros_like(m2_prev)
            m_prev = torch.sqrt(m2_prev)
            energy = (m2_prev - m2_next) / (2 * m_prev)
            cos = 2 * u[:, n - 2 + 2 * i] - 1
            phi = (2 * math.pi) * u[:, n - 1 + 2 * i]
            sin = torch.sqrt((1 - cos) * (1 + cos))
            vec = energy[:, None] * torch.stack(
                (sin * torch.cos(phi), sin * torch.sin(phi), cos), dim=-1
            )
            p_rest = torch.cat((energy[:, None], vec), dim=-1)
            q_rest = torch.cat(((m_prev - energy)[:, None], -vec), dim=-1)
            if i == 0:  # Q_1 = P is at rest
                p_i, q = p_rest, q_rest
            else:
                p_i, q = _from_rest(p_rest, q, m_prev), _from_rest(q_rest, q, m_prev)
            out.append(p_i)
            m2_prev = m2_next
        out.append(q)
        return torch.stack(out, dim=1)

    def rescale(self, p: Tensor) -> tuple[Tensor, Tensor]:
        """Massless momenta to massive ones (RAMBO): (N, n, 4) -> (N, n, 4), weight factor (N,).

        The factor multiplies the massless weight (module docstring).
        """
        masses = torch.tensor(self.masses, dtype=torch.float64, device=p.device)
        energies = p[..., 0]
        xi = _rescaling_xi(energies, masses, self.sqrt_s)
        kabs = xi[:, None] * energies  # |k_i| = xi |p_i| = xi E_i
        k0 = torch.sqrt(masses**2 + kabs**2)
        k = torch.cat((k0[..., None], xi[:, None, None] * p[..., 1:]), dim=-1)
        n = self.n
        factor = ((kabs.sum(-1) / self.sqrt_s) ** (2 * n - 3) * (kabs / k0).prod(-1)
                  * self.sqrt_s / (kabs**2 / k0).sum(-1))  # fmt: skip
        return k, factor

    # ------------------------------------------------------------- inverse
    def inverse(self, p: Tensor) -> Tensor:
        """Unit-cube points of momenta in the centre-of-mass frame: (N, n, 4) -> (N, 3n - 4).

        The inverse of :meth:`__call__` for momenta it can produce (on-shell with these
        masses, summing to (sqrt(s), 0, 0, 0)); others are not checked.

        Raises:
            InputError: momenta of the wrong shape.
        """
        p = self._check_momenta(p)
        if self.massive:
            kabs = torch.linalg.vector_norm(p[..., 1:], dim=-1)
            xi = kabs.sum(-1) / self.sqrt_s
            p = torch.cat((kabs[..., None], p[..., 1:]), dim=-1) / xi[:, None, None]
        return self.massless_inverse(p)

    def massless_inverse(self, p: Tensor) -> Tensor:
        """Inverse of :meth:`massless`: (N, n, 4) massless momenta -> (N, 3n - 4)."""
        n = self.n
        q = torch.zeros_like(p[:, 0])
        q[:, 0] = self.sqrt_s
        m2_prev = torch.full_like(p[:, 0, 0], self.s)
        masses, angles = [], []
        for i in range(n - 1):
            p_i = p[:, i]
            q_next = q - p_i
            rest = p_i if i == 0 else _to_rest(p_i, q, torch.sqrt(m2_prev))
            if i < n - 2:
                m2_next = q_next[:, 0] ** 2 - (q_next[:, 1:] ** 2).sum(-1)
                masses.append(mass_cdf(m2_next / m2_prev, n - 2 - i))
                m2_prev = m2_next
            cos = rest[:, 3] / torch.linalg.vector_norm(rest[:, 1:], dim=-1)
            phi = torch.atan2(rest[:, 2], rest[:, 1])
            angles += [(cos + 1) / 2, torch.remainder(phi / (2 * math.pi), 1.0)]
            q = q_next
        return torch.stack(masses + angles, dim=-1)
