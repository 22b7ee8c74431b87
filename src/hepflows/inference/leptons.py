"""Lepton variables of the matrix-element method: LO truth and detector level.

At leading order the two leptons of Drell-Yan are back to back in the
transverse plane with a common pT, so the truth has three variables, and the
toy detector (:class:`~hepflows.inference.ToyDetector`) smears each lepton's
pT and eta (phi too, but phi carries no information on the process: it is
dropped, which leaves a constant factor in every likelihood):

============ ====================================== ==========================
variables    names                                  meaning
============ ====================================== ==========================
truth x      ``pt``, ``eta_minus``, ``eta_plus``    common lepton pT (GeV), eta of l-, l+
reco r       ``pt_minus``, ``pt_plus``,             measured pT of l-, l+ (GeV),
             ``eta_minus``, ``eta_plus``            measured eta of l-, l+
============ ====================================== ==========================

With Delta = eta_minus - eta_plus: m = 2 pT cosh(Delta / 2), y = (eta_minus +
eta_plus) / 2, and cos theta = tanh(Delta / 2) (the l- to the +z beam in the
pair frame), so

    d sigma / d(pT, eta_minus, eta_plus) = d sigma / d(m, y, cos theta) / cosh(Delta / 2).

Learned densities see each side relative to the other ("residual" coordinates
of :class:`~hepflows.inference.conditional.ConditionalDensity`): the transfer
function T(r | x) is conditioned on :func:`reco_reference` (x written in reco
variables), the sampling flow q(x | r) on :func:`truth_reference`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hepflows.errors import InputError
from hepflows.inference.detector import ToyDetector, pt_eta_phi

TRUTH = ("pt", "eta_minus", "eta_plus")
RECO = ("pt_minus", "pt_plus", "eta_minus", "eta_plus")
UNITS = {"pt": "GeV", "pt_minus": "GeV", "pt_plus": "GeV", "eta_minus": "", "eta_plus": ""}


def _check(x: Tensor, names: tuple[str, ...], what: str) -> Tensor:
    if x.ndim != 2 or x.shape[1] != len(names):
        raise InputError(f"{what} must be (n, {len(names)}) values of {list(names)}, got "
                         f"{tuple(x.shape)}")  # fmt: skip
    if not bool(torch.isfinite(x).all()):
        raise InputError(f"{what} contain NaN or infinite values")
    return x.to(torch.float64)


def from_mass(m: Tensor, y: Tensor, cos_theta: Tensor) -> Tensor:
    """LO truth (n, 3) (pt, eta_minus, eta_plus) from (n,) m, y, cos theta."""
    half = torch.atanh(cos_theta.clamp(-1 + 1e-15, 1 - 1e-15))
    return torch.stack((m / (2 * torch.cosh(half)), y + half, y - half), -1)


def to_mass(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(m, y, cos theta), each (n,), of LO truth (n, 3)."""
    x = _check(x, TRUTH, "truth")
    half = (x[:, 1] - x[:, 2]) / 2
    return 2 * x[:, 0] * torch.cosh(half), (x[:, 1] + x[:, 2]) / 2, torch.tanh(half)


def log_jacobian(x: Tensor) -> Tensor:
    """log |d(m, y, cos) / d(pt, eta_minus, eta_plus)| at (n, 3) truth: -log cosh(Delta / 2)."""
    half = (x[:, 1] - x[:, 2]).abs() / 2
    return -(half + torch.log1p(torch.exp(-2 * half)) - math.log(2))


def truth_of(lepton: Tensor, antilepton: Tensor) -> Tensor:
    """LO truth (n, 3) of true four-vectors (n, 4) x2 (pt: the l-'s; equal to the l+'s)."""
    a, b = pt_eta_phi(lepton.double()), pt_eta_phi(antilepton.double())
    return torch.stack((a[:, 0], a[:, 1], b[:, 1]), -1)


def reco_of(lepton: Tensor, antilepton: Tensor) -> Tensor:
    """Reco (n, 4) of measured four-vectors (n, 4) x2."""
    a, b = pt_eta_phi(lepton.double()), pt_eta_phi(antilepton.double())
    return torch.stack((a[:, 0], b[:, 0], a[:, 1], b[:, 1]), -1)


def reco_reference(x: Tensor) -> Tensor:
    """Truth (..., 3) written in reco variables (..., 4): (pt, pt, eta_minus, eta_plus)."""
    return torch.stack((x[..., 0], x[..., 0], x[..., 1], x[..., 2]), -1)


def truth_reference(r: Tensor) -> Tensor:
    """Reco (..., 4) written in truth variables (..., 3): (mean pT, eta_minus, eta_plus)."""
    return torch.stack(((r[..., 0] + r[..., 1]) / 2, r[..., 2], r[..., 3]), -1)


def log_transfer(detector: ToyDetector, r: Tensor, x: Tensor) -> Tensor:
    """The toy detector's exact log T(r | x), phi integrated out: (..., 4), (..., 3) -> (...).

    Gaussians in each lepton's pT (width pT sigma(pT)/pT at the true pT) and eta.
    """
    s = detector.settings
    pt = x[..., 0]
    sig_pt = pt * detector.resolution(pt)
    d_pt = torch.stack((r[..., 0] - pt, r[..., 1] - pt), -1) / sig_pt[..., None]
    d_eta = torch.stack((r[..., 2] - x[..., 1], r[..., 3] - x[..., 2]), -1) / s.eta_sigma
    norm = 2 * sig_pt.log() + 2 * math.log(s.eta_sigma) + 4 * 0.5 * math.log(2 * math.pi)
    return -0.5 * ((d_pt**2).sum(-1) + (d_eta**2).sum(-1)) - norm


def efficiency(detector: ToyDetector, x: Tensor) -> Tensor:
    """The toy detector's exact event efficiency at LO truth (..., 3) -> (...)."""
    return detector.lepton_efficiency(x[..., 0], x[..., 1]) * detector.lepton_efficiency(
        x[..., 0], x[..., 2]
    )
