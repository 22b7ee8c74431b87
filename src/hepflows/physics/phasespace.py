"""Phase space of 2 -> 2 massless scattering in hadron collisions, from the unit cube.

Variables (u_0, u_1, u_2, u_3) in [0, 1]^4 -> partonic invariant mass squared
s_hat, pair rapidity y, lepton polar angle cos(theta) and azimuth phi in the
partonic frame:

* s_hat = s_min (s_max / s_min)^u_0 (the 1/s_hat mapping; the photon's channel),
* y = (2 u_1 - 1) y_max with y_max = -ln(tau) / 2, tau = s_hat / s,
* cos(theta) = 2 u_2 - 1, phi = 2 pi u_3;

x_1 = sqrt(tau) e^y, x_2 = sqrt(tau) e^-y. The Jacobian returned is
dx_1 dx_2 dcos(theta) d(phi / 2 pi) / du = (s_hat L / s)(2 y_max) 2 with
L = ln(s_max / s_min), so that sigma = int du jac sum f f dsigma_hat/dcos(theta).

Channels remap u_0 (:func:`s_hat_channel`): a Breit-Wigner in s_hat for a
Z or Z', a power law s_hat^-nu for the photon, with exact Jacobians (tested
against numerical ones) and inverses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from hepflows.errors import ConfigError
from hepflows.integrate.channels import Channel
from hepflows.physics.kinematics import boost, boost_z, four_vector, mass2


# ----------------------------------------------------------------- s_hat maps
def log_s_map(r: Tensor, s_min: float, s_max: float) -> tuple[Tensor, Tensor]:
    """s = s_min (s_max/s_min)^r: (n,) r in [0, 1] -> (n,) s and ds/dr = s ln(s_max/s_min)."""
    lg = math.log(s_max / s_min)
    s = s_min * torch.exp(r * lg)
    return s, s * lg


def log_s_inverse(s: Tensor, s_min: float, s_max: float) -> Tensor:
    """Inverse of :func:`log_s_map`: (n,) s -> (n,) r."""
    return torch.log(s / s_min) / math.log(s_max / s_min)


def power_s_map(r: Tensor, nu: float, s_min: float, s_max: float) -> tuple[Tensor, Tensor]:
    """Density proportional to s^-nu on [s_min, s_max] (``nu = 1`` is :func:`log_s_map`).

    The massless-propagator mapping of event generators: with ``nu = 2``, the
    1/s_hat^2 of a squared photon propagator is flat in r.

    Args:
        r: (n,) in [0, 1].
        nu: the power (> 0).
        s_min, s_max: range of s.

    Returns:
        ``(s, ds/dr)``, both (n,).
    """
    if abs(nu - 1) < 1e-12:
        return log_s_map(r, s_min, s_max)
    k = 1 - nu
    a, b = s_min**k, s_max**k
    s = (a + r * (b - a)) ** (1 / k)
    s = s.clamp(s_min, s_max)
    return s, (b - a) / k * s**nu


def power_s_inverse(s: Tensor, nu: float, s_min: float, s_max: float) -> Tensor:
    """Inverse of :func:`power_s_map`: (n,) s -> (n,) r."""
    if abs(nu - 1) < 1e-12:
        return log_s_inverse(s, s_min, s_max)
    k = 1 - nu
    a, b = s_min**k, s_max**k
    return (s**k - a) / (b - a)


def _bw_angles(mass: float, width: float, s_min: float, s_max: float) -> tuple[float, float]:
    mg = mass * width
    return math.atan((s_min - mass**2) / mg), math.atan((s_max - mass**2) / mg)


def breit_wigner_map(
    r: Tensor, mass: float, width: float, s_min: float, s_max: float
) -> tuple[Tensor, Tensor]:
    """Breit-Wigner s = M^2 + M G tan(a0 + r (a1 - a0)), truncated to [s_min, s_max].

    Args:
        r: (n,) in [0, 1].
        mass, width: M and G in GeV.
        s_min, s_max: range of s in GeV^2.

    Returns:
        ``(s, ds/dr)``, both (n,): ds/dr = (a1 - a0) ((s - M^2)^2 + M^2 G^2) / (M G).
    """
    a0, a1 = _bw_angles(mass, width, s_min, s_max)
    mg = mass * width
    s = mass**2 + mg * torch.tan(a0 + r * (a1 - a0))
    s = s.clamp(s_min, s_max)
    return s, (a1 - a0) * ((s - mass**2) ** 2 + mg**2) / mg


def breit_wigner_inverse(s: Tensor, mass: float, width: float, s_min: float, s_max: float):
    """Inverse of :func:`breit_wigner_map`: (n,) s -> (n,) r."""
    a0, a1 = _bw_angles(mass, width, s_min, s_max)
    return (torch.atan((s - mass**2) / (mass * width)) - a0) / (a1 - a0)


def breit_wigner_density(s: Tensor, mass: float, width: float, s_min: float, s_max: float):
    """Normalised density in s of :func:`breit_wigner_map`'s output: (n,) -> (n,)."""
    a0, a1 = _bw_angles(mass, width, s_min, s_max)
    mg = mass * width
    return mg / ((s - mass**2) ** 2 + mg**2) / (a1 - a0)


