"""Annealed importance sampling (Neal 2001, arXiv:physics/9803008) with HMC transitions.

Start from n points of a base density pi_0 (drawn exactly from it), walk them
through pi_b proportional to pi_0^(1 - b) pi_1^b for b_1 < ... < b_{K-1}, moving
each with an HMC transition that leaves pi_{b_k} invariant, and accumulate

    log w = sum_k (b_k - b_{k-1}) (log pi_1 - log pi_0)(z_{k-1}),

so that E[w] = Z_1 / Z_0 (unbiased) and (z_K, w) is an importance sample of
pi_1. Both densities may be unnormalised; a single function returns both
with their gradients at once (FAB evaluates the flow and the target together).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from hepflows.errors import ConfigError
from hepflows.integrate.hmc import HMCState, adapt_step_size, hmc_step

#: z (n, d) -> (log pi_0, grad log pi_0, log pi_1, grad log pi_1): (n,), (n, d), (n,), (n, d).
BaseAndTarget = Callable[[Tensor], tuple[Tensor, Tensor, Tensor, Tensor]]


@dataclass
class AISResult:
    """Output of :func:`annealed_importance_sampling`.

    Attributes:
        z: (n, d) final points.
        log_w: (n,) AIS log-weights, log Z_1/Z_0 estimated by logmeanexp(log_w).
        log_base: (n,) log pi_0 at the final points.
        log_target: (n,) log pi_1 at the final points.
        log_ratio_start: (n,) log pi_1 - log pi_0 at the starting points (a plain
            importance sample of pi_1 from pi_0, for free).
        accept: mean HMC acceptance at each intermediate distribution (K - 1 floats).
    """

    z: Tensor
    log_w: Tensor
    log_base: Tensor
    log_target: Tensor
    log_ratio_start: Tensor
    accept: list[float] = field(default_factory=list)


def linear_betas(intermediate: int) -> Tensor:
    """b_0 = 0 < b_1 < ... < b_K = 1 evenly spaced, K = intermediate + 1: (K + 1,) float64."""
    if intermediate < 0:
        raise ConfigError(f"intermediate must be >= 0, got {intermediate}")
    return torch.linspace(0.0, 1.0, intermediate + 2, dtype=torch.float64, device="cpu")


def annealed_importance_sampling(
    z0: Tensor,
    densities: BaseAndTarget,
    betas: Tensor,
    step_sizes: list[float],
    leapfrog: int = 5,
    generator: torch.Generator | None = None,
    adapt: bool = True,
    target_accept: float = 0.65,
) -> AISResult:
    """Anneal points z0 (exact draws of pi_0) towards pi_1.

    Args:
        z0: (n, d) points drawn from pi_0.
        densities: the joint evaluation of both log-densities and gradients.
        betas: (K + 1,) annealing schedule from 0 to 1.
        step_sizes: K - 1 HMC step sizes, one per intermediate distribution;
            updated in place towards ``target_accept`` when ``adapt``.
        leapfrog: leapfrog steps per HMC move.
        generator: random source.
        adapt: adapt the step sizes after their move.
        target_accept: target mean acceptance probability.

    Returns:
        The :class:`AISResult`.
    """
    n_inter = len(betas) - 2
    if len(step_sizes) != n_inter:
        raise ConfigError(
            f"need {n_inter} step sizes (one per intermediate), got {len(step_sizes)}"
        )
    lb, gb, lt, gt = densities(z0)
    ratio0 = lt - lb
    z = z0
    log_w = torch.zeros(len(z0), dtype=z0.dtype, device=z0.device)
    accepts = []
    for k in range(1, len(betas)):
        db = float(betas[k] - betas[k - 1])
        log_w = log_w + db * (lt - lb)
        if k == len(betas) - 1:
            break
        b = float(betas[k])

        def annealed(zz: Tensor, b: float = b) -> tuple[Tensor, Tensor, Tensor]:
            lb_, gb_, lt_, gt_ = densities(zz)
            # each density and gradient rides along: the next distribution mixes them anew
            return (1 - b) * lb_ + b * lt_, (1 - b) * gb_ + b * gt_, _pack(lb_, gb_, lt_, gt_)

        state = HMCState(z, (1 - b) * lb + b * lt, (1 - b) * gb + b * gt, _pack(lb, gb, lt, gt))
        state, acc = hmc_step(state, annealed, step_sizes[k - 1], leapfrog, generator)
        z = state.z
        lb, gb, lt, gt = _unpack(state.extra, z.shape[1])
        mean_acc = float(acc.mean())
        accepts.append(mean_acc)
        if adapt:
            step_sizes[k - 1] = adapt_step_size(step_sizes[k - 1], mean_acc, target_accept)
    return AISResult(z, log_w, lb, lt, ratio0, accepts)


def _pack(lb: Tensor, gb: Tensor, lt: Tensor, gt: Tensor) -> Tensor:
    return torch.cat((lb[:, None], gb, lt[:, None], gt), 1)


def _unpack(extra: Tensor, d: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return extra[:, 0], extra[:, 1 : d + 1], extra[:, d + 1], extra[:, d + 2 :]
