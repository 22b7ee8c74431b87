"""pi(1800)^- -> pi^- pi^+ pi^-: an isobar model in torch (differentiable).

Particles 1 = pi^-, 2 = pi^+, 3 = pi^-; the isobars live in the two pi^+ pi^-
pairs (12) and (23), and the amplitude is Bose-symmetric under 1 <-> 3:

    A = sum_R c_R [F_R(s12; s23, s13) + F_R(s23; s12, s13)],

* S-wave f0(980) and f0(1500) (J^P = 0^+, the pi(1800)'s main 3pi modes):
  F = BW(s_ab), a relativistic Breit-Wigner with constant width;
* P-wave rho(770) (L = 1 between rho and the bachelor): F = BW_rho(s_ab)
  (s_bc - s_ac) (the Zemach spin factor for equal masses), with the
  mass-dependent width Gamma(s) = Gamma0 (q / q0)^3 (m0 / sqrt(s)) B1(q)^2 / B1(q0)^2
  and a Blatt-Weisskopf barrier B1 (radius 1.5 GeV^-1) in the numerator.

|M|^2 = |A|^2 (the parent has spin 0: no angular dependence beyond the
isobars'). Masses and widths from the PDG (2024); the couplings c_R are
choices of this toy (not a fit), set so that the three isobars all show on
the Dalitz plot; change them with :class:`Pi1800Parameters`.
"""

from __future__ import annotations

import cmath
from dataclasses import dataclass

import torch
from torch import Tensor

from hepflows.errors import ConfigError
from hepflows.physics.decays.dalitz import DalitzPlot, breakup_momentum
from hepflows.physics.decays.decay import ThreeBodyDecay

M_PI = 0.13957039


@dataclass(frozen=True)
class Resonance:
    """An isobar: mass and width (GeV), spin 0 or 1, complex coupling."""

    name: str
    mass: float
    width: float
    spin: int
    coupling: complex


@dataclass(frozen=True)
class Pi1800Parameters:
    """The pi(1800) -> 3pi isobar model (GeV).

    Attributes:
        mass: pi(1800) mass (PDG 1.810).
        isobars: the resonances in pi^+ pi^-.
        radius: Blatt-Weisskopf radius of the P-wave barrier (GeV^-1).
    """

    mass: float = 1.810
    isobars: tuple[Resonance, ...] = (
        Resonance("f0(980)", 0.990, 0.070, 0, 1.0 + 0j),
        Resonance("f0(1500)", 1.506, 0.112, 0, cmath.rect(0.8, 1.2)),
        Resonance("rho(770)", 0.7753, 0.1474, 1, cmath.rect(0.9, -2.0)),
    )
    radius: float = 1.5

    def __post_init__(self) -> None:
        for r in self.isobars:
            if not (r.mass > 2 * M_PI and r.width > 0):
                raise ConfigError(
                    f"{r.name}: mass {r.mass} must exceed 2 m_pi = {2 * M_PI:.4f} GeV and "
                    f"width {r.width} must be > 0"
                )
            if r.spin not in (0, 1):
                raise ConfigError(f"{r.name}: spin {r.spin} is not supported (0 or 1)")


def _blatt_weisskopf1(q: Tensor, radius: float) -> Tensor:
    z = (q * radius) ** 2
    return torch.sqrt(2 * z / (1 + z))


def _bw(s: Tensor, r: Resonance, radius: float) -> Tensor:
    """(n,) complex Breit-Wigner of isobar r at s (n,) (with the P-wave barrier for spin 1)."""
    if r.spin == 0:
        return 1.0 / (r.mass**2 - s - 1j * r.mass * r.width)
    q = breakup_momentum(s, M_PI, M_PI)
    q0 = breakup_momentum(torch.tensor(r.mass**2, dtype=s.dtype), M_PI, M_PI)
    b, b0 = _blatt_weisskopf1(q, radius), _blatt_weisskopf1(q0, radius)
    width = r.width * (q / q0) ** 3 * (r.mass / torch.sqrt(s)) * (b0 / b) ** 2
    return b / (r.mass**2 - s - 1j * r.mass * width)


def pi1800_amplitude(
    s12: Tensor, s23: Tensor, s13: Tensor, params: Pi1800Parameters | None = None
) -> Tensor:
    """(n,) complex amplitude A(s12, s23, s13) of pi(1800)^- -> pi^- pi^+ pi^-, Bose-symmetric."""
    params = params or Pi1800Parameters()
    amp = torch.zeros(s12.shape, dtype=torch.complex128 if s12.dtype == torch.float64
                      else torch.complex64)  # fmt: skip
    for r in params.isobars:
        a = _bw(s12, r, params.radius)
        b = _bw(s23, r, params.radius)
        if r.spin == 1:  # rho in (ab) with bachelor c: s_bc - s_ac
            a = a * (s23 - s13)
            b = b * (s12 - s13)
        amp = amp + r.coupling * (a + b)
    return amp


def pi1800(params: Pi1800Parameters | None = None) -> ThreeBodyDecay:
    """pi(1800)^- -> pi^- pi^+ pi^- as a density on the unit square (|M|^2 times the Jacobian).

    Args:
        params: the isobar model (default :class:`Pi1800Parameters`).

    Returns:
        A :class:`ThreeBodyDecay` with s12 = m^2(pi^- pi^+) uniform in u0.
    """
    params = params or Pi1800Parameters()
    dalitz = DalitzPlot(params.mass, M_PI, M_PI, M_PI, names=("pi-", "pi+", "pi-"))

    def intensity(s12: Tensor, s23: Tensor, s13: Tensor) -> Tensor:
        amp = pi1800_amplitude(s12, s23, s13, params)
        return amp.real**2 + amp.imag**2

    return ThreeBodyDecay(dalitz, intensity, "pi(1800) -> 3pi", pdg_ids=(-9010211, -211, 211, -211))
