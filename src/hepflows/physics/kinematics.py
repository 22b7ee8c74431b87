"""Four-vectors as tensors (..., 4) = (E, px, py, pz), in GeV.

Small functions, one quantity each: invariant mass, rapidity, transverse
momentum, pseudorapidity, boosts along z and general boosts, and the lepton
decay angle cos theta* in the pair rest frame.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def four_vector(e: Tensor, px: Tensor, py: Tensor, pz: Tensor) -> Tensor:
    """Stack components (...) into four-vectors (..., 4)."""
    return torch.stack((e, px, py, pz), dim=-1)


def dot(p: Tensor, q: Tensor) -> Tensor:
    """Minkowski product (..., 4) x (..., 4) -> (...), metric (+, -, -, -)."""
    return p[..., 0] * q[..., 0] - (p[..., 1:] * q[..., 1:]).sum(-1)


def mass2(p: Tensor) -> Tensor:
    """Invariant mass squared (..., 4) -> (...)."""
    return dot(p, p)


def mass(p: Tensor) -> Tensor:
    """Invariant mass (..., 4) -> (...), 0 for (numerically) negative m^2."""
    return mass2(p).clamp_min(0).sqrt()


def unit_angles(k: Tensor) -> tuple[Tensor, Tensor]:
    """The unit variables (u_cos, u_phi) of a direction (..., 4) -> two (...): cos theta =
    2 u_cos - 1, phi = 2 pi u_phi (the convention of the two-body decays' sampling)."""
    cos = k[..., 3] / torch.linalg.vector_norm(k[..., 1:], dim=-1)
    return 0.5 * (cos + 1), torch.remainder(torch.atan2(k[..., 2], k[..., 1]) / (2 * math.pi), 1.0)


def pt(p: Tensor) -> Tensor:
    """Transverse momentum (..., 4) -> (...)."""
    return torch.hypot(p[..., 1], p[..., 2])


def rapidity(p: Tensor) -> Tensor:
    """Rapidity 1/2 ln((E + pz) / (E - pz)), (..., 4) -> (...)."""
    return 0.5 * torch.log((p[..., 0] + p[..., 3]) / (p[..., 0] - p[..., 3]))


def pseudorapidity(p: Tensor) -> Tensor:
    """Pseudorapidity -ln tan(theta / 2) = asinh(pz / pT), (..., 4) -> (...)."""
    return torch.asinh(p[..., 3] / pt(p))


def beam_momenta(x1: Tensor, x2: Tensor, sqrt_s: float) -> Tensor:
    """The two incoming partons along +z and -z with momentum fractions (N,) x1, x2 of
    beams of sqrt_s / 2 each: (N, 2, 4)."""
    e = 0.5 * sqrt_s
    zero = torch.zeros_like(x1)
    return torch.stack((four_vector(x1 * e, zero, zero, x1 * e),
                        four_vector(x2 * e, zero, zero, -x2 * e)), dim=1)  # fmt: skip


def boost_z(p: Tensor, y: Tensor) -> Tensor:
    """Boost along +z by rapidity y: (..., 4) and (...) -> (..., 4)."""
    ch, sh = torch.cosh(y), torch.sinh(y)
    e = ch * p[..., 0] + sh * p[..., 3]
    pz = sh * p[..., 0] + ch * p[..., 3]
    return four_vector(e, p[..., 1], p[..., 2], pz)


def boost(p: Tensor, beta: Tensor) -> Tensor:
    """General Lorentz boost by velocity beta: (..., 4) and (..., 3) -> (..., 4).

    A particle at rest (1, 0, 0, 0) goes to gamma (1, beta).
    """
    b2 = (beta * beta).sum(-1, keepdim=True)
    gamma = 1 / torch.sqrt(1 - b2)
    bp = (beta * p[..., 1:]).sum(-1, keepdim=True)
    # (gamma - 1) / b^2 written as gamma^2 / (gamma + 1): finite at beta -> 0.
    coef = gamma**2 / (gamma + 1)
    e = gamma * (p[..., :1] + bp)
    vec = p[..., 1:] + coef * bp * beta + gamma * beta * p[..., :1]
    return torch.cat((e, vec), dim=-1)


def cos_theta_star(lepton: Tensor, antilepton: Tensor) -> Tensor:
    """cos of the lepton's polar angle to +z in the pair rest frame, (..., 4) x2 -> (...).

    The pair is boosted back to rest along its own momentum; at leading order
    (no pair pT) this is the angle to the beam axis of the partonic frame.
    """
    pair = lepton + antilepton
    rest = boost(lepton, -pair[..., 1:] / pair[..., :1])
    return rest[..., 3] / torch.linalg.vector_norm(rest[..., 1:], dim=-1)


def cos_theta_collins_soper(lepton: Tensor, antilepton: Tensor) -> Tensor:
    """cos theta* of the lepton in the Collins-Soper frame, (..., 4) x2 -> (...).

    cos theta_CS = sign(p_z,ll) 2 (l+ a- - l- a+) / (m_ll sqrt(m_ll^2 + pT_ll^2)) with
    p± = (E ± p_z) / sqrt(2) of the lepton l and the antilepton a (Collins and
    Soper, Phys. Rev. D 16 (1977) 2219). The z axis bisects the beams in the
    pair rest frame and points along the pair's longitudinal motion, so at
    leading order (no pair pT) it is :func:`cos_theta_star` times sign(p_z,ll):
    the quark most likely came from the beam the pair moves along.
    """
    pair = lepton + antilepton
    lp, lm = (lepton[..., 0] + lepton[..., 3]), (lepton[..., 0] - lepton[..., 3])
    ap, am = (antilepton[..., 0] + antilepton[..., 3]), (antilepton[..., 0] - antilepton[..., 3])
    m2 = mass2(pair).clamp_min(0)
    value = (lp * am - lm * ap) / torch.sqrt(m2 * (m2 + pt(pair) ** 2))
    return torch.where(pair[..., 3] < 0, -value, value)


def invariant_features(p: Tensor, sqrt_s: float) -> Tensor:
    """Features of a partonic event for regression (amplitude surrogates): (N, k, 4) lab
    momenta, the two incoming first, -> (N, 2 + P) float64.

    log(s_hat / s), the rapidity of the partonic system, and log(2 p_i.p_j / s_hat) for the
    P = k (k - 1) / 2 - 1 pairs other than the two beams (all Lorentz invariants of the
    event but the fixed s_hat normalisation; massless partons).
    """
    s_hat = 2 * dot(p[:, 0], p[:, 1])
    y = rapidity(p[:, 0] + p[:, 1])
    cols = [torch.log(s_hat / sqrt_s**2), y]
    k = p.shape[1]
    for i in range(k):
        for j in range(max(i + 1, 2), k):
            cols.append(torch.log((2 * dot(p[:, i], p[:, j]) / s_hat).clamp_min(1e-300)))
    return torch.stack(cols, 1).double()