def _mixture_cdf_density(s: Tensor, mass: float, width: float, s_min: float, s_max: Tensor
                         ) -> tuple[Tensor, Tensor]:
    mg = mass * width
    a0 = math.atan((s_min - mass**2) / mg)
    a1 = torch.atan((s_max - mass**2) / mg)
    log_ratio = torch.log(s_max / s_min)
    cdf = (0.5 * (torch.atan((s - mass**2) / mg) - a0) / (a1 - a0)
           + 0.5 * torch.log(s / s_min) / log_ratio)  # fmt: skip
    density = 0.5 * mg / (((s - mass**2) ** 2 + mg**2) * (a1 - a0)) + 0.5 / (s * log_ratio)
    return cdf, density


def resonance_mixture_map(r: Tensor, mass: float, width: float, s_min: float, s_max: Tensor,
                          iterations: int = 60) -> tuple[Tensor, Tensor]:
    """s from one unit variable with the density of an equal mixture of a Breit-Wigner
    (a Z) and 1/s (a photon) on [s_min, s_max], per event s_max; a bijection (the CDF is
    inverted by bisection in log s), so :func:`resonance_mixture_inverse` undoes it.

    Args:
        r: (N,) in [0, 1].
        mass, width: the resonance (GeV).
        s_min: lower end (GeV^2); s_max: (N,) upper ends (> s_min).
        iterations: bisection steps (60 resolve log s to 1e-18 of its range).

    Returns:
        ``(s, ds/dr)``, (N,) each: ds/dr = 1 / density.
    """
    lo = torch.zeros_like(r)
    hi = torch.ones_like(r)
    log_ratio = torch.log(s_max / s_min)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        cdf, _ = _mixture_cdf_density(s_min * torch.exp(mid * log_ratio), mass, width, s_min,
                                      s_max)  # fmt: skip
        below = cdf < r
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    s = torch.minimum(s_min * torch.exp(0.5 * (lo + hi) * log_ratio), s_max)
    _, density = _mixture_cdf_density(s, mass, width, s_min, s_max)
    return s, 1 / density


def resonance_mixture_inverse(s: Tensor, mass: float, width: float, s_min: float,
                              s_max: Tensor) -> tuple[Tensor, Tensor]:
    """Inverse of :func:`resonance_mixture_map`: (N,) s -> (r, ds/dr), (N,) each."""
    cdf, density = _mixture_cdf_density(s, mass, width, s_min, s_max)
    return cdf, 1 / density


# ------------------------------------------------------------- phase space
@dataclass
class PartonicPoint:
    """A phase-space point of 2 -> 2 in the hadron collision, all (n,).

    Attributes:
        x1, x2: momentum fractions of the partons from beam 1 (+z) and 2 (-z).
        s_hat: partonic invariant mass squared (GeV^2).
        y: rapidity of the partonic frame.
        cos_theta, phi: direction of the first outgoing particle in the partonic
            frame, polar angle to +z.
        jac: dx1 dx2 dcos(theta) d(phi / 2 pi) / du.
    """

    x1: Tensor
    x2: Tensor
    s_hat: Tensor
    y: Tensor
    cos_theta: Tensor
    phi: Tensor
    jac: Tensor


@dataclass(frozen=True)
class LeptonCuts:
    """Cuts on both massless outgoing particles of the 2 -> 2 process.

    A point passes when both have p_T >= ``pt_min`` (GeV) and |eta| <= ``eta_max``.
    For massless particles these follow from the point itself:
    p_T = sqrt(s_hat) / 2 sin(theta), eta = y +- atanh(cos theta).

    Args:
        pt_min: minimum transverse momentum (GeV, >= 0).
        eta_max: maximum |pseudorapidity| (> 0; ``inf`` for none).
    """

    pt_min: float = 0.0
    eta_max: float = math.inf

    def __post_init__(self) -> None:
        if not self.pt_min >= 0:
            raise ConfigError(f"pt_min must be >= 0 GeV, got {self.pt_min}")
        if not self.eta_max > 0:
            raise ConfigError(f"eta_max must be > 0 (inf for no cut), got {self.eta_max}")

    @property
    def active(self) -> bool:
        """Whether any cut is set."""
        return self.pt_min > 0 or math.isfinite(self.eta_max)

    def mask(self, point: PartonicPoint) -> Tensor:
        """(n,) bool: which points pass."""
        keep = torch.ones_like(point.s_hat, dtype=torch.bool)
        if self.pt_min > 0:
            sin = (1 - point.cos_theta**2).clamp_min(0).sqrt()
            keep &= point.s_hat.sqrt() / 2 * sin >= self.pt_min
        if math.isfinite(self.eta_max):
            eta_star = torch.atanh(point.cos_theta.clamp(-1, 1))
            keep &= ((point.y + eta_star).abs() <= self.eta_max) & (
                (point.y - eta_star).abs() <= self.eta_max
            )
        return keep


