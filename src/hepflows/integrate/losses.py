"""Training losses of neural importance sampling, importance-weighted.

Every loss takes a batch drawn from some sampling density q_s (the flow at an
earlier step, or a buffer of stored samples) and the current flow's
log-density at the same points, so that fresh and buffered samples are
treated alike (MadNIS, 2212.06172 sec. 3):

    f:        (n,) integrand values
    log_qs:   (n,) log-density the points were drawn from (no gradient)
    log_q:    (n,) current flow log-density (with gradient)

All are normalised by the batch estimate of the integral, so their scale does
not depend on the integrand's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import torch
from torch import Tensor

from hepflows.errors import ConfigError

Loss = Callable[[Tensor, Tensor, Tensor], Tensor]


def variance(f: Tensor, log_qs: Tensor, log_q: Tensor) -> Tensor:
    """Variance of the weights f/q (i-flow's Pearson chi^2), up to a constant.

    E_q[(f/q)^2] estimated with samples from q_s: mean(w_s^2 q_s / q) with
    w_s = f / q_s, normalised by the squared integral estimate.
    """
    w = f.abs() / log_qs.exp()
    norm = w.mean().detach().clamp_min(torch.finfo(w.dtype).tiny)
    return ((w / norm) ** 2 * torch.exp(log_qs - log_q)).mean()


def moment(p: int) -> Loss:
    """The p-th moment of the weights, E_q[(|f|/q)^p] = int |f|^p / q^(p-1), as a loss.

    p = 2 is the variance loss; larger p weighs the largest weights more,
    which is what limits unweighting (w_max): as p grows the loss tends to the
    largest weight. Estimated from samples of q_s as mean((|w_s|/I)^p
    (q_s/q)^(p - 1)) and returned as (1/p) log of that (a log-sum-exp, so
    that (q_s/q)^(p - 1) cannot overflow; the gradient is that of the moment
    divided by p times the moment, a softmax-weighted likelihood of the points).
    On Drell-Yan with the Z' (folded, 2e5 + 2e5 calls, seeds 0-2) the max-rule
    unweighting efficiency went 0.61 (p = 3), 0.74 (p = 16), 0.80 (p = 24)
    (benchmarks/drell_yan.py, hepflows.generate.LOSS).

    Args:
        p: the order, >= 2.
    """
    if p < 2:
        raise ConfigError(f"the moment loss needs p >= 2, got {p}")

    def loss(f: Tensor, log_qs: Tensor, log_q: Tensor) -> Tensor:
        if not bool((f != 0).any()):  # no information (e.g. one channel's few points all
            return (log_q * 0).sum()  # outside the cuts): 0, not the NaN of -inf - -inf
        log_w = torch.log(f.abs().clamp_min(torch.finfo(f.dtype).tiny)) - log_qs
        log_w = torch.where(f != 0, log_w, -torch.inf)
        log_norm = (torch.logsumexp(log_w, 0) - math.log(len(f))).detach()
        terms = p * (log_w - log_norm) + (p - 1) * (log_qs - log_q)
        return (torch.logsumexp(terms, 0) - math.log(len(f))) / p

    loss.__name__ = f"moment{p}"
    return loss


def forward_kl(f: Tensor, log_qs: Tensor, log_q: Tensor) -> Tensor:
    """Forward KL(p || q) with p = |f| / I, up to a constant: -E_p[log q]."""
    w = (f.abs() / log_qs.exp()).detach()
    return -(w * log_q).sum() / w.sum().clamp_min(torch.finfo(w.dtype).tiny)


def reverse_kl(f: Tensor, log_qs: Tensor, log_q: Tensor) -> Tensor:
    """Reverse KL(q || p) with a score-function gradient (f need not be differentiable).

    The value is E_q[log q - log |f|] and the gradient
    E_q[(log q - log |f|) grad log q]; points with f = 0 are clipped at the
    smallest positive value of the batch (they pull q down there).
    """
    af = f.abs()
    if bool((af > 0).any()):
        floor = af[af > 0].min()
    else:
        floor = torch.ones((), dtype=f.dtype, device=f.device)
    log_p = torch.log(af.clamp_min(floor * 1e-3))
    ratio = torch.exp(log_q - log_qs)  # 1 on fresh samples, carries the gradient
    diff = (log_q - log_p).detach()
    diff = diff - diff.mean()  # baseline: lowers the gradient variance, no bias
    return (ratio * diff).mean()


def channel_variance(
    f: Tensor, log_qs: Tensor, log_q: Tensor, channel: Tensor, channels: int
) -> Tensor:
    """Stratified multi-channel variance (sum_i sigma_i)^2 / I^2 (MadNIS).

    With n_i proportional to sigma_i (the best allocation) the variance of the
    total is (sum_i sigma_i)^2 / N. ``f`` here is alpha_i(x) f(x) J_i, and the
    channel weights alpha get their gradient through it; sigma_i^2 =
    E_qi[w^2] - I_i^2 with both moments importance-weighted. One channel gives
    the :func:`variance` loss up to a constant.

    Args:
        f: (n,) alpha-weighted integrand values.
        log_qs: (n,) log-density the points were drawn from.
        log_q: (n,) current log-density of each point's channel flow.
        channel: (n,) int64 channel of each point.
        channels: C.

    Returns:
        The scalar loss.
    """
    w = f / log_qs.exp()
    norm = w.abs().mean().detach().clamp_min(torch.finfo(w.dtype).tiny)
    wn = w / norm
    n_i = torch.bincount(channel, minlength=channels).clamp_min(1).to(w.dtype)
    zero = torch.zeros(channels, dtype=w.dtype, device=w.device)
    m1 = zero.index_add(0, channel, wn) / n_i
    m2 = zero.index_add(0, channel, wn**2 * torch.exp(log_qs - log_q)) / n_i
    sigma = (m2 - m1**2).clamp_min(1e-12).sqrt()
    return sigma.sum() ** 2


LOSSES: dict[str, Loss] = {
    "variance": variance,
    "kl": forward_kl,
    "rkl": reverse_kl,
}


def get_loss(name: str) -> Loss:
    """Loss by name: ``variance``, ``kl`` (forward), ``rkl`` (reverse) or ``moment<p>``
    (the p-th moment of the weights, e.g. ``moment3``, ``moment24``; see :func:`moment`)."""
    if name in LOSSES:
        return LOSSES[name]
    match = re.fullmatch(r"moment(\d+)", name)
    if match and int(match[1]) >= 2:
        return moment(int(match[1]))
    raise ConfigError(
        f"unknown loss {name!r}: choose from {sorted(LOSSES)} or moment<p> with p >= 2 "
        "(e.g. moment24)"
    )
