"""Element-wise invertible maps whose parameters come from a conditioner.

A coupling or autoregressive block asks its conditioner for
``params_per_feature`` numbers per transformed feature, laid out as
(P, F, N) (parameter axis first, batch last: see :mod:`hepflows.flows.splines`),
and hands them to one of these maps with the inputs as (F, N). A conditioner
whose last layer is zero starts every map as the identity.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hepflows.errors import ConfigError
from hepflows.flows.splines import packed_spline_knots, rqs_forward, rqs_inverse, unbounded_rqs


class ElementwiseMap:
    """Interface: a family of monotonic 1D maps parametrised per feature."""

    #: Number of parameters per feature.
    params_per_feature: int

    def __call__(self, x: Tensor, params: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        """Apply the map (or its inverse).

        Args:
            x: (*) inputs, typically (F, N).
            params: (P, *) parameters.
            inverse: apply the inverse map.

        Returns:
            ``(y, ladj)``: (*) outputs and (*) log|dy/dx| per element.
        """
        raise NotImplementedError


class SplineMap(ElementwiseMap):
    """Monotonic rational-quadratic spline with ``bins`` bins.

    Args:
        bins: number of bins K.
        bound: tail bound B for ``domain="real"`` (spline on [-B, B], identity
            outside).
        domain: ``"real"`` (identity tails) or ``"unit"`` (bijection of [0, 1]
            with learned boundary derivatives).
    """

    def __init__(self, bins: int = 8, bound: float = 5.0, domain: str = "real") -> None:
        if bins < 2:
            raise ConfigError(f"a spline needs at least 2 bins, got {bins}")
        self.bins, self.bound, self.domain = bins, float(bound), domain
        if domain == "real":
            self.params_per_feature = 3 * bins - 1
            self.interval = (-self.bound, self.bound)
        elif domain == "unit":
            self.params_per_feature = 3 * bins + 1
            self.interval = (0.0, 1.0)
        else:
            raise ConfigError(f"domain must be 'real' or 'unit', got {domain!r}")

    def knots(self, params: Tensor) -> Tensor:
        """Knots (3, K + 1, *) from parameters (P, *)."""
        sizes, derivatives = params.split((2 * self.bins, len(params) - 2 * self.bins))
        return packed_spline_knots(sizes, derivatives, self.interval, self.interval)

    def __call__(self, x: Tensor, params: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        knots = self.knots(params)
        if self.domain == "real":
            return unbounded_rqs(x, knots, self.bound, inverse=inverse)
        return (rqs_inverse if inverse else rqs_forward)(x, knots, self.interval * 2)


class AffineMap(ElementwiseMap):
    """``y = x exp(s) + t`` with a soft clamp |s| < ``max_log_scale``.

    Args:
        max_log_scale: bound on the log-scale (tanh soft clamp) for stability.
    """

    params_per_feature = 2

    def __init__(self, max_log_scale: float = 3.0) -> None:
        self.max_log_scale = max_log_scale

    def __call__(self, x: Tensor, params: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        shift, raw = params
        log_scale = self.max_log_scale * torch.tanh(raw / self.max_log_scale)
        if inverse:
            return (x - shift) * torch.exp(-log_scale), -log_scale
        return x * torch.exp(log_scale) + shift, log_scale


def make_map(kind: str, bins: int, bound: float, domain: str) -> ElementwiseMap:
    """Element-wise map by name (``"rqs"`` or ``"affine"``)."""
    if kind == "rqs":
        return SplineMap(bins=bins, bound=bound, domain=domain)
    if kind == "affine":
        if domain != "real":
            raise ConfigError("affine maps do not preserve the unit cube: use kind='rqs'")
        return AffineMap()
    raise ConfigError(f"unknown element-wise map {kind!r}: use 'rqs' or 'affine'")


__all__ = ["AffineMap", "ElementwiseMap", "SplineMap", "make_map"]
