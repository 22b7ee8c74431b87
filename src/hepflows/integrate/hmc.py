"""Hamiltonian Monte Carlo transitions (Neal 2011, arXiv:1206.1901), batched in torch.

One :func:`hmc_step` moves n independent chains on R^d: draw a Gaussian
momentum, integrate Hamilton's equations with ``leapfrog`` leapfrog steps of
size ``step_size``, accept with probability min(1, exp(H_old - H_new)). The
move leaves exp(log_prob) invariant for any step size. Non-finite energies
(a proposal outside the support) are rejected. :func:`adapt_step_size`
nudges the step size towards a target acceptance rate between moves (as FAB
does; 0.65 is the usual target for HMC).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

#: z (n, d) -> (log pi(z) (n,), grad log pi(z) (n, d)), no autograd graph kept.
LogProbGrad = Callable[[Tensor], tuple[Tensor, Tensor]]


@dataclass
class HMCState:
    """Positions of n chains with their log-density and its gradient.

    Attributes:
        z: (n, d) positions.
        log_prob: (n,) log pi(z).
        grad: (n, d) grad log pi(z).
        extra: (n, k) other per-point values the density function returns with
            each evaluation (they move with accepted proposals), or ``None``.
    """

    z: Tensor
    log_prob: Tensor
    grad: Tensor
    extra: Tensor | None = None


def hmc_step(
    state: HMCState,
    log_prob_grad: Callable[[Tensor], tuple[Tensor, Tensor, Tensor | None]],
    step_size: float,
    leapfrog: int,
    generator: torch.Generator | None = None,
) -> tuple[HMCState, Tensor]:
    """One HMC move of every chain (identity mass matrix).

    Args:
        state: current positions with log pi and its gradient.
        log_prob_grad: z (n, d) -> (log pi (n,), grad (n, d), extra (n, k) or None).
        step_size: leapfrog step size epsilon > 0.
        leapfrog: number of leapfrog steps L >= 1 (L evaluations of log_prob_grad).
        generator: random source.

    Returns:
        ``(new_state, accept)``: the state after the move and the (n,) acceptance
        probabilities min(1, exp(-dH)) (0 for non-finite proposals).
    """
    z, g = state.z, state.grad
    p = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
    h0 = -state.log_prob + 0.5 * (p * p).sum(1)
    p = p + 0.5 * step_size * g
    lp, extra = state.log_prob, state.extra
    for k in range(leapfrog):
        z = z + step_size * p
        lp, g, extra = log_prob_grad(z)
        g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
        p = p + (step_size if k < leapfrog - 1 else 0.5 * step_size) * g
    h1 = -lp + 0.5 * (p * p).sum(1)
    log_accept = torch.nan_to_num(h0 - h1, nan=-math.inf).clamp_max(0.0)
    accept = torch.exp(log_accept)
    take = torch.rand(len(z), generator=generator, dtype=z.dtype, device=z.device) < accept
    new = HMCState(
        z=torch.where(take[:, None], z, state.z),
        log_prob=torch.where(take, lp, state.log_prob),
        grad=torch.where(take[:, None], g, state.grad),
        extra=None if extra is None else torch.where(take[:, None], extra, state.extra),
    )
    return new, accept


def adapt_step_size(
    step_size: float, accept: float, target: float = 0.65, rate: float = 0.1
) -> float:
    """Multiplicative step-size update: exp(rate (accept - target)) times the old step."""
    if not math.isfinite(accept):
        return step_size * 0.5
    return step_size * math.exp(rate * (accept - target))
