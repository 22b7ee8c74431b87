"""Monotonic rational-quadratic splines (Durkan et al., 1906.04032).

Functional core used by the spline transforms. Shapes follow one layout
throughout: the bin axis is the second-to-last axis and features are the last,

    x:       (*, F)
    knots:   (*, K + 1, F)

so that every operation over bins is vectorised across features (the layout
that keeps the bin axis off the innermost hot loop).

Two forms:

* **bounded**: a bijection of ``[left, right]`` onto ``[bottom, top]`` with all
  ``K + 1`` knot derivatives learned (unit-cube integration, uniform base);
* **unbounded**: a spline on ``[-B, B]`` with identity tails outside and
  boundary derivatives fixed to 1, so that the map is C¹ across the bounds.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

#: Default minimum bin width, bin height and knot derivative.
MIN_BIN_WIDTH = 1e-3
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3


def _positions(unnormalised: Tensor, low: float, high: float, minimum: float) -> Tensor:
    """Knot positions from unconstrained bin sizes.

    Args:
        unnormalised: (*, K, F) unconstrained bin sizes.
        low, high: interval covered by the knots.
        minimum: minimum bin size as a fraction of the interval.

    Returns:
        (*, K + 1, F) increasing knot positions, first exactly ``low`` and last
        exactly ``high``.
    """
    bins = unnormalised.shape[-2]
    if minimum * bins >= 1:
        raise ValueError(f"minimum bin size {minimum} too large for {bins} bins")
    sizes = torch.softmax(unnormalised, dim=-2)
    sizes = minimum + (1 - minimum * bins) * sizes
    inner = torch.cumsum(sizes[..., :-1, :], dim=-2)
    inner = low + (high - low) * inner
    shape = (*inner.shape[:-2], 1, inner.shape[-1])
    return torch.cat((inner.new_full(shape, low), inner, inner.new_full(shape, high)), dim=-2)


def derivative_offset(minimum: float = MIN_DERIVATIVE) -> float:
    """Pre-activation that maps to a knot derivative of exactly 1.

    With ``d = minimum + softplus(u + offset)``, ``u = 0`` gives ``d = 1``, so a
    zero-initialised conditioner starts as the identity map.
    """
    return math.log(math.expm1(1 - minimum))


def spline_knots(
    widths: Tensor,
    heights: Tensor,
    derivatives: Tensor,
    *,
    left: float,
    right: float,
    bottom: float,
    top: float,
    min_width: float = MIN_BIN_WIDTH,
    min_height: float = MIN_BIN_HEIGHT,
    min_derivative: float = MIN_DERIVATIVE,
) -> tuple[Tensor, Tensor, Tensor]:
    """Knots of a monotonic RQS from unconstrained parameters.

    Args:
        widths: (*, K, F) unconstrained bin widths.
        heights: (*, K, F) unconstrained bin heights.
        derivatives: (*, K - 1, F) unconstrained interior derivatives (boundary
            derivatives fixed to 1, for identity tails), or (*, K + 1, F) all
            derivatives (bounded splines).
        left, right: input interval; bottom, top: output interval.
        min_width, min_height, min_derivative: guards that keep the spline
            strictly monotonic and numerically invertible.

    Returns:
        ``(xk, yk, dk)``, each (*, K + 1, F): knot abscissae, ordinates and
        derivatives.
    """
    bins = widths.shape[-2]
    xk = _positions(widths, left, right, min_width)
    yk = _positions(heights, bottom, top, min_height)
    dk = min_derivative + F.softplus(derivatives + derivative_offset(min_derivative))
    if derivatives.shape[-2] == bins - 1:
        dk = F.pad(dk, (0, 0, 1, 1), value=1.0)
    elif derivatives.shape[-2] != bins + 1:
        raise ValueError(
            f"derivatives need K - 1 = {bins - 1} or K + 1 = {bins + 1} entries on the "
            f"bin axis, got {derivatives.shape[-2]}"
        )
    return xk, yk, dk


def _select(knots: Tensor, values: Tensor) -> Tensor:
    """Index of the bin holding each value.

    Args:
        knots: (*, K + 1, F) increasing knots.
        values: (*, F).

    Returns:
        (*, 1, F) int64 bin indices in [0, K - 1].
    """
    inner = knots[..., 1:-1, :]
    return (values.unsqueeze(-2) >= inner).sum(dim=-2, keepdim=True)


def _gather(xk: Tensor, yk: Tensor, dk: Tensor, k: Tensor) -> tuple[Tensor, ...]:
    """Bin edges, ordinates and derivatives at bin ``k``; each (*, F)."""
    k1 = k + 1
    x0 = xk.gather(-2, k).squeeze(-2)
    x1 = xk.gather(-2, k1).squeeze(-2)
    y0 = yk.gather(-2, k).squeeze(-2)
    y1 = yk.gather(-2, k1).squeeze(-2)
    d0 = dk.gather(-2, k).squeeze(-2)
    d1 = dk.gather(-2, k1).squeeze(-2)
    return x0, x1, y0, y1, d0, d1


def rqs_forward(x: Tensor, xk: Tensor, yk: Tensor, dk: Tensor) -> tuple[Tensor, Tensor]:
    """Evaluate a monotonic RQS and its log-derivative.

    Inputs outside ``[xk[0], xk[-1]]`` are clamped to the bounds; callers that
    want identity tails handle them (see :func:`unbounded_rqs`).

    Args:
        x: (*, F) inputs.
        xk, yk, dk: (*, K + 1, F) knots from :func:`spline_knots`.

    Returns:
        ``(y, log_dydx)``, each (*, F).
    """
    x = torch.maximum(torch.minimum(x, xk[..., -1, :]), xk[..., 0, :])
    x0, x1, y0, y1, d0, d1 = _gather(xk, yk, dk, _select(xk, x))
    w = x1 - x0
    h = y1 - y0
    s = h / w
    t = ((x - x0) / w).clamp(0, 1)
    t1 = 1 - t
    tt = t * t1
    den = s + (d0 + d1 - 2 * s) * tt
    y = y0 + h * (s * t * t + d0 * tt) / den
    num = s * s * (d1 * t * t + 2 * s * tt + d0 * t1 * t1)
    log_dydx = torch.log(num) - 2 * torch.log(den)
    return y, log_dydx


def rqs_inverse(y: Tensor, xk: Tensor, yk: Tensor, dk: Tensor) -> tuple[Tensor, Tensor]:
    """Invert a monotonic RQS (root of the quadratic, Durkan et al. eq. 6-8).

    Args:
        y: (*, F) outputs, clamped to ``[yk[0], yk[-1]]``.
        xk, yk, dk: (*, K + 1, F) knots.

    Returns:
        ``(x, log_dxdy)``, each (*, F); ``log_dxdy = -log_dydx(x)``.
    """
    y = torch.maximum(torch.minimum(y, yk[..., -1, :]), yk[..., 0, :])
    x0, x1, y0, y1, d0, d1 = _gather(xk, yk, dk, _select(yk, y))
    w = x1 - x0
    h = y1 - y0
    s = h / w
    dy = y - y0
    c2 = d0 + d1 - 2 * s
    a = h * (s - d0) + dy * c2
    b = h * d0 - dy * c2
    c = -s * dy
    disc = (b * b - 4 * a * c).clamp_min(0)
    # Numerically stable root of a t^2 + b t + c = 0 lying in [0, 1].
    t = (2 * c / (-b - torch.sqrt(disc))).clamp(0, 1)
    x = x0 + t * w
    t1 = 1 - t
    tt = t * t1
    den = s + c2 * tt
    num = s * s * (d1 * t * t + 2 * s * tt + d0 * t1 * t1)
    log_dxdy = 2 * torch.log(den) - torch.log(num)
    return x, log_dxdy


def unbounded_rqs(
    x: Tensor, xk: Tensor, yk: Tensor, dk: Tensor, bound: float, inverse: bool = False
) -> tuple[Tensor, Tensor]:
    """RQS on ``[-bound, bound]`` with identity tails outside.

    Args:
        x: (*, F) inputs (outputs when ``inverse``).
        xk, yk, dk: (*, K + 1, F) knots spanning ``[-bound, bound]`` on both
            axes with unit boundary derivatives.
        bound: tail bound B.
        inverse: evaluate the inverse map.

    Returns:
        ``(y, ladj)``, each (*, F); ladj is log|dy/dx| of the map evaluated.
    """
    inside = (x >= -bound) & (x <= bound)
    y, ladj = (rqs_inverse if inverse else rqs_forward)(x, xk, yk, dk)
    return torch.where(inside, y, x), torch.where(inside, ladj, torch.zeros_like(ladj))