class HadronicPhaseSpace:
    """Massless 2 -> 2 phase space in a hadron collider, from the unit cube [0, 1]^4.

    Args:
        sqrt_s: collider energy (GeV).
        sqrt_s_hat_min: lower cut on the partonic mass (GeV).
        sqrt_s_hat_max: upper limit (default sqrt_s).
    """

    dims = 4

    def __init__(
        self, sqrt_s: float, sqrt_s_hat_min: float, sqrt_s_hat_max: float | None = None
    ) -> None:
        sqrt_s_hat_max = sqrt_s if sqrt_s_hat_max is None else sqrt_s_hat_max
        if not 0 < sqrt_s_hat_min < sqrt_s_hat_max <= sqrt_s:
            raise ConfigError(
                f"need 0 < sqrt_s_hat_min < sqrt_s_hat_max <= sqrt_s, got {sqrt_s_hat_min}, "
                f"{sqrt_s_hat_max}, {sqrt_s} GeV"
            )
        self.sqrt_s = float(sqrt_s)
        self.s = self.sqrt_s**2
        self.s_min = float(sqrt_s_hat_min) ** 2
        self.s_max = float(sqrt_s_hat_max) ** 2

    def __call__(self, u: Tensor) -> PartonicPoint:
        """(n, 4) unit-cube points -> :class:`PartonicPoint`."""
        s_hat, ds = log_s_map(u[:, 0], self.s_min, self.s_max)
        tau = s_hat / self.s
        y_max = -0.5 * torch.log(tau)
        y = (2 * u[:, 1] - 1) * y_max
        root = torch.sqrt(tau)
        jac = ds / self.s * (2 * y_max) * 2
        return PartonicPoint(
            x1=root * torch.exp(y), x2=root * torch.exp(-y), s_hat=s_hat, y=y,
            cos_theta=2 * u[:, 2] - 1, phi=2 * math.pi * u[:, 3], jac=jac,
        )  # fmt: skip

    def inverse(self, s_hat: Tensor, y: Tensor, cos_theta: Tensor, phi: Tensor) -> Tensor:
        """Unit-cube point (n, 4) of given (n,) s_hat, y, cos(theta), phi."""
        y_max = -0.5 * torch.log(s_hat / self.s)
        return torch.stack(
            (log_s_inverse(s_hat, self.s_min, self.s_max), 0.5 * (y / y_max + 1),
             0.5 * (cos_theta + 1), (phi / (2 * math.pi)) % 1.0), dim=1,
        )  # fmt: skip

    def momenta(self, point: PartonicPoint) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Lab-frame four-momenta (n, 4) of parton 1, parton 2, outgoing 1, outgoing 2."""
        e_beam = 0.5 * self.sqrt_s
        zero = torch.zeros_like(point.x1)
        p1 = four_vector(point.x1 * e_beam, zero, zero, point.x1 * e_beam)
        p2 = four_vector(point.x2 * e_beam, zero, zero, -point.x2 * e_beam)
        half = 0.5 * torch.sqrt(point.s_hat)
        sin = torch.sqrt((1 - point.cos_theta**2).clamp_min(0))
        k = four_vector(half, half * sin * torch.cos(point.phi), half * sin * torch.sin(point.phi),
                        half * point.cos_theta)  # fmt: skip
        k_bar = four_vector(half, -k[:, 1], -k[:, 2], -k[:, 3])
        return p1, p2, boost_z(k, point.y), boost_z(k_bar, point.y)


def s_hat_channel(
    space: HadronicPhaseSpace,
    name: str,
    mass: float | None = None,
    width: float | None = None,
    nu: float = 2.0,
) -> Channel:
    """A channel of :class:`HadronicPhaseSpace` with its own s_hat mapping on u_0.

    ``mass=None`` is the photon channel: s_hat with density s_hat^-nu
    (:func:`power_s_map`; nu = 2 follows the squared massless propagator,
    nu = 1 is the phase space's own 1/s_hat); otherwise a Breit-Wigner of that
    mass and width. Both come with their inverse, so the channel densities can
    be mixed (``NeuralIntegrator(weights="mixture")``). The prior weight is the
    channel's squared propagator, 1/s_hat^2 or 1/|s_hat - M^2 + i M G|^2: the
    classic multi-channel weight |M_i|^2 / sum_j |M_j|^2 that MadNIS starts
    its learned weights from.

    Args:
        space: the phase space (gives s_min, s_max).
        name: channel name.
        mass, width: the resonance (GeV).
        nu: power of the photon channel's s_hat density.
    """
    s_min, s_max = space.s_min, space.s_max
    lg = math.log(s_max / s_min)
    if mass is None:
        if nu <= 0:
            raise ConfigError(f"channel {name}: nu must be > 0, got {nu}")

        def s_map(r: Tensor) -> tuple[Tensor, Tensor]:
            return power_s_map(r, nu, s_min, s_max)

        def s_inverse(s: Tensor) -> Tensor:
            return power_s_inverse(s, nu, s_min, s_max)

        def prior(u: Tensor) -> Tensor:
            return log_s_map(u[:, 0], s_min, s_max)[0] ** -2

    else:
        if width is None or width <= 0:
            raise ConfigError(f"channel {name}: a resonance needs a width > 0, got {width}")
        if mass <= 0:
            raise ConfigError(f"channel {name}: the mass must be > 0, got {mass}")

        def s_map(r: Tensor) -> tuple[Tensor, Tensor]:
            return breit_wigner_map(r, mass, width, s_min, s_max)

        def s_inverse(s: Tensor) -> Tensor:
            return breit_wigner_inverse(s, mass, width, s_min, s_max)

        def prior(u: Tensor) -> Tensor:
            s = log_s_map(u[:, 0], s_min, s_max)[0]
            return 1 / ((s - mass**2) ** 2 + (mass * width) ** 2)

    def mapping(r: Tensor) -> tuple[Tensor, Tensor]:
        s, ds_dr = s_map(r[:, 0])
        u = r.clone()
        u[:, 0] = log_s_inverse(s, s_min, s_max).clamp(0, 1)
        return u, ds_dr / (s * lg)  # du_0/dr = (ds/dr) / (ds/du_0)

    def inverse(u: Tensor) -> tuple[Tensor, Tensor]:
        s = log_s_map(u[:, 0], s_min, s_max)[0]
        r = u.clone()
        r[:, 0] = s_inverse(s).clamp(0, 1)
        return r, s_map(r[:, 0])[1] / (s * lg)

    return Channel(mapping, prior, name, inverse)


def tau_y_map(u_tau: Tensor, u_y: Tensor, tau_min: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(x1, x2, tau, d tau dy / du) from two unit variables, (N,) each.

    tau = x1 x2 = tau_min^(1 - u_tau) (log map), y uniform in [ln sqrt(tau), -ln sqrt(tau)];
    dx1 dx2 = d tau dy.
    """
    log_tau_min = math.log(tau_min)
    tau = torch.exp(log_tau_min * (1 - u_tau))
    y_max = -0.5 * torch.log(tau)
    y = (2 * u_y - 1) * y_max
    root = tau.sqrt()
    return root * y.exp(), root * (-y).exp(), tau, tau * (-log_tau_min) * 2 * y_max


def two_body(parent: Tensor, m1: Tensor, m2: Tensor, u_cos: Tensor, u_phi: Tensor
             ) -> tuple[Tensor, Tensor, Tensor]:
    """Isotropic two-body decay in the parent's rest frame, boosted to the parent's frame.

    Args:
        parent: (N, 4) momenta; its mass M must exceed m1 + m2.
        m1, m2: (N,) daughter masses.
        u_cos, u_phi: (N,) unit variables of the direction of daughter 1.

    Returns:
        ``(p1, p2, phi2)``: (N, 4) each and the two-body phase space per unit cube
        Phi_2 = |p*| / (4 pi M) (int d Omega |p*| / (16 pi^2 M)), (N,).
    """
    m2_parent = mass2(parent).clamp_min(0)
    mass = m2_parent.sqrt()
    lam = ((m2_parent - (m1 + m2) ** 2) * (m2_parent - (m1 - m2) ** 2)).clamp_min(0)
    p_star = lam.sqrt() / (2 * mass)
    cos = 2 * u_cos - 1
    sin = (1 - cos**2).clamp_min(0).sqrt()
    phi = 2 * math.pi * u_phi
    direction = torch.stack((sin * phi.cos(), sin * phi.sin(), cos), dim=-1)
    e1 = (p_star**2 + m1**2).sqrt()
    e2 = (p_star**2 + m2**2).sqrt()
    k1 = torch.cat((e1[:, None], p_star[:, None] * direction), dim=-1)
    k2 = torch.cat((e2[:, None], -p_star[:, None] * direction), dim=-1)
    beta = parent[:, 1:] / parent[:, :1]
    return boost(k1, beta), boost(k2, beta), p_star / (4 * math.pi * mass)
