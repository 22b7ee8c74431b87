"""Unweighting: turn weighted samples into events of (nearly) equal weight.

A point with weight w is kept with probability min(|w| / w_max, 1). The
efficiency is <|w|> / w_max. w_max is fragile if taken as the maximum of a
sample (one outlier decides), so the default rule takes a high quantile of
|w| and keeps the rare overweight events with weight |w| / w_max > 1
(partial unweighting, MadNIS / 2001.10028); the overweight fraction is
reported. Signed integrands give events of weight -1 where w < 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from hepflows.errors import ConfigError, InputError

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


@dataclass
class TwoStageResult:
    """Events of :func:`two_stage_unweight` and what they cost.

    ``x`` (m, d) accepted points with ``weights`` (m,) (1, or the overweight of a point
    whose weight exceeded a stage's reference); ``exact_calls`` evaluations of the exact
    integrand (the first stage's survivors), ``surrogate_calls`` of the surrogate.
    """

    x: Tensor
    weights: Tensor
    exact_calls: int
    surrogate_calls: int
    efficiency_surrogate: float
    efficiency_correction: float
    overweight_fraction: float

    @property
    def exact_calls_per_event(self) -> float:
        """Exact evaluations per accepted event."""
        return self.exact_calls / max(len(self.x), 1)


def two_stage_unweight(
    x: Tensor,
    log_q: Tensor,
    surrogate: Callable[[Tensor], Tensor],
    exact: Callable[[Tensor], Tensor],
    rule: str = "quantile",
    quantile: float = 0.999,
    generator: torch.Generator | None = None,
) -> TwoStageResult:
    """Unweight on a surrogate first, then correct with the exact integrand on the survivors.

    Stage 1 keeps x with probability min(1, w_s / w_s,max), w_s = f_s(x) / q(x); stage 2
    evaluates the exact f only there and keeps with min(1, r / r_max), r = f / f_s. The
    kept events follow f exactly: the product of the two probabilities is proportional to
    f / q wherever it is below 1, and the rare events above a reference keep the excess
    as their weight (max(1, w_s / w_s,max) * max(1, r / r_max)). Surrogate
    unweighting as in Danziger, Janssen, Schumann, Siegert (2109.11964).

    Args:
        x: (n, d) points drawn from the density q.
        log_q: (n,) log q(x).
        surrogate: points (k, d) -> (k,) surrogate values f_s >= 0 (cheap).
        exact: points (k, d) -> (k,) exact values f >= 0 (called once, on the survivors).
        rule, quantile: how each stage's reference is chosen (:func:`choose_wmax`).
        generator: the acceptance draws' stream.

    Returns:
        :class:`TwoStageResult`.
    """
    if x.ndim != 2 or log_q.shape != (len(x),):
        raise InputError(f"need points (n, d) and log q (n,), got {tuple(x.shape)} and "
                         f"{tuple(log_q.shape)}")  # fmt: skip
    fs = surrogate(x).to(torch.float64)
    if fs.shape != (len(x),) or not bool(torch.isfinite(fs).all()) or bool((fs < 0).any()):
        raise InputError("the surrogate must return (n,) finite values >= 0")
    ws = fs * torch.exp(-log_q.to(torch.float64))
    ws_max = choose_wmax(ws, rule, quantile)
    a = ws / ws_max
    first = torch.rand(len(x), generator=generator, dtype=torch.float64, device=x.device) < a
    f = exact(x[first]).to(torch.float64)
    if f.shape != (int(first.sum()),) or not bool(torch.isfinite(f).all()) or bool((f < 0).any()):
        raise InputError("the exact integrand must return (k,) finite values >= 0 "
                         "(signed integrands: unweight |f| and keep the sign)")  # fmt: skip
    r = f / fs[first]
    r_max = choose_wmax(r, rule, quantile) if bool((r > 0).any()) else 1.0
    b = r / r_max
    second = torch.rand(len(r), generator=generator, dtype=torch.float64, device=x.device) < b
    weights = (a[first].clamp_min(1) * b.clamp_min(1))[second]
    return TwoStageResult(x=x[first][second], weights=weights, exact_calls=int(first.sum()),
                          surrogate_calls=len(x), efficiency_surrogate=float(ws.mean()) / ws_max,
                          efficiency_correction=float(second.float().mean()) if len(r) else 0.0,
                          overweight_fraction=float((weights > 1).double().mean())
                          if len(weights) else 0.0)  # fmt: skip
