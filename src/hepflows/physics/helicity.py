"""Helicity amplitudes in torch: external wave functions, vertices and propagators.

HELAS-style building blocks (Murayama, Watanabe, Hagiwara, KEK-91-11), written here from
the Feynman rules, batched over events and differentiable by autograd with respect to the
momenta. Conventions:

* four-vectors (..., 4) = (E, px, py, pz) in GeV, contravariant components, metric
  (+, -, -, -); spinors and polarisation vectors are complex128, everything else float64;
* the chiral (Weyl) representation of the Dirac matrices,

      gamma^0 = [[0, 1], [1, 0]],  gamma^k = [[0, sigma^k], [-sigma^k, 0]],
      gamma^5 = diag(-1, -1, 1, 1),

  so P_L = (1 - gamma^5) / 2 keeps the upper two components of a spinor (the
  left-handed Weyl spinor) and P_R the lower two;
* helicity eigenspinors (as HELAS): with w_+- = sqrt(E +- |p|) and the two-component
  helicity eigenstates chi_lambda(p) (sigma.p chi_lambda = lambda |p| chi_lambda),

      u(p, lambda) = (w_-lambda chi_lambda,  w_lambda chi_lambda),
      v(p, lambda) = (-lambda w_lambda chi_-lambda,  lambda w_-lambda chi_-lambda),

  with helicity lambda = -1 or +1, ubar = u^dagger gamma^0, vbar = v^dagger gamma^0, so
  that sum_lambda u ubar = pslash + m and sum_lambda v vbar = pslash - m;
* vector bosons: helicity polarisation vectors eps(p, lambda), lambda = -1, 0, +1, with
  sum_lambda eps^mu eps^nu* = -g^{mu nu} + p^mu p^nu / M^2; an outgoing vector carries
  eps* (:func:`vector_wavefunction` with ``outgoing=True``);
* vertex and propagator factors carry no factors of i: an FFV vertex is
  gamma^mu (g_L P_L + g_R P_R), the fermion propagator (pslash + m) / (p^2 - m^2 + i m G),
  the vector propagator (-g^{mu nu} + q^mu q^nu / M^2) / (q^2 - M^2 + i M G) (unitary
  gauge; the photon, M = 0, is -g^{mu nu} / q^2, Feynman gauge). The Feynman rules' i's
  (-i per vertex, i per propagator) give a global phase (-i)^V i^P, the same for all
  diagrams with equal numbers of vertices and propagators, so it drops out of |M|^2.

Gradients: the spinors avoid sqrt(0) (massless: w_- is exactly 0 and has no graph; massive:
w_- = m / w_+) and the special directions (p along -z, p_T = 0) are handled by
``torch.where`` with safe denominators, so autograd is finite at every configuration met
in phase space away from those directions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hepflows.errors import InputError

__all__ = [
    "chiral_couplings",
    "dirac_matrices",
    "ffv_current",
    "fermion_propagator",
    "gamma5",
    "lower_index",
    "metric",
    "projector",
    "sigma_bar_dot",
    "sigma_dot",
    "slash",
    "spinor_u",
    "spinor_ubar",
    "spinor_v",
    "spinor_vbar",
    "vector_propagator",
    "vector_wavefunction",
]


# ------------------------------------------------------------------ Dirac algebra
def metric(device: torch.device | str = "cpu") -> Tensor:
    """The diagonal of the Minkowski metric (+1, -1, -1, -1): (4,) float64."""
    return torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64, device=device)


def dirac_matrices(device: torch.device | str = "cpu") -> Tensor:
    """gamma^mu in the chiral representation: (4, 4, 4) complex128, index [mu, row, column]."""
    sigma = torch.zeros(4, 2, 2, dtype=torch.complex128, device=device)
    sigma[0] = torch.eye(2, dtype=torch.complex128, device=device)
    sigma[1, 0, 1] = sigma[1, 1, 0] = 1
    sigma[2, 0, 1], sigma[2, 1, 0] = -1j, 1j
    sigma[3, 0, 0], sigma[3, 1, 1] = 1, -1
    gamma = torch.zeros(4, 4, 4, dtype=torch.complex128, device=device)
    gamma[0, :2, 2:] = gamma[0, 2:, :2] = sigma[0]
    for k in (1, 2, 3):
        gamma[k, :2, 2:] = sigma[k]
        gamma[k, 2:, :2] = -sigma[k]
    return gamma


def gamma5(device: torch.device | str = "cpu") -> Tensor:
    """gamma^5 = i gamma^0 gamma^1 gamma^2 gamma^3 = diag(-1, -1, 1, 1): (4, 4) complex128."""
    diag = torch.tensor([-1.0, -1.0, 1.0, 1.0], dtype=torch.float64, device=device)
    return torch.diag(diag).to(torch.complex128)


def projector(chirality: str, device: torch.device | str = "cpu") -> Tensor:
    """P_L = (1 - gamma^5) / 2 (``"L"``) or P_R = (1 + gamma^5) / 2 (``"R"``): (4, 4) complex128.

    Raises:
        InputError: a chirality other than ``"L"`` or ``"R"``.
    """
    if chirality not in ("L", "R"):
        raise InputError(f"chirality must be 'L' or 'R', got {chirality!r}")
    diag = [1.0, 1.0, 0.0, 0.0] if chirality == "L" else [0.0, 0.0, 1.0, 1.0]
    return torch.diag(torch.tensor(diag, dtype=torch.float64, device=device)).to(torch.complex128)


def lower_index(a: Tensor) -> Tensor:
    """a_mu = g_{mu nu} a^nu: (..., 4) -> (..., 4) (same dtype)."""
    return a * metric(a.device).to(a.dtype)


def sigma_dot(a: Tensor) -> Tensor:
    """a.sigma = a_mu sigma^mu = a^0 - a-vec.sigma-vec: (..., 4) -> (..., 2, 2) complex128.

    The upper-right 2 x 2 block of a-slash in the chiral representation.
    """
    a = a.to(torch.complex128)
    a0, a1, a2, a3 = a.unbind(-1)
    rows = ((a0 - a3, -a1 + 1j * a2), (-a1 - 1j * a2, a0 + a3))
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def sigma_bar_dot(a: Tensor) -> Tensor:
    """a.sigma-bar = a_mu sigma-bar^mu = a^0 + a-vec.sigma-vec: (..., 4) -> (..., 2, 2) complex128.

    The lower-left 2 x 2 block of a-slash in the chiral representation.
    """
    a = a.to(torch.complex128)
    a0, a1, a2, a3 = a.unbind(-1)
    rows = ((a0 + a3, a1 - 1j * a2), (a1 + 1j * a2, a0 - a3))
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def slash(a: Tensor) -> Tensor:
    """a-slash = gamma^mu a_mu: (..., 4) real or complex -> (..., 4, 4) complex128.

    In the chiral representation a-slash = [[0, a.sigma], [a.sigma-bar, 0]]
    (:func:`sigma_dot`, :func:`sigma_bar_dot`); built blockwise.
    """
    upper, lower = sigma_dot(a), sigma_bar_dot(a)
    zero = torch.zeros_like(upper)
    return torch.cat((torch.cat((zero, upper), -1), torch.cat((lower, zero), -1)), -2)


# ------------------------------------------------------------------ checks
def _check_momenta(p: Tensor, name: str = "p") -> None:
    if not isinstance(p, Tensor) or p.ndim < 1 or p.shape[-1] != 4:
        shape = tuple(p.shape) if isinstance(p, Tensor) else type(p).__name__
        raise InputError(f"{name} must be four-momenta of shape (..., 4) = (E, px, py, pz), "
                         f"got {shape}")  # fmt: skip
    if p.dtype != torch.float64:
        raise InputError(f"{name} must be float64, got {p.dtype}: convert with p.double()")


def _check_helicity(helicity: int, allowed: tuple[int, ...]) -> None:
    if helicity not in allowed:
        raise InputError(f"helicity must be one of {allowed}, got {helicity!r}")


def _check_mass(mass: float) -> None:
    if not (math.isfinite(mass) and mass >= 0):
        raise InputError(f"mass must be finite and >= 0, got {mass}")


# ------------------------------------------------------------------ fermions
def _chi(p: Tensor, helicity: int) -> Tensor:
    """Two-component helicity eigenstate chi_lambda(p): (..., 4) -> (..., 2) complex128.

    chi_+ = (|p| + pz, px + i py) / N, chi_- = (-px + i py, |p| + pz) / N with
    N = sqrt(2 |p| (|p| + pz)); for p along -z (or at rest) chi_+ = (0, 1), chi_- = (-1, 0).
    """
    pvec = p[..., 1:]
    pp = torch.linalg.vector_norm(pvec, dim=-1)
    ppz = pp + p[..., 3]
    regular = ppz > 1e-12 * p[..., 0].abs().clamp_min(1e-300)
    safe = torch.where(regular, 2 * pp * ppz, torch.ones_like(pp))
    norm = torch.rsqrt(safe)
    px = torch.complex(p[..., 1], torch.zeros_like(pp))
    ipy = torch.complex(torch.zeros_like(pp), p[..., 2])
    ppz_c = torch.complex(ppz, torch.zeros_like(pp))
    if helicity == 1:
        c0, c1 = ppz_c * norm, (px + ipy) * norm
        s0, s1 = 0.0, 1.0
    else:
        c0, c1 = (-px + ipy) * norm, ppz_c * norm
        s0, s1 = -1.0, 0.0
    c0 = torch.where(regular, c0, torch.full_like(c0, s0))
    c1 = torch.where(regular, c1, torch.full_like(c1, s1))
    return torch.stack((c0, c1), dim=-1)


def _omegas(p: Tensor, mass: float) -> tuple[Tensor, Tensor]:
    """(w_+, w_-) = (sqrt(E + |p|), sqrt(E - |p|)), w_- = m / w_+ (0 if massless): (...,) each."""
    pp = torch.linalg.vector_norm(p[..., 1:], dim=-1)
    w_plus = torch.sqrt(p[..., 0] + pp)
    w_minus = mass / w_plus if mass > 0 else torch.zeros_like(w_plus)
    return w_plus, w_minus


def spinor_u(p: Tensor, mass: float, helicity: int) -> Tensor:
    """Incoming fermion u(p, lambda): momenta (..., 4), helicity -1 or +1 -> (..., 4) complex128.

    Args:
        p: on-shell momenta (..., 4) (E, px, py, pz), float64.
        mass: the fermion's mass in GeV (0 for massless).
        helicity: lambda = -1 or +1 (twice the helicity).
    """
    _check_momenta(p)
    _check_mass(mass)
    _check_helicity(helicity, (-1, 1))
    w_plus, w_minus = _omegas(p, mass)
    chi = _chi(p, helicity)
    upper, lower = (w_minus, w_plus) if helicity == 1 else (w_plus, w_minus)
    return torch.cat((upper[..., None] * chi, lower[..., None] * chi), dim=-1)


def spinor_v(p: Tensor, mass: float, helicity: int) -> Tensor:
    """Outgoing antifermion v(p, lambda): momenta (..., 4), helicity -1 or +1 -> (..., 4) complex.

    v(p, lambda) = (-lambda w_lambda chi_-lambda, lambda w_-lambda chi_-lambda).
    """
    _check_momenta(p)
    _check_mass(mass)
    _check_helicity(helicity, (-1, 1))
    w_plus, w_minus = _omegas(p, mass)
    chi = _chi(p, -helicity)
    w_same, w_other = (w_plus, w_minus) if helicity == 1 else (w_minus, w_plus)
    lam = float(helicity)
    return torch.cat((-lam * w_same[..., None] * chi, lam * w_other[..., None] * chi), dim=-1)


def _bar(spinor: Tensor) -> Tensor:
    """Dirac adjoint psi^dagger gamma^0 as a row: swap the Weyl halves and conjugate."""
    return torch.cat((spinor[..., 2:], spinor[..., :2]), dim=-1).conj()


def spinor_ubar(p: Tensor, mass: float, helicity: int) -> Tensor:
    """Outgoing fermion ubar(p, lambda) = u^dagger gamma^0 (a row): (..., 4) -> (..., 4) complex."""
    return _bar(spinor_u(p, mass, helicity))


def spinor_vbar(p: Tensor, mass: float, helicity: int) -> Tensor:
    """Incoming antifermion vbar(p, lambda) = v^dagger gamma^0 (a row): (..., 4) -> (..., 4)."""
    return _bar(spinor_v(p, mass, helicity))


# ------------------------------------------------------------------ vectors
def vector_wavefunction(p: Tensor, mass: float, helicity: int, outgoing: bool = True) -> Tensor:
    """Polarisation vector of a spin-1 boson: (..., 4) -> (..., 4) complex128.

    With e1 = (0, cos th cos ph, cos th sin ph, -sin th), e2 = (0, -sin ph, cos ph, 0) and the
    polar and azimuthal angles (th, ph) of p:

        eps(+-1) = (-+ e1 - i e2) / sqrt(2),   eps(0) = (|p|, E p / |p|) / M.

    Args:
        p: on-shell momenta (..., 4), float64.
        mass: M in GeV; 0 for a massless vector (gluon, photon: helicity +-1 only).
        helicity: -1, 0 or +1.
        outgoing: return eps* (an outgoing boson) instead of eps (an incoming one).

    Returns:
        eps^mu (contravariant components), (..., 4) complex128.
    """
    _check_momenta(p)
    _check_helicity(helicity, (-1, 0, 1))
    if not (math.isfinite(mass) and mass >= 0):
        raise InputError(f"a vector's mass must be finite and >= 0, got {mass}")
    if mass == 0 and helicity == 0:
        raise InputError("a massless vector (gluon, photon) has helicities -1 and +1 only; "
                         "helicity 0 needs mass > 0")
    px, py, pz = p[..., 1], p[..., 2], p[..., 3]
    pp = torch.linalg.vector_norm(p[..., 1:], dim=-1)
    zero = torch.zeros_like(pp)
    moving = pp > 0
    safe_pp = torch.where(moving, pp, torch.ones_like(pp))
    if helicity == 0:
        # At rest: the longitudinal axis is z.
        scale = torch.where(moving, p[..., 0] / safe_pp, p[..., 0])
        eps = torch.stack((pp, scale * px, scale * py, torch.where(moving, scale * pz, scale)),
                          dim=-1) / mass  # fmt: skip
        return eps.to(torch.complex128)
    pt = torch.hypot(px, py)
    regular = pt > 1e-12 * pp
    safe_pt = torch.where(regular, pt, torch.ones_like(pt))
    cos_ph = torch.where(regular, px / safe_pt, torch.ones_like(pt))
    sin_ph = torch.where(regular, py / safe_pt, zero)
    # Along the z axis (or at rest): theta = 0 or pi, phi = 0.
    axis = torch.where(pz < 0, -torch.ones_like(pz), torch.ones_like(pz))
    cos_th = torch.where(regular, pz / safe_pp, axis)
    sin_th = torch.where(regular, pt / safe_pp, zero)
    e1 = torch.stack((zero, cos_th * cos_ph, cos_th * sin_ph, -sin_th), dim=-1)
    e2 = torch.stack((zero, -sin_ph, cos_ph, zero), dim=-1)
    eps = torch.complex(-helicity * e1, -e2) / math.sqrt(2)
    return eps.conj() if outgoing else eps


# ------------------------------------------------------------------ vertices, propagators
def chiral_couplings(vector: complex, axial: complex) -> tuple[complex, complex]:
    """(g_L, g_R) of a vertex gamma^mu (v - a gamma^5) = gamma^mu (g_L P_L + g_R P_R).

    g_L = v + a and g_R = v - a (gamma^5 P_L = -P_L); e.g. the Z's
    e (T3 - 2 Q sin^2) / (2 sin cos) and e T3 / (2 sin cos) give e (T3 - Q sin^2) / (sin cos)
    and -e Q sin^2 / (sin cos).
    """
    return vector + axial, vector - axial


def ffv_current(bar: Tensor, spinor: Tensor, g_left: complex, g_right: complex) -> Tensor:
    """Fermion current J^mu = bar gamma^mu (g_L P_L + g_R P_R) spinor: (..., 4) x2 -> (..., 4).

    ``bar`` is a row spinor (ubar or vbar), ``spinor`` a column (u or v); leading dimensions
    broadcast (e.g. (n, 2, 1, 4) and (n, 1, 2, 4) give all helicity pairs, (n, 2, 2, 4)).
    The result has an upper Lorentz index, complex128; computed from the Weyl halves
    (gamma^mu = [[0, sigma^mu], [sigma-bar^mu, 0]]) without 4 x 4 matrices.
    """
    if bar.shape[-1] != 4 or spinor.shape[-1] != 4:
        raise InputError(f"spinors must have shape (..., 4), got {tuple(bar.shape)} and "
                         f"{tuple(spinor.shape)}")  # fmt: skip
    # bar gamma^mu P_L psi = bar[2:] sigma-bar^mu psi[:2],
    # bar gamma^mu P_R psi = bar[:2] sigma^mu psi[2:].
    left = _weyl_current(bar[..., 2:], spinor[..., :2], bar_sigma=True)
    right = _weyl_current(bar[..., :2], spinor[..., 2:], bar_sigma=False)
    return g_left * left + g_right * right


def _weyl_current(a: Tensor, b: Tensor, bar_sigma: bool) -> Tensor:
    """(a sigma^mu b) or (a sigma-bar^mu b) for two-component a (row), b (column): (..., 4)."""
    a0, a1 = a[..., 0], a[..., 1]
    b0, b1 = b[..., 0], b[..., 1]
    j0 = a0 * b0 + a1 * b1
    # sigma^k terms: a sigma^1 b = a0 b1 + a1 b0, a sigma^2 b = -i a0 b1 + i a1 b0,
    # a sigma^3 b = a0 b0 - a1 b1; sigma-bar^k = -sigma^k.
    j1 = a0 * b1 + a1 * b0
    j2 = -1j * (a0 * b1 - a1 * b0)
    j3 = a0 * b0 - a1 * b1
    sign = -1.0 if bar_sigma else 1.0
    return torch.stack((j0, sign * j1, sign * j2, sign * j3), dim=-1)


def fermion_propagator(p: Tensor, mass: float, width: float = 0.0) -> Tensor:
    """Fermion propagator (pslash + m) / (p^2 - m^2 + i m G): (..., 4) -> (..., 4, 4) complex128.

    ``p`` is the momentum along the fermion-number flow (for an antifermion line, minus
    its physical momentum). A fixed width G gives the Breit-Wigner.
    """
    _check_momenta(p)
    p2 = p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(-1)
    denominator = torch.complex(p2 - mass**2, torch.full_like(p2, mass * width))
    eye = torch.eye(4, dtype=torch.complex128, device=p.device)
    return (slash(p) + mass * eye) / denominator[..., None, None]


def vector_propagator(q: Tensor, mass: float, width: float = 0.0) -> Tensor:
    """Vector propagator D^{mu nu}(q): (..., 4) -> (..., 4, 4) complex128, both indices upper.

    Massive (unitary gauge): (-g^{mu nu} + q^mu q^nu / M^2) / (q^2 - M^2 + i M G);
    massless (``mass = 0``, the photon, Feynman gauge): -g^{mu nu} / q^2.
    Contract with lowered indices, e.g. K^nu = J_mu D^{mu nu}.
    """
    _check_momenta(q, "q")
    q2 = q[..., 0] ** 2 - (q[..., 1:] ** 2).sum(-1)
    g = torch.diag(metric(q.device))
    numerator = -g.expand(*q.shape[:-1], 4, 4)
    if mass > 0:
        numerator = numerator + q[..., :, None] * q[..., None, :] / mass**2
    denominator = torch.complex(q2 - mass**2, torch.full_like(q2, mass * width))
    return numerator.to(torch.complex128) / denominator[..., None, None]
