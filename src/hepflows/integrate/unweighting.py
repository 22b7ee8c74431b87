"""Unweighting: turn weighted samples into events of (nearly) equal weight.

A point with weight w is kept with probability min(|w| / w_max, 1). The
efficiency is <|w|> / w_max. w_max is fragile if taken as the maximum of a
sample (one outlier decides), so the default rule takes a high quantile of
|w| and keeps the rare overweight events with weight |w| / w_max > 1
(partial unweighting, MadNIS / 2001.10028); the overweight fraction is
reported. Signed integrands give events of weight -1 where w < 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hepflows.errors import ConfigError

RULES = ("quantile", "max")


def choose_wmax(w: Tensor, rule: str = "quantile", quantile: float = 0.999) -> float:
    """The reference weight w_max of a weighted sample.

    Args:
        w: (n,) weights.
        rule: ``"quantile"`` (the ``quantile`` of |w|) or ``"max"`` (max |w|).
        quantile: quantile for the ``quantile`` rule, in (0, 1].

    Returns:
        w_max > 0.
    """
    if rule not in RULES:
        raise ConfigError(f"unknown w_max rule {rule!r}: choose from {RULES}")
    if not 0 < quantile <= 1:
        raise ConfigError(f"quantile must lie in (0, 1], got {quantile}")
    aw = w.abs().to(torch.float64)
    aw = aw[aw > 0]
    if len(aw) == 0:
        raise ConfigError("all weights are zero: the integrand vanishes where the flow samples")
    if rule == "max" or quantile == 1:
        return aw.max().item()
    return quantile_of(aw, quantile)


def quantile_of(values: Tensor, quantile: float) -> float:
    """The ``quantile`` of (n,) values, n >= 1 (by sorting: torch.quantile has a size limit)."""
    k = min(int(quantile * len(values)), len(values) - 1)
    return values.sort().values[k].item()


def unweight(
    x: Tensor, w: Tensor, w_max: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Accept-reject a weighted sample.

    Args:
        x: (n, d) points.
        w: (n,) weights.
        w_max: reference weight.
        generator: for reproducible acceptance.

    Returns:
        ``(x_acc, weights)``: (m, d) accepted points and (m,) their event
        weights: sign(w) * max(1, |w| / w_max).
    """
    ratio = w.abs().to(torch.float64) / w_max
    u = torch.rand(len(w), generator=generator, dtype=torch.float64, device=w.device)
    keep = u < ratio
    weights = torch.sign(w[keep]).to(torch.float64) * ratio[keep].clamp_min(1.0)
    return x[keep], weights


def unweight_shuffled(
    x: Tensor, w: Tensor, channel: Tensor, w_max: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Shuffle a weighted batch, then accept-reject it (:func:`unweight`).

    Batches are drawn channel by channel, so a batch cut at its last accepted
    event would favour the first channels: the shuffle removes that order.

    Args:
        x: (n, d) points.
        w: (n,) weights.
        channel: (n,) channel of each point.
        w_max: reference weight.
        generator: the permutation's and the acceptance's stream, in that order.

    Returns:
        ``(x_acc, weights, channels)``: (m, d), (m,) and (m,) of the accepted points.
    """
    order = torch.randperm(len(w), generator=generator, device=w.device)
    xc = torch.cat((x, channel[:, None].to(x.dtype)), 1)[order]
    xa, wa = unweight(xc, w[order], w_max, generator)
    return xa[:, :-1], wa, xa[:, -1].to(torch.int64)
