"""A toy lepton detector: Gaussian smearing, a pT/eta-dependent efficiency, acceptance.

The defaults of ``design/inference.md``, kept in one place (:class:`DetectorSettings`):

* momentum resolution sigma(pT) / pT = a / sqrt(pT / GeV) (+) b, a = 0.15,
  b = 0.01 (added in quadrature);
* eta and phi smeared by Gaussians of 0.002 (phi in rad);
* efficiency per lepton eps(pT, eta) = 0.95 (1 - exp(-(pT - 20 GeV) / 10 GeV))
  for pT > 20 GeV and |eta| < 2.5, 0 otherwise (acceptance included),
  evaluated at the *true* lepton: the transfer function factorises as
  p(reco, passed | truth) = eps(truth) T(reco | truth) with both in closed
  form (:meth:`ToyDetector.efficiency`, :meth:`ToyDetector.log_transfer`);
* an event passes when both leptons are detected.

Leptons are massless four-vectors (..., 4) = (E, px, py, pz) in GeV.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
from torch import Tensor

from hepflows.errors import ConfigError, InputError
from hepflows.physics.kinematics import pseudorapidity, pt
from hepflows.random import fresh_seed, generator


@dataclass(frozen=True)
class DetectorSettings:
    """Toy-detector parameters (GeV); defaults of ``design/inference.md``.

    Attributes:
        stochastic: a in sigma(pT) / pT = a / sqrt(pT / GeV) (+) b.
        constant: b, the constant term (added in quadrature).
        eta_sigma: Gaussian smearing of the pseudorapidity.
        phi_sigma: Gaussian smearing of the azimuth (rad).
        plateau: efficiency far above threshold.
        pt_threshold: no lepton below this pT is detected.
        turn_on: pT scale of the efficiency's rise above threshold.
        eta_max: acceptance |eta| < eta_max.
    """

    stochastic: float = 0.15
    constant: float = 0.01
    eta_sigma: float = 0.002
    phi_sigma: float = 0.002
    plateau: float = 0.95
    pt_threshold: float = 20.0
    turn_on: float = 10.0
    eta_max: float = 2.5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"detector setting {f.name} must be a finite number >= 0, "
                                  f"got {value!r}")  # fmt: skip
        if not 0 < self.plateau <= 1:
            raise ConfigError(f"plateau must lie in (0, 1], got {self.plateau}")
        if self.turn_on <= 0 or self.eta_max <= 0:
            raise ConfigError("turn_on and eta_max must be > 0")


@dataclass
class Detected:
    """Output of :meth:`ToyDetector.__call__` for n events.

    Attributes:
        lepton, antilepton: (n, 4) reconstructed four-vectors (smeared even
            for events that fail, so the arrays stay aligned with the truth).
        passed: (n,) bool, both leptons detected.
    """

    lepton: Tensor
    antilepton: Tensor
    passed: Tensor


def pt_eta_phi(p: Tensor) -> Tensor:
    """(..., 4) massless four-vectors -> (..., 3) (pT, eta, phi)."""
    return torch.stack((pt(p), pseudorapidity(p), torch.atan2(p[..., 2], p[..., 1])), dim=-1)


def from_pt_eta_phi(v: Tensor) -> Tensor:
    """(..., 3) (pT, eta, phi) -> (..., 4) massless four-vectors (E, px, py, pz)."""
    p_t, eta, phi = v.unbind(-1)
    pz = p_t * torch.sinh(eta)
    return torch.stack((p_t * torch.cosh(eta), p_t * torch.cos(phi), p_t * torch.sin(phi), pz), -1)


class ToyDetector:
    """Smears two leptons per event and decides whether the event is detected.

    Args:
        settings: :class:`DetectorSettings` (default: the design note's).
        seed: seed of the detector's own generator (``None``: fresh).
        **overrides: any field of the settings, e.g. ``stochastic=0.3``.

    Example:
        >>> det = ToyDetector(seed=1)
        >>> reco = det(lepton, antilepton)        # (n, 4) each, GeV
        >>> reco.passed.float().mean()            # the event efficiency
    """

    def __init__(
        self, settings: DetectorSettings | None = None, seed: int | None = 0, **overrides: Any
    ) -> None:
        unknown = set(overrides) - {f.name for f in fields(DetectorSettings)}
        if unknown:
            raise ConfigError(f"unknown detector settings {sorted(unknown)}: use any of "
                              f"{', '.join(f.name for f in fields(DetectorSettings))}")  # fmt: skip
        self.settings = replace(settings or DetectorSettings(), **overrides)
        self.seed = fresh_seed() if seed is None else int(seed)
        self._gen = generator(self.seed)

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v:g}" for k, v in asdict(self.settings).items())
        return f"ToyDetector({body}, seed={self.seed})"

    # ------------------------------------------------------------ closed forms
    def resolution(self, p_t: Tensor) -> Tensor:
        """Relative momentum resolution sigma(pT) / pT at true pT (...) -> (...)."""
        s = self.settings
        return torch.hypot(s.stochastic / p_t.clamp_min(1e-12).sqrt(), p_t.new_tensor(s.constant))

    def lepton_efficiency(self, p_t: Tensor, eta: Tensor) -> Tensor:
        """Detection probability of one lepton at true (pT, eta), (...) x2 -> (...)."""
        s = self.settings
        rise = -torch.expm1(-(p_t - s.pt_threshold).clamp_min(0) / s.turn_on)
        inside = (p_t > s.pt_threshold) & (eta.abs() < s.eta_max)
        return torch.where(inside, s.plateau * rise, torch.zeros_like(rise))

    def acceptance(self, lepton: Tensor, antilepton: Tensor) -> Tensor:
        """True leptons (n, 4) x2 inside the fiducial region (both can be detected): (n,) bool.

        The region where the efficiency is positive: pT above the threshold and
        |eta| below eta_max for both leptons. Outside it nothing is measured,
        so nothing can be unfolded: unfolding targets this region.
        """
        return self.efficiency(lepton, antilepton) > 0

    def efficiency(self, lepton: Tensor, antilepton: Tensor) -> Tensor:
        """Probability that an event with true leptons (n, 4) x2 is detected: (n,)."""
        a, b = _kinematics(lepton, "lepton"), _kinematics(antilepton, "antilepton")
        return self._efficiency(a, b)

    def _efficiency(self, a: Tensor, b: Tensor) -> Tensor:
        """Event efficiency of two leptons given as (n, 3) (pT, eta, phi)."""
        return self.lepton_efficiency(a[:, 0], a[:, 1]) * self.lepton_efficiency(b[:, 0], b[:, 1])

    def log_transfer(self, reco: Tensor, truth: Tensor) -> Tensor:
        """log T(reco | truth) of one lepton in (pT, eta, phi): (..., 3) x2 -> (...).

        The density of the smeared (pT, eta, phi) given the true ones: a
        product of Gaussians, with the phi difference wrapped into (-pi, pi].
        """
        s = self.settings
        sig = torch.stack((truth[..., 0] * self.resolution(truth[..., 0]),
                           truth.new_full(truth.shape[:-1], s.eta_sigma),
                           truth.new_full(truth.shape[:-1], s.phi_sigma)), -1)  # fmt: skip
        d = reco - truth
        d = torch.cat(
            (d[..., :2], torch.remainder(d[..., 2:] + math.pi, 2 * math.pi) - math.pi), -1
        )
        return (-0.5 * (d / sig) ** 2 - sig.log() - 0.5 * math.log(2 * math.pi)).sum(-1)

    # ------------------------------------------------------------ simulation
    def smear(self, p: Tensor) -> Tensor:
        """Smeared copies of massless leptons (n, 4) -> (n, 4) (this detector's generator)."""
        return self._smear(_kinematics(p, "lepton"))

    def _smear(self, v: Tensor) -> Tensor:
        """Smeared leptons (n, 4) from their true (n, 3) (pT, eta, phi)."""
        s = self.settings
        z = torch.randn(v.shape, generator=self._gen, dtype=v.dtype)
        sig_pt = v[..., 0] * self.resolution(v[..., 0])
        # |.|: a pT fluctuating below 0 (probability < 1e-100 at the default
        # resolutions, which stay under 4 % above 20 GeV) is reflected, not lost.
        p_t = (v[..., 0] + sig_pt * z[..., 0]).abs()
        eta = v[..., 1] + s.eta_sigma * z[..., 1]
        phi = torch.remainder(v[..., 2] + s.phi_sigma * z[..., 2] + math.pi, 2 * math.pi) - math.pi
        return from_pt_eta_phi(torch.stack((p_t, eta, phi), -1))

    def __call__(self, lepton: Tensor, antilepton: Tensor) -> Detected:
        """Detect n events of true leptons (n, 4) x2 (GeV): smeared leptons and pass flags."""
        if lepton.shape != antilepton.shape:
            raise InputError(f"lepton {tuple(lepton.shape)} and antilepton "
                             f"{tuple(antilepton.shape)} differ in shape")  # fmt: skip
        a, b = _kinematics(lepton, "lepton"), _kinematics(antilepton, "antilepton")
        eff = self._efficiency(a, b)
        u = torch.rand(eff.shape, generator=self._gen, dtype=eff.dtype)
        return Detected(self._smear(a), self._smear(b), u < eff)


def _kinematics(p: Tensor, name: str) -> Tensor:
    """Checked (n, 4) massless leptons -> (n, 3) (pT, eta, phi)."""
    return pt_eta_phi(_checked(p, name))


def _checked(p: Tensor, name: str) -> Tensor:
    if p.ndim != 2 or p.shape[-1] != 4:
        raise InputError(f"{name} must be (n, 4) four-vectors (E, px, py, pz) in GeV, "
                         f"got shape {tuple(p.shape)}")  # fmt: skip
    if not bool(torch.isfinite(p).all()):
        raise InputError(f"{name} has NaN or infinite components")
    if bool((torch.hypot(p[:, 1], p[:, 2]) <= 0).any()):
        raise InputError(f"{name} has a particle along the beam (pT = 0): eta is undefined")
    return p
