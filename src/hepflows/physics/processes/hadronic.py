"""Pieces every hadron-collider process shares: the (tau, y) map of the two partons'
momentum fractions, two-body decays for sequential phase space, parton densities and
alpha_s at an event's scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from hepflows.physics.kinematics import boost

__all__ = ["parton_densities", "tau_y_map", "two_body"]


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
    m2_parent = (parent[:, 0] ** 2 - (parent[:, 1:] ** 2).sum(-1)).clamp_min(0)
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


def parton_densities(pdf: object, pids: Sequence[int], x: Tensor, mu2: Tensor
                     ) -> dict[int, Tensor]:
    """f_i(x, mu^2) = xf / x per parton id, {pid: (N,)}, clipped at 0.

    The fits' grids dip below zero at large x for some flavours (NNPDF: ~1e-7 of a
    dijet sigma); clipped so that an integrand is a density (unweighting needs it).
    """
    values = (pdf.xfxQ2(list(pids), x, mu2) / x).clamp_min(0)
    return dict(zip(pids, values, strict=True))
