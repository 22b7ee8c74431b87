"""How good a sampler q is for a density p: ESS on q's draws, forward ESS on p's, log Z.

The ESS of weights w = p~/q on draws of q (what an importance sampler
delivers) cannot see the modes q misses: no draw lands there. Where exact
draws of p exist (:mod:`hepflows.integrate.targets`), the *forward* ESS is
measured on them and falls when q drops a mode (Midgley et al.,
arXiv:2208.01893, their "ESS over p").
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _finite_log(log_w: Tensor) -> Tensor:
    """float64 log-weights with NaN and +inf mapped to -inf (weight 0)."""
    return torch.nan_to_num(log_w.to(torch.float64), nan=-math.inf, posinf=-math.inf,
                            neginf=-math.inf)  # fmt: skip


def normalised_ess(log_w: Tensor) -> float:
    """(sum w)^2 / (n sum w^2) of (n,) log-weights on draws of q (non-finite entries count
    as w = 0); 1 for q = p."""
    lw = _finite_log(log_w)
    if not bool(torch.isfinite(lw).any()):
        return 0.0
    return math.exp(2 * torch.logsumexp(lw, 0).item() - torch.logsumexp(2 * lw, 0).item()) / len(lw)


def forward_ess(log_p: Tensor, log_q: Tensor) -> float:
    """Forward ESS / N from (n,) log p~ and log q at exact draws of p: 1 / (E_p[w] E_p[1 / w])
    with w = p~ / q.

    E_p[1 / w] = 1 / Z estimates the normalisation, so p~ may be unnormalised.
    By Cauchy-Schwarz the value lies in (0, 1], and is 1 only for q = p. A
    mode q misses (q tiny where p has mass) makes E_p[w] large: the value
    falls, where the ESS on q's own draws would not notice. 0 if q vanishes
    at some draw of p.
    """
    lw = log_p.to(torch.float64) - log_q.to(torch.float64)
    if bool(torch.isnan(lw).any()) or bool((lw == math.inf).any()):
        return 0.0
    n = math.log(len(lw))
    log_mean_w = torch.logsumexp(lw, 0).item() - n
    log_mean_inv = torch.logsumexp(-lw, 0).item() - n
    return math.exp(-(log_mean_w + log_mean_inv))


def log_z_estimate(log_w: Tensor) -> float:
    """log of the importance estimate of Z = mean w from (n,) log-weights on draws of q."""
    lw = _finite_log(log_w)
    return torch.logsumexp(lw, 0).item() - math.log(len(lw))
